"""Every engine's compiled rules and casts agree with the domain's reference functions.

Text values (valid and invalid integers, doubles, booleans, dates and timestamps, padded with
whitespace Python and Rust disagree about) are written to a CSV and sent through the engine's
``read_source`` and ``stage``. Each row must then be quarantined with exactly the violation
``domain.rules.first_violation`` reports (rule, column, reason), or survive with exactly the
values ``domain.rules.cast_value`` gives (dates derived from the UTC timestamp when absent).

A Spark round trip costs seconds, so the Spark engine gets fewer Hypothesis examples, each
drawing several row sets (keys distinct per set) sent through one ``stage``: every drawn
row is checked exactly as for Polars.
"""

from __future__ import annotations

import csv
import itertools
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ecommerce_lakehouse.domain import values
from ecommerce_lakehouse.domain.rules import cast_value, first_violation
from ecommerce_lakehouse.domain.schemas import SCHEMAS, TableSchema
from ecommerce_lakehouse.domain.types import ColumnType, SchemaEvolution
from ecommerce_lakehouse.ports.engine import RunContext, SourceFile
from tests.contract.conftest_engines import EngineCase, engine

__all__ = ["engine"]

ROW = "row"  # an extra column: never blank, so no record is skipped; "<file>:<row>" names it

INTEGER_EDGES = [
    "0", "-0", "+0", "1", "+7", "-12", "0005", "365", "366", "-1", "2147483647", "2147483648",
    "-2147483648", "-2147483649", "99999999999999999999", "1.0", "1e3", "1_000", "0x10", "--1",
    "+", "", "\uff11\uff12",
]  # fmt: skip
DOUBLE_EDGES = [
    "0", "-0", "-0.0", "1.5", "+1.5", ".5", "5.", "1e5", "1E-5", "-1e-3", "1e308", "1e999",
    "-1e999", "4.9e-325", "nan", "NaN", "inf", "-inf", "Infinity", "1_000.5", "0x1p3", "1e",
    ".", "e5", "1.2.3", "12345678901234567890.123456789",
]  # fmt: skip
BOOLEAN_EDGES = [
    "0", "1", "true", "false", "TRUE", "False", "tRuE", "FaLsE", "yes", "no", "2", "t", "00",
]  # fmt: skip
DATE_EDGES = [
    "2024-01-01", "2024-02-29", "2023-02-29", "2023-02-30", "2023-04-31", "2023-13-01",
    "2023-00-10", "2023-01-00", "0000-01-01", "0001-01-01", "9999-12-31", "2023-1-01",
    "20230101", "2023/01/01", "2023-01-01T00:00",
]  # fmt: skip
TIMESTAMP_EDGES = [
    "2024-01-01T10:00", "2024-01-01 10:00", "2024-01-01T10:00:59", "2024-01-01T10:00:60",
    "2024-01-01T24:00", "2024-01-01T23:60", "2024-01-01t10:00", "2024-01-01T10:00:00Z",
    "2024-01-01T10:00:00z", "2024-01-01T10:00:00.1", "2024-01-01T10:00:00.123456",
    "2024-01-01T10:00:00.1234567", "2024-01-01T10:00:00.999999999Z", "2024-01-01T10:00:00.05",
    "2024-01-01T10:00:00.000001", "2024-01-01T10:00:00.0000009",
    "2024-01-01T10:00:00.1234567890", "2024-01-01T10:00:00.", "2024-01-01T10:00.5",
    "2024-01-01T23:30:00-05:00", "2024-01-01T00:30:00+01:00", "2024-01-01T00:30+0100",
    "2024-01-01T10:00+23:59", "2024-01-01T10:00+24:00", "2024-01-01T10:00-00:60",
    "2024-01-01T10:00+5:00", "2024-02-30T10:00", "0000-01-01T10:00", "2024-01-01",
    "2024-01-01T10", "10:00", "2024-01-01T10:00:00 Z",
]  # fmt: skip
EDGES: dict[ColumnType, list[str]] = {
    ColumnType.INT: INTEGER_EDGES,
    ColumnType.BIGINT: INTEGER_EDGES,
    ColumnType.DOUBLE: DOUBLE_EDGES,
    ColumnType.BOOLEAN: BOOLEAN_EDGES,
    ColumnType.DATE: DATE_EDGES,
    ColumnType.TIMESTAMP: TIMESTAMP_EDGES,
    ColumnType.STRING: ["x", " y ", "", "   "],
}
#: Padding, including characters Python strips and Rust's ``trim`` does not (U+001C..U+001F).
PADDING = ["", "", "", " ", "\t", "\u3000", "\xa0", "\x1c", "\x1f", " \n"]

