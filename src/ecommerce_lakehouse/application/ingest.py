"""Ingest one entity's raw files: read, quarantine, dedup, MERGE, and log every file."""

from __future__ import annotations

import json
from collections.abc import Sequence, Set
from dataclasses import dataclass
from datetime import datetime
from typing import Generic

from ecommerce_lakehouse.application.archive import DestinationPlan
from ecommerce_lakehouse.application.run import (
    Clock,
    DiscoveredFile,
    FileOutcome,
    ProgressCallback,
    no_progress,
    utc_now,
)
from ecommerce_lakehouse.application.tables import audit_ref, curated_ref
from ecommerce_lakehouse.domain.audit import INGEST_LOG, QUARANTINE, RowCounts
from ecommerce_lakehouse.domain.errors import FileRejected, describe_error
from ecommerce_lakehouse.domain.schemas import TableSchema
from ecommerce_lakehouse.domain.types import FileStatus
from ecommerce_lakehouse.ports.engine import FrameT, RunContext, SourceFile, TableEngine
from ecommerce_lakehouse.ports.storage import ObjectStorage

#: Why a file that changed while it was read waits for the next run.
CHANGED_WHILE_READ = (
    "changed_while_read: the file was written or replaced while the run read it; left in "
    "raw-data/ for the next run"
)

#: Keys of the Delta commit metadata that let a later run reconcile an interrupted one.
META_RUN_ID = "lakehouse.run_id"
META_ENTITY = "lakehouse.entity"
META_FILES = "lakehouse.files"


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


class IngestEntity(Generic[FrameT]):
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

    def __call__(
        self,
        schema: TableSchema,
        files: Sequence[DiscoveredFile],
        run: RunContext,
        loaded_checksums: Set[str],
        plan: DestinationPlan,
    ) -> list[FileOutcome]:
        """Ingest ``files`` (all of ``schema``'s entity, in name order).

        Args:
            schema: the entity's table schema.
            files: the entity's raw files in ingestion order.
            run: the run this ingestion belongs to.
            loaded_checksums: checksums already loaded by earlier runs.
            plan: where the run moves each file; logged with its outcome.

        Returns:
            One outcome per file, in the order given, each with its planned destination.
        """
        outcomes: dict[str, FileOutcome] = {}
        readable: list[_Readable] = []
        frames: list[FrameT] = []
        seen = set(loaded_checksums)
        for ordinal, file in enumerate(files):
            started = self._clock()
            if file.checksum in seen:
                outcomes[file.key] = self._outcome(file, FileStatus.SKIPPED, started)
                continue
            source = SourceFile(
                key=file.key,
                uri=self._storage.uri(file.key),
                entity=schema.entity,
                size_bytes=file.size_bytes,
                checksum=file.checksum,
                ordinal=ordinal,
            )
            try:
                frame = self._engine.read_source(source, schema, run.evolution)
            except FileRejected as rejected:
                self._progress("ingest", f"rejected {file.key}: {rejected}")
                outcomes[file.key] = self._outcome(
                    file, FileStatus.REJECTED, started, error=str(rejected)
                )
                continue
            if self._changed(file):
                self._progress("ingest", f"left {file.key}: it changed while the run read it")
                outcomes[file.key] = self._outcome(
                    file, FileStatus.WAITING, started, error=CHANGED_WHILE_READ
                )
                continue
            seen.add(file.checksum)
            readable.append(_Readable(file, started))
            frames.append(frame)
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
        if ordered:
            self._engine.append_records(
                audit_ref(self._storage, INGEST_LOG),
                INGEST_LOG,
                [o.log_entry(run.run_id).as_record() for o in ordered],
            )
        return ordered

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
            audit_ref(self._storage, QUARANTINE), QUARANTINE, staged.quarantine
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
            result[key] = self._outcome(item.file, FileStatus.LOADED, item.started_at, counts)
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
