"""Delta table I/O with delta-rs: creating, appending, schema and history."""

from __future__ import annotations

import itertools
import json
import math
import os
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import quote, unquote, urlparse

import polars as pl

from ecommerce_lakehouse.domain.decisions import partition_text
from ecommerce_lakehouse.domain.errors import LakehouseError, TableUnreadable, describe_error
from ecommerce_lakehouse.domain.types import Column, ColumnType
from ecommerce_lakehouse.domain.values import HIVE_DEFAULT_PARTITION
from ecommerce_lakehouse.ports.engine import CommitRecord, FileStatistics
from ecommerce_lakehouse_delta.commit_info import operation_metrics, user_metadata
from ecommerce_lakehouse_polars.dtypes import (
    arrow_schema,
    delta_columns,
    delta_type_name,
    polars_dtype,
)


def commit_properties(metadata: Mapping[str, str] | None) -> Any | None:
    """delta-rs ``CommitProperties`` storing ``metadata`` with a commit (None without any)."""
    from deltalake import CommitProperties

    return CommitProperties(custom_metadata=dict(metadata)) if metadata else None


def open_table(uri: str, storage_options: Mapping[str, str]) -> Any | None:
    """The ``DeltaTable`` at ``uri``, or None when there is none.

    Raises:
        TableUnreadable: there is a ``_delta_log`` but its commits cannot be read.
    """
    from deltalake import DeltaTable
    from deltalake.exceptions import DeltaError

    options = dict(storage_options) or None
    if not DeltaTable.is_deltatable(uri, storage_options=options):
        return None
    try:
        return DeltaTable(uri, storage_options=options)
    except DeltaError as error:
        raise TableUnreadable.of(uri, describe_error(error)) from error


def create_table(
    uri: str,
    columns: Sequence[Column],
    partition_by: str | None,
    storage_options: Mapping[str, str],
    name: str | None = None,
    metadata: Mapping[str, str] | None = None,
) -> Any:
    """Create an empty Delta table unless one exists; return the (new or existing) table.

    The table keeps the protocol Delta Lake 3.3 and Athena read (reader 1, writer 2): UTC
    timestamps only, no deletion vectors, no column mapping. ``metadata`` is stored with the
    CREATE commit.
    """
    existing = open_table(uri, storage_options)
    if existing is not None:
        return existing
    return _create(uri, columns, partition_by, storage_options, name, metadata)


def _create(
    uri: str,
    columns: Sequence[Column],
    partition_by: str | None,
    storage_options: Mapping[str, str],
    name: str | None,
    metadata: Mapping[str, str] | None,
) -> Any:
    """:func:`create_table` once no table was found at ``uri``."""
    from deltalake import DeltaTable

    return DeltaTable.create(
        uri,
        arrow_schema(columns),
        # "ignore" keeps a concurrent creator's table rather than failing.
        mode="ignore",
        partition_by=[partition_by] if partition_by else None,
        name=name,
        storage_options=dict(storage_options) or None,
        commit_properties=commit_properties(metadata),
    )


def ensure_table(
    uri: str,
    columns: Sequence[Column],
    partition_by: str | None,
    storage_options: Mapping[str, str],
    name: str | None = None,
    metadata: Mapping[str, str] | None = None,
) -> tuple[Any, bool]:
    """The table at ``uri``, created or given the columns it lacks; whether this call created it.

    A missing table is created (:func:`create_table`); an existing one gains the ``columns``
    it lacks (:func:`add_missing_columns`).
    """
    existing = open_table(uri, storage_options)
    if existing is not None:
        add_missing_columns(existing, columns, metadata)
        return existing, False
    return _create(uri, columns, partition_by, storage_options, name, metadata), True


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


#: Rows of one data file at most: a larger partition is written as several files, so no
#: more rows than this are ever copied at once (a partition of ``order_items`` at scale 1
#: holds about 400k rows).
ROWS_PER_FILE = 2_000_000
#: Text statistics longer than this many UTF-8 bytes are cut, as delta-rs cuts them (the
#: Parquet writer's statistics truncation; Delta Lake on Spark cuts at 32 characters).
STATS_TEXT_BYTES = 64
_ROW = "_Row"


@dataclass(frozen=True, slots=True)
class DataFile:
    """A Parquet data file written into a table's directory, not yet committed.

    Attributes:
        action: its Delta ``add`` action (relative path, size, partition values, stats).
        rows: the rows its Parquet footer holds.
    """

    action: Any
    rows: int


