"""QueryService contract: SQL over the lake's Delta tables, in UTC, with time travel."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, date, datetime

import pyarrow as pa
import pytest
from deltalake import DeltaTable

from ecommerce_lakehouse.domain.errors import ConfigurationError, LakehouseError
from ecommerce_lakehouse.domain.zones import audit_key, table_key
from tests.contract.conftest import QueryCase

ORDERS = table_key("orders")


def _orders(*rows: tuple[str, datetime, float]) -> pa.Table:
    return pa.table(
        {
            "order_id": pa.array([r[0] for r in rows], pa.string()),
            "order_timestamp": pa.array([r[1] for r in rows], pa.timestamp("us", tz="UTC")),
            "total_amount": pa.array([r[2] for r in rows], pa.float64()),
            "date": pa.array([r[1].date() for r in rows], pa.date32()),
        }
    )


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


@pytest.fixture
def far_from_utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Put the process 14 hours ahead of UTC, where a local-time cast gives the next day."""
    monkeypatch.setenv("TZ", "Pacific/Kiritimati")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_a_query_reads_the_tables(query_case: QueryCase) -> None:
    query_case.write(
        ORDERS,
        _orders(("o1", _at("2024-03-01T10:00:00Z"), 5.0), ("o2", _at("2024-03-02T10:00Z"), 7.5)),
    )
    query_case.write(
        table_key("products"),
        pa.table({"product_id": ["p1", "p2", "p3"], "department": ["x", "y", "z"]}),
    )

    result = query_case.query.sql(
        "SELECT (SELECT count(*) FROM products) AS products, count(*) AS orders, "
        "sum(total_amount) AS total FROM orders"
    )

    assert result.column_names == ["products", "orders", "total"]
    assert result.num_rows == 1
    assert result.to_pylist() == [{"products": 3, "orders": 2, "total": 12.5}]


def test_audit_tables_are_readable_by_name(query_case: QueryCase) -> None:
    query_case.write(
        audit_key("ingest_log"),
        pa.table({"run_id": ["r1"], "status": ["loaded"], "rows_read": [3]}),
    )

    result = query_case.query.sql("SELECT run_id, status, rows_read FROM ingest_log")

    assert result.to_pylist() == [{"run_id": "r1", "status": "loaded", "rows_read": 3}]


@pytest.mark.usefixtures("far_from_utc")
def test_timestamps_are_utc_and_cast_to_their_utc_date(query_case: QueryCase) -> None:
    # The last instant of March 1st the service returns, and the first of March 2nd.
    after = _at("2024-03-02T00:00:00Z")
    before = after - query_case.resolution
    query_case.write(ORDERS, _orders(("late", before, 1.0), ("early", after, 1.0)))

    result = query_case.query.sql(
        "SELECT order_id, order_timestamp, date, CAST(order_timestamp AS DATE) AS utc_date "
        "FROM orders ORDER BY order_timestamp"
    )

    late, early = date(2024, 3, 1), date(2024, 3, 2)
    assert result.to_pylist() == [
        {"order_id": "late", "order_timestamp": before, "date": late, "utc_date": late},
        {"order_id": "early", "order_timestamp": after, "date": early, "utc_date": early},
    ]
    assert all(
        row["order_timestamp"].utcoffset().total_seconds() == 0 for row in result.to_pylist()
    )


@pytest.mark.usefixtures("far_from_utc")
def test_the_partition_check_of_the_product_holds(query_case: QueryCase) -> None:
    # ``date = CAST(order_timestamp AS DATE)`` must hold for UTC dates
    # (docs/contract.md#validation).
    query_case.write(ORDERS, _orders(("o1", _at("2024-12-31T23:30:00-00:00"), 1.0)))

    result = query_case.query.sql(
        "SELECT count(*) AS bad FROM orders WHERE date <> CAST(order_timestamp AS DATE)"
    )

    assert result.to_pylist() == [{"bad": 0}]


