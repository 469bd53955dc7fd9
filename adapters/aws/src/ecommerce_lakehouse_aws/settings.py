"""The AWS platform's view of the lake settings, checked for what AWS needs.

Nothing here reads the environment: the settings were read once, by
:func:`ecommerce_lakehouse.settings.read_settings` (docs/settings.md). What this module adds is
what an ``s3://`` lake requires of them: a region and a Glue database, names Athena accepts,
and the object-store options delta-rs and Polars are given.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from ecommerce_lakehouse.domain.errors import ConfigurationError
from ecommerce_lakehouse.settings import (
    DEFAULT_ATHENA_TIMEOUT_SECONDS,
    DEFAULT_LOCK_LEASE_SECONDS,
    QUERY_SERVICES,
    LakeSettings,
    env_name,
    read_settings,
)

# AWS region names: lower-case words and digits joined by dashes (eu-west-1, us-gov-east-1).
_REGION_NAME = re.compile(r"[a-z]{2}(-[a-z0-9]+)+", re.ASCII)

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
        query: ``duckdb`` (SQL on this machine over the Delta tables in S3), ``athena``,
            ``spark`` (Spark SQL in the Spark engine's session), or None for the engine's
            choice.
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
    query: str | None = None
    athena_workgroup: str | None = None
    athena_output: str | None = None
    athena_timeout_seconds: float = DEFAULT_ATHENA_TIMEOUT_SECONDS
    lock_lease_seconds: float = DEFAULT_LOCK_LEASE_SECONDS

    def __post_init__(self) -> None:
        if not _REGION_NAME.fullmatch(self.region):
            raise ConfigurationError(
                f"invalid AWS region {self.region!r}: expected a name such as eu-west-1"
            )
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
        if self.query is not None and self.query not in QUERY_SERVICES:
            raise ConfigurationError(
                f"invalid query service {self.query!r}: expected one of {', '.join(QUERY_SERVICES)}"
            )
        if self.athena_output is not None and not self.athena_output.startswith("s3://"):
            raise ConfigurationError(
                f"invalid Athena output location {self.athena_output!r}: expected s3://..."
            )
        if self.query == "athena" and self.athena_output is None and not self.athena_workgroup:
            raise ConfigurationError(
                f"Athena needs a result location: set {env_name('athena_output')} (s3://...) "
                f"or {env_name('athena_workgroup')} to a workgroup that has one"
            )
        for name in ("athena_timeout_seconds", "lock_lease_seconds"):
            value = getattr(self, name)
            if not math.isfinite(value) or value <= 0:
                raise ConfigurationError(f"'{name}' must be a positive number of seconds")

    @classmethod
    def of(
        cls, settings: LakeSettings, *, profile_region: Callable[[], str | None] = lambda: None
    ) -> AwsSettings:
        """The AWS part of a lake's settings.

        Args:
            settings: the lake's settings.
            profile_region: the region of the AWS profile in use, asked for only when the
                settings name none (no ``region`` option, ``LAKEHOUSE_REGION`` or
                ``AWS_REGION``).

        Raises:
            ConfigurationError: no region or Glue database, or a value AWS cannot take.
        """
        region = settings.region or profile_region()
        if not region:
            raise ConfigurationError(
                f"no AWS region: set AWS_REGION (or {env_name('region')}, or the option 'region')"
            )
        if settings.glue_database is None:
            raise ConfigurationError(
                "no Glue database for the lake's tables: set "
                f"{env_name('glue_database')} or the option 'glue_database'"
            )
        return cls(
            region=region,
            endpoint_url=settings.endpoint_url,
            access_key_id=settings.access_key_id,
            secret_access_key=settings.secret_access_key,
            session_token=settings.session_token,
            glue_database=settings.glue_database,
            query=settings.query,
            athena_workgroup=settings.athena_workgroup,
            athena_output=settings.athena_output,
            athena_timeout_seconds=settings.athena_timeout_seconds,
            lock_lease_seconds=settings.lock_lease_seconds,
        )

    @classmethod
    def read(
        cls,
        options: Mapping[str, str | None],
        environ: Mapping[str, str],
        *,
        profile_region: Callable[[], str | None] = lambda: None,
    ) -> AwsSettings:
        """Read the lake settings (options, then the environment) and take their AWS part."""
        return cls.of(read_settings(LakeSettings, options, environ), profile_region=profile_region)

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
