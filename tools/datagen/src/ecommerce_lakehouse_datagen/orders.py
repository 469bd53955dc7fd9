"""Orders: one row per order of the timeline, and the faults injected into them.

Dirty orders get values that do not parse, blank keys, negative amounts, dates that contradict
their timestamp, duplicates, valid but unusual timestamp spellings, and late corrections in a
later file (a later timestamp and another amount; every third moves to another date).
"""

from __future__ import annotations

from typing import Final

import numpy as np
import polars as pl

from ecommerce_lakehouse.domain.schemas import ORDERS
from ecommerce_lakehouse_datagen._faults import (
    BAD_TIMESTAMP_TOKENS,
    Edits,
    emit_dirty,
    in_column,
    pick,
)
from ecommerce_lakehouse_datagen._format import (
    SECONDS_PER_DAY,
    Int64Array,
    dates,
    money,
    strings,
    timestamps,
)
from ecommerce_lakehouse_datagen._spec import Target
from ecommerce_lakehouse_datagen._timeline import Chunk, TimelineSpec

__all__ = ["SPEC"]

_FAULTS: Final = (
    "bad_types",
    "bad_timestamps",
    "blank_keys",
    "out_of_range",
    "date_mismatches",
    "in_file_duplicates",
    "cross_file_duplicates",
    "corrections",
    "timestamp_variants",
)
_BAD_TYPES: Final = (
    ("total_amount", "abc"),
    ("total_amount", "12,50"),
    ("total_amount", "N/A"),
    ("date", "2024-02-30"),
    ("total_amount", "1e999"),
)
_BAD_TIMESTAMPS: Final = in_column("order_timestamp", BAD_TIMESTAMP_TOKENS)
_BLANK_KEYS: Final = (
    ("order_id", ""),
    ("user_id", "  "),
    ("order_timestamp", ""),
    ("order_id", " "),
)
_EXTRA_COLUMN: Final = "coupon_code"
_COUPONS: Final = ("SPRING10", "FREESHIP", "WELCOME5")


def _write_chunk(target: Target, chunk: Chunk) -> None:
    frame = _frame(chunk)
    if target.run.dirty > 0:
        rng = target.fault_rng(chunk.index)
        coupons = pl.Series([None, *_COUPONS], dtype=pl.String).gather(
            rng.choice(len(_COUPONS) + 1, frame.height, p=[0.85, 0.05, 0.05, 0.05])
        )
        _damage(target, frame.with_columns(coupons.alias(_EXTRA_COLUMN)), chunk, rng)
    else:
        target.writer.write(frame)


def _frame(chunk: Chunk) -> pl.DataFrame:
    return pl.DataFrame(
        [
            strings(chunk.order_num).alias("order_num"),
            chunk.order_id_text.alias("order_id"),
            chunk.user_id_text.alias("user_id"),
            chunk.timestamp_text.alias("order_timestamp"),
            money(chunk.amount_cents).alias("total_amount"),
            chunk.date_text.alias("date"),
        ]
    )


def _damage(target: Target, frame: pl.DataFrame, chunk: Chunk, rng: np.random.Generator) -> None:
    picked = pick(rng, frame.height, target.run.dirty, _FAULTS)
    edits = Edits()
    edits.tokens(picked["bad_types"], _BAD_TYPES)
    edits.tokens(picked["bad_timestamps"], _BAD_TIMESTAMPS)
    edits.tokens(picked["blank_keys"], _BLANK_KEYS)
    rows = picked["out_of_range"]
    edits.put("total_amount", rows, money(-chunk.amount_cents[rows]))
    edits.shift_dates(picked["date_mismatches"], chunk.seconds, column="date")
    edits.respell_timestamps(picked["timestamp_variants"], chunk.seconds, column="order_timestamp")
    frame = edits.apply(frame)
    corrections, moves = _corrections(frame, picked["corrections"], chunk, rng)
    emit_dirty(target.writer, frame, picked, [corrections])
    target.count(picked)
    target.faults["partition_moves"] += moves


def _corrections(
    frame: pl.DataFrame, rows: Int64Array, chunk: Chunk, rng: np.random.Generator
) -> tuple[pl.DataFrame, int]:
    """Later versions of orders: a later timestamp and another amount; every third moves date."""
    seconds = chunk.seconds[rows]
    to_midnight = SECONDS_PER_DAY - seconds % SECONDS_PER_DAY
    move = (np.arange(rows.size) % 3 == 0) | (to_midnight < 2)
    same_day = 1 + (rng.random(rows.size) * (to_midnight - 1)).astype(np.int64)
    next_days = to_midnight + rng.integers(0, 2 * SECONDS_PER_DAY, rows.size)
    later = seconds + np.where(move, next_days, same_day)
    cents = chunk.amount_cents[rows]
    delta = rng.integers(1, 2000, rows.size)
    # Lower the amount when it stays positive, else raise it: the amount must differ and stay > 0.
    down = (rng.random(rows.size) < 0.5) & (cents > delta)
    amount = np.where(down, cents - delta, cents + delta)
    corrected = frame[rows].with_columns(
        timestamps(later).alias("order_timestamp"),
        money(amount).alias("total_amount"),
        dates(later // SECONDS_PER_DAY).alias("date"),
    )
    return corrected, int(move.sum())


SPEC: Final = TimelineSpec(
    schema=ORDERS,
    faults=_FAULTS,
    extra_columns=(_EXTRA_COLUMN,),
    fault_stream=12,
    write_chunk=_write_chunk,
    rows_per_order=1,
)
