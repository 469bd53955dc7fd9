"""Register every table of the lake in the catalogue."""

from __future__ import annotations

from typing import Any

from ecommerce_lakehouse.application.tables import audit_ref, curated_ref
from ecommerce_lakehouse.domain.audit import AUDIT_TABLES
from ecommerce_lakehouse.domain.schemas import SCHEMAS
from ecommerce_lakehouse.ports.catalogue import Catalogue, TableDefinition
from ecommerce_lakehouse.ports.engine import TableEngine
from ecommerce_lakehouse.ports.storage import ObjectStorage


class RegisterTables:
    """Create or update the catalogue entries of the curated and audit tables.

    Columns come from the stored Delta schema, so columns added by schema evolution are
    registered too.
    """

    def __init__(
        self, engine: TableEngine[Any], storage: ObjectStorage, catalogue: Catalogue
    ) -> None:
        self._engine = engine
        self._storage = storage
        self._catalogue = catalogue

    def __call__(self) -> list[TableDefinition]:
        """Register the tables; returns what was registered."""
        tables = [
            (curated_ref(self._storage, s), s.stored_columns, (s.partition_column,), "curated")
            for s in SCHEMAS
        ] + [(audit_ref(self._storage, a), a.columns, (), "audit") for a in AUDIT_TABLES]
        definitions = [
            TableDefinition(
                name=ref.name,
                location=ref.uri,
                columns=self._engine.columns(ref) or declared,
                partition_columns=partitions,
                kind=kind,
            )
            for ref, declared, partitions, kind in tables
        ]
        for definition in definitions:
            self._catalogue.register(definition)
        return definitions
