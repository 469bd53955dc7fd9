"""`lakehouse run --engine spark` and the Glue job, end to end on generated dirty data.

The same raw files are run through both engines into two lakes; the tables must hold the
same rows, value for value (run ids and ingestion timestamps aside), as
docs/contract.md#engines-and-platforms promises.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from deltalake import DeltaTable

from ecommerce_lakehouse.domain.schemas import INGESTED_AT, RUN_ID, SCHEMAS
from ecommerce_lakehouse.domain.zones import audit_key, table_key
from tests.e2e.test_cli import lakehouse

pytestmark = pytest.mark.spark

#: Columns that differ between two runs by design (run identity and wall-clock times).
RUN_COLUMNS = {
    INGESTED_AT, RUN_ID, "run_id", "quarantined_at", "started_at", "finished_at", "checked_at",
}  # fmt: skip


def comparable(frame: pl.DataFrame, order: list[str]) -> list[dict[str, Any]]:
    """The rows without the run's identity and times, in ``order``.

    ``ingest_log.destination`` names the run's archive folder, and a skipped file's ``error``
    the run that loaded its content: both are compared with the run id masked, so two runs
    that put a file in the same place compare equal.
    """
    rows = frame.sort(order, nulls_last=True).to_dicts()
    for row in rows:
        for column in ("destination", "error"):
            if row.get(column) and row.get("run_id"):
                row[column] = row[column].replace(row["run_id"], "<run>")
    return [{k: v for k, v in row.items() if k not in RUN_COLUMNS} for row in rows]


def table_rows(root: Path, key: str, order: list[str]) -> list[dict[str, Any]]:
    frame = pl.DataFrame(pl.from_arrow(DeltaTable(str(root / key)).to_pyarrow_table()))
    return comparable(frame, order)


@pytest.fixture(scope="module")
def lakes(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Any]:
    polars_lake = tmp_path_factory.mktemp("polars-lake")
    # Three days of orders: a Spark run costs per data file (one per date partition), not per
    # row.
    done = lakehouse(
        "generate",
        *("--out", str(polars_lake), "--scale", "0.0005", "--dirty", "0.05", "--seed", "7"),
        *("--end", "2024-01-03"),
    )
    assert done.returncode == 0, done.stderr
    spark_lake = tmp_path_factory.mktemp("spark-lake")
    shutil.copytree(polars_lake / "raw-data", spark_lake / "raw-data")

    done = lakehouse("run", "--lake", str(polars_lake), "--engine", "polars", "--format", "json")
    assert done.returncode == 0, done.stdout + done.stderr
    done = lakehouse("run", "--lake", str(spark_lake), "--engine", "spark", "--format", "json")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    return polars_lake, spark_lake, json.loads(done.stdout)


def test_spark_run_reports_the_spark_engine_and_archives_everything(
    lakes: tuple[Path, Path, Any],
) -> None:
    _, spark_lake, result = lakes
    assert result["engine"] == "spark" and result["ok"] is True
    assert not list((spark_lake / "raw-data").rglob("*.csv"))
    assert {f["status"] for f in result["files"]} <= {"loaded", "skipped", "rejected"}
    assert any(f["quarantined"] for f in result["files"])


@pytest.mark.parametrize("schema", SCHEMAS, ids=lambda s: s.name)
def test_both_engines_store_the_same_curated_rows(
    lakes: tuple[Path, Path, Any], schema: Any
) -> None:
    polars_lake, spark_lake, _ = lakes
    key = table_key(schema.name)
    expected = table_rows(polars_lake, key, list(schema.primary_key))
    assert expected
    assert table_rows(spark_lake, key, list(schema.primary_key)) == expected


def test_both_engines_quarantine_and_log_the_same_rows(lakes: tuple[Path, Path, Any]) -> None:
    polars_lake, spark_lake, _ = lakes
    quarantine = audit_key("quarantine")
    order = ["source_file", "line_number"]
    assert table_rows(spark_lake, quarantine, order) == table_rows(polars_lake, quarantine, order)
    log = audit_key("ingest_log")
    assert table_rows(spark_lake, log, ["source_path"]) == table_rows(
        polars_lake, log, ["source_path"]
    )


def test_validation_runs_through_spark_sql_with_the_same_outcomes(
    lakes: tuple[Path, Path, Any],
) -> None:
    polars_lake, spark_lake, _ = lakes
    results = audit_key("validation_results")
    order = ["table_name", "check_name"]
    assert table_rows(spark_lake, results, order) == table_rows(polars_lake, results, order)


def test_the_glue_job_runs_end_to_end_on_a_local_lake_root(
    lakes: tuple[Path, Path, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ecommerce_lakehouse_glue.job import main

    polars_lake, _, _ = lakes
    root = tmp_path / "lake"
    # A fresh drop: the polars lake's archived files, back in raw-data/.
    for archived in (polars_lake / "archive").rglob("*.csv"):
        entity = archived.relative_to(polars_lake / "archive").parts[0]
        target = root / "raw-data" / entity / archived.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(archived, target)

    argv = ["glue_job.py", "--JOB_NAME", "lakehouse", "--lake", str(root), "--run_id", "glue-1"]
    code = main(argv)

    assert code == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    written = json.loads((root / "_runs" / "glue-1.json").read_text())
    assert printed == written
    assert written["run_id"] == "glue-1" and written["engine"] == "spark" and written["ok"]
    committed = [f for f in written["files"] if f["status"] == "loaded"]
    assert committed and all(f["destination"].startswith("archive/") for f in committed)
    assert {c["check_name"] for c in written["checks"]} and all(
        c["passed"] for c in written["checks"] if c["severity"] == "error"
    )
    for schema in SCHEMAS:
        key = table_key(schema.name)
        assert table_rows(root, key, list(schema.primary_key)) == table_rows(
            polars_lake, key, list(schema.primary_key)
        )


def test_the_glue_job_can_stop_after_ingest_for_the_orchestrator(tmp_path: Path) -> None:
    from ecommerce_lakehouse_glue.job import main

    root = tmp_path / "lake"
    (root / "raw-data").mkdir(parents=True)
    (root / "raw-data" / "products_1.csv").write_text(
        "product_id,department_id,department,product_name\n1,2,dairy,milk\n"
    )
    argv = ["glue_job.py", "--lake", str(root), "--run_id", "r1", "--steps", "discover,ingest"]
    code = main(argv)

    assert code == 0
    written = json.loads((root / "_runs" / "r1.json").read_text())
    assert [(f["source_path"], f["status"], f["inserted"]) for f in written["files"]] == [
        ("raw-data/products_1.csv", "loaded", 1)
    ]
    assert written["checks"] == []
    assert (root / "raw-data" / "products_1.csv").exists()  # archiving is the orchestrator's
