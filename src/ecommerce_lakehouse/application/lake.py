"""The library facade and composition root: ``open_lake`` and the :class:`Lake` it returns.

``open_lake(root, engine=...)`` reads the :class:`LakeSettings` (options, then the
environment), takes the platform container of the root's kind (``local`` for a directory,
``aws`` for ``s3://``) and the engine's container, picks the query service, and hands the
ports to the use cases. The containers are found by those names in the entry-point groups
``ecommerce_lakehouse.platforms`` and ``ecommerce_lakehouse.engines``, where a third-party
engine registers its own (docs/architecture.md#wiring).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from importlib.metadata import entry_points
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ecommerce_lakehouse.application.ingest_log import run_metadata
from ecommerce_lakehouse.application.lake_report import LakeReport, ReportLake
from ecommerce_lakehouse.application.maintenance import (
    MIN_RETAIN_HOURS,
    MaintainTables,
    MaintenanceResult,
)
from ecommerce_lakehouse.application.pipeline import RunPipeline
from ecommerce_lakehouse.application.quarantine import QuarantineStatus, quarantine_status
from ecommerce_lakehouse.application.query_tables import version_at
from ecommerce_lakehouse.application.rollback import ForgetResult, RestoreResult, Rollback
from ecommerce_lakehouse.application.run import (
    ProgressCallback,
    RunOptions,
    RunResult,
    new_run_id,
    no_progress,
    utc_now,
)
from ecommerce_lakehouse.application.tables import (
    DescribeTables,
    EnsureTables,
    TableInfo,
    naming_the_table,
    table_ref,
)
from ecommerce_lakehouse.application.validate import ValidateTables
from ecommerce_lakehouse.domain.errors import ConfigurationError, LakehouseError
from ecommerce_lakehouse.domain.validation import CheckResult, ValidationPolicy
from ecommerce_lakehouse.ports.engine import CommitRecord, TableEngine
from ecommerce_lakehouse.ports.platform import (
    EngineContainer,
    EngineFactory,
    Platform,
    PlatformContainer,
    PlatformFactory,
    QueryServiceFactory,
)
from ecommerce_lakehouse.ports.query import QueryService
from ecommerce_lakehouse.settings import LakeSettings, read_settings

if TYPE_CHECKING:
    # For type checkers only, as in ports/query.py: the core never imports pyarrow.
    import pyarrow as pa

ENGINE_GROUP = "ecommerce_lakehouse.engines"
PLATFORM_GROUP = "ecommerce_lakehouse.platforms"
QUERY_SERVICE_GROUP = "ecommerce_lakehouse.query_services"
_KINDS = {ENGINE_GROUP: "engine", PLATFORM_GROUP: "platform", QUERY_SERVICE_GROUP: "query service"}


class Lake:
    """One lake root, with the engine and platform adapters chosen for it."""

    def __init__(
        self,
        *,
        engine: TableEngine[Any],
        platform: Platform,
        settings: LakeSettings | None = None,
        resources: EngineContainer | None = None,
    ) -> None:
        self.engine = engine
        self.platform = platform
        self.settings = settings or LakeSettings()
        self._resources = resources
        self._closed = False

    def close(self) -> None:
        """Release what opening the lake started; a closed lake refuses further work.

        The last open lake out stops a Spark session that a lake started.
        """
        self._closed = True
        if self._resources is not None:
            self._resources.shutdown_resources()
            self._resources = None

    def _check_open(self) -> None:
        if self._closed:
            raise LakehouseError(f"the lake {self.root} is closed: open it again")

    def __enter__(self) -> Lake:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def root(self) -> str:
        """The lake root URI."""
        return self.platform.storage.root_uri

    def run(
        self, options: RunOptions | None = None, *, progress: ProgressCallback = no_progress
    ) -> RunResult:
        """Run the whole pipeline (discover, ingest, archive, catalogue, validate, report).

        Without options the lake's settings give them (:meth:`run_options`).
        """
        self._check_open()
        pipeline = RunPipeline(engine=self.engine, platform=self.platform, progress=progress)
        return pipeline(options or self.run_options())

    def run_options(self) -> RunOptions:
        """The run options the lake's settings give (evolution, severities, lock, compaction)."""
        return RunOptions(
            evolution=self.settings.schema_evolution,
            policy=ValidationPolicy(foreign_key_severity=self.settings.fk_severity),
            lock_timeout_seconds=self.settings.lock_timeout,
            compact_min_files=self.settings.compact_min_files,
        )

    def validate(
        self,
        policy: ValidationPolicy | None = None,
        *,
        lock_timeout_seconds: float | None = None,
        full: bool = False,
    ) -> list[CheckResult]:
        """Run the table validation checks only, recording them under a new run id.

        The policy and lock timeout default to the lake's settings. The checks are scoped to
        the rows written since the last validation when that gives the full checks' results,
        and run over whole tables otherwise or with ``full`` (docs/contract.md#validation).
        """
        self._check_open()
        defaults = self.run_options()
        policy = policy or defaults.policy
        if lock_timeout_seconds is None:
            lock_timeout_seconds = defaults.lock_timeout_seconds
        run_id = new_run_id(utc_now())
        with self.platform.lock.acquire(owner=run_id, timeout_seconds=lock_timeout_seconds):
            EnsureTables(self.engine, self.platform.storage)(run_metadata(run_id))
            validate = ValidateTables(self.platform.query, self.engine, self.platform.storage)
            return validate(run_id, policy, full=full)

    def sql(self, query: str, *, as_of: Mapping[str, int | datetime] | None = None) -> pa.Table:
        """Run SQL over the lake's tables; the result is a ``pyarrow.Table``.

        ``as_of`` pins tables to a Delta version, or to the version they had at an instant
        (an aware ``datetime``; a naive one is UTC), as ``TIMESTAMP AS OF`` does.
        """
        self._check_open()
        versions: dict[str, int] = {}
        for name, pin in (as_of or {}).items():
            if isinstance(pin, datetime):
                moment = pin if pin.tzinfo else pin.replace(tzinfo=UTC)
                pin = version_at(name, self.history(name), moment)
            versions[name] = pin
        return self.platform.query.sql(query, as_of=None if as_of is None else versions)

    def history(self, table: str, limit: int | None = None) -> list[CommitRecord]:
        """The Delta history of a table, newest first."""
        self._check_open()
        ref = table_ref(self.platform.storage, table)
        with naming_the_table(ref):
            return self.engine.history(ref, limit)

    def optimize(self, tables: Sequence[str] | None = None) -> MaintenanceResult:
        """Compact the small files of the named tables (all when None).

        See docs/contract.md#maintenance.
        """
        self._check_open()
        return MaintainTables(self.engine, self.platform).optimize(
            tables, self.settings.lock_timeout
        )

    def vacuum(
        self, tables: Sequence[str] | None = None, *, retain_hours: int = MIN_RETAIN_HOURS
    ) -> MaintenanceResult:
        """Delete the files older versions alone read, in the named tables (all when None).

        Versions older than ``retain_hours`` (at least a week) can no longer be read.
        """
        self._check_open()
        return MaintainTables(self.engine, self.platform).vacuum(
            tables, retain_hours, self.settings.lock_timeout
        )

    def restore(
        self, table: str, *, version: int | None = None, timestamp: datetime | None = None
    ) -> RestoreResult:
        """Return a curated table to an earlier version, keeping ``ingest_log`` in line.

        Give the ``version`` or the ``timestamp`` (an aware ``datetime``; a naive one is UTC)
        whose version to return to. The loads the table no longer holds are logged
        ``rolled_back``, so validation keeps passing and their files can be loaded again
        (docs/contract.md#rollback-and-reprocessing).
        """
        self._check_open()
        if timestamp is not None and timestamp.tzinfo is None:
            timestamp = timestamp.replace(tzinfo=UTC)
        return Rollback(self.engine, self.platform).restore(
            table, version=version, moment=timestamp, lock_timeout=self.settings.lock_timeout
        )

    def forget(self, files: Sequence[str]) -> ForgetResult:
        """Let the next run load these loaded files' contents again (rows stay as they are).

        Each file is its ``raw-data/`` key, the key its run moved it to, or its checksum.
        """
        self._check_open()
        return Rollback(self.engine, self.platform).forget(
            files, lock_timeout=self.settings.lock_timeout
        )

    def reprocess(self, files: Sequence[str]) -> ForgetResult:
        """:meth:`forget` the files and move each back to its ``raw-data/`` key."""
        self._check_open()
        return Rollback(self.engine, self.platform).forget(
            files, lock_timeout=self.settings.lock_timeout, reprocess=True
        )

    def tables(self) -> list[TableInfo]:
        """Every table of the lake, curated first, with its location, version and rows."""
        self._check_open()
        return DescribeTables(self.engine, self.platform.storage, self.platform.query)()

    def quarantine(self) -> list[QuarantineStatus]:
        """Each source file with quarantined rows, and how many of them a later run loaded.

        Read-only, like :meth:`sql` (docs/contract.md#quarantine-list).
        """
        self._check_open()
        return quarantine_status(self.platform.query)

    def report(self) -> LakeReport:
        """What ``lakehouse report`` shows: runs, files, quarantine, drift, checks, tables.

        Read-only and lock-free, like :meth:`sql`; bounded (docs/contract.md#lake-report).
        """
        self._check_open()
        return ReportLake(self.engine, self.platform.storage, self.platform.query)()


