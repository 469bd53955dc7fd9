"""The generator spec of every entity of the core catalogue, keyed by entity name.

An entity's spec is ``SPEC`` in the module named after the entity (``products.py`` for
``products``), found from ``ecommerce_lakehouse.domain.schemas.SCHEMAS``: adding an entity
means adding its schema there and its spec module here. A :class:`~._spec.ReferenceSpec`
entity is written whole before the order timeline; a :class:`~._timeline.TimelineSpec` entity
writes its rows from each chunk of orders.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Mapping
from types import MappingProxyType

from ecommerce_lakehouse.domain.schemas import SCHEMAS
from ecommerce_lakehouse_datagen._rng import SHARED_STREAMS
from ecommerce_lakehouse_datagen._spec import EntitySpec
from ecommerce_lakehouse_datagen.summary import FaultCounts


@functools.cache
def specs() -> Mapping[str, EntitySpec]:
    """Every entity's spec, keyed by entity name, in ingestion order.

    Raises:
        ModuleNotFoundError: an entity of the catalogue has no spec module.
        TypeError: a spec module's ``SPEC`` is not a spec for its entity's schema.
        ValueError: specs are inconsistent (stream ids, fault kinds, extra columns).
    """
    found: dict[str, EntitySpec] = {}
    for schema in SCHEMAS:
        module = importlib.import_module(f".{schema.name}", __package__)
        spec = getattr(module, "SPEC", None)
        if not isinstance(spec, EntitySpec) or spec.schema is not schema:
            raise TypeError(f"{module.__name__}.SPEC is not a generator spec for {schema.name}")
        _check(spec)
        found[schema.name] = spec
    streams = [spec.fault_stream for spec in found.values()]
    if len(set(streams)) != len(streams) or SHARED_STREAMS.intersection(streams):
        raise ValueError(f"fault streams must be unique and not shared ones, got {streams}")
    return MappingProxyType(found)


def _check(spec: EntitySpec) -> None:
    name = spec.schema.name
    unknown = set(spec.faults) - set(FaultCounts.kinds())
    if unknown:
        raise ValueError(f"{name}: unknown fault kinds {sorted(unknown)}")
    clashing = set(spec.extra_columns) & set(spec.schema.column_names)
    if clashing:
        raise ValueError(f"{name}: extra columns {sorted(clashing)} are in the schema")
