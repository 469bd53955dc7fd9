"""PolarsDeltaTableEngine.read_source: CSV dialect, header matching, rejections, evolution."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from datetime import date

import polars as pl
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
    SOURCE_FILE,
)
from ecommerce_lakehouse.domain.types import SchemaEvolution
from ecommerce_lakehouse.ports.engine import SourceFile
from ecommerce_lakehouse_polars.engine import PolarsDeltaTableEngine
from ecommerce_lakehouse_polars.reader import VIOLATION
from tests.integration.polars.conftest import csv_text

RESCUE = SchemaEvolution.RESCUE
PRODUCTS_HEADER = "product_id,department_id,department,product_name"
SOURCE_COLUMNS = [
    *PRODUCTS.column_names,
    RESCUED_DATA,
    SOURCE_FILE,
    FILE_ORDINAL,
    LINE_NUMBER,
    VIOLATION,
    RAW_RECORD,
]

WriteSource = Callable[..., SourceFile]


def read(
    engine: PolarsDeltaTableEngine,
    write_source: WriteSource,
    content: str | bytes,
    evolution: SchemaEvolution = RESCUE,
    schema=PRODUCTS,
) -> pl.DataFrame:
    return engine.read_source(write_source("f.csv", content, schema, 3), schema, evolution)


def rejection(
    engine: PolarsDeltaTableEngine,
    write_source: WriteSource,
    content: str | bytes,
    evolution: SchemaEvolution = RESCUE,
) -> FileRejected:
    with pytest.raises(FileRejected) as caught:
        read(engine, write_source, content, evolution)
    assert "\n" not in caught.value.detail
    return caught.value


class _Storage:
    """Just what ``create_engine`` reads of an ObjectStorage."""

    @property
    def storage_options(self) -> dict[str, str]:
        return {"aws_region": "eu-west-1"}


def test_factory_builds_the_engine_from_the_container() -> None:
    from ecommerce_lakehouse_polars import create_engine

    engine = create_engine(_Storage(), {})  # type: ignore[arg-type]
    assert isinstance(engine, PolarsDeltaTableEngine)
    assert engine.name == "polars"
    assert engine.storage_options == {"aws_region": "eu-west-1"}

    from ecommerce_lakehouse_polars import PolarsEngineContainer

    container = PolarsEngineContainer(storage_options={})
    assert container.engine() is container.engine()  # one engine per container


def test_importing_the_package_loads_no_engine_library() -> None:
    code = (
        "import sys, ecommerce_lakehouse_polars; "
        "print(sorted(m for m in ('polars', 'deltalake', 'pyarrow') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_reads_every_value_as_trimmed_text_with_lineage(
    engine: PolarsDeltaTableEngine, write_source: WriteSource
) -> None:
    frame = read(
        engine,
        write_source,
        csv_text(PRODUCTS_HEADER, " 1 ,007,  , Milk ", "2,1.50,dairy,", "  ,3, x ,y"),
    )
    assert frame.columns == SOURCE_COLUMNS
    assert all(dtype == pl.String for dtype in frame.select(PRODUCTS.column_names).dtypes)
    assert frame.schema[SOURCE_FILE] == pl.Categorical
    assert frame.schema[LINE_NUMBER] == pl.Int64
    assert frame.schema[FILE_ORDINAL] == pl.Int64
    assert frame.schema[VIOLATION] == pl.Int32
    first, second, third = frame.to_dicts()
    # No type inference: "007" and "1.50" keep their spelling; blanks become null. Valid
    # rows carry no raw record.
    assert first == {
        "product_id": "1",
        "department_id": "007",
        "department": None,
        "product_name": "Milk",
        RESCUED_DATA: None,
        SOURCE_FILE: "raw-data/products/f.csv",
        FILE_ORDINAL: 3,
        LINE_NUMBER: 2,
        VIOLATION: None,
        RAW_RECORD: None,
    }
    assert second["department_id"] == "1.50"
    assert second["product_name"] is None
    assert second[LINE_NUMBER] == 3
    # A row breaking a rule keeps its raw, untrimmed values under the original headers.
    assert third[VIOLATION] == 0  # not_null(product_id), the first rule
    assert third[LINE_NUMBER] == 4
    assert json.loads(third[RAW_RECORD]) == {
        "product_id": "  ",
        "department_id": "3",
        "department": " x ",
        "product_name": "y",
    }


def test_rows_are_typed_and_checked_against_the_rules(
    engine: PolarsDeltaTableEngine, write_source: WriteSource
) -> None:
    content = csv_text(
        "order_num,order_id,user_id,order_timestamp,total_amount,date",
        "1,A,u1,2024-01-01T23:30:00-05:00, 5.5 ,",
        "2,B,u1,2024-01-01T10:00,-1,2024-01-01",
        '3,C,u1,later,5,"2024-01-01"',
    )
    frame = read(engine, write_source, content, schema=ORDERS)
    assert frame.schema["order_timestamp"] == pl.Datetime("us", "UTC")
    assert frame.schema["total_amount"] == pl.Float64
    assert frame.schema["date"] == pl.Date
    first, second, third = frame.to_dicts()
    # The date is derived from the UTC timestamp when absent.
    assert (first["total_amount"], first["date"], first[VIOLATION]) == (
        5.5,
        date(2024, 1, 2),
        None,
    )
    assert first[RAW_RECORD] is None
    rules = [rule_name(r) for r in ORDERS.rules]
    assert rules[second[VIOLATION]] == "in_range"
    assert rules[third[VIOLATION]] == "parses_as_timestamp"
    assert json.loads(third[RAW_RECORD])["date"] == "2024-01-01"


def test_bom_and_crlf(engine: PolarsDeltaTableEngine, write_source: WriteSource) -> None:
    rows = ("1,2,dairy,milk", ",2,dairy,cream")
    content = b"\xef\xbb\xbf" + csv_text(PRODUCTS_HEADER, *rows, eol="\r\n").encode()
    frame = read(engine, write_source, content)
    assert frame.select(PRODUCTS.column_names).rows() == [
        ("1", "2", "dairy", "milk"),
        (None, "2", "dairy", "cream"),
    ]
    assert json.loads(frame[RAW_RECORD][1]) == {
        "product_id": "",
        "department_id": "2",
        "department": "dairy",
        "product_name": "cream",
    }


def test_rfc4180_quoting_and_physical_line_numbers(
    engine: PolarsDeltaTableEngine, write_source: WriteSource
) -> None:
    content = csv_text(
        PRODUCTS_HEADER,
        '1,2,"dairy, eggs","say ""cheese"""',
        '2,2,dairy,"two\nlines"',
        "3,2,dairy,after",
    )
    frame = read(engine, write_source, content)
    assert frame["department"].to_list() == ["dairy, eggs", "dairy", "dairy"]
    assert frame["product_name"].to_list() == ['say "cheese"', "two\nlines", "after"]
    # A record is numbered by the line it starts on.
    assert frame[LINE_NUMBER].to_list() == [2, 3, 5]


