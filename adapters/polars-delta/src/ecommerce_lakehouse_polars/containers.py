"""The dependency-injector container of the Polars + delta-rs engine."""

from __future__ import annotations

from dependency_injector import containers, providers

from ecommerce_lakehouse_polars.engine import PolarsDeltaTableEngine


class PolarsEngineContainer(containers.DeclarativeContainer):
    """Builds one :class:`PolarsDeltaTableEngine` per container.

    Provide ``storage_options`` (the lake storage's object-store options, an empty mapping
    for local paths); ``engine`` is a singleton. The engine has no SQL of its own: the
    lake's query service comes from its platform.
    """

    query_services = providers.Object(())

    storage_options = providers.Dependency(instance_of=dict, default={})

    engine = providers.Singleton(PolarsDeltaTableEngine, storage_options=storage_options)
