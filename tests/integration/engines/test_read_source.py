"""TableEngine.read_source on every engine: CSV dialect, header matching, rejections, evolution."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pytest

from ecommerce_lakehouse.domain.errors import FileRejected
from ecommerce_lakehouse.domain.rules import rule_name
from ecommerce_lakehouse.domain.schemas import (
    FILE_ORDINAL,
    LINE_NUMBER,
    ORDERS,
    PRODUCTS,
    RAW_RECORD,
    RESCUED_DATA,
    SOURCE_CHECKSUM,
    SOURCE_FILE,
    TableSchema,
)
from ecommerce_lakehouse.domain.types import ColumnType, SchemaEvolution
from tests.contract.conftest_engines import TEXT_TYPES, EngineCase
from tests.integration.engines.harness import WriteSource, csv_text

RESCUE = SchemaEvolution.RESCUE
PRODUCTS_HEADER = "product_id,department_id,department,product_name"


def source_columns(engine: EngineCase, *evolved: str) -> list[str]:
    """The columns of a products source frame, in order."""
    violation = [engine.violation] if engine.violation else []
    return [
        *PRODUCTS.column_names,
        RESCUED_DATA,
        *evolved,
        SOURCE_FILE,
        SOURCE_CHECKSUM,
        FILE_ORDINAL,
        LINE_NUMBER,
        *violation,
        RAW_RECORD,
    ]


def read(
    engine: EngineCase,
    write_source: WriteSource,
    content: str | bytes,
    evolution: SchemaEvolution = RESCUE,
    schema: TableSchema = PRODUCTS,
) -> Any:
    return engine.engine.read_source(write_source("f.csv", content, schema, 3), schema, evolution)


def in_line_order(engine: EngineCase, frame: Any) -> list[dict[str, Any]]:
    """A source frame's records by line number (Polars keeps them so; Spark need not)."""
    records = engine.records(frame)
    return records if engine.ordered else sorted(records, key=lambda r: r[LINE_NUMBER])


def business_rows(engine: EngineCase, frame: Any) -> list[tuple[Any, ...]]:
    """The products columns of a source frame, row by row in line order."""
    return [tuple(r[c] for c in PRODUCTS.column_names) for r in in_line_order(engine, frame)]


def rejection(
    engine: EngineCase,
    write_source: WriteSource,
    content: str | bytes,
    evolution: SchemaEvolution = RESCUE,
) -> FileRejected:
    with pytest.raises(FileRejected) as caught:
        read(engine, write_source, content, evolution)
    assert "\n" not in caught.value.detail
    return caught.value


def test_reads_every_value_as_trimmed_text_with_lineage(
    engine: EngineCase, write_source: WriteSource
) -> None:
    frame = read(
        engine,
        write_source,
        csv_text(PRODUCTS_HEADER, " 1 ,007,  , Milk ", "2,1.50,dairy,", "  ,3, x ,y"),
    )
    assert engine.columns(frame) == source_columns(engine)
    types = engine.types(frame)
    assert all(types[c] == ColumnType.STRING for c in PRODUCTS.column_names)
    assert types[SOURCE_FILE] in TEXT_TYPES  # Polars: categorical; the table stores a string
    assert types[LINE_NUMBER] == ColumnType.BIGINT
    assert types[FILE_ORDINAL] == ColumnType.BIGINT
    if engine.violation:
        assert types[engine.violation] == ColumnType.INT
    first, second, third = in_line_order(engine, frame)
    violation = {engine.violation: None} if engine.violation else {}
    # No type inference: "007" and "1.50" keep their spelling; blanks become null. Valid
    # rows carry no raw record.
    assert first == {
        "product_id": "1",
        "department_id": "007",
        "department": None,
        "product_name": "Milk",
        RESCUED_DATA: None,
        SOURCE_FILE: "raw-data/products/f.csv",
        SOURCE_CHECKSUM: "0" * 64,
        FILE_ORDINAL: 3,
        LINE_NUMBER: 2,
        **violation,
        RAW_RECORD: None,
    }
    assert second["department_id"] == "1.50"
    assert second["product_name"] is None
    assert second[LINE_NUMBER] == 3
    # A row breaking a rule keeps its raw, untrimmed values under the original headers.
    if engine.violation:
        # not_null(product_id), the first rule after wrong_field_count
        assert third[engine.violation] == 1
    assert third[LINE_NUMBER] == 4
    assert json.loads(third[RAW_RECORD]) == {
        "product_id": "  ",
        "department_id": "3",
        "department": " x ",
        "product_name": "y",
    }


