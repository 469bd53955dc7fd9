"""What a lake is opened with: a platform's and an engine's providers, and their bundle.

Adapter packages export dependency-injector containers; the core sees them only through
these protocols (a provider is a callable returning its object), so it composes a lake
without importing the DI framework. A third-party engine or platform registers a factory
returning such a container under an entry point (``ecommerce_lakehouse.engines``,
``ecommerce_lakehouse.platforms``). A query service that belongs to neither (a Trino
cluster, which reads a directory lake as well as an S3 one) registers its factory under
``ecommerce_lakehouse.query_services``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ecommerce_lakehouse.ports.catalogue import Catalogue
from ecommerce_lakehouse.ports.engine import TableEngine
from ecommerce_lakehouse.ports.lock import Lock
from ecommerce_lakehouse.ports.query import QueryService
from ecommerce_lakehouse.ports.storage import ObjectStorage
from ecommerce_lakehouse.settings import LakeSettings


@dataclass(frozen=True, slots=True, kw_only=True)
class Platform:
    """Storage, catalogue, SQL and lock of one lake root."""

    storage: ObjectStorage
    catalogue: Catalogue
    query: QueryService
    lock: Lock


class PlatformContainer(Protocol):
    """A platform's container: storage, catalogue and lock of one lake root.

    Its query services are further providers named as the ``query`` setting names them
    (``duckdb``, ``athena``); which one a lake uses is decided when the lake is composed.
    """

    storage: Callable[[], ObjectStorage]
    catalogue: Callable[[], Catalogue]
    lock: Callable[[], Lock]


class EngineContainer(Protocol):
    """An engine's container: the table engine, and its own SQL when it has one.

    ``query_services`` names the query services the engine provides itself (Spark SQL:
    ``("spark",)``), each a provider of the same name; the first is the default.
    ``shutdown_resources`` stops what the engine started (a Spark session it built).
    """

    engine: Callable[[], TableEngine[Any]]
    query_services: Callable[[], tuple[str, ...]]

    def shutdown_resources(self) -> Any:
        """Stop the resources the container started."""


#: ``factory(root, settings)`` of a platform, registered under ``ecommerce_lakehouse.platforms``.
PlatformFactory = Callable[[str, LakeSettings], PlatformContainer]
#: ``factory(settings, storage)`` of an engine, registered under ``ecommerce_lakehouse.engines``.
EngineFactory = Callable[[LakeSettings, ObjectStorage], EngineContainer]
#: ``factory(settings, storage)`` of a query service of its own (neither the platform's nor
#: the engine's), registered under ``ecommerce_lakehouse.query_services`` by the name the
#: ``query`` setting gives it (``trino``).
QueryServiceFactory = Callable[[LakeSettings, ObjectStorage], QueryService]
