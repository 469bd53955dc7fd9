"""Fault injection shared by every entity: picking rows, editing cells, emitting the result.

A damaged row gets exactly one fault kind. Sub-variants within a kind are taken round-robin so
that every variant appears as soon as a kind has a few rows.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import polars as pl

from ecommerce_lakehouse_datagen._format import SECONDS_PER_DAY, Int64Array, dates, timestamps
from ecommerce_lakehouse_datagen._writer import CsvWriter

#: Unparseable timestamps, whatever the timestamp column.
BAD_TIMESTAMP_TOKENS: Final = (
    "2024-13-45T00:00:00",
    "yesterday",
    "2024-02-30T10:00:00",
    "15/01/2024 10:00",
    "2024-01-15T25:61:00",
)
# The same UTC instants written with +02:00, -05:00, ``Z`` or a space separator.
_RESPELLINGS: Final = (
    (2 * 3600, "%Y-%m-%dT%H:%M:%S+02:00"),
    (-5 * 3600, "%Y-%m-%dT%H:%M:%S-05:00"),
    (0, "%Y-%m-%dT%H:%M:%SZ"),
    (0, "%Y-%m-%d %H:%M:%S"),
)


def pick(
    rng: np.random.Generator, rows: int, dirty: float, kinds: tuple[str, ...]
) -> dict[str, Int64Array]:
    """Choose the damaged rows of a chunk and the fault kind of each.

    Args:
        rng: the entity's fault stream for this chunk.
        rows: rows in the chunk.
        dirty: the fraction of rows to damage.
        kinds: the entity's fault kinds; their order fixes which rows each kind gets.

    Returns:
        Sorted row positions per fault kind; each row is damaged at most once.
    """
    hit = np.flatnonzero(rng.random(rows) < dirty).astype(np.int64)
    kind = rng.integers(0, len(kinds), hit.size)
    return {name: hit[kind == i] for i, name in enumerate(kinds)}


def emit_dirty(
    writer: CsvWriter,
    frame: pl.DataFrame,
    picked: dict[str, Int64Array],
    later: list[pl.DataFrame],
    *,
    appended: pl.DataFrame | None = None,
) -> None:
    """Write a damaged chunk with its in-file duplicates; defer re-sent rows to a later file.

    Args:
        writer: the entity's writer.
        frame: the chunk, its cells already damaged.
        picked: the rows per fault kind; ``in_file_duplicates`` are written twice in a row and
            ``cross_file_duplicates`` re-sent in a later file.
        later: other frames to re-send in a later file (corrections), in order.
        appended: rows written after the chunk, in the same file (orphans).
    """
    resent = frame[picked["cross_file_duplicates"]]
    duplicated = picked["in_file_duplicates"]
    repeats = np.ones(frame.height, dtype=np.int64)
    repeats[duplicated] = 2
    # The copy follows its original, and the writer never splits such a pair across files.
    keep_with_previous = np.zeros(frame.height + duplicated.size, dtype=np.bool_)
    keep_with_previous[np.cumsum(repeats)[duplicated] - 1] = True
    out = frame[np.repeat(np.arange(frame.height), repeats)]
    if appended is not None and appended.height:
        out = pl.concat([out, appended])
        keep_with_previous = np.append(keep_with_previous, np.zeros(appended.height, np.bool_))
    writer.write(out, keep_with_previous=keep_with_previous)
    for deferred in (resent, *later):
        writer.defer(deferred)


def in_column(column: str, tokens: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """``(column, token)`` variants for :meth:`Edits.tokens`."""
    return tuple((column, token) for token in tokens)


class Edits:
    """Cell replacements gathered per column, then applied with one scatter per column."""

    def __init__(self) -> None:
        self._columns: dict[str, list[tuple[Int64Array, pl.Series]]] = {}

    def put(self, column: str, rows: Int64Array, values: pl.Series) -> None:
        """Overwrite ``column`` at ``rows`` with ``values``."""
        if rows.size:
            self._columns.setdefault(column, []).append((rows, values))

    def tokens(self, rows: Int64Array, variants: tuple[tuple[str, str], ...]) -> None:
        """Overwrite ``rows`` with fixed ``(column, token)`` variants, taken round-robin."""
        for offset, (column, token) in enumerate(variants):
            part = rows[offset :: len(variants)]
            self.put(column, part, pl.repeat(token, part.size, eager=True))

    def shift_dates(self, rows: Int64Array, seconds: Int64Array, *, column: str) -> None:
        """Put the day after (even picks) or before (odd picks) the timestamp's date in ``column``.

        Args:
            rows: the rows to damage.
            seconds: every row's timestamp, in seconds since the epoch.
            column: the date column.
        """
        shift = np.where(np.arange(rows.size) % 2 == 0, 1, -1)
        self.put(column, rows, dates(seconds[rows] // SECONDS_PER_DAY + shift))

    def respell_timestamps(self, rows: Int64Array, seconds: Int64Array, *, column: str) -> None:
        """Write the same UTC instants with +02:00, -05:00, ``Z`` or a space separator.

        Args:
            rows: the rows to respell.
            seconds: every row's timestamp, in seconds since the epoch.
            column: the timestamp column.
        """
        for offset, (shift, pattern) in enumerate(_RESPELLINGS):
            part = rows[offset :: len(_RESPELLINGS)]
            self.put(column, part, timestamps(seconds[part] + shift, pattern))

    def apply(self, frame: pl.DataFrame) -> pl.DataFrame:
        """``frame`` with every gathered edit applied."""
        changed = []
        for column, edits in self._columns.items():
            series = frame.get_column(column).clone()
            series.scatter(
                np.concatenate([rows for rows, _ in edits]),
                pl.concat([values for _, values in edits]),
            )
            changed.append(series)
        return frame.with_columns(changed) if changed else frame
