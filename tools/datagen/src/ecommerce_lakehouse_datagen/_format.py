"""Exact CSV text for generated numbers: integers, timestamps, dates and money."""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt
import polars as pl

Int64Array = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

SECONDS_PER_DAY: Final = 86_400


def strings(numbers: Int64Array) -> pl.Series:
    """Integers as decimal text."""
    return pl.Series(numbers).cast(pl.String)


def timestamps(seconds: Int64Array, pattern: str = "%Y-%m-%dT%H:%M:%S") -> pl.Series:
    """Seconds since the epoch (UTC) as text in ``pattern`` (ISO 8601 without offset by default)."""
    return pl.from_epoch(pl.Series(seconds, dtype=pl.Int64), time_unit="s").dt.strftime(pattern)


def dates(days: Int64Array) -> pl.Series:
    """Days since the epoch as ISO dates."""
    return pl.Series(days.astype(np.int32)).cast(pl.Date).cast(pl.String)


def money(cents: Int64Array) -> pl.Series:
    """Exact 2-decimal text for amounts in cents (negative amounts keep their sign)."""
    frame = pl.DataFrame({"c": np.abs(cents), "negative": cents < 0})
    return frame.select(
        pl.concat_str(
            [
                pl.when(pl.col("negative")).then(pl.lit("-")).otherwise(pl.lit("")),
                (pl.col("c") // 100).cast(pl.String),
                pl.lit("."),
                (pl.col("c") % 100).cast(pl.String).str.zfill(2),
            ]
        )
    ).to_series()
