"""The embedded catalogue: table registrations in a SQLite file in the lake root."""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

from ecommerce_lakehouse.domain.types import Column, ColumnType
from ecommerce_lakehouse.ports.catalogue import TableDefinition

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tables (
    name TEXT PRIMARY KEY,
    location TEXT NOT NULL,
    columns TEXT NOT NULL,
    partition_columns TEXT NOT NULL,
    kind TEXT NOT NULL,
    table_format TEXT NOT NULL,
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
)
"""

_UPSERT = """
INSERT INTO tables (name, location, columns, partition_columns, kind, table_format)
VALUES (:name, :location, :columns, :partition_columns, :kind, :table_format)
ON CONFLICT (name) DO UPDATE SET
    location = excluded.location,
    columns = excluded.columns,
    partition_columns = excluded.partition_columns,
    kind = excluded.kind,
    table_format = excluded.table_format,
    updated_at = excluded.updated_at
"""

_SELECT = "SELECT name, location, columns, partition_columns, kind, table_format FROM tables"


class SqliteCatalogue:
    """Registers tables in a SQLite file (``<lake root>/_catalogue.sqlite``).

    Each call opens its own connection and transaction, so several processes can share the
    file; a writer waits up to ``timeout_seconds`` for another one to finish.

    Args:
        path: the SQLite file; it and its folder are created on the first registration.
        timeout_seconds: how long to wait for a concurrent writer.
    """

    def __init__(self, path: str | os.PathLike[str], *, timeout_seconds: float = 30.0) -> None:
        self._path = Path(path)
        self._timeout = timeout_seconds

    @property
    def path(self) -> Path:
        """The SQLite file."""
        return self._path

    def register(self, table: TableDefinition) -> None:
        """Create or replace a table's registration."""
        self._path.parent.mkdir(parents=True, exist_ok=True)
        row = {
            "name": table.name,
            "location": table.location,
            "columns": json.dumps(
                [
                    {"name": c.name, "type": c.type.value, "nullable": c.nullable}
                    for c in table.columns
                ]
            ),
            "partition_columns": json.dumps(list(table.partition_columns)),
            "kind": table.kind,
            "table_format": table.table_format,
        }
        with self._connect() as connection:
            connection.execute(_UPSERT, row)

    def get(self, name: str) -> TableDefinition | None:
        """A registered table, or None."""
        if not self._path.exists():
            return None  # reading must not create the catalogue file
        with self._connect() as connection:
            found = connection.execute(f"{_SELECT} WHERE name = ?", (name,)).fetchone()
        return None if found is None else _definition(found)

    def list(self) -> list[TableDefinition]:
        """Every registered table, sorted by name."""
        if not self._path.exists():
            return []
        with self._connect() as connection:
            rows = connection.execute(f"{_SELECT} ORDER BY name").fetchall()
        return [_definition(row) for row in rows]

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        connection = sqlite3.connect(self._path, timeout=self._timeout)
        # ``with connection`` commits on success and rolls back on error; closing() closes.
        with closing(connection), connection:
            connection.execute(_SCHEMA)
            yield connection


def _definition(row: tuple[Any, ...]) -> TableDefinition:
    name, location, columns, partition_columns, kind, table_format = row
    return TableDefinition(
        name=name,
        location=location,
        columns=tuple(
            Column(name=c["name"], type=ColumnType(c["type"]), nullable=bool(c["nullable"]))
            for c in json.loads(columns)
        ),
        partition_columns=tuple(json.loads(partition_columns)),
        kind=kind,
        table_format=table_format,
    )
