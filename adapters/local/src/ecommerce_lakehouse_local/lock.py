"""The lake-wide lock of a local lake: an OS file lock on ``<lake root>/_lakehouse.lock``."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path

from filelock import FileLock, Timeout

from ecommerce_lakehouse.domain.errors import LockTimeout


class FileLakeLock:
    """One run per lake at a time, across threads and processes (PRODUCT §7a).

    The lock is an OS-level lock (``flock`` on POSIX) taken through ``filelock``, so it is
    released by the kernel if the holding process dies: a crashed run never leaves a stale
    lock behind. While held, the owner and start time sit in a sidecar JSON file
    (``<lock file>.owner``) so that a run giving up can say who holds the lake; ``filelock``
    truncates the lock file itself on every attempt, so it cannot carry that information.

    The lock is not re-entrant: a second ``acquire`` waits even from the same thread.

    Args:
        path: the lock file; its folder is created on the first ``acquire``.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._path = Path(path)
        self._owner_file = self._path.with_name(f"{self._path.name}.owner")

    def acquire(self, *, owner: str, timeout_seconds: float) -> AbstractContextManager[None]:
        """Hold the lock for the ``with`` block.

        Args:
            owner: who takes the lock (a run id), reported to runs that have to wait.
            timeout_seconds: how long to wait for the lock; a negative value waits forever.

        Raises:
            LockTimeout: another owner held the lock for longer than ``timeout_seconds``.
        """
        return self._held(owner, timeout_seconds)

    @contextmanager
    def _held(self, owner: str, timeout_seconds: float) -> Iterator[None]:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        # A new FileLock per acquire: filelock's own objects are re-entrant, a lake run is not.
        lock = FileLock(self._path, timeout=timeout_seconds)
        try:
            lock.acquire()
        except Timeout:
            raise LockTimeout(self._timeout_message(timeout_seconds)) from None
        try:
            self._write_owner(owner)
            yield
        finally:
            with suppress(OSError):
                self._owner_file.unlink()
            lock.release()

    def _write_owner(self, owner: str) -> None:
        since = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        temp = self._owner_file.with_name(f"{self._owner_file.name}.{os.getpid()}.tmp")
        temp.write_text(json.dumps({"owner": owner, "since": since, "pid": os.getpid()}))
        os.replace(temp, self._owner_file)  # a waiting run never reads half a file

    def _timeout_message(self, timeout_seconds: float) -> str:
        waited = f"gave up after {timeout_seconds:g}s"
        try:
            holder = json.loads(self._owner_file.read_text())
            return f"lake is locked by run {holder['owner']} since {holder['since']}; {waited}"
        except (OSError, ValueError, KeyError, TypeError):
            # The holder has only just taken the lock, or is releasing it.
            return f"lake is locked by another run ({self._path}); {waited}"
