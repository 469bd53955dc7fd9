"""Local platform adapters: filesystem storage, SQLite catalogue, DuckDB SQL, file lock."""

from __future__ import annotations

from pathlib import Path

from ecommerce_lakehouse.domain.errors import ConfigurationError
from ecommerce_lakehouse.settings import LakeSettings
from ecommerce_lakehouse_local.catalogue import SqliteCatalogue
from ecommerce_lakehouse_local.containers import LocalPlatformContainer
from ecommerce_lakehouse_local.lock import FileLakeLock
from ecommerce_lakehouse_local.query import DuckDbQueryService
from ecommerce_lakehouse_local.storage import LocalObjectStorage

__all__ = [
    "DuckDbQueryService",
    "FileLakeLock",
    "LocalObjectStorage",
    "LocalPlatformContainer",
    "SqliteCatalogue",
    "platform_container",
]


def platform_container(root: str, settings: LakeSettings) -> LocalPlatformContainer:
    """The container of a lake directory (entry point ``local``).

    The directory need not exist yet: it is created by the first write.

    Args:
        root: the lake directory (``~`` is expanded; a ``file://`` prefix is accepted).
        settings: the lake's settings; the local adapters need none of them.

    Raises:
        ConfigurationError: the root is a URI of another scheme, or an existing file.
    """
    path = root.removeprefix("file://")
    if not path.strip():
        raise ConfigurationError("the lake root must not be empty")
    if "://" in path:
        raise ConfigurationError(
            f"the local platform needs a directory, not {root!r} (s3:// roots use 'aws')"
        )
    directory = Path(path).expanduser()
    if directory.exists() and not directory.is_dir():
        raise ConfigurationError(f"the lake root {root!r} is a file, not a directory")
    container = LocalPlatformContainer()
    container.config.root.from_value(str(directory))
    return container
