"""The archive step proves a file's content by its version token, hashing only without one."""

from __future__ import annotations

import hashlib
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from ecommerce_lakehouse.application.archive import ArchiveFiles
from ecommerce_lakehouse.application.run import DiscoveredFile, FileOutcome
from ecommerce_lakehouse.domain.audit import RowCounts
from ecommerce_lakehouse.domain.errors import IntegrityError
from ecommerce_lakehouse.domain.types import FileStatus
from ecommerce_lakehouse.domain.zones import ZonePaths
from ecommerce_lakehouse_local import storage as local_storage
from ecommerce_lakehouse_local.storage import LocalObjectStorage

NOW = datetime(2026, 11, 25, tzinfo=UTC)
KEY = "raw-data/orders_1.csv"
DATA = b"order_id\n1\n"


class CountingStorage(LocalObjectStorage):
    """The local store, counting every full read of a file."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.hashed: list[str] = []

    def checksum(self, key: str) -> str:
        self.hashed.append(key)
        return super().checksum(key)


@pytest.fixture
def hashes(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    seen: list[Path] = []
    real = local_storage._sha256

    def counting(path: Path) -> str:
        seen.append(path)
        return real(path)

    monkeypatch.setattr(local_storage, "_sha256", counting)
    return seen


def _outcome(storage: Any, *, version: str | None) -> FileOutcome:
    return FileOutcome(
        file=DiscoveredFile(
            key=KEY,
            entity="orders",
            size_bytes=len(DATA),
            checksum=hashlib.sha256(DATA).hexdigest(),
            version=version,
        ),
        status=FileStatus.LOADED,
        counts=RowCounts(),
        started_at=NOW,
        finished_at=NOW,
    )


def _archive(storage: Any, outcome: FileOutcome) -> FileOutcome:
    (after,) = ArchiveFiles(storage)([outcome], ZonePaths(run_id="r", started_at=NOW))
    return after


def test_a_file_with_its_listed_version_is_moved_without_being_read(
    tmp_path: Path, hashes: list[Path]
) -> None:
    storage = CountingStorage(tmp_path)
    storage.write_bytes(KEY, DATA)
    listed = storage.info(KEY).version

    after = _archive(storage, _outcome(storage, version=listed))

    assert after.destination is not None
    assert storage.read_bytes(after.destination) == DATA
    assert not storage.exists(KEY)
    assert storage.hashed == [] and hashes == []


def test_without_a_listed_version_the_file_is_hashed_once(
    tmp_path: Path, hashes: list[Path]
) -> None:
    storage = CountingStorage(tmp_path)
    storage.write_bytes(KEY, DATA)

    after = _archive(storage, _outcome(storage, version=None))

    assert after.destination is not None and not storage.exists(KEY)
    assert storage.hashed == [KEY]
    assert len(hashes) == 1  # the archive's check; the move trusts the token taken before it


def test_a_file_rewritten_since_it_was_listed_is_hashed_and_left(tmp_path: Path) -> None:
    storage = CountingStorage(tmp_path)
    storage.write_bytes(KEY, DATA)
    listed = storage.info(KEY).version
    storage.write_bytes(KEY, b"order_id\n1\n2\n")  # same key, new content

    after = _archive(storage, _outcome(storage, version=listed))

    assert after.destination is None
    assert after.error is not None and "changed since the run read it" in after.error
    assert storage.hashed == [KEY]
    assert storage.read_bytes(KEY) == b"order_id\n1\n2\n"
    assert storage.list("archive") == []


def test_a_touched_file_with_the_same_content_is_still_archived(tmp_path: Path) -> None:
    storage = CountingStorage(tmp_path)
    storage.write_bytes(KEY, DATA)
    listed = storage.info(KEY).version
    os.utime(storage.uri(KEY), ns=(1, 1))  # another token, same bytes

    after = _archive(storage, _outcome(storage, version=listed))

    assert after.destination is not None and not storage.exists(KEY)
    assert storage.hashed == [KEY]


def test_a_write_during_a_versioned_rename_gives_the_file_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = LocalObjectStorage(tmp_path)
    storage.write_bytes(KEY, DATA)
    version = storage.info(KEY).version
    rename = local_storage._os_rename

    def writer_goes_on(source: Any, destination: Any) -> None:
        rename(source, destination)
        with open(destination, "ab") as handle:  # a writer that still had it open
            handle.write(b"2\n")

    monkeypatch.setattr(local_storage, "_os_rename", writer_goes_on)
    with pytest.raises(IntegrityError, match="changed while being moved"):
        storage.move(
            KEY, "archive/x.csv", checksum=hashlib.sha256(DATA).hexdigest(), version=version
        )
    assert storage.read_bytes(KEY) == DATA + b"2\n"
    assert not storage.exists("archive/x.csv")


def test_a_stale_version_makes_the_move_hash_the_source(tmp_path: Path) -> None:
    storage = LocalObjectStorage(tmp_path)
    storage.write_bytes(KEY, DATA)
    version = storage.info(KEY).version
    storage.write_bytes(KEY, b"other")

    with pytest.raises(IntegrityError, match="changed"):
        storage.move(
            KEY, "archive/x.csv", checksum=hashlib.sha256(DATA).hexdigest(), version=version
        )
    assert storage.read_bytes(KEY) == b"other"
