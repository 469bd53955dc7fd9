"""PySpark + Delta Lake table engine and Spark SQL query service.

Entry point ``spark`` of ``ecommerce_lakehouse.engines``: :func:`engine_container`.
Importing this package is cheap: PySpark loads, and a session starts, with the engine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ecommerce_lakehouse.ports.storage import ObjectStorage
from ecommerce_lakehouse.settings import LakeSettings

if TYPE_CHECKING:
    from ecommerce_lakehouse_spark.containers import SparkEngineContainer

__all__ = ["engine_container"]


def engine_container(settings: LakeSettings, storage: ObjectStorage) -> SparkEngineContainer:
    """The Spark engine's container for a lake's storage (entry point ``spark``).

    Its session is AWS Glue's (or any ``spark-submit`` launcher's) when there is one, else
    a local one with the Delta jars of ``build/spark-jars``
    (:func:`ecommerce_lakehouse_spark.session.spark_session`); it starts when the engine
    or Spark SQL is first asked for.

    Args:
        settings: the lake's settings (``spark_master``, ``spark_driver_memory`` and
            ``spark_jars`` for a local session).
        storage: the lake's object storage (Spark reads and writes its URIs directly).
    """
    from ecommerce_lakehouse_spark.containers import SparkEngineContainer

    return SparkEngineContainer(settings=settings, storage=storage)
