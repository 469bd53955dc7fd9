"""Object storage on the local filesystem: a directory is the lake root."""

from __future__ import annotations

import builtins
import errno
import hashlib
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path

from ecommerce_lakehouse.domain.errors import IntegrityError, PathOutsideLake
from ecommerce_lakehouse.domain.zones import PROCESSED, RAW, clean_key
from ecommerce_lakehouse.ports.storage import ObjectInfo, UnusableEntry

#: Prefix of this adapter's in-flight temporary files; ``list`` never reports them.
TEMP_PREFIX = ".lakehouse-tmp-"
#: Top-level folders where no temporary file of this adapter ever stands.
_NO_TEMPORARIES = frozenset({RAW, PROCESSED})


class LocalObjectStorage:
    """The lake's files under one local directory.

    Keys are POSIX paths relative to the root. A key that would leave the root, whether by
    ``..``, an absolute path or a symbolic link pointing outside, raises
    :class:`~ecommerce_lakehouse.domain.errors.PathOutsideLake`. Writes and moves are atomic:
    readers see the old content or the new one, never a partial file. Symbolic links are
    never listed, followed or moved.

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
        lake. Temporary files of in-flight writes, symbolic links and anything that cannot
        be read are left out (see :meth:`unusable`). ``modified_at`` is the file's mtime.
        """
        found = [
            _info(self._key(path), status)
            for path, status, problem in self._scan(prefix)
            if problem is None and status is not None
        ]
        return sorted(found, key=lambda info: info.key)

    def unusable(self, prefix: str) -> builtins.list[UnusableEntry]:
        """Symbolic links, unreadable folders and special files under ``prefix``, by key."""
        found = [
            UnusableEntry(key=self._key(path), reason=problem)
            for path, _, problem in self._scan(prefix)
            if problem is not None
        ]
        return sorted(found, key=lambda entry: entry.key)

    def remove_stale_temporaries(self, older_than: datetime) -> builtins.list[str]:
        """Delete ``.lakehouse-tmp-*`` files (this adapter's only) last changed before a time.

        They are what a write or move that crashed left behind; links are never followed.
        """
        limit = older_than.timestamp()
        removed: builtins.list[str] = []
        for directory, folders, files in os.walk(self._root):
            folders[:] = [f for f in folders if not Path(directory, f).is_symlink()]
            if Path(directory) == self._root:
                # Never under raw-data/ (a user's file there is the user's, whatever its
                # name) nor the Delta tables (this adapter writes no file there).
                folders[:] = [f for f in folders if f not in _NO_TEMPORARIES]
            for name in files:
                path = Path(directory, name)
                if not name.startswith(TEMP_PREFIX):
                    continue
                with suppress(OSError):
                    status = path.lstat()
                    if stat.S_ISREG(status.st_mode) and status.st_mtime < limit:
                        path.unlink()
                        removed.append(self._key(path))
        return sorted(removed)

    def info(self, key: str) -> ObjectInfo:
        """Size, mtime and version of the file at ``key`` (never following a link).

        Raises:
            FileNotFoundError: no regular file at ``key``.
        """
        path = self._path(key)
        status = path.lstat()
        if not stat.S_ISREG(status.st_mode):
            raise FileNotFoundError(f"no regular file at {key!r}")
        return _info(self._key(path), status)

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

    def move(
        self,
        source: str,
        destination: str,
        *,
        checksum: str | None = None,
        version: str | None = None,
    ) -> None:
        """Rename the file into place, or copy, verify and delete across filesystems.

        Within one filesystem the move is one atomic rename: a crash leaves the file in
        exactly one place, and no free space for a copy is needed. Across filesystems the
        copy lands in a temporary file beside the destination and is renamed into place only
        once verified, so the destination never holds a partial file. A symbolic link is
        never moved or followed.

        When ``version`` (with ``checksum``) is still the source's version token, the source
        is known to hold ``checksum`` and is not read: a rename is then verified by the
        file's identity, size and mtime (any write in between changes them) instead of a
        hash, and only a copy across filesystems is hashed.

        Raises:
            IntegrityError: the source is not ``checksum`` or the copy differs from it (the
                source is left untouched), or a different file already exists at
                ``destination``.
            FileNotFoundError: neither the source nor the destination exists.
        """
        src, dst = self._path(source), self._path(destination)
        if src.is_symlink():
            raise IntegrityError(f"cannot move {source!r}: it is a symbolic link")
        if src == dst:
            if not src.is_file():
                raise FileNotFoundError(f"cannot move {source!r}: it does not exist")
            return
        if not src.is_file():
            if dst.is_file():
                return  # a retried move: the earlier attempt finished the copy and delete
            raise FileNotFoundError(f"cannot move {source!r}: it does not exist")
        status = src.lstat()
        size = status.st_size
        # Known from the token (no read), or read now.
        trusted = checksum is not None and version is not None and _version(status) == version
        digest = checksum if trusted and checksum is not None else _sha256(src)
        if checksum is not None and digest != checksum:
            raise IntegrityError(
                f"cannot move {source!r}: its content changed since it was read "
                "(still being written?); the source was kept"
            )
        if dst.is_file():
            if dst.stat().st_size != size or _sha256(dst) != digest:
                raise IntegrityError(
                    f"cannot move {source!r}: a different file already exists at {destination!r}"
                )
            # An identical copy is already in place (e.g. a crash before the delete).
            src.unlink()
            return
        dst.parent.mkdir(parents=True, exist_ok=True)
        if self._rename(src, dst, size, digest, source, status if trusted else None):
            return
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

    def _rename(
        self,
        src: Path,
        dst: Path,
        size: int,
        digest: str,
        source: str,
        before: os.stat_result | None = None,
    ) -> bool:
        """Rename ``src`` to ``dst`` on one filesystem; False when they are on two.

        The renamed file is checked to be what was read: against ``before`` (the source's
        status when its content was known, compared by identity, size and mtime, which the
        rename keeps and any write changes) when given, else by size and SHA-256.
        """
        try:
            # One atomic rename: a crash leaves the file under exactly one name. The
            # destination was checked to be free, and the lake lock keeps it so.
            _os_rename(src, dst)
        except OSError as error:
            if error.errno == errno.EXDEV:
                return False  # another filesystem: copy instead
            raise
        if before is not None:
            changed = not _unchanged(dst, before)
        else:
            changed = dst.stat().st_size != size or _sha256(dst) != digest
        if changed:
            # A writer still had it open and changed it: give it back for the next run.
            os.rename(dst, src)
            raise IntegrityError(
                f"cannot move {source!r}: it changed while being moved; the source was kept"
            )
        _fsync_dir(dst.parent)
        _fsync_dir(src.parent)
        return True

    def delete(self, key: str) -> None:
        """Delete a file; nothing happens when it does not exist."""
        self._path(key).unlink(missing_ok=True)

    def _path(self, key: str) -> Path:
        path = self._root / clean_key(key)
        # resolve() follows symbolic links, so a link pointing outside the lake is caught too.
        if not path.resolve().is_relative_to(self._root):
            raise PathOutsideLake(f"lake key {key!r} resolves outside the lake root")
        return path

    def _key(self, path: Path) -> str:
        return path.relative_to(self._root).as_posix()

    def _scan(self, prefix: str) -> Iterator[tuple[Path, os.stat_result | None, str | None]]:
        """Every entry under ``prefix``: path, ``lstat`` and why it is unusable (or None)."""
        if prefix.strip("/"):
            named = self._root / prefix.strip("/")
            if named.is_symlink():  # before _path, which refuses a link leading outside
                yield named, None, "symlink: links are not followed; make it a real folder"
                return
        folder = self._root if not prefix.strip("/") else self._path(prefix.rstrip("/"))
        if not folder.is_dir():
            return
        pending = [folder]
        while pending:
            directory = pending.pop()
            try:
                with os.scandir(directory) as entries:
                    listed = list(entries)
            except OSError as error:
                if directory == folder:
                    raise
                yield directory, None, f"unreadable_folder: {_why(error)}"
                continue
            for entry in listed:
                path = Path(entry.path)
                if entry.name.startswith(TEMP_PREFIX):
                    # This adapter's in-flight writes; listed as unusable, never loaded.
                    yield (
                        path,
                        None,
                        f"reserved_name: {TEMP_PREFIX}* names the lake's own temporary files",
                    )
                    continue
                try:
                    status = entry.stat(follow_symlinks=False)
                except OSError as error:  # vanished meanwhile, or not even stat-able
                    if not isinstance(error, FileNotFoundError):
                        yield path, None, f"unreadable: {_why(error)}"
                    continue
                if stat.S_ISLNK(status.st_mode):
                    yield path, status, "symlink: links are not followed; drop the file itself"
                elif stat.S_ISDIR(status.st_mode):
                    pending.append(path)
                elif stat.S_ISREG(status.st_mode):
                    yield path, status, None
                else:
                    yield path, status, "special_file: not a regular file"


#: The rename of ``move`` (tests replace it to play a move across two filesystems).
_os_rename = os.rename


def _info(key: str, status: os.stat_result) -> ObjectInfo:
    return ObjectInfo(
        key=key,
        size_bytes=status.st_size,
        modified_at=datetime.fromtimestamp(status.st_mtime, UTC),
        version=_version(status),
    )


def _version(status: os.stat_result) -> str:
    # Any write changes the mtime or the ctime (which no user can set back), and a
    # replacement (a new file renamed over the old) changes the inode.
    return (
        f"{status.st_dev}:{status.st_ino}:{status.st_size}:"
        f"{status.st_mtime_ns}:{status.st_ctime_ns}"
    )


def _unchanged(path: Path, before: os.stat_result) -> bool:
    """Whether the file at ``path`` is still the one ``before`` describes, unwritten.

    A rename changes the ctime, so only the device, inode, size and mtime are compared.
    """
    after = path.lstat()
    return (after.st_dev, after.st_ino, after.st_size, after.st_mtime_ns) == (
        before.st_dev,
        before.st_ino,
        before.st_size,
        before.st_mtime_ns,
    )


def _why(error: OSError) -> str:
    return error.strerror or type(error).__name__


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
