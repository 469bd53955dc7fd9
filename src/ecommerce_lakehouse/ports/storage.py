"""Object storage port: the lake's files, addressed by keys relative to the lake root."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True, kw_only=True)
class ObjectInfo:
    """A stored object: its key and size."""

    key: str
    size_bytes: int


class ObjectStorage(Protocol):
    """Files of one lake root (a directory or an ``s3://bucket[/prefix]``).

    Every key is relative to the root; implementations refuse keys that escape it.
    """

    @property
    def root_uri(self) -> str:
        """The lake root as engines address it (absolute path or ``s3://`` URI)."""
        ...

    @property
    def storage_options(self) -> Mapping[str, str]:
        """Options engines pass to their readers and writers (credentials, endpoint)."""
        ...

    def uri(self, key: str) -> str:
        """Absolute URI of a key, for engines."""
        ...

    def list(self, prefix: str) -> list[ObjectInfo]:
        """Every object under the folder ``prefix``, recursively, sorted by key.

        A trailing ``/`` is optional and ``""`` is the whole lake; ``raw-data`` does not match
        ``raw-data-old/``.
        """
        ...

    def exists(self, key: str) -> bool:
        """Whether an object exists."""
        ...

    def read_bytes(self, key: str) -> bytes:
        """The whole content of an object.

        Raises:
            FileNotFoundError: the object does not exist.
        """
        ...

    def write_bytes(self, key: str, data: bytes) -> None:
        """Create or replace an object."""
        ...

    def checksum(self, key: str) -> str:
        """SHA-256 hex digest of an object's content.

        Raises:
            FileNotFoundError: the object does not exist.
        """
        ...

    def move(self, source: str, destination: str) -> None:
        """Copy, verify (same size and checksum) and only then delete the source.

        Idempotent: when the source is gone and the destination exists (a retried move),
        it returns without error.

        Raises:
            IntegrityError: verification failed (the source is left untouched), or a different
                object already exists at the destination.
            FileNotFoundError: neither source nor destination exists.
        """
        ...

    def delete(self, key: str) -> None:
        """Delete an object (no error when it does not exist)."""
        ...
