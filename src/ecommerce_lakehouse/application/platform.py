"""The bundle of platform adapters a lake root selects, and how adapters are found."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

from ecommerce_lakehouse.domain.errors import ConfigurationError
from ecommerce_lakehouse.ports.catalogue import Catalogue
from ecommerce_lakehouse.ports.engine import TableEngine
from ecommerce_lakehouse.ports.lock import Lock
from ecommerce_lakehouse.ports.query import QueryService
from ecommerce_lakehouse.ports.storage import ObjectStorage

ENGINE_GROUP = "ecommerce_lakehouse.engines"
PLATFORM_GROUP = "ecommerce_lakehouse.platforms"


@dataclass(frozen=True, slots=True, kw_only=True)
class Platform:
    """Storage, catalogue, SQL and lock of one lake root."""

    storage: ObjectStorage
    catalogue: Catalogue
    query: QueryService
    lock: Lock


#: ``create_engine(storage, options)``, registered under ``ecommerce_lakehouse.engines``.
EngineFactory = Callable[[ObjectStorage, Mapping[str, str]], TableEngine[Any]]
#: ``create_platform(root, options)``, registered under ``ecommerce_lakehouse.platforms``.
PlatformFactory = Callable[[str, Mapping[str, str]], Platform]


def platform_name_for(root: str, engine: str = "polars") -> str:
    """The platform a lake root and engine select (docs/contract.md#engines-and-platforms).

    The engine's own platform for the root's kind when one is installed (``<engine>-aws``
    for an ``s3://`` root, ``<engine>-local`` for a directory: ``spark-aws`` and
    ``spark-local`` use Spark SQL as the query service), else ``aws`` or ``local``.
    """
    kind = "aws" if root.startswith("s3://") else "local"
    own = f"{engine}-{kind}"
    return own if own in {ep.name for ep in entry_points(group=PLATFORM_GROUP)} else kind


def _load(group: str, name: str) -> Any:
    found = {ep.name: ep for ep in entry_points(group=group)}
    if name not in found:
        available = ", ".join(sorted(found)) or "none installed"
        kind = "engine" if group == ENGINE_GROUP else "platform"
        raise ConfigurationError(f"unknown {kind} '{name}' (available: {available})")
    try:
        return found[name].load()
    except (ImportError, AttributeError) as error:
        raise ConfigurationError(
            f"the '{name}' adapter is installed but cannot be imported: {error}"
        ) from error


def load_engine_factory(name: str) -> EngineFactory:
    """The factory of the named engine, imported only now (engines load lazily)."""
    factory: EngineFactory = _load(ENGINE_GROUP, name)
    return factory


def load_platform_factory(name: str) -> PlatformFactory:
    """The factory of the named platform, imported only now."""
    factory: PlatformFactory = _load(PLATFORM_GROUP, name)
    return factory