def test_headers_match_case_insensitively_trimmed_in_any_order(
    engine: PolarsDeltaTableEngine, write_source: WriteSource
) -> None:
    content = csv_text(
        " Product_Name ,DEPARTMENT,product_id , Department_ID", "milk,dairy,1,2", "x,y,,z"
    )
    frame = read(engine, write_source, content)
    assert frame.select(PRODUCTS.column_names).rows() == [
        ("1", "2", "dairy", "milk"),
        (None, "z", "y", "x"),
    ]
    assert list(json.loads(frame[RAW_RECORD][1])) == [
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
    engine: PolarsDeltaTableEngine, write_source: WriteSource, content: bytes
) -> None:
    frame = read(engine, write_source, content)
    assert frame.height == 0
    assert frame.columns == SOURCE_COLUMNS


def test_blank_records_are_skipped_but_counted_as_lines(
    engine: PolarsDeltaTableEngine, write_source: WriteSource
) -> None:
    content = csv_text(PRODUCTS_HEADER, "1,2,dairy,milk", "", " , ,,", "2,2,dairy,cream", "")
    frame = read(engine, write_source, content)
    assert frame["product_id"].to_list() == ["1", "2"]
    assert frame[LINE_NUMBER].to_list() == [2, 5]


def test_short_records_read_missing_fields_as_null(
    engine: PolarsDeltaTableEngine, write_source: WriteSource
) -> None:
    frame = read(engine, write_source, csv_text(PRODUCTS_HEADER, "1,2"))
    assert frame.select(PRODUCTS.column_names).rows() == [("1", "2", None, None)]


