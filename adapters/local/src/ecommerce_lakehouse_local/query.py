"""SQL over the lake's Delta tables with DuckDB, reading them through delta-rs Arrow datasets."""

from __future__ import annotations

import re
from collections.abc import Mapping

import duckdb
import pyarrow as pa
from deltalake import DeltaTable
from deltalake.exceptions import DeltaError

from ecommerce_lakehouse.domain.audit import AUDIT_TABLES
from ecommerce_lakehouse.domain.errors import ConfigurationError, LakehouseError
from ecommerce_lakehouse.domain.types import Entity
from ecommerce_lakehouse.domain.zones import audit_key, table_key
from ecommerce_lakehouse.ports.storage import ObjectStorage

#: Every table ``sql`` can read, with its key in the lake.
TABLE_KEYS: Mapping[str, str] = {
    **{entity.value: table_key(entity.value) for entity in Entity},
    **{audit.name: audit_key(audit.name) for audit in AUDIT_TABLES},
}

_MISSING_TABLE = re.compile(r"Table with name (\w+) does not exist", re.IGNORECASE)


class DuckDbQueryService:
    """Runs SQL with DuckDB over the lake's curated and audit Delta tables.

    Every call opens a fresh in-memory DuckDB connection, so each query sees the tables'
    latest commits (or the versions pinned by ``as_of``) and nothing leaks between calls.
    The session time zone is UTC: ``CAST(timestamp_with_tz AS DATE)`` is the UTC date and
    timestamps come back as ``timestamp[us, tz=UTC]``, whatever the machine's zone.

    Args:
        storage: the lake's storage; tables are read at ``storage.uri(key)`` with
            ``storage.storage_options``.
    """

    def __init__(self, storage: ObjectStorage) -> None:
        self._storage = storage
        # Building a delta-rs dataset costs time per data file; a version never changes, so
        # datasets are reused for as long as the table stays at that version.
        self._datasets: dict[tuple[str, int], object] = {}

    def sql(self, query: str, *, as_of: Mapping[str, int] | None = None) -> pa.Table:
        """Run one query over ``products``, ``orders``, ``order_items`` and the audit tables.

        Args:
            query: DuckDB SQL.
            as_of: Delta versions to read, by table name (time travel); other tables are
                read at their latest version.

        Returns:
            The result as an Arrow table.

        Raises:
            ConfigurationError: ``as_of`` names an unknown table, a table not created yet
                or a version the table does not have.
            LakehouseError: the query failed; the message is DuckDB's, on one line.
        """
        pinned = dict(as_of or {})
        unknown = sorted(set(pinned) - set(TABLE_KEYS))
        if unknown:
            raise ConfigurationError(
                f"as_of names unknown table(s) {', '.join(unknown)} "
                f"(tables: {', '.join(sorted(TABLE_KEYS))})"
            )
        datasets: dict[str, object] = {}
        for name in TABLE_KEYS:
            version = pinned.get(name)
            if version is None and not _mentions(query, name):
                continue
            if self._exists(name):
                datasets[name] = self._dataset(name, version)
            elif version is not None:
                raise ConfigurationError(
                    f"cannot read table '{name}' as of version {version}: "
                    "the table has not been created yet"
                )
            # A table not created yet stays unregistered; _explain names it if queried.
        # No extension is ever downloaded: ICU (time zones) and parquet are built in.
        config: dict[str, str | bool | int | float | list[str]] = {
            "autoinstall_known_extensions": False
        }
        with duckdb.connect(":memory:", config=config) as connection:
            try:
                connection.execute("SET TimeZone = 'UTC'")
                for name, dataset in datasets.items():
                    connection.register(name, dataset)
                relation = connection.sql(query)
                return pa.table({}) if relation is None else relation.to_arrow_table()
            except duckdb.Error as error:
                raise LakehouseError(self._explain(error, datasets)) from None

    def _dataset(self, name: str, version: int | None) -> object:
        table = self._open(name, version)
        key = (name, table.version())
        if key not in self._datasets:
            self._datasets[key] = table.to_pyarrow_dataset()
        return self._datasets[key]

    def _exists(self, name: str) -> bool:
        return DeltaTable.is_deltatable(
            self._storage.uri(TABLE_KEYS[name]), storage_options=self._options()
        )

    def _open(self, name: str, version: int | None) -> DeltaTable:
        try:
            table = DeltaTable(self._storage.uri(TABLE_KEYS[name]), storage_options=self._options())
        except DeltaError as error:
            raise LakehouseError(f"cannot open table '{name}': {_first_line(error)}") from None
        if version is None:
            return table
        latest = table.version()
        if not 0 <= version <= latest:
            raise ConfigurationError(
                f"table '{name}' has no version {version} (versions 0 to {latest} exist)"
            )
        try:
            table.load_as_version(version)
        except DeltaError as error:
            # e.g. the log of an old version was cleaned up by a checkpoint and vacuum.
            raise ConfigurationError(
                f"cannot read table '{name}' as of version {version}: {_first_line(error)}"
            ) from None
        return table

    def _explain(self, error: duckdb.Error, registered: Mapping[str, object]) -> str:
        message = _first_line(error)
        missing = _MISSING_TABLE.search(message)
        if missing:
            name = missing.group(1).lower()
            if name in TABLE_KEYS and name not in registered:
                return (
                    f"table '{name}' has not been created yet "
                    f"(no Delta table at {self._storage.uri(TABLE_KEYS[name])})"
                )
        return message

    def _options(self) -> dict[str, str]:
        return dict(self._storage.storage_options)


def _mentions(query: str, name: str) -> bool:
    # Registering only the tables a query names keeps each call cheap; a false positive
    # (the name inside a string literal) only registers one table too many.
    return re.search(rf"\b{name}\b", query, re.IGNORECASE) is not None


def _first_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__
