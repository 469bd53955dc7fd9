"""Run identity, per-file outcomes and the typed result of a pipeline run."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime

from ecommerce_lakehouse.domain.audit import COUNT_FIELDS, IngestLogEntry, RowCounts
from ecommerce_lakehouse.domain.types import Entity, FileStatus, SchemaEvolution
from ecommerce_lakehouse.domain.validation import CheckResult, ValidationPolicy

Clock = Callable[[], datetime]
#: ``progress(step, message)``: long work reports what it is doing.
ProgressCallback = Callable[[str, str], None]


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
    steps: tuple[str, ...] | None = None
    settle_seconds: float = DEFAULT_SETTLE_SECONDS

    def __post_init__(self) -> None:
        if self.lock_timeout_seconds < 0:
            raise ValueError("lock_timeout_seconds must not be negative")
        if not 0 <= self.settle_seconds <= MAX_SETTLE_SECONDS:
            raise ValueError(f"settle_seconds must be between 0 and {MAX_SETTLE_SECONDS:g}")
        if self.compact_audit_min_files < 2:
            raise ValueError("compact_audit_min_files must be at least 2")


@dataclass(frozen=True, slots=True, kw_only=True)
class DiscoveredFile:
    """A raw CSV found in ``raw-data/`` at the start of a run.

    Attributes:
        key: its key in ``raw-data/``.
        entity: the entity its folder or name gives (None when none does).
        size_bytes: its size when listed.
        checksum: the SHA-256 of its content.
        version: the store's version token when it was listed (see ``ObjectInfo``); a file
            whose token differs after it was parsed changed under the run.
    """

    key: str
    entity: Entity | None
    size_bytes: int
    checksum: str
    version: str | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class FileOutcome:
    """What a run did with one raw file (one ``ingest_log`` row, plus where the file goes).

    ``destination`` is planned when the outcome is decided (the archive or rejected key the
    archive step moves the file to, logged in ``ingest_log``) and None for files that stay
    in ``raw-data/``. After the archive step it is None for a file that could not be moved.
    """

    file: DiscoveredFile
    status: FileStatus
    counts: RowCounts
    started_at: datetime
    finished_at: datetime
    error: str | None = None
    destination: str | None = None

    def log_entry(self, run_id: str) -> IngestLogEntry:
        """The ``ingest_log`` row of this outcome."""
        return IngestLogEntry(
            run_id=run_id,
            entity=self.file.entity.value if self.file.entity else "unknown",
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

    def moved_to(self, destination: str) -> FileOutcome:
        """This outcome once the file was moved out of ``raw-data/``."""
        return replace(self, destination=destination)


@dataclass(frozen=True, slots=True, kw_only=True)
class RunResult:
    """The typed result of a run: per-file outcomes, checks and where the tables are."""

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

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready summary that orchestrators and ``--format json`` pass on."""
        return {
            "run_id": self.run_id,
            "lake_root": self.lake_root,
            "engine": self.engine,
            "ok": self.ok,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat(),
            "failed_step": self.failed_step,
            "error": self.error,
            "tables": dict(self.tables),
            "totals": asdict(self.totals()),
            "files": [
                {
                    "source_path": f.file.key,
                    "entity": f.file.entity.value if f.file.entity else None,
                    "status": f.status.value,
                    "checksum": f.file.checksum,
                    "size_bytes": f.file.size_bytes,
                    "destination": f.destination,
                    "error": f.error,
                    **asdict(f.counts),
                }
                for f in self.files
            ],
            "checks": [
                {
                    "table_name": c.table_name,
                    "check_name": c.check_name,
                    "severity": c.severity.value,
                    "passed": c.passed,
                    "observed": c.observed,
                    "expected": c.expected,
                    "sample": list(c.sample),
                }
                for c in self.checks
            ],
        }

    def totals(self) -> RowCounts:
        """Row counts summed over every file."""
        return RowCounts(
            **{name: sum(getattr(f.counts, name) for f in self.files) for name in COUNT_FIELDS}
        )
