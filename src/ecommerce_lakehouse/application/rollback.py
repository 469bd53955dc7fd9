"""Roll a curated table back, and let a loaded file be loaded again, keeping the ledger true.

``ingest_log`` is append-only. A restore appends a reversal row (``rolled_back``, the load's
counts negated) for every load the restored version no longer holds, and a ``loaded`` row
again for every earlier-reversed load it holds once more, so the ledger's sums keep matching
the table's rows and the contents it no longer holds can be loaded again. ``forget`` appends
a ``forgotten`` row (counts 0): the content's rows stay, but the next run reads it again
(docs/contract.md#rollback-and-reprocessing).

Which loads a version holds is read from the table's Delta history: every MERGE or first
write of a run names its files (``lakehouse.files``), and a restore made here names the
version it returned to (``lakehouse.restored_version``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from ecommerce_lakehouse.application.ingest_log import (
    META_COMMAND,
    META_RUN_ID,
    append_ingest_log,
)
from ecommerce_lakehouse.application.lineage import (
    META_RESTORED_VERSION,
    Lineage,
    commit_loads,
    lineage,
    utc,
)
from ecommerce_lakehouse.application.maintenance import record_command
from ecommerce_lakehouse.application.query_tables import version_at
from ecommerce_lakehouse.application.reconcile import ReconcileInterruptedRuns
from ecommerce_lakehouse.application.register import RegisterTables
from ecommerce_lakehouse.application.run import Clock, new_run_id, utc_now
from ecommerce_lakehouse.application.tables import curated_ref
from ecommerce_lakehouse.domain.audit import (
    AUDIT_TABLES,
    COUNT_FIELDS,
    INGEST_LOG,
    IngestLogEntry,
    RowCounts,
)
from ecommerce_lakehouse.domain.errors import ConfigurationError, describe_error
from ecommerce_lakehouse.domain.schemas import SCHEMAS, TableSchema
from ecommerce_lakehouse.domain.types import FileStatus
from ecommerce_lakehouse.ports.engine import CommitRecord, TableEngine
from ecommerce_lakehouse.ports.platform import Platform
from ecommerce_lakehouse.ports.query import QueryService

#: The reason names (``error`` column) of the rows a restore writes.
ROLLED_BACK = "rolled_back"
REINSTATED = "reinstated"

#: The ledger statuses that decide whether a content is loaded, in the order they apply.
_EVENTS = (FileStatus.LOADED, FileStatus.ROLLED_BACK, FileStatus.FORGOTTEN)


def _statuses(statuses: Sequence[FileStatus]) -> str:
    return ", ".join(f"'{s.value}'" for s in statuses)


#: Ledger events in the order they happened; a load logged in the same instant as its
#: reversal (a coarse clock) comes first.
_IN_ORDER = f"ORDER BY started_at, CASE WHEN status = '{FileStatus.LOADED.value}' THEN 0 ELSE 1 END"


def _events(query: QueryService, condition: str = "TRUE") -> list[IngestLogEntry]:
    """The ledger's loads, reversals and forgets matching ``condition``, oldest first.

    Counts are read as stored (a reversal's are negative) and kept as their magnitude.
    """
    columns = ", ".join(c for c in INGEST_LOG.column_names if c != "error")
    rows = query.sql(
        f"SELECT {columns} FROM {INGEST_LOG.name} "
        f"WHERE status IN ({_statuses(_EVENTS)}) AND ({condition}) {_IN_ORDER}"
    ).to_pylist()
    return [
        IngestLogEntry(
            run_id=str(row["run_id"]),
            entity=str(row["entity"]),
            source_path=str(row["source_path"]),
            size_bytes=int(row["size_bytes"] or 0),
            checksum=str(row["checksum"]),
            status=FileStatus.from_str(str(row["status"])),
            counts=RowCounts(**{name: abs(int(row[name] or 0)) for name in COUNT_FIELDS}),
            started_at=row["started_at"],
            finished_at=row["finished_at"],
            destination=row["destination"],
        )
        for row in rows
    ]


def _loaded(events: Sequence[IngestLogEntry]) -> dict[str, str]:
    """Each content the events leave loaded, with the run that loaded it last."""
    counted: dict[str, int] = {}
    loaded: dict[str, str] = {}
    for event in events:
        if event.status is FileStatus.LOADED:
            counted[event.checksum] = counted.get(event.checksum, 0) + 1
            loaded[event.checksum] = event.run_id
        elif event.status is FileStatus.ROLLED_BACK:
            counted[event.checksum] = counted.get(event.checksum, 0) - 1
            if counted[event.checksum] <= 0:
                loaded.pop(event.checksum, None)
        else:
            loaded.pop(event.checksum, None)
    return loaded


def loaded_contents(query: QueryService) -> dict[str, str]:
    """Each content a run skips as already loaded, with the run that loaded it last.

    A content is loaded once a ``loaded`` row names its checksum, and stops being so when it
    is ``forgotten`` or every load of it is ``rolled_back``.
    """
    return _loaded(_events(query))


@dataclass(frozen=True, slots=True, kw_only=True)
class _Load:
    """One file's load: its ``loaded`` ledger row, and how many times the ledger counts it."""

    entry: IngestLogEntry
    counted: int


def _loads(query: QueryService, entity: str) -> dict[tuple[str, str], _Load]:
    """The loads of ``entity`` (a schema's name) by (run id, file key), each counted net."""
    loads: dict[tuple[str, str], _Load] = {}
    for event in _events(query, f"entity = '{entity}'"):
        key = (event.run_id, event.source_path)
        if event.status is FileStatus.LOADED:
            # The first row of a load is when it happened (a reinstatement logs it again).
            first = loads[key].entry if key in loads else event
            loads[key] = _Load(entry=first, counted=loads[key].counted + 1 if key in loads else 1)
        elif event.status is FileStatus.ROLLED_BACK and key in loads:
            loads[key] = replace(loads[key], counted=loads[key].counted - 1)
    return loads


@dataclass(frozen=True, slots=True, kw_only=True)
class RestoreResult:
    """What ``lakehouse restore`` did.

    Attributes:
        run_id: the command's run id (in the RESTORE commit's ``lakehouse.run_id``).
        table: the table restored.
        from_version: its version before.
        to_version: the version its rows are now those of.
        version: the version the RESTORE commit made.
        rolled_back: the files whose loads the table no longer holds (logged
            ``rolled_back``; their content can be loaded again).
        reinstated: the files whose earlier-reversed loads it holds again (logged ``loaded``).
        record_error: why the command's record could not be written (the work is done).
    """

    run_id: str
    table: str
    from_version: int
    to_version: int
    version: int
    rolled_back: tuple[str, ...] = ()
    reinstated: tuple[str, ...] = ()
    record_error: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ForgetResult:
    """What ``lakehouse forget`` or ``reprocess`` did.

    Attributes:
        run_id: the command's run id (the ``forgotten`` rows' ``run_id``).
        forgotten: the files whose content the next run loads again.
        returned: for ``reprocess``, the files moved from where the run put them back to
            their ``raw-data/`` key.
        record_error: why the command's record could not be written (the work is done).
    """

    run_id: str
    forgotten: tuple[str, ...] = ()
    returned: tuple[str, ...] = ()
    record_error: str | None = None


@dataclass
class _Match:
    entry: IngestLogEntry
    loaded: bool = False
    names: set[str] = field(default_factory=set)


class Rollback:
    """``restore``, ``forget`` and ``reprocess``: each under the lake lock, with a record."""

    def __init__(
        self, engine: TableEngine[Any], platform: Platform, clock: Clock = utc_now
    ) -> None:
        self._engine = engine
        self._platform = platform
        self._clock = clock

    def restore(
        self,
        table: str,
        *,
        version: int | None = None,
        moment: datetime | None = None,
        lock_timeout: float,
    ) -> RestoreResult:
        """Return a curated table to an earlier version and bring the ledger in line.

        Args:
            table: a curated table's name.
            version: the version to return to; or
            moment: the instant whose version to return to (the newest commit at or before).
            lock_timeout: seconds to wait for the lake lock.

        Raises:
            ConfigurationError: not a curated table, neither or both of ``version`` and
                ``moment``, or no such earlier version.
        """
        schema = _curated(table)
        pin: int | datetime
        if version is not None and moment is None:
            pin = version
        elif moment is not None and version is None:
            pin = moment
        else:
            raise ConfigurationError("restore needs a version or a timestamp, not both")
        ref = curated_ref(self._platform.storage, schema)
        run_id = new_run_id(self._clock())
        with self._platform.lock.acquire(owner=run_id, timeout_seconds=lock_timeout):
            started = self._clock()
            # A run interrupted between its commit and its log is logged first, as the next
            # run would: the restore then sees its load like any other.
            platform = self._platform
            ReconcileInterruptedRuns(self._engine, platform.storage, platform.query, self._clock)(
                run_id
            )
            history = self._engine.history(ref)
            if not history:
                raise ConfigurationError(f"table '{table}' has no versions yet")
            current = history[0].version
            target = pin if isinstance(pin, int) else version_at(table, history, pin)
            if target == current and not isinstance(pin, int):
                raise ConfigurationError(
                    f"the version of '{table}' at {pin.isoformat()} is its current version "
                    f"{current}: nothing to restore"
                )
            if not 0 <= target < current:
                raise ConfigurationError(
                    f"invalid version {target} of '{table}': expected 0 to {current - 1} "
                    f"(its current version is {current})"
                )
            made = self._engine.restore(
                ref,
                target,
                metadata={
                    META_RUN_ID: run_id,
                    META_COMMAND: "restore",
                    META_RESTORED_VERSION: str(target),
                },
            )
            versions = _Versions.of(schema, history, target, current)
            loads = _loads(self._platform.query, schema.name)
            now = self._clock()
            why = f"restore {run_id} returned {table} to version {target}"
            entries = [
                replace(
                    load.entry,
                    status=status,
                    started_at=now,
                    finished_at=now,
                    error=f"{reason}: {why}",
                )
                for key, load in sorted(loads.items())
                for status, reason in _change(load, versions.held(key, load))
            ]
            append_ingest_log(self._engine, self._platform.storage, entries, run_id)
            # The catalogue follows the table's columns (a restore may drop an added one).
            RegisterTables(self._engine, self._platform.storage, self._platform.catalogue)()
            result = RestoreResult(
                run_id=run_id,
                table=table,
                from_version=current,
                to_version=target,
                version=made,
                rolled_back=_files(entries, FileStatus.ROLLED_BACK),
                reinstated=_files(entries, FileStatus.LOADED),
            )
            error = self._record(
                "restore",
                run_id,
                started,
                {
                    "table": table,
                    "from_version": current,
                    "to_version": target,
                    "version": made,
                    "rolled_back": list(result.rolled_back),
                    "reinstated": list(result.reinstated),
                },
            )
        return replace(result, record_error=error)

    def forget(
        self, files: Sequence[str], *, lock_timeout: float, reprocess: bool = False
    ) -> ForgetResult:
        """Let the next run load these files' contents again; with ``reprocess``, return them.

        Args:
            files: each a loaded file's ``raw-data/`` key, the key the run moved it to, or
                its checksum.
            lock_timeout: seconds to wait for the lake lock.
            reprocess: also move each file from where its run put it back to its
                ``raw-data/`` key, so that the next run loads it.

        Raises:
            ConfigurationError: no file given, or one that no loaded file matches (nothing is
                then changed).
        """
        if not files or not all(f.strip() for f in files):
            raise ConfigurationError(
                "name each file by its raw-data/ key, archive key or checksum (none empty)"
            )
        run_id = new_run_id(self._clock())
        with self._platform.lock.acquire(owner=run_id, timeout_seconds=lock_timeout):
            started = self._clock()
            matches = self._matches(files)
            # Every move is checked before anything changes: a refused one changes nothing.
            moves = {m.entry.checksum: self._move_back(m.entry) for m in matches if reprocess}
            now = self._clock()
            entries = [
                replace(
                    match.entry,
                    run_id=run_id,
                    status=FileStatus.FORGOTTEN,
                    counts=RowCounts(),
                    started_at=now,
                    finished_at=now,
                    error=f"forgotten: forget {run_id}; the next run loads this content again",
                )
                for match in matches
                if match.loaded
            ]
            append_ingest_log(self._engine, self._platform.storage, entries, run_id)
            returned: list[str] = []
            for entry in (m.entry for m in matches if m.entry.checksum in moves):
                if moves[entry.checksum]:
                    self._platform.storage.move(
                        str(entry.destination), entry.source_path, checksum=entry.checksum
                    )
                returned.append(entry.source_path)
            result = ForgetResult(
                run_id=run_id,
                forgotten=tuple(e.source_path for e in entries),
                returned=tuple(returned),
            )
            command = "reprocess" if reprocess else "forget"
            error = self._record(
                command,
                run_id,
                started,
                {"forgotten": list(result.forgotten), "returned": list(result.returned)},
            )
        return replace(result, record_error=error)

    def _move_back(self, entry: IngestLogEntry) -> bool:
        """Whether ``entry``'s file must move back to ``raw-data/`` (False: it is there).

        Raises:
            ConfigurationError: another file is at its ``raw-data/`` key, or its copy is not
                where its run moved it.
        """
        storage = self._platform.storage
        if storage.exists(entry.source_path):
            if storage.checksum(entry.source_path) == entry.checksum:
                return False
            raise ConfigurationError(
                f"{entry.source_path} already holds another file: move it away, then reprocess"
            )
        if entry.destination is None or not storage.exists(entry.destination):
            raise ConfigurationError(
                f"no copy of {entry.source_path} to move back: it is not at "
                f"{entry.destination or 'a logged destination'}; drop the file into raw-data/ "
                "yourself and use forget"
            )
        return True

    def _matches(self, files: Sequence[str]) -> list[_Match]:
        """The contents ``files`` name, each with its latest ledger row; all or an error."""
        events = _events(self._platform.query)
        loaded = _loaded(events)
        wanted = set(files)
        matches: dict[str, _Match] = {}
        for event in events:
            names = {event.source_path, event.checksum, event.destination or ""} & wanted
            if not names:
                continue
            match = matches.setdefault(event.checksum, _Match(entry=event))
            match.names |= names
            # The latest row that says where the file is.
            if event.destination is not None or match.entry.destination is None:
                match.entry = event
            match.loaded = event.checksum in loaded
        for name in wanted:
            named = sorted(c for c, m in matches.items() if name in m.names)
            if len(named) > 1:
                raise ConfigurationError(
                    f"{name} names {len(named)} different contents (checksums "
                    f"{', '.join(named)}): give the checksum of the one to forget"
                )
        unknown = wanted.difference(*(m.names for m in matches.values()))
        if unknown:
            listed = ", ".join(sorted(unknown))
            raise ConfigurationError(
                f"no loaded file matches {listed}: give a raw-data/ key, archive key or "
                "checksum as ingest_log has it"
            )
        return list(matches.values())

    def _record(
        self, command: str, run_id: str, started: datetime, facts: dict[str, object]
    ) -> str | None:
        try:
            record_command(
                self._platform.storage,
                command=command,
                run_id=run_id,
                engine=self._engine.name,
                started=started,
                finished=self._clock(),
                facts=facts,
            )
        except Exception as error:  # the work is done: say it, do not fail on it
            return describe_error(error)
        return None


def _curated(name: str) -> TableSchema:
    for schema in SCHEMAS:
        if schema.name == name:
            return schema
    if name in {audit.name for audit in AUDIT_TABLES}:
        raise ConfigurationError(
            f"'{name}' is an audit table: audit tables are append-only and are not restored"
        )
    curated = ", ".join(s.name for s in SCHEMAS)
    raise ConfigurationError(f"unknown table '{name}': expected one of {curated}")


@dataclass(frozen=True, slots=True, kw_only=True)
class _Versions:
    """The restored version and the current one, as the history tells what they hold."""

    kept: Lineage
    current: Lineage
    named: frozenset[tuple[str, str]]
    oldest: datetime | None

    @classmethod
    def of(
        cls, schema: TableSchema, history: Sequence[CommitRecord], target: int, current: int
    ) -> _Versions:
        return cls(
            kept=lineage(schema, history, target),
            current=lineage(schema, history, current),
            named=frozenset().union(*(commit_loads(schema, c) for c in history)),
            oldest=min((t for c in history if (t := utc(c.timestamp))), default=None),
        )

    def held(self, key: tuple[str, str], load: _Load) -> bool | None:
        """Whether the restored version holds a load; None when the history cannot tell."""
        if not (self.kept.complete and self.current.complete):
            # A restore by another tool hides what some versions hold: only the loads the
            # current version is known to hold are compared.
            return (key in self.kept.loads) if key in self.current.loads else None
        if key in self.named:
            return key in self.kept.loads
        logged = utc(load.entry.finished_at)
        if logged is None or self.oldest is None or logged < self.oldest:
            return None  # before the history the log still has
        return self.kept.holds(logged)


def _change(load: _Load, held: bool | None) -> list[tuple[FileStatus, str]]:
    # The ledger is brought to what the restored version holds, whatever it said before: a
    # restore run again after an interruption finishes the ledger the first one did not.
    if held is False and load.counted > 0:
        return [(FileStatus.ROLLED_BACK, ROLLED_BACK)]
    if held is True and load.counted <= 0:
        return [(FileStatus.LOADED, REINSTATED)]
    return []


def _files(entries: Sequence[IngestLogEntry], status: FileStatus) -> tuple[str, ...]:
    return tuple(e.source_path for e in entries if e.status is status)