def local_root(table_uri: str) -> str | None:
    """The local directory of a table URI, None for an object store."""
    parsed = urlparse(table_uri)
    if parsed.scheme == "file":
        return unquote(parsed.path)
    return table_uri if parsed.scheme == "" else None


#: Data files written at once. Polars' writer keeps about one core busy per file: two
#: files at a time write a scale-1 first load ~15-20% faster on 2 cores.
WRITE_THREADS = min(4, os.cpu_count() or 1)
#: One data file to write: its directory, partition values, number in the directory and
#: rows (a slice of the frame, or the row indices to gather).
_FileTask = tuple[str, dict[str, str | None], int, pl.DataFrame | pl.Series]


def write_data_files(
    root: str,
    frame: pl.DataFrame,
    columns: Sequence[Column],
    partition_column: str | None,
    rows_per_file: int = ROWS_PER_FILE,
) -> list[DataFile]:
    """Write ``frame``, conformed to ``columns``, as Parquet data files of the table at ``root``.

    Polars' own (multi-threaded) writer writes one file per partition value (more when a
    partition holds more than ``rows_per_file`` rows), each in ``frame``'s row order, where
    delta-rs would put it: ``<column>=<escaped value>/part-…snappy.parquet``, the null
    partition under ``__HIVE_DEFAULT_PARTITION__``. The partition column is not stored in
    the files. Up to :data:`WRITE_THREADS` files are written at once, each copying only its
    own rows. Each file's ``add`` action carries the statistics delta-rs would record
    (``numRecords``, ``minValues``, ``maxValues``, ``nullCount``), with ``numRecords`` read
    back from the file's footer. Nothing is committed: a file no commit adds is never read.

    Args:
        root: the table's local directory.
        frame: the rows.
        columns: the table's columns (the Delta schema's types).
        partition_column: the partition column, if any.
        rows_per_file: the most rows of one file.

    Returns:
        The files written, by partition value (null first) and then in row order.
    """
    import pyarrow.parquet as pq
    from deltalake.transaction import AddAction

    types = {c.name: c.type for c in columns}
    data_columns = [c for c in columns if c.name != partition_column]
    # Each file's rows are conformed when it is written, not the whole frame first: a cast
    # there copies whole columns (the categorical ``_source_file`` becomes one file name
    # per row: 1.9 GB at scale 1).
    data = frame.select(c.name for c in data_columns if c.name in frame.columns)
    partitions = [c for c in columns if c.name == partition_column]
    groups = _partition_rows(conform(frame, partitions) if partitions else frame, partition_column)
    if partition_column is not None:
        groups.sort(
            key=lambda g: (g[0] is not None, _partition_value(g[0], types[partition_column]) or "")
        )
    tasks: list[_FileTask] = []
    for value, rows in groups:
        directory = ""
        partition_values: dict[str, str | None] = {}
        if partition_column is not None:
            text = _partition_value(value, types[partition_column])
            partition_values[partition_column] = text
            escaped = HIVE_DEFAULT_PARTITION if text is None else quote(text, safe="")
            directory = f"{partition_column}={escaped}/"
            os.makedirs(os.path.join(root, directory), exist_ok=True)
        height = rows[1] if isinstance(rows, tuple) else rows.len()
        for number, offset in enumerate(range(0, height, rows_per_file)):
            # A slice copies nothing; a gather is only listed here and made by its writer.
            part = (
                data.slice(rows[0] + offset, min(rows_per_file, height - offset))
                if isinstance(rows, tuple)
                else rows.slice(offset, rows_per_file)
            )
            tasks.append((directory, partition_values, number, part))

    def write(task: _FileTask) -> DataFile:
        directory, partition_values, number, rows = task
        part = conform(data.gather(rows) if isinstance(rows, pl.Series) else rows, data_columns)
        relative = f"{directory}part-{number:05d}-{uuid.uuid4()}-c000.snappy.parquet"
        path = os.path.join(root, relative)
        part.write_parquet(path, compression="snappy", statistics=True)
        written = int(pq.read_metadata(path).num_rows)
        action = AddAction(
            path=relative,
            size=os.path.getsize(path),
            partition_values=partition_values,
            modification_time=int(time.time() * 1000),
            data_change=True,
            stats=file_stats(part, types, written),
        )
        return DataFile(action=action, rows=written)

    if len(tasks) <= 1 or WRITE_THREADS == 1:
        return [write(task) for task in tasks]
    with ThreadPoolExecutor(WRITE_THREADS, thread_name_prefix="lakehouse-write") as pool:
        # In task order; a failed write raises here once the files in flight are done.
        return list(pool.map(write, tasks))


