"""What the Delta log's file statistics decide of a check, and what they leave to its SQL."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest

from ecommerce_lakehouse.application.log_statistics import decided, total_rows, value_range
from ecommerce_lakehouse.domain.schemas import ORDER_ITEMS, ORDERS, PRODUCTS
from ecommerce_lakehouse.domain.validation import (
    Check,
    orphans_sql,
    scoped_check,
    table_checks,
)
from ecommerce_lakehouse.ports.engine import FileStatistics


def _check(name: str, schema: object = ORDERS) -> Check:
    return next(c for c in table_checks(schema) if c.check_name == name)  # type: ignore[arg-type]


def _orders_file(
    day: str | None = "2024-01-01",
    rows: int | None = 3,
    low: object = datetime(2024, 1, 1, 0, 0, 1, tzinfo=UTC),
    high: object = datetime(2024, 1, 1, 23, 59, 59, 999000, tzinfo=UTC),
    nulls: dict[str, int] | None = None,
    runs: tuple[str, str] = ("r1", "r1"),
    keys: tuple[str, str] = ("o1", "o3"),
) -> FileStatistics:
    counts = {"order_id": 0, "user_id": 0, "order_timestamp": 0, "_run_id": 0, **(nulls or {})}
    return FileStatistics(
        rows=rows,
        partition={"date": day},
        null_counts=counts,
        minimum={"order_timestamp": low, "_run_id": runs[0], "order_id": keys[0]},
        maximum={"order_timestamp": high, "_run_id": runs[1], "order_id": keys[1]},
    )


def test_the_row_count_is_the_sum_of_the_files_and_unknown_without_one() -> None:
    count = _check("row_count_matches_ingest_log")
    assert decided(count, ORDERS, [_orders_file(rows=3), _orders_file(rows=4)]) == 7
    assert decided(count, ORDERS, []) == 0
    assert decided(count, ORDERS, [_orders_file(rows=3), _orders_file(rows=None)]) is None
    assert total_rows([_orders_file(rows=None)]) is None


def test_null_checks_clear_on_zero_counts_and_count_one_column_exactly() -> None:
    key, required = _check("primary_key_not_null"), _check("required_columns_not_null")
    clean = [_orders_file(), _orders_file(day="2024-01-02")]
    assert decided(key, ORDERS, clean) == 0
    assert decided(required, ORDERS, clean) == 0
    nulls = [_orders_file(nulls={"order_id": 2}), _orders_file(nulls={"user_id": 1})]
    assert decided(key, ORDERS, nulls) == 2
    # Nulls in two of the columns may share rows: the SQL counts them.
    assert decided(required, ORDERS, nulls) is None
    # A file without statistics for a column decides nothing.
    bare = FileStatistics(rows=3, partition={"date": "2024-01-01"})
    assert decided(key, ORDERS, [bare]) is None


def test_a_partition_columns_nulls_are_the_rows_of_the_null_partition() -> None:
    product_key = replace(_check("primary_key_not_null", PRODUCTS), null_columns=("department",))
    files = [
        FileStatistics(rows=2, partition={"department": "dairy"}, null_counts={}),
        FileStatistics(rows=5, partition={"department": None}, null_counts={}),
    ]
    assert decided(product_key, PRODUCTS, files) == 5
    assert decided(product_key, PRODUCTS, [replace(files[1], rows=None)]) is None


def test_dates_are_consistent_only_when_each_files_timestamps_lie_within_its_day() -> None:
    consistent = _check("partition_column_consistent")
    two_days = [_orders_file(), _orders_file(day="2024-01-02", **_day2())]  # type: ignore[arg-type]
    assert decided(consistent, ORDERS, two_days) == 0
    assert decided(consistent, ORDERS, [_orders_file()]) == 0
    # A timestamp of the next day, a file without bounds, a null date, a naive bound: SQL.
    late = datetime(2024, 1, 2, 0, 0, tzinfo=UTC)
    assert decided(consistent, ORDERS, [_orders_file(high=late)]) is None
    assert decided(consistent, ORDERS, [_orders_file(low=None)]) is None
    assert decided(consistent, ORDERS, [_orders_file(day=None)]) is None
    assert decided(consistent, ORDERS, [_orders_file(low=datetime(2024, 1, 1, 1))]) is None
    # Bounds in another zone are compared as UTC dates: 23:30 at -01:00 is the next day.
    west = timezone(timedelta(hours=-1))
    assert (
        decided(consistent, ORDERS, [_orders_file(high=datetime(2024, 1, 1, 23, 30, tzinfo=west))])
        is None
    )
    # A file whose timestamps are all null has no row whose date differs from it.
    empty_ts = _orders_file(low=None, high=None, nulls={"order_timestamp": 3})
    assert decided(consistent, ORDERS, [empty_ts]) == 0


def _day2() -> dict[str, object]:
    return {
        "low": datetime(2024, 1, 2, tzinfo=UTC),
        "high": datetime(2024, 1, 2, 12, tzinfo=UTC),
    }


def test_a_scoped_row_check_is_decided_only_when_the_whole_table_is_clean() -> None:
    key = _check("primary_key_not_null")
    scoped = scoped_check(key, ORDERS, ["r2"])
    assert decided(scoped, ORDERS, [_orders_file()]) == 0
    assert decided(scoped, ORDERS, [_orders_file(nulls={"order_id": 1})]) is None
    # Key checks are never decided by statistics.
    assert decided(_check("primary_key_unique"), ORDERS, [_orders_file()]) is None


def test_the_runs_values_are_bounded_by_the_files_that_may_hold_their_rows() -> None:
    files = [
        _orders_file(runs=("r1", "r1"), keys=("o1", "o3")),
        _orders_file(runs=("r1", "r3"), keys=("o4", "o6")),
        _orders_file(runs=("r3", "r3"), keys=("o7", "o9")),
    ]
    assert value_range("order_id", ["r2"], files) == ("o4", "o6")
    assert value_range("order_id", ["r2", "r3"], files) == ("o4", "o9")
    assert value_range("order_id", ["r9"], files) is None
    # A file without _run_id statistics might hold the runs' rows: no bounds.
    unstamped = FileStatistics(rows=1, partition={"date": "2024-01-01"})
    assert value_range("order_id", ["r2"], [*files, unstamped]) is None
    # ... unless every row of it has no run id.
    no_runs = FileStatistics(rows=1, null_counts={"_run_id": 1})
    assert value_range("order_id", ["r2"], [*files, no_runs]) == ("o4", "o6")


@pytest.mark.parametrize(
    "bound",
    [
        "x" * 32,  # may be a cut prefix (Delta Lake keeps 32 characters)
        "é" * 16,  # 32 bytes: may be cut too
        "it's",  # not a plain literal
    ],
)
def test_bounds_that_may_be_cut_or_are_not_plain_literals_are_not_used(bound: str) -> None:
    files = [_orders_file(runs=("r2", "r2"), keys=("o1", bound))]
    assert value_range("order_id", ["r2"], files) is None


def test_the_bounds_become_a_filter_of_the_key_checks_sql() -> None:
    unique = _check("primary_key_unique", ORDER_ITEMS)
    scoped = scoped_check(unique, ORDER_ITEMS, ["r2"], ("i4", "i9"))
    assert "t.id BETWEEN 'i4' AND 'i9' AND EXISTS" in scoped.observed_sql
    with pytest.raises(ValueError, match="not a plain SQL literal"):
        scoped_check(unique, ORDER_ITEMS, ["r2"], ("i4", "i'9"))
    fk = next(c for c in _fk_checks() if c.check_name == "order_id_in_orders")
    sql = orphans_sql(fk, ORDER_ITEMS, ["r2"], 10, ("o1", "o5"))
    assert "LEFT JOIN (SELECT order_id FROM orders WHERE order_id BETWEEN 'o1' AND 'o5') p" in sql
    with pytest.raises(ValueError, match="name the runs"):
        orphans_sql(fk, ORDER_ITEMS, None, 10, ("o1", "o5"))


def _fk_checks() -> list[Check]:
    from ecommerce_lakehouse.domain.validation import all_checks

    return [c for c in all_checks() if c.reference is not None]
