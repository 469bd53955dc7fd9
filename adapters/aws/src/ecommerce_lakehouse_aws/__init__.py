"""AWS platform adapters: S3 storage, Glue Data Catalog, Athena (or local DuckDB) SQL, S3 lock.

``AthenaQueryService`` (pyarrow) and ``AwsPlatformContainer`` (dependency-injector) load on
first use, so a Lambda importing ``ecommerce_lakehouse_aws.storage`` loads neither.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ecommerce_lakehouse.application.platform import Platform
from ecommerce_lakehouse.domain.errors import ConfigurationError
from ecommerce_lakehouse_aws.catalogue import GlueCatalogue
from ecommerce_lakehouse_aws.lock import S3LakeLock
from ecommerce_lakehouse_aws.settings import AwsSettings
from ecommerce_lakehouse_aws.storage import S3Location, S3ObjectStorage

if TYPE_CHECKING:
    from ecommerce_lakehouse_aws.containers import AwsPlatformContainer
    from ecommerce_lakehouse_aws.query import AthenaQueryService

__all__ = [
    "AthenaQueryService",
    "AwsPlatformContainer",
    "AwsSettings",
    "GlueCatalogue",
    "S3LakeLock",
    "S3Location",
    "S3ObjectStorage",
    "container_for",
    "create_platform",
]


def container_for(root: str, options: Mapping[str, str]) -> AwsPlatformContainer:
    """The container of an S3 lake root, configured from options and the environment.

    Entrypoints that need only part of the platform (a Lambda moving files) take the
    providers they need from it; nothing else is built.

    Raises:
        ConfigurationError: the root is not ``s3://bucket[/prefix]``, or a setting is
            missing or invalid (see :class:`AwsSettings`).
    """
    from ecommerce_lakehouse_aws.containers import AwsPlatformContainer

    location = S3Location.parse(root)
    settings = AwsSettings.from_options(options, os.environ, profile_region=_profile_region)
    return AwsPlatformContainer(settings=settings, location=location)


def create_platform(root: str, options: Mapping[str, str]) -> Platform:
    """The AWS platform of an S3 lake root (entry point ``aws``).

    Storage is S3, the catalogue the Glue Data Catalog, the lock an S3 lease object, and
    SQL runs with DuckDB on this machine over the Delta tables in S3 unless ``query`` is
    ``athena``.

    Args:
        root: ``s3://bucket[/prefix]``.
        options: settings by name (``region``, ``endpoint_url``, ``access_key_id``,
            ``secret_access_key``, ``session_token``, ``glue_database``, ``query``,
            ``athena_workgroup``, ``athena_output``, ``athena_timeout_seconds``,
            ``lock_lease_seconds``); each falls back to its environment variable
            (``AWS_REGION``, ``AWS_ENDPOINT_URL``, ``LAKEHOUSE_GLUE_DATABASE``, ...).

    Raises:
        ConfigurationError: the root or a setting is invalid, or a required one (region,
            Glue database) is missing.
    """
    container = container_for(root, options)
    if container.settings().query == "spark":
        raise ConfigurationError(
            "query 'spark' runs SQL in the Spark engine's session: use --engine spark "
            "(the spark-aws platform), or query duckdb or athena"
        )
    return Platform(
        storage=container.storage(),
        catalogue=container.catalogue(),
        query=container.query(),
        lock=container.lock(),
    )


def _profile_region() -> str | None:
    # The region of the AWS profile in use (~/.aws/config), when the environment names none.
    import boto3

    region: str | None = boto3.session.Session().region_name
    return region


def __getattr__(name: str) -> Any:
    # The adapters with heavy dependencies, imported when first asked for.
    if name == "AthenaQueryService":
        from ecommerce_lakehouse_aws.query import AthenaQueryService

        return AthenaQueryService
    if name == "AwsPlatformContainer":
        from ecommerce_lakehouse_aws.containers import AwsPlatformContainer

        return AwsPlatformContainer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
