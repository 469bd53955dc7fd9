"""Errors the product raises; every one carries a one-line, user-facing message."""

from __future__ import annotations

import errno
import re
from collections.abc import Iterator


class LakehouseError(Exception):
    """Base class of every error the product reports to a user as one line."""


class ConfigurationError(LakehouseError):
    """Bad usage or configuration (CLI exit code 2)."""


class FileRejected(LakehouseError):
    """A whole raw file cannot be read (not CSV, not UTF-8, missing column, unknown entity).

    Attributes:
        reason: a short machine-friendly reason code, e.g. ``missing_columns``.
        detail: the human-readable explanation.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class LockTimeout(LakehouseError):
    """Another run held the lake lock for longer than the configured timeout."""


class PathOutsideLake(LakehouseError):
    """A storage key escaped the lake root (``..``, absolute paths)."""


class IntegrityError(LakehouseError):
    """A copy could not be verified, or an engine's counts disagree with its commit metrics."""


class TableUnreadable(LakehouseError):
    """A Delta table exists but cannot be opened: its ``_delta_log`` is corrupt or unreadable.

    Engines raise it with :meth:`of`; the application names the table in front
    (``table 'orders': ...``).
    """

    @classmethod
    def of(cls, location: str, reason: str) -> TableUnreadable:
        """The error for the table at ``location``, which ``reason`` kept from being opened."""
        return cls(f"cannot read the _delta_log of {location}: {reason}")


#: How a full disk is named; a message that already says it is kept as it is.
_DISK_FULL = "disk full: no space left on device"
#: What a full disk looks like in text that lost its errno: Rust's io::Error (delta-rs,
#: object_store: "No space left on device (os error 28)") and SQLite's SQLITE_FULL.
_DISK_FULL_TEXT = re.compile(
    r"no space left on device|\bos error 28\b|database or disk is full", re.IGNORECASE
)
#: SQLite's SQLITE_FULL result code (``sqlite3.OperationalError.sqlite_errorcode``).
_SQLITE_FULL = 13
#: object_store's error for any failed local file operation (read, write, rename, delete).
_GENERIC_LOCAL = "Generic LocalFileSystem error"
#: delta-rs puts an error's sources on the lines after it, each led by a (coloured) arrow.
_SOURCE_LINE = re.compile(r"\s*↳\s*(.*\S)")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
#: How many linked errors are looked at (a guard against pathological chains).
_MAX_CHAIN = 32


def describe_error(error: BaseException, *, action: str | None = None) -> str:
    """The one-line message of an unexpected error, for a run's results and logs.

    A full disk is named plainly wherever it shows in the chain: an ``OSError`` with errno
    ``ENOSPC`` (also as a cause or context), or engine text that lost the errno (delta-rs
    and object_store's "No space left on device (os error 28)", SQLite's "database or disk
    is full"). A message whose cause is on its following lines, as delta-rs writes them
    ("Generic LocalFileSystem error" then "↳ Unable to copy data to file" ...), keeps that
    cause on the one line; a "Generic LocalFileSystem error" without any cause says so. Any
    other error is ``"<type name>: <first line of its message>"``.

    Args:
        error: the error caught.
        action: what was being done, for the disk-full message, e.g. ``"loading orders"``;
            without it, the name of the file whose write failed, when the error has one.

    Returns:
        One line of text.
    """
    text = _message(error)
    plain = f"{type(error).__name__}: {text}".splitlines()[0]
    chain = list(_chain(error))
    if _DISK_FULL not in text and any(_is_disk_full(link) for link in chain):
        where = action or _failed_file(chain)
        return (
            _DISK_FULL
            + (f" while {where}" if where else "")
            + "; free space and run again (unfinished files stay in raw-data/)"
        )
    sources = [
        match.group(1)
        for match in (_SOURCE_LINE.match(_ANSI.sub("", line)) for line in text.splitlines()[1:])
        if match
    ]
    if sources:
        return ": ".join([plain, *sources])
    if text.strip() == _GENERIC_LOCAL:
        return (
            "the local filesystem refused an operation (delta-rs gave no cause, only "
            f"'{plain}'); check free disk space and permissions"
        )
    return plain


def first_line(text: str, *, default: str = "") -> str:
    """The first line of a message that holds anything but blanks, stripped.

    For messages shown without their error's type name (engines' reasons, which often
    append a stack trace or a hint on the lines that follow); :func:`describe_error` gives
    an unexpected error's type and first line.

    Args:
        text: a message, possibly of several lines.
        default: what to give when ``text`` is blank, e.g. the error's type name.

    Returns:
        One line of text, ``default`` when there is none.
    """
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return default


def _chain(error: BaseException) -> Iterator[BaseException]:
    """``error``, its causes and contexts, and the members of an exception group, each once."""
    pending, seen = [error], set[int]()
    while pending and len(seen) < _MAX_CHAIN:
        link = pending.pop()
        if id(link) in seen:
            continue
        seen.add(id(link))
        yield link
        nested = link.exceptions if isinstance(link, BaseExceptionGroup) else ()
        pending.extend(
            e for e in (link.__cause__, link.__context__, *nested) if isinstance(e, BaseException)
        )


def _is_disk_full(error: BaseException) -> bool:
    if isinstance(error, OSError) and error.errno == errno.ENOSPC:
        return True
    if getattr(error, "sqlite_errorcode", None) == _SQLITE_FULL:
        return True
    return _DISK_FULL_TEXT.search(_message(error)) is not None


def _failed_file(chain: list[BaseException]) -> str | None:
    for link in chain:
        if isinstance(link, OSError) and link.errno == errno.ENOSPC and link.filename:
            return f"writing {link.filename}"
    return None


def _message(error: BaseException) -> str:
    try:
        return str(error)
    except Exception:  # a broken __str__ must not hide the error being described
        return ""
