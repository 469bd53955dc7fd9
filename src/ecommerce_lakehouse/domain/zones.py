"""Lake zones and the paths inside them (docs/contract.md#zones).

Keys are POSIX-style paths relative to the lake root.
"""

from __future__ import annotations

import hashlib
import posixpath
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import unquote, urlparse

from ecommerce_lakehouse.domain.errors import PathOutsideLake
from ecommerce_lakehouse.domain.schemas import NO_ENTITY, entity_names

RAW = "raw-data"
PROCESSED = "lakehouse-dwh"
AUDIT = f"{PROCESSED}/_audit"
ARCHIVE = "archive"
REJECTED = "rejected"
LOCK_KEY = "_lakehouse.lock"
CATALOGUE_FILE = "_catalogue.sqlite"


def clean_key(key: str) -> str:
    """Normalise a key and refuse any that would leave the lake root."""
    if not key or key.startswith("/") or "\\" in key or "\x00" in key:
        raise PathOutsideLake(f"invalid lake key {key!r}")
    normalised = posixpath.normpath(key)
    if normalised == ".." or normalised.startswith("../") or normalised == ".":
        raise PathOutsideLake(f"lake key {key!r} escapes the lake root")
    return normalised


def local_path(uri: str) -> str | None:
    """The file-system path of a local URI (a plain path or ``file://``), else None."""
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return unquote(parsed.path)
    # A one-letter scheme is a Windows drive.
    return uri if len(parsed.scheme) <= 1 else None


#: Where each run's record (``RunResult.as_dict``) goes: ``_runs/<run id>.json``.
RUNS = "_runs"


def run_record_key(run_id: str) -> str:
    """The key of a run's record, relative to the lake root."""
    return f"{RUNS}/{run_id}.json"


def table_key(table: str) -> str:
    """Key of a curated Delta table."""
    return f"{PROCESSED}/{table}"


def audit_key(table: str) -> str:
    """Key of an audit Delta table."""
    return f"{AUDIT}/{table}"


def entity_of(key: str) -> str | None:
    """Entity of a raw key: from its folder, else from its file-name prefix.

    The names are the catalogue's (``schemas.SCHEMAS``). The longest name that fits wins:
    ``order_items`` over ``orders`` for ``order_items_*.csv``. Returns None for an unknown
    entity.
    """
    folder, _, name = key.removeprefix(f"{RAW}/").rpartition("/")
    names = entity_names()
    if folder.lower() in names:
        return folder.lower()
    lowered = name.lower()
    # Longest name first, so ``order_items_*.csv`` is not taken for ``orders``.
    for entity in sorted(names, key=len, reverse=True):
        if lowered.startswith(entity):
            return entity
    return None


def is_raw_csv(key: str) -> bool:
    """Whether a key is a raw CSV drop (directly or one folder below ``raw-data/``)."""
    if not key.startswith(f"{RAW}/") or not key.lower().endswith(".csv"):
        return False
    return key.count("/") in (1, 2)


def raw_key_problem(key: str) -> str | None:
    """Why a ``.csv`` key under ``raw-data/`` cannot be taken as a raw drop, or None.

    The reason starts with a stable name (``nested_path``, ``invalid_name``) for
    ``ingest_log.error``.
    """
    if key.count("/") > 2:
        return (
            "nested_path: CSVs are read from raw-data/ or raw-data/<entity>/, not deeper; "
            "the file is left where it is"
        )
    try:
        clean_key(key)
    except PathOutsideLake:
        return "invalid_name: the path holds a backslash or NUL, which lake keys cannot carry"
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:
        # A local name whose bytes are not UTF-8 (Python keeps them as surrogates): no
        # object store, Delta log or JSON record can carry it.
        return "invalid_name: the name is not valid UTF-8; rename the file"
    folder = key.split("/")[1] if key.count("/") == 2 else ""
    if folder.lower().endswith((".csv", ".json")):
        # Kept folders reappear in destinations (archive/.../<folder>/<name>), where such a
        # folder would clash with another file's destination or error report of the run.
        return (
            "invalid_folder_name: a folder under raw-data/ named like a file (.csv, .json); "
            "rename the folder"
        )
    return None


