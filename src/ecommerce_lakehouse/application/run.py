"""Run identity, per-file outcomes and the typed result of a pipeline run."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from ecommerce_lakehouse.domain.audit import COUNT_FIELDS, IngestLogEntry, RowCounts
from ecommerce_lakehouse.domain.errors import ConfigurationError
from ecommerce_lakehouse.domain.schemas import NO_ENTITY, entity_named, entity_names
from ecommerce_lakehouse.domain.types import FileStatus, SchemaEvolution, Severity
from ecommerce_lakehouse.domain.validation import CheckResult, ValidationPolicy
from ecommerce_lakehouse.settings import DEFAULT_COMPACT_MIN_FILES, check_compact_min_files

Clock = Callable[[], datetime]
#: ``progress(step, message)``: long work reports what it is doing.
ProgressCallback = Callable[[str, str], None]


#: Version of the run result document (``RunResult.as_dict``); readers refuse newer ones.
RUN_RESULT_VERSION = 1

#: Default quiet period of a local lake's raw files (``RunOptions.settle_seconds``).
DEFAULT_SETTLE_SECONDS = 2.0
#: The longest quiet period a run accepts.
MAX_SETTLE_SECONDS = 3600.0


def utc_now() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def new_run_id(now: datetime) -> str:
    """A sortable, unique run id such as ``20261125T193800Z-3f9a1c``."""
    return f"{now.strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(3)}"


def no_progress(step: str, message: str) -> None:
    """A progress callback that reports nothing."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RunOptions:
    """Options of one run.

    Attributes:
        evolution: schema-evolution mode for unknown CSV columns.
        policy: validation severities.
        lock_timeout_seconds: how long to wait for another run to release the lake.
        run_id: a fixed run id (orchestrators pass theirs); generated when None.
        compact_audit_min_files: compact an audit table once it has this many files.
        compact_min_files: after the MERGEs, compact each partition of a curated table the
            run touched that holds this many data files or more; 0 never compacts.
        steps: the ``PIPELINE`` steps to run (in pipeline order); every step when None. An
            orchestrator that archives and validates in steps of its own runs only
            ``discover`` and ``ingest`` in its job.
        settle_seconds: quiet period of a local lake's raw files. A file changed more
            recently is watched until it is this old and, if it changed meanwhile, left in
            ``raw-data/`` as ``waiting`` for the next run. 0 takes every file as it is. S3
            objects appear whole and never wait.
    """

    evolution: SchemaEvolution = SchemaEvolution.RESCUE
    policy: ValidationPolicy = field(default_factory=ValidationPolicy)
    lock_timeout_seconds: float = 60.0
    run_id: str | None = None
    compact_audit_min_files: int = 32
    compact_min_files: int = DEFAULT_COMPACT_MIN_FILES
    steps: tuple[str, ...] | None = None
    settle_seconds: float = DEFAULT_SETTLE_SECONDS

    def as_dict(self) -> dict[str, object]:
        """The options as JSON-ready data, for a run's record (``options``)."""
        return {
            "schema_evolution": self.evolution.value,
            "fk_severity": self.policy.foreign_key_severity.value,
            "lock_timeout_seconds": self.lock_timeout_seconds,
            "settle_seconds": self.settle_seconds,
            "compact_audit_min_files": self.compact_audit_min_files,
            "compact_min_files": self.compact_min_files,
            "steps": None if self.steps is None else list(self.steps),
        }

    def __post_init__(self) -> None:
        if self.lock_timeout_seconds < 0:
            raise ValueError("lock_timeout_seconds must not be negative")
        if not 0 <= self.settle_seconds <= MAX_SETTLE_SECONDS:
            raise ValueError(f"settle_seconds must be between 0 and {MAX_SETTLE_SECONDS:g}")
        if self.compact_audit_min_files < 2:
            raise ValueError("compact_audit_min_files must be at least 2")
        check_compact_min_files(self.compact_min_files)


