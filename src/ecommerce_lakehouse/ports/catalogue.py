"""Catalogue port: where tables are registered for SQL engines (embedded SQLite, Glue)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ecommerce_lakehouse.domain.types import Column


@dataclass(frozen=True, slots=True, kw_only=True)
class TableDefinition:
    """A table as the catalogue knows it."""

    name: str
    location: str
    columns: tuple[Column, ...]
    partition_columns: tuple[str, ...] = ()
    kind: str = "curated"
    table_format: str = "delta"

    def __post_init__(self) -> None:
        names = {c.name for c in self.columns}
        missing = [p for p in self.partition_columns if p not in names]
        if missing:
            raise ValueError(f"{self.name}: partition columns {missing} are not columns")


class Catalogue(Protocol):
    """Registers tables so SQL engines can find them."""

    def register(self, table: TableDefinition) -> None:
        """Create or update a table's registration (idempotent)."""
        ...

    def get(self, name: str) -> TableDefinition | None:
        """A registered table, or None."""
        ...

    def list(self) -> list[TableDefinition]:
        """Every registered table, sorted by name."""
        ...
