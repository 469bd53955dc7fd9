"""Move every file a run finished with out of ``raw-data/``: to ``archive/`` or ``rejected/``."""

from __future__ import annotations

import json
import posixpath
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from ecommerce_lakehouse.application.run import FileOutcome, ProgressCallback, no_progress
from ecommerce_lakehouse.domain.errors import IntegrityError, LakehouseError, describe_error
from ecommerce_lakehouse.domain.types import FileStatus
from ecommerce_lakehouse.domain.zones import (
    ARCHIVE,
    REJECTED,
    ZonePaths,
    error_report_key,
    is_destination,
)
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


@dataclass(frozen=True, slots=True, kw_only=True)
class LoggedDestination:
    """A destination an earlier run logged in ``ingest_log`` for one file content and key."""

    checksum: str
    source_path: str
    destination: str
    first_logged: datetime | None


class DestinationPlan:
    """Where each file of one run goes: decided with its outcome, logged, then followed.

    Files the run loaded or skipped go to ``archive/``, files it rejected whole to
    ``rejected/``; every other file stays. Destinations are unique per source key within a
    run: files sharing a file name (say ``raw-data/products/a.csv`` and ``raw-data/a.csv``)
    keep their ``raw-data/`` folder in the destination, and over-long names are shortened
    with a hash of the source key.

    A file that an earlier run already planned a destination for (same content, same key,
    same zone) goes there: the first such destination logged. So a run that stopped before
    its archive step (or whose move failed) has its logged destination made true by the
    next run, and a copy left by a crash between the copy and the delete of a move is
    reused: a file is never archived twice. The same content dropped again under another
    name is archived under this run, by its own name.

    Args:
        paths: the run's zone paths.
        keys: the source keys of every file the run took (the names it must keep apart).
        logged: the destinations earlier runs logged.
    """

    def __init__(
        self,
        paths: ZonePaths,
        keys: Iterable[str],
        logged: Iterable[LoggedDestination] = (),
    ) -> None:
        self._paths = paths
        taken = set(keys)
        names = Counter(posixpath.basename(k) for k in taken)
        # No folder a run takes is named like a file (zones.raw_key_problem), so a kept
        # folder never clashes with another file's destination or report.
        self._keep_folder = {k for k in taken if names[posixpath.basename(k)] > 1}
        self._logged: dict[tuple[str, str, str], str] = {}
        for entry in sorted(logged, key=_first_logged):
            if is_destination(entry.destination):
                zone = entry.destination.split("/", 1)[0]
                key = (entry.checksum, entry.source_path, zone)
                self._logged.setdefault(key, entry.destination)

    def destination(self, outcome: FileOutcome) -> str | None:
        """The key ``outcome``'s file moves to, or None when it stays in ``raw-data/``."""
        file = outcome.file
        keep_folder = file.key in self._keep_folder
        zone = ARCHIVE if outcome.status in _TO_ARCHIVE else REJECTED
        if outcome.status in (*_TO_ARCHIVE, FileStatus.REJECTED):
            earlier = self._logged.get((file.checksum, file.key, zone))
            if earlier is not None:
                return earlier
        if outcome.status in _TO_ARCHIVE:
            return self._paths.archive(file.entity, file.key, keep_folder=keep_folder)
        if outcome.status is FileStatus.REJECTED:
            return self._paths.rejected(file.key, keep_folder=keep_folder)
        return None

    def planned(self, outcome: FileOutcome) -> FileOutcome:
        """``outcome`` with its planned destination."""
        return replace(outcome, destination=self.destination(outcome))


