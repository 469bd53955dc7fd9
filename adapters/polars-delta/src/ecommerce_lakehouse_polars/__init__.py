"""Polars + delta-rs table engine (entry point ``polars`` of ``ecommerce_lakehouse.engines``).

Importing this package is cheap: Polars, delta-rs and pyarrow load with the engine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ecommerce_lakehouse.ports.storage import ObjectStorage
from ecommerce_lakehouse.settings import LakeSettings

if TYPE_CHECKING:
    from ecommerce_lakehouse_polars.containers import PolarsEngineContainer
    from ecommerce_lakehouse_polars.engine import PolarsDeltaTableEngine

__all__ = ["PolarsDeltaTableEngine", "PolarsEngineContainer", "engine_container"]


def engine_container(settings: LakeSettings, storage: ObjectStorage) -> PolarsEngineContainer:
    """The Polars engine's container for a lake's storage (entry point ``polars``).

    Args:
        settings: the lake's settings; the engine needs none of them.
        storage: the lake's object storage; its ``storage_options`` (credentials, endpoint)
            are what Polars and delta-rs are given.
    """
    from ecommerce_lakehouse_polars.containers import PolarsEngineContainer

    return PolarsEngineContainer(storage_options=dict(storage.storage_options))


def __getattr__(name: str) -> Any:
    # Lazy exports keep ``import ecommerce_lakehouse_polars`` free of Polars and delta-rs.
    if name == "PolarsDeltaTableEngine":
        from ecommerce_lakehouse_polars.engine import PolarsDeltaTableEngine

        return PolarsDeltaTableEngine
    if name == "PolarsEngineContainer":
        from ecommerce_lakehouse_polars.containers import PolarsEngineContainer

        return PolarsEngineContainer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
