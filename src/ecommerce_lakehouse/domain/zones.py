"""Lake zones and the paths inside them (PRODUCT §2).

Keys are POSIX-style paths relative to the lake root.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from datetime import datetime

from ecommerce_lakehouse.domain.errors import PathOutsideLake
from ecommerce_lakehouse.domain.types import Entity

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


def table_key(table: str) -> str:
    """Key of a curated Delta table."""
    return f"{PROCESSED}/{table}"


def audit_key(table: str) -> str:
    """Key of an audit Delta table."""
    return f"{AUDIT}/{table}"


def entity_of(key: str) -> Entity | None:
    """Entity of a raw key: from its folder, else from its file-name prefix.

    ``order_items`` wins over ``orders`` for ``order_items_*.csv``. Returns None for an
    unknown entity.
    """
    folder, _, name = key.removeprefix(f"{RAW}/").rpartition("/")
    by_value = {e.value: e for e in Entity}
    if folder.lower() in by_value:
        return by_value[folder.lower()]
    lowered = name.lower()
    # Longest name first, so ``order_items_*.csv`` is not taken for ``orders``.
    for value in sorted(by_value, key=len, reverse=True):
        if lowered.startswith(value):
            return by_value[value]
    return None


def is_raw_csv(key: str) -> bool:
    """Whether a key is a raw CSV drop (directly or one folder below ``raw-data/``)."""
    if not key.startswith(f"{RAW}/") or not key.lower().endswith(".csv"):
        return False
    return key.count("/") in (1, 2)


@dataclass(frozen=True, slots=True, kw_only=True)
class ZonePaths:
    """Destination keys of a raw file for one run."""

    run_id: str
    started_at: datetime

    def archive(self, entity: Entity | None, raw_key: str) -> str:
        """``archive/<entity>/<YYYY>/<MM>/<DD>/<run_id>/<file name>``."""
        name = posixpath.basename(raw_key)
        folder = entity.value if entity else "unknown"
        day = self.started_at.strftime("%Y/%m/%d")
        return f"{ARCHIVE}/{folder}/{day}/{self.run_id}/{name}"

    def rejected(self, raw_key: str) -> str:
        """``rejected/<run_id>/<file name>``."""
        return f"{REJECTED}/{self.run_id}/{posixpath.basename(raw_key)}"

    def rejected_error(self, raw_key: str) -> str:
        """``rejected/<run_id>/<file name>.error.json``."""
        return f"{self.rejected(raw_key)}.error.json"