class ArchiveFiles:
    """Move loaded and skipped files to their archive, rejected ones aside with a report.

    Each file goes to the destination planned with its outcome (see
    :class:`DestinationPlan`; outcomes without one are planned here). Only files whose rows
    are committed (or that were rejected whole) move. A file whose content changed since
    discovery (still being written, or a new upload under the same name) stays for the next
    run, and so does every ``failed``, ``waiting`` and ``ignored`` file. Moves verify the
    checksum the run read and are idempotent, so a retried archive step finishes the job. A
    file whose version token (``ObjectInfo.version``) is still the one discovery listed is
    known to hold that content and is not read again; only a file whose token changed, or
    a store without tokens, is hashed. A file that cannot be moved does not stop the others.

    Args:
        storage: the lake.
        progress: where to report.
    """

    def __init__(self, storage: ObjectStorage, progress: ProgressCallback = no_progress) -> None:
        self._storage = storage
        self._progress = progress

    def __call__(self, outcomes: Sequence[FileOutcome], paths: ZonePaths) -> list[FileOutcome]:
        """Move the files; returns the outcomes, destination None for files that stayed.

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
        plan = DestinationPlan(paths, (o.file.key for o in outcomes))
        moved: list[FileOutcome] = []
        failures: list[str] = []
        for outcome in outcomes:
            planned = outcome if outcome.destination else plan.planned(outcome)
            try:
                moved.append(self._move(planned, paths))
            except (OSError, LakehouseError) as error:
                message = describe_error(error)
                self._progress("archive", f"could not move {outcome.file.key}: {message}")
                # Quoted: a name may hold a line break, and the run's error is one line.
                failures.append(f"{outcome.file.key!r}: {message}")
                moved.append(replace(outcome, destination=None))
        return ArchiveReport(outcomes=moved, failures=failures)

    def _move(self, outcome: FileOutcome, paths: ZonePaths) -> FileOutcome:
        file, destination = outcome.file, outcome.destination
        if destination is None:
            return outcome
        if outcome.status not in (*_TO_ARCHIVE, FileStatus.REJECTED):
            return replace(outcome, destination=None)
        if not is_destination(destination):
            raise IntegrityError(
                f"refusing to move {file.key!r} to {destination!r}: not a key in "
                f"{ARCHIVE}/ or {REJECTED}/"
            )
        if not self._storage.exists(file.key):
            # A retried step: the earlier attempt already moved it.
            stayed = not self._storage.exists(destination)
            return replace(outcome, destination=None) if stayed else outcome
        # The version token the run listed proves the content without reading it; only a
        # file whose token changed (or a store without tokens) is hashed again.
        token = self._token(file.key)
        if (token is None or token != file.version) and self._storage.checksum(
            file.key
        ) != file.checksum:
            return self._changed(outcome)
        if outcome.status is FileStatus.REJECTED and not self._storage.exists(
            error_report_key(destination)
        ):
            # A destination reused from an earlier run keeps that run's report.
            report = {
                "run_id": paths.run_id,
                "source_path": file.key,
                "size_bytes": file.size_bytes,
                "checksum": file.checksum,
                "error": outcome.error,
            }
            self._storage.write_bytes(
                error_report_key(destination), json.dumps(report, indent=2).encode()
            )
        try:
            # Taken before the checksum (if any): the store re-hashes unless the file still
            # has this token.
            self._storage.move(file.key, destination, checksum=file.checksum, version=token)
        except IntegrityError:
            # Changed between the check above and the move (a writer still at it)?
            if self._storage.exists(file.key) and self._storage.checksum(file.key) != (
                file.checksum
            ):
                return self._changed(outcome)
            raise
        return outcome

    def _token(self, key: str) -> str | None:
        """The file's version token now (None when the store has none)."""
        try:
            return self._storage.info(key).version
        except FileNotFoundError:
            return None

    def _changed(self, outcome: FileOutcome) -> FileOutcome:
        self._progress("archive", f"left {outcome.file.key}: it changed since the run read it")
        # The status stays what ingest_log says of the content the run read.
        note = (
            "left in raw-data/: its content changed since the run read it (still being "
            "written, or uploaded again); the next run takes it"
        )
        error = f"{outcome.error}; {note}" if outcome.error else note
        return replace(outcome, error=error, destination=None)


def _first_logged(entry: LoggedDestination) -> tuple[datetime, str]:
    when = entry.first_logged or datetime.max
    return (when if when.tzinfo else when.replace(tzinfo=UTC), entry.destination)


def _summary(failures: Sequence[str]) -> str:
    more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
    return f"could not archive {failures[0]}{more}"
