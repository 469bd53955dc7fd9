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
        definitions: list[TableDefinition] = []
        for schema in SCHEMAS:
            ref = curated_ref(self._storage, schema)
            definitions.append(
                TableDefinition(
                    name=schema.name,
                    location=ref.uri,
                    columns=self._engine.columns(ref) or schema.stored_columns,
                    partition_columns=(schema.partition_column,),
                )
            )
        for audit in AUDIT_TABLES:
            ref = audit_ref(self._storage, audit)
            definitions.append(
                TableDefinition(
                    name=audit.name,
                    location=ref.uri,
                    columns=self._engine.columns(ref) or audit.columns,
                    kind="audit",
                )
            )
        for definition in definitions:
            self._catalogue.register(definition)
        return definitions
