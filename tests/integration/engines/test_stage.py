"""TableEngine.stage on every engine: quarantine, casts, derived dates, in-batch dedup, counts."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, date, datetime
from typing import Any

from ecommerce_lakehouse.domain.audit import QUARANTINE, RowCounts
from ecommerce_lakehouse.domain.errors import FileRejected
from ecommerce_lakehouse.domain.schemas import (
    INGESTED_AT,
    ORDER_ITEMS,
    ORDERS,
    PRODUCTS,
    RESCUED_DATA,
    RUN_ID,
    SOURCE_FILE,
    TableSchema,
)
from ecommerce_lakehouse.domain.types import Column, ColumnType, SchemaEvolution
from ecommerce_lakehouse.ports.engine import StagedBatch
from tests.contract.conftest_engines import TEXT_TYPES, EngineCase
from tests.integration.engines.harness import WriteSource, csv_text, make_run

ORDERS_HEADER = "order_num,order_id,user_id,order_timestamp,total_amount,date"
ITEMS_HEADER = (
    "id,order_id,user_id,days_since_prior_order,product_id,add_to_cart_order,reordered,"
    "order_timestamp,date"
)
PRODUCTS_HEADER = "product_id,department_id,department,product_name"


def stage(
    engine: EngineCase,
    write_source: WriteSource,
    schema: TableSchema,
    files: Sequence[str],
    evolution: SchemaEvolution = SchemaEvolution.RESCUE,
) -> StagedBatch[Any]:
    frames = [
        engine.engine.read_source(write_source(f"f{i}.csv", content, schema, i), schema, evolution)
        for i, content in enumerate(files)
    ]
    return engine.engine.stage(frames, schema, make_run(evolution=evolution))


def key(index: int, schema: TableSchema) -> str:
    return f"raw-data/{schema.name}/f{index}.csv"


def test_quarantine_names_the_first_broken_rule_with_line_numbers(
    engine: EngineCase, write_source: WriteSource
) -> None:
    content = csv_text(
        ORDERS_HEADER,
        "1,A,u1,2024-01-01T10:00:00Z,5,2024-01-01",  # valid
        "2,,u1,not a time,-1,x",  # not_null(order_id) comes first
        "3,C,u1,2024-02-30T10:00,5,",  # impossible date
        "4,D,u1,2024-01-01T10:00,-0.5,",  # in_range
        "5,E,u1,2024-01-01T23:30:00-05:00,5,2024-01-01",  # UTC date is 2024-01-02
        "6,F,u1,2024-01-01T10:00,1e999,",  # not finite
        '7,G,u1,2024-01-01T10:00,5,"2024-1-1"',  # not a date
    )
    staged = stage(engine, write_source, ORDERS, [content])
    quarantine = staged.quarantine
    assert tuple(engine.columns(quarantine)) == QUARANTINE.column_names
    assert engine.types(quarantine)["line_number"] == ColumnType.BIGINT
    assert engine.types(quarantine)["quarantined_at"] == ColumnType.TIMESTAMP
    assert engine.rows(quarantine, "line_number", "rule", "column_name") == engine.arranged(
        [
            (3, "not_null", "order_id"),
            (4, "parses_as_timestamp", "order_timestamp"),
            (5, "in_range", "total_amount"),
            (6, "date_matches_timestamp", "date"),
            (7, "parses_as_double", "total_amount"),
            (8, "parses_as_date", "date"),
        ]
    )
    first = min(engine.records(quarantine), key=lambda r: r["line_number"])
    assert first["run_id"] == "run-1"
    assert first["entity"] == "orders"
    assert first["source_file"] == key(0, ORDERS)
    assert first["reason"] == "order_id is required but is empty"
    assert first["quarantined_at"] == datetime(2024, 6, 1, 12, tzinfo=UTC)
    assert json.loads(first["raw_record"])["order_timestamp"] == "not a time"
    assert engine.column(staged.survivors, "order_id") == ["A"]
    assert staged.counts == {key(0, ORDERS): RowCounts(rows_read=7, quarantined=6)}


def test_valid_rows_are_cast_and_dates_derived_in_utc(
    engine: EngineCase, write_source: WriteSource
) -> None:
    content = csv_text(
        ITEMS_HEADER,
        "i1,o1,u1,,p1,1,TRUE,2024-03-01 23:30-02:00,",
        "i2,o1,u1,365,p2,2147483647,0,2024-03-01T10:00:00.123456789Z,2024-03-01",
    )
    staged = stage(engine, write_source, ORDER_ITEMS, [content])
    survivors = staged.survivors
    assert engine.height(staged.quarantine) == 0
    assert engine.columns(survivors) == [
        *ORDER_ITEMS.column_names,
        RESCUED_DATA,
        SOURCE_FILE,
        INGESTED_AT,
        RUN_ID,
    ]
    types = engine.types(survivors)
    assert types["days_since_prior_order"] == ColumnType.INT
    assert types["add_to_cart_order"] == ColumnType.INT
    assert types["reordered"] == ColumnType.BOOLEAN
    assert types["order_timestamp"] == ColumnType.TIMESTAMP
    assert types["date"] == ColumnType.DATE
    assert types[INGESTED_AT] == ColumnType.TIMESTAMP
    first, second = sorted(engine.records(survivors), key=lambda r: r["id"])
    assert first["days_since_prior_order"] is None
    assert first["reordered"] is True
    assert first["order_timestamp"] == datetime(2024, 3, 2, 1, 30, tzinfo=UTC)
    assert first["date"] == date(2024, 3, 2)
    assert second["add_to_cart_order"] == 2_147_483_647
    assert second["reordered"] is False
    # Fractions are truncated to microseconds, not rounded.
    assert second["order_timestamp"] == datetime(2024, 3, 1, 10, 0, 0, 123456, tzinfo=UTC)
    assert second[INGESTED_AT] == datetime(2024, 6, 1, 12, tzinfo=UTC)
    assert second[RUN_ID] == "run-1"
    if engine.ordered:  # the rows keep their file order
        assert [r["id"] for r in engine.records(survivors)] == ["i1", "i2"]


def test_dedup_keeps_the_greatest_timestamp_then_the_last_occurrence(
    engine: EngineCase, write_source: WriteSource
) -> None:
    first_file = csv_text(
        ORDERS_HEADER,
        "1,A,u1,2024-01-01T12:00:00Z,1,",  # A: greatest timestamp wins, though earliest
        "2,B,u1,2024-01-01T10:00:00Z,1,",  # B: tie with f1, f1 is later
        "3,C,u1,2024-01-01T10:00:00Z,1,",
        "4,C,u1,2024-01-01T10:00:00Z,2,",  # C: tie within the file, the later line wins
    )
    second_file = csv_text(
        ORDERS_HEADER,
        "5,A,u1,2024-01-01T11:00:00Z,2,",
        "6,B,u1,2024-01-01T10:00:00Z,2,",
    )
    staged = stage(engine, write_source, ORDERS, [first_file, second_file])
    survivors = {r["order_id"]: r for r in engine.records(staged.survivors)}
    assert {k: r["order_num"] for k, r in survivors.items()} == {"A": "1", "B": "6", "C": "4"}
    assert survivors["B"][SOURCE_FILE] == key(1, ORDERS)
    # Duplicates are charged to the file of each dropped row.
    assert staged.counts == {
        key(0, ORDERS): RowCounts(rows_read=4, duplicates_in_batch=2),
        key(1, ORDERS): RowCounts(rows_read=2, duplicates_in_batch=1),
    }


def test_a_key_holding_the_ordering_column_dedups_on_the_whole_key(
    engine: EngineCase, write_source: WriteSource
) -> None:
    schema = replace(ORDERS, primary_key=("order_id", "order_timestamp"))
    files = [
        csv_text(
            ORDERS_HEADER,
            "1,A,u1,2024-01-01T10:00:00Z,1,",
            "2,A,u1,2024-01-01T11:00:00Z,1,",  # another key: (A, 11:00)
            "3,A,u1,2024-01-01T10:00:00Z,2,",  # (A, 10:00) again: the later line wins
        ),
        csv_text(ORDERS_HEADER, "4,A,u1,2024-01-01T11:00:00Z,2,"),  # (A, 11:00) again
    ]
    staged = stage(engine, write_source, schema, files)
    assert sorted(r["order_num"] for r in engine.records(staged.survivors)) == ["3", "4"]
    assert staged.counts == {
        key(0, schema): RowCounts(rows_read=3, duplicates_in_batch=2),
        key(1, schema): RowCounts(rows_read=1),
    }


def test_products_dedup_to_the_last_occurrence_across_files(
    engine: EngineCase, write_source: WriteSource
) -> None:
    files = [
        csv_text(PRODUCTS_HEADER, "1,1,dairy,milk", "1,1,dairy,whole milk", "2,1,dairy,cream"),
        csv_text(PRODUCTS_HEADER, "1,2,bakery,bread"),
    ]
    staged = stage(engine, write_source, PRODUCTS, files)
    assert engine.rows(staged.survivors, "product_id", "product_name") == engine.arranged(
        [("2", "cream"), ("1", "bread")]
    )
    assert staged.counts[key(0, PRODUCTS)].duplicates_in_batch == 2
    assert staged.counts[key(1, PRODUCTS)].duplicates_in_batch == 0


def test_each_row_names_its_own_file_and_checksum_past_a_rejected_file(
    engine: EngineCase, write_source: WriteSource
) -> None:
    contents = [
        csv_text(PRODUCTS_HEADER, "1,1,dairy,milk", ",1,dairy,no key"),
        csv_text("department_id,department", "1,dairy"),  # rejected: no product_id column
        csv_text(PRODUCTS_HEADER, "1,2,bakery,bread", "3,2,bakery,rolls", ",2,x,y"),
    ]
    frames = []
    for i, content in enumerate(contents):
        source = replace(write_source(f"f{i}.csv", content, PRODUCTS, i), checksum=str(i) * 64)
        try:
            frames.append(engine.engine.read_source(source, PRODUCTS, SchemaEvolution.RESCUE))
        except FileRejected:
            assert i == 1
    staged = engine.engine.stage(frames[::-1], PRODUCTS, make_run())
    assert engine.rows(staged.survivors, "product_id", SOURCE_FILE) == engine.arranged(
        [("1", key(2, PRODUCTS)), ("3", key(2, PRODUCTS))]
    )
    quarantined = engine.rows(staged.quarantine, "source_file", "source_checksum", "line_number")
    assert quarantined == engine.arranged(
        [(key(0, PRODUCTS), "0" * 64, 3), (key(2, PRODUCTS), "2" * 64, 4)]
    )
    assert staged.counts == {
        key(0, PRODUCTS): RowCounts(rows_read=2, quarantined=1, duplicates_in_batch=1),
        key(2, PRODUCTS): RowCounts(rows_read=3, quarantined=1),
    }


def test_evolved_columns_are_concatenated_across_files(
    engine: EngineCase, write_source: WriteSource
) -> None:
    files = [
        csv_text(f"{PRODUCTS_HEADER},colour", "1,1,dairy,milk,white"),
        csv_text(f"{PRODUCTS_HEADER},size", "2,1,dairy,cream,S"),
        csv_text(PRODUCTS_HEADER),
    ]
    staged = stage(engine, write_source, PRODUCTS, files, SchemaEvolution.ADD_NEW_COLUMNS)
    assert staged.extra_columns == ("colour", "size")
    assert engine.rows(staged.survivors, "product_id", "colour", "size") == engine.arranged(
        [("1", "white", None), ("2", None, "S")]
    )
    assert engine.columns(staged.survivors)[-3:] == [SOURCE_FILE, INGESTED_AT, RUN_ID]


def test_timestamps_outside_years_1_to_9999_in_utc_are_invalid(
    engine: EngineCase, write_source: WriteSource
) -> None:
    # The domain reference raises OverflowError here; the engine quarantines the row.
    content = csv_text(
        ORDERS_HEADER,
        "1,A,u1,0001-01-01T00:30+01:00,1,",
        "2,B,u1,9999-12-31T23:30-01:00,1,",
        "3,C,u1,0001-01-01T00:30-01:00,1,",
    )
    staged = stage(engine, write_source, ORDERS, [content])
    assert engine.rows(staged.quarantine, "line_number", "rule") == engine.arranged(
        [(2, "parses_as_timestamp"), (3, "parses_as_timestamp")]
    )
    assert engine.column(staged.survivors, "order_timestamp") == [
        datetime(1, 1, 1, 1, 30, tzinfo=UTC)
    ]


def test_an_empty_batch_stages_to_empty_frames(engine: EngineCase) -> None:
    staged = engine.engine.stage([], ORDERS, make_run())
    assert engine.height(staged.survivors) == 0
    assert engine.types(staged.survivors)["order_timestamp"] == ColumnType.TIMESTAMP
    assert tuple(engine.columns(staged.quarantine)) == QUARANTINE.column_names
    assert staged.counts == {}


def test_a_key_repeated_only_by_a_quarantined_row_is_no_duplicate(
    engine: EngineCase, write_source: WriteSource
) -> None:
    content = csv_text(
        ORDERS_HEADER,
        "1,A,u1,2024-01-01T10:00:00Z,1,",
        "2,A,u1,2024-01-01T11:00:00Z,-1,",  # newer, but quarantined (in_range)
        "3,B,u1,2024-01-01T10:00:00Z,1,",
    )
    staged = stage(engine, write_source, ORDERS, [content])
    assert engine.rows(staged.survivors, "order_num", "order_id") == engine.arranged(
        [("1", "A"), ("3", "B")]
    )
    assert staged.counts == {key(0, ORDERS): RowCounts(rows_read=3, quarantined=1)}


def test_frames_given_out_of_file_order_stage_as_in_order(
    engine: EngineCase, write_source: WriteSource
) -> None:
    files = [
        csv_text(ORDERS_HEADER, "1,A,u1,2024-01-01T10:00:00Z,1,", "2,B,u1,x,1,"),
        csv_text(ORDERS_HEADER, "3,A,u1,2024-01-01T10:00:00Z,2,", "4,C,u1,y,1,"),
        csv_text(ORDERS_HEADER, "5,D,u1,2024-01-01T10:00:00Z,2,"),
        csv_text(ORDERS_HEADER),  # a file of no rows among them
    ]
    frames = [
        engine.engine.read_source(
            write_source(f"f{i}.csv", content, ORDERS, i), ORDERS, SchemaEvolution.RESCUE
        )
        for i, content in enumerate(files)
    ]
    in_order = engine.engine.stage(frames, ORDERS, make_run())
    shuffled = engine.engine.stage([frames[2], frames[3], frames[0], frames[1]], ORDERS, make_run())
    # Ties go to the later file whatever the order the frames come in.
    assert engine.rows(shuffled.survivors, "order_num", "order_id") == engine.arranged(
        [("3", "A"), ("5", "D")]
    )
    assert engine.arranged(engine.records(shuffled.survivors)) == engine.arranged(
        engine.records(in_order.survivors)
    )
    assert engine.arranged(engine.records(shuffled.quarantine)) == engine.arranged(
        engine.records(in_order.quarantine)
    )
    assert engine.types(shuffled.survivors) == engine.types(in_order.survivors)
    assert engine.types(shuffled.quarantine) == engine.types(in_order.quarantine)
    assert shuffled.counts == in_order.counts
    assert engine.types(shuffled.survivors)[SOURCE_FILE] in TEXT_TYPES


def test_each_file_with_columns_not_in_the_schema_gives_one_rescued_record(
    engine: EngineCase, write_source: WriteSource
) -> None:
    staged = stage(
        engine,
        write_source,
        PRODUCTS,
        [
            csv_text(
                f"{PRODUCTS_HEADER},coupon_code, Size ",
                "1,2,dairy,milk,SAVE10,L",
                "3,2,dairy,butter,SAVE20,M",
            ),
            csv_text(PRODUCTS_HEADER, "2,2,dairy,cream"),
            csv_text(f"{PRODUCTS_HEADER},colour", "4,2,dairy,yoghurt,white", "5,2,dairy,kefir,"),
        ],
    )
    assert set(staged.rescued) == {key(0, PRODUCTS), key(2, PRODUCTS)}
    # Each file's first record, its extra columns in header order.
    assert list(json.loads(staged.rescued[key(0, PRODUCTS)]).items()) == [
        ("coupon_code", "SAVE10"),
        (" Size ", "L"),
    ]
    assert json.loads(staged.rescued[key(2, PRODUCTS)]) == {"colour": "white"}


def test_key_columns_named_like_the_engines_own_counts_stage_as_any_other(
    engine: EngineCase, write_source: WriteSource
) -> None:
    # A table's columns are the user's to name; staging's own counts must not take them.
    schema = TableSchema(
        entity="things",
        columns=tuple(
            Column(name=n, type=ColumnType.STRING) for n in ("rescued", "evolved", "rows", "kind")
        ),
        primary_key=("rescued", "evolved", "rows"),
        partition_column="kind",
    )
    staged = stage(
        engine,
        write_source,
        schema,
        [csv_text("rescued,evolved,rows,kind,extra", "a,b,c,k1,e1", "a,b,c,k2,e2", "x,y,z,k1,e3")],
    )
    assert staged.counts == {key(0, schema): RowCounts(rows_read=3, duplicates_in_batch=1)}
    assert json.loads(staged.rescued[key(0, schema)]) == {"extra": "e1"}
    assert engine.rows(staged.survivors, "rescued", "kind") == engine.arranged(
        [("a", "k2"), ("x", "k1")]
    )


def test_each_file_with_columns_not_in_the_schema_names_its_evolved_columns(
    engine: EngineCase, write_source: WriteSource
) -> None:
    staged = stage(
        engine,
        write_source,
        PRODUCTS,
        [
            csv_text(f"{PRODUCTS_HEADER},Coupon Code, Size ", "1,2,dairy,milk,SAVE10,L"),
            csv_text(PRODUCTS_HEADER, "2,2,dairy,cream"),
            csv_text(f"{PRODUCTS_HEADER},colour", "4,2,dairy,yoghurt,white"),
        ],
        SchemaEvolution.ADD_NEW_COLUMNS,
    )
    assert staged.evolved == {
        key(0, PRODUCTS): ("coupon_code", "size"),
        key(2, PRODUCTS): ("colour",),
    }
    assert not staged.rescued
