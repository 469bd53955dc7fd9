"""What the state machine names: the job, function, crawler, workgroup and database.

Every value comes from the environment (or the caller); an unset one becomes a
``${Name}`` placeholder that CloudFormation's ``DefinitionSubstitutions`` fills at deploy time,
so nothing account-specific is ever hard-coded in the definition.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ecommerce_lakehouse.domain.errors import ConfigurationError
from ecommerce_lakehouse.domain.types import Severity

#: Setting -> (environment variable, DefinitionSubstitutions placeholder name).
VARIABLES: Mapping[str, tuple[str, str]] = {
    "lake_root": ("LAKEHOUSE_LAKE_ROOT", "LakeRoot"),
    "glue_job_name": ("LAKEHOUSE_GLUE_JOB", "GlueJobName"),
    "archive_function": ("LAKEHOUSE_ARCHIVE_FUNCTION", "ArchiveFunctionArn"),
    "glue_database": ("LAKEHOUSE_GLUE_DATABASE", "GlueDatabase"),
    "athena_workgroup": ("LAKEHOUSE_ATHENA_WORKGROUP", "AthenaWorkGroup"),
    "athena_output": ("LAKEHOUSE_ATHENA_OUTPUT", "AthenaOutputLocation"),
}
#: The optional crawler (no crawler states when unset).
CRAWLER_ENV = "LAKEHOUSE_CRAWLER"
#: Severity of foreign-key checks in the validation gate (``warn`` by default,
#: docs/contract.md#validation).
FK_SEVERITY_ENV = "LAKEHOUSE_FK_SEVERITY"


def placeholder(name: str) -> str:
    """A ``DefinitionSubstitutions`` placeholder such as ``${GlueJobName}``."""
    return "${" + name + "}"


@dataclass(frozen=True, slots=True, kw_only=True)
class StateMachineSettings:
    """Names and limits of the deployed pipeline.

    Attributes:
        lake_root: ``s3://bucket[/prefix]`` the Glue job and archive Lambda work on.
        glue_job_name: the Glue job running discover, ingest, catalogue and validate.
        archive_function: name or ARN of the archive Lambda.
        glue_database: Glue Data Catalog database Athena queries.
        athena_workgroup: Athena workgroup of the validation gate.
        athena_output: ``s3://`` location of Athena's query results.
        crawler_name: optional Glue crawler (Delta targets) started after archiving.
        foreign_key_severity: severity of foreign-key checks in the gate.
        glue_timeout_seconds: limit of one Glue job run.
        lambda_timeout_seconds: limit of one archive invocation.
        athena_timeout_seconds: limit of the validation query.
        glue_poll_seconds: wait between two Glue job run status reads (``POLLING`` only).
        athena_poll_seconds: wait between two Athena query status reads (``POLLING`` only).
        crawler_poll_seconds: wait between two crawler status reads.
        crawler_max_polls: reads before the crawl counts as timed out (bounds the loop).
    """

    lake_root: str = placeholder("LakeRoot")
    glue_job_name: str = placeholder("GlueJobName")
    archive_function: str = placeholder("ArchiveFunctionArn")
    glue_database: str = placeholder("GlueDatabase")
    athena_workgroup: str = placeholder("AthenaWorkGroup")
    athena_output: str = placeholder("AthenaOutputLocation")
    crawler_name: str | None = None
    foreign_key_severity: Severity = Severity.WARN
    glue_timeout_seconds: int = 4 * 3600
    lambda_timeout_seconds: int = 900
    athena_timeout_seconds: int = 1800
    glue_poll_seconds: int = 30
    athena_poll_seconds: int = 2
    crawler_poll_seconds: int = 30
    crawler_max_polls: int = 120

    def __post_init__(self) -> None:
        limits = {
            "glue_timeout_seconds": self.glue_timeout_seconds,
            "lambda_timeout_seconds": self.lambda_timeout_seconds,
            "athena_timeout_seconds": self.athena_timeout_seconds,
            "glue_poll_seconds": self.glue_poll_seconds,
            "athena_poll_seconds": self.athena_poll_seconds,
            "crawler_poll_seconds": self.crawler_poll_seconds,
            "crawler_max_polls": self.crawler_max_polls,
        }
        for name, value in limits.items():
            if value < 1:
                raise ConfigurationError(f"state machine setting {name} must be at least 1")

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> StateMachineSettings:
        """Settings from environment variables; unset names stay placeholders.

        Raises:
            ConfigurationError: a value is malformed (e.g. an unknown severity).
        """

        def value(setting: str) -> str:
            variable, name = VARIABLES[setting]
            return environ.get(variable, "").strip() or placeholder(name)

        lake = value("lake_root")
        if not lake.startswith(("s3://", "${")):
            raise ConfigurationError(
                f"{VARIABLES['lake_root'][0]} must be an s3:// lake root, not {lake!r}"
            )
        return cls(
            lake_root=lake,
            glue_job_name=value("glue_job_name"),
            archive_function=value("archive_function"),
            glue_database=value("glue_database"),
            athena_workgroup=value("athena_workgroup"),
            athena_output=value("athena_output"),
            crawler_name=environ.get(CRAWLER_ENV, "").strip() or None,
            foreign_key_severity=Severity.from_str(
                environ.get(FK_SEVERITY_ENV, "").strip() or "warn"
            ),
        )
