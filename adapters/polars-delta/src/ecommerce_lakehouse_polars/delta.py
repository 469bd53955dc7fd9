"""Delta table I/O with delta-rs: creating, appending, schema and history."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import polars as pl

from ecommerce_lakehouse.domain.types import Column
from ecommerce_lakehouse.ports.engine import CommitRecord
from ecommerce_lakehouse_delta.commit_info import operation_metrics, user_metadata
from ecommerce_lakehouse_polars.dtypes import (
    arrow_schema,
    delta_columns,
    delta_type_name,
    polars_dtype,
)


def open_table(uri: str, storage_options: Mapping[str, str]) -> Any | None:
    """The ``DeltaTable`` at ``uri``, or None when there is none."""
    from deltalake import DeltaTable

    options = dict(storage_options) or None
    if not DeltaTable.is_deltatable(uri, storage_options=options):
        return None
    return DeltaTable(uri, storage_options=options)


def create_table(
    uri: str,
    columns: Sequence[Column],
    partition_by: str | None,
    storage_options: Mapping[str, str],
    name: str | None = None,
) -> Any:
    """Create an empty Delta table unless one exists; return the (new or existing) table.

    The table keeps the protocol Delta Lake 3.3 and Athena read (reader 1, writer 2): UTC
    timestamps only, no deletion vectors, no column mapping.
    """
    from deltalake import DeltaTable

    existing = open_table(uri, storage_options)
    if existing is not None:
        return existing
    return DeltaTable.create(
        uri,
        arrow_schema(columns),
        # "ignore" keeps a concurrent creator's table rather than failing.
        mode="ignore",
        partition_by=[partition_by] if partition_by else None,
        name=name,
        storage_options=dict(storage_options) or None,
    )


def conform(frame: pl.DataFrame, columns: Sequence[Column]) -> pl.DataFrame:
    """``frame`` with exactly ``columns``, in order and type (absent columns are null)."""
    return frame.select(
        (
            pl.col(c.name).cast(polars_dtype(c.type))
            if c.name in frame.columns
            else pl.lit(None, polars_dtype(c.type))
        ).alias(c.name)
        for c in columns
    )


def to_delta_arrow(frame: pl.DataFrame, columns: Sequence[Column]) -> Any:
    """``frame`` conformed to ``columns`` as a pyarrow table of the Delta schema's types.

    delta-rs writes the Arrow types it is given into the Parquet files; Polars exports text
    as ``string_view``/``large_string``, which readers filtering on statistics (pyarrow
    datasets) cannot compare with plain ``string`` literals, so data is cast first.
    """
    return conform(frame, columns).to_arrow().cast(arrow_schema(columns))


def delta_arrow_stream(
    frame: pl.DataFrame, columns: Sequence[Column], rows_per_batch: int = 256 * 1024
) -> Any:
    """``frame`` as :func:`to_delta_arrow` gives it, but as a stream of record batches.

    Each slice is converted only when the reader pulls it, so the Arrow copy of a large
    frame never exists whole (delta-rs streams a MERGE source).
    """
    import pyarrow as pa

    def batches() -> Iterator[Any]:
        for offset in range(0, frame.height, rows_per_batch):
            yield from to_delta_arrow(frame.slice(offset, rows_per_batch), columns).to_batches()

    return pa.RecordBatchReader.from_batches(arrow_schema(columns), batches())


def add_missing_columns(table: Any, columns: Sequence[Column]) -> None:
    """Append to ``table``'s schema the ``columns`` it lacks, as nullable columns.

    How an audit table written by an older version gains a column the contract appended
    (``quarantine.source_checksum``); existing rows read it as null.
    """
    from deltalake import Field
    from deltalake.schema import PrimitiveType

    present = {field.name for field in table.schema().fields}
    missing = [c for c in columns if c.name not in present]
    if missing:
        table.alter.add_columns(
            [Field(c.name, PrimitiveType(delta_type_name(c.type)), nullable=True) for c in missing]
        )


def append(
    uri: str,
    frame: pl.DataFrame,
    columns: Sequence[Column],
    storage_options: Mapping[str, str],
    unique_key: Sequence[str] = (),
) -> None:
    """Append ``frame``, conformed to ``columns``, to the table at ``uri`` (created if missing).

    Args:
        uri: the table.
        frame: the rows.
        columns: the table's columns; those an existing table lacks are added first.
        storage_options: object-store options.
        unique_key: when given, rows whose key is already stored are skipped (an
            insert-only MERGE), so writing the same rows again adds nothing.
    """
    from deltalake import write_deltalake

    table = create_table(uri, columns, None, storage_options)
    add_missing_columns(table, columns)
    if frame.height == 0:
        return
    data = to_delta_arrow(frame, columns)
    if not unique_key:
        write_deltalake(uri, data, mode="append", storage_options=dict(storage_options) or None)
        return
    # Opened again: the table object predates the columns just added.
    table = open_table(uri, storage_options)
    assert table is not None  # created above
    predicate = " AND ".join(f"t.{k} = s.{k}" for k in unique_key)
    (
        table.merge(data, predicate=predicate, source_alias="s", target_alias="t")
        .when_not_matched_insert_all()
        .execute()
    )


def records_frame(
    records: Sequence[Mapping[str, object]], columns: Sequence[Column]
) -> pl.DataFrame:
    """A frame of plain records with exactly ``columns`` (missing keys are null)."""
    schema = pl.Schema({c.name: polars_dtype(c.type) for c in columns})
    rows = [{c.name: record.get(c.name) for c in columns} for record in records]
    return pl.DataFrame(rows, schema=schema, orient="row") if rows else pl.DataFrame(schema=schema)


def table_columns(uri: str, storage_options: Mapping[str, str]) -> tuple[Column, ...]:
    """The stored columns of a table (empty when it does not exist)."""
    table = open_table(uri, storage_options)
    return () if table is None else delta_columns(table.schema())


def table_history(
    uri: str, storage_options: Mapping[str, str], limit: int | None
) -> list[CommitRecord]:
    """Commits of a table, newest first (empty when it does not exist)."""
    table = open_table(uri, storage_options)
    if table is None:
        return []
    entries: list[dict[str, Any]] = table.history(limit)
    records = [_commit_record(entry) for entry in entries]
    return sorted(records, key=lambda r: r.version, reverse=True)


def _commit_record(entry: Mapping[str, Any]) -> CommitRecord:
    millis = entry.get("timestamp")
    operation = str(entry.get("operation", ""))
    return CommitRecord(
        version=int(entry["version"]),
        timestamp=(
            datetime.fromtimestamp(millis / 1000, tz=UTC) if isinstance(millis, int) else None
        ),
        operation=operation,
        metadata=user_metadata(entry),
        metrics=operation_metrics(operation, entry.get("operationMetrics") or {}),
    )


def compact_table(uri: str, storage_options: Mapping[str, str], min_files: int) -> int:
    """OPTIMIZE-compact the table at ``uri`` when it has at least ``min_files`` data files.

    Returns:
        The number of files removed (0 when the table was left alone or does not exist).
    """
    table = open_table(uri, storage_options)
    if table is None or len(table.file_uris()) < min_files:
        return 0
    metrics = table.optimize.compact()
    return int(metrics.get("numFilesRemoved", 0))
