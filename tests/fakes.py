"""In-memory fakes of the platform ports, for unit tests of the application layer.

They pass the same contract suites as the real adapters (tests/contract/), so a use case
tested against them behaves the same against the local or AWS adapters.
"""

from __future__ import annotations

import builtins
import hashlib
import threading
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime

from ecommerce_lakehouse.domain.errors import IntegrityError, LockTimeout
from ecommerce_lakehouse.domain.zones import clean_key
from ecommerce_lakehouse.ports.catalogue import TableDefinition
from ecommerce_lakehouse.ports.storage import ObjectInfo, UnusableEntry


class InMemoryObjectStorage:
    """An object store in a dict of key to bytes (thread-safe).

    Tests may set ``modified`` (key to the time a writer last changed it, reported as
    ``ObjectInfo.modified_at``) and ``unusable_entries`` (what ``unusable`` reports), to
    play a local filesystem's half-written files, links and unreadable folders.
    """

    def __init__(self, root_uri: str = "memory://lake") -> None:
        self._root_uri = root_uri.rstrip("/")
        self._objects: dict[str, bytes] = {}
        self._guard = threading.RLock()
        self.modified: dict[str, datetime] = {}
        self.unusable_entries: list[UnusableEntry] = []
        self._written = 0
        self._generations: dict[str, int] = {}

    @property
    def root_uri(self) -> str:
        """``memory://lake`` unless told otherwise."""
        return self._root_uri

    @property
    def storage_options(self) -> Mapping[str, str]:
        """No options."""
        return {}

    def uri(self, key: str) -> str:
        """``<root_uri>/<key>``."""
        return f"{self._root_uri}/{clean_key(key)}"

    def list(self, prefix: str) -> list[ObjectInfo]:
        """Objects under the folder ``prefix`` (``""`` is everything), sorted by key."""
        folder = clean_key(prefix.rstrip("/")) + "/" if prefix.strip("/") else ""
        with self._guard:
            return [self._info(key) for key in sorted(self._objects) if key.startswith(folder)]

    def info(self, key: str) -> ObjectInfo:
        """Size, ``modified`` time and write generation (the version) of a stored object."""
        with self._guard:
            if clean_key(key) not in self._objects:
                raise FileNotFoundError(f"no object at {key!r}")
            return self._info(clean_key(key))

    def _info(self, key: str) -> ObjectInfo:
        return ObjectInfo(
            key=key,
            size_bytes=len(self._objects[key]),
            modified_at=self.modified.get(key),
            version=str(self._generations.get(key, 0)),
        )

    def unusable(self, prefix: str) -> builtins.list[UnusableEntry]:
        """The ``unusable_entries`` under the folder ``prefix``, sorted by key."""
        folder = clean_key(prefix.rstrip("/")) + "/" if prefix.strip("/") else ""
        found = [e for e in self.unusable_entries if e.key.startswith(folder)]
        return sorted(found, key=lambda entry: entry.key)

    def remove_stale_temporaries(self, older_than: datetime) -> builtins.list[str]:
        """Nothing: writes here are atomic."""
        return []

    def exists(self, key: str) -> bool:
        """Whether ``key`` is stored."""
        with self._guard:
            return clean_key(key) in self._objects

    def read_bytes(self, key: str) -> bytes:
        """The stored bytes; FileNotFoundError when absent, like a file."""
        with self._guard:
            try:
                return self._objects[clean_key(key)]
            except KeyError:
                raise FileNotFoundError(f"no object at {key!r}") from None

    def write_bytes(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key``."""
        with self._guard:
            self._objects[clean_key(key)] = bytes(data)
            self._written += 1
            self._generations[clean_key(key)] = self._written

    def checksum(self, key: str) -> str:
        """SHA-256 hex digest of the stored bytes."""
        return hashlib.sha256(self.read_bytes(key)).hexdigest()

    def move(
        self,
        source: str,
        destination: str,
        *,
        checksum: str | None = None,
        version: str | None = None,
    ) -> None:
        """Copy, verify, then delete, with the local adapter's rules (always hashing).

        Raises:
            IntegrityError: the source is not ``checksum``, the copy differs from the source,
                or a different object already exists at ``destination``.
            FileNotFoundError: neither the source nor the destination exists.
        """
        src, dst = clean_key(source), clean_key(destination)
        with self._guard:
            if src not in self._objects:
                if dst in self._objects:
                    return
                raise FileNotFoundError(f"cannot move {source!r}: it does not exist")
            if src == dst:
                return
            data = self._objects[src]
            if checksum is not None and _sha256(data) != checksum:
                raise IntegrityError(
                    f"cannot move {source!r}: its content changed since it was read; "
                    "the source was kept"
                )
            if dst in self._objects:
                if self._objects[dst] != data:
                    raise IntegrityError(
                        f"cannot move {source!r}: a different file already exists at "
                        f"{destination!r}"
                    )
                del self._objects[src]
                return
            copy = self._copy(data)
            if len(copy) != len(data) or _sha256(copy) != _sha256(data):
                raise IntegrityError(
                    f"copy of {source!r} to {destination!r} failed verification; "
                    "the source was kept"
                )
            self._objects[dst] = copy
            self._written += 1
            self._generations[dst] = self._written
            del self._objects[src]

    def delete(self, key: str) -> None:
        """Forget ``key``; nothing happens when it is absent."""
        with self._guard:
            self._objects.pop(clean_key(key), None)

    @staticmethod
    def _copy(data: bytes) -> bytes:
        # The copy step of move(); tests replace it to simulate a corrupted copy.
        return bytes(data)


class InMemoryCatalogue:
    """A catalogue in a dict; pass ``tables`` to share it between instances ("reopen")."""

    def __init__(self, tables: dict[str, TableDefinition] | None = None) -> None:
        self.tables: dict[str, TableDefinition] = {} if tables is None else tables

    def register(self, table: TableDefinition) -> None:
        """Create or replace a registration."""
        self.tables[table.name] = table

    def get(self, name: str) -> TableDefinition | None:
        """A registered table, or None."""
        return self.tables.get(name)

    def list(self) -> list[TableDefinition]:
        """Every registered table, sorted by name."""
        return [self.tables[name] for name in sorted(self.tables)]


class InMemoryLock:
    """A non-re-entrant lake lock for threads of one process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._holder: tuple[str, str] | None = None

    def acquire(self, *, owner: str, timeout_seconds: float) -> AbstractContextManager[None]:
        """Hold the lock for the ``with`` block (a negative timeout waits forever).

        Raises:
            LockTimeout: another owner held it for longer than ``timeout_seconds``.
        """
        return self._held(owner, timeout_seconds)

    @contextmanager
    def _held(self, owner: str, timeout_seconds: float) -> Iterator[None]:
        if not self._lock.acquire(timeout=timeout_seconds if timeout_seconds >= 0 else -1):
            holder, since = self._holder or ("another run", "an unknown time")
            raise LockTimeout(
                f"lake is locked by run {holder} since {since}; gave up after {timeout_seconds:g}s"
            )
        try:
            since = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
            self._holder = (owner, since)
            yield
        finally:
            self._holder = None
            self._lock.release()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
