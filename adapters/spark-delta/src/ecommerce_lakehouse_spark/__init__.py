"""PySpark + Delta Lake table engine and Spark SQL query service.

Entry points: ``spark`` of ``ecommerce_lakehouse.engines`` and ``spark-local`` of
``ecommerce_lakehouse.platforms`` (the local platform with Spark SQL as its query service).
Importing this package is cheap: PySpark loads, and a session starts, with the engine.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from ecommerce_lakehouse.application.platform import Platform
from ecommerce_lakehouse.ports.storage import ObjectStorage

if TYPE_CHECKING:
    from ecommerce_lakehouse_spark.engine import SparkDeltaTableEngine

__all__ = ["create_engine", "create_local_platform"]


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
    from ecommerce_lakehouse_spark.session import spark_session

    return SparkDeltaTableEngine(spark_session(options))


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
