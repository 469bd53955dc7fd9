"""Settings of the Lambdas, read from the environment the functions are deployed with.

| variable | function | |
|---|---|---|
| ``LAKEHOUSE_LAKE_ROOT`` | trigger | ``s3://bucket[/prefix]``: whose raw CSVs start runs |
| ``LAKEHOUSE_STATE_MACHINE_ARN`` | trigger | the state machine the trigger starts |
| ``AWS_REGION`` / ``AWS_DEFAULT_REGION`` | archive | set by Lambda itself |
| ``AWS_ENDPOINT_URL`` | both | optional: an emulator or S3-compatible endpoint |

The trigger calls Step Functions, and S3 for the lake's raw zone and its start record
(``_trigger/last-start.json``), in the state machine's own region (read from its ARN): the
stack puts the lake bucket and the state machine in one region.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from ecommerce_lakehouse.domain.errors import ConfigurationError
from ecommerce_lakehouse_aws.storage import S3Location

LAKE_ROOT_ENV = "LAKEHOUSE_LAKE_ROOT"
STATE_MACHINE_ENV = "LAKEHOUSE_STATE_MACHINE_ARN"
ENDPOINT_ENV = "AWS_ENDPOINT_URL"
REGION_ENVS: tuple[str, ...] = ("AWS_REGION", "AWS_DEFAULT_REGION")

_STATE_MACHINE_ARN = re.compile(
    r"arn:(?P<partition>aws[a-z-]*):states:(?P<region>[a-z0-9-]+):(?P<account>\d{12})"
    r":stateMachine:(?P<name>[^:\s]{1,80})"
)


def _value(environ: Mapping[str, str], name: str) -> str | None:
    value = environ.get(name, "").strip()
    return value or None


def endpoint_url(environ: Mapping[str, str]) -> str | None:
    """The custom AWS endpoint (``AWS_ENDPOINT_URL``), or None for AWS's own.

    Raises:
        ConfigurationError: the value is not an ``http://`` or ``https://`` URL.
    """
    value = _value(environ, ENDPOINT_ENV)
    if value is not None and not value.startswith(("http://", "https://")):
        raise ConfigurationError(f"invalid {ENDPOINT_ENV} {value!r}: expected http:// or https://")
    return value


def aws_region(environ: Mapping[str, str]) -> str:
    """The region the function runs in (``AWS_REGION``, which Lambda always sets).

    Raises:
        ConfigurationError: neither ``AWS_REGION`` nor ``AWS_DEFAULT_REGION`` is set.
    """
    for name in REGION_ENVS:
        value = _value(environ, name)
        if value is not None:
            return value
    raise ConfigurationError("no AWS region: set AWS_REGION (or AWS_DEFAULT_REGION)")


@dataclass(frozen=True, slots=True, kw_only=True)
class TriggerSettings:
    """What the S3 trigger watches and what it starts.

    Attributes:
        lake: the lake root whose ``raw-data/`` CSVs start runs.
        state_machine_arn: the ARN of the pipeline's state machine.
        region: the state machine's region (from its ARN).
        endpoint_url: a custom endpoint for Step Functions and S3, or None for AWS's own.
    """

    lake: S3Location
    state_machine_arn: str
    region: str
    endpoint_url: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> TriggerSettings:
        """Settings from the environment.

        Reads ``LAKEHOUSE_LAKE_ROOT``, ``LAKEHOUSE_STATE_MACHINE_ARN`` and, optionally,
        ``AWS_ENDPOINT_URL``.

        Raises:
            ConfigurationError: a variable is missing or malformed.
        """
        missing = [name for name in (LAKE_ROOT_ENV, STATE_MACHINE_ENV) if not _value(environ, name)]
        if missing:
            raise ConfigurationError(
                f"the S3 trigger needs the environment variable(s) {', '.join(missing)}"
            )
        lake = S3Location.parse(_value(environ, LAKE_ROOT_ENV) or "")
        arn = _value(environ, STATE_MACHINE_ENV) or ""
        match = _STATE_MACHINE_ARN.fullmatch(arn)
        if match is None:
            raise ConfigurationError(
                f"invalid {STATE_MACHINE_ENV} {arn!r}: expected "
                "arn:aws:states:<region>:<account>:stateMachine:<name>"
            )
        return cls(
            lake=lake,
            state_machine_arn=arn,
            region=match["region"],
            endpoint_url=endpoint_url(environ),
        )

    def execution_arn(self, name: str) -> str:
        """The ARN of the state machine's execution called ``name``."""
        prefix, _, machine = self.state_machine_arn.rpartition(":stateMachine:")
        return f"{prefix}:execution:{machine}:{name}"
