"""DuckDB reads local Delta tables with its own Parquet reader: the same answers, no more access.

The local query service reads a table on the local file system with DuckDB's Parquet reader
over the version's files (faster than scanning pyarrow datasets); tables elsewhere, and those
needing a Delta reader feature, are read through delta-rs's Arrow datasets. These tests hold
the two ways to the same results.
"""

from __future__ import annotations

import shutil
from datetime import UTC, date, datetime
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from ecommerce_lakehouse.domain.errors import LakehouseError
from ecommerce_lakehouse.domain.zones import table_key
from ecommerce_lakehouse_local import query as local_query
from ecommerce_lakehouse_local.query import DuckDbQueryService
from tests.contract.conftest import local_platform

ORDERS = table_key("orders")
PRODUCTS = table_key("products")


def _service(tmp_path: Path) -> tuple[DuckDbQueryService, str]:
    platform = local_platform(tmp_path / "lake")
    assert isinstance(platform.query, DuckDbQueryService)
    return platform.query, str(tmp_path / "lake")


def _orders(ids: list[str], day: date, **extra: pa.Array) -> pa.Table:
    n = len(ids)
    return pa.table(
        {
            "order_id": ids,
            "order_timestamp": pa.array(
                [datetime(day.year, day.month, day.day, 10, i, tzinfo=UTC) for i in range(n)],
                pa.timestamp("us", tz="UTC"),
            ),
            "total_amount": pa.array([1.5 * i for i in range(n)], pa.float64()),
            "reordered": pa.array([i % 2 == 0 for i in range(n)], pa.bool_()),
            "quantity": pa.array(list(range(n)), pa.int32()),
            "date": pa.array([day] * n, pa.date32()),
            **extra,
        }
    )


def _read_both(
    service: DuckDbQueryService, sql: str, monkeypatch: pytest.MonkeyPatch
) -> tuple[pa.Table, pa.Table]:
    native = service.sql(sql)
    with monkeypatch.context() as patched:
        patched.setattr(local_query, "_local_files", lambda table: None)
        through_arrow = DuckDbQueryService(service._storage).sql(sql)
    return native, through_arrow


def test_a_local_table_is_read_by_duckdbs_parquet_reader_with_the_same_answers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    service, root = _service(tmp_path)
    uri = f"{root}/{ORDERS}"
    write_deltalake(uri, _orders(["o1", "o2"], date(2024, 3, 1)), partition_by=["date"])
    write_deltalake(
        uri, _orders(["o3", "o4", "o5"], date(2024, 3, 2)), partition_by=["date"], mode="append"
    )
    assert local_query._local_files(DeltaTable(uri)) is not None  # the premise
    plan = service.sql("EXPLAIN SELECT count(*) FROM orders").to_pylist()
    assert "PARQUET" in str(plan).upper()

    native, through_arrow = _read_both(
        service, "SELECT * FROM orders ORDER BY order_id", monkeypatch
    )
    assert native.schema == through_arrow.schema
    assert native.to_pylist() == through_arrow.to_pylist()
    assert native.schema.field("order_timestamp").type == pa.timestamp("us", tz="UTC")
    assert native.column("date").to_pylist() == [date(2024, 3, 1)] * 2 + [date(2024, 3, 2)] * 3


@pytest.mark.parametrize(
    "department",
    ["dairy eggs", "100%", "a/b", "x=y", "été", "it's", "' OR 1=1 --", None],
)
def test_partition_values_come_from_the_log_never_from_paths_or_sql(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, department: str | None
) -> None:
    service, root = _service(tmp_path)
    uri = f"{root}/{PRODUCTS}"
    write_deltalake(
        uri,
        pa.table(
            {
                "product_id": ["p1", "p2"],
                "department": pa.array([department, "plain"], pa.string()),
            }
        ),
        partition_by=["department"],
    )
    sql = "SELECT product_id, department FROM products ORDER BY product_id"
    native, through_arrow = _read_both(service, sql, monkeypatch)
    assert native.to_pylist() == [
        {"product_id": "p1", "department": department},
        {"product_id": "p2", "department": "plain"},
    ]
    assert native.to_pylist() == through_arrow.to_pylist()


