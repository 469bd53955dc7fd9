"""Polars + delta-rs table engine (entry point ``polars`` of ``ecommerce_lakehouse.engines``).

Importing this package is cheap: Polars, delta-rs and pyarrow load with the engine.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ecommerce_lakehouse.ports.storage import ObjectStorage

if TYPE_CHECKING:
    from ecommerce_lakehouse_polars.containers import PolarsEngineContainer
    from ecommerce_lakehouse_polars.engine import PolarsDeltaTableEngine

__all__ = ["PolarsDeltaTableEngine", "PolarsEngineContainer", "create_engine"]


def create_engine(storage: ObjectStorage, options: Mapping[str, str]) -> PolarsDeltaTableEngine:
    """The Polars engine for a lake's storage (entry point ``polars``).

    Args:
        storage: the lake's object storage; its ``storage_options`` (credentials, endpoint)
            are what Polars and delta-rs are given.
        options: adapter options of the run; the platform has already folded what storage
            needs into ``storage.storage_options``, so the engine needs none of them.

    Returns:
        A ready engine, built by :class:`PolarsEngineContainer`.
    """
    from ecommerce_lakehouse_polars.containers import PolarsEngineContainer

    container = PolarsEngineContainer(storage_options=dict(storage.storage_options))
    engine: PolarsDeltaTableEngine = container.engine()
    return engine


def __getattr__(name: str) -> Any:
    # Lazy exports keep ``import ecommerce_lakehouse_polars`` free of Polars and delta-rs.
    if name == "PolarsDeltaTableEngine":
        from ecommerce_lakehouse_polars.engine import PolarsDeltaTableEngine

        return PolarsDeltaTableEngine
    if name == "PolarsEngineContainer":
        from ecommerce_lakehouse_polars.containers import PolarsEngineContainer

        return PolarsEngineContainer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