def _partition_rows(
    frame: pl.DataFrame, partition_column: str | None
) -> list[tuple[Any, tuple[int, int] | pl.Series]]:
    """Each partition value of ``frame`` with its rows: ``(offset, length)`` or row indices.

    A batch usually arrives in date order (one file per day or so), so each partition is
    one run of rows, sliced without a copy. Otherwise the rows of each value are listed
    (in row order) and each file's rows are gathered when it is written, one at a time.
    """
    if partition_column is None:
        return [(None, (0, frame.height))]
    column = frame.get_column(partition_column)
    runs = column.rle()
    values = runs.struct.field("value")
    if values.n_unique() == runs.len():
        lengths = runs.struct.field("len").to_list()
        offsets = [0, *itertools.accumulate(lengths)]
        return [
            (v, (offsets[i], n))
            for i, (v, n) in enumerate(zip(values.to_list(), lengths, strict=True))
        ]
    indexed = (
        frame.select(partition_column)
        .with_row_index(_ROW)
        .group_by(partition_column, maintain_order=True)
        .agg(pl.col(_ROW))
    )
    row_lists = indexed.get_column(_ROW)
    return [(v, row_lists[i]) for i, v in enumerate(indexed.get_column(partition_column).to_list())]


def file_stats(part: pl.DataFrame, types: Mapping[str, ColumnType], rows: int) -> str:
    """The Delta statistics JSON of a data file holding ``part`` (``rows`` rows).

    As delta-rs writes them: no minimum or maximum for a column of nulls (and NaN) only,
    NaN left out of a double column's bounds; text cut to 64 bytes (:func:`_text_bound`);
    timestamps in UTC to the millisecond, as ISO-8601 with ``Z``; dates as ``YYYY-MM-DD``.
    """
    exprs: list[pl.Expr] = []
    for name in part.columns:
        # NaN bounds nothing: the bounds are those of the other values, as in Parquet.
        values = (
            pl.col(name).filter(pl.col(name).is_not_nan())
            if types[name] is ColumnType.DOUBLE
            else pl.col(name)
        )
        exprs += [
            pl.col(name).null_count().alias(f"n{name}"),
            values.min().alias(f"l{name}"),
            values.max().alias(f"h{name}"),
        ]
    summary = part.select(exprs).row(0, named=True) if exprs else {}
    low: dict[str, Any] = {}
    high: dict[str, Any] = {}
    nulls: dict[str, int] = {}
    for name in part.columns:
        nulls[name] = int(summary[f"n{name}"])
        for prefix, bounds, is_max in (("l", low, False), ("h", high, True)):
            stat = _stat_value(summary[f"{prefix}{name}"], types[name], is_max)
            if stat is not None:
                bounds[name] = stat
    stats = {"numRecords": rows, "minValues": low, "maxValues": high, "nullCount": nulls}
    return json.dumps(stats, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _stat_value(value: Any, column_type: ColumnType, is_max: bool) -> Any:
    if value is None:
        return None
    match column_type:
        case ColumnType.STRING:
            return _text_bound(str(value), is_max)
        case ColumnType.TIMESTAMP:
            # Cut to the millisecond; a fraction is written whenever the value has one.
            instant = value.astimezone(UTC).replace(tzinfo=None)
            fraction = "milliseconds" if instant.microsecond else "seconds"
            return instant.isoformat(timespec=fraction) + "Z"
        case ColumnType.DATE:
            return value.isoformat()
        case ColumnType.DOUBLE:
            number = float(value)
            return number if math.isfinite(number) else None
        case ColumnType.BOOLEAN:
            return bool(value)
        case _:
            return int(value)


def _text_bound(text: str, is_max: bool) -> str:
    """A text statistic as delta-rs records it: cut to 64 bytes at a character boundary.

    A cut maximum has its last character that can be raised without changing its UTF-8
    width raised (the characters after it dropped), so it still bounds the values; when no
    character can be, the maximum is kept whole.
    """
    data = text.encode()
    if len(data) <= STATS_TEXT_BYTES:
        return text
    # A character cut in the middle is dropped.
    prefix = data[:STATS_TEXT_BYTES].decode(errors="ignore")
    if not is_max:
        return prefix
    for index in range(len(prefix) - 1, -1, -1):
        code = ord(prefix[index]) + 1
        if code <= 0x10FFFF and not 0xD800 <= code <= 0xDFFF:
            raised = chr(code)
            if len(raised.encode()) == len(prefix[index].encode()):
                return prefix[:index] + raised
    return text


def _partition_value(value: Any, column_type: ColumnType) -> str | None:
    """A partition value in the Delta log's text form (None for the null partition)."""
    if value is None:
        return None
    match column_type:
        case ColumnType.BOOLEAN:
            return "true" if value else "false"
        case ColumnType.DATE:
            return value.isoformat() if isinstance(value, date) else str(value)
        case ColumnType.TIMESTAMP:
            return str(value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f"))
        case _:
            return str(value)


def add_missing_columns(
    table: Any, columns: Sequence[Column], metadata: Mapping[str, str] | None = None
) -> None:
    """Append to ``table``'s schema the ``columns`` it lacks, as nullable columns.

    How an audit table written by an older version gains a column the contract appended
    (``quarantine.source_checksum``); existing rows read it as null. ``metadata`` is stored
    with the commit.
    """
    from deltalake import Field
    from deltalake.schema import PrimitiveType

    present = {field.name for field in table.schema().fields}
    missing = [c for c in columns if c.name not in present]
    if missing:
        table.alter.add_columns(
            [Field(c.name, PrimitiveType(delta_type_name(c.type)), nullable=True) for c in missing],
            commit_properties=commit_properties(metadata),
        )


def append(
    uri: str,
    frame: pl.DataFrame,
    columns: Sequence[Column],
    storage_options: Mapping[str, str],
    unique_key: Sequence[str] = (),
    metadata: Mapping[str, str] | None = None,
) -> None:
    """Append ``frame``, conformed to ``columns``, to the table at ``uri`` (created if missing).

    Args:
        uri: the table.
        frame: the rows.
        columns: the table's columns; those an existing table lacks are added first.
        storage_options: object-store options.
        unique_key: when given, rows whose key is already stored are skipped (an
            insert-only MERGE), so writing the same rows again adds nothing.
        metadata: stored with each commit the append makes (the writer's run id).
    """
    from deltalake import write_deltalake

    table, _ = ensure_table(uri, columns, None, storage_options, metadata=metadata)
    if frame.height == 0:
        return
    data = to_delta_arrow(frame, columns)
    properties = commit_properties(metadata)
    if not unique_key:
        write_deltalake(
            uri,
            data,
            mode="append",
            storage_options=dict(storage_options) or None,
            commit_properties=properties,
        )
        return
    # Opened again: the table object predates the columns just added.
    table = open_table(uri, storage_options)
    assert table is not None  # created above
    predicate = " AND ".join(f"t.{k} = s.{k}" for k in unique_key)
    (
        table.merge(
            data,
            predicate=predicate,
            source_alias="s",
            target_alias="t",
            commit_properties=properties,
        )
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


def compact_table(
    uri: str,
    storage_options: Mapping[str, str],
    min_files: int,
    metadata: Mapping[str, str] | None = None,
    partitions: Sequence[str | None] | None = None,
) -> int:
    """OPTIMIZE-compact the table at ``uri`` when it has at least ``min_files`` data files.

    With ``partitions`` (partition values as text, None for the null partition), only those
    of them holding ``min_files`` data files or more each are compacted (the table is
    partitioned by one column). delta-rs selects the null partition with ``= ''``, which its
    ``in`` list cannot hold: that partition, when crowded, is compacted in a commit of its own.

    Returns:
        The number of files removed (0 when the table was left alone or does not exist).
    """
    table = open_table(uri, storage_options)
    if table is None:
        return 0
    properties = commit_properties(metadata)
    if partitions is None:
        if len(table.file_uris()) < min_files:
            return 0
        return int(table.optimize.compact(commit_properties=properties)["numFilesRemoved"])
    (column,) = table.metadata().partition_columns
    crowded = crowded_partitions(table, column, partitions, min_files)
    values = [v for v in crowded if v is not None]
    filters: list[list[tuple[str, str, str | list[str]]]] = (
        [[(column, "in", values)]] if values else []
    )
    if None in crowded:
        filters.append([(column, "=", "")])
    removed = 0
    for conjunction in filters:
        metrics = table.optimize.compact(
            partition_filters=conjunction, commit_properties=properties
        )
        removed += int(metrics["numFilesRemoved"])
    return removed


def crowded_partitions(
    table: Any, column: str, partitions: Sequence[str | None], min_files: int
) -> list[str | None]:
    """Those of ``partitions`` (as text) whose current version has ``min_files`` files or more.

    Counted from the log's ``add`` actions: no data file is read.
    """
    actions = pl.DataFrame(table.get_add_actions(flatten=True)).select(f"partition.{column}")
    files = {
        partition_text(value): count
        for value, count in actions.group_by(f"partition.{column}").len().iter_rows()
    }
    return [p for p in dict.fromkeys(partitions) if files.get(p, 0) >= min_files]


def file_statistics(
    uri: str, storage_options: Mapping[str, str]
) -> tuple[FileStatistics, ...] | None:
    """The log's statistics of every data file of the table's latest version.

    From the ``add`` actions (no data file is read). None when there is no table, or when
    its protocol allows deletion vectors (a file's ``numRecords`` would count rows the
    vector deletes).
    """
    table = open_table(uri, storage_options)
    if table is None:
        return None
    protocol = table.protocol()
    features = {*(protocol.reader_features or ()), *(protocol.writer_features or ())}
    if "deletionVectors" in features:
        return None
    actions = pl.DataFrame(table.get_add_actions(flatten=True))
    files = []
    for action in actions.iter_rows(named=True):
        fields: dict[str, dict[str, Any]] = {
            "partition": {},
            "null_count": {},
            "min": {},
            "max": {},
        }
        for name, value in action.items():
            kind, dot, column = name.partition(".")
            if dot and kind in fields and (value is not None or kind == "partition"):
                fields[kind][column] = value
        rows = action.get("num_records")
        files.append(
            FileStatistics(
                rows=None if rows is None else int(rows),
                partition={k: partition_text(v) for k, v in fields["partition"].items()},
                null_counts={k: int(v) for k, v in fields["null_count"].items()},
                minimum=fields["min"],
                maximum=fields["max"],
            )
        )
    return tuple(files)


def vacuum_table(uri: str, storage_options: Mapping[str, str], retain_hours: int) -> int:
    """VACUUM the table at ``uri``, keeping the files of the last ``retain_hours`` hours.

    The caller enforces the retention floor; delta-rs's own (its table's
    ``deletedFileRetentionDuration``, a week by default) is not applied twice.

    Returns:
        The number of files deleted (0 when the table does not exist).
    """
    from deltalake.fs import DeltaStorageHandler
    from pyarrow.fs import FileType

    table = open_table(uri, storage_options)
    if table is None:
        return 0
    # delta-rs lists every expired tombstone, also files an earlier VACUUM deleted: only
    # those still stored count (and only then is there anything to do).
    candidates = table.vacuum(
        retention_hours=retain_hours, dry_run=True, enforce_retention_duration=False
    )
    root = str(table.table_uri).rstrip("/")
    local = local_root(root)
    relative = [
        c.removeprefix(f"{local}/") if local else c.removeprefix(f"{root}/") for c in candidates
    ]
    handler = DeltaStorageHandler(root, dict(storage_options))
    stored = [i for i in handler.get_file_info(relative) if i.type is not FileType.NotFound]
    if stored:
        table.vacuum(retention_hours=retain_hours, dry_run=False, enforce_retention_duration=False)
    return len(stored)


def restore_table(
    uri: str, storage_options: Mapping[str, str], version: int, metadata: Mapping[str, str]
) -> int:
    """Delta RESTORE of the table at ``uri`` to ``version``; returns the version committed.

    Raises:
        LakehouseError: there is no table, or delta-rs cannot restore that version (its
            files were vacuumed, say).
    """
    from deltalake.exceptions import DeltaError

    table = open_table(uri, storage_options)
    if table is None:
        raise LakehouseError(f"no Delta table at {uri}")
    try:
        table.restore(version, commit_properties=commit_properties(metadata))
    except DeltaError as error:
        raise LakehouseError(f"cannot restore {uri} to version {version}: {error}") from error
    return int(table.version())
