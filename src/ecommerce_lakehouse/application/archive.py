"""Move every file a run finished with out of ``raw-data/``: to ``archive/`` or ``rejected/``."""

from __future__ import annotations

import json
from collections.abc import Sequence

from ecommerce_lakehouse.application.run import FileOutcome, ProgressCallback, no_progress
from ecommerce_lakehouse.domain.types import FileStatus
from ecommerce_lakehouse.domain.zones import ZonePaths
from ecommerce_lakehouse.ports.storage import ObjectStorage


class ArchiveFiles:
    """Archive loaded and skipped files, move rejected ones aside with an error report.

    Only files whose rows are committed (or that were rejected whole) move. A file whose
    content changed since discovery (a new upload under the same name) stays for the next
    run, and so does every ``failed`` file. Moves are copy-verify-delete and idempotent, so a
    retried archive step finishes the job.
    """

    def __init__(self, storage: ObjectStorage, progress: ProgressCallback = no_progress) -> None:
        self._storage = storage
        self._progress = progress

    def __call__(self, outcomes: Sequence[FileOutcome], paths: ZonePaths) -> list[FileOutcome]:
        """Move the files; returns the outcomes with their destinations."""
        return [self._move(outcome, paths) for outcome in outcomes]

    def _move(self, outcome: FileOutcome, paths: ZonePaths) -> FileOutcome:
        file = outcome.file
        if outcome.status in (FileStatus.LOADED, FileStatus.SKIPPED):
            destination = paths.archive(file.entity, file.key)
        elif outcome.status is FileStatus.REJECTED:
            destination = paths.rejected(file.key)
        else:
            return outcome
        if not self._storage.exists(file.key):
            # A retried step: the earlier attempt already moved it.
            return outcome.moved_to(destination) if self._storage.exists(destination) else outcome
        if self._storage.checksum(file.key) != file.checksum:
            self._progress("archive", f"left {file.key}: it changed since the run read it")
            return outcome
        if outcome.status is FileStatus.REJECTED:
            report = {
                "run_id": paths.run_id,
                "source_path": file.key,
                "size_bytes": file.size_bytes,
                "checksum": file.checksum,
                "error": outcome.error,
            }
            self._storage.write_bytes(
                paths.rejected_error(file.key), json.dumps(report, indent=2).encode()
            )
        self._storage.move(file.key, destination)
        return outcome.moved_to(destination)
