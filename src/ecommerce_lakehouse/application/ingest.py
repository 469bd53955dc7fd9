"""The ingest step: read, quarantine, dedup and MERGE the raw files, and log every file.

See docs/contract.md#pipeline and docs/adr/0002-audit-write-order.md for the write order.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Generic

from ecommerce_lakehouse.application.archive import DestinationPlan, LoggedDestination
from ecommerce_lakehouse.application.ingest_log import (
    META_ENTITY,
    META_FILES,
    META_RUN_ID,
    append_ingest_log,
    run_metadata,
)
from ecommerce_lakehouse.application.reconcile import ReconcileInterruptedRuns
from ecommerce_lakehouse.application.rollback import loaded_contents
from ecommerce_lakehouse.application.run import (
    Clock,
    DiscoveredFile,
    FileOutcome,
    ProgressCallback,
    no_progress,
    utc_now,
)
from ecommerce_lakehouse.application.tables import EnsureTables, audit_ref, curated_ref
from ecommerce_lakehouse.domain.audit import INGEST_LOG, QUARANTINE, RowCounts
from ecommerce_lakehouse.domain.errors import FileRejected, describe_error
from ecommerce_lakehouse.domain.schemas import SCHEMAS, TableSchema
from ecommerce_lakehouse.domain.types import FileStatus
from ecommerce_lakehouse.domain.zones import ZonePaths
from ecommerce_lakehouse.ports.engine import FrameT, RunContext, SourceFile, TableEngine
from ecommerce_lakehouse.ports.query import QueryService
from ecommerce_lakehouse.ports.storage import ObjectStorage

#: Why a file that changed while it was read waits for the next run.
CHANGED_WHILE_READ = (
    "changed_while_read: the file was written or replaced while the run read it; left in "
    "raw-data/ for the next run"
)

#: Why a file whose folder and name name no entity is rejected.
UNKNOWN_ENTITY = (
    "unknown_entity: the folder or file name names no entity "
    f"({', '.join(schema.name for schema in SCHEMAS)})"
)

#: The reason's name of a ``skipped`` file: its content was loaded before (by the run named).
ALREADY_LOADED = "already_loaded"


class IngestFiles(Generic[FrameT]):
    """Ingest the discovered files and log every file in ``ingest_log`` (the ingest step).

    In order (docs/adr/0002-audit-write-order.md): make sure every table exists; log the
    files interrupted runs committed but did not log; read which checksums earlier runs
    loaded (so reconciled files are skipped); then per entity append quarantine rows, commit
    the MERGE and log that entity's files; last, log the files the run does not take
    (discovery's waiting and ignored ones, and those naming no entity, rejected).
    """

    def __init__(
        self,
        engine: TableEngine[FrameT],
        storage: ObjectStorage,
        query: QueryService,
        clock: Clock = utc_now,
        progress: ProgressCallback = no_progress,
    ) -> None:
        self._engine = engine
        self._storage = storage
        self._query = query
        self._clock = clock
        self._progress = progress

    def __call__(
        self,
        files: Sequence[DiscoveredFile],
        outcomes: list[FileOutcome],
        run: RunContext,
    ) -> dict[str, tuple[str | None, ...]]:
        """Ingest ``files``, appending each file's outcome to ``outcomes``.

        Args:
            files: the raw files discovery took, in name order.
            outcomes: on entry, the outcomes of the files discovery set aside (waiting,
                ignored), logged here with the run's. Extended in place as outcomes are
                decided, so a step that fails part-way still reports what it did.
            run: the run this ingestion belongs to.

        Returns:
            By curated table, the partitions its MERGE touched (tables with none absent).
        """
        created = EnsureTables(self._engine, self._storage)(run_metadata(run.run_id))
        # A ledger this run created holds no rows: nothing was loaded or archived before
        # (on Spark, the three reads cost seconds of a first run).
        new_ledger = INGEST_LOG.name in created
        now = self._clock()
        untaken = list(outcomes)
        unknown = [
            FileOutcome(
                file=f,
                status=FileStatus.REJECTED,
                counts=RowCounts(),
                started_at=now,
                finished_at=now,
                error=UNKNOWN_ENTITY,
            )
            for f in files
            if f.entity is None
        ]
        # Before the loaded checksums are read, so files an interrupted run committed are
        # skipped, not loaded twice.
        recovered = ReconcileInterruptedRuns(self._engine, self._storage, self._query, self._clock)(
            run.run_id, created
        )
        if recovered:
            runs = ", ".join(sorted({e.run_id for e in recovered}))
            self._progress("ingest", f"logged {len(recovered)} file(s) committed by run {runs}")
        checksums = {} if new_ledger else loaded_contents(self._query)
        plan = DestinationPlan(
            ZonePaths(run_id=run.run_id, started_at=run.started_at),
            (f.key for f in files),
            [] if new_ledger else self._logged_destinations(),
        )
        rejected = [plan.planned(o) for o in unknown]
        untaken.extend(rejected)
        outcomes.extend(rejected)
        ingest = _IngestEntity(self._engine, self._storage, self._clock, self._progress)
        for schema in SCHEMAS:
            taken = [f for f in files if f.entity == schema.entity]
            if taken:
                self._progress("ingest", f"{schema.name}: {len(taken)} file(s)")
                outcomes.extend(ingest(schema, taken, run, checksums, plan))
        # Files the run did not take are logged too: nothing in raw-data/ goes uncounted.
        append_ingest_log(
            self._engine, self._storage, [o.log_entry(run.run_id) for o in untaken], run.run_id
        )
        return dict(ingest.touched)

    def _logged_destinations(self) -> list[LoggedDestination]:
        """Every destination earlier runs logged, with the file content and key it was for."""
        rows = self._query.sql(
            "SELECT checksum, source_path, destination, MIN(started_at) AS first_logged "
            "FROM ingest_log WHERE destination IS NOT NULL "
            "GROUP BY checksum, source_path, destination"
        ).to_pylist()
        return [
            LoggedDestination(
                checksum=str(row["checksum"]),
                source_path=str(row["source_path"]),
                destination=str(row["destination"]),
                first_logged=row["first_logged"],
            )
            for row in rows
        ]


@dataclass(frozen=True, slots=True)
class _Read(Generic[FrameT]):
    frame: FrameT | None
    rejection: FileRejected | None
    started_at: datetime


@dataclass(frozen=True, slots=True)
class _Readable:
    file: DiscoveredFile
    started_at: datetime


def _staged(counts: RowCounts) -> dict[str, int]:
    return {
        "rows_read": counts.rows_read,
        "duplicates_in_batch": counts.duplicates_in_batch,
        "quarantined": counts.quarantined,
    }


class _IngestEntity(Generic[FrameT]):
    """Ingest the raw files of one entity into its curated table (docs/contract.md#pipeline).

    Every file gets exactly one outcome, and one ``ingest_log`` row: ``skipped`` when its
    checksum was already loaded, ``rejected`` when it cannot be read, ``loaded`` once its rows
    are committed, ``failed`` when the entity's commit failed (the file then stays in
    ``raw-data/`` for the next run).
    """

    def __init__(
        self,
        engine: TableEngine[FrameT],
        storage: ObjectStorage,
        clock: Clock = utc_now,
        progress: ProgressCallback = no_progress,
    ) -> None:
        self._engine = engine
        self._storage = storage
        self._clock = clock
        self._progress = progress
        #: By table, the partitions the MERGEs committed so far touched.
        self.touched: dict[str, tuple[str | None, ...]] = {}

    def __call__(
        self,
        schema: TableSchema,
        files: Sequence[DiscoveredFile],
        run: RunContext,
        loaded_checksums: Mapping[str, str],
        plan: DestinationPlan,
    ) -> list[FileOutcome]:
        """Ingest ``files`` (all of ``schema``'s entity, in name order).

        Args:
            schema: the entity's table schema.
            files: the entity's raw files in ingestion order.
            run: the run this ingestion belongs to.
            loaded_checksums: checksums already loaded by earlier runs, each with the run
                that loaded it (named in the ``skipped`` outcome's reason).
            plan: where the run moves each file; logged with its outcome.

        Returns:
            One outcome per file, in the order given, each with its planned destination.
        """
        outcomes: dict[str, FileOutcome] = {}
        readable: list[_Readable] = []
        frames: list[FrameT] = []
        seen = dict(loaded_checksums)
        # Files are read a few at a time when the engine gains from it (a Spark read is one
        # task), their outcomes taken in name order. A file whose content an earlier file
        # of the batch repeats is read only if that one turns out unreadable.
        pool = ThreadPoolExecutor(max(1, self._engine.files_read_at_once), "read")
        try:
            reads: dict[int, Future[_Read[FrameT]]] = {}
            submitted: set[str] = set()
            for ordinal, file in enumerate(files):
                if file.checksum not in seen and file.checksum not in submitted:
                    submitted.add(file.checksum)
                    reads[ordinal] = pool.submit(self._read, file, ordinal, schema, run)
            for ordinal, file in enumerate(files):
                if file.checksum in seen:
                    outcomes[file.key] = self._outcome(
                        file,
                        FileStatus.SKIPPED,
                        self._clock(),
                        error=f"{ALREADY_LOADED}: run {seen[file.checksum]} loaded this content",
                    )
                    continue
                read = (
                    reads.pop(ordinal, None) or pool.submit(self._read, file, ordinal, schema, run)
                ).result()
                started = read.started_at
                # Whether parsed or rejected, what was read must be what was hashed.
                if self._changed(file):
                    self._progress("ingest", f"left {file.key}: it changed while the run read it")
                    outcomes[file.key] = self._outcome(
                        file, FileStatus.WAITING, started, error=CHANGED_WHILE_READ
                    )
                    continue
                if read.rejection is not None:
                    self._progress("ingest", f"rejected {file.key}: {read.rejection}")
                    outcomes[file.key] = self._outcome(
                        file, FileStatus.REJECTED, started, error=str(read.rejection)
                    )
                    continue
                assert read.frame is not None
                seen[file.checksum] = run.run_id
                readable.append(_Readable(file, started))
                frames.append(read.frame)
        finally:
            # After an error, the reads not started yet are not started at all.
            pool.shutdown(cancel_futures=True)
        if readable:
            self._progress("ingest", f"{schema.name}: merging {len(readable)} file(s)")
            try:
                outcomes.update(self._commit(schema, readable, frames, run, plan))
            except Exception as error:  # every failure is logged per file
                message = describe_error(error, action=f"loading {schema.name}")
                for item in readable:
                    outcomes[item.file.key] = self._outcome(
                        item.file, FileStatus.FAILED, item.started_at, error=message
                    )
        ordered = [plan.planned(outcomes[f.key]) for f in files]
        # After the MERGE commit: a crash in between is what reconciliation repairs.
        append_ingest_log(
            self._engine, self._storage, [o.log_entry(run.run_id) for o in ordered], run.run_id
        )
        return ordered

    def _read(
        self, file: DiscoveredFile, ordinal: int, schema: TableSchema, run: RunContext
    ) -> _Read[FrameT]:
        started = self._clock()
        source = SourceFile(
            key=file.key,
            uri=self._storage.uri(file.key),
            entity=schema.entity,
            size_bytes=file.size_bytes,
            checksum=file.checksum,
            ordinal=ordinal,
        )
        try:
            return _Read(self._engine.read_source(source, schema, run.evolution), None, started)
        except FileRejected as rejected:
            return _Read(None, rejected, started)

    def _commit(
        self,
        schema: TableSchema,
        readable: Sequence[_Readable],
        frames: list[FrameT],
        run: RunContext,
        plan: DestinationPlan,
    ) -> dict[str, FileOutcome]:
        staged = self._engine.stage(frames, schema, run)
        # The staged batch holds what is still needed: free the read frames before the MERGE.
        frames.clear()
        self._engine.append_frame(
            audit_ref(self._storage, QUARANTINE),
            QUARANTINE,
            staged.quarantine,
            metadata=run_metadata(run.run_id),
        )
        metadata = {
            META_RUN_ID: run.run_id,
            META_ENTITY: schema.name,
            META_FILES: json.dumps(
                [
                    {
                        "key": r.file.key,
                        "checksum": r.file.checksum,
                        "size_bytes": r.file.size_bytes,
                        # So a run that finds this commit unlogged logs it in full.
                        "destination": plan.destination(
                            self._outcome(r.file, FileStatus.LOADED, r.started_at)
                        ),
                        **_staged(staged.counts.get(r.file.key, RowCounts())),
                    }
                    for r in readable
                ]
            ),
        }
        merged = self._engine.merge(curated_ref(self._storage, schema), staged, schema, metadata)
        if merged.touched_partitions:
            self.touched[schema.name] = merged.touched_partitions
        result: dict[str, FileOutcome] = {}
        for item in readable:
            key = item.file.key
            before = staged.counts.get(key, RowCounts())
            after = merged.counts.get(key, RowCounts())
            counts = RowCounts(
                rows_read=before.rows_read,
                inserted=after.inserted,
                updated=after.updated,
                unchanged=after.unchanged,
                duplicates_in_batch=before.duplicates_in_batch,
                quarantined=before.quarantined,
            ).verify(key)
            outcome = self._outcome(item.file, FileStatus.LOADED, item.started_at, counts)
            result[key] = replace(
                outcome,
                rescued_columns=_rescued_columns(staged.rescued, key),
                added_columns=tuple(staged.evolved.get(key, ())),
            )
        return result

    def _changed(self, file: DiscoveredFile) -> bool:
        """Whether the file was written or replaced since discovery listed it.

        The engines parse a file in ``read_source``; an unchanged version token afterwards
        means the rows read are the bytes the checksum was taken of.
        """
        if file.version is None:
            return False
        try:
            return self._storage.info(file.key).version != file.version
        except FileNotFoundError:
            return True

    def _outcome(
        self,
        file: DiscoveredFile,
        status: FileStatus,
        started: datetime,
        counts: RowCounts | None = None,
        error: str | None = None,
    ) -> FileOutcome:
        return FileOutcome(
            file=file,
            status=status,
            counts=counts or RowCounts(),
            started_at=started,
            finished_at=self._clock(),
            error=error,
        )


def _rescued_columns(rescued: Mapping[str, str], key: str) -> tuple[str, ...]:
    """The header names a file's ``_rescued_data`` holds (its columns not in the schema)."""
    try:
        carried = json.loads(rescued.get(key) or "{}")
    except ValueError:
        return ()
    return tuple(str(name) for name in carried) if isinstance(carried, dict) else ()
