"""The Spark engine on an S3 lake (moto): `lakehouse run --engine spark` and the Glue job.

Spark reaches the emulator through S3A (hadoop-aws, fetched by ``make`` with the Delta jars)
and commits through Delta's S3 single-driver log store, one writer at a time under the S3
lake lock. The same raw files go through the Polars engine into another bucket; both lakes
must hold the same rows. (The Glue job on S3, started as Glue starts it, is
``test_glue_job_as_glue_runs_it.py``.)
"""

from __future__ import annotations

import json
import os
import subprocess
from datetime import date
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from deltalake import DeltaTable

from ecommerce_lakehouse.application.lake import open_lake
from ecommerce_lakehouse.domain.schemas import SCHEMAS
from ecommerce_lakehouse.domain.validation import ValidationPolicy, all_checks, scalars_sql
from ecommerce_lakehouse.domain.zones import audit_key, table_key
from ecommerce_lakehouse_datagen import generate
from tests.aws.test_cli_s3 import lakehouse
from tests.aws.test_trino_athena import comparable as trino_comparable
from tests.aws_support import MotoServer
from tests.e2e.test_cli import LAKEHOUSE
from tests.e2e.test_spark_engine import comparable
from tests.trino_support import TrinoServer

pytestmark = [pytest.mark.aws, pytest.mark.spark]

GLUE_JOB = str(Path(LAKEHOUSE).with_name("lakehouse-glue-job"))


def glue_job(environment: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    # As Glue starts the script, with only the emulator's settings in the environment.
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "LAKEHOUSE_"))}
    return subprocess.run(
        [GLUE_JOB, *args],
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
        env={**base, **environment},
    )


class S3Lake:
    """A lake root in the emulator's S3 with the raw files of one generated drop."""

    def __init__(self, moto: MotoServer, raw: Path) -> None:
        self.root = moto.new_lake()
        self.bucket, _, self.prefix = self.root.removeprefix("s3://").partition("/")
        self.s3 = moto.client("s3")
        self.options = moto.options()
        self.environment = moto.environment(self.options)
        for path in sorted((raw / "raw-data").rglob("*.csv")):
            self.s3.upload_file(str(path), self.bucket, self.key(path.relative_to(raw)))

    def key(self, relative: Path | str) -> str:
        return f"{self.prefix}/{Path(relative).as_posix()}"

    def keys(self, zone: str) -> list[str]:
        pages = self.s3.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.key(zone) + "/"
        )
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))

    def rows(self, key: str, order: list[str]) -> list[dict[str, Any]]:
        storage = {
            "AWS_REGION": self.options["region"],
            "AWS_ENDPOINT_URL": self.options["endpoint_url"],
            "AWS_ALLOW_HTTP": "true",
            "AWS_ACCESS_KEY_ID": self.options["access_key_id"],
            "AWS_SECRET_ACCESS_KEY": self.options["secret_access_key"],
        }
        table = DeltaTable(f"{self.root}/{key}", storage_options=storage).to_pyarrow_table()
        return comparable(pl.DataFrame(pl.from_arrow(table)), order)


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    local = tmp_path_factory.mktemp("raw")
    # Three days of orders: a Spark run costs per data file (one per date partition), not per
    # row.
    generate(local, scale=0.0005, seed=23, dirty=0.05, end=date(2024, 1, 3))
    return local


