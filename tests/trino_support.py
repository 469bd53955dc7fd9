"""Athena's engine for the ``trino``-marked tests: Trino on 127.0.0.1 over moto's Glue and S3.

Athena engine v3 is Trino with the Glue Data Catalog as its metastore and S3 as its storage.
The ``trino`` fixture starts the Trino server ``make install`` unpacked
(``LAKEHOUSE_TRINO_HOME``, version from ``tests/trino/pom.xml``) on the Java that
``tests/trino/find-java`` finds (or ``LAKEHOUSE_TRINO_JAVA``), once per test process, with one
catalog, ``delta``: the Delta Lake connector whose metastore is the Glue of this process's
moto server and whose storage is its S3 (Trino's native S3 file system). It registers nothing
itself: Trino sees exactly the tables the lake registered in Glue. One server serves the
whole test process (:func:`shared_trino`; the ``trino`` fixture and the contract suites'
Trino case share it) and is stopped when the process exits.

Only the Delta Lake plugin is loaded (the server ships some sixty), which keeps its start-up
to seconds and its heap small.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest

from tests.aws_support import ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY, MotoServer

ROOT = Path(__file__).resolve().parents[1]
TRINO_DIR = ROOT / "tests" / "trino"
#: The catalog of the lake's Glue databases (each database is a Trino schema in it).
CATALOG = "delta"
START_TIMEOUT = 120.0
#: The JVM's heap: a single-node Trino over a test lake needs little.
HEAP = "2G"


@dataclass(frozen=True)
class TrinoServer:
    """A running Trino server whose ``delta`` catalog is moto's Glue and S3."""

    endpoint: str
    port: int
    log: Path

    def query(self, sql: str, schema: str) -> list[tuple[Any, ...]]:
        """The rows of ``sql`` run in ``delta.<schema>`` (a Glue database), as Athena would."""
        return self.query_with_columns(sql, schema)[1]

    def query_with_columns(self, sql: str, schema: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        """The column names and rows of ``sql`` run in ``delta.<schema>``."""
        import trino

        connection = trino.dbapi.connect(  # type: ignore[no-untyped-call]
            host="127.0.0.1",
            port=self.port,
            user="lakehouse-tests",
            catalog=CATALOG,
            schema=schema,
            http_scheme="http",
        )
        try:
            cursor = connection.cursor()
            cursor.execute(sql)
            rows = [tuple(row) for row in cursor.fetchall()]
            names = [d[0] for d in cursor.description or ()]
        finally:
            connection.close()
        return names, rows


def trino_home() -> Path:
    """The unpacked Trino server (``LAKEHOUSE_TRINO_HOME``, else where ``make install`` puts it)."""
    configured = os.environ.get("LAKEHOUSE_TRINO_HOME")
    if configured:
        return Path(configured)
    pom = {"pom": "http://maven.apache.org/POM/4.0.0"}
    version = ElementTree.parse(TRINO_DIR / "pom.xml").findtext(
        "pom:properties/pom:trino.version", namespaces=pom
    )
    return ROOT / "build" / "trino" / f"trino-server-{version}"


def trino_java() -> str:
    """The java executable Trino runs on, as ``tests/trino/find-java`` chooses it."""
    found = subprocess.run(
        [str(TRINO_DIR / "find-java")], capture_output=True, text=True, check=False
    )
    if found.returncode != 0:
        pytest.fail(found.stderr.strip() or "tests/trino/find-java failed", pytrace=False)
    return found.stdout.strip()


def catalog_properties(moto: MotoServer) -> dict[str, str]:
    """The ``delta`` catalog: the Delta Lake connector on moto's Glue and S3."""
    return {
        "connector.name": "delta_lake",
        "hive.metastore": "glue",
        "hive.metastore.glue.region": REGION,
        "hive.metastore.glue.endpoint-url": moto.endpoint,
        "hive.metastore.glue.aws-access-key": ACCESS_KEY_ID,
        "hive.metastore.glue.aws-secret-key": SECRET_ACCESS_KEY,
        "fs.native-s3.enabled": "true",
        "s3.endpoint": moto.endpoint,
        "s3.region": REGION,
        "s3.path-style-access": "true",
        "s3.aws-access-key": ACCESS_KEY_ID,
        "s3.aws-secret-key": SECRET_ACCESS_KEY,
    }


def _properties(path: Path, values: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()), encoding="utf-8")