def test_each_query_sees_the_latest_commit(query_case: QueryCase) -> None:
    query_case.write(ORDERS, _orders(("o1", _at("2024-03-01T10:00Z"), 1.0)))
    assert query_case.query.sql("SELECT count(*) AS n FROM orders").to_pylist() == [{"n": 1}]

    query_case.write(ORDERS, _orders(("o2", _at("2024-03-01T11:00Z"), 1.0)))

    assert query_case.query.sql("SELECT count(*) AS n FROM orders").to_pylist() == [{"n": 2}]


def test_as_of_reads_an_older_version(query_case: QueryCase) -> None:
    query_case.write(ORDERS, _orders(("o1", _at("2024-03-01T10:00Z"), 1.0)))
    query_case.write(ORDERS, _orders(("o2", _at("2024-03-01T11:00Z"), 2.0)))
    query_case.write(ORDERS, _orders(("o3", _at("2024-03-01T12:00Z"), 3.0)), mode="overwrite")
    sql = "SELECT order_id FROM orders ORDER BY order_id"

    def ids(as_of: dict[str, int] | None = None) -> list[str]:
        return [row["order_id"] for row in query_case.query.sql(sql, as_of=as_of).to_pylist()]

    assert ids() == ["o3"]
    assert ids({"orders": 0}) == ["o1"]
    assert ids({"orders": 1}) == ["o1", "o2"]
    assert ids({"orders": 2}) == ["o3"]


def test_an_empty_table_has_no_rows(query_case: QueryCase) -> None:
    query_case.write(ORDERS, _orders())

    assert query_case.query.sql("SELECT count(*) AS n FROM orders").to_pylist() == [{"n": 0}]


def test_as_of_an_unknown_table_is_a_configuration_error(query_case: QueryCase) -> None:
    with pytest.raises(ConfigurationError, match=r"unknown table.*customers"):
        query_case.query.sql("SELECT 1", as_of={"customers": 0})


@pytest.mark.parametrize("version", [5, -1])
def test_as_of_a_missing_version_is_a_configuration_error(
    query_case: QueryCase, version: int
) -> None:
    query_case.write(ORDERS, _orders(("o1", _at("2024-03-01T10:00Z"), 1.0)))

    with pytest.raises(ConfigurationError, match=f"'orders' has no version {version}"):
        query_case.query.sql("SELECT * FROM orders", as_of={"orders": version})


def test_as_of_a_table_not_created_yet_is_a_configuration_error(query_case: QueryCase) -> None:
    with pytest.raises(ConfigurationError, match=r"'orders'.*not been created yet"):
        query_case.query.sql("SELECT * FROM orders", as_of={"orders": 0})


def test_a_table_not_created_yet_is_named_in_the_error(query_case: QueryCase) -> None:
    with pytest.raises(LakehouseError, match="table 'quarantine' has not been created yet") as e:
        query_case.query.sql("SELECT * FROM quarantine")

    assert "\n" not in str(e.value)


def test_a_query_without_tables_runs_on_an_empty_lake(query_case: QueryCase) -> None:
    assert query_case.query.sql("SELECT 1 AS one").to_pylist() == [{"one": 1}]


@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        ("SELEC 1", "syntax error"),
        ("SELECT no_such_column FROM orders", "no_such_column"),
        ("SELECT * FROM customers", "customers"),
        ("SELECT CAST('x' AS INTEGER)", "x"),
    ],
)
def test_a_failing_query_raises_one_line(query_case: QueryCase, sql: str, reason: str) -> None:
    query_case.write(ORDERS, _orders(("o1", _at("2024-03-01T10:00Z"), 1.0)))

    with pytest.raises(LakehouseError) as raised:
        query_case.query.sql(sql)

    message = str(raised.value)
    assert reason in message
    assert "\n" not in message
    assert not isinstance(raised.value, ConfigurationError)