#: The longest file name (UTF-8 bytes) the lake writes, so that ``<name>.error.json`` and the
#: temporary names of a move stay within the 255-byte limit of common filesystems.
MAX_NAME_BYTES = 200
_ERROR_SUFFIX = ".error.json"


def bounded_name(name: str, source_key: str) -> str:
    """``name`` itself, or when too long, its head plus a short hash of ``source_key``.

    The extension is kept, and the hash makes the shortened name unique per source key.
    """
    if len(name.encode()) <= MAX_NAME_BYTES:
        return name
    stem, dot, extension = name.rpartition(".")
    if not dot or len(extension) > 16:
        stem, extension = name, ""
    tail = f"~{hashlib.sha256(source_key.encode()).hexdigest()[:12]}"
    tail += f".{extension}" if extension else ""
    budget = MAX_NAME_BYTES - len(tail.encode())
    head = stem.encode()[:budget].decode(errors="ignore")
    return head + tail


@dataclass(frozen=True, slots=True, kw_only=True)
class ZonePaths:
    """Destination keys of a raw file for one run."""

    run_id: str
    started_at: datetime

    def archive(self, entity: str | None, raw_key: str, *, keep_folder: bool = False) -> str:
        """``archive/<entity>/<YYYY>/<MM>/<DD>/<run_id>/[<raw folder>/]<file name>``.

        Args:
            entity: the file's entity, one of the catalogue's (``unknown`` when None).
            raw_key: the file's key in ``raw-data/``.
            keep_folder: keep the file's folder under ``raw-data/``, for a run that holds two
                files of the same name (``raw-data/products/a.csv`` and ``raw-data/a.csv``).

        Raises:
            ValueError: ``entity`` is not one of the catalogue's.
        """
        # The entity becomes a folder: only the catalogue's names, which are identifiers.
        if entity is not None and entity not in entity_names():
            raise ValueError(f"unknown entity {entity!r}")
        folder = entity or NO_ENTITY
        day = self.started_at.strftime("%Y/%m/%d")
        return f"{ARCHIVE}/{folder}/{day}/{self.run_id}/{_relative(raw_key, keep_folder)}"

    def rejected(self, raw_key: str, *, keep_folder: bool = False) -> str:
        """``rejected/<run_id>/[<raw folder>/]<file name>`` (see :meth:`archive`)."""
        return f"{REJECTED}/{self.run_id}/{_relative(raw_key, keep_folder)}"

    def rejected_error(self, raw_key: str, *, keep_folder: bool = False) -> str:
        """``rejected/<run_id>/[<raw folder>/]<file name>.error.json``."""
        return error_report_key(self.rejected(raw_key, keep_folder=keep_folder))


def error_report_key(rejected_key: str) -> str:
    """The ``.error.json`` report beside a rejected file's key."""
    return f"{rejected_key}{_ERROR_SUFFIX}"


def is_destination(key: str) -> bool:
    """Whether ``key`` is a clean key inside ``archive/`` or ``rejected/``.

    A run moves raw files nowhere else; a destination read back from a run result or the
    ``ingest_log`` that fails this is not followed.
    """
    try:
        cleaned = clean_key(key)
    except PathOutsideLake:
        return False
    return cleaned == key and cleaned.startswith((f"{ARCHIVE}/", f"{REJECTED}/"))


def _relative(raw_key: str, keep_folder: bool) -> str:
    # Every segment is bounded (hashing the whole source key), so names stay writable and
    # distinct source keys never share a destination.
    folder, _, name = raw_key.removeprefix(f"{RAW}/").rpartition("/")
    bounded = bounded_name(name, raw_key)
    if keep_folder and folder:
        return f"{bounded_name(folder, raw_key)}/{bounded}"
    return bounded
