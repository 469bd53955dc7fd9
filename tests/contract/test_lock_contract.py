"""Lock contract: one run per lake; a waiting run gives up with a message naming the holder."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from ecommerce_lakehouse.domain.errors import LockTimeout
from ecommerce_lakehouse.domain.zones import LOCK_KEY
from ecommerce_lakehouse_local import FileLakeLock
from tests.contract.conftest import LockCase


def test_the_lock_is_released_after_the_block(lock_case: LockCase) -> None:
    with lock_case.lock.acquire(owner="run-1", timeout_seconds=1):
        pass
    with lock_case.other().acquire(owner="run-2", timeout_seconds=0):
        pass


def test_the_lock_is_released_when_the_block_raises(lock_case: LockCase) -> None:
    with (
        pytest.raises(RuntimeError, match="boom"),
        lock_case.lock.acquire(owner="run-1", timeout_seconds=1),
    ):
        raise RuntimeError("boom")
    with lock_case.other().acquire(owner="run-2", timeout_seconds=0):
        pass


def test_runs_in_threads_never_overlap(lock_case: LockCase) -> None:
    inside, overlaps, finished = [0], [0], [0]
    guard = threading.Lock()

    def run(number: int) -> None:
        handle = lock_case.lock if number % 2 else lock_case.other()
        with handle.acquire(owner=f"run-{number}", timeout_seconds=30):
            with guard:
                inside[0] += 1
                overlaps[0] += inside[0] > 1
            time.sleep(0.02)
            with guard:
                inside[0] -= 1
                finished[0] += 1

    threads = [threading.Thread(target=run, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert finished[0] == 6
    assert overlaps[0] == 0


def test_a_waiting_run_gives_up_naming_the_holder(lock_case: LockCase) -> None:
    held, release = threading.Event(), threading.Event()

    def holder() -> None:
        with lock_case.lock.acquire(owner="run-A", timeout_seconds=5):
            held.set()
            release.wait(10)

    thread = threading.Thread(target=holder)
    thread.start()
    try:
        assert held.wait(5)
        started = time.monotonic()
        with (
            pytest.raises(LockTimeout) as raised,
            lock_case.other().acquire(owner="run-B", timeout_seconds=0.3),
        ):
            pytest.fail("the lock was taken twice")
        waited = time.monotonic() - started
    finally:
        release.set()
        thread.join()

    message = str(raised.value)
    assert re.fullmatch(
        r"lake is locked by run run-A since \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ; "
        r"gave up after 0\.3s",
        message,
    ), message
    assert waited >= 0.25


def test_a_waiting_run_proceeds_once_the_holder_releases(lock_case: LockCase) -> None:
    held = threading.Event()
    order: list[str] = []

    def holder() -> None:
        with lock_case.lock.acquire(owner="run-A", timeout_seconds=5):
            held.set()
            time.sleep(0.2)
            order.append("A done")

    thread = threading.Thread(target=holder)
    thread.start()
    assert held.wait(5)
    with lock_case.other().acquire(owner="run-B", timeout_seconds=10):
        order.append("B in")
    thread.join()

    assert order == ["A done", "B in"]


def test_the_lock_is_not_reentrant(lock_case: LockCase) -> None:
    with (
        lock_case.lock.acquire(owner="run-1", timeout_seconds=1),
        pytest.raises(LockTimeout, match="run-1"),
        lock_case.lock.acquire(owner="run-2", timeout_seconds=0.1),
    ):
        pytest.fail("the lock was taken twice")


# -------------------------------------------------- file lock only: separate processes

_HOLDER = """
import sys
from ecommerce_lakehouse_local import FileLakeLock
with FileLakeLock(sys.argv[1]).acquire(owner="run-proc", timeout_seconds=10):
    print("held", flush=True)
    sys.stdin.readline()
"""


def _start_holder(path: Path) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "held"
    return process


def test_file_lock_excludes_another_process(tmp_path: Path) -> None:
    path = tmp_path / "lake" / LOCK_KEY
    process = _start_holder(path)
    try:
        with (
            pytest.raises(LockTimeout, match=r"locked by run run-proc since .*after 0\.2s"),
            FileLakeLock(path).acquire(owner="run-here", timeout_seconds=0.2),
        ):
            pytest.fail("the lock was taken twice")
    finally:
        process.communicate("\n", timeout=10)

    assert process.returncode == 0
    with FileLakeLock(path).acquire(owner="run-here", timeout_seconds=0):
        pass


def test_file_lock_of_a_killed_process_is_free(tmp_path: Path) -> None:
    path = tmp_path / "lake" / LOCK_KEY
    process = _start_holder(path)

    process.kill()
    process.communicate(timeout=10)

    # The OS released the lock with the process: no stale lock blocks the next run.
    with FileLakeLock(path).acquire(owner="run-next", timeout_seconds=1):
        pass
