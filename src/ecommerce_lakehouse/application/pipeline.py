"""The pipeline: one step definition, and the in-process runner that executes it.

See docs/contract.md#pipeline.

``PIPELINE`` is the single source of truth for the steps and their order; the in-process
runner below and the Step Functions builder both walk it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Generic

from ecommerce_lakehouse.application.archive import ArchiveFiles
from ecommerce_lakehouse.application.compaction import (
    CompactTouchedPartitions,
    compaction_metadata,
)
from ecommerce_lakehouse.application.discover import DiscoverFiles
from ecommerce_lakehouse.application.ingest import IngestFiles
from ecommerce_lakehouse.application.register import RegisterTables
from ecommerce_lakehouse.application.run import (
    Clock,
    DiscoveredFile,
    FileOutcome,
    ProgressCallback,
    RunOptions,
    RunResult,
    new_run_id,
    no_progress,
    utc_now,
)
from ecommerce_lakehouse.application.tables import CompactAuditTables, curated_ref
from ecommerce_lakehouse.application.validate import ValidateTables
from ecommerce_lakehouse.domain.errors import ConfigurationError, LakehouseError, describe_error
from ecommerce_lakehouse.domain.schemas import SCHEMAS
from ecommerce_lakehouse.domain.types import FileStatus
from ecommerce_lakehouse.domain.validation import CheckResult
from ecommerce_lakehouse.domain.zones import ZonePaths, run_record_key
from ecommerce_lakehouse.ports.engine import FrameT, RunContext, TableEngine
from ecommerce_lakehouse.ports.platform import Platform


@dataclass(frozen=True, slots=True, kw_only=True)
class Step:
    """One pipeline step.

    Attributes:
        name: stable identifier (also the Step Functions state name stem).
        summary: what the step does, for progress displays and state comments.
    """

    name: str
    summary: str


PIPELINE: tuple[Step, ...] = (
    Step(name="discover", summary="list raw CSV drops with entity, size and checksum"),
    Step(
        name="ingest",
        summary="read, quarantine, dedup and MERGE " + ", ".join(s.name for s in SCHEMAS),
    ),
    Step(name="archive", summary="move committed files to archive/ and rejected ones to rejected/"),
    Step(name="catalogue", summary="register the tables in the catalogue"),
    Step(name="validate", summary="run the SQL integrity checks"),
    Step(name="report", summary="summarise files, row counts and checks"),
)


def selected_steps(names: Sequence[str] | None) -> tuple[Step, ...]:
    """The steps of ``PIPELINE`` named (all when None), in pipeline order.

    Raises:
        ConfigurationError: a name is not a pipeline step, or none is given.
    """
    if names is None:
        return PIPELINE
    known = {step.name for step in PIPELINE}
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise ConfigurationError(
            f"unknown pipeline step(s) {', '.join(repr(n) for n in unknown) or '(none given)'}"
            f" (steps: {', '.join(s.name for s in PIPELINE)})"
        )
    return tuple(step for step in PIPELINE if step.name in set(names))


@dataclass(slots=True)
class _RunState:
    run_id: str
    started_at: datetime
    files: list[DiscoveredFile] = field(default_factory=list)
    outcomes: list[FileOutcome] = field(default_factory=list)
    checks: list[CheckResult] = field(default_factory=list)
    failed_step: str | None = None
    error: str | None = None
    archived: bool = False
    compacted: dict[str, int] = field(default_factory=dict)
    compaction_error: str | None = None


class RunPipeline(Generic[FrameT]):
    """Run every step of ``PIPELINE`` in process, holding the lake lock throughout."""

    def __init__(
        self,
        *,
        engine: TableEngine[FrameT],
        platform: Platform,
        clock: Clock = utc_now,
        progress: ProgressCallback = no_progress,
    ) -> None:
        self._engine = engine
        self._platform = platform
        self._clock = clock
        self._progress = progress

    def __call__(self, options: RunOptions | None = None) -> RunResult:
        """Run the pipeline once.

        Raises:
            ConfigurationError: ``options.steps`` names a step that does not exist.
            LockTimeout: another run held the lake for longer than the timeout.
        """
        options = options or RunOptions()
        steps = selected_steps(options.steps)
        started = self._clock()
        state = _RunState(run_id=options.run_id or new_run_id(started), started_at=started)
        handlers = [(step, self._handler(step)) for step in steps]
        seconds: dict[str, float] = {}
        with self._platform.lock.acquire(
            owner=state.run_id, timeout_seconds=options.lock_timeout_seconds
        ):
            self._remove_stale_temporaries()
            for step, handler in handlers:
                self._progress(step.name, step.summary)
                began = time.monotonic()
                try:
                    handler(state, options)
                except Exception as error:  # reported in the result: exit 1
                    state.failed_step = step.name
                    state.error = describe_error(error)
                    self._progress(step.name, f"failed: {state.error}")
                    break
                finally:
                    seconds[step.name] = round(time.monotonic() - began, 3)
            if not state.archived and any(step.name == "archive" for step in steps):
                # The run stopped before its archive step: every file is still where it was.
                state.outcomes = [replace(o, destination=None) for o in state.outcomes]
            result = RunResult(
                run_id=state.run_id,
                lake_root=self._platform.storage.root_uri,
                engine=self._engine.name,
                started_at=started,
                finished_at=self._clock(),
                files=tuple(state.outcomes),
                checks=tuple(state.checks),
                tables={s.name: curated_ref(self._platform.storage, s).uri for s in SCHEMAS},
                failed_step=state.failed_step,
                error=state.error,
                options=options.as_dict(),
                step_seconds=seconds,
                compacted=state.compacted,
                compaction_error=state.compaction_error,
            )
            problem = self._write_record(result)
        return result if problem is None else replace(result, record_error=problem)

    def _write_record(self, result: RunResult) -> str | None:
        # Every run leaves its record, whoever started it (docs/contract.md#run-result);
        # a record that cannot be written loses nothing the audit tables do not hold, so
        # the run's outcome stands and the result warns of it.
        key = run_record_key(result.run_id)
        try:
            self._platform.storage.write_bytes(key, json.dumps(result.as_dict()).encode())
        except Exception as error:
            problem = f"could not write the run record {key}: {describe_error(error)}"
            self._progress("report", problem)
            return problem
        return None

    def _handler(self, step: Step) -> Callable[[_RunState, RunOptions], None]:
        # Each step runs the method named after it, so PIPELINE alone names and orders them.
        handler: Callable[[_RunState, RunOptions], None] = getattr(self, f"_{step.name}")
        return handler

    def _remove_stale_temporaries(self) -> None:
        # We hold the lake lock, so every temporary file older than now is a dead run's.
        try:
            removed = self._platform.storage.remove_stale_temporaries(utc_now())
        except OSError as error:  # housekeeping only: never a reason to stop the run
            self._progress("discover", f"could not remove stale temporary files: {error}")
            return
        if removed:
            self._progress(
                "discover", f"removed {len(removed)} temporary file(s) left by a crashed run"
            )

    def _discover(self, state: _RunState, options: RunOptions) -> None:
        found = DiscoverFiles(
            self._platform.storage, settle_seconds=options.settle_seconds, clock=self._clock
        )()
        state.files = found.files
        state.outcomes.extend(found.set_aside)
        for outcome in found.set_aside:
            status = outcome.status.value
            self._progress("discover", f"{status} {outcome.file.key}: {outcome.error}")
        aside = f", {len(found.set_aside)} set aside" if found.set_aside else ""
        self._progress("discover", f"{len(state.files)} raw file(s){aside}")

    def _ingest(self, state: _RunState, options: RunOptions) -> None:
        ingest = IngestFiles(
            self._engine,
            self._platform.storage,
            self._platform.query,
            self._clock,
            self._progress,
        )
        run = RunContext(
            run_id=state.run_id, started_at=state.started_at, evolution=options.evolution
        )
        touched = ingest(state.files, state.outcomes, run)
        # After every entity's MERGE and log rows: compaction keeps every row, and failing
        # here loses nothing (the files are loaded and logged), so it is a warning.
        try:
            self._compact(state, options, touched)
        except Exception as error:
            state.compaction_error = describe_error(error)
            self._progress("ingest", f"compaction failed: {state.compaction_error}")

    def _compact(
        self, state: _RunState, options: RunOptions, touched: dict[str, tuple[str | None, ...]]
    ) -> None:
        curated = CompactTouchedPartitions(self._engine, self._platform.storage)(
            touched, options.compact_min_files, state.run_id
        )
        for name, removed in curated.items():
            self._progress(
                "ingest",
                f"compacted the touched partitions of {name}: {removed} small file(s) rewritten",
            )
        state.compacted.update(curated)
        # Last: it compacts this run's appends too.
        compacted = CompactAuditTables(self._engine, self._platform.storage)(
            options.compact_audit_min_files,
            compaction_metadata(state.run_id),
        )
        for name, removed in compacted.items():
            self._progress("ingest", f"compacted {name}: {removed} small file(s) rewritten")
        state.compacted.update(compacted)

    def _archive(self, state: _RunState, options: RunOptions) -> None:
        paths = ZonePaths(run_id=state.run_id, started_at=state.started_at)
        report = ArchiveFiles(self._platform.storage, self._progress).run(state.outcomes, paths)
        state.outcomes = report.outcomes
        state.archived = True
        if report.failures:
            # Every other file was moved; the step still fails so the run is not taken as ok.
            raise LakehouseError(
                f"could not archive {len(report.failures)} file(s): {report.failures[0]}"
            )

    def _catalogue(self, state: _RunState, options: RunOptions) -> None:
        RegisterTables(self._engine, self._platform.storage, self._platform.catalogue)()

    def _validate(self, state: _RunState, options: RunOptions) -> None:
        validate = ValidateTables(
            self._platform.query, self._engine, self._platform.storage, self._clock
        )
        # Scoped to the rows of the runs since the last validation when that gives the same
        # results as the full checks, in full otherwise (docs/contract.md#validation).
        state.checks = validate(state.run_id, options.policy)
        self._progress("validate", validate.scope.describe())

    def _report(self, state: _RunState, options: RunOptions) -> None:
        failed = [c for c in state.checks if c.fails_run]
        loaded = sum(1 for o in state.outcomes if o.status is FileStatus.LOADED)
        aside = sum(
            1 for o in state.outcomes if o.status in (FileStatus.WAITING, FileStatus.IGNORED)
        )
        self._progress(
            "report",
            f"{loaded}/{len(state.outcomes)} file(s) loaded, {aside} waiting or ignored, "
            f"{len(failed)} failing error check(s)",
        )
