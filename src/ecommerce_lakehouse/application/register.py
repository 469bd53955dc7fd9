"""Register every table of the lake in the catalogue."""

from __future__ import annotations

from typing import Any

from ecommerce_lakehouse.application.tables import lake_tables
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
        definitions = [
            TableDefinition(
                name=table.ref.name,
                location=table.ref.uri,
                columns=self._engine.columns(table.ref) or table.columns,
                partition_columns=table.partition_columns,
                kind=table.kind,
            )
            for table in lake_tables(self._storage)
        ]
        for definition in definitions:
            self._catalogue.register(definition)
        return definitions
