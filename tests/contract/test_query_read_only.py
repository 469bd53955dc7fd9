"""QueryService contract, read-only (issue 11): one query runs, nothing else ever does."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pyarrow as pa
import pytest

from ecommerce_lakehouse.domain.errors import ConfigurationError, LakehouseError
from ecommerce_lakehouse.domain.zones import table_key
from tests.contract.conftest import QueryCase

ORDERS = table_key("orders")


def _write_orders(query_case: QueryCase) -> None:
    query_case.write(
        ORDERS,
        pa.table(
            {
                "order_id": ["o1"],
                "order_timestamp": pa.array(
                    [datetime(2024, 3, 1, 10, tzinfo=UTC)], pa.timestamp("us", tz="UTC")
                ),
                "total_amount": [5.0],
                "date": pa.array([date(2024, 3, 1)], pa.date32()),
            }
        ),
    )


def _count(query_case: QueryCase) -> int:
    return int(query_case.query.sql("SELECT count(*) AS n FROM orders").to_pylist()[0]["n"])


@pytest.mark.parametrize(
    "sql",
    [
        "CREATE TABLE made_here AS SELECT 1 AS a",
        "WITH a AS (SELECT 1 AS x) INSERT INTO orders SELECT * FROM orders",
        "INSERT INTO orders SELECT * FROM orders",
        "DELETE FROM orders",
        "SET TimeZone = 'Asia/Tokyo'",
        "CREATE TEMPORARY VIEW v AS SELECT 1 AS a",
        "SELECT 1 AS a; SELECT 2 AS b",
    ],
)
def test_anything_but_one_query_is_refused(
    query_case: QueryCase, sql: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # where Spark would put a managed table
    _write_orders(query_case)

    with pytest.raises(LakehouseError) as raised:
        query_case.query.sql(sql)

    assert "\n" not in str(raised.value)
    assert not isinstance(raised.value, ConfigurationError)
    assert _count(query_case) == 1
    assert not list(tmp_path.rglob("made_here*"))


@pytest.mark.parametrize("sql", ["", "   \n"])
def test_an_empty_query_is_a_configuration_error(query_case: QueryCase, sql: str) -> None:
    with pytest.raises(ConfigurationError, match="empty query"):
        query_case.query.sql(sql)


@pytest.mark.parametrize(
    "sql",
    [
        "WITH a AS (SELECT count(*) AS n FROM orders) SELECT n FROM a",
        "VALUES (1)",
        "EXPLAIN SELECT * FROM orders",
        "DESCRIBE orders",
    ],
)
def test_read_statements_run(query_case: QueryCase, sql: str) -> None:
    _write_orders(query_case)

    assert query_case.query.sql(sql).num_rows > 0


def test_a_file_outside_the_lake_cannot_be_read(query_case: QueryCase, tmp_path: Path) -> None:
    secret = tmp_path / "secret.csv"
    secret.write_text("password\nhunter2\n")
    spark = type(query_case.query).__name__.startswith("Spark")
    sql = f"SELECT * FROM csv.`{secret}`" if spark else f"SELECT * FROM read_csv('{secret}')"

    with pytest.raises(LakehouseError) as raised:
        query_case.query.sql(sql)

    assert "hunter2" not in str(raised.value)


def test_a_query_cannot_run_a_program_or_call_java(
    query_case: QueryCase, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Queries in form only: Spark runs SELECT TRANSFORM's program and reflect's Java call,
    # DuckDB's EXPLAIN ANALYZE runs what it explains.
    monkeypatch.chdir(tmp_path)
    _write_orders(query_case)
    marker = tmp_path / "ran"
    spark = type(query_case.query).__name__.startswith("Spark")
    attempts = (
        [
            f"SELECT TRANSFORM(order_id) USING 'touch {marker}' AS (a) FROM orders",
            "SELECT reflect('java.lang.System', 'exit', 0) AS x",
            "SELECT JAVA_METHOD('java.lang.System', 'getProperty', 'user.home') AS x",
        ]
        if spark
        else ["EXPLAIN ANALYZE CREATE TABLE made_here AS SELECT 1 AS a"]
    )
    for sql in attempts:
        with pytest.raises(LakehouseError, match="read-only"):
            query_case.query.sql(sql)
    assert not marker.exists()
    assert query_case.query.sql("EXPLAIN SELECT count(*) FROM orders").num_rows > 0
