"""The AWS emulator of the ``aws``-marked tests: a moto server on 127.0.0.1.

One server per test process, started on first use on a free port and stopped when the
process exits. It runs in a child process (``python -m moto.server``), not in a thread of
this one: delta-rs keeps the GIL during some calls that wait on the network (e.g.
``DeltaTable.is_deltatable``), which would starve a server thread and hang both.

Every test gets fresh names (bucket, Glue database), so tests share the server without
resetting it. Credentials are fake and always passed explicitly, so nothing here can reach
a real AWS account.

Use the ``moto`` fixture (``from tests.aws_support import moto``) or :func:`shared_moto`.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest

REGION = "eu-west-1"
ACCOUNT_ID = "123456789012"  # moto's default account
ACCESS_KEY_ID = "testing"
SECRET_ACCESS_KEY = "testing"
#: The last day of the S3 tests' generated drops (from 2024-01-01): a week of date partitions,
#: not the generator's quarter, as each partition is a file the emulator stores and serves.
WEEK_END = date(2024, 1, 7)


@dataclass(frozen=True)
class MotoServer:
    """A running moto server and helpers to use it."""

    endpoint: str
    port: int

    def client(self, service: str) -> Any:
        """A boto3 client of the emulator (one per service, shared: clients are thread-safe)."""
        return _client(self.endpoint, service)

    def new_bucket(self) -> str:
        """Create a bucket with a fresh name."""
        name = f"lake-{uuid.uuid4().hex[:16]}"
        self.client("s3").create_bucket(
            Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION}
        )
        return name

    def new_lake(self, prefix: str = "lake") -> str:
        """A fresh lake root ``s3://<new bucket>/<prefix>``."""
        return f"s3://{self.new_bucket()}/{prefix}"

    def upload_raw(self, root: str, local: Path) -> None:
        """Upload the CSV files of ``local/raw-data`` (as the data generator writes them) to
        ``raw-data/`` of the lake at ``root`` (``s3://bucket/prefix``)."""
        bucket, _, prefix = root.removeprefix("s3://").partition("/")
        for path in sorted((local / "raw-data").rglob("*.csv")):
            key = f"{prefix}/{path.relative_to(local).as_posix()}"
            self.client("s3").upload_file(str(path), bucket, key)

    def options(self, **extra: str) -> dict[str, str]:
        """``open_lake`` options of the AWS platform on the emulator, with a fresh Glue
        database; ``extra`` adds or overrides settings."""
        return {
            "region": REGION,
            "endpoint_url": self.endpoint,
            "access_key_id": ACCESS_KEY_ID,
            "secret_access_key": SECRET_ACCESS_KEY,
            "glue_database": f"lake_{uuid.uuid4().hex[:12]}",
            **extra,
        }

    def environment(self, options: Mapping[str, str]) -> dict[str, str]:
        """Environment variables that configure the AWS platform as ``options`` do."""
        return {
            "AWS_REGION": options["region"],
            "AWS_DEFAULT_REGION": options["region"],
            "AWS_ENDPOINT_URL": options["endpoint_url"],
            "AWS_ACCESS_KEY_ID": options["access_key_id"],
            "AWS_SECRET_ACCESS_KEY": options["secret_access_key"],
            "LAKEHOUSE_GLUE_DATABASE": options["glue_database"],
        }

    def lambda_environment(self, **extra: str) -> dict[str, str]:
        """What a Lambda's environment holds for the emulator (its endpoint and keys standing in
        for the function's role); ``extra`` adds the function's own variables."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
            "AWS_REGION": REGION,
            **extra,
        }

    def queue_athena_result(
        self, columns: list[dict[str, Any]], rows: list[dict[str, Any]]
    ) -> None:
        """Queue the result moto gives the next Athena query (moto runs no SQL), with the
        header row Athena puts first in a SELECT's result. Build the arguments with
        :func:`athena_column` and :func:`athena_row`."""
        header = athena_row(*(c["Name"] for c in columns))
        payload = {
            "account_id": ACCOUNT_ID,
            "region": REGION,
            "results": [{"rows": [header, *rows], "column_info": columns}],
        }
        status = self.post("/moto-api/static/athena/query-results", json.dumps(payload).encode())
        assert status == 201, status

    def post(self, path: str, payload: bytes) -> int:
        """POST JSON to the emulator's own API (``/moto-api/...``); the HTTP status."""
        request = urllib.request.Request(
            f"{self.endpoint}{path}",
            data=payload,
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)


def athena_column(name: str, kind: str, **extra: Any) -> dict[str, Any]:
    """Athena's metadata of one result column (``ColumnInfo``)."""
    return {"Name": name, "Label": name, "Type": kind, "Nullable": "UNKNOWN", **extra}


def athena_row(*values: str | None) -> dict[str, Any]:
    """One Athena result row; None is SQL NULL (a datum without a value)."""
    return {"Data": [{} if v is None else {"VarCharValue": v} for v in values]}


_server: MotoServer | None = None


@functools.cache
def _client(endpoint: str, service: str) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY_ID,
        aws_secret_access_key=SECRET_ACCESS_KEY,
        config=Config(s3={"addressing_style": "path"}),
    )


def shared_moto() -> MotoServer:
    """The moto server of this test process, started on first use."""
    global _server
    if _server is None:
        _server = _start()
    return _server


@pytest.fixture(scope="session")
def moto() -> MotoServer:
    """The moto server of this test process."""
    return shared_moto()


@contextlib.contextmanager
def private_moto() -> Iterator[MotoServer]:
    """A moto server of its own, stopped on exit, for tests that need a backend no other
    suite has configured (the shared server's Step Functions may execute definitions)."""
    port = _free_port()
    process, endpoint = _spawn(port)
    try:
        if not _ready(endpoint, process):
            raise RuntimeError("a private moto server did not start")
        yield MotoServer(endpoint=endpoint, port=port)
    finally:
        _stop(process)


def _start(attempts: int = 3) -> MotoServer:
    for _ in range(attempts):
        port = _free_port()
        process, endpoint = _spawn(port)
        if _ready(endpoint, process):
            atexit.register(_stop, process)
            os.environ["MOTO_PORT"] = str(port)
            return MotoServer(endpoint=endpoint, port=port)
        _stop(process)  # the port was taken meanwhile: try another one
    raise RuntimeError(f"the moto server did not start after {attempts} attempts")


def _spawn(port: int) -> tuple[subprocess.Popen[bytes], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "MOTO_PORT": str(port)},
    )
    return process, f"http://127.0.0.1:{port}"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _ready(endpoint: str, process: subprocess.Popen[bytes], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1):
                return True
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    return False


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
