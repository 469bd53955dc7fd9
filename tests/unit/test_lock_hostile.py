"""The local lake lock against a hostile lake root (issue 11): links, stale owners, errors."""

from __future__ import annotations

import errno
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from ecommerce_lakehouse.domain.errors import ConfigurationError, LakehouseError, LockTimeout
from ecommerce_lakehouse_local import FileLakeLock

LOCK = "_lakehouse.lock"


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    target = tmp_path / "outside.txt"
    target.write_text("keep me")
    return target


@pytest.fixture
def lake(tmp_path: Path) -> Path:
    root = tmp_path / "lake"
    root.mkdir()
    return root


@pytest.mark.parametrize("suffix", [".owner", ".owner.{pid}.tmp"], ids=["owner", "old-temp-name"])
def test_a_planted_owner_file_link_is_not_followed(lake: Path, outside: Path, suffix: str) -> None:
    # The old code wrote the owner through a temp name of the pid: plant both.
    name = LOCK + suffix.format(pid=os.getpid())
    (lake / name).symlink_to(outside)

    with FileLakeLock(lake / LOCK).acquire(owner="run-1", timeout_seconds=1):
        owner = lake / f"{LOCK}.owner"
        assert not owner.is_symlink()
        assert json.loads(owner.read_text())["owner"] == "run-1"

    assert outside.read_text() == "keep me"


def test_a_planted_lock_file_link_is_refused(lake: Path, outside: Path) -> None:
    (lake / LOCK).symlink_to(outside)

    with (
        pytest.raises(ConfigurationError, match="symbolic link"),
        FileLakeLock(lake / LOCK).acquire(owner="run-1", timeout_seconds=1),
    ):
        pytest.fail("the lock was taken through a link")

    assert outside.read_text() == "keep me"


def test_a_permission_error_names_the_lock_file(
    lake: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = lake / LOCK
    real_open = os.open

    def denied(file: object, *args: object, **kwargs: object) -> int:
        if Path(os.fsdecode(file)) == path:  # type: ignore[arg-type]
            raise PermissionError(errno.EACCES, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", denied)

    with (
        pytest.raises(ConfigurationError) as raised,
        FileLakeLock(path).acquire(owner="run-1", timeout_seconds=1),
    ):
        pytest.fail("the lock was taken")

    assert str(path) in str(raised.value) and "Permission denied" in str(raised.value)
    assert "\n" not in str(raised.value)


def test_a_lock_path_that_cannot_be_opened_is_a_lakehouse_error(lake: Path) -> None:
    (lake / LOCK).mkdir()

    with (
        pytest.raises(LakehouseError, match="Is a directory"),
        FileLakeLock(lake / LOCK).acquire(owner="run-1", timeout_seconds=1),
    ):
        pytest.fail("the lock was taken")


def _dead_pid() -> int:
    process = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(process.stdout)


def test_a_stale_owner_file_is_not_named_as_the_holder(lake: Path) -> None:
    path = lake / LOCK
    held = FileLakeLock(path).acquire(owner="run-live", timeout_seconds=1)
    with held:
        # The holder's owner file is replaced by one a killed run left behind.
        (lake / f"{LOCK}.owner").write_text(
            json.dumps(
                {
                    "owner": "run-dead",
                    "since": "2020-01-01T00:00:00Z",
                    "pid": _dead_pid(),
                    "host": socket.gethostname(),
                }
            )
        )
        with (
            pytest.raises(LockTimeout) as raised,
            FileLakeLock(path).acquire(owner="run-2", timeout_seconds=0.1),
        ):
            pytest.fail("the lock was taken twice")

    message = str(raised.value)
    assert message.startswith("lake is locked by another run")
    assert "stale" in message and "run-dead" in message and "ago" in message


@pytest.mark.parametrize(
    "content",
    ["[1, 2]", '{"owner": 5}', "x" * 10_000, '{"owner": "run-x", "since": 3, "pid": "1"}'],
)
def test_a_garbled_owner_file_still_gives_a_timeout_message(lake: Path, content: str) -> None:
    path = lake / LOCK
    with FileLakeLock(path).acquire(owner="run-live", timeout_seconds=1):
        (lake / f"{LOCK}.owner").write_text(content)
        with (
            pytest.raises(LockTimeout, match=r"gave up after 0\.1s"),
            FileLakeLock(path).acquire(owner="run-2", timeout_seconds=0.1),
        ):
            pytest.fail("the lock was taken twice")