def open_lake(
    root: str,
    *,
    engine: str | None = None,
    options: Mapping[str, str | None] | None = None,
    settings: LakeSettings | None = None,
) -> Lake:
    """Open a lake root: its platform's and engine's adapters, composed.

    Args:
        root: a directory or an ``s3://bucket[/prefix]`` URI.
        engine: ``polars`` (the embedded default) or another installed engine; overrides
            the ``engine`` setting.
        options: settings by name (docs/settings.md: ``glue_database``, ``query``,
            ``region``, ...), read like flags: they win over ``LAKEHOUSE_*`` variables.
        settings: settings already read (a composition root that read them itself);
            ``options`` and the environment are then not read.

    Raises:
        ConfigurationError: the root is empty, a setting is invalid, or an adapter is not
            installed.
    """
    if not root or not root.strip():
        raise ConfigurationError("the lake root must not be empty")
    if settings is None:
        settings = read_settings(LakeSettings, dict(options or {}), os.environ)
    if engine is not None:
        settings = replace(settings, engine=engine)
    kind = "aws" if root.startswith("s3://") else "local"
    platform = load_platform(kind)(root, settings)
    storage = platform.storage()
    engines = load_engine(settings.engine)(settings, storage)
    try:
        query = _query_service(settings, platform, engines)
        ports = Platform(
            storage=storage, catalogue=platform.catalogue(), query=query, lock=platform.lock()
        )
        table_engine = engines.engine()
    except BaseException:
        engines.shutdown_resources()
        raise
    return Lake(engine=table_engine, platform=ports, settings=settings, resources=engines)