def test_a_column_added_later_reads_as_null_in_older_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    service, root = _service(tmp_path)
    uri = f"{root}/{ORDERS}"
    day = date(2024, 3, 1)
    write_deltalake(uri, _orders(["o1"], day), partition_by=["date"])
    write_deltalake(
        uri,
        _orders(["o2"], day, coupon=pa.array(["SAVE"], pa.string())),
        partition_by=["date"],
        mode="append",
        schema_mode="merge",
    )
    sql = "SELECT order_id, coupon FROM orders ORDER BY order_id"
    native, through_arrow = _read_both(service, sql, monkeypatch)
    assert native.to_pylist() == [
        {"order_id": "o1", "coupon": None},
        {"order_id": "o2", "coupon": "SAVE"},
    ]
    assert native.to_pylist() == through_arrow.to_pylist()


def test_only_the_data_files_of_the_version_read_can_be_opened(tmp_path: Path) -> None:
    service, root = _service(tmp_path)
    uri = f"{root}/{ORDERS}"
    write_deltalake(uri, _orders(["o1"], date(2024, 3, 1)), partition_by=["date"])
    old_files = DeltaTable(uri).file_uris()
    write_deltalake(uri, _orders(["o2"], date(2024, 3, 1)), partition_by=["date"], mode="overwrite")
    log = Path(uri) / "_delta_log" / "00000000000000000000.json"

    # An older version's file is read through time travel, not by name.
    assert service.sql("SELECT order_id FROM orders", as_of={"orders": 0}).to_pylist() == [
        {"order_id": "o1"}
    ]
    for sql in (
        f"SELECT count(*) FROM orders, read_parquet('{old_files[0]}')",
        f"SELECT count(*) FROM orders, read_text('{log}')",
    ):
        with pytest.raises(LakehouseError) as raised:
            service.sql(sql)
        assert "\n" not in str(raised.value)
    assert service.sql("SELECT order_id FROM orders").to_pylist() == [{"order_id": "o2"}]


@pytest.mark.parametrize("column", ["_lakehouse_partition_0", "_Lakehouse_File"])
def test_a_column_named_like_the_readers_own_is_read_as_it_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, column: str
) -> None:
    # add_new_columns can bring such a column in from a CSV header.
    service, root = _service(tmp_path)
    uri = f"{root}/{PRODUCTS}"
    write_deltalake(
        uri,
        pa.table({"product_id": ["p1", "p2"], "department": ["d1", "d2"], column: ["x", "y"]}),
        partition_by=["department"],
    )
    sql = f"SELECT product_id, department, {column} AS extra FROM products ORDER BY product_id"
    native, through_arrow = _read_both(service, sql, monkeypatch)
    assert native.to_pylist() == [
        {"product_id": "p1", "department": "d1", "extra": "x"},
        {"product_id": "p2", "department": "d2", "extra": "y"},
    ]
    assert native.to_pylist() == through_arrow.to_pylist()


def test_a_lake_whose_path_holds_glob_characters_is_read(tmp_path: Path) -> None:
    # DuckDB's readers expand * ? [ ] { } in a path: such a file is read another way.
    (tmp_path / "a*b").mkdir()
    service, root = _service(tmp_path / "a*b")
    write_deltalake(f"{root}/{ORDERS}", _orders(["o1"], date(2024, 3, 1)), partition_by=["date"])
    # A copy the pattern matches too: its files must be neither read nor refused.
    shutil.copytree(tmp_path / "a*b", tmp_path / "axb")
    assert service.sql("SELECT order_id FROM orders").to_pylist() == [{"order_id": "o1"}]


def test_a_table_of_many_files_is_read_through_its_dataset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    service, root = _service(tmp_path)
    uri = f"{root}/{PRODUCTS}"
    monkeypatch.setattr(local_query, "MAX_NATIVE_FILES", 3)
    for part in range(4):
        write_deltalake(
            uri,
            pa.table({"product_id": [f"p{part}"], "department": [f"d{part}"]}),
            partition_by=["department"],
            mode="append",
        )
        native = local_query._local_files(DeltaTable(uri))
        assert (native is not None) == (part < 3)
        rows = service.sql("SELECT count(*) AS n FROM products").to_pylist()
        assert rows == [{"n": part + 1}]
