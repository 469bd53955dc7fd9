"""Spark engine read_source and stage: what the engine-parametrised suites cannot show.

``tests/integration/engines`` holds every engine to the same expectations; here the Spark
engine is compared with the Polars engine file for file on tricky CSVs (the same frames,
quarantine, survivors and counts, raw records byte for byte), and the Spark-only limits and
guarantees are checked: names Spark will not read, the 2 GiB limit, glob characters, a
parse that runs once, and results independent of the session's time zone and ANSI mode.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from functools import reduce
from pathlib import Path
from typing import Any

import pytest

from ecommerce_lakehouse.domain.errors import FileRejected
from ecommerce_lakehouse.domain.schemas import (
    FILE_ORDINAL,
    LINE_NUMBER,
    ORDER_ITEMS,
    ORDERS,
    PRODUCTS,
    RAW_RECORD,
    TableSchema,
)
from ecommerce_lakehouse.domain.types import SchemaEvolution
from ecommerce_lakehouse.ports.engine import RunContext, SourceFile
from tests.contract.conftest_engines import EngineCase, polars_case, spark_case
from tests.contract.test_rule_parity import _header, assert_parity, listed_edge_rows
from tests.integration.engines.harness import WriteSource, csv_text, make_run, source_writer

pytestmark = pytest.mark.spark

RESCUE = SchemaEvolution.RESCUE
ADD = SchemaEvolution.ADD_NEW_COLUMNS
PRODUCTS_HEADER = "product_id,department_id,department,product_name"
ORDERS_HEADER = "order_num,order_id,user_id,order_timestamp,total_amount,date"


@pytest.fixture(scope="module")
def spark() -> EngineCase:
    return spark_case()


@pytest.fixture(scope="module")
def polars() -> EngineCase:
    return polars_case()


@pytest.fixture
def write_source(tmp_path: Path) -> WriteSource:
    return source_writer(tmp_path)


# ---------------------------------------------------------------- the same as Polars
#: Files whose every detail (line numbers, raw records, rejections) the engines must agree on
#: (plain rejections and empty files are in the engine suites).
TRICKY_PRODUCTS: dict[str, bytes] = {
    "quoting": (
        f'{PRODUCTS_HEADER}, Extra \u00e9\n1,2,"dairy, eggs","say ""cheese""",\n'
        '2,,"two\nlines",x,""\n,3,x,y,"\x1c\x0b\x1f\x7f\u2028\\\\u001C""/\t\u00e9\x01\r\n"\n'
    ).encode(),
    "blank-lines": f'{PRODUCTS_HEADER}\n\n1,2,3,4\n ,\t, ,\n"",,,\n5,"x\ny",7,8\n,1,1,1'.encode(),
    "bom-crlf": f'\ufeff{PRODUCTS_HEADER}\r\n1,2,3,4\r\n,"a\r\nb",3,4\r\n'.encode(),
    "short-records": f"{PRODUCTS_HEADER},x\n,2\n\n,3,4,5,6\n".encode(),
    "nul-and-quotes": f'{PRODUCTS_HEADER}\n,a\x00b, "a",4\n'.encode(),
    "whitespace-header": b" , , \n,,\n",
    "blank-first-line": f"\n\n{PRODUCTS_HEADER}\n1,2,3,4\n".encode(),
    "text-after-quote": f'{PRODUCTS_HEADER}\n1,"a"b,3,4\n'.encode(),
    "blank-headers": f"{PRODUCTS_HEADER},,\n1,2,3,4,5,6\n".encode(),
}
TRICKY_ORDERS: dict[str, bytes] = {
    "orders-a": csv_text(
        ORDERS_HEADER,
        "1,A,u1,2024-01-01T23:30:00-05:00, 5.5 ,",
        "2,B,u1,2024-01-01T10:00,-1,",
        "3,C,u1,not a time,1,2024-01-01",
        "4,D,u1,2024-01-01T10:00,1,2024-01-02",
        "5,E,,2024-01-01T10:00,1,",
        "6,A,u1,2024-01-01T23:30:00-05:00,7,",
        "7,F,u1,0001-01-01T00:30+01:00,1,",
        "8,G,u1,9999-12-31T23:59:59.9999999-00:00,1e3,",
    ).encode(),
    "orders-b": csv_text(
        "order_num,Order_ID,user_id,order_timestamp,total_amount, Note ",
        "9,A,u2,2024-01-02T00:00Z,1,x",
        "10,F,u2,2024-01-01T10:00,1,",
    ).encode(),
}


