"""ObjectStorage contract: every adapter keeps the lake's files the same way."""

from __future__ import annotations

import errno
import hashlib
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

import ecommerce_lakehouse_local.storage as local_storage
from ecommerce_lakehouse.domain.errors import IntegrityError, PathOutsideLake
from ecommerce_lakehouse.ports.storage import ObjectInfo, ObjectStorage
from tests.contract.conftest import StorageCase


def test_write_then_read_returns_the_bytes(storage_case: StorageCase) -> None:
    storage = storage_case.storage
    storage.write_bytes("raw-data/orders/orders_1.csv", b"order_id\n1\n")

    assert storage.exists("raw-data/orders/orders_1.csv")
    assert storage.read_bytes("raw-data/orders/orders_1.csv") == b"order_id\n1\n"
    assert not storage.exists("raw-data/orders/orders_2.csv")


def test_reading_a_missing_key_raises_file_not_found(storage_case: StorageCase) -> None:
    with pytest.raises(FileNotFoundError):
        storage_case.storage.read_bytes("raw-data/missing.csv")
    with pytest.raises(FileNotFoundError):
        storage_case.storage.checksum("raw-data/missing.csv")


def test_overwrite_replaces_the_content_and_leaves_no_temporary_file(
    storage_case: StorageCase,
) -> None:
    storage = storage_case.storage
    storage.write_bytes("a/b/c.txt", b"first version, longer")
    storage.write_bytes("a/b/c.txt", b"second")

    assert storage.read_bytes("a/b/c.txt") == b"second"
    assert storage.list("") == [ObjectInfo(key="a/b/c.txt", size_bytes=6)]


def test_info_gives_a_version_that_changes_with_every_write(storage_case: StorageCase) -> None:
    storage = storage_case.storage
    storage.write_bytes("raw-data/orders/orders_1.csv", b"order_id\n1\n")
    first = storage.info("raw-data/orders/orders_1.csv")
    (listed,) = storage.list("raw-data")

    assert (first.key, first.size_bytes) == ("raw-data/orders/orders_1.csv", 11)
    assert first.version is not None and listed.version == first.version
    assert storage.info("raw-data/orders/orders_1.csv").version == first.version
    # Replaced by other content of the same size: the version tells.
    storage.write_bytes("raw-data/orders/orders_1.csv", b"order_id\n2\n")
    assert storage.info("raw-data/orders/orders_1.csv").version != first.version
    with pytest.raises(FileNotFoundError):
        storage.info("raw-data/orders/missing.csv")


def test_list_is_recursive_sorted_and_limited_to_the_folder(storage_case: StorageCase) -> None:
    storage = storage_case.storage
    for key in (
        "raw-data/products_2.csv",
        "raw-data/orders/b.csv",
        "raw-data-old/orders.csv",
        "raw-data/orders/a.csv",
        "raw-data/order_items/deep/x.csv",
        "archive/orders/2024/01/01/run/a.csv",
    ):
        storage.write_bytes(key, key.encode())

    expected = [
        "raw-data/order_items/deep/x.csv",
        "raw-data/orders/a.csv",
        "raw-data/orders/b.csv",
        "raw-data/products_2.csv",
    ]
    assert [info.key for info in storage.list("raw-data")] == expected
    assert [info.key for info in storage.list("raw-data/")] == expected
    assert [info.key for info in storage.list("raw-data/orders")] == expected[1:3]
    assert storage.list("raw-data/orders")[0].size_bytes == len(b"raw-data/orders/a.csv")
    assert len(storage.list("")) == 6
    assert storage.list("nothing-here") == []


_ESCAPES = ["../x.csv", "/etc/passwd", "raw-data/../../x.csv", "..", "", "a\\..\\..\\b"]

_OPERATIONS: dict[str, Callable[[ObjectStorage, str], object]] = {
    "uri": lambda s, key: s.uri(key),
    "exists": lambda s, key: s.exists(key),
    "read_bytes": lambda s, key: s.read_bytes(key),
    "write_bytes": lambda s, key: s.write_bytes(key, b"x"),
    "checksum": lambda s, key: s.checksum(key),
    "move_from": lambda s, key: s.move(key, "archive/x.csv"),
    "move_to": lambda s, key: s.move("raw-data/x.csv", key),
    "delete": lambda s, key: s.delete(key),
}


