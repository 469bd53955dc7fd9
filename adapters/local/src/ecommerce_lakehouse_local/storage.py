"""Object storage on the local filesystem: a directory is the lake root."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import suppress
from pathlib import Path

from ecommerce_lakehouse.domain.errors import IntegrityError, PathOutsideLake
from ecommerce_lakehouse.domain.zones import clean_key
from ecommerce_lakehouse.ports.storage import ObjectInfo

#: Prefix of this adapter's in-flight temporary files; ``list`` never reports them.
TEMP_PREFIX = ".lakehouse-tmp-"


class LocalObjectStorage:
    """The lake's files under one local directory.

    Keys are POSIX paths relative to the root. A key that would leave the root, whether by
    ``..``, an absolute path or a symbolic link pointing outside, raises
    :class:`~ecommerce_lakehouse.domain.errors.PathOutsideLake`. Writes and moves are atomic:
    readers see the old content or the new one, never a partial file.

    Args:
        root: the lake root directory (it need not exist yet).
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self._root = Path(root).expanduser().resolve()

    @property
    def root_uri(self) -> str:
        """The absolute path of the lake root."""
        return str(self._root)

    @property
    def storage_options(self) -> Mapping[str, str]:
        """No options: delta-rs and DuckDB read local paths directly."""
        return {}

    def uri(self, key: str) -> str:
        """The absolute path of a key."""
        return str(self._path(key))

    def list(self, prefix: str) -> list[ObjectInfo]:
        """Every file under the folder ``prefix`` (recursively), sorted by key.

        ``prefix`` names a folder (a trailing ``/`` is optional); ``""`` lists the whole
        lake. Temporary files of in-flight writes and links leading outside the lake are
        left out.
        """
        folder = self._root if not prefix.strip("/") else self._path(prefix.rstrip("/"))
        if not folder.is_dir():
            return []
        found = [
            ObjectInfo(key=path.relative_to(self._root).as_posix(), size_bytes=path.stat().st_size)
            for path in self._walk(folder)
        ]
        return sorted(found, key=lambda info: info.key)

    def exists(self, key: str) -> bool:
        """Whether a file exists at ``key``."""
        return self._path(key).is_file()

    def read_bytes(self, key: str) -> bytes:
        """The content of a file.

        Raises:
            FileNotFoundError: no file at ``key``.
        """
        return self._path(key).read_bytes()

    def write_bytes(self, key: str, data: bytes) -> None:
        """Create or replace a file atomically, creating its parent folders."""
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        temp = _temp_path(target.parent)
        try:
            with temp.open("wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, target)
        finally:
            temp.unlink(missing_ok=True)
        _fsync_dir(target.parent)

    def checksum(self, key: str) -> str:
        """SHA-256 hex digest of a file, read in chunks.

        Raises:
            FileNotFoundError: no file at ``key``.
        """
        return _sha256(self._path(key))

    def move(self, source: str, destination: str) -> None:
        """Copy, verify (same size and checksum), then delete the source.

        The copy lands in a temporary file beside the destination and is renamed into
        place only once verified, so the destination never holds a partial file.

        Raises:
            IntegrityError: the copy differs from the source (the source is left
                untouched), or a different file already exists at ``destination``.
            FileNotFoundError: neither the source nor the destination exists.
        """
        src, dst = self._path(source), self._path(destination)
        if src == dst:
            if not src.is_file():
                raise FileNotFoundError(f"cannot move {source!r}: it does not exist")
            return
        if not src.is_file():
            if dst.is_file():
                return  # a retried move: the earlier attempt finished the copy and delete
            raise FileNotFoundError(f"cannot move {source!r}: it does not exist")
        size, digest = src.stat().st_size, _sha256(src)
        if dst.is_file():
            if dst.stat().st_size != size or _sha256(dst) != digest:
                raise IntegrityError(
                    f"cannot move {source!r}: a different file already exists at {destination!r}"
                )
            # An identical copy is already in place (e.g. a crash before the delete).
            src.unlink()
            return
        dst.parent.mkdir(parents=True, exist_ok=True)
        temp = _temp_path(dst.parent)
        try:
            with src.open("rb") as reader, temp.open("wb") as writer:
                shutil.copyfileobj(reader, writer)
                writer.flush()
                os.fsync(writer.fileno())
            copied_size, copied_digest = temp.stat().st_size, _sha256(temp)
            if (copied_size, copied_digest) != (size, digest):
                raise IntegrityError(
                    f"copy of {source!r} to {destination!r} failed verification "
                    f"(size {copied_size} vs {size}, sha256 {copied_digest[:12]} vs "
                    f"{digest[:12]}); the source was kept"
                )
            os.replace(temp, dst)
        finally:
            temp.unlink(missing_ok=True)
        _fsync_dir(dst.parent)
        src.unlink()

    def delete(self, key: str) -> None:
        """Delete a file; nothing happens when it does not exist."""
        self._path(key).unlink(missing_ok=True)

    def _path(self, key: str) -> Path:
        path = self._root / clean_key(key)
        # resolve() follows symbolic links, so a link pointing outside the lake is caught too.
        if not path.resolve().is_relative_to(self._root):
            raise PathOutsideLake(f"lake key {key!r} resolves outside the lake root")
        return path

    def _walk(self, folder: Path) -> Iterator[Path]:
        # Links to folders are not followed (os.walk's default); ``list`` sorts the result.
        for directory, _, files in os.walk(folder):
            for name in files:
                path = Path(directory, name)
                if name.startswith(TEMP_PREFIX) or not path.resolve().is_relative_to(self._root):
                    continue
                if path.is_file():
                    yield path


def _temp_path(directory: Path) -> Path:
    # Same folder as the target, so os.replace is an atomic rename on one filesystem.
    handle, name = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=directory)
    os.close(handle)
    return Path(name)


def _sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _fsync_dir(directory: Path) -> None:
    # Persist the rename itself; not every platform lets a directory be opened for this.
    with suppress(OSError):
        descriptor = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