_counter = itertools.count()


# ---------------------------------------------------------------- strategies
def _digits(low: int, high: int, width: int = 2) -> st.SearchStrategy[str]:
    return st.integers(low, high).map(lambda n: str(n).zfill(width))


def _with_case(token: str) -> st.SearchStrategy[str]:
    return st.lists(st.booleans(), min_size=len(token), max_size=len(token)).map(
        lambda upper: "".join(c.upper() if u else c for c, u in zip(token, upper, strict=True))
    )


@st.composite
def _timestamp_text(draw: st.DrawFn) -> str:
    # Years stay well inside 1..9999 so an offset cannot leave Python's datetime range.
    day = draw(
        st.one_of(
            st.dates(
                min_value=datetime(1900, 1, 1).date(), max_value=datetime(2100, 1, 1).date()
            ).map(lambda d: d.isoformat()),
            st.builds(
                lambda y, m, d: f"{y}-{m}-{d}",
                _digits(1900, 2100, 4),
                _digits(0, 13),
                _digits(0, 32),
            ),
        )
    )
    text = day + draw(st.sampled_from(["T", " ", "T", "t", "_"]))
    text += draw(_digits(0, 25)) + ":" + draw(_digits(0, 61))
    if draw(st.booleans()):
        text += ":" + draw(_digits(0, 61))
        if draw(st.booleans()):
            text += "." + draw(st.text("0123456789", min_size=0, max_size=10))
    offset = draw(
        st.one_of(
            st.sampled_from(["", "", "Z", "z"]),
            st.builds(
                lambda sign, h, sep, m: f"{sign}{h}{sep}{m}",
                st.sampled_from(["+", "-"]),
                _digits(0, 25),
                st.sampled_from([":", ""]),
                _digits(0, 61),
            ),
        )
    )
    return text + offset


def _typed_text(column_type: ColumnType) -> st.SearchStrategy[str]:
    noise = st.text(
        alphabet=st.characters(exclude_categories=("Cs",), exclude_characters="\x00"),
        max_size=8,
    )
    special: dict[ColumnType, st.SearchStrategy[str]] = {
        ColumnType.INT: st.integers(-(2**33), 2**33).map(str),
        ColumnType.BIGINT: st.integers(-(2**65), 2**65).map(str),
        ColumnType.DOUBLE: st.one_of(
            st.floats(allow_nan=True, allow_infinity=True).map(repr),
            st.floats(allow_nan=False, allow_infinity=False).map(lambda f: f"{f:e}"),
            st.integers(-400, 400).map(lambda e: f"1e{e}"),
        ),
        ColumnType.BOOLEAN: st.sampled_from(["true", "false"]).flatmap(_with_case),
        ColumnType.DATE: st.dates().map(lambda d: d.isoformat()),
        ColumnType.TIMESTAMP: _timestamp_text(),
        ColumnType.STRING: st.sampled_from(["x", "y"]),
    }
    return st.one_of(
        special[column_type], special[column_type], st.sampled_from(EDGES[column_type]), noise
    )


#: A valid value of each type (an empty date is derived from the timestamp).
VALID: dict[ColumnType, str] = {
    ColumnType.STRING: "x",
    ColumnType.INT: "1",
    ColumnType.BIGINT: "1",
    ColumnType.DOUBLE: "1.5",
    ColumnType.BOOLEAN: "true",
    ColumnType.DATE: "",
    ColumnType.TIMESTAMP: "2024-01-01T10:00:00Z",
}


