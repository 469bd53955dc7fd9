"""Reference decisions for in-batch dedup and MERGE, on plain records.

See docs/contract.md#deduplication-and-merge.

Engines implement the same decisions with their own expressions; the in-memory fake engine
and the unit tests use these functions, and the parity tests hold engines to them.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import Any

from ecommerce_lakehouse.domain.audit import RowCounts
from ecommerce_lakehouse.domain.schemas import FILE_ORDINAL, LINE_NUMBER, DedupSpec, MergeSpec


class MergeAction(enum.Enum):
    """What the MERGE does with one survivor."""

    INSERT = "insert"
    UPDATE = "update"
    UNCHANGED = "unchanged"


def counts_by_file(tallies: Iterable[tuple[str, MergeAction, int]]) -> dict[str, RowCounts]:
    """Per-file MERGE counts from ``(source file, action, rows)`` tallies.

    Args:
        tallies: the rows of each action from each file, one tally per file and action
            (a later one replaces an earlier).

    Returns:
        Inserted, updated and unchanged rows per source file; actions a file has no
        tally for count 0.
    """
    by_file: dict[str, dict[MergeAction, int]] = {}
    for file, action, rows in tallies:
        by_file.setdefault(file, {})[action] = rows
    return {
        file: RowCounts(
            inserted=t.get(MergeAction.INSERT, 0),
            updated=t.get(MergeAction.UPDATE, 0),
            unchanged=t.get(MergeAction.UNCHANGED, 0),
        )
        for file, t in by_file.items()
    }


def partition_text(value: Any) -> str | None:
    """A partition value as text (ISO dates and timestamps), None for the null partition."""
    if value is None:
        return None
    if isinstance(value, date | datetime):
        return value.isoformat()
    return str(value)


def partition_order(values: Iterable[Any]) -> list[Any]:
    """Partition values in a stable order: the null partition first, then by their text."""
    return sorted(values, key=lambda v: (v is not None, "" if v is None else partition_text(v)))


def _key(record: Mapping[str, Any], columns: Sequence[str]) -> tuple[Any, ...]:
    return tuple(record[c] for c in columns)


def deduplicate(
    records: Sequence[Mapping[str, Any]], spec: DedupSpec
) -> tuple[list[Mapping[str, Any]], list[Mapping[str, Any]]]:
    """Collapse records sharing a key to one survivor.

    The survivor has the greatest ordering value (when the spec has one); ties, and specs
    without one, go to the last occurrence by (file ordinal, line number).

    Args:
        records: valid, typed records carrying ``_file_ordinal`` and ``_line_number``.
        spec: the table's dedup spec.

    Returns:
        ``(survivors, dropped)`` with survivors in first-seen key order.
    """
    best: dict[tuple[Any, ...], Mapping[str, Any]] = {}
    dropped: list[Mapping[str, Any]] = []
    for record in records:
        key = _key(record, spec.key)
        current = best.get(key)
        if current is None:
            best[key] = record
            continue
        if _rank(record, spec) >= _rank(current, spec):
            best[key], loser = record, current
        else:
            loser = record
        dropped.append(loser)
    return list(best.values()), dropped


def _rank(record: Mapping[str, Any], spec: DedupSpec) -> tuple[Any, ...]:
    position = (record[FILE_ORDINAL], record[LINE_NUMBER])
    if spec.ordering_column is None:
        return position
    return (record[spec.ordering_column], *position)


def merge_action(
    stored: Mapping[str, Any] | None, incoming: Mapping[str, Any], spec: MergeSpec
) -> MergeAction:
    """Decide what the MERGE does with one survivor.

    Inserted when no row with its key is stored. A stored row is replaced only when some
    business column differs (null-safe) and, when the spec orders rows, the incoming
    ordering value is greater or equal to the stored one.
    """
    if stored is None:
        return MergeAction.INSERT
    ordering = spec.ordering_column
    if ordering is not None and incoming[ordering] < stored[ordering]:
        return MergeAction.UNCHANGED
    differs = any(incoming[c] != stored[c] for c in spec.business_columns)
    return MergeAction.UPDATE if differs else MergeAction.UNCHANGED
