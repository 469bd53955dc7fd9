"""Move every file a run finished with out of ``raw-data/``: to ``archive/`` or ``rejected/``."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from ecommerce_lakehouse.application.run import FileOutcome, ProgressCallback, no_progress
from ecommerce_lakehouse.domain.errors import IntegrityError, LakehouseError, describe_error
from ecommerce_lakehouse.domain.types import FileStatus
from ecommerce_lakehouse.domain.zones import ZonePaths
from ecommerce_lakehouse.ports.storage import ObjectStorage

_TO_ARCHIVE = (FileStatus.LOADED, FileStatus.SKIPPED)


@dataclass(frozen=True, slots=True, kw_only=True)
class ArchiveReport:
    """What the archive step did.

    Attributes:
        outcomes: the outcomes with their destinations (None for files left in place).
        failures: one line per file whose move failed (it stayed in ``raw-data/``).
    """

    outcomes: list[FileOutcome]
    failures: list[str]


class ArchiveFiles:
    """Archive loaded and skipped files, move rejected ones aside with an error report.

    Only files whose rows are committed (or that were rejected whole) move. A file whose
    content changed since discovery (still being written, or a new upload under the same
    name) stays for the next run, and so does every ``failed``, ``waiting`` and ``ignored``
    file. Moves verify the checksum the run read and are idempotent, so a retried archive
    step finishes the job. A file that cannot be moved does not stop the others.

    Destinations are unique per source key within a run: two files of one name (say
    ``raw-data/products/a.csv`` and ``raw-data/a.csv``) keep their ``raw-data/`` folder in
    the destination, and over-long names are shortened with a hash of the source key.

    Args:
        storage: the lake.
        progress: where to report.
        earlier: per checksum, the zone paths of earlier runs that loaded it. A ``skipped``
            file whose copy such a run already archived (a crash between the copy and the
            delete of a copying move) is moved onto that copy, which only deletes the source:
            the file is never archived twice.
    """

    def __init__(
        self,
        storage: ObjectStorage,
        progress: ProgressCallback = no_progress,
        earlier: Mapping[str, Sequence[ZonePaths]] | None = None,
    ) -> None:
        self._storage = storage
        self._progress = progress
        self._earlier = earlier or {}

    def __call__(self, outcomes: Sequence[FileOutcome], paths: ZonePaths) -> list[FileOutcome]:
        """Move the files; returns the outcomes with their destinations.

        Raises:
            LakehouseError: a move failed; every other file was moved first, and a retry
                finishes the job.
        """
        report = self.run(outcomes, paths)
        if report.failures:
            raise LakehouseError(_summary(report.failures))
        return report.outcomes

    def run(self, outcomes: Sequence[FileOutcome], paths: ZonePaths) -> ArchiveReport:
        """Move the files, carrying on past a file that cannot be moved."""
        keep_folder = _colliding(outcomes, paths)
        moved: list[FileOutcome] = []
        failures: list[str] = []
        for outcome in outcomes:
            try:
                moved.append(self._move(outcome, paths, outcome.file.key in keep_folder))
            except (OSError, LakehouseError) as error:
                message = describe_error(error)
                self._progress("archive", f"could not move {outcome.file.key}: {message}")
                failures.append(f"{outcome.file.key}: {message}")
                moved.append(outcome)
        return ArchiveReport(outcomes=moved, failures=failures)

    def _move(self, outcome: FileOutcome, paths: ZonePaths, keep_folder: bool) -> FileOutcome:
        file = outcome.file
        destination = _destination(outcome, paths, keep_folder)
        if destination is None:
            return outcome
        if not self._storage.exists(file.key):
            # A retried step: the earlier attempt already moved it.
            return outcome.moved_to(destination) if self._storage.exists(destination) else outcome
        if self._storage.checksum(file.key) != file.checksum:
            return self._changed(outcome)
        if outcome.status is FileStatus.SKIPPED:
            destination = self._archived_before(outcome) or destination
        if outcome.status is FileStatus.REJECTED:
            report = {
                "run_id": paths.run_id,
                "source_path": file.key,
                "size_bytes": file.size_bytes,
                "checksum": file.checksum,
                "error": outcome.error,
            }
            self._storage.write_bytes(
                paths.rejected_error(file.key, keep_folder=keep_folder),
                json.dumps(report, indent=2).encode(),
            )
        try:
            self._storage.move(file.key, destination, checksum=file.checksum)
        except IntegrityError:
            # Changed between the check above and the move (a writer still at it)?
            if self._storage.exists(file.key) and self._storage.checksum(file.key) != (
                file.checksum
            ):
                return self._changed(outcome)
            raise
        return outcome.moved_to(destination)

    def _archived_before(self, outcome: FileOutcome) -> str | None:
        """Where an earlier run already archived this very content, if it did."""
        file = outcome.file
        for paths in self._earlier.get(file.checksum, ()):
            for keep_folder in (False, True):
                key = paths.archive(file.entity, file.key, keep_folder=keep_folder)
                if self._storage.exists(key) and self._storage.checksum(key) == file.checksum:
                    return key
        return None

    def _changed(self, outcome: FileOutcome) -> FileOutcome:
        self._progress("archive", f"left {outcome.file.key}: it changed since the run read it")
        # The status stays what ingest_log says of the content the run read.
        note = (
            "left in raw-data/: its content changed since the run read it (still being "
            "written, or uploaded again); the next run takes it"
        )
        return replace(outcome, error=f"{outcome.error}; {note}" if outcome.error else note)


def _destination(outcome: FileOutcome, paths: ZonePaths, keep_folder: bool) -> str | None:
    if outcome.status in _TO_ARCHIVE:
        return paths.archive(outcome.file.entity, outcome.file.key, keep_folder=keep_folder)
    if outcome.status is FileStatus.REJECTED:
        return paths.rejected(outcome.file.key, keep_folder=keep_folder)
    return None


def _colliding(outcomes: Sequence[FileOutcome], paths: ZonePaths) -> set[str]:
    """Source keys whose plain destination another file of the run shares."""
    plain = {o.file.key: _destination(o, paths, keep_folder=False) for o in outcomes}
    counts = Counter(d for d in plain.values() if d is not None)
    return {key for key, d in plain.items() if d is not None and counts[d] > 1}


def _summary(failures: Sequence[str]) -> str:
    more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
    return f"could not archive {failures[0]}{more}"
