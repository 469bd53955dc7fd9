"""The whole pipeline on real Delta tables: every engine with the local adapters.

The platform is ``local`` for every engine, so the SQL (DuckDB over delta-rs) and its
expectations are the same whichever engine wrote the tables.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import ecommerce_lakehouse as lh
from ecommerce_lakehouse.application.ingest_log import META_RUN_ID
from ecommerce_lakehouse.domain.errors import IntegrityError
from ecommerce_lakehouse.domain.types import FileStatus
from tests.contract.conftest_engines import EngineCase

PRODUCTS = "product_id,department_id,department,product_name\np1,1,frozen,Ice\np2,2,bakery,Bread\n"
ORDERS = (
    "order_num,order_id,user_id,order_timestamp,total_amount,date\n"
    "1,o1,u1,2024-01-01T10:00:00,10.0,2024-01-01\n"
    "2,o2,u1,2024-01-02T23:30:00-02:00,4.5,\n"  # an offset: UTC date is 2024-01-03
    "3,o3,u2,not-a-time,7.5,\n"
)
ITEMS_HEADER = (
    "id,order_id,user_id,days_since_prior_order,product_id,add_to_cart_order,reordered,"
    "order_timestamp,date\n"
)


def _drop(lake: Path, name: str, text: str | bytes) -> None:
    path = lake / "raw-data" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode() if isinstance(text, str) else text)


def _table(lake: lh.Lake, sql: str) -> list[dict[str, Any]]:
    return lake.sql(sql).to_pylist()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    _drop(tmp_path, "products/products_1.csv", PRODUCTS)
    _drop(tmp_path, "orders/orders_1.csv", ORDERS)
    _drop(tmp_path, "order_items_1.csv", ITEMS_HEADER)  # header-only: 0 rows, archived
    _drop(tmp_path, "order_items_2.csv", b"")  # empty: 0 rows, archived
    return tmp_path


def _open(root: Path, engine: EngineCase) -> lh.Lake:
    return lh.open_lake(str(root), engine=engine.name, options={"query": "duckdb"})


def test_a_run_on_delta_tables(root: Path, engine: EngineCase) -> None:
    lake = _open(root, engine)
    result = lake.run(lh.RunOptions(run_id="r1"))

    assert result.ok, (result.error, result.failed_checks)
    by_key = {o.file.key: o for o in result.files}
    assert {o.status for o in result.files} == {FileStatus.LOADED}
    assert by_key["raw-data/order_items_2.csv"].counts.rows_read == 0
    assert not list((root / "raw-data").rglob("*.csv"))
    assert len(list((root / "archive").rglob("*.csv"))) == 4
    rows = _table(lake, "SELECT order_id, CAST(date AS VARCHAR) AS d FROM orders ORDER BY 1")
    assert rows == [{"order_id": "o1", "d": "2024-01-01"}, {"order_id": "o2", "d": "2024-01-03"}]
    (q,) = _table(lake, "SELECT line_number, rule, column_name FROM quarantine")
    assert q == {"line_number": 4, "rule": "parses_as_timestamp", "column_name": "order_timestamp"}
    assert (root / "_catalogue.sqlite").is_file()
    assert lake.platform.catalogue.get("orders") is not None


def test_reingesting_a_checksum_is_skipped(root: Path, engine: EngineCase) -> None:
    lake = _open(root, engine)
    lake.run()
    version = lake.history("orders", 1)[0].version
    _drop(root, "orders_copy.csv", ORDERS)

    result = lake.run()

    assert [o.status for o in result.files] == [FileStatus.SKIPPED]
    assert lake.history("orders", 1)[0].version == version


def test_a_crash_between_commit_and_archive_is_recovered(
    root: Path, engine: EngineCase, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake = _open(root, engine)

    def broken_move(source: str, destination: str, **kwargs: object) -> None:
        raise IntegrityError("injected: copy could not be verified")

    with monkeypatch.context() as patch:
        patch.setattr(lake.platform.storage, "move", broken_move)
        crashed = lake.run()
    assert crashed.failed_step == "archive" and crashed.exit_code == 1
    assert len(list((root / "raw-data").rglob("*.csv"))) == 4
    before = _table(lake, "SELECT * EXCLUDE (_ingested_at) FROM orders ORDER BY order_id")

    recovered = lake.run()

    assert recovered.ok
    assert {o.status for o in recovered.files} == {FileStatus.SKIPPED}
    assert not list((root / "raw-data").rglob("*.csv"))
    after = _table(lake, "SELECT * EXCLUDE (_ingested_at) FROM orders ORDER BY order_id")
    assert after == before


def test_a_crash_between_merge_and_ingest_log_is_reconciled(
    root: Path, engine: EngineCase, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake = _open(root, engine)
    original = lake.engine.append_records

    def lose_the_log(table: Any, audit: Any, records: Any, **kwargs: Any) -> None:
        if audit.name == "ingest_log":
            raise OSError("injected: process killed")
        original(table, audit, records, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(lake.engine, "append_records", lose_the_log)
        crashed = lake.run(lh.RunOptions(run_id="crashed"))
    assert crashed.failed_step == "ingest"

    recovered = lake.run(lh.RunOptions(run_id="next"))

    assert recovered.ok, recovered.failed_checks
    log = _table(lake, "SELECT run_id, status, inserted FROM ingest_log WHERE entity = 'products'")
    assert sorted(tuple(r.values()) for r in log) == [
        ("crashed", "loaded", 2),
        ("next", "skipped", 0),
    ]


def test_schema_evolution_add_new_columns_registers_the_column(
    root: Path, engine: EngineCase
) -> None:
    _drop(
        root,
        "products/products_2.csv",
        "product_id,department_id,department,product_name,Aisle Id\np3,3,pets,Food,7\n",
    )
    lake = _open(root, engine)

    result = lake.run(lh.RunOptions(evolution=lh.SchemaEvolution.ADD_NEW_COLUMNS))

    assert result.ok
    assert _table(lake, "SELECT aisle_id FROM products WHERE product_id = 'p3'") == [
        {"aisle_id": "7"}
    ]
    definition = lake.platform.catalogue.get("products")
    assert definition is not None and "aisle_id" in [c.name for c in definition.columns]


def test_every_audit_table_commit_names_the_run_that_wrote_it(
    root: Path, engine: EngineCase
) -> None:
    lake = _open(root, engine)
    assert lake.run(lh.RunOptions(run_id="r1")).ok
    _drop(root, "products/products_2.csv", "product_id,department_id,department,product_name\n")
    assert lake.run(lh.RunOptions(run_id="r2")).ok

    # As `lakehouse history` shows them: every commit, the table's creation included.
    for table, runs in {
        "ingest_log": {"r1", "r2"},
        "quarantine": {"r1"},  # r2 quarantined nothing: no commit
        "validation_results": {"r1", "r2"},
    }.items():
        commits = lake.history(table)
        by_run = [c.metadata.get(META_RUN_ID) for c in commits]
        assert None not in by_run, (table, [(c.operation, dict(c.metadata)) for c in commits])
        assert set(by_run) == runs, table
        assert by_run[0] == max(runs), table  # newest first


def test_a_restore_by_timestamp_keeps_the_ledger_true_and_the_file_loads_again(
    root: Path, engine: EngineCase
) -> None:
    lake = _open(root, engine)
    first_run = lake.run()
    assert first_run.ok, (first_run.error, first_run.failed_checks)
    first = lake.history("orders", 1)[0]
    assert first.timestamp is not None
    daily = ORDERS.replace("10.0", "11.0") + "4,o4,u1,2024-01-04T10:00:00,1.0,\n"
    _drop(root, "orders/orders_2.csv", daily)
    assert lake.run().ok
    assert _table(lake, "SELECT COUNT(*) AS n FROM orders") == [{"n": 3}]

    done = lake.restore("orders", timestamp=first.timestamp)

    assert done.to_version == first.version
    assert done.rolled_back == ("raw-data/orders/orders_2.csv",)
    rows = _table(lake, "SELECT order_id, total_amount FROM orders ORDER BY 1")
    assert rows == [
        {"order_id": "o1", "total_amount": 10.0},
        {"order_id": "o2", "total_amount": 4.5},
    ]
    restored = lake.history("orders", 1)[0]
    assert (restored.operation, restored.metadata[META_RUN_ID]) == ("RESTORE", done.run_id)
    assert all(check.passed for check in lake.validate(full=True))

    # The undone file, put back by reprocess, loads again; the lake stays valid.
    back = lake.reprocess(["raw-data/orders/orders_2.csv"])
    assert back.returned == ("raw-data/orders/orders_2.csv",)
    result = lake.run()
    assert result.ok, (result.error, result.failed_checks)
    assert [o.status for o in result.files] == [FileStatus.LOADED]
    assert _table(lake, "SELECT COUNT(*) AS n FROM orders") == [{"n": 3}]
