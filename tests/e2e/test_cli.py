"""The `lakehouse` command end to end, as a user runs it, on generated data."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

LAKEHOUSE = str(Path(sys.executable).parent / "lakehouse")


def lakehouse(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [LAKEHOUSE, *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def sql_json(lake: Path, query: str, *extra: str) -> list[dict[str, object]]:
    done = lakehouse("sql", "--lake", str(lake), "--format", "json", *extra, query)
    assert done.returncode == 0, done.stderr
    rows: list[dict[str, object]] = json.loads(done.stdout)
    return rows


def assert_one_line_error(done: subprocess.CompletedProcess[str], code: int) -> None:
    assert done.returncode == code, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr + done.stdout
    assert done.stderr.startswith("error: ")
    assert len(done.stderr.strip().splitlines()) <= 2  # the message, and usage for usage errors


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("lake")
    done = lakehouse("generate", "--out", str(root), "--scale", "0.0005", "--dirty", "0.05")
    assert done.returncode == 0, done.stderr
    done = lakehouse("run", "--lake", str(root))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Validation checks" in done.stdout
    return root


def test_run_loads_everything_and_accounts_for_every_row(lake: Path) -> None:
    assert not list((lake / "raw-data").rglob("*.csv"))
    log = sql_json(lake, "SELECT * FROM ingest_log")
    assert log and {r["status"] for r in log} <= {"loaded", "skipped", "rejected"}
    for row in log:
        assert row["rows_read"] == sum(
            int(row[c])  # type: ignore[call-overload]
            for c in ("inserted", "updated", "unchanged", "duplicates_in_batch", "quarantined")
        )
    counts = sql_json(
        lake,
        "SELECT (SELECT COUNT(*) FROM orders) AS stored, "
        "(SELECT SUM(inserted) FROM ingest_log WHERE entity = 'orders') AS inserted, "
        "(SELECT COUNT(*) FROM quarantine) AS quarantined",
    )[0]
    assert counts["stored"] == counts["inserted"]
    assert int(counts["quarantined"]) > 0  # type: ignore[call-overload]
    checks = sql_json(lake, "SELECT * FROM validation_results WHERE severity = 'error'")
    assert checks and all(c["passed"] for c in checks)


def test_rerun_is_idempotent(lake: Path) -> None:
    query = "SELECT order_id, total_amount, date FROM orders ORDER BY order_id"
    before = sql_json(lake, query)
    done = lakehouse("run", "--lake", str(lake), "--format", "json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["ok"] and report["files"] == []
    assert sql_json(lake, query) == before


def test_sql_formats_history_and_time_travel(lake: Path) -> None:
    done = lakehouse("sql", "--lake", str(lake), "--format", "csv", "SELECT 1 AS a, 'x' AS b")
    assert done.returncode == 0 and done.stdout.splitlines() == ["a,b", "1,x"]
    done = lakehouse("sql", "--lake", str(lake), "SELECT COUNT(*) AS n FROM products")
    assert done.returncode == 0 and "1 row(s)" in done.stdout
    history = lakehouse("history", "--lake", str(lake), "orders", "--format", "json")
    assert history.returncode == 0, history.stderr
    versions = json.loads(history.stdout)
    assert versions[0]["version"] > versions[-1]["version"] == 0
    assert sql_json(lake, "SELECT COUNT(*) AS n FROM orders", "--as-of", "orders=0") == [{"n": 0}]


@pytest.mark.parametrize(
    ("args", "code", "fragment"),
    [
        (("run",), 2, "--lake"),
        (("run", "--lake", "/does/not/exist"), 2, "not a directory"),
        (("frobnicate",), 2, "No such command"),
        (("run", "--lake", ".", "--engine", "nope"), 2, "unknown engine 'nope'"),
        (("run", "--lake", ".", "--schema-evolution", "x"), 2, "add_new_columns"),
        (("sql", "--lake", ".", "--format", "xml", "SELECT 1"), 2, "--format"),
        (("sql", "--lake", ".", "--as-of", "orders", "SELECT 1"), 2, "TABLE=VERSION"),
        (("generate", "--out", "x", "--scale", "0"), 2, "scale"),
        (("generate", "--out", "x", "--start", "yesterday"), 2, "YYYY-MM-DD"),
    ],
)
def test_bad_usage_is_one_line_and_exit_2(
    args: tuple[str, ...], code: int, fragment: str, tmp_path: Path
) -> None:
    done = subprocess.run(
        [LAKEHOUSE, *args], capture_output=True, text=True, cwd=tmp_path, check=False
    )
    assert_one_line_error(done, code)
    assert fragment in done.stderr


def test_query_errors_are_one_line(lake: Path) -> None:
    assert_one_line_error(lakehouse("sql", "--lake", str(lake), "SELEC nonsense"), 1)
    unknown = lakehouse("sql", "--lake", str(lake), "--as-of", "nope=1", "SELECT 1")
    assert_one_line_error(unknown, 2)
    assert_one_line_error(lakehouse("history", "--lake", str(lake), "nope"), 2)


def test_strict_foreign_keys_fail_the_run_on_orphans(lake: Path) -> None:
    orphans = sql_json(
        lake,
        "SELECT COUNT(*) AS n FROM order_items i LEFT JOIN orders o ON i.order_id = o.order_id "
        "WHERE o.order_id IS NULL",
    )[0]["n"]
    assert int(orphans) > 0  # type: ignore[call-overload]
    done = lakehouse("validate", "--lake", str(lake), "--fk-severity", "error")
    assert done.returncode == 1
    assert "FAIL" in done.stdout and "order_id_in_orders" in done.stdout
    assert lakehouse("validate", "--lake", str(lake)).returncode == 0


def test_a_broken_table_fails_validation(tmp_path: Path) -> None:
    import deltalake
    import pyarrow as pa

    assert lakehouse("generate", "--out", str(tmp_path), "--scale", "0.0002").returncode == 0
    assert lakehouse("run", "--lake", str(tmp_path)).returncode == 0
    table = deltalake.DeltaTable(str(tmp_path / "lakehouse-dwh" / "products"))
    one = table.to_pyarrow_table().slice(0, 1)
    deltalake.write_deltalake(table, pa.Table.from_batches(one.to_batches()), mode="append")

    done = lakehouse("validate", "--lake", str(tmp_path))

    assert done.returncode == 1
    assert "primary_key_unique" in done.stdout and "FAIL" in done.stdout


def test_a_run_waits_for_the_lake_lock(tmp_path: Path) -> None:
    from ecommerce_lakehouse.application.lake import open_lake

    platform = open_lake(str(tmp_path)).platform
    with platform.lock.acquire(owner="another-run", timeout_seconds=1):
        done = lakehouse("run", "--lake", str(tmp_path), "--lock-timeout", "0.5")
    assert_one_line_error(done, 1)
    assert "another-run" in done.stderr


def test_demo_runs_on_a_fresh_directory_and_refuses_a_used_one(tmp_path: Path) -> None:
    workdir = tmp_path / "demo"
    done = lakehouse("demo", "--workdir", str(workdir), "--scale", "0.0005")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "all error checks passed" in done.stdout
    assert (workdir / "lakehouse-dwh" / "orders" / "_delta_log").is_dir()
    assert_one_line_error(lakehouse("demo", "--workdir", str(workdir)), 2)


def test_run_takes_the_compaction_policy_and_refuses_one_file(tmp_path: Path) -> None:
    done = lakehouse("run", "--lake", str(tmp_path), "--compact-min-files", "1")
    assert_one_line_error(done, 2)
    assert "compact_min_files 1: expected 0 (never compact) or at least 2" in done.stderr
    done = lakehouse("run", "--lake", str(tmp_path), "--compact-min-files", "0", "--format", "json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["options"]["compact_min_files"] == 0
