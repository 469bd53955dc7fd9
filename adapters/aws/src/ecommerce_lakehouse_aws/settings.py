"""Settings of the AWS platform: adapter options first, then environment variables.

Nothing here is hard-coded for one deployment: region, endpoint, Glue database, Athena
workgroup and result location all come from ``open_lake(..., options=...)`` or from the
environment a Glue job, a Lambda or a developer's shell provides.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from ecommerce_lakehouse.domain.errors import ConfigurationError

#: The query services an S3 lake can use: DuckDB on this machine, Amazon Athena, or the
#: Spark engine's own session (``spark``: only on the ``spark-aws`` platform).
QUERY_ENGINES: tuple[str, ...] = ("duckdb", "athena", "spark")

#: How long one Athena query may run before it is cancelled, unless configured.
DEFAULT_ATHENA_TIMEOUT_SECONDS = 600.0
#: How long a lake lock lease lasts without renewal, unless configured.
DEFAULT_LOCK_LEASE_SECONDS = 300.0

#: Environment variables read for each option when the option is not given, in order.
#: Credentials are not listed: boto3 and delta-rs each find them in the environment, a
#: profile or an instance role by themselves, so only explicitly given keys are passed on.
ENVIRONMENT: Mapping[str, tuple[str, ...]] = {
    "region": ("AWS_REGION", "AWS_DEFAULT_REGION"),
    "endpoint_url": ("AWS_ENDPOINT_URL",),
    "access_key_id": (),
    "secret_access_key": (),
    "session_token": (),
    "glue_database": ("LAKEHOUSE_GLUE_DATABASE",),
    "query": ("LAKEHOUSE_QUERY",),
    "athena_workgroup": ("LAKEHOUSE_ATHENA_WORKGROUP",),
    "athena_output": ("LAKEHOUSE_ATHENA_OUTPUT",),
    "athena_timeout_seconds": ("LAKEHOUSE_ATHENA_TIMEOUT_SECONDS",),
    "lock_lease_seconds": ("LAKEHOUSE_LOCK_LEASE_SECONDS",),
}

# Athena reads database names in lower case with letters, digits and underscores only.
_DATABASE_NAME = re.compile(r"[a-z0-9_]{1,255}")


@dataclass(frozen=True, slots=True, kw_only=True)
class AwsSettings:
    """Where the AWS platform's services are and how long it waits for them.

    Attributes:
        region: the AWS region of the bucket, the Glue catalogue and Athena.
        endpoint_url: an S3-compatible endpoint for every service (an emulator, a VPC
            endpoint); None for AWS's own.
        access_key_id: an explicit access key; None to let boto3 and delta-rs find
            credentials themselves (environment, profile, instance or task role).
        secret_access_key: the secret of ``access_key_id``.
        session_token: the session token of temporary credentials.
        glue_database: the Glue database the lake's tables are registered in.
        query: ``duckdb`` (SQL on this machine over the Delta tables in S3), ``athena``, or
            ``spark`` (Spark SQL in the Spark engine's session; the ``spark-aws`` platform).
        athena_workgroup: the Athena workgroup (its settings may enforce a result location).
        athena_output: ``s3://`` location for Athena's result files.
        athena_timeout_seconds: how long one Athena query may take before it is cancelled.
        lock_lease_seconds: how long a lake lock lease lasts without renewal; a crashed
            run's lease can be taken over once it is this old.
    """

    region: str
    endpoint_url: str | None = None
    access_key_id: str | None = None
    # Secrets stay out of reprs (error reports, logs).
    secret_access_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)
    glue_database: str
    query: str = "duckdb"
    athena_workgroup: str | None = None
    athena_output: str | None = None
    athena_timeout_seconds: float = DEFAULT_ATHENA_TIMEOUT_SECONDS
    lock_lease_seconds: float = DEFAULT_LOCK_LEASE_SECONDS

    def __post_init__(self) -> None:
        if not self.region.strip() or any(c.isspace() for c in self.region):
            raise ConfigurationError(f"invalid AWS region {self.region!r}")
        if self.endpoint_url is not None and not self.endpoint_url.startswith(
            ("http://", "https://")
        ):
            raise ConfigurationError(
                f"invalid AWS endpoint {self.endpoint_url!r}: expected http:// or https://"
            )
        if (self.access_key_id is None) != (self.secret_access_key is None):
            raise ConfigurationError(
                "give both 'access_key_id' and 'secret_access_key', or neither"
            )
        if not _DATABASE_NAME.fullmatch(self.glue_database):
            raise ConfigurationError(
                f"invalid Glue database name {self.glue_database!r}: "
                "use lower-case letters, digits and underscores (Athena reads no others)"
            )
        if self.query not in QUERY_ENGINES:
            raise ConfigurationError(
                f"invalid query engine {self.query!r}: expected one of {', '.join(QUERY_ENGINES)}"
            )
        if self.athena_output is not None and not self.athena_output.startswith("s3://"):
            raise ConfigurationError(
                f"invalid Athena output location {self.athena_output!r}: expected s3://..."
            )
        if self.query == "athena" and self.athena_output is None and not self.athena_workgroup:
            raise ConfigurationError(
                "Athena needs a result location: set LAKEHOUSE_ATHENA_OUTPUT (s3://...) or "
                "LAKEHOUSE_ATHENA_WORKGROUP to a workgroup that has one"
            )
        for name in ("athena_timeout_seconds", "lock_lease_seconds"):
            value = getattr(self, name)
            if not math.isfinite(value) or value <= 0:
                raise ConfigurationError(f"'{name}' must be a positive number of seconds")

    @classmethod
    def from_options(
        cls,
        options: Mapping[str, str],
        environ: Mapping[str, str],
        *,
        profile_region: Callable[[], str | None] = lambda: None,
    ) -> AwsSettings:
        """Settings from adapter options, falling back to environment variables.

        Args:
            options: ``open_lake`` options (keys of :data:`ENVIRONMENT`; others are the
                engine's and are ignored here).
            environ: the environment (``os.environ``).
            profile_region: the region of the AWS profile in use, asked for only when
                neither an option nor ``AWS_REGION``/``AWS_DEFAULT_REGION`` names one.

        Raises:
            ConfigurationError: a required setting is missing or a value is invalid.
        """
        found: dict[str, str] = {}
        for name, variables in ENVIRONMENT.items():
            candidates = [options.get(name), *(environ.get(v) for v in variables)]
            value = next((c.strip() for c in candidates if c and c.strip()), None)
            if value is not None:
                found[name] = value
        region = found.get("region") or profile_region()
        if not region:
            raise ConfigurationError(
                "no AWS region: set AWS_REGION (or AWS_DEFAULT_REGION) or the option 'region'"
            )
        database = found.get("glue_database")
        if database is None:
            raise ConfigurationError(
                "no Glue database for the lake's tables: set LAKEHOUSE_GLUE_DATABASE "
                "or the option 'glue_database'"
            )
        return cls(
            region=region,
            endpoint_url=found.get("endpoint_url"),
            access_key_id=found.get("access_key_id"),
            secret_access_key=found.get("secret_access_key"),
            session_token=found.get("session_token"),
            glue_database=database,
            query=found.get("query", "duckdb").lower(),
            athena_workgroup=found.get("athena_workgroup"),
            athena_output=found.get("athena_output"),
            athena_timeout_seconds=_seconds(
                found, "athena_timeout_seconds", DEFAULT_ATHENA_TIMEOUT_SECONDS
            ),
            lock_lease_seconds=_seconds(found, "lock_lease_seconds", DEFAULT_LOCK_LEASE_SECONDS),
        )

    def storage_options(self) -> dict[str, str]:
        """Object-store options for delta-rs and Polars (their ``storage_options``).

        Always the region, and ``AWS_CONDITIONAL_PUT=etag``: Delta commits are then
        ``If-None-Match: *`` puts, so two writers can never both create the same log entry
        (S3 has honoured conditional writes since 2024; delta-rs 1.x needs no DynamoDB
        lock). An endpoint, ``AWS_ALLOW_HTTP`` for a plain-HTTP endpoint and credentials
        only when they were given.
        """
        options = {"AWS_REGION": self.region, "AWS_CONDITIONAL_PUT": "etag"}
        if self.endpoint_url is not None:
            options["AWS_ENDPOINT_URL"] = self.endpoint_url
            if self.endpoint_url.startswith("http://"):
                options["AWS_ALLOW_HTTP"] = "true"
        if self.access_key_id is not None and self.secret_access_key is not None:
            options["AWS_ACCESS_KEY_ID"] = self.access_key_id
            options["AWS_SECRET_ACCESS_KEY"] = self.secret_access_key
        if self.session_token is not None:
            options["AWS_SESSION_TOKEN"] = self.session_token
        return options


def _seconds(found: Mapping[str, str], name: str, default: float) -> float:
    text = found.get(name)
    if text is None:
        return default
    try:
        return float(text)
    except ValueError:
        raise ConfigurationError(f"'{name}' must be a number of seconds, got {text!r}") from None