def _query_service(
    settings: LakeSettings, platform: PlatformContainer, engines: EngineContainer
) -> QueryService:
    # The query setting, else the engine's own SQL (Spark SQL), else DuckDB on this machine.
    # A service neither the engine nor the platform provides (Trino) is its own package's.
    own = engines.query_services()
    name = settings.query or (own or ("duckdb",))[0]
    owner: Any = engines if name in own else platform
    provider = getattr(owner, name, None)
    if provider is None:
        if name == "spark":
            raise ConfigurationError(
                "query 'spark' runs SQL in the Spark engine's session: choose the engine "
                "spark (--engine spark), or the query service duckdb or athena"
            )
        if name == "athena":
            raise ConfigurationError(f"query '{name}' needs an s3:// lake (Amazon Athena)")
        return load_query_service(name)(settings, platform.storage())
    service: QueryService = provider()
    return service


def load_platform(name: str) -> PlatformFactory:
    """The factory of the platform registered as ``name`` (``local``, ``aws``), imported now.

    Raises:
        ConfigurationError: no such platform is installed, or it cannot be imported.
    """
    factory: PlatformFactory = _load(PLATFORM_GROUP, name)
    return factory


def load_engine(name: str) -> EngineFactory:
    """The factory of the engine registered as ``name`` (``polars``, ``spark``), imported now.

    Raises:
        ConfigurationError: no such engine is installed, or it cannot be imported.
    """
    factory: EngineFactory = _load(ENGINE_GROUP, name)
    return factory


def load_query_service(name: str) -> QueryServiceFactory:
    """The factory of the query service registered as ``name`` (``trino``), imported now.

    Raises:
        ConfigurationError: no such query service is installed, or it cannot be imported.
    """
    factory: QueryServiceFactory = _load(QUERY_SERVICE_GROUP, name)
    return factory


def _load(group: str, name: str) -> Any:
    found = {ep.name: ep for ep in entry_points(group=group)}
    if name not in found:
        available = ", ".join(sorted(found)) or "none installed"
        kind = _KINDS[group]
        hint = f"; install ecommerce-lakehouse-{name}" if group == QUERY_SERVICE_GROUP else ""
        raise ConfigurationError(f"unknown {kind} {name!r} (available: {available}{hint})")
    try:
        return found[name].load()
    except (ImportError, AttributeError) as error:
        raise ConfigurationError(
            f"the '{name}' adapter is installed but cannot be imported: {error}"
        ) from error
