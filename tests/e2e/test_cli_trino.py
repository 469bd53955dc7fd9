"""`lakehouse sql` with query trino, when the cluster is not configured or not there.

The queries themselves run against Trino 476 in tests/aws/test_trino_query.py (``-m trino``).
"""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

from tests.e2e.test_cli import LAKEHOUSE, assert_one_line_error


def _sql(lake: Path, environment: dict[str, str], query: str) -> subprocess.CompletedProcess[str]:
    lake.mkdir(exist_ok=True)  # a directory lake; Trino reads its tables through its catalog
    base = {k: v for k, v in os.environ.items() if not k.startswith("LAKEHOUSE_")}
    return subprocess.run(
        [LAKEHOUSE, "sql", "--lake", str(lake), query],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**base, "LAKEHOUSE_QUERY": "trino", **environment},
    )


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_query_trino_without_its_url_says_which_setting_to_set(tmp_path: Path) -> None:
    done = _sql(tmp_path / "lake", {"LAKEHOUSE_TRINO_SCHEMA": "shop"}, "SELECT 1")

    assert_one_line_error(done, 2)
    assert "LAKEHOUSE_TRINO_URL" in done.stderr


def test_query_trino_without_a_schema_says_which_setting_to_set(tmp_path: Path) -> None:
    done = _sql(tmp_path / "lake", {"LAKEHOUSE_TRINO_URL": "http://127.0.0.1:8080"}, "SELECT 1")

    assert_one_line_error(done, 2)
    assert "LAKEHOUSE_TRINO_SCHEMA" in done.stderr


def test_an_unreachable_cluster_is_one_line_naming_it(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{_closed_port()}"

    done = _sql(
        tmp_path / "lake",
        {"LAKEHOUSE_TRINO_URL": url, "LAKEHOUSE_TRINO_SCHEMA": "shop"},
        "SELECT 1",
    )

    assert_one_line_error(done, 1)
    assert f"cannot reach Trino at {url}" in done.stderr


def test_the_password_is_never_echoed(tmp_path: Path) -> None:
    done = _sql(
        tmp_path / "lake",
        {
            "LAKEHOUSE_TRINO_URL": "http://127.0.0.1:8080",
            "LAKEHOUSE_TRINO_SCHEMA": "shop",
            "LAKEHOUSE_TRINO_PASSWORD": "hunter2",
        },
        "SELECT 1",
    )

    assert_one_line_error(done, 2)
    assert "https" in done.stderr
    assert "hunter2" not in done.stdout + done.stderr


def test_a_write_is_refused_before_the_cluster_is_asked(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{_closed_port()}"

    done = _sql(
        tmp_path / "lake",
        {"LAKEHOUSE_TRINO_URL": url, "LAKEHOUSE_TRINO_SCHEMA": "shop"},
        "DELETE FROM orders",
    )

    assert_one_line_error(done, 1)
    assert "read-only" in done.stderr
    assert "cannot reach" not in done.stderr