def test_rows_are_typed_and_checked_against_the_rules(
    engine: EngineCase, write_source: WriteSource
) -> None:
    if engine.violation is None:
        pytest.skip(f"{engine.name} casts and checks rows in stage (see test_stage)")
    content = csv_text(
        "order_num,order_id,user_id,order_timestamp,total_amount,date",
        "1,A,u1,2024-01-01T23:30:00-05:00, 5.5 ,",
        "2,B,u1,2024-01-01T10:00,-1,2024-01-01",
        '3,C,u1,later,5,"2024-01-01"',
    )
    frame = read(engine, write_source, content, schema=ORDERS)
    types = engine.types(frame)
    assert types["order_timestamp"] == ColumnType.TIMESTAMP
    assert types["total_amount"] == ColumnType.DOUBLE
    assert types["date"] == ColumnType.DATE
    first, second, third = in_line_order(engine, frame)
    # The date is derived from the UTC timestamp when absent.
    assert (first["total_amount"], first["date"], first[engine.violation]) == (
        5.5,
        date(2024, 1, 2),
        None,
    )
    assert first[RAW_RECORD] is None
    rules = [rule_name(r) for r in ORDERS.rules]
    assert rules[second[engine.violation]] == "in_range"
    assert rules[third[engine.violation]] == "parses_as_timestamp"
    assert json.loads(third[RAW_RECORD])["date"] == "2024-01-01"


def test_bom_and_crlf(engine: EngineCase, write_source: WriteSource) -> None:
    rows = ("1,2,dairy,milk", ",2,dairy,cream")
    content = b"\xef\xbb\xbf" + csv_text(PRODUCTS_HEADER, *rows, eol="\r\n").encode()
    frame = read(engine, write_source, content)
    assert business_rows(engine, frame) == [
        ("1", "2", "dairy", "milk"),
        (None, "2", "dairy", "cream"),
    ]
    assert json.loads(in_line_order(engine, frame)[1][RAW_RECORD]) == {
        "product_id": "",
        "department_id": "2",
        "department": "dairy",
        "product_name": "cream",
    }


def test_rfc4180_quoting_and_physical_line_numbers(
    engine: EngineCase, write_source: WriteSource
) -> None:
    # No key: every row is quarantined, and a quarantined row reports its line number (the
    # Polars engine keeps line numbers only in a file with such a row).
    content = csv_text(
        PRODUCTS_HEADER,
        ',2,"dairy, eggs","say ""cheese"""',
        ',2,dairy,"two\nlines"',
        ",2,dairy,after",
    )
    frame = read(engine, write_source, content)
    records = in_line_order(engine, frame)
    assert [r["department"] for r in records] == ["dairy, eggs", "dairy", "dairy"]
    assert [r["product_name"] for r in records] == ['say "cheese"', "two\nlines", "after"]
    # A record is numbered by the line it starts on.
    assert [r[LINE_NUMBER] for r in records] == [2, 3, 5]


def test_headers_match_case_insensitively_trimmed_in_any_order(
    engine: EngineCase, write_source: WriteSource
) -> None:
    content = csv_text(
        " Product_Name ,DEPARTMENT,product_id , Department_ID", "milk,dairy,1,2", "x,y,,z"
    )
    frame = read(engine, write_source, content)
    assert business_rows(engine, frame) == [
        ("1", "2", "dairy", "milk"),
        (None, "z", "y", "x"),
    ]
    assert list(json.loads(in_line_order(engine, frame)[1][RAW_RECORD])) == [
        " Product_Name ",
        "DEPARTMENT",
        "product_id ",
        " Department_ID",
    ]


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"\xef\xbb\xbf",
        b"   \n \r\n\n",
        PRODUCTS_HEADER.encode(),
        f"{PRODUCTS_HEADER}\n".encode(),
    ],
    ids=["zero-bytes", "bom-only", "whitespace-only", "header-no-newline", "header-only"],
)
def test_empty_files_yield_no_rows(
    engine: EngineCase, write_source: WriteSource, content: bytes
) -> None:
    frame = read(engine, write_source, content)
    assert engine.height(frame) == 0
    assert engine.columns(frame) == source_columns(engine)


def test_blank_records_are_rows_that_break_not_null(
    engine: EngineCase, write_source: WriteSource
) -> None:
    # Issue 11 item 13: a blank line or a row of empty fields is counted and quarantined
    # (no key), never dropped uncounted.
    content = csv_text(PRODUCTS_HEADER, "1,2,dairy,milk", "", " , ,,", "2,2,dairy,cream", "")
    frame = read(engine, write_source, content)
    records = in_line_order(engine, frame)
    assert [r["product_id"] for r in records] == ["1", None, None, "2", None]
    assert [r[LINE_NUMBER] for r in records] == [2, 3, 4, 5, 6]
    if engine.violation:
        assert [r[engine.violation] for r in records] == [None, 1, 1, None, 1]


def test_short_records_read_missing_fields_as_null(
    engine: EngineCase, write_source: WriteSource
) -> None:
    frame = read(engine, write_source, csv_text(PRODUCTS_HEADER, "1,2"))
    assert business_rows(engine, frame) == [("1", "2", None, None)]


