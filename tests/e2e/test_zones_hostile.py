"""Hostile raw files on a local lake, end to end: no input crashes a run or slips the ledger."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import ecommerce_lakehouse as lh
from ecommerce_lakehouse.application.run import RunOptions
from ecommerce_lakehouse_local.storage import TEMP_PREFIX, LocalObjectStorage

LAKEHOUSE = str(Path(sys.executable).parent / "lakehouse")
PRODUCTS = "product_id,department_id,department,product_name\np1,1,frozen,Ice\np2,2,bakery,Bread\n"
ORDERS_HEADER = "order_num,order_id,user_id,order_timestamp,total_amount,date\n"


def lakehouse(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [LAKEHOUSE, *args], capture_output=True, text=True, timeout=300, check=False
    )


def ingest_log(lake: Path) -> dict[str, tuple[str, str | None]]:
    done = lakehouse(
        "sql", "--lake", str(lake), "--format", "json", "SELECT * FROM ingest_log ORDER BY run_id"
    )
    assert done.returncode == 0, done.stderr
    return {r["source_path"]: (r["status"], r["error"]) for r in json.loads(done.stdout)}


def order_rows(first: int, count: int) -> str:
    return "".join(
        f"{n},o{n},u{n},2024-01-01T10:00:00,{n}.5,2024-01-01\n" for n in range(first, first + count)
    )


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_hostile_names_and_paths_are_logged_and_the_others_load(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    raw = lake / "raw-data"
    write(raw / "products" / "products_a.csv", PRODUCTS)
    write(raw / "products_a.csv", PRODUCTS.replace("Ice", "Ice cream"))  # same name, elsewhere
    write(raw / "products" / "bad.csv", "a,b\n1,2\n")
    write(raw / "orders" / "bad.csv", "x,y\n3,4\n")  # same name, another entity
    write(raw / "orders_ok.csv", ORDERS_HEADER + order_rows(1, 3))
    write(raw / "products_b\\ack.csv", PRODUCTS)  # a name no lake key can carry
    long_name = "orders_" + "x" * 235 + ".csv"  # 246 characters
    write(raw / long_name, "a,b\n1,2\n")  # rejected: its .error.json would be too long
    write(raw / "orders" / "2024" / "orders_nested.csv", ORDERS_HEADER + order_rows(10, 1))
    (raw / "orders_link.csv").symlink_to(raw / "orders_ok.csv")
    stale = lake / "archive" / "old" / f"{TEMP_PREFIX}crashed"
    write(stale, "half a copy")
    os.utime(stale, (time.time() - 3600,) * 2)

    done = lakehouse("run", "--lake", str(lake))

    assert done.returncode == 0, done.stdout + done.stderr
    assert "ignored" in done.stdout
    log = ingest_log(lake)
    assert log["raw-data/products_b\\ack.csv"][0] == "ignored"
    assert (log["raw-data/products_b\\ack.csv"][1] or "").startswith("invalid_name")
    assert log["raw-data/orders/2024/orders_nested.csv"][0] == "ignored"
    assert log["raw-data/orders_link.csv"][0] == "ignored"
    assert log[f"raw-data/{long_name}"][0] == "rejected"
    assert log["raw-data/orders_ok.csv"][0] == "loaded"
    assert {log["raw-data/products/bad.csv"][0], log["raw-data/orders/bad.csv"][0]} == {"rejected"}
    # Set-aside files stay; everything else went to exactly one place.
    assert sorted(p.relative_to(raw).as_posix() for p in raw.rglob("*.csv")) == [
        "orders/2024/orders_nested.csv",
        "orders_link.csv",
        "products_b\\ack.csv",
    ]
    rejected = sorted(p.relative_to(lake / "rejected") for p in (lake / "rejected").rglob("*.*"))
    assert len(rejected) == 6  # three files, three error reports
    assert all(len(part.encode()) <= 255 for p in rejected for part in p.parts)
    (run,) = (lake / "rejected").iterdir()
    for entity in ("products", "orders"):
        report = json.loads((run / entity / "bad.csv.error.json").read_text())
        assert report["source_path"] == f"raw-data/{entity}/bad.csv"
    archived = sorted(p.name for p in (lake / "archive").rglob("products_a.csv"))
    assert archived == ["products_a.csv", "products_a.csv"]
    assert not stale.exists()
    assert "Validation checks" in done.stdout  # catalogue and validate ran

    again = lakehouse("run", "--lake", str(lake))

    assert again.returncode == 0, again.stdout + again.stderr


def test_an_unreadable_raw_file_is_ignored_and_the_others_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake = tmp_path / "lake"
    write(lake / "raw-data" / "products_1.csv", PRODUCTS)
    write(lake / "raw-data" / "orders_1.csv", ORDERS_HEADER + order_rows(1, 2))
    locked = lake / "raw-data" / "orders_2.csv"
    write(locked, ORDERS_HEADER + order_rows(5, 2))
    locked.chmod(0)
    checksum = LocalObjectStorage.checksum

    def as_non_root(self: LocalObjectStorage, key: str) -> str:
        # chmod 000 stops every user but root; play the unprivileged user under root too.
        if key == "raw-data/orders_2.csv":
            raise PermissionError(13, "Permission denied")
        return checksum(self, key)

    monkeypatch.setattr(LocalObjectStorage, "checksum", as_non_root)

    result = lh.open_lake(str(lake)).run(RunOptions(settle_seconds=0))

    statuses = {o.file.key: o.status.value for o in result.files}
    assert statuses == {
        "raw-data/orders_1.csv": "loaded",
        "raw-data/orders_2.csv": "ignored",
        "raw-data/products_1.csv": "loaded",
    }
    assert result.ok and result.exit_code == 0
    assert locked.exists()
    locked.chmod(0o644)


def test_a_file_still_being_written_waits_and_loses_no_row(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    write(lake / "raw-data" / "products_1.csv", PRODUCTS)
    growing = lake / "raw-data" / "orders_slow.csv"
    write(growing, ORDERS_HEADER)
    os.utime(lake / "raw-data" / "products_1.csv", (time.time() - 60,) * 2)

    def slow_writer() -> None:
        with growing.open("a") as handle:
            for n in range(1, 31):
                handle.write(order_rows(n, 1))
                handle.flush()
                time.sleep(0.1)

    opened = lh.open_lake(str(lake))  # engine imports done before the writer starts
    writer = threading.Thread(target=slow_writer)
    writer.start()
    try:
        first = opened.run(RunOptions(settle_seconds=1))
    finally:
        writer.join()

    statuses = {o.file.key: o.status.value for o in first.files}
    assert statuses["raw-data/orders_slow.csv"] == "waiting"
    assert statuses["raw-data/products_1.csv"] == "loaded"
    assert growing.exists() and first.ok

    second = lh.open_lake(str(lake)).run(RunOptions(settle_seconds=1))

    (orders,) = [o for o in second.files if o.file.key == "raw-data/orders_slow.csv"]
    assert orders.status.value == "loaded" and orders.counts.rows_read == 30
    assert not growing.exists()
    archived = list((lake / "archive").rglob("orders_slow.csv"))
    assert len(archived) == 1 and archived[0].read_text().count("\n") == 31


@pytest.mark.parametrize("how", ["replaced", "rewritten_in_place_same_size_and_mtime"])
def test_a_file_changed_while_the_engine_parsed_it_is_not_loaded_under_the_old_checksum(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    import ecommerce_lakehouse_polars.engine as polars_engine

    lake = tmp_path / "lake"
    raw = lake / "raw-data" / "orders_1.csv"
    write(raw, ORDERS_HEADER + order_rows(1, 5))
    parse = polars_engine.read_source_frame

    def parse_then_change(source: Any, *args: Any, **kwargs: Any) -> Any:
        frame = parse(source, *args, **kwargs)
        if how == "replaced":  # a new file renamed over the old one
            write(tmp_path / "new.csv", ORDERS_HEADER + order_rows(1, 9))
            os.replace(tmp_path / "new.csv", raw)
        else:  # same length, mtime set back: only the ctime tells
            status = raw.stat()
            raw.write_text(ORDERS_HEADER + order_rows(1, 5).replace("u1,", "u7,"))
            os.utime(raw, ns=(status.st_atime_ns, status.st_mtime_ns))
        return frame

    monkeypatch.setattr(polars_engine, "read_source_frame", parse_then_change)
    first = lh.open_lake(str(lake)).run(RunOptions(settle_seconds=0))

    (orders,) = first.files
    assert (orders.status.value, orders.destination) == ("waiting", None)
    assert orders.error is not None and orders.error.startswith("changed_while_read:")
    assert raw.exists() and first.ok
    assert ingest_log(lake)["raw-data/orders_1.csv"][0] == "waiting"

    monkeypatch.undo()
    second = lh.open_lake(str(lake)).run(RunOptions(settle_seconds=0))
    (again,) = second.files
    assert again.status.value == "loaded"
    assert again.counts.rows_read == (9 if how == "replaced" else 5)
    assert again.file.checksum != orders.file.checksum and not raw.exists()


def test_a_lake_whose_ingest_log_predates_destination_gains_the_column(tmp_path: Path) -> None:
    from deltalake import DeltaTable, write_deltalake

    lake = tmp_path / "lake"
    write(lake / "raw-data" / "products_1.csv", PRODUCTS)
    assert lh.open_lake(str(lake)).run(RunOptions(settle_seconds=0)).ok
    # The ingest_log as a version before the column wrote it.
    log = str(lake / "lakehouse-dwh" / "_audit" / "ingest_log")
    older = DeltaTable(log).to_pyarrow_table().drop_columns(["destination"])
    write_deltalake(log, older, mode="overwrite", schema_mode="overwrite")
    write(lake / "raw-data" / "orders_1.csv", ORDERS_HEADER + order_rows(1, 2))

    second = lh.open_lake(str(lake)).run(RunOptions(settle_seconds=0))

    assert second.ok
    done = lakehouse(
        "sql",
        "--lake",
        str(lake),
        "--format",
        "json",
        "SELECT source_path, destination FROM ingest_log ORDER BY source_path",
    )
    assert done.returncode == 0, done.stderr
    (orders,) = second.files
    assert json.loads(done.stdout) == [
        {"source_path": "raw-data/orders_1.csv", "destination": orders.destination},
        {"source_path": "raw-data/products_1.csv", "destination": None},
    ]
    assert orders.destination is not None and (lake / orders.destination).is_file()