@st.composite
def _rows(
    draw: st.DrawFn, schema: TableSchema, prefix: str = ""
) -> tuple[bool, list[dict[str, str]]]:
    """Rows that either randomise one focus column (the rest valid, so casts reach the
    survivors) or randomise every column (so rules compete for the first violation).

    Keys are ``<prefix>k<row>`` (or blank), so row sets with distinct prefixes can share a
    batch without in-batch duplicates."""
    with_date = schema.derived_date is None or draw(st.booleans())
    candidates = [c.name for c in schema.columns if c.name not in schema.primary_key]
    count = draw(st.integers(1, 8))
    rows: list[dict[str, str]] = []
    for index in range(count):
        focus = draw(st.sampled_from([None, *candidates]))
        row: dict[str, str] = {}
        for column in schema.columns:
            if column.name in schema.primary_key:
                key = f"{prefix}k{index}"
                value = key if draw(st.integers(0, 9)) else draw(st.sampled_from(["", " "]))
            elif focus is None or column.name == focus:
                value = draw(_typed_text(column.type))
            else:
                value = VALID[column.type]
            row[column.name] = (
                draw(st.sampled_from(PADDING)) + value + draw(st.sampled_from(PADDING))
            )
        if schema.derived_date is not None:
            date_column, ts_column = schema.derived_date
            moment = values.parse_timestamp(row[ts_column].strip())
            if moment is not None and focus != date_column and draw(st.booleans()):
                # A date that matches its timestamp, to reach the survivors too.
                row[date_column] = moment.date().isoformat()
            if not with_date:
                del row[date_column]
        rows.append(row)
    return with_date, rows


# ---------------------------------------------------------------- the check
#: One file of a batch: its header and its rows (column name to raw text).
File = tuple[Sequence[str], Sequence[dict[str, str]]]


def _write_csv(
    directory: Path, ordinal: int, header: Sequence[str], rows: Sequence[dict[str, str]]
) -> Path:
    path = directory / f"parity_{next(_counter)}.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, quoting=csv.QUOTE_ALL, lineterminator="\n")
        writer.writerow([*header, ROW])
        for index, row in enumerate(rows):
            writer.writerow([*(row.get(c, "") for c in header), f"{ordinal}:{index}"])
    return path


def _same(actual: Any, expected: Any) -> bool:
    if isinstance(expected, float) and isinstance(actual, float):
        return actual == expected and math.copysign(1, actual) == math.copysign(1, expected)
    return type(actual) is type(expected) and actual == expected


def assert_parity(
    case: EngineCase, directory: Path, schema: TableSchema, files: Sequence[File]
) -> None:
    """Read ``files`` (keys distinct across files), stage them as one batch, check each row."""
    frames = []
    for ordinal, (header, rows) in enumerate(files):
        path = _write_csv(directory, ordinal, header, rows)
        source = SourceFile(
            key=path.name,
            uri=str(path),
            entity=schema.entity,
            size_bytes=path.stat().st_size,
            checksum="",
            ordinal=ordinal,
        )
        frames.append(case.engine.read_source(source, schema, SchemaEvolution.RESCUE))
    run = RunContext(run_id="parity", started_at=datetime(2024, 1, 1, tzinfo=UTC))
    staged = case.engine.stage(frames, schema, run)
    quarantined = {json.loads(r["raw_record"])[ROW]: r for r in case.records(staged.quarantine)}
    survivors = {r[schema.primary_key[0]]: r for r in case.records(staged.survivors)}
    assert len(quarantined) + len(survivors) == sum(len(rows) for _, rows in files)

    for ordinal, (_, rows) in enumerate(files):
        for index, raw in enumerate(rows):
            _assert_row(schema, raw, quarantined.get(f"{ordinal}:{index}"), survivors)