@dataclass(frozen=True, slots=True, kw_only=True)
class DiscoveredFile:
    """A raw CSV found in ``raw-data/`` at the start of a run.

    Attributes:
        key: its key in ``raw-data/``.
        entity: the entity its folder or name gives, one of the catalogue's (None when
            none does).
        size_bytes: its size when listed.
        checksum: the SHA-256 of its content.
        version: the store's version token when it was listed (see ``ObjectInfo``); a file
            whose token differs after it was parsed changed under the run.
    """

    key: str
    entity: str | None
    size_bytes: int
    checksum: str
    version: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        # The entity is logged, reported and becomes an archive folder: a catalogue name.
        if self.entity is not None and self.entity not in entity_names():
            raise ValueError(f"{self.key}: unknown entity {self.entity!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class FileOutcome:
    """What a run did with one raw file (one ``ingest_log`` row, plus where the file goes).

    ``destination`` is planned when the outcome is decided (the archive or rejected key the
    archive step moves the file to, logged in ``ingest_log``) and None for files that stay
    in ``raw-data/``. After the archive step it is None for a file that could not be moved.

    A loaded file whose header has columns not in the schema names them: under ``rescue``
    in ``rescued_columns`` (as written; kept in ``_rescued_data``), under
    ``add_new_columns`` in ``added_columns`` (the table columns that hold them).
    """

    file: DiscoveredFile
    status: FileStatus
    counts: RowCounts
    started_at: datetime
    finished_at: datetime
    error: str | None = None
    destination: str | None = None
    rescued_columns: tuple[str, ...] = ()
    added_columns: tuple[str, ...] = ()

    def log_entry(self, run_id: str) -> IngestLogEntry:
        """The ``ingest_log`` row of this outcome."""
        return IngestLogEntry(
            run_id=run_id,
            entity=self.file.entity or NO_ENTITY,
            source_path=self.file.key,
            size_bytes=self.file.size_bytes,
            checksum=self.file.checksum,
            status=self.status,
            counts=self.counts,
            started_at=self.started_at,
            finished_at=self.finished_at,
            error=self.error,
            destination=self.destination,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class RunResult:
    """The typed result of a run: per-file outcomes, checks and where the tables are.

    ``compacted`` holds, by table, the data files the run's own compaction rewrote (the
    partitions its MERGEs touched, the audit tables); tables it left alone are absent.
    ``compaction_error`` says why that compaction failed: a warning, not a failure, as the
    files are loaded and logged by then and the next run or ``lakehouse optimize`` retries.
    """

    run_id: str
    lake_root: str
    engine: str
    started_at: datetime
    finished_at: datetime
    files: tuple[FileOutcome, ...]
    checks: tuple[CheckResult, ...]
    tables: dict[str, str]
    failed_step: str | None = None
    error: str | None = None
    options: dict[str, object] = field(default_factory=dict)
    step_seconds: dict[str, float] = field(default_factory=dict)
    record_error: str | None = None
    compacted: dict[str, int] = field(default_factory=dict)
    compaction_error: str | None = None

    @property
    def failed_checks(self) -> tuple[CheckResult, ...]:
        """Error-severity checks that failed."""
        return tuple(c for c in self.checks if c.fails_run)

    @property
    def ok(self) -> bool:
        """True when no step failed, no file failed and no error-severity check failed.

        ``waiting`` and ``ignored`` files do not fail a run: they are reported (with their
        reason) and logged, and stay where they are.
        """
        return (
            self.failed_step is None
            and not self.failed_checks
            and all(f.status is not FileStatus.FAILED for f in self.files)
        )

    @property
    def exit_code(self) -> int:
        """0 when the run is ok, else 1 (docs/contract.md#command-line)."""
        return 0 if self.ok else 1

    @property
    def rejected(self) -> tuple[FileOutcome, ...]:
        """The files this run rejected (moved to ``rejected/``, their reason logged)."""
        return tuple(f for f in self.files if f.status is FileStatus.REJECTED)

    @property
    def warnings(self) -> tuple[str, ...]:
        """What an operator should look at in a run that is ok, one line each.

        Every rejected file, and every loaded file whose header has columns not in the
        schema (schema drift: kept in ``_rescued_data``, or under ``add_new_columns`` in
        columns added to the table). A rejected file does not fail
        the run (the other files load); ``lakehouse run --fail-on-rejected`` makes it fail
        (docs/contract.md#command-line).
        """
        rejected = (
            f"{f.file.key} was rejected: {f.error or 'no reason given'}; "
            + (f"moved to {f.destination}" if f.destination else "left in raw-data/")
            for f in self.rejected
        )
        drifted = (
            f"{f.file.key} has column(s) not in the schema: {', '.join(f.rescued_columns)}; "
            f"its {f.counts.rows_read} row(s) keep them in _rescued_data"
            for f in self.files
            if f.rescued_columns
        )
        added = (
            f"{f.file.key} has column(s) not in the schema, loaded into the added column(s) "
            f"{', '.join(f.added_columns)} of {f.file.entity}"
            for f in self.files
            if f.added_columns
        )
        compaction = (
            f"compaction failed, the rows are loaded (the next run or lakehouse optimize "
            f"retries): {self.compaction_error}"
            for _ in range(1 if self.compaction_error else 0)
        )
        record = (self.record_error,) if self.record_error else ()
        return (*rejected, *drifted, *added, *compaction, *record)

    def as_dict(self) -> dict[str, object]:
        """The run's JSON document: what ``--format json`` prints and the Glue job writes.

        Versioned (``version``, :data:`RUN_RESULT_VERSION`); :meth:`from_dict` reads it back.
        ``ok``, ``totals`` and ``warnings`` are derived, for readers that do not rebuild the
        result.
        """
        return {
            "version": RUN_RESULT_VERSION,
            "run_id": self.run_id,
            "lake_root": self.lake_root,
            "engine": self.engine,
            "ok": self.ok,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat(),
            "failed_step": self.failed_step,
            "error": self.error,
            "tables": dict(self.tables),
            "options": dict(self.options),
            "step_seconds": dict(self.step_seconds),
            "compacted": dict(self.compacted),
            "compaction_error": self.compaction_error,
            "totals": asdict(self.totals()),
            "files": [
                {
                    "source_path": f.file.key,
                    "entity": f.file.entity,
                    "status": f.status.value,
                    "checksum": f.file.checksum,
                    "size_bytes": f.file.size_bytes,
                    "destination": f.destination,
                    "error": f.error,
                    "rescued_columns": list(f.rescued_columns),
                    "added_columns": list(f.added_columns),
                    **asdict(f.counts),
                    "started_at": f.started_at.isoformat(),
                    "finished_at": f.finished_at.isoformat(),
                }
                for f in self.files
            ],
            "warnings": list(self.warnings),
            "checks": [c.as_dict() for c in self.checks],
        }

    @classmethod
    def from_dict(cls, document: object) -> RunResult:
        """Read back a document :meth:`as_dict` wrote (this version or an earlier one).

        Documents without ``version`` are version 1; without per-file times, the files take
        the run's. Derived fields (``ok``, ``totals``) are not read.

        Raises:
            ValueError: the document is not a run result, or a newer version wrote it; the
                message is one line naming the field.
        """
        try:
            return _run_result(_mapping(document, "the document"))
        except ConfigurationError as error:  # an unknown status, entity or severity
            raise ValueError(str(error)) from None

    def totals(self) -> RowCounts:
        """Row counts summed over every file."""
        return RowCounts(
            **{name: sum(getattr(f.counts, name) for f in self.files) for name in COUNT_FIELDS}
        )


def _run_result(result: Mapping[str, Any]) -> RunResult:
    version = result.get("version", 1)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ValueError("'version' is not a positive integer")
    if version > RUN_RESULT_VERSION:
        raise ValueError(
            f"the run result is version {version}, written by a newer release; this one reads "
            f"versions up to {RUN_RESULT_VERSION}"
        )
    started_at = _timestamp(result.get("started_at"), "started_at")
    finished_text = result.get("finished_at")
    finished_at = started_at if finished_text is None else _timestamp(finished_text, "finished_at")
    files, checks = result.get("files"), result.get("checks", [])
    if not isinstance(files, list):
        raise ValueError("'files' is not a list")
    if not isinstance(checks, list):
        raise ValueError("'checks' is not a list")
    tables = result.get("tables", {})
    if not isinstance(tables, Mapping) or not all(isinstance(v, str) for v in tables.values()):
        raise ValueError("'tables' is not an object of table URIs")
    return RunResult(
        run_id=_text(result, "run_id") or "",
        lake_root=_text(result, "lake_root", optional=True) or "",
        engine=_text(result, "engine", optional=True) or "",
        started_at=started_at,
        finished_at=finished_at,
        files=tuple(
            _file_outcome(_mapping(item, f"files[{n}]"), started_at, finished_at)
            for n, item in enumerate(files)
        ),
        checks=tuple(_check(_mapping(item, f"checks[{n}]")) for n, item in enumerate(checks)),
        tables={str(k): str(v) for k, v in tables.items()},
        failed_step=_text(result, "failed_step", optional=True),
        error=_text(result, "error", optional=True),
        options=dict(_mapping(result.get("options", {}), "'options'")),
        step_seconds={
            str(step): float(seconds)
            for step, seconds in _mapping(result.get("step_seconds", {}), "'step_seconds'").items()
            if isinstance(seconds, int | float) and not isinstance(seconds, bool)
        },
        compacted={
            str(table): files
            for table, files in _mapping(result.get("compacted", {}), "'compacted'").items()
            if isinstance(files, int) and not isinstance(files, bool)
        },
        compaction_error=_text(result, "compaction_error", optional=True),
    )


def _mapping(value: object, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ValueError(f"{what} is not a JSON object")
    return value


def _timestamp(value: object, name: str) -> datetime:
    if not isinstance(value, str):
        raise ValueError(f"'{name}' is not an ISO timestamp")
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"'{name}' is not an ISO timestamp") from None


def _text(item: Mapping[str, Any], name: str, *, optional: bool = False) -> str | None:
    value = item.get(name)
    if value in (None, "") and optional:
        return None
    if not isinstance(value, str) or not value:
        raise ValueError(f"'{name}' is missing or not text")
    return value


def _integer(item: Mapping[str, Any], name: str, what: str) -> int:
    value = item.get(name, 0)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{what}: '{name}' is not an integer")
    return value


def _file_outcome(
    item: Mapping[str, Any], started_at: datetime, finished_at: datetime
) -> FileOutcome:
    key = _text(item, "source_path") or ""
    what = f"file {key!r}"
    if "size_bytes" not in item:
        raise ValueError(f"{what}: 'size_bytes' is not an integer")
    entity = _text(item, "entity", optional=True)
    status = FileStatus.from_str(_text(item, "status") or "")
    # A file set aside at discovery (waiting, ignored) was never read: it has no checksum.
    unread = status in (FileStatus.WAITING, FileStatus.IGNORED)
    file_started = item.get("started_at")
    file_finished = item.get("finished_at")
    return FileOutcome(
        file=DiscoveredFile(
            key=key,
            entity=entity_named(entity) if entity else None,
            size_bytes=_integer(item, "size_bytes", what),
            checksum=_text(item, "checksum", optional=unread) or "",
        ),
        status=status,
        counts=RowCounts(**{name: _integer(item, name, what) for name in COUNT_FIELDS}),
        started_at=started_at if file_started is None else _timestamp(file_started, "started_at"),
        finished_at=finished_at
        if file_finished is None
        else _timestamp(file_finished, "finished_at"),
        error=_text(item, "error", optional=True),
        destination=_text(item, "destination", optional=True),
        rescued_columns=_names(item, "rescued_columns", what),
        added_columns=_names(item, "added_columns", what),
    )


def _names(item: Mapping[str, Any], name: str, what: str) -> tuple[str, ...]:
    value = item.get(name, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{what}: '{name}' is not a list of names")
    return tuple(value)


def _check(item: Mapping[str, Any]) -> CheckResult:
    what = f"check {item.get('check_name')!r}"
    passed, sample = item.get("passed"), item.get("sample", [])
    if not isinstance(passed, bool):
        raise ValueError(f"{what}: 'passed' is not a boolean")
    if not isinstance(sample, list):
        raise ValueError(f"{what}: 'sample' is not a list")
    return CheckResult(
        table_name=_text(item, "table_name") or "",
        check_name=_text(item, "check_name") or "",
        severity=Severity.from_str(_text(item, "severity") or ""),
        passed=passed,
        observed=_integer(item, "observed", what),
        expected=_integer(item, "expected", what),
        sample=tuple(str(v) for v in sample),
    )
