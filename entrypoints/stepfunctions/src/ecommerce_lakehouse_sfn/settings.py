"""What the state machine names: the job, function, crawler, workgroup and database.

:class:`StateMachineSettings` is a settings class (:mod:`ecommerce_lakehouse.settings`) read
from the environment (``LAKEHOUSE_<NAME>``) by
:func:`~ecommerce_lakehouse.settings.read_settings`; docs/settings.md lists every setting. An
unset name becomes a ``${Name}`` placeholder that CloudFormation's ``DefinitionSubstitutions``
fills at deploy time, so nothing account-specific is ever hard-coded in the definition.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ecommerce_lakehouse.domain.errors import ConfigurationError
from ecommerce_lakehouse.domain.types import Severity
from ecommerce_lakehouse.settings import LakeSettings, env_name, info_of, read_settings, setting


def placeholder(name: str) -> str:
    """A ``DefinitionSubstitutions`` placeholder such as ``${GlueJobName}``."""
    return "${" + name + "}"


#: Setting -> (environment variable, DefinitionSubstitutions placeholder name) of the names
#: that stay placeholders when unset.
VARIABLES: Mapping[str, tuple[str, str]] = {
    name: (env_name(name), where)
    for name, where in {
        "lake": "LakeRoot",
        "glue_job": "GlueJobName",
        "archive_function": "ArchiveFunctionArn",
        "glue_database": "GlueDatabase",
        "athena_workgroup": "AthenaWorkGroup",
        "athena_output": "AthenaOutputLocation",
    }.items()
}
#: The optional crawler (no crawler states when unset).
CRAWLER_ENV = env_name("crawler")
#: Severity of foreign-key checks in the validation gate (``warn`` by default,
#: docs/contract.md#validation).
FK_SEVERITY_ENV = env_name("fk_severity")


def _lake_meaning(name: str) -> str:
    # A setting the library has too keeps its meaning word for word: the settings table
    # has one row per name.
    return next(info_of(f).meaning for f in dataclasses.fields(LakeSettings) if f.name == name)


def _name(meaning: str, name: str) -> Any:
    return setting(meaning, default=placeholder(VARIABLES[name][1]), flag=False, job=False)


def _limit(meaning: str, default: int) -> Any:
    return setting(meaning, default=default, flag=False, job=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class StateMachineSettings:
    """Names and limits of the deployed pipeline.

    Attributes:
        lake: ``s3://bucket[/prefix]`` the Glue job and archive Lambda work on.
        glue_job: the Glue job running discover, ingest, catalogue and validate.
        archive_function: name or ARN of the archive Lambda.
        glue_database: Glue Data Catalog database Athena queries.
        athena_workgroup: Athena workgroup of the validation gate.
        athena_output: ``s3://`` location of Athena's query results.
        crawler: optional Glue crawler (Delta targets) started after archiving.
        fk_severity: severity of foreign-key checks in the gate.
        glue_timeout_seconds: limit of one Glue job run.
        lambda_timeout_seconds: limit of one archive invocation.
        validation_timeout_seconds: limit of the validation query.
        glue_poll_seconds: wait between two Glue job run status reads (``POLLING`` only).
        athena_poll_seconds: wait between two Athena query status reads (``POLLING`` only).
        crawler_poll_seconds: wait between two crawler status reads.
        crawler_max_polls: reads before the crawl counts as timed out (bounds the loop).

    Raises:
        ConfigurationError: the lake is not an ``s3://`` root (nor a placeholder), or a
            limit is below 1.
    """

    # The meaning is the Glue job's ``lake``'s, word for word (one row in the table).
    lake: str = _name("the lake root: s3://bucket[/prefix] on AWS, a directory locally", "lake")
    glue_job: str = _name("the Glue job the state machine runs", "glue_job")
    archive_function: str = _name(
        "name or ARN of the archive Lambda the state machine invokes", "archive_function"
    )
    glue_database: str = _name(_lake_meaning("glue_database"), "glue_database")
    athena_workgroup: str = _name(_lake_meaning("athena_workgroup"), "athena_workgroup")
    athena_output: str = _name(_lake_meaning("athena_output"), "athena_output")
    crawler: str | None = setting(
        "a Glue crawler (Delta targets) the state machine starts after archiving; unset: "
        "the Glue job catalogues the tables",
        default=None,
        flag=False,
        job=False,
    )
    fk_severity: Severity = setting(
        _lake_meaning("fk_severity"), default=Severity.WARN, flag=False, job=False
    )
    glue_timeout_seconds: int = _limit("limit in seconds of one Glue job run", 4 * 3600)
    lambda_timeout_seconds: int = _limit("limit in seconds of one archive invocation", 900)
    validation_timeout_seconds: int = _limit(
        "limit in seconds of the state machine's Athena validation query", 1800
    )
    glue_poll_seconds: int = _limit(
        "seconds between two Glue job run status reads (state machine with --polling)", 30
    )
    athena_poll_seconds: int = _limit(
        "seconds between two Athena query status reads (state machine with --polling)", 2
    )
    crawler_poll_seconds: int = _limit("seconds between two crawler status reads", 30)
    crawler_max_polls: int = _limit(
        "crawler status reads before the crawl counts as timed out", 120
    )

    def __post_init__(self) -> None:
        if not self.lake.startswith(("s3://", "${")):
            raise ConfigurationError(
                f"{VARIABLES['lake'][0]} must be an s3:// lake root, not {self.lake!r}"
            )
        limits = {
            "glue_timeout_seconds": self.glue_timeout_seconds,
            "lambda_timeout_seconds": self.lambda_timeout_seconds,
            "validation_timeout_seconds": self.validation_timeout_seconds,
            "glue_poll_seconds": self.glue_poll_seconds,
            "athena_poll_seconds": self.athena_poll_seconds,
            "crawler_poll_seconds": self.crawler_poll_seconds,
            "crawler_max_polls": self.crawler_max_polls,
        }
        for name, value in limits.items():
            if value < 1:
                raise ConfigurationError(
                    f"state machine setting {name} ({env_name(name)}) must be at least 1"
                )

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> StateMachineSettings:
        """Settings from the environment (:func:`read_settings`); unset names stay placeholders."""
        return read_settings(cls, {}, environ)
