"""Finish the audit trail of a run that committed a MERGE but stopped before logging it."""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any

from ecommerce_lakehouse.application.ingest_log import (
    META_ENTITY,
    META_FILES,
    META_RUN_ID,
    append_ingest_log,
)
from ecommerce_lakehouse.application.lineage import lineage
from ecommerce_lakehouse.application.run import Clock, utc_now
from ecommerce_lakehouse.application.tables import curated_ref
from ecommerce_lakehouse.domain.audit import INGEST_LOG, IngestLogEntry, RowCounts
from ecommerce_lakehouse.domain.schemas import SCHEMAS
from ecommerce_lakehouse.domain.types import FileStatus
from ecommerce_lakehouse.domain.zones import is_destination
from ecommerce_lakehouse.ports.engine import MERGE_COUNTS_KEY, TableEngine, decode_merge_counts
from ecommerce_lakehouse.ports.query import QueryService
from ecommerce_lakehouse.ports.storage import ObjectStorage

#: How many recent commits of each table are searched; the run after a crash finds it first.
RECONCILE_DEPTH = 50


class ReconcileInterruptedRuns:
    """Write the missing ``ingest_log`` rows of MERGE commits that no run logged.

    Each MERGE commit carries the run id, its files with their staged counts, and the
    engine's per-file MERGE counts. A commit whose run has no ``ingest_log`` rows for that
    entity was interrupted between the two writes: its rows are in the table, so the files
    are logged as ``loaded`` under the interrupted run's id. The current run then skips and
    archives them, and the row-count check keeps matching.
    """

    def __init__(
        self,
        engine: TableEngine[Any],
        storage: ObjectStorage,
        query: QueryService,
        clock: Clock = utc_now,
    ) -> None:
        self._engine = engine
        self._storage = storage
        self._query = query
        self._clock = clock

    def __call__(self, current_run_id: str, created: Collection[str] = ()) -> list[IngestLogEntry]:
        """Reconcile; returns the ``ingest_log`` rows written.

        Args:
            current_run_id: the run reconciling.
            created: names of the tables the run created (empty, so not read).
        """
        logged = (
            set()
            if INGEST_LOG.name in created
            else {
                (str(row["run_id"]), str(row["entity"]))
                for row in self._query.sql(
                    "SELECT DISTINCT run_id, entity FROM ingest_log"
                ).to_pylist()
            }
        )
        now = self._clock()
        entries: list[IngestLogEntry] = []
        for schema in SCHEMAS:
            if schema.name in created:
                continue  # only its CREATE commit: no MERGE to log
            commits = self._engine.history(curated_ref(self._storage, schema), RECONCILE_DEPTH)
            # A commit a restore undid is not logged: its rows are not in the table.
            current = lineage(schema, commits, commits[0].version) if commits else None
            for commit in commits:
                meta = commit.metadata
                run_id = meta.get(META_RUN_ID)
                if (
                    run_id is None
                    or meta.get(META_ENTITY) != schema.name
                    or (run_id, schema.name) in logged
                    or META_FILES not in meta
                    or MERGE_COUNTS_KEY not in meta
                ):
                    continue
                merged = decode_merge_counts(meta[MERGE_COUNTS_KEY])
                for file in json.loads(meta[META_FILES]):
                    if current and current.complete and (run_id, file["key"]) not in current.loads:
                        continue
                    after = merged.get(file["key"], RowCounts())
                    counts = RowCounts(
                        rows_read=file["rows_read"],
                        inserted=after.inserted,
                        updated=after.updated,
                        unchanged=after.unchanged,
                        duplicates_in_batch=file["duplicates_in_batch"],
                        quarantined=file["quarantined"],
                    ).verify(file["key"])
                    entries.append(
                        IngestLogEntry(
                            run_id=run_id,
                            entity=schema.name,
                            source_path=file["key"],
                            size_bytes=file["size_bytes"],
                            checksum=file["checksum"],
                            status=FileStatus.LOADED,
                            counts=counts,
                            started_at=commit.timestamp or now,
                            finished_at=now,
                            error=f"recovered by run {current_run_id}: committed in table "
                            f"version {commit.version}, the run stopped before logging it",
                            destination=_destination(file.get("destination")),
                        )
                    )
        append_ingest_log(self._engine, self._storage, entries, current_run_id)
        return entries


def _destination(value: object) -> str | None:
    # Commits of older versions carry none; a key outside the zones is not believed.
    return value if isinstance(value, str) and is_destination(value) else None
