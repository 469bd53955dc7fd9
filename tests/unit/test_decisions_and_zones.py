from datetime import UTC, date, datetime
from typing import Any

import pytest

from ecommerce_lakehouse.domain.audit import RowCounts
from ecommerce_lakehouse.domain.decisions import (
    MergeAction,
    counts_by_file,
    deduplicate,
    merge_action,
    partition_order,
)
from ecommerce_lakehouse.domain.errors import IntegrityError, PathOutsideLake
from ecommerce_lakehouse.domain.schemas import ORDERS, PRODUCTS
from ecommerce_lakehouse.domain.zones import (
    MAX_NAME_BYTES,
    ZonePaths,
    bounded_name,
    clean_key,
    entity_of,
    is_raw_csv,
    raw_key_problem,
)

T1 = datetime(2024, 1, 1, tzinfo=UTC)
T2 = datetime(2024, 1, 2, tzinfo=UTC)


def _row(key: str, ts: datetime, ordinal: int, line: int, **extra: Any) -> dict[str, Any]:
    return {
        "order_id": key,
        "order_timestamp": ts,
        "_file_ordinal": ordinal,
        "_line_number": line,
        **extra,
    }


def test_dedup_keeps_greatest_timestamp_even_when_it_comes_first() -> None:
    rows = [_row("o1", T2, 0, 2, v="new"), _row("o1", T1, 1, 2, v="old")]
    survivors, dropped = deduplicate(rows, ORDERS.dedup)
    assert [s["v"] for s in survivors] == ["new"]
    assert [d["v"] for d in dropped] == ["old"]


def test_dedup_timestamp_ties_go_to_the_last_file_then_last_line() -> None:
    rows = [_row("o1", T1, 1, 3, v="b"), _row("o1", T1, 1, 2, v="a"), _row("o1", T1, 0, 9, v="c")]
    survivors, dropped = deduplicate(rows, ORDERS.dedup)
    assert [s["v"] for s in survivors] == ["b"]
    assert sorted(d["v"] for d in dropped) == ["a", "c"]


def test_products_dedup_by_last_occurrence() -> None:
    rows = [
        {"product_id": "p", "_file_ordinal": 0, "_line_number": 5, "v": 1},
        {"product_id": "p", "_file_ordinal": 1, "_line_number": 2, "v": 2},
        {"product_id": "q", "_file_ordinal": 0, "_line_number": 2, "v": 3},
    ]
    survivors, _ = deduplicate(rows, PRODUCTS.dedup)
    assert sorted(s["v"] for s in survivors) == [2, 3]


def _order(ts: datetime, amount: float, date: str = "2024-01-01") -> dict[str, Any]:
    return {
        "order_id": "o1",
        "order_num": "1",
        "user_id": "u",
        "order_timestamp": ts,
        "total_amount": amount,
        "date": date,
    }


@pytest.mark.parametrize(
    ("stored", "incoming", "action"),
    [
        (None, _order(T1, 1.0), MergeAction.INSERT),
        (_order(T1, 1.0), _order(T2, 2.0), MergeAction.UPDATE),
        (_order(T1, 1.0), _order(T1, 2.0), MergeAction.UPDATE),  # equal timestamp, new value
        (_order(T2, 1.0), _order(T1, 2.0), MergeAction.UNCHANGED),  # older never overwrites
        (_order(T1, 1.0), _order(T2, 1.0), MergeAction.UPDATE),  # timestamp itself changed
        (_order(T1, 1.0), _order(T1, 1.0), MergeAction.UNCHANGED),  # identical
        (_order(T1, 1.0, "2024-01-01"), _order(T1, 1.0, "2024-01-02"), MergeAction.UPDATE),
    ],
)
def test_merge_decisions(
    stored: dict[str, Any] | None, incoming: dict[str, Any], action: MergeAction
) -> None:
    assert merge_action(stored, incoming, ORDERS.merge) is action


def test_product_update_is_null_safe() -> None:
    stored = {"product_id": "p", "department_id": "1", "department": None, "product_name": "x"}
    same = dict(stored)
    moved = {**stored, "department": "frozen"}
    assert merge_action(stored, same, PRODUCTS.merge) is MergeAction.UNCHANGED
    assert merge_action(stored, moved, PRODUCTS.merge) is MergeAction.UPDATE


def test_row_accounting_identity() -> None:
    counts = RowCounts(
        rows_read=5, inserted=1, updated=1, unchanged=1, duplicates_in_batch=1, quarantined=1
    )
    assert counts.verify("f") is counts
    with pytest.raises(IntegrityError, match="row accounting broken for f"):
        RowCounts(rows_read=5, inserted=1).verify("f")
    with pytest.raises(ValueError, match="negative"):
        RowCounts(rows_read=-1)


