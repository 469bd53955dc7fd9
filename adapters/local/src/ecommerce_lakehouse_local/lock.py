"""The lake-wide lock of a local lake: an OS file lock on ``<lake root>/_lakehouse.lock``."""

from __future__ import annotations

import errno
import json
import os
import secrets
import socket
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path

from filelock import FileLock, Timeout

from ecommerce_lakehouse.domain.errors import ConfigurationError, LakehouseError, LockTimeout

#: Opens that never follow a symbolic link in the last path component (0 where the OS has
#: no such flag).
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
#: An owner file is a few dozen bytes; a bigger one was not written by a run.
_OWNER_MAX_BYTES = 4096


class FileLakeLock:
    """One run per lake at a time, across threads and processes (docs/contract.md#concurrency).

    The lock is an OS-level lock (``flock`` on POSIX) taken through ``filelock``, so it is
    released by the kernel if the holding process dies: a crashed run never leaves a stale
    lock behind. While held, the owner, host, pid and start time sit in a sidecar JSON file
    (``<lock file>.owner``) so that a run giving up can say who holds the lake; ``filelock``
    truncates the lock file itself on every attempt, so it cannot carry that information.
    A run that was killed leaves its owner file behind; a run giving up says so when the
    process it names is gone, rather than blaming it.

    Neither file is ever opened through a symbolic link: a link planted in the lake root
    cannot make a run truncate or overwrite a file elsewhere.

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
            ConfigurationError: the lock file is a symbolic link, or this user may not
                create or open it.
            LakehouseError: another error of the file system, naming the file.
        """
        return self._held(owner, timeout_seconds)

    @contextmanager
    def _held(self, owner: str, timeout_seconds: float) -> Iterator[None]:
        # A new FileLock per acquire: filelock's own objects are re-entrant, a lake run is not.
        lock = FileLock(self._path, timeout=timeout_seconds)
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            self._create_lock_file()
            lock.acquire()
        except Timeout:
            raise LockTimeout(self._timeout_message(timeout_seconds)) from None
        except OSError as error:
            raise _os_error(f"cannot take the lake lock {self._path}", error) from None
        try:
            try:
                self._write_owner(owner)
            except OSError as error:
                raise _os_error(f"cannot write the lock owner {self._owner_file}", error) from None
            yield
        finally:
            with suppress(OSError):
                self._owner_file.unlink()
            lock.release()

    def _create_lock_file(self) -> None:
        """Create the lock file unless it exists, refusing a symbolic link in its place.

        ``filelock`` opens the file with ``O_TRUNC`` and follows links; once the file
        exists as a regular file, that open only ever truncates the lock file itself.
        """
        descriptor = os.open(self._path, os.O_RDWR | os.O_CREAT | _NOFOLLOW, 0o644)
        os.close(descriptor)

    def _write_owner(self, owner: str) -> None:
        since = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        text = json.dumps(
            {"owner": owner, "since": since, "pid": os.getpid(), "host": socket.gethostname()}
        )
        # A fresh name created exclusively: nothing planted under it can be written through.
        temp = self._owner_file.with_name(
            f"{self._owner_file.name}.{os.getpid()}.{secrets.token_hex(8)}.tmp"
        )
        descriptor = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o644)
        try:
            with os.fdopen(descriptor, "w", encoding="utf-8") as file:
                file.write(text)
            # A waiting run never reads half a file; a link at the owner file's name is
            # replaced, not followed.
            os.replace(temp, self._owner_file)
        except BaseException:
            with suppress(OSError):
                temp.unlink()
            raise

    def _read_owner(self) -> dict[str, object] | None:
        try:
            descriptor = os.open(self._owner_file, os.O_RDONLY | _NOFOLLOW)
            with os.fdopen(descriptor, "rb") as file:
                holder = json.loads(file.read(_OWNER_MAX_BYTES + 1)[:_OWNER_MAX_BYTES])
        except (OSError, ValueError):
            # The holder has only just taken the lock, or is releasing it.
            return None
        if not isinstance(holder, dict) or not isinstance(holder.get("owner"), str):
            return None
        return holder

    def _timeout_message(self, timeout_seconds: float) -> str:
        waited = f"gave up after {timeout_seconds:g}s"
        holder = self._read_owner()
        if holder is None:
            return f"lake is locked by another run ({self._path}); {waited}"
        named = f"run {holder['owner']} since {holder.get('since', '?')}"
        if _is_dead(holder):
            # A killed run's owner file outlives it; the lock is held by someone else.
            return (
                f"lake is locked by another run ({self._path}); {waited}; the owner file is "
                f"stale: it names {named}{_age(holder.get('since'))}, pid {holder['pid']}, "
                "which is no longer running"
            )
        return f"lake is locked by {named}; {waited}"


def _age(since: object) -> str:
    try:
        started = datetime.fromisoformat(str(since).replace("Z", "+00:00"))
        seconds = (datetime.now(UTC) - started).total_seconds()
    except (ValueError, TypeError):
        return ""
    if seconds < 0:
        return ""
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    text = (
        f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"
    )
    return f" ({text} ago)"


def _is_dead(holder: dict[str, object]) -> bool:
    """Whether the owner file names a process of this host that no longer exists."""
    pid = holder.get("pid")
    if holder.get("host") != socket.gethostname() or not isinstance(pid, int) or pid <= 0:
        return False  # another host's process, or a file of an older version: unknown
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False  # it exists, as another user's process
    return False


def _os_error(what: str, error: OSError) -> LakehouseError:
    reason = error.strerror or type(error).__name__
    if error.errno == errno.ELOOP:
        return ConfigurationError(f"{what}: it is a symbolic link, which a run never follows")
    if isinstance(error, PermissionError) or error.errno == errno.EROFS:
        return ConfigurationError(f"{what}: {reason}")
    return LakehouseError(f"{what}: {reason}")
