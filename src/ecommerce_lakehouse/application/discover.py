"""Find the raw CSV drops waiting in ``raw-data/``."""

from __future__ import annotations

import posixpath

from ecommerce_lakehouse.application.run import DiscoveredFile
from ecommerce_lakehouse.domain.zones import RAW, entity_of, is_raw_csv
from ecommerce_lakehouse.ports.storage import ObjectStorage


class DiscoverFiles:
    """List raw CSVs, with entity, size and checksum, in ingestion order (by file name)."""

    def __init__(self, storage: ObjectStorage) -> None:
        self._storage = storage

    def __call__(self) -> list[DiscoveredFile]:
        """The raw files, ordered by file name then key."""
        found = [
            DiscoveredFile(
                key=info.key,
                entity=entity_of(info.key),
                size_bytes=info.size_bytes,
                checksum=self._storage.checksum(info.key),
            )
            for info in self._storage.list(RAW)
            if is_raw_csv(info.key)
        ]
        return sorted(found, key=lambda f: (posixpath.basename(f.key), f.key))