def test_orders_date_may_be_absent(
    engine: PolarsDeltaTableEngine, write_source: WriteSource
) -> None:
    content = csv_text("order_num,order_id,user_id,order_timestamp,total_amount", "1,A,u,x,1")
    frame = read(engine, write_source, content, schema=ORDERS)
    assert frame["date"].to_list() == [None]
    assert frame.schema["date"] == pl.Date


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"product_id,department_id,department,product_name\n1,2,caf\xe9,x\n", "not_utf8"),
        (
            "product_id,department_id,department,product_name\n1,2,x,y\n".encode("utf-16"),
            "not_utf8",
        ),
        (csv_text(PRODUCTS_HEADER, "1,2,dairy,milk,extra"), "malformed_csv"),
        (csv_text(PRODUCTS_HEADER, '1,2,"dairy,milk', "2,2,x,y"), "malformed_csv"),
        (csv_text(PRODUCTS_HEADER, '1,2,"dairy"x,milk'), "malformed_csv"),
        (csv_text("product_id,department,product_name", "1,dairy,milk"), "missing_columns"),
        (csv_text(f"{PRODUCTS_HEADER}, Product_ID", "1,2,dairy,milk,1"), "duplicate_columns"),
    ],
    ids=[
        "latin-1",
        "utf-16",
        "more-fields-than-header",
        "unterminated-quote",
        "text-after-closing-quote",
        "missing-column",
        "duplicate-column",
    ],
)
def test_rejected_files(
    engine: PolarsDeltaTableEngine, write_source: WriteSource, content: str | bytes, reason: str
) -> None:
    assert rejection(engine, write_source, content).reason == reason


def test_missing_columns_are_listed(
    engine: PolarsDeltaTableEngine, write_source: WriteSource
) -> None:
    error = rejection(engine, write_source, csv_text("product_id,product_name", "1,milk"))
    assert "'department_id'" in error.detail
    assert "'department'" in error.detail


def test_fail_mode_rejects_unexpected_columns(
    engine: PolarsDeltaTableEngine, write_source: WriteSource
) -> None:
    content = csv_text(f"{PRODUCTS_HEADER}, Colour ", "1,2,dairy,milk,white")
    error = rejection(engine, write_source, content, SchemaEvolution.FAIL)
    assert error.reason == "unexpected_columns"
    assert "'Colour'" in error.detail
    # The same file is fine without extra columns.
    plain = read(engine, write_source, csv_text(PRODUCTS_HEADER, "1,2,x,y"), SchemaEvolution.FAIL)
    assert plain.height == 1


def test_rescue_mode_packs_extra_columns_as_json(
    engine: PolarsDeltaTableEngine, write_source: WriteSource
) -> None:
    content = csv_text(
        f"{PRODUCTS_HEADER}, Colour ,Size", '1,2,dairy,milk," white ",', "2,2,x,y,,L"
    )
    frame = read(engine, write_source, content, RESCUE)
    assert frame.columns == SOURCE_COLUMNS
    rescued = [json.loads(v) for v in frame[RESCUED_DATA]]
    assert rescued == [{" Colour ": " white ", "Size": ""}, {" Colour ": "", "Size": "L"}]


def test_add_new_columns_keeps_sanitised_text_columns(
    engine: PolarsDeltaTableEngine, write_source: WriteSource
) -> None:
    content = csv_text(f"{PRODUCTS_HEADER}, Gift Wrap ,Prix(€)", "1,2,dairy,milk, yes ,")
    frame = read(engine, write_source, content, SchemaEvolution.ADD_NEW_COLUMNS)
    assert frame.columns == [
        *PRODUCTS.column_names,
        RESCUED_DATA,
        "gift_wrap",
        "prix___",
        SOURCE_FILE,
        FILE_ORDINAL,
        LINE_NUMBER,
        VIOLATION,
        RAW_RECORD,
    ]
    assert frame.row(0, named=True)["gift_wrap"] == "yes"
    assert frame.row(0, named=True)["prix___"] is None
    assert frame[RESCUED_DATA].to_list() == [None]


@pytest.mark.parametrize(
    "extra", ["gift wrap,gift-wrap", "_source_file"], ids=["same-sanitised", "reserved"]
)
def test_add_new_columns_rejects_clashing_names(
    engine: PolarsDeltaTableEngine, write_source: WriteSource, extra: str
) -> None:
    values = ",".join("x" for _ in extra.split(","))
    content = csv_text(f"{PRODUCTS_HEADER},{extra}", f"1,2,dairy,milk,{values}")
    error = rejection(engine, write_source, content, SchemaEvolution.ADD_NEW_COLUMNS)
    assert error.reason == "duplicate_columns"
