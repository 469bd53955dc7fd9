"""TableEngine.merge on every engine, on real Delta tables: decisions, moves, pruning, evolution."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import polars as pl
import pytest
from deltalake import write_deltalake

from ecommerce_lakehouse.domain.audit import RowCounts
from ecommerce_lakehouse.domain.errors import IntegrityError
from ecommerce_lakehouse.domain.schemas import ORDER_ITEMS, ORDERS, PRODUCTS, SOURCE_FILE
from ecommerce_lakehouse.domain.types import Column, ColumnType, SchemaEvolution
from ecommerce_lakehouse.ports.engine import MERGE_COUNTS_KEY, decode_merge_counts
from tests.integration.engines.harness import Lake, csv_text

ORDERS_HEADER = "order_num,order_id,user_id,order_timestamp,total_amount,date"
PRODUCTS_HEADER = "product_id,department_id,department,product_name"
ITEMS_HEADER = (
    "id,order_id,user_id,days_since_prior_order,product_id,add_to_cart_order,reordered,"
    "order_timestamp,date"
)


def orders(*rows: str) -> str:
    return csv_text(ORDERS_HEADER, *rows)


def products(*rows: str) -> str:
    return csv_text(PRODUCTS_HEADER, *rows)


def test_first_load_inserts_and_a_rerun_changes_nothing(lake: Lake) -> None:
    content = orders("1,A,u1,2024-01-01T10:00:00Z,5,", "2,B,u1,2024-01-02T10:00:00Z,6,")
    first = lake.ingest(ORDERS, [("a.csv", content)])
    assert first.per_file["a.csv"] == RowCounts(rows_read=2, inserted=2)
    assert first.outcome.touched_partitions == ("2024-01-01", "2024-01-02")
    assert lake.case.metric(first.outcome.metrics, "num_target_rows_inserted") == 2
    version = first.outcome.version

    again = lake.ingest(ORDERS, [("a.csv", content)])
    assert again.per_file["a.csv"] == RowCounts(rows_read=2, unchanged=2)
    assert again.outcome.version == version  # no commit
    assert again.outcome.touched_partitions == ()
    assert len(lake.rows(ORDERS)) == 2


def test_update_only_when_newer_or_equal_and_different(lake: Lake) -> None:
    lake.ingest(
        ORDERS,
        [
            (
                "a.csv",
                orders(
                    "1,A,u1,2024-01-01T10:00:00Z,5,",
                    "2,B,u1,2024-01-01T10:00:00Z,5,",
                    "3,C,u1,2024-01-01T10:00:00Z,5,",
                    "4,D,u1,2024-01-01T10:00:00Z,5,",
                ),
            )
        ],
    )
    second = lake.ingest(
        ORDERS,
        [
            (
                "b.csv",
                orders(
                    "1,A,u1,2024-01-01T09:00:00Z,99,",  # older: never overwrites
                    "2,B,u1,2024-01-01T10:00:00Z,99,",  # same time, different: update
                    "3,C,u1,2024-01-01T10:00:00+00:00,5,",  # identical: unchanged
                    "4,D,u1,2024-01-01T11:00:00Z,5,",  # newer (ordering differs): update
                    "5,E,u1,2024-01-01T11:00:00Z,5,",  # new: insert
                ),
            )
        ],
    )
    assert second.per_file["b.csv"] == RowCounts(rows_read=5, inserted=1, updated=2, unchanged=2)
    assert lake.case.metric(second.outcome.metrics, "num_target_rows_updated") == 2
    stored = {r["order_id"]: r for r in lake.rows(ORDERS, "order_id")}
    assert stored["A"]["total_amount"] == 5
    assert stored["B"]["total_amount"] == 99
    assert stored["D"]["order_timestamp"] == datetime(2024, 1, 1, 11, tzinfo=UTC)
    assert stored["C"]["_run_id"] == "run-1"  # unchanged rows keep their lineage
    assert stored["B"]["_run_id"] == "run-2"
    assert stored["B"][SOURCE_FILE] == "raw-data/orders/r2_b.csv"


def test_order_moved_to_another_date_leaves_one_row(lake: Lake) -> None:
    lake.ingest(
        ORDERS,
        [("a.csv", orders("1,A,u1,2024-01-01T10:00:00Z,5,", "2,B,u1,2024-01-01T11:00:00Z,5,"))],
    )
    moved = lake.ingest(ORDERS, [("b.csv", orders("1,A,u1,2024-01-03T10:00:00Z,5,2024-01-03"))])
    assert moved.per_file["b.csv"] == RowCounts(rows_read=1, updated=1)
    assert moved.outcome.touched_partitions == ("2024-01-01", "2024-01-03")
    rows = lake.rows(ORDERS, "order_id")
    assert [(r["order_id"], r["date"]) for r in rows] == [
        ("A", date(2024, 1, 3)),
        ("B", date(2024, 1, 1)),
    ]


def test_product_moved_to_another_department_leaves_one_row(lake: Lake) -> None:
    lake.ingest(PRODUCTS, [("a.csv", products("1,1,dairy,milk", "2,1,dairy,cream", "3,9,,loose"))])
    moved = lake.ingest(PRODUCTS, [("b.csv", products("1,7,frozen,milk", "3,2,bakery,loose"))])
    assert moved.per_file["b.csv"] == RowCounts(rows_read=2, updated=2)
    # The null department is a partition of its own, addressed with IS NULL.
    assert moved.outcome.touched_partitions == (None, "bakery", "dairy", "frozen")
    rows = lake.rows(PRODUCTS)
    assert [(r["product_id"], r["department"]) for r in rows] == [
        ("1", "frozen"),
        ("2", "dairy"),
        ("3", "bakery"),
    ]
    assert None not in lake.files_by_partition(PRODUCTS)


def test_quotes_in_partition_values_are_escaped(lake: Lake) -> None:
    lake.ingest(PRODUCTS, [("a.csv", products("1,1,kid's corner,toy", "2,1,other,x"))])
    second = lake.ingest(PRODUCTS, [("b.csv", products("1,1,kid's corner,new toy"))])
    assert second.per_file["b.csv"].updated == 1
    assert second.outcome.touched_partitions == ("kid's corner",)
    assert [r["product_name"] for r in lake.rows(PRODUCTS)] == ["new toy", "x"]


def test_merge_rewrites_only_the_touched_partitions(lake: Lake) -> None:
    days = [f"2024-01-0{d}" for d in range(1, 6)]
    rows = [f"{i},{day}-{i},u,{day}T1{i}:00:00Z,1," for day in days for i in range(2)]
    lake.ingest(ORDERS, [("a.csv", orders(*rows))])
    before = lake.files_by_partition(ORDERS)
    assert sorted(k for k in before if k is not None) == days

    # k=2 of N=5 partitions: one update on day 2, one insert into existing day 4.
    batch = orders(
        "0,2024-01-02-0,u,2024-01-02T10:00:00Z,7,", "9,2024-01-04-9,u,2024-01-04T09:00:00Z,1,"
    )
    merged = lake.ingest(ORDERS, [("b.csv", batch)])
    after = lake.files_by_partition(ORDERS)

    touched = {"2024-01-02", "2024-01-04"}
    assert set(merged.outcome.touched_partitions) == touched
    for day in set(days) - touched:
        assert after[day] == before[day], f"partition {day} was rewritten"
    removed = {f for day in before for f in before[day] - after.get(day, set())}
    added = {f for day in after for f in after[day] - before.get(day, set())}
    assert {f.split("/")[0] for f in removed} == {"date=2024-01-02"}
    assert {f.split("/")[0] for f in added} <= {f"date={day}" for day in touched}
    metrics = merged.outcome.metrics
    metric = lake.case.metric
    assert metric(metrics, "num_target_files_removed") == len(removed) == 1
    assert metric(metrics, "num_target_files_added") == len(added)
    scanned = metric(metrics, "num_target_files_scanned")
    assert scanned is not None and scanned <= sum(len(before[d]) for d in touched)
    assert metric(metrics, "num_target_rows_copied") == 1  # the other row of day 2 only
    assert len(lake.rows(ORDERS)) == 11


def test_add_new_columns_evolves_the_table(lake: Lake) -> None:
    lake.ingest(PRODUCTS, [("a.csv", products("1,1,dairy,milk"))])
    evolved = lake.ingest(
        PRODUCTS,
        [
            (
                "b.csv",
                csv_text(
                    f"{PRODUCTS_HEADER},Gift Wrap", "1,1,dairy,milk,yes", "2,1,dairy,cream,no"
                ),
            ),
            ("b2.csv", products("0,1,dairy,butter")),
        ],
        SchemaEvolution.ADD_NEW_COLUMNS,
    )
    # Evolved columns are not business columns: the identical product stays unchanged.
    assert evolved.per_file["b.csv"] == RowCounts(rows_read=2, inserted=1, unchanged=1)
    assert evolved.per_file["b2.csv"] == RowCounts(rows_read=1, inserted=1)
    # The columns each file added (a run reports them as the file's ``added_columns``).
    added = {key.rsplit("/", 1)[-1]: list(c) for key, c in evolved.staged.evolved.items()}
    assert added == {"r2_b.csv": ["gift_wrap"]}
    columns = lake.engine.columns(lake.ref(PRODUCTS))
    assert Column(name="gift_wrap", type=ColumnType.STRING) in columns
    assert {r["product_id"]: r["gift_wrap"] for r in lake.rows(PRODUCTS)} == {
        "0": None,
        "1": None,
        "2": "no",
    }

    # A later rescue-mode run still merges into the evolved table.
    later = lake.ingest(
        PRODUCTS, [("c.csv", csv_text(f"{PRODUCTS_HEADER},colour", "3,1,dairy,x,red"))]
    )
    assert later.per_file["c.csv"].inserted == 1
    row = lake.rows(PRODUCTS)[-1]
    assert row["gift_wrap"] is None
    assert json.loads(row["_rescued_data"]) == {"colour": "red"}


def test_rescued_data_is_stored(lake: Lake) -> None:
    lake.ingest(
        PRODUCTS, [("a.csv", csv_text(f"{PRODUCTS_HEADER},Colour", "1,1,dairy,milk,white"))]
    )
    assert json.loads(lake.rows(PRODUCTS)[0]["_rescued_data"]) == {"Colour": "white"}


def test_row_accounting_holds_per_file(lake: Lake) -> None:
    lake.ingest(
        ORDER_ITEMS, [("a.csv", csv_text(ITEMS_HEADER, "i1,o1,u1,1,p1,1,1,2024-01-01T10:00Z,"))]
    )
    result = lake.ingest(
        ORDER_ITEMS,
        [
            (
                "b.csv",
                csv_text(
                    ITEMS_HEADER,
                    "i1,o1,u1,2,p1,1,1,2024-01-01T10:00Z,",  # update
                    "i2,o1,u1,,p2,0,1,2024-01-01T10:00Z,",  # add_to_cart_order < 1
                    "i3,o1,u1,,p3,1,yes,2024-01-01T10:00Z,",  # not a boolean
                    "i4,o1,u1,,p4,1,false,2024-01-01T10:00Z,",  # dropped duplicate
                ),
            ),
            (
                "c.csv",
                csv_text(
                    ITEMS_HEADER,
                    "i4,o1,u1,,p4,2,false,2024-01-01T10:00Z,",  # insert
                    "i5,o1,u1,366,p5,1,1,2024-01-01T10:00Z,",  # days > 365
                ),
            ),
            ("d.csv", csv_text(ITEMS_HEADER)),
        ],
    )
    assert result.per_file == {
        "b.csv": RowCounts(rows_read=4, updated=1, quarantined=2, duplicates_in_batch=1),
        "c.csv": RowCounts(rows_read=2, inserted=1, quarantined=1),
        "d.csv": RowCounts(),
    }
    case = lake.case
    assert case.rows(result.staged.quarantine, "rule", "column_name") == case.arranged(
        [
            ("in_range", "add_to_cart_order"),
            ("parses_as_boolean", "reordered"),
            ("in_range", "days_since_prior_order"),
        ]
    )


def test_commit_metadata_is_in_the_history(lake: Lake) -> None:
    result = lake.ingest(ORDERS, [("a.csv", orders("1,A,u1,2024-01-01T10:00:00Z,5,"))])
    latest = lake.engine.history(lake.ref(ORDERS), limit=1)
    assert [c.version for c in latest] == [result.outcome.version]
    # A batch of new keys only may be written as a plain append (Polars): same metadata.
    assert latest[0].operation in {"MERGE", "WRITE"}
    assert latest[0].metadata["lakehouse.run_id"] == "run-1"
    name = "num_target_rows_inserted" if latest[0].operation == "MERGE" else "num_added_rows"
    assert lake.case.metric(latest[0].metrics, name) == 1
    # The per-file counts travel with the commit, so an interrupted run can be reconciled.
    assert decode_merge_counts(latest[0].metadata[MERGE_COUNTS_KEY]) == result.outcome.counts
    assert list(result.outcome.counts.values()) == [RowCounts(inserted=1)]


def test_empty_batch_does_not_commit(lake: Lake) -> None:
    lake.ingest(ORDERS, [("a.csv", orders("1,A,u1,2024-01-01T10:00:00Z,5,"))])
    version = lake.table(ORDERS).version()
    empty = lake.ingest(ORDERS, [("b.csv", orders("2,,u1,2024-01-01T10:00:00Z,5,"))])
    assert empty.outcome.version == version
    assert empty.outcome.counts == {}
    assert empty.outcome.metrics == {}
    assert lake.table(ORDERS).version() == version


def test_a_key_stored_twice_is_an_integrity_error(lake: Lake) -> None:
    lake.ingest(PRODUCTS, [("a.csv", products("1,1,dairy,milk"))])
    stored = pl.DataFrame(pl.from_arrow(lake.table(PRODUCTS).to_pyarrow_table()))
    duplicate = stored.with_columns(pl.lit("bakery").alias("department"))
    write_deltalake(lake.ref(PRODUCTS).uri, duplicate, mode="append")
    with pytest.raises(IntegrityError, match="more than once"):
        lake.ingest(PRODUCTS, [("b.csv", products("1,1,dairy,whole milk"))])
