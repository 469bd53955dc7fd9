"""The pipeline and its use cases on in-memory fakes (no Polars, Spark or AWS)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from ecommerce_lakehouse.application.archive import ArchiveFiles
from ecommerce_lakehouse.application.pipeline import PIPELINE, RunPipeline
from ecommerce_lakehouse.application.platform import Platform
from ecommerce_lakehouse.application.run import (
    DiscoveredFile,
    FileOutcome,
    RunOptions,
    RunResult,
)
from ecommerce_lakehouse.application.tables import table_ref
from ecommerce_lakehouse.domain.audit import RowCounts
from ecommerce_lakehouse.domain.errors import ConfigurationError, IntegrityError, LockTimeout
from ecommerce_lakehouse.domain.types import Entity, FileStatus, Severity
from ecommerce_lakehouse.domain.zones import ZonePaths
from tests.fake_engine import InMemoryQueryService, InMemoryTableEngine
from tests.fakes import InMemoryCatalogue, InMemoryLock, InMemoryObjectStorage

NOW = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)

PRODUCTS = "product_id,department_id,department,product_name\np1,1,frozen,Ice\np2,2,bakery,Bread\n"
ORDERS = (
    "order_num,order_id,user_id,order_timestamp,total_amount,date\n"
    "1,o1,u1,2024-01-01T10:00:00,10.0,2024-01-01\n"
    "2,o2,u1,2024-01-02T10:00:00,-5,2024-01-02\n"  # negative amount: quarantined
    "3,o3,u2,2024-01-03T10:00:00,7.5,\n"  # date derived
    "1,o1,u1,2024-01-01T09:00:00,9.0,2024-01-01\n"  # older duplicate of o1
)
ITEMS = (
    "id,order_id,user_id,days_since_prior_order,product_id,add_to_cart_order,reordered,"
    "order_timestamp,date\n"
    "i1,o1,u1,,p1,1,1,2024-01-01T10:00:00,2024-01-01\n"
    "i2,o1,u1,,p2,2,0,2024-01-01T10:00:00,2024-01-01\n"
)


class World:
    """A lake on fakes, with a fixed clock."""

    def __init__(self) -> None:
        self.storage = InMemoryObjectStorage()
        self.engine = InMemoryTableEngine(self.storage)
        self.lock = InMemoryLock()
        self.platform = Platform(
            storage=self.storage,
            catalogue=InMemoryCatalogue(),
            query=InMemoryQueryService(self.engine, self.storage),
            lock=self.lock,
        )

    def drop(self, key: str, text: str) -> None:
        self.storage.write_bytes(key, text.encode())

    def run(self, **options: Any) -> RunResult:
        pipeline = RunPipeline(engine=self.engine, platform=self.platform, clock=lambda: NOW)
        return pipeline(RunOptions(**options))

    def rows(self, table: str) -> list[dict[str, Any]]:
        return self.engine.rows(table_ref(self.storage, table))

    def keys(self, prefix: str) -> list[str]:
        return [o.key for o in self.storage.list(prefix)]


@pytest.fixture
def world() -> World:
    w = World()
    w.drop("raw-data/products/products_1.csv", PRODUCTS)
    w.drop("raw-data/orders_1.csv", ORDERS)
    w.drop("raw-data/order_items/order_items_1.csv", ITEMS)
    return w


def _by_key(result: RunResult) -> dict[str, FileOutcome]:
    return {o.file.key: o for o in result.files}


def test_pipeline_steps_are_defined_once_in_order() -> None:
    assert [s.name for s in PIPELINE] == [
        "discover",
        "ingest",
        "archive",
        "catalogue",
        "validate",
        "report",
    ]


def test_a_run_loads_archives_logs_and_validates(world: World) -> None:
    result = world.run(run_id="r1")

    assert result.ok and result.exit_code == 0
    outcomes = _by_key(result)
    orders = outcomes["raw-data/orders_1.csv"]
    assert orders.status is FileStatus.LOADED
    assert orders.counts == RowCounts(
        rows_read=4, inserted=2, updated=0, unchanged=0, duplicates_in_batch=1, quarantined=1
    )
    assert orders.destination == "archive/orders/2024/05/06/r1/orders_1.csv"
    assert world.keys("raw-data") == []
    assert sorted(world.keys("archive")) == [
        "archive/order_items/2024/05/06/r1/order_items_1.csv",
        "archive/orders/2024/05/06/r1/orders_1.csv",
        "archive/products/2024/05/06/r1/products_1.csv",
    ]
    stored = {r["order_id"]: r for r in world.rows("orders")}
    assert stored["o1"]["total_amount"] == 10.0  # the newer duplicate survived
    assert str(stored["o3"]["date"]) == "2024-01-03"
    log = world.rows("ingest_log")
    assert {(r["source_path"], r["status"], r["inserted"]) for r in log} == {
        ("raw-data/products/products_1.csv", "loaded", 2),
        ("raw-data/orders_1.csv", "loaded", 2),
        ("raw-data/order_items/order_items_1.csv", "loaded", 2),
    }
    quarantine = world.rows("quarantine")
    assert [(q["line_number"], q["rule"], q["column_name"]) for q in quarantine] == [
        (3, "in_range", "total_amount")
    ]
    assert json.loads(quarantine[0]["raw_record"])["total_amount"] == "-5"
    assert all(c.passed for c in result.checks)
    assert {r["run_id"] for r in world.rows("validation_results")} == {"r1"}
    assert {t.name for t in world.platform.catalogue.list()} >= {"orders", "ingest_log"}


def test_every_file_satisfies_row_accounting(world: World) -> None:
    for outcome in world.run().files:
        c = outcome.counts
        assert c.rows_read == c.inserted + c.updated + c.unchanged + c.duplicates_in_batch + (
            c.quarantined
        )


def test_reuploading_the_same_file_is_skipped_and_changes_nothing(world: World) -> None:
    world.run(run_id="r1")
    before = world.rows("orders")
    world.drop("raw-data/orders/orders_again.csv", ORDERS)

    result = world.run(run_id="r2")

    (outcome,) = result.files
    assert outcome.status is FileStatus.SKIPPED
    assert outcome.destination == "archive/orders/2024/05/06/r2/orders_again.csv"
    assert world.rows("orders") == before
    assert result.ok


def test_the_same_content_twice_in_one_run_is_loaded_once() -> None:
    w = World()
    w.drop("raw-data/products_a.csv", PRODUCTS)
    w.drop("raw-data/products_b.csv", PRODUCTS)
    statuses = [o.status for o in w.run().files]
    assert statuses == [FileStatus.LOADED, FileStatus.SKIPPED]


def test_a_newer_correction_updates_and_an_older_one_does_not(world: World) -> None:
    world.run()
    world.drop(
        "raw-data/orders_2.csv",
        "order_num,order_id,user_id,order_timestamp,total_amount,date\n"
        "1,o1,u1,2024-01-05T10:00:00,11.0,\n"  # newer: moves to another date partition
        "3,o3,u2,2024-01-01T10:00:00,1.0,\n",  # older than stored: ignored
    )
    result = world.run()
    assert result.files[0].counts == RowCounts(rows_read=2, updated=1, unchanged=1)
    stored = {r["order_id"]: r for r in world.rows("orders")}
    assert len(world.rows("orders")) == 2
    assert (stored["o1"]["total_amount"], str(stored["o1"]["date"])) == (11.0, "2024-01-05")
    assert stored["o3"]["total_amount"] == 7.5
    assert result.ok


def test_unreadable_files_are_rejected_with_an_error_report(world: World) -> None:
    world.drop("raw-data/orders_bad.csv", "order_id,user_id\no9,u9\n")
    world.drop("raw-data/customers.csv", "id\n1\n")

    result = world.run(run_id="r1")

    outcomes = _by_key(result)
    bad = outcomes["raw-data/orders_bad.csv"]
    assert bad.status is FileStatus.REJECTED
    assert bad.error is not None and bad.error.startswith("missing_columns")
    assert bad.destination == "rejected/r1/orders_bad.csv"
    report = json.loads(world.storage.read_bytes("rejected/r1/orders_bad.csv.error.json"))
    assert report["error"].startswith("missing_columns")
    assert outcomes["raw-data/customers.csv"].error.startswith("unknown_entity")
    assert world.storage.exists("rejected/r1/customers.csv")
    statuses = {r["source_path"]: r["status"] for r in world.rows("ingest_log")}
    assert statuses["raw-data/customers.csv"] == "rejected"
    assert result.ok  # rejected files are reported, not a failed run


def test_a_failed_commit_leaves_its_files_for_the_next_run(world: World) -> None:
    world.engine.fail_merge_of.add("orders")

    failed = world.run(run_id="r1")

    assert failed.exit_code == 1
    assert _by_key(failed)["raw-data/orders_1.csv"].status is FileStatus.FAILED
    assert world.keys("raw-data") == ["raw-data/orders_1.csv"]
    assert world.rows("orders") == []
    world.engine.fail_merge_of.clear()

    recovered = world.run(run_id="r2")

    assert _by_key(recovered)["raw-data/orders_1.csv"].status is FileStatus.LOADED
    assert world.keys("raw-data") == []
    assert recovered.ok


def test_a_crash_between_commit_and_archive_is_recovered(world: World, monkeypatch: Any) -> None:
    def broken_move(source: str, destination: str) -> None:
        raise IntegrityError("disk full")

    with monkeypatch.context() as patch:
        patch.setattr(world.storage, "move", broken_move)
        crashed = world.run(run_id="r1")
    assert crashed.failed_step == "archive" and crashed.exit_code == 1
    assert len(world.keys("raw-data")) == 3
    tables = {t: world.rows(t) for t in ("products", "orders", "order_items")}

    recovered = world.run(run_id="r2")

    assert {o.status for o in recovered.files} == {FileStatus.SKIPPED}
    assert world.keys("raw-data") == []
    assert {t: world.rows(t) for t in tables} == tables
    assert recovered.ok  # row counts still match the ingest log


def test_a_second_run_waits_for_the_lock_then_gives_up(world: World) -> None:
    with world.lock.acquire(owner="other-run", timeout_seconds=0), pytest.raises(LockTimeout):
        world.run(lock_timeout_seconds=0.05)


def test_archive_leaves_a_file_that_changed_since_it_was_read() -> None:
    storage = InMemoryObjectStorage()
    storage.write_bytes("raw-data/orders_1.csv", b"new content")
    outcome = FileOutcome(
        file=DiscoveredFile(
            key="raw-data/orders_1.csv", entity=Entity.ORDERS, size_bytes=3, checksum="old"
        ),
        status=FileStatus.LOADED,
        counts=RowCounts(),
        started_at=NOW,
        finished_at=NOW,
    )
    (after,) = ArchiveFiles(storage)([outcome], ZonePaths(run_id="r", started_at=NOW))
    assert after.destination is None
    assert storage.exists("raw-data/orders_1.csv")


def test_a_crash_between_merge_and_ingest_log_is_reconciled(world: World, monkeypatch: Any) -> None:
    original = world.engine.append_records

    def lose_the_log(table: Any, audit: Any, records: Any) -> None:
        if audit.name == "ingest_log":
            raise OSError("process killed")
        original(table, audit, records)

    with monkeypatch.context() as patch:
        patch.setattr(world.engine, "append_records", lose_the_log)
        crashed = world.run(run_id="r1")
    assert crashed.failed_step == "ingest"
    assert len(world.rows("products")) == 2  # committed, but not logged
    assert world.rows("ingest_log") == []

    recovered = world.run(run_id="r2")

    assert recovered.ok, recovered.failed_checks
    log = world.rows("ingest_log")
    products = [r for r in log if r["entity"] == "products"]
    assert [(r["run_id"], r["status"], r["inserted"]) for r in products] == [
        ("r1", "loaded", 2),
        ("r2", "skipped", 0),
    ]
    assert products[0]["error"].startswith("recovered by run r2")
    assert world.keys("raw-data") == []


def test_audit_tables_are_compacted_once_they_hold_many_files(world: World) -> None:
    world.run(compact_audit_min_files=3)
    world.drop("raw-data/orders_2.csv", ORDERS.replace("o1,", "o9,"))
    world.run(compact_audit_min_files=3)
    world.drop("raw-data/orders_3.csv", ORDERS.replace("o1,", "o8,"))
    world.run(compact_audit_min_files=3)

    ref = table_ref(world.storage, "ingest_log")
    operations = [c.operation for c in world.engine.history(ref)]
    assert "OPTIMIZE" in operations
    assert len(world.rows("ingest_log")) == 5  # compaction keeps every row
    with pytest.raises(ValueError, match="at least 2"):
        RunOptions(compact_audit_min_files=1)


def test_a_run_can_be_limited_to_some_steps(world: World) -> None:
    # An orchestrator that archives and validates itself runs discover + ingest in its job.
    result = world.run(run_id="r1", steps=("ingest", "discover"))

    assert result.ok
    assert {o.status for o in result.files} == {FileStatus.LOADED}
    assert all(o.destination is None for o in result.files)
    assert sorted(world.keys("raw-data")) == [
        "raw-data/order_items/order_items_1.csv",
        "raw-data/orders_1.csv",
        "raw-data/products/products_1.csv",
    ]
    assert result.checks == ()
    assert world.rows("validation_results") == []


def test_unknown_steps_are_refused_before_anything_runs(world: World) -> None:
    with pytest.raises(ConfigurationError, match=r"unknown pipeline step.*'ingets'"):
        world.run(steps=("discover", "ingets"))
    with pytest.raises(ConfigurationError, match="none given"):
        world.run(steps=())
    assert len(world.keys("raw-data")) == 3


def test_the_gate_query_counts_failing_error_checks_like_the_validation_step(
    world: World,
) -> None:
    from ecommerce_lakehouse.domain.validation import ValidationPolicy, gate_sql

    world.run(run_id="r1")
    assert world.platform.query.sql(gate_sql()).to_pylist() == [{"failed_error_checks": 0}]

    # A key stored twice and an orphan item: one error check fails; the orphan only warns
    # unless foreign keys are made errors.
    orders = world.engine.tables[table_ref(world.storage, "orders").uri]
    orders.rows.append(dict(orders.rows[0]))
    items = world.engine.tables[table_ref(world.storage, "order_items").uri]
    items.rows.append({**items.rows[0], "id": "i9", "product_id": "p404"})
    strict = ValidationPolicy(foreign_key_severity=Severity.ERROR)
    failing = [c for c in world.run(run_id="r2", policy=strict).checks if c.fails_run]
    gate = world.platform.query.sql(gate_sql(strict)).to_pylist()[0]["failed_error_checks"]
    assert gate == len(failing) >= 2
    assert world.platform.query.sql(gate_sql()).to_pylist()[0]["failed_error_checks"] == (
        len(failing) - 1
    )
