"""The Polars reader's shortcuts decide exactly what the domain's reference functions decide.

The reader casts typed values with Polars' own parsers on every row and sends only the
values it cannot vouch for through the exact cast (``expressions.cast_text``); a file whose
bytes hold no quote and no padding (whitespace, ``+``) takes further shortcuts: no trim, a
cheaper check of plain timestamps, line numbers from the row index. Each edge value is read
both ways, in a file that takes the shortcuts and in one that cannot (a padded value
elsewhere in it), and every row must come out as ``rules.first_violation`` and
``rules.cast_value`` say, on the line it was written on.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ecommerce_lakehouse.domain.rules import RAGGED_RECORD, cast_value, first_violation, rule_name
from ecommerce_lakehouse.domain.schemas import (
    LINE_NUMBER,
    ORDER_ITEMS,
    ORDERS,
    RAW_RECORD,
    TableSchema,
)
from ecommerce_lakehouse.domain.types import ColumnType, SchemaEvolution
from ecommerce_lakehouse.domain.values import normalize_text
from ecommerce_lakehouse_polars.engine import PolarsDeltaTableEngine
from ecommerce_lakehouse_polars.expressions import fast_cast, fast_decided
from ecommerce_lakehouse_polars.reader import VIOLATION, _scan
from tests.contract.test_rule_parity import (
    BOOLEAN_EDGES,
    DATE_EDGES,
    DOUBLE_EDGES,
    EDGES,
    INTEGER_EDGES,
    TIMESTAMP_EDGES,
)
from tests.integration.engines.harness import source_writer

#: Spellings the shortcuts must not take for plain values: Polars' parsers (chrono) read
#: some of them, Python does not.
TRICKY_TIMESTAMPS = [
    "-2024-01-01T00:00:0", "02024-1-01T00:00:00", "2024-1-1T1:1:1", "2024-01-01T00:00:60",
    "2024-01-01T00:00:61", "2024-01-01T24:00:00", "0000-01-01T00:00:00", "2024-02-30T00:00:00",
    "9999-12-31T23:59:59", "0001-01-01T00:00:00", "2024-01-0100:00:00", "2024-01-01T00:00:00Z",
    "2024-01-01T00:00:00-05:00", "\u0661\u0662\u0663\u0664-01-01T00:00:00", "2024-01-01T12:34:56",
]  # fmt: skip
TRICKY_DATES = ["2024-1-01", "-2024-01-01", "0000-01-01", "2024-01-0", "20240101x", "2024-01-02"]
TRICKY_NUMBERS = ["٣", "99999999999999999999999999999999999999", "nan", "inf", "-inf", "1e999"]
PLAIN_TIMESTAMP = "2024-01-01T10:00:00"

ITEMS = "id,order_id,user_id,days_since_prior_order,product_id,add_to_cart_order,reordered"
ITEMS_HEADER = f"{ITEMS},order_timestamp,date"
ORDERS_HEADER = "order_num,order_id,user_id,order_timestamp,total_amount,date"


def _usable(value: str) -> bool:
    # Written unquoted, in a file that may take every shortcut.
    return not any(c.isspace() or c in ',"+' for c in value) and value.isprintable()


def _values(*lists: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(v for values in lists for v in values if _usable(v)))


def _item(row: int, column: str, value: str) -> dict[str, str]:
    record = {
        "id": f"i{row}",
        "order_id": "o1",
        "user_id": "u1",
        "days_since_prior_order": "3",
        "product_id": "p1",
        "add_to_cart_order": "1",
        "reordered": "1",
        "order_timestamp": PLAIN_TIMESTAMP,
        "date": PLAIN_TIMESTAMP[:10],
    }
    record[column] = value
    if column == "order_timestamp":
        # The date of a plain timestamp, else none (derived).
        record["date"] = value[:10] if len(value) == 19 else ""
    return record


def _order(row: int, column: str, value: str) -> dict[str, str]:
    record = {
        "order_num": "1",
        "order_id": f"o{row}",
        "user_id": "u1",
        "order_timestamp": PLAIN_TIMESTAMP,
        "total_amount": "1.5",
        "date": "",
    }
    record[column] = value
    return record


def _cases(schema: TableSchema) -> list[dict[str, str]]:
    typed = {
        ColumnType.INT: _values(INTEGER_EDGES, TRICKY_NUMBERS),
        ColumnType.DOUBLE: _values(DOUBLE_EDGES, TRICKY_NUMBERS),
        ColumnType.BOOLEAN: _values(BOOLEAN_EDGES),
        ColumnType.DATE: _values(DATE_EDGES, TRICKY_DATES),
        ColumnType.TIMESTAMP: _values(TIMESTAMP_EDGES, TRICKY_TIMESTAMPS),
    }
    build = _item if schema is ORDER_ITEMS else _order
    records: list[dict[str, str]] = []
    for column in schema.column_names:
        for value in typed.get(schema.types[column], ["", "x"]):
            records.append(build(len(records), column, value))
    # A date equal to the timestamp's, and one a day off.
    records.append(build(len(records), "date", PLAIN_TIMESTAMP[:10]))
    records.append(build(len(records), "date", "2023-12-31"))
    return records


def _expected(record: dict[str, str], schema: TableSchema) -> tuple[str | None, dict[str, object]]:
    normalised = {k: normalize_text(v) for k, v in record.items()}
    violation = first_violation({**normalised, RAGGED_RECORD: None}, schema.rules, schema.types)
    if violation is not None:
        return violation.rule, {}
    values = {c: cast_value(normalised[c], t) for c, t in schema.types.items()}
    if schema.derived_date is not None:
        date_column, ts_column = schema.derived_date
        moment = values[ts_column]
        if values[date_column] is None and isinstance(moment, datetime):
            values[date_column] = moment.astimezone(UTC).date()
    return None, values


@pytest.mark.parametrize("schema", [ORDER_ITEMS, ORDERS], ids=lambda s: s.name)
@pytest.mark.parametrize("padded", [False, True], ids=["shortcuts", "no_shortcuts"])
def test_every_row_is_read_as_the_reference_reads_it(
    tmp_path: Path, schema: TableSchema, padded: bool
) -> None:
    header = ITEMS_HEADER if schema is ORDER_ITEMS else ORDERS_HEADER
    names = header.split(",")
    records = _cases(schema)
    lines = [",".join(r[n] for n in names) for r in records]
    if padded:
        # One padded key elsewhere in the file: no shortcut may be taken for any row.
        first = dict(records[0])
        first[names[0]] = f" {first[names[0]]} "
        records[0] = first
        lines[0] = ",".join(first[n] for n in names)
    content = "\n".join([header, *lines]) + "\n"
    source = source_writer(tmp_path)(f"{schema.name}_1.csv", content, schema)
    assert _scan(source).unpadded is not padded  # the premise: which way the file is read
    frame = PolarsDeltaTableEngine({}).read_source(source, schema, SchemaEvolution.RESCUE)

    rules = [rule_name(r) for r in schema.rules]
    assert frame.height == len(records)
    assert frame.get_column(LINE_NUMBER).to_list() == list(range(2, len(records) + 2))
    for record, row in zip(records, frame.iter_rows(named=True), strict=True):
        rule, values = _expected(record, schema)
        index = row[VIOLATION]
        assert (None if index is None else rules[index]) == rule, record
        assert (row[RAW_RECORD] is None) == (rule is None), record
        for column, value in values.items():
            assert row[column] == value, (record, column)


def test_a_quoted_line_break_still_counts_as_a_line(tmp_path: Path) -> None:
    # A quote anywhere: line numbers are counted, not taken from the row index.
    content = "\n".join(
        [
            ITEMS_HEADER,
            f'i1,o1,u1,,"p\n1",1,1,{PLAIN_TIMESTAMP},',
            f"i2,o1,u1,,p2,1,1,{PLAIN_TIMESTAMP},",
            f"i3,o1,,,p3,1,1,{PLAIN_TIMESTAMP},",
        ]
    )
    source = source_writer(tmp_path)("order_items_1.csv", content + "\n", ORDER_ITEMS)
    frame = PolarsDeltaTableEngine({}).read_source(source, ORDER_ITEMS, SchemaEvolution.RESCUE)
    assert frame.get_column(LINE_NUMBER).to_list() == [2, 4, 5]
    assert frame.get_column("product_id").to_list() == ["p\n1", "p2", "p3"]
    assert frame.get_column(VIOLATION).is_null().to_list() == [True, True, False]


_ALPHABET = st.one_of(
    st.sampled_from("0123456789" * 4 + "+-.eE:TtZz _\t\u3000\x1cinfatyrue"),
    st.characters(codec="utf-8", exclude_characters="\x00"),
)


@pytest.mark.parametrize("column_type", [t for t in ColumnType if t is not ColumnType.STRING])
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts=st.lists(st.text(_ALPHABET, max_size=24), min_size=1, max_size=60))
def test_a_value_the_fast_cast_decides_is_the_reference_value(
    column_type: ColumnType, texts: list[str]
) -> None:
    # Polars' parsers are trusted only where they agree with the domain: this holds them
    # to it on arbitrary text (a Polars upgrade that reads more spellings fails here).
    samples = texts + _values(EDGES[column_type], TRICKY_NUMBERS, TRICKY_TIMESTAMPS)
    for unpadded in (False, True):
        if unpadded:
            samples = [t for t in samples if not any(c.isspace() or c == "+" for c in t)]
        value, spelled = fast_cast(pl.col("raw"), column_type, unpadded=unpadded)
        frame = (
            pl.DataFrame({"raw": samples}, schema={"raw": pl.String})
            .select(
                pl.col("raw"),
                value.alias("value"),
                *([spelled.alias("spelled")] if spelled is not None else []),
            )
            .with_columns(
                fast_decided(
                    pl.col("value"),
                    column_type,
                    pl.col("spelled") if spelled is not None else None,
                ).alias("decided")
            )
        )
        # Undecided values may be anything (even out of Python's range): not compared.
        for text, got in frame.filter("decided").select("raw", "value").iter_rows():
            assert got == cast_value(normalize_text(text), column_type), (text, unpadded)


@pytest.mark.parametrize("broken", [0, 1, 3], ids=["clean", "one-broken", "all-broken"])
def test_the_rule_index_is_right_whether_none_some_or_all_rows_break_a_rule(
    tmp_path: Path, broken: int
) -> None:
    # A file whose rows all pass keeps one null rule index for the whole file, not one per
    # row: it must still read as null on every row, and a file of broken rows keeps each.
    rows = [f"i{n},o1,u1,,p{n},1,1,{PLAIN_TIMESTAMP}," for n in range(3)]
    rows = [row.replace(",o1,", ",,") if n < broken else row for n, row in enumerate(rows)]
    source = source_writer(tmp_path)(
        "order_items_1.csv", "\n".join([ITEMS_HEADER, *rows]) + "\n", ORDER_ITEMS
    )
    frame = PolarsDeltaTableEngine({}).read_source(source, ORDER_ITEMS, SchemaEvolution.RESCUE)
    flags = [n < broken for n in range(3)]
    assert frame.get_column(VIOLATION).is_not_null().to_list() == flags
    assert frame.get_column(RAW_RECORD).is_not_null().to_list() == flags
    # Each broken row names the same rule: order_id is missing.
    assert len(set(frame.get_column(VIOLATION).drop_nulls().to_list())) == min(broken, 1)