def _assert_row(
    schema: TableSchema,
    raw: dict[str, str],
    quarantined: dict[str, Any] | None,
    survivors: dict[str, dict[str, Any]],
) -> None:
    text = {c: values.normalize_text(raw.get(c)) for c in schema.column_names}
    violation = first_violation(text, schema.rules, schema.types)
    if violation is not None:
        assert quarantined is not None, f"row {raw!r} should break {violation}"
        assert (quarantined["rule"], quarantined["column_name"], quarantined["reason"]) == (
            violation.rule,
            violation.column,
            violation.reason,
        ), f"row {raw!r}"
        return
    assert quarantined is None, f"row {raw!r} broke {quarantined['rule']}"
    survivor = survivors[text[schema.primary_key[0]]]
    for column in schema.columns:
        expected = cast_value(text[column.name], column.type)
        if schema.derived_date and column.name == schema.derived_date[0] and expected is None:
            moment = cast_value(text[schema.derived_date[1]], ColumnType.TIMESTAMP)
            expected = moment.date() if isinstance(moment, datetime) else None
        actual = survivor[column.name]
        assert _same(actual, expected), f"{column.name}: {actual!r} != {expected!r} in {raw!r}"


def _header(schema: TableSchema, with_date: bool) -> list[str]:
    derived = schema.derived_date[0] if schema.derived_date else None
    return [c for c in schema.column_names if with_date or c != derived]


# ---------------------------------------------------------------- tests
def listed_edge_rows(schema: TableSchema) -> list[dict[str, str]]:
    """Every listed edge value of each typed column (bare and padded), the rest valid."""
    typed = [c for c in schema.columns if c.type is not ColumnType.STRING]
    rows: list[dict[str, str]] = []
    base = {c.name: "x" for c in schema.columns}
    if schema.derived_date is not None:
        date_column, timestamp_column = schema.derived_date
        base |= {timestamp_column: "2024-01-01T10:00:00Z", date_column: ""}
    base |= {c.name: "1" for c in typed if c.type in (ColumnType.INT, ColumnType.DOUBLE)}
    base |= {c.name: "true" for c in typed if c.type is ColumnType.BOOLEAN}
    for column in typed:
        for value in EDGES[column.type]:
            for padding in ("", " \x1c", "\u3000\xa0\x85\u2028\x1f"):
                rows.append(base | {column.name: padding + value + padding})
    rows += [
        base | {k: "" for k in schema.primary_key},
        base | {k: " \u3000" for k in schema.primary_key},
    ]
    for index, row in enumerate(rows):
        row.update({k: f"k{index}" for k in schema.primary_key if row[k] == "x"})
    return rows


@pytest.mark.parametrize("schema", SCHEMAS, ids=[s.name for s in SCHEMAS])
def test_listed_edge_values_agree(engine: EngineCase, tmp_path: Path, schema: TableSchema) -> None:
    rows = listed_edge_rows(schema)
    assert_parity(engine, tmp_path, schema, [(_header(schema, True), rows)])


@dataclass(frozen=True)
class Budget:
    """How many Hypothesis examples an engine gets, and how many row sets each one draws."""

    examples: int
    row_sets: int


#: Polars checks a row set per example in milliseconds. A Spark example costs seconds
#: whatever its size, so it draws several row sets and sends them in one batch: those with
#: the same header share a file (their keys differ), so an example reads at most two files.
#: Four examples of up to 20 row sets draw nearly as many rows as Polars' 50 (~190, ~225).
BUDGETS: dict[str, Budget] = {
    "polars": Budget(examples=50, row_sets=1),
    "spark": Budget(examples=4, row_sets=20),
}


@pytest.mark.parametrize("schema", SCHEMAS, ids=[s.name for s in SCHEMAS])
def test_generated_values_agree(engine: EngineCase, tmp_path: Path, schema: TableSchema) -> None:
    budget = BUDGETS[engine.name]

    @settings(
        max_examples=budget.examples, deadline=None, suppress_health_check=[HealthCheck.too_slow]
    )
    @given(data=st.data())
    def check(data: st.DataObject) -> None:
        count = data.draw(st.integers(1, budget.row_sets), label="row sets")
        files: dict[tuple[str, ...], list[dict[str, str]]] = {}
        for index in range(count):
            with_date, rows = data.draw(_rows(schema, prefix=f"s{index}"), label="rows")
            files.setdefault(tuple(_header(schema, with_date)), []).extend(rows)
        assert_parity(engine, tmp_path, schema, list(files.items()))

    check()
