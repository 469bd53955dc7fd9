"""Object storage port: the lake's files, addressed by keys relative to the lake root."""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True, slots=True, kw_only=True)
class ObjectInfo:
    """A stored object: its key and size.

    Attributes:
        key: the key relative to the lake root.
        size_bytes: the size.
        modified_at: when the content last changed, for stores where a writer can be seen
            half-way (a local file being written); None where objects appear whole (S3).
        version: an opaque token that changes whenever the object is written or replaced
            (a local file's inode, size and change times; an S3 object's ETag). Equal
            tokens mean the same content, so a run can tell that the bytes it parsed are
            the bytes it hashed without reading them again. None where the store has none.
    """

    key: str
    size_bytes: int
    modified_at: datetime | None = field(default=None, compare=False)
    version: str | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class UnusableEntry:
    """Something under a folder that ``list`` leaves out because it cannot be an object.

    Attributes:
        key: its path relative to the lake root.
        reason: why, starting with a stable name (``symlink``, ``unreadable_folder``, ...).
    """

    key: str
    reason: str


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

    def unusable(self, prefix: str) -> builtins.list[UnusableEntry]:
        """What ``list(prefix)`` leaves out although it is there, sorted by key.

        Symbolic links (never followed), folders that cannot be read and special files.
        Stores without such entries (S3) return ``[]``.
        """
        ...

    def remove_stale_temporaries(self, older_than: datetime) -> builtins.list[str]:
        """Delete this store's own temporary files last changed before ``older_than``.

        Only files of the store's own temporary-name pattern are touched: the leftovers of a
        write or move that crashed. Call it while holding the lake lock, with the time the
        lock was taken, so no live writer's files are removed.

        Returns:
            The keys removed (stores without temporary files return ``[]``).
        """
        ...

    def info(self, key: str) -> ObjectInfo:
        """The object's size, modification time and version, without reading it.

        Raises:
            FileNotFoundError: the object does not exist.
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

    def move(
        self,
        source: str,
        destination: str,
        *,
        checksum: str | None = None,
        version: str | None = None,
    ) -> None:
        """Move an object; the source is gone only once the destination is verified.

        Within one local filesystem this is an atomic rename (never following links), so a
        crash leaves the file in exactly one place; otherwise it is copy, verify (same size
        and checksum) and only then delete the source.

        Idempotent: when the source is gone and the destination exists (a retried move),
        it returns without error.

        Args:
            source: the key to move.
            destination: where it goes.
            checksum: the SHA-256 the caller read; when given, a source with other content
                (still being written, or replaced) is not moved.
            version: the source's version token (``ObjectInfo.version``) when ``checksum``
                was taken. While the source still has this token it is known to hold the
                ``checksum`` content, so a store may skip reading it again; any other token
                (or None) means the source is hashed.

        Raises:
            IntegrityError: verification failed or the source's checksum is not ``checksum``
                (the source is left untouched), or a different object already exists at the
                destination.
            FileNotFoundError: neither source nor destination exists.
        """
        ...

    def delete(self, key: str) -> None:
        """Delete an object (no error when it does not exist)."""
        ...