@pytest.mark.parametrize(
    ("key", "entity"),
    [
        ("raw-data/orders/anything.csv", "orders"),
        ("raw-data/Order_Items/x.csv", "order_items"),
        ("raw-data/order_items_2024.csv", "order_items"),
        ("raw-data/orders_2024.csv", "orders"),
        ("raw-data/PRODUCTS-1.csv", "products"),
        ("raw-data/customers.csv", None),
        ("raw-data/misc/products_1.csv", "products"),
    ],
)
def test_entity_from_folder_else_file_prefix(key: str, entity: str | None) -> None:
    assert entity_of(key) == entity


def test_raw_csv_keys() -> None:
    assert is_raw_csv("raw-data/orders.csv")
    assert is_raw_csv("raw-data/orders/a.CSV")
    assert not is_raw_csv("raw-data/orders/a.json")
    assert not is_raw_csv("raw-data/a/b/c.csv")
    assert not is_raw_csv("archive/orders/a.csv")


@pytest.mark.parametrize("key", ["../x", "/etc/passwd", "a/../../x", "", "a\\b", "."])
def test_keys_cannot_escape_the_lake(key: str) -> None:
    with pytest.raises(PathOutsideLake):
        clean_key(key)


def test_zone_paths() -> None:
    paths = ZonePaths(run_id="r1", started_at=datetime(2024, 3, 9, tzinfo=UTC))
    assert paths.archive("orders", "raw-data/orders/a.csv") == "archive/orders/2024/03/09/r1/a.csv"
    assert paths.rejected("raw-data/x.csv") == "rejected/r1/x.csv"
    assert paths.rejected_error("raw-data/x.csv") == "rejected/r1/x.csv.error.json"


def test_zone_paths_can_keep_the_raw_folder_to_tell_two_files_of_one_name_apart() -> None:
    paths = ZonePaths(run_id="r1", started_at=datetime(2024, 3, 9, tzinfo=UTC))
    assert (
        paths.archive("products", "raw-data/products/p.csv", keep_folder=True)
        == "archive/products/2024/03/09/r1/products/p.csv"
    )
    assert paths.archive("products", "raw-data/p.csv", keep_folder=True) == (
        "archive/products/2024/03/09/r1/p.csv"
    )
    assert paths.rejected_error("raw-data/orders/bad.csv", keep_folder=True) == (
        "rejected/r1/orders/bad.csv.error.json"
    )


def test_long_names_are_shortened_with_a_hash_of_the_source_key() -> None:
    paths = ZonePaths(run_id="r1", started_at=datetime(2024, 3, 9, tzinfo=UTC))
    name = "orders_" + "é" * 120 + ".csv"  # 251 bytes in UTF-8
    first = paths.rejected_error(f"raw-data/{name}")
    second = paths.rejected_error(f"raw-data/orders/{name}")
    assert first != second
    for key in (first, second, paths.archive("orders", f"raw-data/{name}")):
        leaf = key.rsplit("/", 1)[1]
        assert len(leaf.encode()) <= MAX_NAME_BYTES + len(".error.json") <= 255
        leaf.encode().decode()  # still valid UTF-8
    assert paths.archive("orders", f"raw-data/{name}").endswith(".csv")
    assert bounded_name("short.csv", "raw-data/short.csv") == "short.csv"
    assert bounded_name(name, "raw-data/a") == bounded_name(name, "raw-data/a")


def test_raw_key_problems_are_named() -> None:
    assert raw_key_problem("raw-data/orders/a.csv") is None
    assert (raw_key_problem("raw-data/orders/2024/a.csv") or "").startswith("nested_path")
    assert (raw_key_problem("raw-data/orders\\a.csv") or "").startswith("invalid_name")


def test_tallies_become_per_file_counts() -> None:
    tallies = [
        ("a.csv", MergeAction.INSERT, 3),
        ("a.csv", MergeAction.UNCHANGED, 1),
        ("b.csv", MergeAction.UPDATE, 2),
    ]
    assert counts_by_file(tallies) == {
        "a.csv": RowCounts(inserted=3, unchanged=1),
        "b.csv": RowCounts(updated=2),
    }


def test_partitions_are_ordered_null_first_then_by_text() -> None:
    assert partition_order([date(2024, 1, 2), None, date(2023, 12, 31)]) == [
        None,
        date(2023, 12, 31),
        date(2024, 1, 2),
    ]


def test_the_classification_reads_key_partition_ordering_and_business_columns_once() -> None:
    spec = ORDERS.merge
    assert spec.compared_columns[: len(spec.key)] == list(spec.key)
    assert len(spec.compared_columns) == len(set(spec.compared_columns))
    assert set(spec.compared_columns) == {
        *spec.key,
        spec.partition_column,
        spec.ordering_column,
        *spec.business_columns,
    }