def _read_all(
    case: EngineCase,
    directory: Path,
    schema: TableSchema,
    files: dict[str, bytes],
    evolution: SchemaEvolution,
) -> tuple[dict[str, str], list[Any]]:
    write = source_writer(directory)
    rejected: dict[str, str] = {}
    frames = []
    for ordinal, (name, content) in enumerate(files.items()):
        source = write(f"{name}.csv", content, schema, ordinal)
        try:
            frames.append(case.engine.read_source(source, schema, evolution))
        except FileRejected as error:
            rejected[name] = str(error)
    return rejected, frames


def _outcome(
    case: EngineCase,
    directory: Path,
    schema: TableSchema,
    files: dict[str, bytes],
    evolution: SchemaEvolution,
) -> dict[str, Any]:
    """Everything read_source and stage give, as plain values in a defined order."""
    rejected, frames = _read_all(case, directory, schema, files, evolution)
    staged = case.engine.stage(frames, schema, make_run(evolution=evolution))
    if case.name == "spark":  # one job for every source frame (their columns may differ)
        read = case.records(reduce(lambda a, b: a.unionByName(b, allowMissingColumns=True), frames))
    else:
        read = [r for f in frames for r in case.records(f)]
    # Polars keeps the rows in file and line order; Spark need not.
    by_line = (
        read if case.ordered else sorted(read, key=lambda r: (r[FILE_ORDINAL], r[LINE_NUMBER]))
    )
    return {
        "rejected": rejected,
        # Nulls left out: the union gives each file's frame the others' evolved columns. A
        # row that breaks no rule may leave its line number out (the Polars engine does).
        "read": [
            {
                k: v
                for k, v in r.items()
                if v is not None and not (k == LINE_NUMBER and r.get(RAW_RECORD) is None)
            }
            for r in by_line
        ],
        "quarantine": case.records(staged.quarantine),
        "survivors": sorted(case.records(staged.survivors), key=lambda r: str(r)),
        "counts": staged.counts,
        "extra_columns": staged.extra_columns,
        "columns": (case.columns(staged.survivors), case.columns(staged.quarantine)),
    }


@pytest.mark.parametrize(
    ("schema", "files", "evolution"),
    [(PRODUCTS, TRICKY_PRODUCTS, RESCUE), (ORDERS, TRICKY_ORDERS, ADD)],
    ids=["products-rescue", "orders-add-new-columns"],
)
def test_the_same_results_as_the_polars_engine(
    spark: EngineCase,
    polars: EngineCase,
    tmp_path: Path,
    schema: TableSchema,
    files: dict[str, bytes],
    evolution: SchemaEvolution,
) -> None:
    expected = _outcome(polars, tmp_path / "polars", schema, files, evolution)
    actual = _outcome(spark, tmp_path / "spark", schema, files, evolution)
    assert actual["rejected"] == expected["rejected"]
    for part in ("read", "quarantine", "survivors", "counts", "extra_columns", "columns"):
        assert actual[part] == expected[part], part


# ---------------------------------------------------------------- Spark-only behaviour
def test_an_evolved_column_may_not_take_the_violation_column_name(
    spark: EngineCase, write_source: WriteSource
) -> None:
    # Spark resolves names case-insensitively: "_violation" would be "_Violation".
    content = csv_text(f"{PRODUCTS_HEADER}, _VIOLATION ", "1,2,dairy,milk,x")
    with pytest.raises(FileRejected) as caught:
        spark.engine.read_source(write_source("f.csv", content, PRODUCTS), PRODUCTS, ADD)
    assert caught.value.reason == "duplicate_columns"
    assert "'_violation'" in caught.value.detail


@pytest.mark.parametrize("name", ["_orders.csv", ".orders.csv"])
def test_names_spark_ignores_are_rejected_not_read_as_empty(
    spark: EngineCase, write_source: WriteSource, name: str
) -> None:
    source = write_source(name, csv_text(PRODUCTS_HEADER, "1,2,x,y"), PRODUCTS)
    with pytest.raises(FileRejected) as caught:
        spark.engine.read_source(source, PRODUCTS, RESCUE)
    assert caught.value.reason == "unreadable_name"