def _configure(home: Path, workdir: Path, port: int, moto: MotoServer) -> list[str]:
    """Write Trino's etc/ (and a plugin folder of the Delta Lake plugin alone) under
    ``workdir``; the JVM's arguments."""
    plugins = workdir / "plugin"
    plugins.mkdir()
    (plugins / "delta-lake").symlink_to(home / "plugin" / "delta-lake")
    etc = workdir / "etc"
    # Trino's launcher gives node.properties to the JVM as system properties: so do we.
    node = {
        "node.environment": "test",
        "node.id": str(uuid.uuid4()),
        "node.data-dir": str(workdir / "data"),
        "node.internal-address": "127.0.0.1",
        "node.bind-ip": "127.0.0.1",
    }
    _properties(
        etc / "config.properties",
        {
            "coordinator": "true",
            "node-scheduler.include-coordinator": "true",
            # One node on a busy machine: a late heartbeat must not make the node "failed"
            # ("No nodes available to run query"); Trino's own tests turn it off too.
            "failure-detector.enabled": "false",
            "http-server.http.port": str(port),
            "discovery.uri": f"http://127.0.0.1:{port}",
            "plugin.dir": str(plugins),
            "catalog.config-dir": str(etc / "catalog"),
            "query.max-memory": "1GB",
            "query.max-memory-per-node": "1GB",
            "log.path": str(workdir / "server.log"),
        },
    )
    _properties(etc / "catalog" / f"{CATALOG}.properties", catalog_properties(moto))
    return [
        f"-Xmx{HEAP}",
        "-XX:+UseG1GC",
        "-XX:+ExitOnOutOfMemoryError",
        "-XX:+EnableDynamicAgentLoading",
        "-Djdk.attach.allowAttachSelf=true",
        "-Dfile.encoding=UTF-8",
        "--enable-native-access=ALL-UNNAMED",
        "--sun-misc-unsafe-memory-access=allow",
        *(f"-D{k}={v}" for k, v in node.items()),
        f"-Dconfig={etc / 'config.properties'}",
        "-cp",
        str(home / "lib" / "*"),
        "io.trino.server.TrinoServer",
    ]


def start_trino(moto: MotoServer, workdir: Path) -> tuple[TrinoServer, subprocess.Popen[bytes]]:
    """Start Trino on a free port of 127.0.0.1 and wait until it accepts queries.

    Fails the test (with the end of Trino's log) when the server is missing or does not
    start within ``START_TIMEOUT`` seconds.
    """
    home = trino_home()
    if not (home / "lib").is_dir():
        pytest.fail(f"Trino not found at {home}: run make install", pytrace=False)
    java = trino_java()
    port = _free_port()
    arguments = _configure(home, workdir, port, moto)
    # The JVM's own output (before Trino's logging starts, and crashes) and Trino's log.
    with (workdir / "console.log").open("wb") as output:
        process = subprocess.Popen(
            [java, *arguments],
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    server = TrinoServer(endpoint=f"http://127.0.0.1:{port}", port=port, log=workdir / "server.log")
    if not _ready(server, process):
        _stop(process)
        tail = [line for name in ("console.log", "server.log") for line in _log_end(workdir / name)]
        pytest.fail(
            f"Trino did not start (it stopped, logged a start-up error or took over "
            f"{START_TIMEOUT:.0f} s); its logs end:\n" + "\n".join(tail),
            pytrace=False,
        )
    return server, process


def _log_end(path: Path, lines: int = 30) -> list[str]:
    """The start-up error a log holds and what follows it, else its last lines."""
    if not path.is_file():
        return []
    text = path.read_text(errors="replace").splitlines()
    failed = [i for i, line in enumerate(text) if _START_FAILED in line]
    return text[failed[0] : failed[0] + lines] if failed else text[-lines:]


@contextlib.contextmanager
def running_trino(moto: MotoServer) -> Iterator[TrinoServer]:
    """A Trino server for the block (also stopped if the process exits first)."""
    workdir = Path(tempfile.mkdtemp(prefix="trino-"))
    try:
        server, process = start_trino(moto, workdir)
        atexit.register(_stop, process)
        try:
            yield server
        finally:
            _stop(process)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


_shared: TrinoServer | None = None
_shared_stack = contextlib.ExitStack()
atexit.register(_shared_stack.close)


def shared_trino(moto: MotoServer) -> TrinoServer:
    """The Trino server of this test process (over its moto server), started on first use."""
    global _shared
    if _shared is None:
        _shared = _shared_stack.enter_context(running_trino(moto))
    return _shared


def stop_shared_trino() -> None:
    """Stop the server :func:`shared_trino` started, if any (the next use starts another)."""
    global _shared
    _shared = None
    _shared_stack.close()


@pytest.fixture(scope="module")
def trino(moto: MotoServer) -> TrinoServer:
    """Trino over this process's moto server.

    Asked again by each module: the server may have been stopped after another module
    (``tests/conftest.py``), and :func:`shared_trino` then starts a new one.
    """
    return shared_trino(moto)


#: What Trino logs when its start-up fails (an invalid configuration, a plugin that fails).
_START_FAILED = "\tERROR\tmain\tio.trino.server.Server\t"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _ready(server: TrinoServer, process: subprocess.Popen[bytes]) -> bool:
    """Whether ``/v1/info`` says the server has started (``starting`` false) and its node is
    active for the scheduler (it announces itself a moment later: until then a query on a
    table fails with "No nodes available to run query")."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline and process.poll() is None:
        # A server that failed to start may stay up without ever serving: give up at once.
        if server.log.is_file() and _START_FAILED in server.log.read_text(errors="replace"):
            return False
        try:
            with urllib.request.urlopen(f"{server.endpoint}/v1/info", timeout=2) as response:
                if json.load(response).get("starting") is False and _runs_a_query(server):
                    return True
        except (urllib.error.URLError, OSError, ValueError):
            pass
        time.sleep(0.5)
    return False


def _runs_a_query(server: TrinoServer) -> bool:
    import trino

    try:
        # The scheduler places splits on the nodes its node manager lists as active, which it
        # refreshes every few seconds: a query on the coordinator alone (SELECT 1) runs
        # before that, a query on a table may not.
        active = "SELECT count(*) FROM system.runtime.nodes WHERE state = 'active'"
        return server.query(active, "information_schema") == [(1,)]
    except (trino.exceptions.Error, trino.exceptions.HttpError, OSError):
        return False


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
