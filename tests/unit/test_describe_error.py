"""describe_error: the one-line message of an unexpected error, a full disk named plainly."""

from __future__ import annotations

import errno
import os
import sqlite3

import pytest

from ecommerce_lakehouse.domain.errors import LakehouseError, describe_error

#: The messages delta-rs 1.6 gave on a full tmpfs (tests/e2e/test_disk_full.py reproduces them).
DELTA_MERGE_TEXT = (
    "Failed to parse parquet: External: Generic LocalFileSystem error: Unable to copy data "
    "to file: No space left on device (os error 28)"
)
DELTA_WRITE_TEXT = (
    "Generic LocalFileSystem error\n          \x1b[31m↳\x1b[0m Unable to copy data to file\n"
    "           \x1b[31m↳\x1b[0m No space left on device (os error 28)\n"
)


class DeltaError(Exception):
    """Stands in for deltalake's DeltaError: an Exception with only a message."""


def assert_disk_full(message: str) -> None:
    assert message.startswith("disk full: no space left on device"), message
    assert "free space and run again" in message and "raw-data/" in message
    assert "\n" not in message


# ----------------------------------------------------------------------------- disk full


def test_an_enospc_oserror_names_the_full_disk_and_the_file() -> None:
    error = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/lake/x.parquet")

    message = describe_error(error)

    assert_disk_full(message)
    assert "while writing /lake/x.parquet" in message


def test_the_action_says_what_was_being_done() -> None:
    error = OSError(errno.ENOSPC, "No space left on device", "/lake/x.parquet")

    message = describe_error(error, action="loading orders")

    assert_disk_full(message)
    assert "while loading orders;" in message


def _cleanup_after_a_failed_commit() -> None:
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as error:
            raise RuntimeError("commit failed") from error  # the cause
    except RuntimeError:
        raise ValueError("cleanup failed too") from None  # only the context remains


def test_an_enospc_cause_anywhere_in_the_chain_is_found() -> None:
    with pytest.raises(ValueError, match="cleanup failed too") as raised:
        _cleanup_after_a_failed_commit()

    assert raised.value.__suppress_context__
    assert_disk_full(describe_error(raised.value))


def test_an_exception_group_member_is_found() -> None:
    group = ExceptionGroup("writes", [ValueError("x"), OSError(errno.ENOSPC, "full")])

    assert_disk_full(describe_error(group))


@pytest.mark.parametrize(
    "error",
    [
        DeltaError(DELTA_MERGE_TEXT),
        OSError(DELTA_WRITE_TEXT),  # the cause is on the lines after the first
        OSError("Generic LocalFileSystem error: Unable to copy data to file (os error 28)"),
        sqlite3.OperationalError("database or disk is full"),
    ],
    ids=["delta-merge", "delta-write-multiline", "os-error-28", "sqlite-full"],
)
def test_engine_text_that_lost_the_errno_still_says_disk_full(error: Exception) -> None:
    assert_disk_full(describe_error(error, action="loading order_items"))


def test_a_message_that_already_names_the_full_disk_is_kept() -> None:
    inner = describe_error(OSError(errno.ENOSPC, "No space left on device"))
    error = LakehouseError(f"could not archive raw-data/a.csv: {inner} (and 1 more)")

    message = describe_error(error)

    assert message == f"LakehouseError: {error}"


def test_os_error_280_is_not_a_full_disk() -> None:
    assert describe_error(OSError("failed (os error 280)")) == "OSError: failed (os error 280)"


# ----------------------------------------------------------------------------- delta-rs causes


def test_a_generic_local_error_keeps_its_cause_on_the_one_line() -> None:
    text = (
        "Generic LocalFileSystem error\n   \x1b[31m↳\x1b[0m Unable to open file\n"
        "    \x1b[31m↳\x1b[0m Permission denied (os error 13)\n"
    )

    assert describe_error(OSError(text)) == (
        "OSError: Generic LocalFileSystem error: Unable to open file: "
        "Permission denied (os error 13)"
    )


def test_a_generic_local_error_without_a_cause_says_so() -> None:
    message = describe_error(OSError("Generic LocalFileSystem error"))

    assert message == (
        "the local filesystem refused an operation (delta-rs gave no cause, only "
        "'OSError: Generic LocalFileSystem error'); check free disk space and permissions"
    )


# ----------------------------------------------------------------------------- other errors


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (ValueError("x"), "ValueError: x"),
        (ValueError("first line\nsecond line\nthird"), "ValueError: first line"),
        (KeyError("orders"), "KeyError: 'orders'"),
        (RuntimeError(), "RuntimeError: "),
        (
            OSError(errno.EACCES, "Permission denied"),
            "PermissionError: [Errno 13] Permission denied",
        ),
        (LakehouseError("lock held by run-1"), "LakehouseError: lock held by run-1"),
    ],
)
def test_other_errors_are_the_type_and_the_first_line(error: Exception, expected: str) -> None:
    assert describe_error(error) == expected
    assert describe_error(error, action="loading orders") == expected


def test_a_broken_str_does_not_hide_the_error() -> None:
    class Broken(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no")

    assert describe_error(Broken()) == "Broken: "


def test_a_cyclic_chain_ends() -> None:
    first, second = ValueError("a"), ValueError("b")
    first.__context__, second.__context__ = second, first

    assert describe_error(first) == "ValueError: a"
