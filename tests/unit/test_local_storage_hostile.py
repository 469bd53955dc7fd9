"""LocalObjectStorage on hostile trees: links, unreadable folders, crash leftovers, renames."""

from __future__ import annotations

import os
import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ecommerce_lakehouse.domain.errors import IntegrityError
from ecommerce_lakehouse_local.storage import TEMP_PREFIX, LocalObjectStorage


@pytest.fixture
def lake(tmp_path: Path) -> Path:
    root = tmp_path / "lake"
    (root / "raw-data" / "orders").mkdir(parents=True)
    (root / "raw-data" / "orders" / "orders_1.csv").write_text("order_id\n1\n")
    return root


def test_links_are_reported_unusable_and_never_listed(lake: Path) -> None:
    target = lake / "raw-data" / "orders" / "orders_1.csv"
    (lake / "raw-data" / "orders_link.csv").symlink_to(target)
    (lake / "raw-data" / "folder_link").symlink_to(lake / "raw-data" / "orders")
    storage = LocalObjectStorage(lake)

    assert [i.key for i in storage.list("raw-data")] == ["raw-data/orders/orders_1.csv"]
    assert [(e.key, e.reason.split(":")[0]) for e in storage.unusable("raw-data")] == [
        ("raw-data/folder_link", "symlink"),
        ("raw-data/orders_link.csv", "symlink"),
    ]


def test_an_unreadable_folder_is_reported_not_silently_skipped(
    lake: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (lake / "raw-data" / "products").mkdir()
    (lake / "raw-data" / "products" / "products_1.csv").write_text("product_id\n1\n")
    scandir = os.scandir

    def denied(path: Any) -> Any:
        if Path(path).name == "products":  # what chmod 000 does for a non-root user
            raise PermissionError(13, "Permission denied", str(path))
        return scandir(path)

    monkeypatch.setattr(os, "scandir", denied)
    storage = LocalObjectStorage(lake)

    assert [i.key for i in storage.list("raw-data")] == ["raw-data/orders/orders_1.csv"]
    (entry,) = storage.unusable("raw-data")
    assert entry.key == "raw-data/products"
    assert entry.reason == "unreadable_folder: Permission denied"


def test_list_reports_the_modification_time(lake: Path) -> None:
    path = lake / "raw-data" / "orders" / "orders_1.csv"
    os.utime(path, (1_700_000_000, 1_700_000_000))

    (info,) = LocalObjectStorage(lake).list("raw-data")

    assert info.modified_at == datetime.fromtimestamp(1_700_000_000, UTC)


def test_a_move_on_one_filesystem_is_a_rename_and_needs_no_copy(
    lake: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = lake / "raw-data" / "orders" / "orders_1.csv"
    inode = source.stat().st_ino

    def no_copy(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a move on one filesystem must not copy")

    monkeypatch.setattr(shutil, "copyfileobj", no_copy)
    storage = LocalObjectStorage(lake)

    storage.move("raw-data/orders/orders_1.csv", "archive/r1/orders_1.csv")

    moved = lake / "archive" / "r1" / "orders_1.csv"
    assert moved.stat().st_ino == inode  # the same file, renamed: never two copies
    assert not source.exists()
    assert not list(lake.rglob(f"{TEMP_PREFIX}*"))


def test_a_link_is_never_moved(lake: Path) -> None:
    (lake / "raw-data" / "orders_link.csv").symlink_to(
        lake / "raw-data" / "orders" / "orders_1.csv"
    )
    storage = LocalObjectStorage(lake)

    with pytest.raises(IntegrityError, match="symbolic link"):
        storage.move("raw-data/orders_link.csv", "archive/orders_link.csv")

    assert (lake / "raw-data" / "orders_link.csv").is_symlink()
    assert not (lake / "archive").exists()


def test_stale_temporary_files_of_dead_runs_are_removed_and_nothing_else(lake: Path) -> None:
    stale = lake / "archive" / "r1" / f"{TEMP_PREFIX}abc123"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"half a copy")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    fresh = lake / "rejected" / f"{TEMP_PREFIX}live"
    fresh.parent.mkdir(parents=True)
    fresh.write_bytes(b"a live write")
    other = lake / "raw-data" / "orders" / "orders_old.csv.tmp"
    other.write_bytes(b"not ours")
    os.utime(other, (old, old))
    outside = lake.parent / f"{TEMP_PREFIX}outside"
    outside.write_bytes(b"outside the lake")
    os.utime(outside, (old, old))
    (lake / "raw-data" / "linked").symlink_to(lake.parent)
    storage = LocalObjectStorage(lake)

    removed = storage.remove_stale_temporaries(datetime.now(UTC) - timedelta(minutes=1))

    assert removed == [f"archive/r1/{TEMP_PREFIX}abc123"]
    assert not stale.exists()
    assert fresh.exists() and other.exists() and outside.exists()


def test_a_linked_zone_folder_is_reported_not_silently_empty(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    (lake / "landing").mkdir(parents=True)
    (lake / "landing" / "orders_1.csv").write_text("order_id\n1\n")
    (lake / "raw-data").symlink_to(lake / "landing")
    storage = LocalObjectStorage(lake)

    assert storage.list("raw-data") == []
    assert [(e.key, e.reason.split(":")[0]) for e in storage.unusable("raw-data")] == [
        ("raw-data", "symlink")
    ]


def test_a_user_file_with_the_temporary_prefix_in_raw_data_is_reported_never_deleted(
    lake: Path,
) -> None:
    # Only this adapter's own writes are temporaries: a user's file in raw-data/ is kept
    # and reported, whatever its name and age.
    dropped = lake / "raw-data" / "orders" / f"{TEMP_PREFIX}orders_2.csv"
    dropped.write_text("order_id\n2\n")
    old = time.time() - 3600
    os.utime(dropped, (old, old))
    storage = LocalObjectStorage(lake)

    assert storage.remove_stale_temporaries(datetime.now(UTC) - timedelta(minutes=1)) == []
    assert dropped.exists()
    assert [(e.key, e.reason.split(":")[0]) for e in storage.unusable("raw-data")] == [
        (f"raw-data/orders/{TEMP_PREFIX}orders_2.csv", "reserved_name")
    ]


def test_a_raw_zone_linked_outside_the_lake_is_reported_not_an_error(tmp_path: Path) -> None:
    outside = tmp_path / "landing"
    outside.mkdir()
    (outside / "orders_1.csv").write_text("order_id\n1\n")
    lake = tmp_path / "lake"
    lake.mkdir()
    (lake / "raw-data").symlink_to(outside)
    storage = LocalObjectStorage(lake)

    assert storage.list("raw-data") == []
    assert [(e.key, e.reason.split(":")[0]) for e in storage.unusable("raw-data")] == [
        ("raw-data", "symlink")
    ]
