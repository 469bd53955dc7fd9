"""A whole lake in S3 (moto): the Polars engine's delta-rs reads, writes and MERGEs, S3 moves,
Glue registrations, the S3 lock and DuckDB SQL over the Delta tables in S3, end to end."""

from __future__ import annotations

import hashlib
import threading
from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from ecommerce_lakehouse.application.lake import Lake, open_lake
from ecommerce_lakehouse.application.run import RunResult
from ecommerce_lakehouse.domain.types import FileStatus
from ecommerce_lakehouse.domain.zones import LOCK_KEY
from ecommerce_lakehouse_aws import GlueCatalogue, S3ObjectStorage
from ecommerce_lakehouse_datagen import generate
from tests.aws_support import WEEK_END, MotoServer

pytestmark = pytest.mark.aws


@pytest.fixture(scope="module")
def raw_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """A small dirty data set, by lake key."""
    out = tmp_path_factory.mktemp("raw")
    generate(out, scale=0.0005, seed=7, dirty=0.05, end=WEEK_END)
    return {
        path.relative_to(out).as_posix(): path.read_bytes()
        for path in sorted((out / "raw-data").rglob("*.csv"))
    }


@pytest.fixture(scope="module")
def first_run(moto: MotoServer, raw_files: dict[str, bytes]) -> tuple[Lake, RunResult]:
    lake = open_lake(moto.new_lake(), engine="polars", options=moto.options())
    for key, data in raw_files.items():
        lake.platform.storage.write_bytes(key, data)
    return lake, lake.run()


def test_a_run_on_s3_loads_archives_registers_and_validates(
    first_run: tuple[Lake, RunResult], raw_files: dict[str, bytes]
) -> None:
    lake, result = first_run
    storage = lake.platform.storage
    assert isinstance(storage, S3ObjectStorage)

    assert result.ok, result.error
    assert result.checks and all(c.passed for c in result.checks if c.fails_run)
    assert {f.status for f in result.files} <= {FileStatus.LOADED, FileStatus.REJECTED}
    # Every raw file left raw-data/ for its zone, with the content that was read.
    assert storage.list("raw-data") == []
    moved = {f.file.key: f.destination for f in result.files}
    assert set(moved) == set(raw_files)
    for key, destination in moved.items():
        assert destination is not None
        assert storage.checksum(destination) == hashlib.sha256(raw_files[key]).hexdigest()
    assert not storage.exists(LOCK_KEY)

    counts = lake.sql(
        "SELECT (SELECT COUNT(*) FROM orders) AS stored, "
        "(SELECT SUM(inserted) FROM ingest_log WHERE entity = 'orders') AS inserted, "
        "(SELECT COUNT(*) FROM quarantine) AS quarantined"
    ).to_pylist()[0]
    assert counts["stored"] == counts["inserted"] > 0
    assert counts["quarantined"] > 0

    catalogue = lake.platform.catalogue
    assert isinstance(catalogue, GlueCatalogue)
    registered = {t.name: t for t in catalogue.list()}
    assert set(registered) == {
        "ingest_log", "order_items", "orders", "products", "quarantine", "validation_results"
    }  # fmt: skip
    assert registered["orders"].location == storage.uri("lakehouse-dwh/orders")
    assert registered["orders"].partition_columns == ("date",)


def test_a_correction_is_merged_and_the_old_version_stays_readable(
    first_run: tuple[Lake, RunResult],
) -> None:
    lake, _ = first_run
    before = lake.history("orders")[0].version
    old = lake.sql(
        "SELECT order_num, order_id, user_id, order_timestamp, total_amount FROM orders "
        "ORDER BY order_id LIMIT 1"
    ).to_pylist()[0]
    later = (old["order_timestamp"] + timedelta(minutes=5)).isoformat()
    correction = (
        "order_num,order_id,user_id,order_timestamp,total_amount\n"
        f"{old['order_num']},{old['order_id']},{old['user_id']},{later},"
        f"{old['total_amount'] + 1}\n"
    )
    lake.platform.storage.write_bytes("raw-data/orders/orders_fix.csv", correction.encode())

    result = lake.run()

    assert result.ok, result.error
    [outcome] = result.files
    assert (outcome.status, outcome.counts.updated) == (FileStatus.LOADED, 1)
    assert lake.history("orders")[0].operation == "MERGE"

    def amount(as_of: dict[str, int] | None = None) -> float:
        # Filtered here, not in SQL: DuckDB's pushed-down string equality fails on the
        # string_view columns of Polars-written files (a local SQL issue, not an S3 one).
        rows = lake.sql("SELECT order_id, total_amount FROM orders", as_of=as_of).to_pylist()
        [value] = [r["total_amount"] for r in rows if r["order_id"] == old["order_id"]]
        return float(value)

    assert amount() == old["total_amount"] + 1
    assert amount({"orders": before}) == old["total_amount"]


def test_a_run_without_new_files_changes_nothing(first_run: tuple[Lake, RunResult]) -> None:
    lake, _ = first_run
    versions = {name: lake.history(name)[0].version for name in ("orders", "products")}

    result = lake.run()

    assert result.ok and result.files == ()
    assert {name: lake.history(name)[0].version for name in versions} == versions


def test_concurrent_delta_commits_on_s3_are_never_lost(
    moto: MotoServer,
    tmp_path: Path,
) -> None:
    # Commits are conditional puts (If-None-Match): a writer that loses the race for a log
    # entry retries on the next version instead of overwriting the winner's commit.
    storage = open_lake(moto.new_lake(), options=moto.options()).platform.storage
    uri, options = storage.uri("concurrent"), dict(storage.storage_options)
    write_deltalake(uri, pa.table({"writer": pa.array([], pa.int64())}), storage_options=options)

    def append(writer: int) -> None:
        for _ in range(3):
            write_deltalake(
                uri, pa.table({"writer": [writer]}), mode="append", storage_options=options
            )

    threads = [threading.Thread(target=append, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    table = DeltaTable(uri, storage_options=options)
    assert table.version() == 12
    assert sorted(table.to_pyarrow_table()["writer"].to_pylist()) == sorted(
        [n for n in range(4) for _ in range(3)]
    )


def test_restore_and_reprocess_on_s3_keep_the_ledger_true(moto: MotoServer) -> None:
    lake = open_lake(moto.new_lake(), engine="polars", options=moto.options())
    storage = lake.platform.storage
    header = "order_num,order_id,user_id,order_timestamp,total_amount\n"
    storage.write_bytes(
        "raw-data/orders/o1.csv", (header + "1,o1,u1,2024-01-01T10:00:00Z,1.5\n").encode()
    )
    assert lake.run().ok
    first = lake.history("orders", 1)[0].version
    storage.write_bytes(
        "raw-data/orders/o2.csv", (header + "2,o2,u1,2024-01-02T10:00:00Z,2.5\n").encode()
    )
    assert lake.run().ok

    done = lake.restore("orders", version=first)

    assert done.rolled_back == ("raw-data/orders/o2.csv",)
    assert lake.sql("SELECT order_id FROM orders").to_pylist() == [{"order_id": "o1"}]
    assert all(check.passed for check in lake.validate(full=True))
    # The archived file goes back to raw-data/ (an S3 copy and delete) and loads again.
    assert lake.reprocess(["raw-data/orders/o2.csv"]).returned == ("raw-data/orders/o2.csv",)
    result = lake.run()
    assert result.ok, (result.error, result.failed_checks)
    assert [f.status for f in result.files] == [FileStatus.LOADED]
    assert lake.sql("SELECT COUNT(*) AS n FROM orders").to_pylist() == [{"n": 2}]
