"""`lakehouse sql` with query trino: Trino 476 reads the S3 lake a run registered in Glue.

The lake is built by ``lakehouse run --lake s3://…`` on moto; the same command then runs
each query once with DuckDB (the default) and once on the Trino fixture
(``LAKEHOUSE_QUERY=trino``, ``LAKEHOUSE_TRINO_URL``; the schema is the lake's Glue
database), and both print the same JSON.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from tests.aws.test_cli_s3 import lakehouse
from tests.aws.test_trino_athena import S3Lake, build_lake
from tests.aws_support import MotoServer
from tests.e2e.test_cli import assert_one_line_error
from tests.trino_support import TrinoServer

pytestmark = [pytest.mark.aws, pytest.mark.trino]


@pytest.fixture(scope="module")
def lake(moto: MotoServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Lake]:
    """An S3 lake after one successful run."""
    built = build_lake(moto, tmp_path_factory, seed=21)
    yield built
    built.lake.close()


def _sql(
    lake: S3Lake, query: str, *args: str, **environment: str
) -> subprocess.CompletedProcess[str]:
    return lakehouse(
        {**lake.environment, **environment},
        "sql",
        "--lake",
        lake.root,
        "--format",
        "json",
        *args,
        query,
    )


def _rows(done: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    assert done.returncode == 0, done.stdout + done.stderr
    rows: list[dict[str, Any]] = json.loads(done.stdout)
    return rows


def _on_trino(trino: TrinoServer, **more: str) -> dict[str, str]:
    return {"LAKEHOUSE_QUERY": "trino", "LAKEHOUSE_TRINO_URL": trino.endpoint, **more}


@pytest.mark.parametrize(
    "query",
    [
        "SELECT date, count(*) AS orders, round(sum(total_amount), 2) AS total "
        "FROM orders GROUP BY date ORDER BY date",
        "SELECT o.order_id, count(i.id) AS items FROM orders o JOIN order_items i "
        "ON i.order_id = o.order_id GROUP BY o.order_id ORDER BY items DESC, o.order_id LIMIT 5",
        "SELECT status, sum(rows_read) AS rows_read FROM ingest_log GROUP BY status ORDER BY 1",
    ],
    ids=["orders-by-date", "join", "audit-table"],
)
def test_lakehouse_sql_on_trino_prints_what_duckdb_prints(
    trino: TrinoServer, lake: S3Lake, query: str
) -> None:
    on_trino = _rows(_sql(lake, query, **_on_trino(trino)))

    assert on_trino
    assert on_trino == _rows(_sql(lake, query))


def test_as_of_reads_the_same_older_version_on_trino(trino: TrinoServer, lake: S3Lake) -> None:
    history = lake.lake.history("orders")
    assert len(history) >= 2, "precondition: orders has an older version"
    older = min(c.version for c in history if c.version > 0)
    query = "SELECT count(*) AS n FROM orders"

    pinned = _rows(_sql(lake, query, "--as-of", f"orders={older}", **_on_trino(trino)))

    assert pinned == _rows(_sql(lake, query, "--as-of", f"orders={older}"))
    assert _rows(_sql(lake, query, "--as-of", "orders=0", **_on_trino(trino))) == [{"n": 0}]


def test_a_write_is_refused_and_changes_nothing(trino: TrinoServer, lake: S3Lake) -> None:
    count = "SELECT count(*) AS n FROM orders"
    before = _rows(_sql(lake, count, **_on_trino(trino)))

    done = _sql(lake, "DELETE FROM orders", **_on_trino(trino))

    assert_one_line_error(done, 1)
    assert "read-only" in done.stderr
    assert _rows(_sql(lake, count, **_on_trino(trino))) == before


def test_a_catalog_the_cluster_lacks_is_trino_s_reason_in_one_line(
    trino: TrinoServer, lake: S3Lake
) -> None:
    done = _sql(
        lake, "SELECT count(*) AS n FROM orders", **_on_trino(trino, LAKEHOUSE_TRINO_CATALOG="nope")
    )

    assert_one_line_error(done, 1)
    assert "nope" in done.stderr