@pytest.fixture(scope="module")
def lakes(moto: MotoServer, raw: Path) -> tuple[S3Lake, S3Lake, dict[str, Any]]:
    """Two S3 lakes from the same drop: one run by each engine through the CLI."""
    polars_lake, spark_lake = S3Lake(moto, raw), S3Lake(moto, raw)
    done = lakehouse(polars_lake.environment, "run", "--lake", polars_lake.root)
    assert done.returncode == 0, done.stdout + done.stderr
    done = lakehouse(
        spark_lake.environment,
        "run",
        "--lake",
        spark_lake.root,
        "--engine",
        "spark",
        "--format",
        "json",
        timeout=1200,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    return polars_lake, spark_lake, json.loads(done.stdout)


def test_lakehouse_run_with_spark_on_s3_archives_and_validates(
    lakes: tuple[S3Lake, S3Lake, dict[str, Any]],
) -> None:
    _, spark_lake, result = lakes
    assert result["engine"] == "spark" and result["ok"] is True
    assert spark_lake.keys("raw-data") == []
    loaded = [f for f in result["files"] if f["status"] == "loaded"]
    assert loaded and all(spark_lake.keys(f["destination"].rpartition("/")[0]) for f in loaded)
    assert result["checks"] and all(
        c["passed"] for c in result["checks"] if c["severity"] == "error"
    )


def test_spark_and_polars_store_the_same_rows_in_s3(
    lakes: tuple[S3Lake, S3Lake, dict[str, Any]],
) -> None:
    polars_lake, spark_lake, _ = lakes
    for schema in SCHEMAS:
        key, order = table_key(schema.name), list(schema.primary_key)
        assert spark_lake.rows(key, order) == polars_lake.rows(key, order), schema.name
    for name, order in {
        "quarantine": ["source_file", "line_number"],
        "ingest_log": ["source_path"],
        "validation_results": ["table_name", "check_name"],
    }.items():
        assert spark_lake.rows(audit_key(name), order) == polars_lake.rows(audit_key(name), order)


def test_spark_writes_delta_tables_delta_rs_and_sql_read(
    lakes: tuple[S3Lake, S3Lake, dict[str, Any]],
) -> None:
    _, spark_lake, _ = lakes
    done = lakehouse(
        spark_lake.environment,
        "sql",
        "--lake",
        spark_lake.root,
        "--format",
        "json",
        "SELECT (SELECT COUNT(*) FROM orders) AS stored, "
        "(SELECT SUM(inserted) FROM ingest_log WHERE entity = 'orders') AS inserted",
    )
    assert done.returncode == 0, done.stderr
    [counts] = json.loads(done.stdout)
    assert counts["stored"] == counts["inserted"] > 0
    commits = [k for k in spark_lake.keys(table_key("orders")) if "/_delta_log/" in k]
    assert any(k.endswith("00000000000000000000.json") for k in commits)


@pytest.mark.trino
def test_trino_reads_the_tables_spark_registered_in_glue_as_duckdb_does(
    lakes: tuple[S3Lake, S3Lake, dict[str, Any]], trino: TrinoServer
) -> None:
    # Athena's engine on the Spark engine's lake: the tables `lakehouse run --engine spark`
    # registered in Glue, listed and read by Trino with no registration of its own.
    _, spark_lake, _ = lakes
    database = spark_lake.environment["LAKEHOUSE_GLUE_DATABASE"]
    with open_lake(spark_lake.root, engine="polars", options=spark_lake.options) as lake:
        names = sorted(t.name for t in lake.tables())
        _, listed = trino.query_with_columns("SHOW TABLES", database)
        assert sorted(str(row[0]) for row in listed) == names
        for name in names:
            sql = f"SELECT * FROM {name}"
            columns, rows = trino.query_with_columns(sql, database)
            on_trino = [dict(zip(columns, row, strict=True)) for row in rows]
            on_duckdb = lake.sql(sql).to_pylist()
            assert on_duckdb, f"{name} is empty: nothing compared"
            assert columns == list(on_duckdb[0]), name
            assert trino_comparable(on_trino) == trino_comparable(on_duckdb), name


@pytest.mark.trino
def test_every_check_observes_the_same_on_trino_spark_sql_and_duckdb(
    lakes: tuple[S3Lake, S3Lake, dict[str, Any]], trino: TrinoServer
) -> None:
    # Each check's observed and expected SQL, in one statement, on Athena's engine, on the
    # Spark engine's SQL and on DuckDB, over the Spark engine's lake.
    _, spark_lake, _ = lakes
    checks = all_checks(ValidationPolicy())
    statement = scalars_sql(
        [sql for c in checks for sql in (c.observed_sql, c.expected_sql) if sql is not None]
    )
    database = spark_lake.environment["LAKEHOUSE_GLUE_DATABASE"]
    _, [on_trino] = trino.query_with_columns(statement, database)
    done = lakehouse(
        spark_lake.environment,
        *("sql", "--lake", spark_lake.root, "--engine", "spark", "--format", "json", statement),
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    [on_spark] = json.loads(done.stdout)
    with open_lake(spark_lake.root, engine="polars", options=spark_lake.options) as lake:
        [on_duckdb] = lake.sql(statement).to_pylist()

    assert [int(v) for v in on_trino] == [int(v) for v in on_spark.values()]
    assert [int(v) for v in on_trino] == [int(v) for v in on_duckdb.values()]
    assert len(on_trino) > len(checks)  # every check, and the expected sides
