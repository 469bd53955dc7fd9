"""Restore, forget and reprocess on in-memory fakes: the ledger stays true to the tables.

The issue's trap: after a restore, ``row_count_matches_ingest_log`` failed forever and the
archived file put back was skipped by its checksum. Here a restore logs the loads it undoes,
validation passes, and the file loads again.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ecommerce_lakehouse.application.ingest_log import META_ENTITY, META_FILES, META_RUN_ID
from ecommerce_lakehouse.application.lake_report import ReportLake
from ecommerce_lakehouse.application.lineage import META_RESTORED_VERSION, lineage
from ecommerce_lakehouse.application.maintenance import maintenance_record_key
from ecommerce_lakehouse.application.pipeline import RunPipeline
from ecommerce_lakehouse.application.rollback import Rollback
from ecommerce_lakehouse.application.run import RunOptions, RunResult
from ecommerce_lakehouse.application.tables import table_ref
from ecommerce_lakehouse.application.validate import ValidateTables
from ecommerce_lakehouse.domain.errors import ConfigurationError
from ecommerce_lakehouse.domain.schemas import ORDERS
from ecommerce_lakehouse.domain.types import FileStatus
from ecommerce_lakehouse.domain.validation import ValidationPolicy
from ecommerce_lakehouse.ports.engine import CommitRecord
from ecommerce_lakehouse.ports.platform import Platform
from tests.fake_engine import InMemoryQueryService, InMemoryTableEngine
from tests.fakes import InMemoryCatalogue, InMemoryLock, InMemoryObjectStorage

HEADER = "order_num,order_id,user_id,order_timestamp,total_amount\n"
FIRST = HEADER + "1,o1,u1,2024-01-01T10:00:00,10.0\n2,o2,u1,2024-01-02T10:00:00,4.5\n"
# A daily batch: o1 corrected, o3 new.
DAILY = HEADER + "1,o1,u1,2024-01-01T11:00:00,12.0\n3,o3,u2,2024-01-03T10:00:00,7.5\n"


def _ticking() -> Iterator[datetime]:
    start = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
    return (start + timedelta(seconds=n) for n in itertools.count())


class World:
    """A lake on fakes whose clock moves a second at every reading."""

    def __init__(self) -> None:
        self.storage = InMemoryObjectStorage()
        self.engine = InMemoryTableEngine(self.storage)
        self.query = InMemoryQueryService(self.engine, self.storage)
        self.platform = Platform(
            storage=self.storage,
            catalogue=InMemoryCatalogue(),
            query=self.query,
            lock=InMemoryLock(),
        )
        self._ticks = _ticking()
        #: The version of orders after the first run.
        self.first_load = 0
        self.engine.clock = self.clock
        self.rollback = Rollback(self.engine, self.platform, clock=self.clock)

    def clock(self) -> datetime:
        return next(self._ticks)

    def drop(self, key: str, text: str) -> None:
        self.storage.write_bytes(key, text.encode())

    def run(self) -> RunResult:
        pipeline = RunPipeline(engine=self.engine, platform=self.platform, clock=self.clock)
        return pipeline(RunOptions())

    def version(self, table: str = "orders") -> int:
        return self.engine.history(table_ref(self.storage, table), 1)[0].version

    def orders(self) -> dict[str, float]:
        rows = self.engine.rows(table_ref(self.storage, "orders"))
        return {str(r["order_id"]): float(r["total_amount"]) for r in rows}

    def ledger(self, status: FileStatus) -> list[dict[str, Any]]:
        return self.query.sql(
            "SELECT run_id, source_path, inserted, updated, rows_read, error FROM ingest_log "
            f"WHERE entity = 'orders' AND status = '{status.value}' ORDER BY started_at"
        ).to_pylist()

    def failed_checks(self) -> list[str]:
        validate = ValidateTables(self.query, self.engine, self.storage, clock=self.clock)
        checks = validate(f"v{self.clock().timestamp()}", ValidationPolicy(), full=True)
        return [f"{c.table_name}.{c.check_name}" for c in checks if not c.passed]


@pytest.fixture
def world() -> World:
    """Two runs: the first load of orders, then a daily batch (one update, one insert)."""
    world = World()
    world.drop("raw-data/orders/orders_1.csv", FIRST)
    assert world.run().ok
    world.first_load = world.version()
    world.drop("raw-data/orders/orders_2.csv", DAILY)
    assert world.run().ok
    return world


def test_a_restore_logs_the_loads_it_undoes_and_validation_keeps_passing(world: World) -> None:
    daily_run = world.ledger(FileStatus.LOADED)[-1]["run_id"]
    before = world.version()

    done = world.rollback.restore("orders", version=world.first_load, lock_timeout=5)

    assert world.orders() == {"o1": 10.0, "o2": 4.5}
    assert (done.from_version, done.to_version, done.version) == (
        before,
        world.first_load,
        before + 1,
    )
    assert done.rolled_back == ("raw-data/orders/orders_2.csv",)
    assert done.reinstated == ()
    # A reversal entry under the run whose load it undoes: its counts negated.
    (reversal,) = world.ledger(FileStatus.ROLLED_BACK)
    assert reversal["run_id"] == daily_run
    assert (reversal["rows_read"], reversal["inserted"], reversal["updated"]) == (-2, -1, -1)
    assert reversal["error"].startswith(f"rolled_back: restore {done.run_id} returned orders")
    assert world.failed_checks() == []
    # The RESTORE commit names the command and the version it returned to.
    commit = world.engine.history(table_ref(world.storage, "orders"), 1)[0]
    assert commit.operation == "RESTORE"
    assert commit.metadata[META_RUN_ID] == done.run_id
    assert commit.metadata[META_RESTORED_VERSION] == str(world.first_load)
    record = json.loads(world.storage.read_bytes(maintenance_record_key(done.run_id)))
    assert record["command"] == "restore"
    assert record["rolled_back"] == ["raw-data/orders/orders_2.csv"]

    # The undone file, dropped again, loads again (it was skipped by checksum before).
    world.drop("raw-data/orders/orders_2.csv", DAILY)
    result = world.run()
    assert result.ok, result.failed_checks
    assert [f.status for f in result.files] == [FileStatus.LOADED]
    assert world.orders() == {"o1": 12.0, "o2": 4.5, "o3": 7.5}
    assert world.failed_checks() == []


def test_restoring_to_the_version_before_a_restore_brings_its_loads_back(world: World) -> None:
    before = world.version()
    world.rollback.restore("orders", version=world.first_load, lock_timeout=5)

    done = world.rollback.restore("orders", version=before, lock_timeout=5)

    assert done.reinstated == ("raw-data/orders/orders_2.csv",)
    assert done.rolled_back == ()
    assert world.orders() == {"o1": 12.0, "o2": 4.5, "o3": 7.5}
    assert world.failed_checks() == []
    # Loaded again: the same content dropped once more is skipped, not loaded twice.
    world.drop("raw-data/orders/orders_2.csv", DAILY)
    assert [f.status for f in world.run().files] == [FileStatus.SKIPPED]


def test_restoring_to_an_empty_table_undoes_every_load(world: World) -> None:
    done = world.rollback.restore("orders", version=0, lock_timeout=5)

    assert sorted(done.rolled_back) == [
        "raw-data/orders/orders_1.csv",
        "raw-data/orders/orders_2.csv",
    ]
    assert world.orders() == {}
    assert world.failed_checks() == []


def test_forget_lets_the_next_run_load_the_content_again_without_changing_counts(
    world: World,
) -> None:
    done = world.rollback.forget(["raw-data/orders/orders_1.csv"], lock_timeout=5)

    assert done.forgotten == ("raw-data/orders/orders_1.csv",)
    (forgotten,) = world.ledger(FileStatus.FORGOTTEN)
    assert (forgotten["run_id"], forgotten["inserted"], forgotten["rows_read"]) == (
        done.run_id,
        0,
        0,
    )
    assert world.failed_checks() == []

    world.drop("raw-data/orders/orders_1.csv", FIRST)
    result = world.run()
    assert [f.status for f in result.files] == [FileStatus.LOADED]
    # Its rows were there: o2 unchanged, o1 older than the stored correction.
    assert world.orders() == {"o1": 12.0, "o2": 4.5, "o3": 7.5}
    assert world.failed_checks() == []


def test_reprocess_moves_the_archived_file_back_and_the_next_run_loads_it(world: World) -> None:
    (archived,) = [info.key for info in world.storage.list("archive/") if "orders_2" in info.key]
    checksum = world.storage.checksum(archived)

    done = world.rollback.forget([checksum], lock_timeout=5, reprocess=True)

    assert done.returned == ("raw-data/orders/orders_2.csv",)
    assert not world.storage.exists(archived)
    assert world.storage.read_bytes("raw-data/orders/orders_2.csv") == DAILY.encode()
    assert [f.status for f in world.run().files] == [FileStatus.LOADED]


def test_bad_requests_change_nothing(world: World) -> None:
    version = world.version()
    rows = len(world.ledger(FileStatus.LOADED))
    with pytest.raises(ConfigurationError, match="'ingest_log' is an audit table"):
        world.rollback.restore("ingest_log", version=0, lock_timeout=5)
    with pytest.raises(ConfigurationError, match="unknown table 'nope'"):
        world.rollback.restore("nope", version=0, lock_timeout=5)
    with pytest.raises(ConfigurationError, match=f"expected 0 to {version - 1}"):
        world.rollback.restore("orders", version=version, lock_timeout=5)
    with pytest.raises(ConfigurationError, match="a version or a timestamp"):
        world.rollback.restore("orders", lock_timeout=5)
    with pytest.raises(ConfigurationError, match=r"no loaded file matches raw-data/x\.csv"):
        world.rollback.forget(["raw-data/orders/orders_1.csv", "raw-data/x.csv"], lock_timeout=5)
    assert world.version() == version
    assert len(world.ledger(FileStatus.LOADED)) == rows
    assert world.ledger(FileStatus.FORGOTTEN) == []


def _commit(version: int, operation: str, **metadata: str) -> CommitRecord:
    return CommitRecord(
        version=version, timestamp=None, operation=operation, metadata=metadata, metrics={}
    )


def _load(version: int, run_id: str, *keys: str) -> CommitRecord:
    files = json.dumps([{"key": key} for key in keys])
    return _commit(
        version, "MERGE", **{META_RUN_ID: run_id, META_ENTITY: "orders", META_FILES: files}
    )


def test_lineage_follows_restores_and_stops_where_the_history_does() -> None:
    history = [
        _commit(0, "CREATE TABLE"),
        _load(1, "a", "f1"),
        _load(2, "b", "f2", "f3"),
        _commit(3, "OPTIMIZE", **{META_RUN_ID: "m"}),
        _commit(4, "RESTORE", **{META_RESTORED_VERSION: "1"}),
        _load(5, "c", "f4"),
        _commit(6, "RESTORE"),  # made by another tool: nothing said of what it kept
        _load(7, "d", "f5"),
    ]
    assert lineage(ORDERS, history, 3).loads == {("a", "f1"), ("b", "f2"), ("b", "f3")}
    assert lineage(ORDERS, history, 5).loads == {("a", "f1"), ("c", "f4")}
    assert lineage(ORDERS, history, 7).loads == {("d", "f5")}
    assert not lineage(ORDERS, history, 7).complete
    # A cleaned-up log: the walk ends where the commits do.
    assert lineage(ORDERS, history[2:], 3).loads == {("b", "f2"), ("b", "f3")}


def test_a_load_that_made_no_commit_is_rolled_back_with_the_version_it_was_logged_in(
    world: World,
) -> None:
    # The same rows again in other bytes: loaded, but the MERGE changes nothing, no commit.
    world.drop("raw-data/orders/orders_3.csv", DAILY.replace("12.0", "12.00"))
    assert [f.status for f in world.run().files] == [FileStatus.LOADED]
    daily = world.version()

    done = world.rollback.restore("orders", version=world.first_load, lock_timeout=5)

    assert sorted(done.rolled_back) == [
        "raw-data/orders/orders_2.csv",
        "raw-data/orders/orders_3.csv",
    ]
    world.drop("raw-data/orders/orders_3.csv", DAILY.replace("12.0", "12.00"))
    assert [f.status for f in world.run().files] == [FileStatus.LOADED]
    assert world.failed_checks() == []
    # Undoing that restore brings both back, the one without a commit by its time.
    world.rollback.restore("orders", version=daily, lock_timeout=5)
    assert world.failed_checks() == []


def test_a_restore_logs_a_run_interrupted_before_its_log_and_undoes_it(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.drop("raw-data/orders/orders_3.csv", HEADER + "4,o4,u3,2024-01-04T10:00:00,1.0\n")
    with monkeypatch.context() as patch:
        patch.setattr(
            "ecommerce_lakehouse.application.ingest.append_ingest_log",
            lambda *args, **kwargs: (_ for _ in ()).throw(OSError("injected: stopped")),
        )
        assert not world.run().ok  # committed, not logged

    done = world.rollback.restore("orders", version=world.first_load, lock_timeout=5)

    assert "raw-data/orders/orders_3.csv" in done.rolled_back
    assert world.failed_checks() == []
    assert [f.status for f in world.run().files] == [FileStatus.LOADED]  # loads again


def test_reprocess_checks_every_move_before_changing_anything(world: World) -> None:
    world.drop("raw-data/orders/orders_2.csv", HEADER + "9,o9,u9,2024-01-09T10:00:00,9.0\n")
    with pytest.raises(ConfigurationError, match="already holds another file"):
        world.rollback.forget(["raw-data/orders/orders_2.csv"], lock_timeout=5, reprocess=True)
    assert world.ledger(FileStatus.FORGOTTEN) == []


def test_a_key_that_named_two_contents_needs_the_checksum(world: World) -> None:
    world.drop("raw-data/orders/orders_2.csv", HEADER + "9,o9,u9,2024-01-09T10:00:00,9.0\n")
    assert world.run().ok
    with pytest.raises(ConfigurationError, match="names 2 different contents"):
        world.rollback.forget(["raw-data/orders/orders_2.csv"], lock_timeout=5)
    assert world.ledger(FileStatus.FORGOTTEN) == []


def test_the_lake_report_counts_files_as_runs_saw_them_not_the_rows_a_restore_wrote(
    world: World,
) -> None:
    before = ReportLake(world.engine, world.storage, world.query)().files_by_status
    world.rollback.restore("orders", version=0, lock_timeout=5)
    world.rollback.restore("orders", version=world.first_load + 1, lock_timeout=5)

    assert ReportLake(world.engine, world.storage, world.query)().files_by_status == before
