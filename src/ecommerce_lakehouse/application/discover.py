"""Find the raw CSV drops waiting in ``raw-data/``, and account for what cannot be taken."""

from __future__ import annotations

import os
import posixpath
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime

from ecommerce_lakehouse.application.run import (
    DEFAULT_SETTLE_SECONDS,
    Clock,
    DiscoveredFile,
    FileOutcome,
    utc_now,
)
from ecommerce_lakehouse.domain.audit import RowCounts
from ecommerce_lakehouse.domain.types import FileStatus
from ecommerce_lakehouse.domain.zones import RAW, entity_of, raw_key_problem
from ecommerce_lakehouse.ports.storage import ObjectInfo, ObjectStorage

#: Files hashed at once: a digest releases the GIL while it reads and hashes, so every core
#: (and, on S3, several downloads) works; a scale-1 drop's 2.4 GB took 3 s on one thread.
CHECKSUM_THREADS = min(8, os.cpu_count() or 1)


@dataclass(frozen=True, slots=True, kw_only=True)
class Discovery:
    """What discovery found in ``raw-data/``.

    Attributes:
        files: the raw CSVs to ingest, ordered by file name then key.
        set_aside: one ``waiting`` or ``ignored`` outcome (reason in ``error``) per file the
            run saw but does not take; they stay where they are.
    """

    files: list[DiscoveredFile] = field(default_factory=list)
    set_aside: list[FileOutcome] = field(default_factory=list)


class DiscoverFiles:
    """List raw CSVs, with entity, size and checksum, in ingestion order (by file name).

    No single entry can stop discovery: a symbolic link, a CSV nested deeper than
    ``raw-data/<entity>/``, an unreadable file or folder and a name the lake cannot address
    become ``ignored``; a file still being written becomes ``waiting``. Files that are not
    ``.csv`` are not raw drops and are left alone unreported.

    Args:
        storage: the lake.
        settle_seconds: the quiet period. A file whose ``modified_at`` is younger is watched
            until it is this old; if its size or mtime changed meanwhile it is ``waiting``.
            Stores whose objects appear whole (S3) report no ``modified_at`` and never wait.
        clock: the wall clock the quiet period is measured with.
        sleep: how to wait; ``time.sleep`` when None.
    """

    def __init__(
        self,
        storage: ObjectStorage,
        *,
        settle_seconds: float = DEFAULT_SETTLE_SECONDS,
        clock: Clock = utc_now,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self._storage = storage
        self._settle = settle_seconds
        self._clock = clock
        self._sleep = sleep or time.sleep

    def __call__(self) -> Discovery:
        """The raw files to ingest and the outcomes of those set aside."""
        found = Discovery()
        for entry in self._storage.unusable(RAW):
            found.set_aside.append(self._aside(entry.key, 0, FileStatus.IGNORED, entry.reason))
        candidates: list[ObjectInfo] = []
        for info in self._storage.list(RAW):
            if not info.key.lower().endswith(".csv"):
                continue
            problem = raw_key_problem(info.key)
            if problem is not None:
                found.set_aside.append(
                    self._aside(info.key, info.size_bytes, FileStatus.IGNORED, problem)
                )
            else:
                candidates.append(info)
        settled = self._settled(candidates, found)
        with ThreadPoolExecutor(CHECKSUM_THREADS, thread_name_prefix="checksum") as pool:
            checksums = list(pool.map(self._checksum, settled))
        for info, checksum in zip(settled, checksums, strict=True):
            if checksum is None:
                continue  # removed since the listing: nothing left to account for
            if isinstance(checksum, OSError):
                reason = f"unreadable: {checksum.strerror or type(checksum).__name__}"
                found.set_aside.append(
                    self._aside(info.key, info.size_bytes, FileStatus.IGNORED, reason)
                )
                continue
            found.files.append(
                DiscoveredFile(
                    key=info.key,
                    entity=entity_of(info.key),
                    size_bytes=info.size_bytes,
                    checksum=checksum,
                    version=info.version,
                )
            )
        found.files.sort(key=lambda f: (posixpath.basename(f.key), f.key))
        found.set_aside.sort(key=lambda o: o.file.key)
        return found

    def _checksum(self, info: ObjectInfo) -> str | OSError | None:
        """The file's checksum; the error when it cannot be read; None once it is gone."""
        try:
            return self._storage.checksum(info.key)
        except FileNotFoundError:
            return None
        except OSError as error:
            return error

    def _settled(self, candidates: Sequence[ObjectInfo], found: Discovery) -> list[ObjectInfo]:
        """The candidates that are quiet; the others become ``waiting`` in ``found``."""
        now = self._clock()
        young = {i.key for i in candidates if _age(i, now) < self._settle}
        if not young:
            return list(candidates)
        # One wait for all: until the youngest is as old as the quiet period (never longer).
        youngest = min(_age(i, now) for i in candidates if i.key in young)
        self._sleep(min(self._settle, self._settle - max(0.0, youngest)))
        again = {i.key: i for i in self._storage.list(RAW)}
        quiet: list[ObjectInfo] = []
        for info in candidates:
            if info.key not in young:
                quiet.append(info)
                continue
            later = again.get(info.key)
            if later is None:
                continue  # removed meanwhile
            if (later.size_bytes, later.modified_at) == (info.size_bytes, info.modified_at):
                quiet.append(later)
                continue
            reason = (
                f"still_being_written: it changed within the last {self._settle:g}s "
                "(settle_seconds); left in raw-data/ for the next run"
            )
            found.set_aside.append(
                self._aside(info.key, later.size_bytes, FileStatus.WAITING, reason)
            )
        return quiet

    def _aside(self, key: str, size: int, status: FileStatus, reason: str) -> FileOutcome:
        now = self._clock()
        # The key is only logged and reported (the file stays where it is): bytes that are
        # not UTF-8 are logged as \xNN escapes, which every store and JSON reader takes.
        shown = key.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        return FileOutcome(
            file=DiscoveredFile(key=shown, entity=entity_of(key), size_bytes=size, checksum=""),
            status=status,
            counts=RowCounts(),
            started_at=now,
            finished_at=now,
            error=reason,
        )


def _age(info: ObjectInfo, now: datetime) -> float:
    """Seconds since the object last changed; infinite where the store does not say."""
    if info.modified_at is None:
        return float("inf")
    return (now - info.modified_at).total_seconds()
