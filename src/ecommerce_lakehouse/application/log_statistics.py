"""What a table's Delta log statistics decide of the validation checks, without reading rows.

See docs/contract.md#validation.

Every Delta writer records, per data file, its row count and per column its null count, its
least and its greatest value (:class:`~ecommerce_lakehouse.ports.engine.FileStatistics`).
From them alone:

- a table's row count is the sum of its files' counts;
- a null check finds no row when no file counts a null in its columns (a partition
  column's nulls are the rows of its null partition), and counts them exactly for one
  column;
- a derived date is consistent in every row when each file's timestamps lie within the
  file's partition date;
- the values a run wrote in a column (its keys, its foreign keys) lie between the least
  and the greatest value of the files holding its rows (a file holds a run's rows only
  if the run id lies between its least and greatest ``_run_id``): a key check then reads
  only the stored rows between them.

Anything the statistics do not decide (a file without them, a null among several
columns, a file whose timestamps straddle two dates) is left to the check's SQL, which
gives the same count: deciding from statistics changes how fast, never what, a check finds.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from ecommerce_lakehouse.domain.schemas import RUN_ID, TableSchema
from ecommerce_lakehouse.domain.validation import Check, CheckKind, RowCount, literal_ok, row_count
from ecommerce_lakehouse.ports.engine import STATISTICS_STRING_PREFIX, FileStatistics


def decided(check: Check, schema: TableSchema, files: Sequence[FileStatistics]) -> int | None:
    """The count ``check``'s observed SQL would return, when the statistics decide it.

    A scoped ``ROW`` check (one reading only the runs' rows) is decided when the whole
    table holds no offending row. None when the statistics do not decide the count.
    """
    if check.kind is CheckKind.COUNT:
        return total_rows(files) if row_count(check) == RowCount(schema.name) else None
    if check.kind is not CheckKind.ROW:
        return None
    found: int | None = None
    if check.null_columns:
        found = _nulls(check.null_columns, schema, files)
    elif check.derived is not None:
        found = 0 if _dates_consistent(*check.derived, schema, files) else None
    if found is None or (check.within is not None and found != 0):
        return None
    return found


def total_rows(files: Sequence[FileStatistics]) -> int | None:
    """The rows of the table: the sum of its files' row counts (None if one is unknown)."""
    counts = [f.rows for f in files]
    return None if any(c is None for c in counts) else sum(c for c in counts if c is not None)


def _nulls(
    columns: Sequence[str], schema: TableSchema, files: Sequence[FileStatistics]
) -> int | None:
    """Rows with a null in ``columns``: 0 when no file counts one, exact for one column."""
    per_column = []
    for column in columns:
        total = 0
        for file in files:
            if column == schema.partition_column:
                if file.rows is None:
                    return None
                total += file.rows if file.partition.get(column) is None else 0
            elif column in file.null_counts:
                total += file.null_counts[column]
            else:
                return None
        per_column.append(total)
    if not any(per_column):
        return 0
    return per_column[0] if len(per_column) == 1 else None


def _dates_consistent(
    date_column: str, ts_column: str, schema: TableSchema, files: Sequence[FileStatistics]
) -> bool:
    """Whether every row's date (the file's partition) is its timestamp's UTC date."""
    if date_column != schema.partition_column:
        return False
    for file in files:
        if file.rows is None:
            return False
        if file.rows == 0:
            continue
        day = file.partition.get(date_column)
        if day is None:
            return False  # rows with a null date
        if _only_nulls(file, ts_column):
            continue  # no timestamp: no row whose date differs from it
        low, high = file.minimum.get(ts_column), file.maximum.get(ts_column)
        if not isinstance(low, datetime) or not isinstance(high, datetime):
            return False
        if not _utc_day(low) == _utc_day(high) == day:
            return False
    return True


def _only_nulls(file: FileStatistics, column: str) -> bool:
    """Whether every row of the file is null in ``column`` (as its statistics count)."""
    return file.rows is not None and file.null_counts.get(column) == file.rows


def _utc_day(instant: datetime) -> str | None:
    if instant.tzinfo is None:
        return None
    return instant.astimezone(UTC).date().isoformat()


def value_range(
    column: str, run_ids: Sequence[str], files: Sequence[FileStatistics]
) -> tuple[str, str] | None:
    """Bounds of every value of a string ``column`` in the rows ``run_ids`` wrote.

    The least and greatest value of the files that may hold the runs' rows. None when the
    statistics cannot bound them: a file without ``_run_id`` or ``column`` statistics, a
    bound that may have been cut (:data:`STATISTICS_STRING_PREFIX`) or that is no plain
    SQL literal, or no file holding the runs' rows.
    """
    lows: list[str] = []
    highs: list[str] = []
    for file in files:
        if _only_nulls(file, RUN_ID):
            continue  # rows no run stamped
        first, last = file.minimum.get(RUN_ID), file.maximum.get(RUN_ID)
        if not isinstance(first, str) or not isinstance(last, str):
            return None
        if not any(first <= run <= last for run in run_ids):
            continue
        if _only_nulls(file, column):
            continue  # no value to bound
        low, high = file.minimum.get(column), file.maximum.get(column)
        if not isinstance(low, str) or not isinstance(high, str):
            return None
        lows.append(low)
        highs.append(high)
    if not lows:
        return None
    bounds = min(lows), max(highs)
    if any(len(b.encode()) >= STATISTICS_STRING_PREFIX or not literal_ok(b) for b in bounds):
        return None
    return bounds
