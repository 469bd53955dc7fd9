"""The pipeline and its use cases on in-memory fakes (no Polars, Spark or AWS)."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ecommerce_lakehouse.application.archive import ArchiveFiles
from ecommerce_lakehouse.application.discover import CHECKSUM_THREADS, DiscoverFiles
from ecommerce_lakehouse.application.ingest import IngestFiles
from ecommerce_lakehouse.application.pipeline import PIPELINE, RunPipeline
from ecommerce_lakehouse.application.run import (
    DiscoveredFile,
    FileOutcome,
    RunOptions,
    RunResult,
)
from ecommerce_lakehouse.application.tables import table_ref
from ecommerce_lakehouse.domain.audit import RowCounts
from ecommerce_lakehouse.domain.errors import (
    ConfigurationError,
    FileRejected,
    IntegrityError,
    LakehouseError,
    LockTimeout,
)
from ecommerce_lakehouse.domain.types import FileStatus, Severity
from ecommerce_lakehouse.domain.zones import ZonePaths
from ecommerce_lakehouse.ports.platform import Platform
from ecommerce_lakehouse.ports.storage import UnusableEntry
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


class _ReadingAtOnce(InMemoryTableEngine):
    """Reads three files at a time, the earlier ones slower; rejects names with "broken"."""

    def __init__(self, storage: InMemoryObjectStorage) -> None:
        super().__init__(storage)
        self.lock = threading.Lock()
        self.reading = 0
        self.most_at_once = 0
        self.read: list[str] = []

    @property
    def files_read_at_once(self) -> int:
        return 3

    def read_source(self, source: Any, schema: Any, evolution: Any) -> Any:
        with self.lock:
            self.reading += 1
            self.most_at_once = max(self.most_at_once, self.reading)
            self.read.append(source.key)
        try:
            time.sleep(0.05 * (3 - source.ordinal % 3))
            if "broken" in source.key:
                raise FileRejected("unreadable_name", f"{source.key}: broken")
            return super().read_source(source, schema, evolution)
        finally:
            with self.lock:
                self.reading -= 1


def test_files_read_at_once_keep_their_order_and_a_repeat_is_read_only_when_needed() -> None:
    w = World()
    w.engine = engine = _ReadingAtOnce(w.storage)
    w.platform = Platform(
        storage=w.storage,
        catalogue=InMemoryCatalogue(),
        query=InMemoryQueryService(engine, w.storage),
        lock=w.lock,
    )
    older = ORDERS.replace("2024-01-01T10:00:00,10.0", "2024-01-01T08:00:00,1.0")
    w.drop("raw-data/orders_1.csv", older)
    w.drop("raw-data/orders_2.csv", ORDERS)
    w.drop("raw-data/orders_3.csv", PRODUCTS)  # not an orders file: rejected
    w.drop("raw-data/products_1_broken.csv", PRODUCTS)  # rejected: its copy below is read
    w.drop("raw-data/products_2.csv", PRODUCTS)
    w.drop("raw-data/products_3.csv", PRODUCTS)  # the copy of a loaded file: skipped

    result = w.run()

    assert engine.most_at_once >= 2
    assert [(o.file.key, o.status) for o in result.files] == [
        ("raw-data/products_1_broken.csv", FileStatus.REJECTED),
        ("raw-data/products_2.csv", FileStatus.LOADED),
        ("raw-data/products_3.csv", FileStatus.SKIPPED),
        ("raw-data/orders_1.csv", FileStatus.LOADED),
        ("raw-data/orders_2.csv", FileStatus.LOADED),
        ("raw-data/orders_3.csv", FileStatus.REJECTED),
    ]
    # Each read once, the copy of a rejected file too, the copy of a loaded one never.
    assert sorted(engine.read) == [
        "raw-data/orders_1.csv",
        "raw-data/orders_2.csv",
        "raw-data/orders_3.csv",
        "raw-data/products_1_broken.csv",
        "raw-data/products_2.csv",
    ]
    # Rows of later files win ties as in a file-by-file read: orders_2's o1 is the newer.
    stored = {r["order_id"]: r["total_amount"] for r in w.rows("orders")}
    assert stored["o1"] == 10.0


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
    def broken_move(source: str, destination: str, **kwargs: Any) -> None:
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
            key="raw-data/orders_1.csv", entity="orders", size_bytes=3, checksum="old"
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

    def lose_the_log(table: Any, audit: Any, records: Any, **kwargs: Any) -> None:
        if audit.name == "ingest_log":
            raise OSError("process killed")
        original(table, audit, records, **kwargs)

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


def test_a_first_run_reads_no_table_it_created(world: World, monkeypatch: Any) -> None:
    # The ledger and the curated tables it created hold no rows: no SQL reads the ledger
    # and no history is read before the MERGEs (on Spark, seconds of every first run).
    statements: list[str] = []
    histories: list[str] = []
    sql, history = world.platform.query.sql, world.engine.history
    monkeypatch.setattr(
        world.platform.query, "sql", lambda q, **kw: statements.append(q) or sql(q, **kw)
    )
    monkeypatch.setattr(
        world.engine, "history", lambda t, *a, **kw: histories.append(t.name) or history(t, *a)
    )

    result = world.run(run_id="r1", steps=("discover", "ingest"))

    assert {o.status for o in result.files} == {FileStatus.LOADED}
    assert statements == [] and histories == []
    # The next run reads the ledger: the files (left in raw-data/) are skipped, not
    # loaded twice.
    again = world.run(run_id="r2", steps=("discover", "ingest")).files
    assert {o.status for o in again} == {FileStatus.SKIPPED}
    assert statements and histories


def test_a_lost_ledger_is_rebuilt_from_the_tables_commits(world: World) -> None:
    world.run(run_id="r1")
    # The ledger is deleted; the curated tables keep their MERGE commits.
    del world.engine.tables[table_ref(world.storage, "ingest_log").uri]

    result = world.run(run_id="r2")

    assert result.ok, result.failed_checks
    log = world.rows("ingest_log")
    assert {(r["run_id"], r["status"]) for r in log if r["entity"] == "orders"} == {
        ("r1", "loaded")
    }
    assert all(r["error"].startswith("recovered by run r2") for r in log if r["run_id"] == "r1")


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
    # The destinations are planned (and logged) for the orchestrator's archive step to follow.
    assert sorted(o.destination or "" for o in result.files) == [
        "archive/order_items/2024/05/06/r1/order_items_1.csv",
        "archive/orders/2024/05/06/r1/orders_1.csv",
        "archive/products/2024/05/06/r1/products_1.csv",
    ]
    assert sorted(r["destination"] for r in world.rows("ingest_log")) == sorted(
        o.destination or "" for o in result.files
    )
    assert world.keys("archive") == []
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
    # Written behind the pipeline's back, as a Delta commit without a run id: the next
    # validation cannot scope its checks to a run's rows and runs them in full.
    orders.commit("WRITE")
    items.commit("WRITE")
    strict = ValidationPolicy(foreign_key_severity=Severity.ERROR)
    failing = [c for c in world.run(run_id="r2", policy=strict).checks if c.fails_run]
    gate = world.platform.query.sql(gate_sql(strict)).to_pylist()[0]["failed_error_checks"]
    assert gate == len(failing) >= 2
    assert world.platform.query.sql(gate_sql()).to_pylist()[0]["failed_error_checks"] == (
        len(failing) - 1
    )


# ------------------------------------------------ issue 11: hostile raw files and zones


def _statuses(result: RunResult) -> dict[str, FileStatus]:
    return {o.file.key: o.status for o in result.files}


def _log(world: World) -> dict[str, tuple[str, str | None]]:
    return {r["source_path"]: (r["status"], r["error"]) for r in world.rows("ingest_log")}


def test_links_nested_csvs_and_unreadable_folders_are_logged_as_ignored(world: World) -> None:
    world.drop("raw-data/orders/2024/orders_nested.csv", ORDERS)
    world.storage.unusable_entries = [
        UnusableEntry(key="raw-data/orders_link.csv", reason="symlink: links are not followed"),
        UnusableEntry(key="raw-data/order_items", reason="unreadable_folder: Permission denied"),
    ]

    result = world.run(run_id="r1")

    statuses = _statuses(result)
    assert statuses["raw-data/orders/2024/orders_nested.csv"] is FileStatus.IGNORED
    assert statuses["raw-data/orders_link.csv"] is FileStatus.IGNORED
    assert statuses["raw-data/order_items"] is FileStatus.IGNORED
    assert statuses["raw-data/orders_1.csv"] is FileStatus.LOADED
    log = _log(world)
    assert log["raw-data/orders/2024/orders_nested.csv"][0] == "ignored"
    assert (log["raw-data/orders/2024/orders_nested.csv"][1] or "").startswith("nested_path")
    assert log["raw-data/orders_link.csv"] == ("ignored", "symlink: links are not followed")
    assert log["raw-data/order_items"][0] == "ignored"
    # Never moved, and they do not fail the run.
    assert world.keys("raw-data") == ["raw-data/orders/2024/orders_nested.csv"]
    assert all(o.destination is None for o in result.files if o.status is FileStatus.IGNORED)
    assert result.ok and result.exit_code == 0
    listed: Any = result.as_dict()["files"]
    files = {f["source_path"]: f for f in listed}
    assert files["raw-data/orders_link.csv"]["status"] == "ignored"
    assert files["raw-data/orders_link.csv"]["error"] == "symlink: links are not followed"


def test_an_unreadable_raw_file_is_ignored_and_the_others_load(
    world: World, monkeypatch: Any
) -> None:
    world.drop("raw-data/orders_2.csv", ORDERS.replace("o1", "o7"))
    checksum = world.storage.checksum

    def unreadable(key: str) -> str:
        if key == "raw-data/orders_2.csv":
            raise PermissionError(13, "Permission denied")
        return checksum(key)

    monkeypatch.setattr(world.storage, "checksum", unreadable)

    result = world.run(run_id="r1")

    assert _statuses(result)["raw-data/orders_2.csv"] is FileStatus.IGNORED
    assert _log(world)["raw-data/orders_2.csv"] == ("ignored", "unreadable: Permission denied")
    assert {s for k, s in _statuses(result).items() if k != "raw-data/orders_2.csv"} == {
        FileStatus.LOADED
    }
    assert world.keys("raw-data") == ["raw-data/orders_2.csv"]
    assert result.ok


def test_the_same_file_name_in_two_places_gets_two_destinations() -> None:
    w = World()
    w.drop("raw-data/products/products_a.csv", PRODUCTS)
    w.drop("raw-data/products_a.csv", PRODUCTS.replace("Ice", "Ice cream"))
    w.drop("raw-data/products/bad.csv", "a,b\n1,2\n")
    w.drop("raw-data/orders/bad.csv", "x,y\n3,4\n5,6\n")

    result = w.run(run_id="r1")

    destinations = {o.file.key: o.destination for o in result.files}
    day = "archive/products/2024/05/06/r1"
    assert destinations == {
        "raw-data/products/products_a.csv": f"{day}/products/products_a.csv",
        "raw-data/products_a.csv": f"{day}/products_a.csv",
        "raw-data/products/bad.csv": "rejected/r1/products/bad.csv",
        "raw-data/orders/bad.csv": "rejected/r1/orders/bad.csv",
    }
    assert result.ok and w.keys("raw-data") == []
    for key in ("products", "orders"):
        report = json.loads(w.storage.read_bytes(f"rejected/r1/{key}/bad.csv.error.json"))
        assert report["source_path"] == f"raw-data/{key}/bad.csv"
    assert w.storage.read_bytes("rejected/r1/orders/bad.csv") == b"x,y\n3,4\n5,6\n"


def test_names_the_lake_writes_are_bounded_and_unique() -> None:
    w = World()
    long_name = "orders_" + "x" * 235 + ".csv"  # 246 characters
    w.drop(f"raw-data/{long_name}", "a,b\n1,2\n")
    w.drop(f"raw-data/orders/{long_name}", "a,b\n3,4\n")
    w.drop("raw-data/products_1.csv", PRODUCTS)

    result = w.run(run_id="r1")

    assert result.ok and result.failed_step is None
    assert result.checks  # catalogue and validate ran
    rejected = [o for o in result.files if o.status is FileStatus.REJECTED]
    assert len(rejected) == 2
    destinations = {o.destination for o in rejected}
    assert len(destinations) == 2 and None not in destinations
    written = w.keys("rejected")
    assert len(written) == 4  # two files, two error reports
    for key in written:
        assert all(len(part.encode()) <= 255 for part in key.split("/"))
    assert _statuses(result)["raw-data/products_1.csv"] is FileStatus.LOADED


def test_a_file_that_cannot_be_moved_does_not_stop_the_others(
    world: World, monkeypatch: Any
) -> None:
    move = world.storage.move

    def flaky(source: str, destination: str, **kwargs: Any) -> None:
        if source == "raw-data/orders_1.csv":
            raise IntegrityError("disk full")
        move(source, destination, **kwargs)

    monkeypatch.setattr(world.storage, "move", flaky)

    result = world.run(run_id="r1")

    assert result.failed_step == "archive" and result.exit_code == 1
    assert "raw-data/orders_1.csv" in (result.error or "")
    assert world.keys("raw-data") == ["raw-data/orders_1.csv"]
    moved = {o.file.key: o.destination for o in result.files}
    assert moved["raw-data/products/products_1.csv"] is not None
    assert moved["raw-data/orders_1.csv"] is None


def test_archive_leaves_a_file_a_writer_changes_during_the_move() -> None:
    storage = InMemoryObjectStorage()
    storage.write_bytes("raw-data/orders_1.csv", b"order_id\n1\n")
    read = storage.checksum("raw-data/orders_1.csv")
    move = storage.move

    def writer_goes_on(source: str, destination: str, **kwargs: Any) -> None:
        storage.write_bytes(source, b"order_id\n1\n2\n")
        move(source, destination, **kwargs)

    storage.move = writer_goes_on  # type: ignore[method-assign]
    outcome = FileOutcome(
        file=DiscoveredFile(
            key="raw-data/orders_1.csv", entity="orders", size_bytes=11, checksum=read
        ),
        status=FileStatus.LOADED,
        counts=RowCounts(),
        started_at=NOW,
        finished_at=NOW,
    )

    (after,) = ArchiveFiles(storage)([outcome], ZonePaths(run_id="r", started_at=NOW))

    assert after.destination is None
    assert after.error is not None and "changed since the run read it" in after.error
    assert storage.read_bytes("raw-data/orders_1.csv") == b"order_id\n1\n2\n"
    assert storage.list("archive") == []


def test_settle_rule_waits_for_young_files_and_sets_changing_ones_aside() -> None:
    storage = InMemoryObjectStorage()
    for name in ("orders_old.csv", "orders_quiet.csv", "orders_growing.csv"):
        storage.write_bytes(f"raw-data/{name}", b"order_id\n1\n")
    storage.modified["raw-data/orders_old.csv"] = NOW - timedelta(seconds=60)
    storage.modified["raw-data/orders_quiet.csv"] = NOW - timedelta(seconds=1)
    storage.modified["raw-data/orders_growing.csv"] = NOW - timedelta(seconds=3)
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        storage.write_bytes("raw-data/orders_growing.csv", b"order_id\n1\n2\n")
        storage.modified["raw-data/orders_growing.csv"] = NOW

    found = DiscoverFiles(storage, settle_seconds=5, clock=lambda: NOW, sleep=sleep)()

    assert waits == [4.0]  # once, until the youngest file is 5 s old
    assert [f.key for f in found.files] == ["raw-data/orders_old.csv", "raw-data/orders_quiet.csv"]
    (waiting,) = found.set_aside
    assert (waiting.file.key, waiting.status) == ("raw-data/orders_growing.csv", FileStatus.WAITING)
    assert waiting.error is not None and waiting.error.startswith("still_being_written")
    assert waiting.file.size_bytes == len(b"order_id\n1\n2\n")


def test_settle_rule_does_not_wait_for_stores_whose_objects_appear_whole() -> None:
    storage = InMemoryObjectStorage()
    storage.write_bytes("raw-data/orders_1.csv", b"order_id\n1\n")

    def sleep(seconds: float) -> None:
        raise AssertionError("no wait expected")

    found = DiscoverFiles(storage, settle_seconds=5, clock=lambda: NOW, sleep=sleep)()

    assert [f.key for f in found.files] == ["raw-data/orders_1.csv"]


def test_a_waiting_file_is_logged_and_left_for_the_next_run(world: World, monkeypatch: Any) -> None:
    world.storage.modified["raw-data/orders_1.csv"] = NOW
    monkeypatch.setattr(
        "time.sleep",
        lambda seconds: world.storage.modified.update(
            {"raw-data/orders_1.csv": NOW + timedelta(1)}
        ),
    )

    result = world.run(run_id="r1", settle_seconds=5)

    assert _statuses(result)["raw-data/orders_1.csv"] is FileStatus.WAITING
    assert _log(world)["raw-data/orders_1.csv"][0] == "waiting"
    assert "raw-data/orders_1.csv" in world.keys("raw-data")
    assert result.ok
    world.storage.modified.clear()

    assert _statuses(world.run(run_id="r2"))["raw-data/orders_1.csv"] is FileStatus.LOADED


def test_a_run_result_reads_back_from_its_json_with_ignored_files(world: World) -> None:
    world.storage.unusable_entries = [UnusableEntry(key="raw-data/x.csv", reason="symlink: no")]
    result = world.run(run_id="r1")

    back = RunResult.from_dict(json.loads(json.dumps(result.as_dict())))

    assert back == result  # the run contract reads back what it wrote
    ignored = [o for o in back.files if o.status is FileStatus.IGNORED]
    assert [(o.file.key, o.error) for o in ignored] == [("raw-data/x.csv", "symlink: no")]


def test_a_crash_between_copy_and_delete_does_not_archive_the_file_twice(
    world: World, monkeypatch: Any
) -> None:
    def copy_then_crash(source: str, destination: str, **kwargs: Any) -> None:
        world.storage.write_bytes(destination, world.storage.read_bytes(source))
        raise OSError("killed before the delete")

    with monkeypatch.context() as patch:
        patch.setattr(world.storage, "move", copy_then_crash)
        crashed = world.run(run_id="r1")
    assert crashed.failed_step == "archive"
    assert len(world.keys("raw-data")) == 3 and len(world.keys("archive")) == 3

    recovered = world.run(run_id="r2")

    assert {o.status for o in recovered.files} == {FileStatus.SKIPPED}
    assert world.keys("raw-data") == []
    assert sorted(world.keys("archive")) == [
        "archive/order_items/2024/05/06/r1/order_items_1.csv",
        "archive/orders/2024/05/06/r1/orders_1.csv",
        "archive/products/2024/05/06/r1/products_1.csv",
    ]
    assert {o.destination for o in recovered.files} == set(world.keys("archive"))
    assert recovered.ok


def test_a_file_replaced_while_the_run_read_it_waits_for_the_next_run(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A writer replaces the file after discovery hashed it, while the engine parses it.
    read = world.engine.read_source
    changed = ORDERS + "4,o4,u3,2024-01-04T10:00:00,4.0,2024-01-04\n"

    def read_then_replace(source: Any, *args: Any) -> Any:
        frame = read(source, *args)
        if source.key == "raw-data/orders_1.csv":
            world.drop(source.key, changed)
        return frame

    monkeypatch.setattr(world.engine, "read_source", read_then_replace)
    result = world.run(run_id="r1")

    orders = _by_key(result)["raw-data/orders_1.csv"]
    assert orders.status is FileStatus.WAITING
    assert orders.error is not None and orders.error.startswith("changed_while_read:")
    assert orders.destination is None
    assert world.rows("orders") == []  # nothing of it loaded under the old checksum
    (logged,) = [r for r in world.rows("ingest_log") if r["source_path"] == orders.file.key]
    assert (logged["status"], logged["destination"]) == ("waiting", None)
    assert world.keys("raw-data") == ["raw-data/orders_1.csv"]
    assert result.ok  # waiting files do not fail a run

    monkeypatch.undo()
    again = _by_key(world.run(run_id="r2"))["raw-data/orders_1.csv"]
    assert again.status is FileStatus.LOADED and again.counts.inserted == 3
    assert again.file.checksum != orders.file.checksum


def test_ingest_log_says_where_every_file_goes(world: World) -> None:
    world.drop("raw-data/orders/broken.csv", "x,y\n1,2\n")
    world.drop("raw-data/customers_1.csv", "a\n1\n")
    world.storage.unusable_entries.append(
        UnusableEntry(key="raw-data/orders/link.csv", reason="symlink: links are not followed")
    )

    result = world.run(run_id="r1")

    logged = {r["source_path"]: r["destination"] for r in world.rows("ingest_log")}
    assert logged == {o.file.key: o.destination for o in result.files}
    assert logged == {
        "raw-data/products/products_1.csv": "archive/products/2024/05/06/r1/products_1.csv",
        "raw-data/orders_1.csv": "archive/orders/2024/05/06/r1/orders_1.csv",
        "raw-data/order_items/order_items_1.csv": (
            "archive/order_items/2024/05/06/r1/order_items_1.csv"
        ),
        "raw-data/orders/broken.csv": "rejected/r1/broken.csv",
        "raw-data/customers_1.csv": "rejected/r1/customers_1.csv",
        "raw-data/orders/link.csv": None,
    }
    for key, destination in logged.items():
        if destination is not None:
            assert world.storage.exists(destination) and not world.storage.exists(key)


def test_a_skipped_file_goes_where_the_run_that_loaded_it_logged_it(world: World) -> None:
    # A run loaded and logged the file, then died in the middle of moving it: the copy is
    # in its archive folder, the source still in raw-data/ (a copying move's crash window).
    first = world.run(run_id="r1", steps=("discover", "ingest"))
    orders = _by_key(first)["raw-data/orders_1.csv"]
    assert orders.destination is not None
    world.storage.write_bytes(orders.destination, ORDERS.encode())

    later = world.run(run_id="r2")

    again = _by_key(later)["raw-data/orders_1.csv"]
    assert again.status is FileStatus.SKIPPED
    assert again.destination == orders.destination
    assert world.keys("archive/orders") == [orders.destination]  # archived once, not twice
    assert "raw-data/orders_1.csv" not in world.keys("raw-data")


def test_the_archive_step_moves_nowhere_but_archive_and_rejected(world: World) -> None:
    outcome = FileOutcome(
        file=DiscoveredFile(
            key="raw-data/orders_1.csv",
            entity="orders",
            size_bytes=len(ORDERS),
            checksum=world.storage.checksum("raw-data/orders_1.csv"),
        ),
        status=FileStatus.LOADED,
        counts=RowCounts(),
        started_at=NOW,
        finished_at=NOW,
        destination="lakehouse-dwh/orders/part-0.parquet",  # e.g. from a tampered result
    )

    with pytest.raises(LakehouseError, match="not a key in archive/ or rejected/"):
        ArchiveFiles(world.storage)([outcome], ZonePaths(run_id="r", started_at=NOW))
    assert world.storage.exists("raw-data/orders_1.csv")
    assert not world.storage.exists("lakehouse-dwh/orders/part-0.parquet")


def test_a_run_that_stops_before_its_archive_step_reports_no_destination(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    ingest = IngestFiles.__call__

    def then_fail(self: IngestFiles[Any], *args: Any) -> Any:
        ingest(self, *args)
        raise RuntimeError("injected: after every entity was loaded and logged")

    # The ingest step fails after every entity was loaded and logged.
    monkeypatch.setattr(IngestFiles, "__call__", then_fail)
    result = world.run(run_id="r1")

    assert result.failed_step == "ingest"
    assert {o.status for o in result.files} == {FileStatus.LOADED}
    assert all(o.destination is None for o in result.files)  # nothing was moved
    assert len(world.keys("raw-data")) == 3
    # The log keeps the plan, which the next run follows for these (skipped) files.
    assert all(r["destination"] for r in world.rows("ingest_log"))
    monkeypatch.undo()
    again = world.run(run_id="r2")
    assert sorted(o.destination or "" for o in again.files) == sorted(
        r["destination"] for r in world.rows("ingest_log") if r["run_id"] == "r1"
    )
    assert world.keys("raw-data") == []


def test_a_failed_compaction_is_a_warning_and_the_files_are_archived(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: Any) -> None:
        raise OSError("injected: the store refused the rewrite")

    monkeypatch.setattr("ecommerce_lakehouse.application.pipeline.CompactAuditTables", refuse)
    result = world.run(run_id="r1")

    assert result.ok and result.failed_step is None
    assert result.compaction_error == "OSError: injected: the store refused the rewrite"
    assert any(w.startswith("compaction failed, the rows are loaded") for w in result.warnings)
    assert all(o.destination for o in result.files)
    assert world.keys("raw-data") == []
    assert RunResult.from_dict(result.as_dict()).compaction_error == result.compaction_error


def test_a_file_that_could_not_move_goes_where_its_first_run_logged_it(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.drop("raw-data/orders/broken.csv", "x,y\n1,2\n")
    move = world.storage.move

    def refuse_rejected(source: str, destination: str, **kwargs: Any) -> None:
        if destination.startswith("rejected/"):
            raise OSError("rejected/ is not writable")
        move(source, destination, **kwargs)

    monkeypatch.setattr(world.storage, "move", refuse_rejected)
    first = world.run(run_id="r1")
    assert first.failed_step == "archive"
    assert _by_key(first)["raw-data/orders/broken.csv"].destination is None
    monkeypatch.undo()

    second = world.run(run_id="r2")

    moved = _by_key(second)["raw-data/orders/broken.csv"]
    assert moved.destination == "rejected/r1/broken.csv"  # the destination r1 logged
    assert world.storage.exists("rejected/r1/broken.csv")
    logged = [r["destination"] for r in world.rows("ingest_log") if "broken" in r["source_path"]]
    assert logged == ["rejected/r1/broken.csv", "rejected/r1/broken.csv"]  # both rows true


def test_a_skipped_file_of_a_run_stopped_before_archiving_goes_where_that_run_logged_it(
    world: World,
) -> None:
    world.run(run_id="r0")
    world.drop("raw-data/orders/orders_again.csv", ORDERS)  # same content, another name
    stopped = world.run(run_id="r1", steps=("discover", "ingest"))
    planned = _by_key(stopped)["raw-data/orders/orders_again.csv"].destination

    later = world.run(run_id="r2")

    assert _by_key(later)["raw-data/orders/orders_again.csv"].destination == planned
    assert planned is not None and world.storage.exists(planned)


def test_a_file_changed_while_read_is_waiting_even_when_the_parse_rejected_it(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The writer had half-rewritten the file when the engine read it: the parse failed.
    def rewritten_under_the_reader(source: Any, *args: Any) -> Any:
        if source.key == "raw-data/orders_1.csv":
            world.drop(source.key, ORDERS + "5,o5,u5,2024-01-05T10:00:00,5.0,2024-01-05\n")
            raise FileRejected("missing_columns", f"{source.key} lacks columns")
        return read(source, *args)

    read = world.engine.read_source
    monkeypatch.setattr(world.engine, "read_source", rewritten_under_the_reader)
    result = world.run(run_id="r1")

    orders = _by_key(result)["raw-data/orders_1.csv"]
    assert orders.status is FileStatus.WAITING and orders.destination is None
    assert orders.error is not None and orders.error.startswith("changed_while_read:")
    assert world.keys("rejected") == []


def _orders_on(day: str, *ids: str) -> str:
    # New orders only: each run adds a file to the partition of ``day`` (no MERGE rewrite).
    rows = "".join(f"1,{i},u1,{day}T10:00:00,10.0,{day}\n" for i in ids)
    return "order_num,order_id,user_id,order_timestamp,total_amount,date\n" + rows


def test_a_run_compacts_the_crowded_partitions_it_touched_and_only_those() -> None:
    world = World()
    orders = table_ref(world.storage, "orders")
    for n in (1, 2, 3):  # the policy off: the files pile up
        day_2 = f"1,b{n},u1,2024-01-02T10:00:00,1.0,2024-01-02\n"
        world.drop(f"raw-data/orders_{n}.csv", _orders_on("2024-01-01", f"a{n}") + day_2)
        assert world.run(run_id=f"r{n}", compact_min_files=0).compacted == {}
    assert "OPTIMIZE" not in [c.operation for c in world.engine.history(orders)]
    before = sorted(r["order_id"] for r in world.rows("orders"))

    world.drop("raw-data/orders_4.csv", _orders_on("2024-01-01", "a4"))
    lines: list[tuple[str, str]] = []
    pipeline = RunPipeline(
        engine=world.engine,
        platform=world.platform,
        clock=lambda: NOW,
        progress=lambda step, message: lines.append((step, message)),
    )
    result = pipeline(RunOptions(run_id="r4", compact_min_files=3))

    assert result.ok, result.failed_checks
    # 2024-01-01 (4 files, touched) is compacted; 2024-01-02 (3 files, untouched) is not.
    assert result.compacted == {"orders": 4}
    assert result.as_dict()["compacted"] == {"orders": 4}
    assert RunResult.from_dict(result.as_dict()).compacted == {"orders": 4}
    assert world.engine.tables[orders.uri].files == {"2024-01-01": 1, "2024-01-02": 3}
    newest = world.engine.history(orders, 1)[0]
    assert newest.operation == "OPTIMIZE"
    assert newest.metadata == {"lakehouse.run_id": "r4", "lakehouse.command": "compact"}
    assert sorted(r["order_id"] for r in world.rows("orders")) == sorted([*before, "a4"])
    assert (
        "ingest",
        "compacted the touched partitions of orders: 4 small file(s) rewritten",
    ) in lines
    # The compaction commit keeps the validation scoped to the run's rows.
    assert ("validate", "checks scoped to the rows of run(s) r4") in lines


def test_reconciliation_skips_a_compaction_commit(world: World, monkeypatch: Any) -> None:
    for n in (1, 2):
        world.drop(f"raw-data/orders/day_{n}.csv", _orders_on("2024-01-01", f"a{n}"))
        world.run(run_id=f"r{n}", compact_min_files=2)
    orders = table_ref(world.storage, "orders")
    assert world.engine.history(orders, 1)[0].metadata["lakehouse.command"] == "compact"
    original = world.engine.append_records

    def lose_the_log(table: Any, audit: Any, records: Any, **kwargs: Any) -> None:
        if audit.name == "ingest_log":
            raise OSError("process killed")
        original(table, audit, records, **kwargs)

    world.drop("raw-data/orders/day_3.csv", _orders_on("2024-01-01", "a3"))
    with monkeypatch.context() as patch:
        patch.setattr(world.engine, "append_records", lose_the_log)
        assert world.run(run_id="r3", compact_min_files=2).failed_step == "ingest"

    recovered = world.run(run_id="r4", compact_min_files=2)

    # The MERGE r3 committed is logged under r3, behind r2's compaction commit; nothing twice.
    assert recovered.ok, recovered.failed_checks
    logged = [
        (r["run_id"], r["status"])
        for r in world.rows("ingest_log")
        if r["source_path"].startswith("raw-data/orders/day_")
    ]
    assert sorted(logged) == [
        ("r1", "loaded"),
        ("r2", "loaded"),
        ("r3", "loaded"),
        ("r4", "skipped"),
    ]
    assert len(world.rows("orders")) == 5


def test_discovery_hashes_files_at_once_and_sets_aside_only_those_it_cannot_read() -> None:
    """Checksums are taken on several threads; a file that cannot be read is ``ignored``
    with the reason, one removed since the listing is left out, and neither stops the
    others."""
    storage = InMemoryObjectStorage()
    for name in ("a", "b", "c", "d"):
        storage.write_bytes(f"raw-data/orders/{name}.csv", ORDERS.encode())
    hashed_on: set[str] = set()
    checksum = storage.checksum

    def flaky(key: str) -> str:
        hashed_on.add(threading.current_thread().name)
        if key.endswith("b.csv"):
            raise PermissionError(13, "Permission denied")
        if key.endswith("c.csv"):
            raise FileNotFoundError(key)
        time.sleep(0.05)  # long enough for the other threads to take files
        return checksum(key)

    storage.checksum = flaky  # type: ignore[method-assign]
    found = DiscoverFiles(storage, settle_seconds=0)()
    assert [f.key for f in found.files] == ["raw-data/orders/a.csv", "raw-data/orders/d.csv"]
    assert all(f.checksum == checksum("raw-data/orders/a.csv") for f in found.files)
    (aside,) = found.set_aside
    assert (aside.file.key, aside.status) == ("raw-data/orders/b.csv", FileStatus.IGNORED)
    assert aside.error == "unreadable: Permission denied"
    assert len(hashed_on) > 1 or CHECKSUM_THREADS == 1
