"""The dependency-injector container of the Spark engine and its Spark SQL."""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING

from dependency_injector import containers, providers, resources

from ecommerce_lakehouse.ports.storage import ObjectStorage
from ecommerce_lakehouse.settings import LakeSettings
from ecommerce_lakehouse_spark.engine import SparkDeltaTableEngine
from ecommerce_lakehouse_spark.query import SparkSqlQueryService
from ecommerce_lakehouse_spark.session import LAUNCHER_ENV, configure_object_store, spark_session

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


class SparkSessionResource(resources.Resource["SparkSession"]):
    """The Spark session of one opened lake: started once, stopped with the last lake.

    A process has one Spark session, which every open lake shares. ``init`` takes the
    running session (Glue's, a notebook's, an earlier lake's) or builds a local one, and
    points it at the lake's object store. ``shutdown`` - called by the container's
    ``shutdown_resources()``, i.e. ``Lake.close()``, never by garbage collection - stops
    the session when the last open lake closes, and only if a lake started it: a session
    that was running before is its owner's to stop.
    """

    # Process-wide, like the session itself: how many open lakes use it, and whether one
    # of them started it.
    _lock = threading.Lock()
    _open_lakes = 0
    _started_by_a_lake = False

    def init(self, settings: LakeSettings, storage: ObjectStorage) -> SparkSession:
        """Start (or join) the session and point it at the lake's object store."""
        from pyspark.sql import SparkSession

        cls = SparkSessionResource
        with cls._lock:
            launched = bool(os.environ.get(LAUNCHER_ENV))
            running = SparkSession.getActiveSession() is not None or launched
            session = spark_session(settings)
            if not running:
                cls._started_by_a_lake = True
            cls._open_lakes += 1
        configure_object_store(session, storage.root_uri, storage.storage_options)
        return session

    def shutdown(self, resource: SparkSession | None) -> None:
        """Leave the session; the last lake out stops it if a lake started it."""
        cls = SparkSessionResource
        with cls._lock:
            cls._open_lakes -= 1
            if resource is not None and cls._open_lakes == 0 and cls._started_by_a_lake:
                cls._started_by_a_lake = False
                resource.stop()


class SparkEngineContainer(containers.DeclarativeContainer):
    """The Spark engine of one lake and the Spark SQL query service, on one session.

    Provide ``settings`` (:class:`LakeSettings`) and ``storage`` (the lake's
    :class:`ObjectStorage`). ``session`` is a ``Resource``: started once, when the engine
    or ``spark`` is first asked for, and stopped by ``shutdown_resources()`` when the last
    open lake closes, if a lake started it (:class:`SparkSessionResource`). ``spark`` is
    the engine's own query service, the lake's default when the ``query`` setting names
    none.
    """

    query_services = providers.Object(("spark",))

    settings = providers.Dependency(instance_of=LakeSettings)
    storage: providers.Dependency[ObjectStorage] = providers.Dependency()

    session = providers.Resource(SparkSessionResource, settings=settings, storage=storage)
    engine = providers.Singleton(SparkDeltaTableEngine, session)
    spark = providers.Singleton(SparkSqlQueryService, storage, session)
