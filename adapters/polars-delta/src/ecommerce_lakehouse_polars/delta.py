"""Delta table I/O with delta-rs: creating, appending, schema and history."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import polars as pl

from ecommerce_lakehouse.domain.types import Column
from ecommerce_lakehouse.ports.engine import CommitRecord, operation_metrics, user_metadata
from ecommerce_lakehouse_polars.dtypes import arrow_schema, delta_columns, polars_dtype


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


def append(
    uri: str, frame: pl.DataFrame, columns: Sequence[Column], storage_options: Mapping[str, str]
) -> None:
    """Append ``frame``, conformed to ``columns``, to the table at ``uri`` (created if missing)."""
    from deltalake import write_deltalake

    create_table(uri, columns, None, storage_options)
    if frame.height == 0:
        return
    write_deltalake(
        uri,
        to_delta_arrow(frame, columns),
        mode="append",
        storage_options=dict(storage_options) or None,
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
