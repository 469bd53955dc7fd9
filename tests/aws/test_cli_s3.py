"""The `lakehouse` command on an S3 lake (moto), configured only through the environment."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from ecommerce_lakehouse_datagen import generate
from tests.aws_support import WEEK_END, MotoServer, athena_column, athena_row
from tests.e2e.test_cli import LAKEHOUSE, assert_one_line_error

pytestmark = pytest.mark.aws


def lakehouse(
    environment: dict[str, str], *args: str, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    # Only the emulator's settings: no AWS variable of the developer's shell leaks in.
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "LAKEHOUSE_"))}
    return subprocess.run(
        [LAKEHOUSE, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**base, **environment},
    )


@pytest.fixture(scope="module")
def s3_lake(
    moto: MotoServer, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, dict[str, str]]:
    """An S3 lake after one `lakehouse run --engine polars`, and its environment."""
    local = tmp_path_factory.mktemp("raw")
    generate(local, scale=0.0005, seed=11, dirty=0.02, end=WEEK_END)
    root = moto.new_lake()
    moto.upload_raw(root, local)
    environment = moto.environment(moto.options())

    done = lakehouse(environment, "run", "--lake", root, "--engine", "polars")

    assert done.returncode == 0, done.stdout + done.stderr
    assert "Validation checks" in done.stdout
    return root, environment


def test_run_on_s3_then_query_it_locally(s3_lake: tuple[str, dict[str, str]]) -> None:
    root, environment = s3_lake

    done = lakehouse(
        environment,
        "sql",
        "--lake",
        root,
        "--format",
        "json",
        "SELECT (SELECT COUNT(*) FROM orders) AS stored, "
        "(SELECT SUM(inserted) FROM ingest_log WHERE entity = 'orders') AS inserted, "
        "(SELECT COUNT(*) FROM ingest_log WHERE status = 'loaded') AS files",
    )

    assert done.returncode == 0, done.stderr
    [counts] = json.loads(done.stdout)
    assert counts["stored"] == counts["inserted"] > 0
    assert counts["files"] >= 3
    history = lakehouse(environment, "history", "--lake", root, "orders", "--format", "json")
    assert history.returncode == 0, history.stderr
    assert json.loads(history.stdout)[0]["operation"] in {"MERGE", "WRITE", "CREATE TABLE"}


def test_sql_through_athena(
    moto: MotoServer,
    s3_lake: tuple[str, dict[str, str]],
) -> None:
    root, environment = s3_lake
    output = f"s3://{moto.new_bucket()}/athena/"
    moto.queue_athena_result([athena_column("n", "bigint")], [athena_row("42")])

    done = lakehouse(
        {**environment, "LAKEHOUSE_ATHENA_OUTPUT": output},
        "sql",
        "--lake",
        root,
        "--athena",
        "--format",
        "json",
        "SELECT COUNT(*) AS n FROM orders",
    )

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [{"n": 42}]  # moto's canned answer, typed as bigint


def test_athena_time_travel_is_a_usage_error(s3_lake: tuple[str, dict[str, str]]) -> None:
    root, environment = s3_lake
    environment = {**environment, "LAKEHOUSE_ATHENA_OUTPUT": "s3://results/athena/"}

    done = lakehouse(
        environment, "sql", "--lake", root, "--athena", "--as-of", "orders=0", "SELECT 1"
    )

    assert_one_line_error(done, 2)
    assert "Athena cannot read Delta tables as of a version" in done.stderr


def test_missing_aws_settings_are_one_line_usage_errors(
    s3_lake: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    root, environment = s3_lake
    without_database = {k: v for k, v in environment.items() if k != "LAKEHOUSE_GLUE_DATABASE"}

    done = lakehouse(without_database, "run", "--lake", root)

    assert_one_line_error(done, 2)
    assert "LAKEHOUSE_GLUE_DATABASE" in done.stderr
    done = lakehouse(environment, "sql", "--lake", str(tmp_path), "--athena", "SELECT 1")
    assert_one_line_error(done, 2)
    assert "--athena needs an s3:// lake root" in done.stderr
