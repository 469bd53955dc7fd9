"""Order items: the items of every order of the timeline, and the faults injected into them.

Dirty items get values that do not parse, blank keys, out-of-range numbers, bad booleans,
dates that contradict their timestamp, duplicates, valid but unusual timestamp spellings, and
orphans: items whose order is in no orders file.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import polars as pl

from ecommerce_lakehouse.domain.schemas import ORDER_ITEMS
from ecommerce_lakehouse_datagen._faults import (
    BAD_TIMESTAMP_TOKENS,
    Edits,
    emit_dirty,
    in_column,
    pick,
)
from ecommerce_lakehouse_datagen._format import strings
from ecommerce_lakehouse_datagen._spec import Target
from ecommerce_lakehouse_datagen._timeline import Chunk, TimelineSpec, order_count

__all__ = ["SPEC"]

_FAULTS: Final = (
    "bad_types",
    "bad_timestamps",
    "blank_keys",
    "out_of_range",
    "bad_booleans",
    "date_mismatches",
    "in_file_duplicates",
    "cross_file_duplicates",
    "orphans",
    "timestamp_variants",
)
_BAD_TYPES: Final = (
    ("add_to_cart_order", "x"),
    ("days_since_prior_order", "seven"),
    ("add_to_cart_order", "1.5"),
    ("date", "31/01/2024"),
    ("days_since_prior_order", "99999999999"),
)
_BAD_TIMESTAMPS: Final = in_column("order_timestamp", BAD_TIMESTAMP_TOKENS)
_BLANK_KEYS: Final = (
    ("id", ""),
    ("order_id", " "),
    ("product_id", ""),
    ("user_id", "  "),
    ("order_timestamp", ""),
)
_OUT_OF_RANGE: Final = (
    ("days_since_prior_order", "400"),
    ("days_since_prior_order", "-1"),
    ("add_to_cart_order", "0"),
    ("days_since_prior_order", "366"),
    ("add_to_cart_order", "-3"),
)
_BAD_BOOLEANS: Final = (("reordered", "yes"), ("reordered", "2"), ("reordered", "Y"))
_EXTRA_COLUMN: Final = "unit_price"
# An item's id is its order's id and its position in the cart.
_ITEM_ID: Final = pl.concat_str([pl.col("order_id"), pl.lit("-"), pl.col("add_to_cart_order")])


def _write_chunk(target: Target, chunk: Chunk) -> None:
    frame = _frame(chunk)
    if target.run.dirty > 0:
        prices = chunk.catalogue.price_text.gather(chunk.product_id - 1)
        _damage(
            target,
            frame.with_columns(prices.alias(_EXTRA_COLUMN)),
            chunk,
            target.fault_rng(chunk.index),
        )
    else:
        target.writer.write(frame)


def _frame(chunk: Chunk) -> pl.DataFrame:
    at = chunk.item_order
    days_since = (
        pl.DataFrame({"d": chunk.days_since_prior})
        .select(pl.when(pl.col("d") >= 0).then(pl.col("d").cast(pl.String)))
        .to_series()
    )
    return pl.DataFrame(
        [
            chunk.order_id_text.gather(at).alias("order_id"),
            strings(chunk.add_to_cart).alias("add_to_cart_order"),
        ]
    ).select(
        _ITEM_ID.alias("id"),
        pl.col("order_id"),
        chunk.user_id_text.gather(at).alias("user_id"),
        days_since.gather(at).alias("days_since_prior_order"),
        strings(chunk.product_id).alias("product_id"),
        pl.col("add_to_cart_order"),
        strings(chunk.reordered).alias("reordered"),
        chunk.timestamp_text.gather(at).alias("order_timestamp"),
        chunk.date_text.gather(at).alias("date"),
    )


def _damage(target: Target, frame: pl.DataFrame, chunk: Chunk, rng: np.random.Generator) -> None:
    picked = pick(rng, frame.height, target.run.dirty, _FAULTS)
    seconds = chunk.seconds[chunk.item_order]
    edits = Edits()
    edits.tokens(picked["bad_types"], _BAD_TYPES)
    edits.tokens(picked["bad_timestamps"], _BAD_TIMESTAMPS)
    edits.tokens(picked["blank_keys"], _BLANK_KEYS)
    edits.tokens(picked["out_of_range"], _OUT_OF_RANGE)
    edits.tokens(picked["bad_booleans"], _BAD_BOOLEANS)
    edits.shift_dates(picked["date_mismatches"], seconds, column="date")
    edits.respell_timestamps(picked["timestamp_variants"], seconds, column="order_timestamp")
    frame = edits.apply(frame)
    # Orphans are extra copies pointing at order ids past the last real one, so no orders file
    # ever holds them; the running count keeps their ids (and so their item ids) unique.
    rows = picked["orphans"]
    first = order_count(target.run.scale) + 1 + target.faults["orphans"]
    orphan_order = strings(np.arange(first, first + rows.size, dtype=np.int64))
    orphans = (
        frame[rows].with_columns(orphan_order.alias("order_id")).with_columns(_ITEM_ID.alias("id"))
    )
    emit_dirty(target.writer, frame, picked, [], appended=orphans)
    target.count(picked)


SPEC: Final = TimelineSpec(
    schema=ORDER_ITEMS,
    faults=_FAULTS,
    extra_columns=(_EXTRA_COLUMN,),
    fault_stream=13,
    write_chunk=_write_chunk,
    rows_per_order=10,
)
