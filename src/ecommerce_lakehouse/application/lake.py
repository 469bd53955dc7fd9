"""The library facade: ``open_lake(root, engine=...)`` and the :class:`Lake` it returns."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ecommerce_lakehouse.application.pipeline import RunPipeline
from ecommerce_lakehouse.application.platform import (
    Platform,
    load_engine_factory,
    load_platform_factory,
    platform_name_for,
)
from ecommerce_lakehouse.application.run import (
    ProgressCallback,
    RunOptions,
    RunResult,
    new_run_id,
    no_progress,
    utc_now,
)
from ecommerce_lakehouse.application.tables import EnsureTables, table_ref
from ecommerce_lakehouse.application.validate import ValidateTables
from ecommerce_lakehouse.domain.errors import ConfigurationError
from ecommerce_lakehouse.domain.validation import CheckResult, ValidationPolicy
from ecommerce_lakehouse.ports.engine import CommitRecord, TableEngine
from ecommerce_lakehouse.ports.query import TabularResult


class Lake:
    """One lake root, with the engine and platform adapters chosen for it."""

    def __init__(self, *, engine: TableEngine[Any], platform: Platform) -> None:
        self.engine = engine
        self.platform = platform

    @property
    def root(self) -> str:
        """The lake root URI."""
        return self.platform.storage.root_uri

    def run(
        self, options: RunOptions | None = None, *, progress: ProgressCallback = no_progress
    ) -> RunResult:
        """Run the whole pipeline (discover, ingest, archive, catalogue, validate, report)."""
        return RunPipeline(engine=self.engine, platform=self.platform, progress=progress)(options)

    def validate(
        self, policy: ValidationPolicy | None = None, *, lock_timeout_seconds: float = 60.0
    ) -> list[CheckResult]:
        """Run the table validation checks only, recording them under a new run id."""
        run_id = new_run_id(utc_now())
        with self.platform.lock.acquire(owner=run_id, timeout_seconds=lock_timeout_seconds):
            EnsureTables(self.engine, self.platform.storage)()
            validate = ValidateTables(self.platform.query, self.engine, self.platform.storage)
            return validate(run_id, policy)

    def sql(self, query: str, *, as_of: Mapping[str, int] | None = None) -> TabularResult:
        """Run SQL over the lake's tables (an Arrow table with the local adapters)."""
        return self.platform.query.sql(query, as_of=as_of)

    def history(self, table: str, limit: int | None = None) -> list[CommitRecord]:
        """The Delta history of a table, newest first."""
        return self.engine.history(table_ref(self.platform.storage, table), limit)


def open_lake(
    root: str,
    *,
    engine: str = "polars",
    platform: str | None = None,
    options: Mapping[str, str] | None = None,
) -> Lake:
    """Open a lake root with the named engine; adapters are found through entry points.

    Args:
        root: a directory or an ``s3://bucket[/prefix]`` URI.
        engine: ``polars`` (the embedded default) or another installed engine.
        platform: the platform adapters; chosen from the root and engine when None
            (``aws`` for ``s3://``, else ``<engine>-local`` when installed, else ``local``).
        options: adapter options (credentials, endpoints, ...).

    Raises:
        ConfigurationError: the root is empty or an adapter is not installed.
    """
    if not root or not root.strip():
        raise ConfigurationError("the lake root must not be empty")
    opts = dict(options or {})
    chosen = platform or platform_name_for(root, engine)
    built = load_platform_factory(chosen)(root, opts)
    table_engine = load_engine_factory(engine)(built.storage, opts)
    return Lake(engine=table_engine, platform=built)
