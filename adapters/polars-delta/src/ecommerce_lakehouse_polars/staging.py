"""Staging one entity's batch: quarantine, in-batch dedup and per-file counts.

The rules and casts already ran per file in :func:`reader.read_source_frame`; staging
splits the checked rows into quarantine and valid rows and keeps one valid row per key.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import polars as pl

from ecommerce_lakehouse.domain.audit import RowCounts
from ecommerce_lakehouse.domain.schemas import (
    FILE_ORDINAL,
    INGESTED_AT,
    LINE_NUMBER,
    RAW_RECORD,
    RESCUED_DATA,
    RUN_ID,
    SOURCE_CHECKSUM,
    SOURCE_FILE,
    TableSchema,
)
from ecommerce_lakehouse.ports.engine import RunContext, StagedBatch
from ecommerce_lakehouse_polars.dtypes import UTC_TIMESTAMP
from ecommerce_lakehouse_polars.expressions import violation_label
from ecommerce_lakehouse_polars.reader import VIOLATION, source_frame_schema

# Capitalised like the reader's internal names, so no evolved column can clash.
_ROW = "_Row"


def utc_literal(moment: datetime) -> pl.Expr:
    """A ``Datetime("us", "UTC")`` literal of an instant (a naive datetime is taken as UTC)."""
    aware = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return pl.lit(aware, dtype=UTC_TIMESTAMP)


def stage_frames(
    frames: Sequence[pl.DataFrame], schema: TableSchema, run: RunContext
) -> StagedBatch[pl.DataFrame]:
    """Quarantine the rows that break a rule and deduplicate the batch.

    Args:
        frames: source frames as :func:`reader.read_source_frame` returns them.
        schema: the table the batch feeds.
        run: the run the batch belongs to.

    Returns:
        The survivors (typed, one row per key, in file and line order; ``_source_file`` is
        categorical), the quarantined rows in the ``quarantine`` audit table's columns and
        the per-file counts of rows read, quarantined and dropped as in-batch duplicates.
    """
    base = source_frame_schema(schema)
    # Each frame is one file in line order: in file order, so is the batch.
    ordered = sorted(frames, key=_ordinal)
    # A file's own constants (checksum, ordinal) stay out of the batch: concatenating them
    # would write each file's value on every row of it (400 MB at scale 1). Without
    # rechunking, the batch shares the source frames' memory.
    constants = (SOURCE_CHECKSUM, FILE_ORDINAL)
    # An empty batch is one frame of no rows, so that it has the columns.
    files = ordered or [pl.DataFrame(schema=base)]
    batch = pl.concat([f.drop(constants) for f in files], how="diagonal")
    extras = tuple(c for c in batch.columns if c not in base)
    violation = pl.col(VIOLATION)
    # Masks are Series taken from the batch, so they share its chunks: an expression filter
    # would rechunk (copy) every column first.
    broken = batch.get_column(VIOLATION).is_not_null()

    # The few broken rows are taken from each file, with its checksum.
    quarantine = pl.concat(
        [
            f.select(SOURCE_FILE, SOURCE_CHECKSUM, LINE_NUMBER, VIOLATION, RAW_RECORD).filter(
                f.get_column(VIOLATION).is_not_null()
            )
            for f in files
        ]
    ).select(
        pl.lit(run.run_id, pl.String).alias("run_id"),
        pl.lit(schema.name, pl.String).alias("entity"),
        pl.col(SOURCE_FILE).cast(pl.String).alias("source_file"),
        pl.col(LINE_NUMBER).alias("line_number"),
        violation_label(violation, schema.rules, "rule").alias("rule"),
        violation_label(violation, schema.rules, "column").alias("column_name"),
        violation_label(violation, schema.rules, "reason").alias("reason"),
        pl.col(RAW_RECORD).alias("raw_record"),
        utc_literal(run.started_at).alias("quarantined_at"),
        pl.col(SOURCE_CHECKSUM).cast(pl.String).alias("source_checksum"),
    )

    # The survivor of a key is the last valid row once sorted by (ordering, file, line):
    # the batch is in file and line order, so by (ordering, position in the batch). Only
    # rows whose key may occur more than once in the batch can lose: a superset (key
    # hashes repeated among valid and invalid rows alike) is enough, since just those few
    # rows are then ranked exactly, sorting only their key and sort columns.
    key = schema.dedup.key
    key_expr = pl.col(key[0]) if len(key) == 1 else pl.struct(list(key))
    # One chunk per file, not copied into one: only their sorted copy is contiguous.
    hashes = [f.select(_short_hash(key_expr)).to_series() for f in files]
    repeated = _maybe_repeated(pl.concat(hashes, rechunk=False))
    del hashes
    # Their positions, not a row index of the whole batch (4 bytes a row) filtered.
    rows = (repeated & ~broken).arg_true().alias(_ROW)
    del repeated
    dropped = (
        batch.select(SOURCE_FILE, *schema.dedup.ranked_columns)[rows]
        .with_columns(rows)
        .sort([*schema.dedup.ordering, _ROW])
        .filter(~key_expr.is_last_distinct())
        .select(_ROW, SOURCE_FILE)
    )
    keep = (~broken).scatter(dropped.get_column(_ROW), False)
    # A clean batch (nothing quarantined or dropped) is taken as is: a filter would copy
    # every column of it.
    valid = batch if keep.all() else batch.filter(keep)
    survivors = valid.select(
        *schema.column_names,
        RESCUED_DATA,
        *extras,
        SOURCE_FILE,
        utc_literal(run.started_at).alias(INGESTED_AT),
        pl.lit(run.run_id, pl.String).alias(RUN_ID),
    )

    # Each frame is one file (its key on every row): no need to group the batch.
    read: dict[str, int] = {}
    rescued: dict[str, str] = {}
    evolved: dict[str, tuple[str, ...]] = {}
    for frame in frames:
        if frame.height:
            file = str(_first(frame, SOURCE_FILE))
            read[file] = read.get(file, 0) + frame.height
            # A frame holds the evolved columns of its own file's header only.
            own = tuple(c for c in frame.columns if c not in base)
            if own:
                evolved[file] = own
            carried = frame.get_column(RESCUED_DATA)
            if carried.null_count() < carried.len():
                rescued[file] = str(carried.drop_nulls().item(0))
    quarantined = _count_by_file(quarantine, "source_file")
    duplicates = _count_by_file(dropped)
    counts = {
        file: RowCounts(
            rows_read=rows,
            quarantined=quarantined.get(file, 0),
            duplicates_in_batch=duplicates.get(file, 0),
        )
        for file, rows in read.items()
    }
    return StagedBatch(
        survivors=survivors,
        quarantine=quarantine,
        counts=counts,
        extra_columns=extras,
        rescued=rescued,
        evolved=evolved,
    )


def _ordinal(frame: pl.DataFrame) -> int:
    """A source frame's file ordinal (an empty frame's does not matter)."""
    return int(_first(frame, FILE_ORDINAL)) if frame.height else -1


def _first(frame: pl.DataFrame, column: str) -> Any:
    """The value of ``column`` in the first row of a non-empty frame.

    Read through an expression: the reader's per-file constants are scalar columns, and
    ``DataFrame.item`` would materialise one (the value on every row: 270 MB for the
    ordinals of scale 1's order_items).
    """
    return frame.select(pl.col(column).first()).item()


def _short_hash(key: pl.Expr) -> pl.Expr:
    """The low 32 bits of the key's hash.

    Half the memory of the whole hash (taken file by file, the whole one never exists for
    the batch). Its extra collisions (~1% of rows at 34M rows) only add rows to the superset
    that is ranked exactly.
    """
    return (key.hash() & 0xFFFF_FFFF).cast(pl.UInt32)


def _maybe_repeated(hashes: pl.Series) -> pl.Series:
    """Whether each hash occurs more than once (sorting beats hashing strings here)."""
    ordered = hashes.sort()
    # Compared with itself shifted by one row through two slices, which copy nothing.
    later = ordered.slice(1)
    twice = later.filter(later == ordered.slice(0, later.len()))
    del ordered, later
    return hashes.is_in(twice.implode())


def _count_by_file(frame: pl.DataFrame, column: str = SOURCE_FILE) -> dict[str, int]:
    grouped = frame.group_by(column).len()
    return {str(k): int(n) for k, n in grouped.iter_rows()}
