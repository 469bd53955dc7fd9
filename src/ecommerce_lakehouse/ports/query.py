"""Query port: SQL over the lake's tables (DuckDB, Spark SQL, Athena)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    # For type checkers only (import-linter allows no other import of it): the core runs
    # without pyarrow, but every query service returns an Arrow table.
    import pyarrow as pa


class TabularResult(Protocol):
    """The part of a result the core uses; a ``pyarrow.Table`` satisfies it."""

    @property
    def column_names(self) -> list[str]:
        """Result column names."""
        ...

    @property
    def num_rows(self) -> int:
        """Number of rows."""
        ...

    def to_pylist(self) -> list[dict[str, Any]]:
        """Rows as dicts."""
        ...

    def slice(self, offset: int = 0, length: int | None = None) -> TabularResult:
        """The rows from ``offset`` on, at most ``length`` of them (all when None)."""
        ...


class QueryService(Protocol):
    """Runs SQL over the catalogue's tables (one per schema) and the audit tables."""

    def sql(self, query: str, *, as_of: Mapping[str, int] | None = None) -> pa.Table:
        """Run one query; ``as_of`` pins tables to Delta versions (time travel).

        Returns:
            An Arrow table (the core itself uses only its :class:`TabularResult` part).

        Raises:
            LakehouseError: the query failed; the message is the engine's reason.
        """
        ...
