"""The dependency-injector container of the local platform adapters."""

from __future__ import annotations

from pathlib import Path

from dependency_injector import containers, providers

from ecommerce_lakehouse.domain.zones import CATALOGUE_FILE, LOCK_KEY
from ecommerce_lakehouse_local.catalogue import SqliteCatalogue
from ecommerce_lakehouse_local.lock import FileLakeLock
from ecommerce_lakehouse_local.query import DuckDbQueryService
from ecommerce_lakehouse_local.storage import LocalObjectStorage


class LocalPlatformContainer(containers.DeclarativeContainer):
    """Storage, catalogue, SQL and lock of one local lake root.

    Configure ``config.root`` (the lake directory); every provider is a singleton, so one
    container serves one lake. The catalogue and lock files are addressed through the
    storage, so they stay inside the lake root. ``duckdb`` is the query service, named as
    the ``query`` setting names it.
    """

    config = providers.Configuration(strict=True)

    storage = providers.Singleton(LocalObjectStorage, root=config.root)
    catalogue = providers.Singleton(
        SqliteCatalogue, path=providers.Factory(Path, storage.provided.uri.call(CATALOGUE_FILE))
    )
    duckdb = providers.Singleton(DuckDbQueryService, storage=storage)
    lock = providers.Singleton(
        FileLakeLock, path=providers.Factory(Path, storage.provided.uri.call(LOCK_KEY))
    )
