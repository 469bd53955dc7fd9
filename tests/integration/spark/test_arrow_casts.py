"""The parse's Arrow casts of plain values give the domain's values, or leave them to Spark.

``arrow_casts.cast_plain`` runs on the executor, inside the parse, before any Spark
expression: where it gives a value, that value is the row's, so it must be exactly what
``domain.rules.cast_value`` gives for the text; where it gives null, the Spark expressions
(held to the domain by ``tests/contract/test_rule_parity.py``) cast the text. No Spark
session: these run in the fast tier.
"""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta

import pyarrow as pa
import pytest

from ecommerce_lakehouse.domain.rules import cast_value
from ecommerce_lakehouse.domain.types import Column, ColumnType
from ecommerce_lakehouse.domain.values import normalize_text
from ecommerce_lakehouse_spark.arrow_casts import (
    cast_plain,
    plain_casts,
    plain_name,
    with_plain_casts,
)
from tests.contract.test_rule_parity import EDGES

CAST_TYPES = [t for t in ColumnType if t is not ColumnType.STRING]

#: Plain-looking texts at the edges of what exists and what fits.
PLAIN_EDGES: dict[ColumnType, list[str]] = {
    ColumnType.INT: ["0", "7", "007", "999999999", "1000000000", "2147483647", "2147483648"],
    ColumnType.BIGINT: ["0", "999999999999999999", "9223372036854775807", "9223372036854775808"],
    ColumnType.DOUBLE: [
        "0",
        "0.1",
        "95.63",
        "0.30000000000000004",
        "123456789012345.123456789012345",
        "1234567890123456",
        "9007199254740993",
        "0.000000000000001",
    ],
    ColumnType.BOOLEAN: ["0", "1", "true", "false", "True", "FALSE", "01"],
    ColumnType.DATE: [
        "2024-02-29",
        "2023-02-29",
        "1900-02-29",
        "2000-02-29",
        "2024-04-31",
        "2024-12-31",
        "0000-01-01",
        "0001-01-01",
        "9999-12-31",
        "2024-13-01",
        "2024-00-01",
        "2024-01-00",
    ],
    ColumnType.TIMESTAMP: [
        "2024-01-01T00:00:23",
        "2024-01-01T23:59:59",
        "2024-01-01T23:59:60",
        "2024-01-01T24:00:00",
        "2024-01-01T23:60:00",
        "2024-02-30T00:00:00",
        "0000-01-01T00:00:00",
        "0001-01-01T00:00:00",
        "9999-12-31T23:59:59",
        "2024-01-01 00:00:23",
        "2024-01-01T00:00:23Z",
        "2024-01-01T00:00:23.5",
    ],
}
PADDING = ["", " ", "\t", "\xa0", "\u3000"]


def _domain(text: str, column_type: ColumnType) -> object:
    normalised = normalize_text(text)
    value = None if normalised is None else cast_value(normalised, column_type)
    if isinstance(value, datetime):
        # The Arrow column holds instants; pyarrow returns them as aware UTC datetimes.
        return value.astimezone(UTC)
    return value


def _assert_agrees(texts: list[str], column_type: ColumnType) -> int:
    """Cast ``texts`` as one array; every value cast must be the domain's. Returns how many."""
    cast = cast_plain(pa.array(texts, pa.string()), column_type).to_pylist()
    assert len(cast) == len(texts)
    for text, value in zip(texts, cast, strict=True):
        if value is not None:
            expected = _domain(text, column_type)
            assert value == expected, (text, value, expected)
            assert type(value) is type(expected), (text, value, expected)
    return sum(v is not None for v in cast)


@pytest.mark.parametrize("column_type", CAST_TYPES, ids=[t.value for t in CAST_TYPES])
def test_every_value_cast_alone_is_the_domain_s(column_type: ColumnType) -> None:
    texts = [
        pad + t + end
        for t in EDGES[column_type] + PLAIN_EDGES[column_type]
        for pad in PADDING
        for end in ("", pad)
    ]
    cast = sum(_assert_agrees([t], column_type) for t in texts)
    # The plainest spellings are cast here, not left to Spark.
    assert cast >= 3


@pytest.mark.parametrize("column_type", CAST_TYPES, ids=[t.value for t in CAST_TYPES])
def test_a_batch_with_a_day_that_does_not_exist_is_left_to_spark(column_type: ColumnType) -> None:
    texts = EDGES[column_type] + PLAIN_EDGES[column_type]
    _assert_agrees(texts, column_type)
    if column_type in (ColumnType.DATE, ColumnType.TIMESTAMP):
        assert cast_plain(pa.array(texts), column_type).null_count == len(texts)


def test_random_plain_values_are_all_cast_exactly() -> None:
    rng = random.Random(7)
    start = datetime(1900, 1, 1, tzinfo=UTC)
    moments = [start + timedelta(seconds=rng.randrange(250 * 365 * 86400)) for _ in range(3000)]
    texts: dict[ColumnType, list[str]] = {
        ColumnType.INT: [str(rng.randrange(10**9)) for _ in range(3000)],
        ColumnType.BIGINT: [str(rng.randrange(10**18)) for _ in range(3000)],
        # Up to 15 digits before the point and 15 after it: every plain double's shape.
        ColumnType.DOUBLE: [
            f"{rng.randrange(10 ** rng.randint(1, 15))}.{rng.randrange(10**15)}"
            for _ in range(3000)
        ],
        ColumnType.BOOLEAN: [rng.choice(["0", "1", "true", "false"]) for _ in range(3000)],
        ColumnType.DATE: [m.date().isoformat() for m in moments],
        ColumnType.TIMESTAMP: [m.strftime("%Y-%m-%dT%H:%M:%S") for m in moments],
    }
    for column_type, values in texts.items():
        assert _assert_agrees(values, column_type) == len(values), column_type


def test_the_casts_follow_the_header_of_each_file() -> None:
    columns = [
        Column(name="id", type=ColumnType.STRING),
        Column(name="n", type=ColumnType.INT),
        Column(name="day", type=ColumnType.DATE),
        Column(name="absent", type=ColumnType.INT),
    ]
    casts = plain_casts(columns)
    assert [c for c, _ in casts] == ["n", "day", "absent"]
    lists = pa.list_(pa.string())

    def batch(lines: list[int | None], cells: list[list[str] | None]) -> pa.RecordBatch:
        return pa.RecordBatch.from_arrays(
            [pa.array(lines, pa.int64()), pa.array(cells, lists)], names=["line", "cells"]
        )

    # The header names columns as a schema matches them: trimmed, case-insensitively.
    first = [
        batch([1, 2, 3], [[" DAY ", "Id", "N"], ["2024-01-02", "a", "5"], ["x", "b", " 6"]]),
        batch([None], [None]),
    ]
    second = [batch([1, 2], [["n", "day", "id"], ["7", "2024-02-03", "c"]]), batch([None], [None])]
    out = [*with_plain_casts(first, casts, "cells", "line")]
    out += with_plain_casts(second, casts, "cells", "line")
    read = [b.to_pydict() for b in out]
    assert read[0][plain_name("n")] == [None, 5, None]
    assert read[0][plain_name("day")] == [None, date(2024, 1, 2), None]
    assert read[0][plain_name("absent")] == [None, None, None]
    assert read[1][plain_name("n")] == [None]
    assert read[2][plain_name("n")] == [None, 7]
    assert read[2][plain_name("day")] == [None, date(2024, 2, 3)]