def test_files_over_2_gib_are_rejected_before_reading(spark: EngineCase, tmp_path: Path) -> None:
    source = SourceFile(
        key="raw-data/products/huge.csv",
        uri=str(tmp_path / "absent.csv"),
        entity=PRODUCTS.entity,
        size_bytes=2**31,
        checksum="0" * 64,
        ordinal=0,
    )
    with pytest.raises(FileRejected) as caught:
        spark.engine.read_source(source, PRODUCTS, RESCUE)
    assert caught.value.reason == "file_too_large"


def test_glob_characters_in_a_name_are_literal(
    spark: EngineCase, write_source: WriteSource
) -> None:
    write_source("p1x.csv", csv_text(PRODUCTS_HEADER, "other,2,x,y"), PRODUCTS)
    source = write_source("p[1]{x}*?.csv", csv_text(PRODUCTS_HEADER, "1,2,x,y"), PRODUCTS)
    frame = spark.engine.read_source(source, PRODUCTS, RESCUE)
    assert spark.column(frame, "product_id") == ["1"]


def test_the_file_is_parsed_once_and_not_read_again(
    spark: EngineCase, write_source: WriteSource
) -> None:
    # 20 000 records: several Arrow batches out of the parse, quoted newlines among them,
    # and two blank lines at the end (rows too, quarantined for their missing key).
    rows = [f'{i},2,"d\n{i}",x' if i % 1000 == 0 else f"{i},2,d,x" for i in range(20_000)]
    source = write_source("big.csv", csv_text(PRODUCTS_HEADER, *rows, "", "  "), PRODUCTS)
    frame = spark.engine.read_source(source, PRODUCTS, RESCUE)
    # The raw file is archived once committed: nothing after read_source may need it.
    Path(source.uri).unlink()
    staged = spark.engine.stage([frame], PRODUCTS, make_run())
    assert staged.counts[source.key].rows_read == 20_002
    assert staged.counts[source.key].quarantined == 2
    lines = dict(spark.rows(frame, "product_id", LINE_NUMBER))
    # Line 1 is the header; record i starts on line 2 + i + (quoted newlines before it).
    assert lines["0"] == 2
    assert lines["1"] == 4
    assert lines["19999"] == 2 + 19_999 + 20
    assert spark.height(staged.survivors) == 20_000


def test_a_lone_carriage_return_is_text(spark: EngineCase, write_source: WriteSource) -> None:
    # Only "\n" (or "\r\n") ends a line, as for the Polars engine.
    content = f"{PRODUCTS_HEADER}\r\n,2\r3,x,y\r\n5,6,7,8\n".encode()
    frame = spark.engine.read_source(write_source("f.csv", content, PRODUCTS), PRODUCTS, RESCUE)
    broken, valid = sorted(spark.records(frame), key=lambda r: r[LINE_NUMBER])
    assert (broken[LINE_NUMBER], valid[LINE_NUMBER]) == (2, 3)
    assert json.loads(broken[RAW_RECORD])["department_id"] == "2\r3"


def _edge_batches(schemas: Sequence[TableSchema]) -> Iterator[tuple[TableSchema, list[Any]]]:
    for schema in schemas:
        yield schema, [(_header(schema, True), listed_edge_rows(schema))]


def test_results_do_not_depend_on_the_session_time_zone_or_ansi_mode(
    spark: EngineCase, tmp_path: Path
) -> None:
    conf = spark.engine.session.conf
    saved = {k: conf.get(k) for k in ("spark.sql.session.timeZone", "spark.sql.ansi.enabled")}
    conf.set("spark.sql.session.timeZone", "Asia/Kathmandu")  # +05:45: dates move
    conf.set("spark.sql.ansi.enabled", "true")  # bad casts would raise, not give null
    try:
        for schema, files in _edge_batches([ORDERS, ORDER_ITEMS]):
            assert_parity(spark, tmp_path, schema, files)
    finally:
        for key, value in saved.items():
            conf.set(key, value)


def test_quarantine_time_is_the_run_start_whatever_the_time_zone(
    spark: EngineCase, write_source: WriteSource
) -> None:
    source = write_source("f.csv", csv_text(PRODUCTS_HEADER, ",2,x,y"), PRODUCTS)
    frame = spark.engine.read_source(source, PRODUCTS, RESCUE)
    started = datetime(2024, 6, 1, 12, 30, 15, 123456, tzinfo=UTC)
    run = RunContext(run_id="r", started_at=started.replace(tzinfo=None))  # naive is UTC
    staged = spark.engine.stage([frame], PRODUCTS, run)
    assert spark.column(staged.quarantine, "quarantined_at") == [started]
