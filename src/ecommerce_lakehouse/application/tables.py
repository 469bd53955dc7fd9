"""Where each table lives in a lake, and making sure every table exists."""

from __future__ import annotations

from typing import Any

from ecommerce_lakehouse.domain.audit import AUDIT_TABLES, AuditTable
from ecommerce_lakehouse.domain.errors import ConfigurationError
from ecommerce_lakehouse.domain.schemas import SCHEMAS, TableSchema
from ecommerce_lakehouse.domain.zones import audit_key, table_key
from ecommerce_lakehouse.ports.engine import TableEngine, TableRef
from ecommerce_lakehouse.ports.storage import ObjectStorage

#: Every table a user can query, curated first.
TABLE_NAMES: tuple[str, ...] = (*(s.name for s in SCHEMAS), *(a.name for a in AUDIT_TABLES))


def curated_ref(storage: ObjectStorage, schema: TableSchema) -> TableRef:
    """The Delta table of a curated schema."""
    return TableRef(
        name=schema.name,
        uri=storage.uri(table_key(schema.name)),
        storage_options=dict(storage.storage_options),
    )


def audit_ref(storage: ObjectStorage, audit: AuditTable) -> TableRef:
    """The Delta table of an audit table."""
    return TableRef(
        name=audit.name,
        uri=storage.uri(audit_key(audit.name)),
        storage_options=dict(storage.storage_options),
    )


def table_ref(storage: ObjectStorage, name: str) -> TableRef:
    """The Delta table of any table name a user may give.

    Raises:
        ConfigurationError: the name is not one of the lake's tables.
    """
    for schema in SCHEMAS:
        if schema.name == name:
            return curated_ref(storage, schema)
    for audit in AUDIT_TABLES:
        if audit.name == name:
            return audit_ref(storage, audit)
    raise ConfigurationError(f"unknown table '{name}': expected one of {', '.join(TABLE_NAMES)}")


class EnsureTables:
    """Create every curated and audit table that does not exist yet (empty, partitioned)."""

    def __init__(self, engine: TableEngine[Any], storage: ObjectStorage) -> None:
        self._engine = engine
        self._storage = storage

    def __call__(self) -> None:
        """Create the missing tables."""
        for schema in SCHEMAS:
            self._engine.ensure_table(
                curated_ref(self._storage, schema), schema.stored_columns, schema.partition_column
            )
        for audit in AUDIT_TABLES:
            self._engine.ensure_table(audit_ref(self._storage, audit), audit.columns, None)


class CompactAuditTables:
    """Compact the append-only audit tables once they hold many small files.

    Every run appends a file or two to each audit table; left alone, reading them (and the
    validation SQL) slows down run after run. Time travel is kept: nothing is vacuumed.
    """

    def __init__(self, engine: TableEngine[Any], storage: ObjectStorage) -> None:
        self._engine = engine
        self._storage = storage

    def __call__(self, min_files: int) -> dict[str, int]:
        """Compact each audit table with at least ``min_files`` files; files removed by name."""
        removed = {
            audit.name: self._engine.compact(audit_ref(self._storage, audit), min_files=min_files)
            for audit in AUDIT_TABLES
        }
        return {name: count for name, count in removed.items() if count}
