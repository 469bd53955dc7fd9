"""Where each table lives in a lake, and making sure every table exists."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from ecommerce_lakehouse.domain.audit import AUDIT_TABLES, AuditTable
from ecommerce_lakehouse.domain.errors import (
    ConfigurationError,
    LakehouseError,
    LockTimeout,
    TableUnreadable,
    describe_error,
)
from ecommerce_lakehouse.domain.schemas import SCHEMAS, TableSchema
from ecommerce_lakehouse.domain.types import Column
from ecommerce_lakehouse.domain.zones import audit_key, table_key
from ecommerce_lakehouse.ports.engine import TableEngine, TableRef
from ecommerce_lakehouse.ports.query import QueryService
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


@dataclass(frozen=True, slots=True, kw_only=True)
class LakeTable:
    """One of the lake's tables with what the catalogue and ``lakehouse tables`` show of it.

    Attributes:
        kind: ``curated`` (a catalogue entity) or ``audit``.
        ref: where the Delta table is.
        columns: its declared columns.
        partition_columns: its partition columns (none for audit tables).
    """

    kind: str
    ref: TableRef
    columns: tuple[Column, ...]
    partition_columns: tuple[str, ...]


def lake_tables(storage: ObjectStorage) -> list[LakeTable]:
    """Every table of the lake, curated first, in :data:`TABLE_NAMES` order."""
    return [
        *(
            LakeTable(
                kind="curated",
                ref=curated_ref(storage, s),
                columns=s.stored_columns,
                partition_columns=(s.partition_column,),
            )
            for s in SCHEMAS
        ),
        *(
            LakeTable(
                kind="audit", ref=audit_ref(storage, a), columns=a.columns, partition_columns=()
            )
            for a in AUDIT_TABLES
        ),
    ]


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


@contextmanager
def naming_the_table(ref: TableRef) -> Iterator[None]:
    """Errors of an engine's work on one table name the table (one line, for an operator).

    A table whose ``_delta_log`` is corrupt fails every command that opens it; without its
    name, the operator of a lake of six tables would not know which one to look at.

    Raises:
        TableUnreadable: the engine could not open the table.
        LakehouseError: any other error but a configuration error or a lock timeout.
    """
    try:
        yield
    except (ConfigurationError, LockTimeout):
        raise
    except TableUnreadable as error:
        raise TableUnreadable(f"table '{ref.name}': {error}") from error
    except Exception as error:
        raise LakehouseError(f"table '{ref.name}': {describe_error(error)}") from error


class EnsureTables:
    """Create every curated and audit table that does not exist yet (empty, partitioned)."""

    def __init__(self, engine: TableEngine[Any], storage: ObjectStorage) -> None:
        self._engine = engine
        self._storage = storage

    def __call__(self, metadata: Mapping[str, str]) -> frozenset[str]:
        """Create the missing tables; ``metadata`` (the run's id) goes with each commit.

        Returns:
            The names of the tables this call created: they hold no rows yet, so a caller
            need not read them.
        """
        created = {
            schema.name
            for schema in SCHEMAS
            if self._engine.ensure_table(
                curated_ref(self._storage, schema),
                schema.stored_columns,
                schema.partition_column,
                metadata=metadata,
            )
        }
        created.update(
            audit.name
            for audit in AUDIT_TABLES
            if self._engine.ensure_table(
                audit_ref(self._storage, audit), audit.columns, None, metadata=metadata
            )
        )
        return frozenset(created)


class CompactAuditTables:
    """Compact the append-only audit tables once they hold many small files.

    Every run appends a file or two to each audit table; left alone, reading them (and the
    validation SQL) slows down run after run. Time travel is kept: nothing is vacuumed.
    """

    def __init__(self, engine: TableEngine[Any], storage: ObjectStorage) -> None:
        self._engine = engine
        self._storage = storage

    def __call__(self, min_files: int, metadata: Mapping[str, str]) -> dict[str, int]:
        """Compact each audit table with at least ``min_files`` files; files removed by name.

        ``metadata`` goes with each commit (the run's id and command).
        """
        removed = {
            audit.name: self._engine.compact(
                audit_ref(self._storage, audit), min_files=min_files, metadata=metadata
            )
            for audit in AUDIT_TABLES
        }
        return {name: count for name, count in removed.items() if count}


@dataclass(frozen=True, slots=True, kw_only=True)
class TableInfo:
    """One of the lake's tables, as ``lakehouse tables`` lists it.

    Attributes:
        name: the name SQL uses.
        kind: ``curated`` (a catalogue entity) or ``audit``.
        location: the Delta table's URI.
        version: its latest Delta version; None when no run has created it yet.
        rows: its rows at that version; None when it does not exist.
    """

    name: str
    kind: str
    location: str
    version: int | None
    rows: int | None


class DescribeTables:
    """Every table of the lake, curated first: where it is, its version and its rows."""

    def __init__(
        self, engine: TableEngine[Any], storage: ObjectStorage, query: QueryService
    ) -> None:
        self._engine = engine
        self._storage = storage
        self._query = query

    def __call__(self) -> list[TableInfo]:
        """The tables in :data:`TABLE_NAMES` order; rows are counted in one query."""
        tables = lake_tables(self._storage)
        versions: dict[str, int] = {}
        for table in tables:
            with naming_the_table(table.ref):
                newest = self._engine.history(table.ref, 1)
            if newest:
                versions[table.ref.name] = newest[0].version
        rows: dict[str, Any] = {}
        if versions:
            # Table names are the catalogue's own identifiers, never text from data.
            counts = ", ".join(f"(SELECT COUNT(*) FROM {name}) AS {name}" for name in versions)
            rows = self._query.sql(f"SELECT {counts}").to_pylist()[0]
        return [
            TableInfo(
                name=table.ref.name,
                kind=table.kind,
                location=table.ref.uri,
                version=versions.get(table.ref.name),
                rows=int(rows[table.ref.name]) if table.ref.name in rows else None,
            )
            for table in tables
        ]
