"""The dependency-injector container of the AWS platform adapters."""

from __future__ import annotations

from dependency_injector import containers, providers

from ecommerce_lakehouse.domain.errors import ConfigurationError
from ecommerce_lakehouse.domain.zones import LOCK_KEY
from ecommerce_lakehouse.ports.query import QueryService
from ecommerce_lakehouse.ports.storage import ObjectStorage
from ecommerce_lakehouse_aws.catalogue import GlueCatalogue
from ecommerce_lakehouse_aws.clients import make_client
from ecommerce_lakehouse_aws.lock import S3LakeLock
from ecommerce_lakehouse_aws.query import AthenaQueryService
from ecommerce_lakehouse_aws.settings import AwsSettings
from ecommerce_lakehouse_aws.storage import S3Location, S3ObjectStorage


def local_sql(storage: ObjectStorage) -> QueryService:
    """DuckDB over the lake's Delta tables, read from S3 by delta-rs with the storage options.

    Imported only when asked for, so a Lambda that moves files never loads DuckDB.

    Raises:
        ConfigurationError: ``ecommerce-lakehouse-local`` (the ``local-sql`` extra) is not
            installed.
    """
    try:
        from ecommerce_lakehouse_local.query import DuckDbQueryService
    except ImportError:
        raise ConfigurationError(
            "SQL on this machine over an S3 lake needs ecommerce-lakehouse-local "
            "(install ecommerce-lakehouse-aws[local-sql]), or use Athena (query athena)"
        ) from None
    return DuckDbQueryService(storage)


class AwsPlatformContainer(containers.DeclarativeContainer):
    """Storage, catalogue, SQL and lock of one S3 lake root.

    Provide ``settings`` (:class:`AwsSettings`) and ``location`` (:class:`S3Location`).
    Every provider is a singleton, so one container serves one lake; nothing is created
    before it is asked for (a Lambda asking only for ``storage`` builds one S3 client).
    Its query services are ``duckdb`` (on this machine) and ``athena``, named as the
    ``query`` setting names them; the lake's composition picks one.
    """

    settings = providers.Dependency(instance_of=AwsSettings)
    location = providers.Dependency(instance_of=S3Location)

    s3_client = providers.Singleton(make_client, "s3", settings)
    glue_client = providers.Singleton(make_client, "glue", settings)
    athena_client = providers.Singleton(make_client, "athena", settings)

    storage = providers.Singleton(
        S3ObjectStorage,
        client=s3_client,
        location=location,
        storage_options=settings.provided.storage_options.call(),
    )
    catalogue = providers.Singleton(
        GlueCatalogue, client=glue_client, database=settings.provided.glue_database
    )
    athena = providers.Singleton(
        AthenaQueryService,
        client=athena_client,
        database=settings.provided.glue_database,
        workgroup=settings.provided.athena_workgroup,
        output_location=settings.provided.athena_output,
        timeout_seconds=settings.provided.athena_timeout_seconds,
    )
    duckdb = providers.Singleton(local_sql, storage=storage)
    lock = providers.Singleton(
        S3LakeLock,
        client=s3_client,
        bucket=location.provided.bucket,
        key=location.provided.object_key.call(LOCK_KEY),
        lease_seconds=settings.provided.lock_lease_seconds,
    )