@pytest.mark.parametrize("operation", sorted(_OPERATIONS))
@pytest.mark.parametrize("key", _ESCAPES)
def test_keys_that_escape_the_lake_are_refused(
    storage_case: StorageCase, operation: str, key: str
) -> None:
    storage_case.storage.write_bytes("raw-data/x.csv", b"data")

    with pytest.raises(PathOutsideLake):
        _OPERATIONS[operation](storage_case.storage, key)

    assert storage_case.storage.read_bytes("raw-data/x.csv") == b"data"


def test_a_symbolic_link_out_of_the_lake_is_refused(storage_case: StorageCase) -> None:
    if storage_case.link_outside is None:
        pytest.skip("this store has no symbolic links")
    storage = storage_case.storage
    storage_case.link_outside("raw-data/leak.csv")

    with pytest.raises(PathOutsideLake):
        storage.read_bytes("raw-data/leak.csv")
    with pytest.raises(PathOutsideLake):
        storage.write_bytes("raw-data/leak.csv", b"overwrite")
    with pytest.raises(PathOutsideLake):
        storage.move("raw-data/leak.csv", "archive/leak.csv")
    assert storage.list("raw-data") == []


def test_checksum_is_the_sha256_of_the_content(storage_case: StorageCase) -> None:
    data = bytes(range(256)) * 12_000  # about 3 MB, more than one read chunk
    storage_case.storage.write_bytes("raw-data/big.csv", data)

    assert storage_case.storage.checksum("raw-data/big.csv") == hashlib.sha256(data).hexdigest()


def test_move_copies_then_deletes_the_source(storage_case: StorageCase) -> None:
    storage = storage_case.storage
    storage.write_bytes("raw-data/orders_1.csv", b"order_id\n1\n")
    digest = storage.checksum("raw-data/orders_1.csv")

    storage.move("raw-data/orders_1.csv", "archive/orders/2024/01/01/run-1/orders_1.csv")

    assert not storage.exists("raw-data/orders_1.csv")
    assert storage.checksum("archive/orders/2024/01/01/run-1/orders_1.csv") == digest
    assert [i.key for i in storage.list("")] == ["archive/orders/2024/01/01/run-1/orders_1.csv"]


def test_a_retried_move_succeeds_without_changing_anything(storage_case: StorageCase) -> None:
    storage = storage_case.storage
    storage.write_bytes("raw-data/orders_1.csv", b"content")
    storage.move("raw-data/orders_1.csv", "archive/orders_1.csv")

    storage.move("raw-data/orders_1.csv", "archive/orders_1.csv")

    assert storage.read_bytes("archive/orders_1.csv") == b"content"
    assert not storage.exists("raw-data/orders_1.csv")


def test_move_finishes_when_an_identical_copy_is_already_in_place(
    storage_case: StorageCase,
) -> None:
    storage = storage_case.storage
    storage.write_bytes("raw-data/orders_1.csv", b"content")
    storage.write_bytes("archive/orders_1.csv", b"content")

    storage.move("raw-data/orders_1.csv", "archive/orders_1.csv")

    assert not storage.exists("raw-data/orders_1.csv")
    assert storage.read_bytes("archive/orders_1.csv") == b"content"


def test_move_refuses_to_overwrite_a_different_file(storage_case: StorageCase) -> None:
    storage = storage_case.storage
    storage.write_bytes("raw-data/orders_1.csv", b"new content")
    storage.write_bytes("archive/orders_1.csv", b"old content")

    with pytest.raises(IntegrityError, match="different file already exists"):
        storage.move("raw-data/orders_1.csv", "archive/orders_1.csv")

    assert storage.read_bytes("raw-data/orders_1.csv") == b"new content"
    assert storage.read_bytes("archive/orders_1.csv") == b"old content"


