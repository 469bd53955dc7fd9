"""PySpark + Delta Lake table engine and Spark SQL query service.

Entry points: ``spark`` of ``ecommerce_lakehouse.engines``, and ``spark-local`` and
``spark-aws`` of ``ecommerce_lakehouse.platforms`` (the local and AWS platforms with Spark
SQL as their query service).
Importing this package is cheap: PySpark loads, and a session starts, with the engine.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

from ecommerce_lakehouse.application.platform import Platform
from ecommerce_lakehouse.domain.errors import ConfigurationError
from ecommerce_lakehouse.ports.query import QueryService
from ecommerce_lakehouse.ports.storage import ObjectStorage

if TYPE_CHECKING:
    from ecommerce_lakehouse_spark.engine import SparkDeltaTableEngine

__all__ = ["create_aws_platform", "create_engine", "create_local_platform"]

#: Environment variable naming the AWS platform's query service (read by the aws adapter).
QUERY_ENV = "LAKEHOUSE_QUERY"


def create_engine(storage: ObjectStorage, options: Mapping[str, str]) -> SparkDeltaTableEngine:
    """The Spark engine for a lake's storage (entry point ``spark``).

    Reuses the active Spark session (AWS Glue's) or starts a local one with the Delta jars
    of ``build/spark-jars`` (see :func:`ecommerce_lakehouse_spark.session.spark_session`).

    Args:
        storage: the lake's object storage (Spark reads and writes its URIs directly).
        options: adapter options; ``spark.*`` keys configure a new local session.

    Raises:
        ConfigurationError: no session exists and the Delta jars cannot be found.
    """
    from ecommerce_lakehouse_spark.engine import SparkDeltaTableEngine
    from ecommerce_lakehouse_spark.session import configure_object_store, spark_session

    session = spark_session(options)
    configure_object_store(session, storage.root_uri, storage.storage_options)
    return SparkDeltaTableEngine(session)


def create_local_platform(root: str, options: Mapping[str, str]) -> Platform:
    """The ``spark-local`` platform: local storage, catalogue and lock, Spark SQL queries.

    Raises:
        ConfigurationError: the root is not a local directory, or Spark cannot start.
    """
    from dataclasses import replace

    from ecommerce_lakehouse_local import create_platform
    from ecommerce_lakehouse_spark.query import SparkSqlQueryService
    from ecommerce_lakehouse_spark.session import spark_session

    local = create_platform(root, options)
    return replace(local, query=SparkSqlQueryService(local.storage, spark_session(options)))


def create_aws_platform(root: str, options: Mapping[str, str]) -> Platform:
    """The ``spark-aws`` platform: S3, Glue catalogue and S3 lock, Spark SQL queries.

    What the Glue job runs on: the validation SQL runs in the job's own Spark session over
    the Delta tables in S3, so the job needs neither DuckDB nor Athena. A ``query`` of
    ``athena`` or ``duckdb`` (option or ``LAKEHOUSE_QUERY``) is honoured instead.

    Raises:
        ConfigurationError: the root or an AWS setting is invalid (see the aws adapter),
            ``ecommerce-lakehouse-aws`` is not installed, or Spark cannot start.
    """
    try:
        from ecommerce_lakehouse_aws import container_for
    except ImportError:
        raise ConfigurationError(
            "an s3:// lake with the Spark engine needs ecommerce-lakehouse-aws "
            "(install ecommerce-lakehouse-spark[aws])"
        ) from None
    from ecommerce_lakehouse_spark.query import SparkSqlQueryService
    from ecommerce_lakehouse_spark.session import configure_object_store, spark_session

    named = options.get("query") or os.environ.get(QUERY_ENV, "")
    container = container_for(root, {**options, "query": named.strip().lower() or "spark"})
    storage = container.storage()
    if container.settings().query == "spark":
        session = spark_session(options)
        configure_object_store(session, storage.root_uri, storage.storage_options)
        query: QueryService = SparkSqlQueryService(storage, session)
    else:
        query = container.query()
    return Platform(
        storage=storage, catalogue=container.catalogue(), query=query, lock=container.lock()
    )
