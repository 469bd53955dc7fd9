"""Settings of the Lambdas, read from the environment the functions are deployed with.

Both are settings classes (:mod:`ecommerce_lakehouse.settings`) read by
:func:`~ecommerce_lakehouse.settings.read_settings`; docs/settings.md lists every setting.

| variable | function | |
|---|---|---|
| ``LAKEHOUSE_LAKE`` | trigger | ``s3://bucket[/prefix]``: whose raw CSVs start runs |
| ``LAKEHOUSE_STATE_MACHINE_ARN`` | trigger | the state machine the trigger starts |
| ``AWS_REGION`` / ``AWS_DEFAULT_REGION`` | archive | set by Lambda itself |
| ``AWS_ENDPOINT_URL`` | both | optional: an emulator or S3-compatible endpoint |

``LAKEHOUSE_REGION`` and ``LAKEHOUSE_ENDPOINT_URL``, when set, win over the ``AWS_`` ones.

The trigger calls Step Functions, and S3 for the lake's raw zone and its start record
(``_trigger/last-start.json``), in the state machine's own region (read from its ARN): the
stack puts the lake bucket and the state machine in one region.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ecommerce_lakehouse.domain.errors import ConfigurationError
from ecommerce_lakehouse.settings import LakeSettings, env_name, info_of, read_settings, setting
from ecommerce_lakehouse_aws.storage import S3Location

_STATE_MACHINE_ARN = re.compile(
    r"arn:(?P<partition>aws[a-z-]*):states:(?P<region>[a-z0-9-]+):(?P<account>\d{12})"
    r":stateMachine:(?P<name>[^:\s]{1,80})"
)


def _lake_meaning(name: str) -> str:
    # A setting the library has too keeps its meaning word for word: the settings table
    # has one row per name.
    return next(info_of(f).meaning for f in dataclasses.fields(LakeSettings) if f.name == name)


def _endpoint_url_setting() -> Any:
    # Both functions read the endpoint as the library does (one meaning, one variable).
    return setting(
        _lake_meaning("endpoint_url"),
        default=None,
        flag=False,
        job=False,
        aws_env=("AWS_ENDPOINT_URL",),
    )


def _check_endpoint(value: str | None) -> None:
    if value is not None and not value.startswith(("http://", "https://")):
        raise ConfigurationError(
            f"invalid {env_name('endpoint_url')} (or AWS_ENDPOINT_URL) {value!r}: "
            "expected http:// or https://"
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class TriggerSettings:
    """What the S3 trigger watches and what it starts.

    Attributes:
        lake: the lake root (``s3://bucket[/prefix]``) whose ``raw-data/`` CSVs start runs;
            :attr:`location` is it parsed.
        state_machine_arn: the ARN of the pipeline's state machine; :attr:`region` is its
            region.
        endpoint_url: a custom endpoint for Step Functions and S3, or None for AWS's own.

    Raises:
        ConfigurationError: the lake root, the ARN or the endpoint is malformed.
    """

    # The meaning is the Glue job's ``lake``'s, word for word (one row in the table).
    lake: str = setting(
        "the lake root: s3://bucket[/prefix] on AWS, a directory locally", flag=False, job=False
    )
    state_machine_arn: str = setting(
        "the ARN of the state machine the S3 trigger starts", flag=False, job=False
    )
    endpoint_url: str | None = _endpoint_url_setting()

    def __post_init__(self) -> None:
        S3Location.parse(self.lake)
        if _STATE_MACHINE_ARN.fullmatch(self.state_machine_arn) is None:
            raise ConfigurationError(
                f"invalid {env_name('state_machine_arn')} {self.state_machine_arn!r}: expected "
                "arn:aws:states:<region>:<account>:stateMachine:<name>"
            )
        _check_endpoint(self.endpoint_url)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> TriggerSettings:
        """Settings from the environment (:func:`read_settings`; ConfigurationError if bad)."""
        return read_settings(cls, {}, environ)

    @property
    def location(self) -> S3Location:
        """The lake root, parsed."""
        return S3Location.parse(self.lake)

    @property
    def region(self) -> str:
        """The state machine's region (from its ARN)."""
        match = _STATE_MACHINE_ARN.fullmatch(self.state_machine_arn)
        assert match is not None, "checked by __post_init__"
        return match["region"]

    def execution_arn(self, name: str) -> str:
        """The ARN of the state machine's execution called ``name``."""
        prefix, _, machine = self.state_machine_arn.rpartition(":stateMachine:")
        return f"{prefix}:execution:{machine}:{name}"


@dataclass(frozen=True, slots=True, kw_only=True)
class ArchiveSettings:
    """Where the archive function calls S3.

    Attributes:
        region: the region the function runs in (``AWS_REGION``, which Lambda always sets).
        endpoint_url: a custom S3 endpoint, or None for AWS's own.

    Raises:
        ConfigurationError: the endpoint is malformed.
    """

    region: str = setting(
        _lake_meaning("region"),
        flag=False,
        job=False,
        aws_env=("AWS_REGION", "AWS_DEFAULT_REGION"),
    )
    endpoint_url: str | None = _endpoint_url_setting()

    def __post_init__(self) -> None:
        _check_endpoint(self.endpoint_url)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> ArchiveSettings:
        """Settings from the environment (:func:`read_settings`; ConfigurationError if bad)."""
        return read_settings(cls, {}, environ)