def _merge(query_case: QueryCase, key: str, source: pa.Table, on: str) -> None:
    # delta-rs MERGE (DataFusion) stores strings as string_view in the files it writes.
    DeltaTable(
        query_case.storage.uri(key), storage_options=dict(query_case.storage.storage_options)
    ).merge(
        source, predicate=f"t.{on} = s.{on}", source_alias="s", target_alias="t"
    ).when_matched_update_all().when_not_matched_insert_all().execute()


def _physical_types(query_case: QueryCase, key: str, column: str) -> set[pa.DataType]:
    dataset = DeltaTable(
        query_case.storage.uri(key), storage_options=dict(query_case.storage.storage_options)
    ).to_pyarrow_dataset()
    return {fragment.physical_schema.field(column).type for fragment in dataset.get_fragments()}


def test_string_filters_hold_over_merged_and_appended_files(query_case: QueryCase) -> None:
    # Regression: pyarrow found no equal(string, string_view) kernel for WHERE key = '...'
    # once a MERGE had written string_view files next to plain-string ones.
    products = table_key("products")

    def append(rows: dict[str, list[str]]) -> None:
        query_case.write(products, pa.table(rows), partition_by=["department"])

    append({"product_id": ["p1", "p2"], "name": ["old", "two"], "department": ["x", "y"]})
    _merge(
        query_case,
        products,
        pa.table({"product_id": ["p1", "p3"], "name": ["one", "three"], "department": ["x", "x"]}),
        on="product_id",
    )
    append({"product_id": ["p4"], "name": ["four"], "department": ["z"]})
    assert _physical_types(query_case, products, "product_id") == {
        pa.string(),
        pa.string_view(),
    }, "precondition: the table mixes plain-string and string_view files"

    def rows(sql: str, as_of: dict[str, int] | None = None) -> list[dict[str, str]]:
        return query_case.query.sql(sql, as_of=as_of).to_pylist()

    select = "SELECT product_id, name, department FROM products"
    assert rows(f"{select} WHERE product_id = 'p1'") == [
        {"product_id": "p1", "name": "one", "department": "x"}
    ]
    assert rows(f"{select} WHERE product_id = 'p4'") == [
        {"product_id": "p4", "name": "four", "department": "z"}
    ]
    assert [r["product_id"] for r in rows(f"{select} WHERE department = 'x' ORDER BY 1")] == [
        "p1",
        "p3",
    ]
    assert [r["name"] for r in rows(f"{select} WHERE name >= 'one' ORDER BY name")] == [
        "one",
        "three",
        "two",
    ]
    assert rows(f"{select} WHERE product_id = 'p3'", {"products": 1}) == [
        {"product_id": "p3", "name": "three", "department": "x"}
    ]
    assert rows(f"{select} WHERE product_id = 'p1'", {"products": 0}) == [
        {"product_id": "p1", "name": "old", "department": "x"}
    ]
    result = query_case.query.sql(f"{select} WHERE department <> 'y'")
    assert result.num_rows == 3
    assert {result.schema.field(c).type for c in result.column_names} == {pa.string()}


def test_string_filters_hold_on_a_table_written_by_merge_only(query_case: QueryCase) -> None:
    query_case.write(ORDERS, _orders())
    _merge(
        query_case,
        ORDERS,
        _orders(("o1", _at("2024-03-01T10:00Z"), 1.0), ("o2", _at("2024-03-02T10:00Z"), 2.0)),
        on="order_id",
    )
    assert _physical_types(query_case, ORDERS, "order_id") == {pa.string_view()}

    result = query_case.query.sql("SELECT order_id, total_amount FROM orders WHERE order_id = 'o2'")

    assert result.to_pylist() == [{"order_id": "o2", "total_amount": 2.0}]
    assert result.schema.field("order_id").type == pa.string()
    assert query_case.query.sql(
        "SELECT count(*) AS n FROM orders WHERE order_id = 'o1'", as_of={"orders": 0}
    ).to_pylist() == [{"n": 0}]
