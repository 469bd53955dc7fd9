"""AWS platform adapters: S3 storage, Glue Data Catalog, Athena (or local DuckDB) SQL, S3 lock.

``AthenaQueryService`` (pyarrow) and ``AwsPlatformContainer`` (dependency-injector) load on
first use, so a Lambda importing ``ecommerce_lakehouse_aws.storage`` loads neither.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ecommerce_lakehouse.settings import LakeSettings
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
    "platform_container",
]


def platform_container(root: str, settings: LakeSettings) -> AwsPlatformContainer:
    """The container of an S3 lake root (entry point ``aws``).

    Storage is S3, the catalogue the Glue Data Catalog, the lock an S3 lease object; its
    query services are ``duckdb`` (on this machine, over the Delta tables in S3) and
    ``athena``. Nothing is built before it is asked for: an entrypoint that needs only
    part of the platform (a script moving files) takes the providers it needs.

    Raises:
        ConfigurationError: the root is not ``s3://bucket[/prefix]``, or a setting AWS
            needs is missing or invalid (see :class:`AwsSettings`).
    """
    from ecommerce_lakehouse_aws.containers import AwsPlatformContainer

    location = S3Location.parse(root)
    aws = AwsSettings.of(settings, profile_region=_profile_region)
    return AwsPlatformContainer(settings=aws, location=location)


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
