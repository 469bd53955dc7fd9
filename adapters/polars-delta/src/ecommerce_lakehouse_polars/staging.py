"""Staging one entity's batch: rules and quarantine, casts, derived dates, in-batch dedup."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import polars as pl

from ecommerce_lakehouse.domain.audit import RowCounts
from ecommerce_lakehouse.domain.schemas import (
    FILE_ORDINAL,
    INGESTED_AT,
    LINE_NUMBER,
    RAW_RECORD,
    RESCUED_DATA,
    RUN_ID,
    SOURCE_FILE,
    TableSchema,
)
from ecommerce_lakehouse.domain.types import ColumnType
from ecommerce_lakehouse.ports.engine import RunContext, StagedBatch
from ecommerce_lakehouse_polars.dtypes import UTC_TIMESTAMP, polars_dtype
from ecommerce_lakehouse_polars.expressions import (
    cast_column_name,
    cast_text,
    casts_needed,
    first_violation_index,
    timestamp_parts,
    violation_label,
)
from ecommerce_lakehouse_polars.reader import source_frame_schema

_VIOLATION = "__violation"
_KEEP = "__keep"


def utc_literal(moment: datetime) -> pl.Expr:
    """A ``Datetime("us", "UTC")`` literal of an instant (a naive datetime is taken as UTC)."""
    aware = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return pl.lit(aware, dtype=UTC_TIMESTAMP)


def stage_frames(
    frames: Sequence[pl.DataFrame], schema: TableSchema, run: RunContext
) -> StagedBatch[pl.DataFrame]:
    """Apply ``schema``'s rules, cast, derive dates and deduplicate the batch.

    Args:
        frames: source frames as :func:`reader.read_source_frame` returns them.
        schema: the table the batch feeds.
        run: the run the batch belongs to.

    Returns:
        The survivors (typed, one row per key), the quarantined rows in the ``quarantine``
        audit table's columns and the per-file counts of rows read, quarantined and dropped
        as in-batch duplicates.
    """
    base = source_frame_schema(schema)
    batch = pl.concat(list(frames), how="diagonal") if frames else pl.DataFrame(schema=base)
    extras = tuple(c for c in batch.columns if c not in base)
    position = [FILE_ORDINAL, LINE_NUMBER]

    casts = casts_needed(schema.rules, schema.types)

    def cast(column: str, column_type: ColumnType) -> pl.Expr:
        return pl.col(cast_column_name(column, column_type))

    def parts_name(column: str) -> str:
        return f"__parts__{column}"

    timestamps = [c for c, t in casts if t is ColumnType.TIMESTAMP]
    checked = (
        batch.lazy()
        .with_columns(timestamp_parts(pl.col(c)).alias(parts_name(c)) for c in timestamps)
        .with_columns(
            cast_text(
                pl.col(c), t, pl.col(parts_name(c)) if t is ColumnType.TIMESTAMP else None
            ).alias(cast_column_name(c, t))
            for c, t in casts
        )
        .drop(parts_name(c) for c in timestamps)
        .with_columns(first_violation_index(schema.rules, schema.types, cast).alias(_VIOLATION))
        .collect()
    )
    violation = pl.col(_VIOLATION)
    quarantine = (
        checked.filter(violation.is_not_null())
        .sort(position)
        .select(
            pl.lit(run.run_id, pl.String).alias("run_id"),
            pl.lit(schema.name, pl.String).alias("entity"),
            pl.col(SOURCE_FILE).alias("source_file"),
            pl.col(LINE_NUMBER).alias("line_number"),
            violation_label(violation, schema.rules, "rule").alias("rule"),
            violation_label(violation, schema.rules, "column").alias("column_name"),
            violation_label(violation, schema.rules, "reason").alias("reason"),
            pl.col(RAW_RECORD).alias("raw_record"),
            utc_literal(run.started_at).alias("quarantined_at"),
        )
    )

    valid = checked.filter(violation.is_null()).with_columns(
        cast(c.name, c.type).cast(polars_dtype(c.type)).alias(c.name)
        for c in schema.columns
        if c.type is not ColumnType.STRING
    )
    if schema.derived_date is not None:
        date_column, ts_column = schema.derived_date
        valid = valid.with_columns(
            pl.coalesce(pl.col(date_column), pl.col(ts_column).dt.date()).alias(date_column)
        )

    # The survivor of a key is the last row once sorted by (ordering, file, line).
    ordering = [schema.ordering_column] if schema.ordering_column else []
    key = schema.dedup.key
    key_expr = pl.col(key[0]) if len(key) == 1 else pl.struct(list(key))
    ranked = valid.sort([*ordering, *position], maintain_order=True).with_columns(
        key_expr.is_last_distinct().alias(_KEEP)
    )
    survivors = (
        ranked.filter(pl.col(_KEEP))
        .sort(position)
        .select(
            *schema.column_names,
            RESCUED_DATA,
            *extras,
            SOURCE_FILE,
            utc_literal(run.started_at).alias(INGESTED_AT),
            pl.lit(run.run_id, pl.String).alias(RUN_ID),
        )
    )

    read = _count_by_file(batch)
    quarantined = _count_by_file(quarantine, "source_file")
    duplicates = _count_by_file(ranked.filter(~pl.col(_KEEP)))
    counts = {
        file: RowCounts(
            rows_read=rows,
            quarantined=quarantined.get(file, 0),
            duplicates_in_batch=duplicates.get(file, 0),
        )
        for file, rows in read.items()
    }
    return StagedBatch(
        survivors=survivors, quarantine=quarantine, counts=counts, extra_columns=extras
    )


def _count_by_file(frame: pl.DataFrame, column: str = SOURCE_FILE) -> dict[str, int]:
    grouped = frame.group_by(column).len()
    return {str(k): int(n) for k, n in grouped.iter_rows()}