def test_orders_date_may_be_absent(engine: EngineCase, write_source: WriteSource) -> None:
    content = csv_text("order_num,order_id,user_id,order_timestamp,total_amount", "1,A,u,x,1")
    frame = read(engine, write_source, content, schema=ORDERS)
    assert [r["date"] for r in engine.records(frame)] == [None]
    # Typed as a date when the engine casts while reading, else still text.
    expected = ColumnType.DATE if engine.violation else ColumnType.STRING
    assert engine.types(frame)["date"] == expected


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"product_id,department_id,department,product_name\n1,2,caf\xe9,x\n", "not_utf8"),
        (
            "product_id,department_id,department,product_name\n1,2,x,y\n".encode("utf-16"),
            "not_utf8",
        ),
        (csv_text(PRODUCTS_HEADER, '1,2,"dairy,milk', "2,2,x,y"), "malformed_csv"),
        (csv_text(PRODUCTS_HEADER, '1,2,"dairy"x,milk'), "malformed_csv"),
        (csv_text("product_id,department,product_name", "1,dairy,milk"), "missing_columns"),
        (csv_text(f"{PRODUCTS_HEADER}, Product_ID", "1,2,dairy,milk,1"), "duplicate_columns"),
    ],
    ids=[
        "latin-1",
        "utf-16",
        "unterminated-quote",
        "text-after-closing-quote",
        "missing-column",
        "duplicate-column",
    ],
)
def test_rejected_files(
    engine: EngineCase, write_source: WriteSource, content: str | bytes, reason: str
) -> None:
    assert rejection(engine, write_source, content).reason == reason


@pytest.mark.parametrize(
    "row", ['1,2,a"b,milk', '1,2,dairy,milk"', '1,2,"dairy","a"b"'], ids=["mid", "end", "quoted"]
)
def test_an_odd_quote_in_an_unquoted_field_rejects_the_file(
    engine: EngineCase, write_source: WriteSource, row: str
) -> None:
    error = rejection(engine, write_source, csv_text(PRODUCTS_HEADER, row, "2,2,x,y"))
    assert error.reason == "malformed_csv"


def test_even_quotes_in_an_unquoted_field_are_text(
    engine: EngineCase, write_source: WriteSource
) -> None:
    frame = read(engine, write_source, csv_text(PRODUCTS_HEADER, '1,2, "a",b""c', "2,2,x,y"))
    assert engine.rows(frame, "department", "product_name") == engine.arranged(
        [('"a"', 'b""c'), ("x", "y")]
    )


def test_missing_columns_are_listed(engine: EngineCase, write_source: WriteSource) -> None:
    error = rejection(engine, write_source, csv_text("product_id,product_name", "1,milk"))
    assert "'department_id'" in error.detail
    assert "'department'" in error.detail


def test_fail_mode_rejects_unexpected_columns(
    engine: EngineCase, write_source: WriteSource
) -> None:
    content = csv_text(f"{PRODUCTS_HEADER}, Colour ", "1,2,dairy,milk,white")
    error = rejection(engine, write_source, content, SchemaEvolution.FAIL)
    assert error.reason == "unexpected_columns"
    assert "'Colour'" in error.detail
    # The same file is fine without extra columns.
    plain = read(engine, write_source, csv_text(PRODUCTS_HEADER, "1,2,x,y"), SchemaEvolution.FAIL)
    assert engine.height(plain) == 1


def test_rescue_mode_packs_extra_columns_as_json(
    engine: EngineCase, write_source: WriteSource
) -> None:
    content = csv_text(
        f"{PRODUCTS_HEADER}, Colour ,Size", '1,2,dairy,milk," white ",', "2,2,x,y,,L"
    )
    frame = read(engine, write_source, content, RESCUE)
    assert engine.columns(frame) == source_columns(engine)
    rescued = [json.loads(r[RESCUED_DATA]) for r in in_line_order(engine, frame)]
    assert rescued == [{" Colour ": " white ", "Size": ""}, {" Colour ": "", "Size": "L"}]


def test_add_new_columns_keeps_sanitised_text_columns(
    engine: EngineCase, write_source: WriteSource
) -> None:
    content = csv_text(f"{PRODUCTS_HEADER}, Gift Wrap ,Prix(€)", "1,2,dairy,milk, yes ,")
    frame = read(engine, write_source, content, SchemaEvolution.ADD_NEW_COLUMNS)
    assert engine.columns(frame) == source_columns(engine, "gift_wrap", "prix___")
    (row,) = engine.records(frame)
    assert row["gift_wrap"] == "yes"
    assert row["prix___"] is None
    assert row[RESCUED_DATA] is None


@pytest.mark.parametrize(
    "extra", ["gift wrap,gift-wrap", "_source_file"], ids=["same-sanitised", "reserved"]
)
def test_add_new_columns_rejects_clashing_names(
    engine: EngineCase, write_source: WriteSource, extra: str
) -> None:
    values = ",".join("x" for _ in extra.split(","))
    content = csv_text(f"{PRODUCTS_HEADER},{extra}", f"1,2,dairy,milk,{values}")
    error = rejection(engine, write_source, content, SchemaEvolution.ADD_NEW_COLUMNS)
    assert error.reason == "duplicate_columns"