@pytest.mark.parametrize(
    "mutate",
    [lambda data: data + b"!", lambda data: data[:-1] + b"X"],
    ids=["size differs", "same size, checksum differs"],
)
def test_move_keeps_the_source_when_the_copy_fails_verification(
    storage_case: StorageCase, mutate: Callable[[bytes], bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = storage_case.storage
    storage.write_bytes("raw-data/orders_1.csv", b"order_id\n1\n")
    _across_filesystems(monkeypatch)  # a local move copies only between two filesystems
    storage_case.corrupt_copies(mutate)

    with pytest.raises(IntegrityError, match="verification"):
        storage.move("raw-data/orders_1.csv", "archive/orders_1.csv")

    assert storage.read_bytes("raw-data/orders_1.csv") == b"order_id\n1\n"
    assert not storage.exists("archive/orders_1.csv")
    assert [i.key for i in storage.list("")] == ["raw-data/orders_1.csv"]


def test_moving_a_file_that_exists_nowhere_raises_file_not_found(
    storage_case: StorageCase,
) -> None:
    with pytest.raises(FileNotFoundError):
        storage_case.storage.move("raw-data/ghost.csv", "archive/ghost.csv")


def test_delete_removes_and_ignores_missing_keys(storage_case: StorageCase) -> None:
    storage = storage_case.storage
    storage.write_bytes("rejected/run/x.csv", b"x")

    storage.delete("rejected/run/x.csv")
    storage.delete("rejected/run/x.csv")

    assert not storage.exists("rejected/run/x.csv")


def test_uri_is_the_key_under_the_root(storage_case: StorageCase) -> None:
    storage = storage_case.storage

    assert storage.uri("lakehouse-dwh/orders") == f"{storage.root_uri}/lakehouse-dwh/orders"
    assert storage.uri("raw-data/./a//b.csv") == f"{storage.root_uri}/raw-data/a/b.csv"
    assert all(isinstance(v, str) for v in storage.storage_options.values())


def _across_filesystems(monkeypatch: pytest.MonkeyPatch) -> None:
    def rename(source: object, destination: object) -> None:
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(local_storage, "_os_rename", rename)


@pytest.mark.parametrize("filesystems", ["one filesystem", "two filesystems"])
def test_move_refuses_a_source_that_is_not_the_content_read(
    storage_case: StorageCase, monkeypatch: pytest.MonkeyPatch, filesystems: str
) -> None:
    storage = storage_case.storage
    storage.write_bytes("raw-data/orders_1.csv", b"order_id\n1\n")
    read = storage.checksum("raw-data/orders_1.csv")
    storage.write_bytes("raw-data/orders_1.csv", b"order_id\n1\n2\n")  # a writer went on
    if filesystems == "two filesystems":
        _across_filesystems(monkeypatch)

    with pytest.raises(IntegrityError, match="changed"):
        storage.move("raw-data/orders_1.csv", "archive/orders_1.csv", checksum=read)

    assert storage.read_bytes("raw-data/orders_1.csv") == b"order_id\n1\n2\n"
    assert not storage.exists("archive/orders_1.csv")
    storage.move(
        "raw-data/orders_1.csv",
        "archive/orders_1.csv",
        checksum=hashlib.sha256(b"order_id\n1\n2\n").hexdigest(),
    )
    assert [i.key for i in storage.list("")] == ["archive/orders_1.csv"]


def test_a_move_across_filesystems_copies_verifies_and_deletes(
    storage_case: StorageCase, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = storage_case.storage
    storage.write_bytes("raw-data/orders_1.csv", b"content")
    _across_filesystems(monkeypatch)

    storage.move("raw-data/orders_1.csv", "archive/run/orders_1.csv")

    assert [i.key for i in storage.list("")] == ["archive/run/orders_1.csv"]
    assert storage.read_bytes("archive/run/orders_1.csv") == b"content"


def test_a_store_reports_nothing_unusable_and_no_temporaries_when_clean(
    storage_case: StorageCase,
) -> None:
    storage = storage_case.storage
    storage.write_bytes("raw-data/orders/orders_1.csv", b"content")

    assert storage.unusable("raw-data") == []
    assert storage.remove_stale_temporaries(datetime.now(UTC)) == []
    (info,) = storage.list("raw-data")
    if info.modified_at is not None:  # stores where a writer can be seen half-way
        assert abs((datetime.now(UTC) - info.modified_at).total_seconds()) < 60
