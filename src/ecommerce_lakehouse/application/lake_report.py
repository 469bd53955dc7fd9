"""What ``lakehouse report`` shows of a lake: runs, files, quarantine, drift, checks, tables.

:class:`ReportLake` gathers a typed, frozen :class:`LakeReport` from the lake's run records
(``_runs/<run id>.json``), its audit tables (``ingest_log``, ``quarantine``,
``validation_results``) and its tables' Delta history. Every part is bounded by a named
constant, so a lake with ten thousand runs or a million quarantined rows still gives a page
in a few queries: the report reads the newest :data:`MAX_RUNS` run records, lists at most
:data:`MAX_QUARANTINE_GROUPS` quarantine groups, and so on, and says how many there are in
all. The SQL is portable (DuckDB, Spark SQL, Athena/Trino) and holds no text from data:
filters on data are applied in Python. Reading takes no lock, like ``Lake.sql``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from ecommerce_lakehouse.application.rollback import REINSTATED
from ecommerce_lakehouse.application.run import Clock, RunResult, utc_now
from ecommerce_lakehouse.application.tables import DescribeTables, TableInfo, table_ref
from ecommerce_lakehouse.domain.audit import INGEST_LOG, QUARANTINE, VALIDATION_RESULTS, RowCounts
from ecommerce_lakehouse.domain.errors import describe_error
from ecommerce_lakehouse.domain.types import FileStatus, Severity
from ecommerce_lakehouse.domain.zones import RUNS, audit_key, table_key
from ecommerce_lakehouse.ports.engine import CommitRecord, TableEngine
from ecommerce_lakehouse.ports.query import QueryService
from ecommerce_lakehouse.ports.storage import ObjectStorage

#: Run records read: the newest by key (run ids start with their UTC start time).
MAX_RUNS = 50
#: Validations (runs and ``lakehouse validate`` invocations) listed with their counts.
MAX_VALIDATIONS = 50
#: Validations whose every check result is shown side by side.
CHECK_GRID_VALIDATIONS = 10
#: Quarantine groups (rule, column and file) listed, largest first.
MAX_QUARANTINE_GROUPS = 50
#: Example rows shown per quarantine group, by line number.
EXAMPLES_PER_GROUP = 3
#: Rejected files listed, newest first.
MAX_REJECTED = 50
#: Delta commits listed per table, newest first.
HISTORY_PER_TABLE = 10


@dataclass(frozen=True, slots=True, kw_only=True)
class RunSummary:
    """One run, from its record.

    Attributes:
        run_id: the run.
        engine: the engine that ran it.
        started_at: when it started (UTC).
        finished_at: when it finished.
        ok: whether no step, no file and no error-severity check failed.
        failed_step: the step that failed, if one did.
        error: why it failed.
        step_seconds: wall seconds per step, in pipeline order.
        files_by_status: how many files it saw, by status value (statuses with files only).
        totals: its row counts summed over its files.
        checks: how many checks it ran.
        checks_failed: error-severity checks that failed (they fail the run).
        checks_warned: warn-severity checks that failed.
        warnings: its warning lines (rejected files, schema drift, an unwritten record).
    """

    run_id: str
    engine: str
    started_at: datetime
    finished_at: datetime
    ok: bool
    failed_step: str | None
    error: str | None
    step_seconds: Mapping[str, float]
    files_by_status: Mapping[str, int]
    totals: RowCounts
    checks: int
    checks_failed: int
    checks_warned: int
    warnings: tuple[str, ...]

    @property
    def seconds(self) -> float:
        """The run's wall time."""
        return (self.finished_at - self.started_at).total_seconds()

    @property
    def files(self) -> int:
        """How many files the run saw."""
        return sum(self.files_by_status.values())


@dataclass(frozen=True, slots=True, kw_only=True)
class DriftedFile:
    """A loaded file whose header had columns not in the schema (kept in ``_rescued_data``).

    Attributes:
        run_id: the run that loaded it.
        source_path: its ``raw-data/`` key.
        entity: its entity.
        columns: the header names not in the schema.
        rows: its rows read.
    """

    run_id: str
    source_path: str
    entity: str | None
    columns: tuple[str, ...]
    rows: int


@dataclass(frozen=True, slots=True, kw_only=True)
class RejectedFile:
    """A file a run rejected (``ingest_log`` status ``rejected``).

    Attributes:
        run_id: the run.
        entity: its entity (``unknown`` when none).
        source_path: its ``raw-data/`` key.
        reason: the logged reason, starting with a stable name.
        destination: where it was moved (its ``rejected/`` key), or None.
        finished_at: when its outcome was decided.
    """

    run_id: str
    entity: str
    source_path: str
    reason: str
    destination: str | None
    finished_at: datetime | None


@dataclass(frozen=True, slots=True, kw_only=True)
class QuarantineExample:
    """One quarantined row shown as an example.

    Attributes:
        line_number: its physical line in the source file (the header is line 1).
        reason: the readable reason.
        raw_record: the record as the JSON object of strings stored in ``quarantine``.
    """

    line_number: int | None
    reason: str
    raw_record: str


@dataclass(frozen=True, slots=True, kw_only=True)
class QuarantineGroup:
    """The rows one rule refused for one column of one file.

    Attributes:
        rule: the rule.
        column_name: the column at fault (None for ``wrong_field_count``).
        source_file: the file's ``raw-data/`` key.
        entity: the file's entity.
        rows: how many rows.
        examples: up to :data:`EXAMPLES_PER_GROUP` of them, by line.
    """

    rule: str
    column_name: str | None
    source_file: str
    entity: str
    rows: int
    examples: tuple[QuarantineExample, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class ValidationSummary:
    """One validation (a run's validate step or a ``lakehouse validate``).

    Attributes:
        run_id: its run id.
        checked_at: when it ran.
        checks: how many checks.
        failed_errors: error-severity checks that failed.
        failed_warnings: warn-severity checks that failed.
    """

    run_id: str
    checked_at: datetime | None
    checks: int
    failed_errors: int
    failed_warnings: int


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckOutcome:
    """One check's result in one validation.

    Attributes:
        passed: whether it passed.
        observed: the count it measured.
        expected: the count it should be.
    """

    passed: bool
    observed: int
    expected: int


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckHistory:
    """One check over the validations of :attr:`LakeReport.check_grid_runs`.

    Attributes:
        table_name: the table checked.
        check_name: the check.
        severity: its severity in the newest validation that ran it.
        outcomes: its outcome in each validation of the grid (None: not run then).
    """

    table_name: str
    check_name: str
    severity: str
    outcomes: tuple[CheckOutcome | None, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class TableReport:
    """One of the lake's tables.

    Attributes:
        name: the name SQL uses.
        kind: ``curated`` or ``audit``.
        location: its URI.
        version: its latest Delta version (None: not created yet).
        rows: its rows at that version.
        data_files: Parquet files stored, including those only older versions read
            (until ``vacuum`` deletes them).
        data_bytes: their size.
        history: its newest commits (at most :data:`HISTORY_PER_TABLE`), newest first.
    """

    name: str
    kind: str
    location: str
    version: int | None
    rows: int | None
    data_files: int
    data_bytes: int
    history: tuple[CommitRecord, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class LakeReport:
    """Everything ``lakehouse report`` shows of a lake, bounded (see the module's constants).

    Attributes:
        root: the lake root.
        generated_at: when the report was gathered.
        runs: the newest run records (at most :data:`MAX_RUNS`), newest first.
        runs_total: run records in the lake.
        unreadable_runs: one line per run record that could not be read.
        files_by_status: files over every run, by status value (``ingest_log``).
        rejected: the newest rejected files (at most :data:`MAX_REJECTED`).
        drift: files with columns not in the schema, in the runs of :attr:`runs`.
        quarantine_by_rule: quarantined rows by rule, over every run.
        quarantine_groups: the largest rule, column and file groups, largest first.
        quarantine_groups_total: how many such groups there are.
        validations: the newest validations (at most :data:`MAX_VALIDATIONS`), newest first.
        validations_total: how many validations there are.
        check_grid_runs: the run ids of the newest validations (at most
            :data:`CHECK_GRID_VALIDATIONS`), oldest first: the columns of :attr:`checks`.
        checks: every check of those validations, with its outcome in each.
        tables: every table of the lake, curated first.
    """

    root: str
    generated_at: datetime
    runs: tuple[RunSummary, ...]
    runs_total: int
    unreadable_runs: tuple[str, ...]
    files_by_status: Mapping[str, int]
    rejected: tuple[RejectedFile, ...]
    drift: tuple[DriftedFile, ...]
    quarantine_by_rule: Mapping[str, int]
    quarantine_groups: tuple[QuarantineGroup, ...]
    quarantine_groups_total: int
    validations: tuple[ValidationSummary, ...]
    validations_total: int
    check_grid_runs: tuple[str, ...]
    checks: tuple[CheckHistory, ...]
    tables: tuple[TableReport, ...] = field(default=())

    @property
    def last_run(self) -> RunSummary | None:
        """The newest run, or None before the first."""
        return self.runs[0] if self.runs else None

    @property
    def quarantined_rows(self) -> int:
        """Quarantined rows over every run."""
        return sum(self.quarantine_by_rule.values())

    @property
    def rejected_total(self) -> int:
        """Rejected files over every run."""
        return self.files_by_status.get(FileStatus.REJECTED.value, 0)


class ReportLake:
    """Gather a :class:`LakeReport` of a lake: read-only, no lock."""

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

    def __call__(self) -> LakeReport:
        """Read the run records, audit tables and table histories into a report."""
        generated_at = self._clock()
        infos = DescribeTables(self._engine, self._storage, self._query)()
        # An audit table no run created yet cannot be queried: its part stays empty.
        created = {info.name for info in infos if info.version is not None}
        runs, drift, runs_total, unreadable = self._runs()
        logged = INGEST_LOG.name in created
        quarantined = QUARANTINE.name in created
        groups, groups_total = self._quarantine_groups() if quarantined else ((), 0)
        validations, validations_total, grid_runs, checks = (
            self._validations() if VALIDATION_RESULTS.name in created else ((), 0, (), ())
        )
        return LakeReport(
            root=self._storage.root_uri,
            generated_at=generated_at,
            runs=runs,
            runs_total=runs_total,
            unreadable_runs=unreadable,
            files_by_status=self._files_by_status() if logged else {},
            rejected=self._rejected() if logged else (),
            drift=drift,
            quarantine_by_rule=self._by_rule() if quarantined else {},
            quarantine_groups=groups,
            quarantine_groups_total=groups_total,
            validations=validations,
            validations_total=validations_total,
            check_grid_runs=grid_runs,
            checks=checks,
            tables=tuple(self._table(info) for info in infos),
        )

    # ------------------------------------------------------------------ run records

    def _runs(
        self,
    ) -> tuple[tuple[RunSummary, ...], tuple[DriftedFile, ...], int, tuple[str, ...]]:
        keys = [o.key for o in self._storage.list(RUNS) if o.key.endswith(".json")]
        read: list[RunResult] = []
        unreadable: list[str] = []
        for key in keys[-MAX_RUNS:]:
            try:
                read.append(RunResult.from_dict(json.loads(self._storage.read_bytes(key))))
            except (ValueError, OSError) as error:
                # A record a person edited or a newer release wrote: named, not fatal.
                unreadable.append(f"{key}: {describe_error(error)}")
        read.sort(key=lambda run: (_aware(run.started_at), run.run_id), reverse=True)
        drift = tuple(
            DriftedFile(
                run_id=result.run_id,
                source_path=f.file.key,
                entity=f.file.entity,
                columns=f.rescued_columns,
                rows=f.counts.rows_read,
            )
            for result in read
            for f in result.files
            if f.rescued_columns
        )
        return tuple(_summary(r) for r in read), drift, len(keys), tuple(unreadable)

    # ------------------------------------------------------------------ ingest_log

    def _files_by_status(self) -> dict[str, int]:
        # Files as runs saw them: not the rows a restore or forget wrote about earlier loads.
        commands = f"'{FileStatus.ROLLED_BACK.value}', '{FileStatus.FORGOTTEN.value}'"
        rows = self._rows(
            f"SELECT status, COUNT(*) AS n FROM {INGEST_LOG.name} "
            f"WHERE status NOT IN ({commands}) "
            f"AND (error IS NULL OR error NOT LIKE '{REINSTATED}:%') GROUP BY status"
        )
        counts = {str(row["status"]): _int(row["n"]) for row in rows}
        return _in_status_order(counts)

    def _rejected(self) -> tuple[RejectedFile, ...]:
        rows = self._rows(
            "SELECT run_id, entity, source_path, error, destination, finished_at "
            f"FROM {INGEST_LOG.name} WHERE status = '{FileStatus.REJECTED.value}' "
            f"ORDER BY finished_at DESC, source_path LIMIT {MAX_REJECTED}"
        )
        return tuple(
            RejectedFile(
                run_id=_str(row["run_id"]),
                entity=_str(row["entity"]),
                source_path=_str(row["source_path"]),
                reason=_str(row["error"]) or "no reason given",
                destination=_optional_str(row["destination"]),
                finished_at=_moment(row["finished_at"]),
            )
            for row in rows
        )

    # ------------------------------------------------------------------ quarantine

    def _by_rule(self) -> dict[str, int]:
        rows = self._rows(f"SELECT rule, COUNT(*) AS n FROM {QUARANTINE.name} GROUP BY rule")
        counts = {_str(row["rule"]): _int(row["n"]) for row in rows}
        return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))

    def _quarantine_groups(self) -> tuple[tuple[QuarantineGroup, ...], int]:
        group = "rule, column_name, source_file"
        limit = MAX_QUARANTINE_GROUPS * EXAMPLES_PER_GROUP
        # The largest groups with their first rows, in one scan: the first MAX groups of
        # the order take at most `limit` rows, so one more row says that more groups exist.
        rows = self._rows(
            f"SELECT {group}, entity, line_number, reason, raw_record, n FROM ("
            f"SELECT {group}, entity, line_number, reason, raw_record, "
            f"ROW_NUMBER() OVER (PARTITION BY {group} ORDER BY line_number, run_id) AS pick, "
            f"COUNT(*) OVER (PARTITION BY {group}) AS n FROM {QUARANTINE.name}) AS ranked "
            f"WHERE pick <= {EXAMPLES_PER_GROUP} "
            f"ORDER BY n DESC, {group}, pick LIMIT {limit + 1}"
        )
        found: dict[tuple[str, str | None, str], list[dict[str, Any]]] = {}
        for row in rows:
            key = (_str(row["rule"]), _optional_str(row["column_name"]), _str(row["source_file"]))
            found.setdefault(key, []).append(row)
        groups = tuple(
            QuarantineGroup(
                rule=rule,
                column_name=column,
                source_file=source,
                entity=_str(picked[0]["entity"]),
                rows=_int(picked[0]["n"]),
                examples=tuple(
                    QuarantineExample(
                        line_number=_optional_int(row["line_number"]),
                        reason=_str(row["reason"]),
                        raw_record=_str(row["raw_record"]),
                    )
                    for row in picked
                ),
            )
            for (rule, column, source), picked in list(found.items())[:MAX_QUARANTINE_GROUPS]
        )
        if len(rows) <= limit and len(found) <= MAX_QUARANTINE_GROUPS:
            return groups, len(groups)
        counted = self._rows(
            f"SELECT COUNT(*) AS n FROM (SELECT {group} FROM {QUARANTINE.name} "
            f"GROUP BY {group}) AS g"
        )
        return groups, _int(counted[0]["n"])

    # ------------------------------------------------------------------ validation_results

    def _validations(
        self,
    ) -> tuple[tuple[ValidationSummary, ...], int, tuple[str, ...], tuple[CheckHistory, ...]]:
        table = VALIDATION_RESULTS.name
        failed = "CASE WHEN passed THEN 0 ELSE 1 END"
        error = Severity.ERROR.value
        rows = self._rows(
            "SELECT run_id, MAX(checked_at) AS last_checked, COUNT(*) AS checks, "
            f"SUM(CASE WHEN severity = '{error}' THEN {failed} ELSE 0 END) AS failed_errors, "
            f"SUM(CASE WHEN severity = '{error}' THEN 0 ELSE {failed} END) AS failed_warnings "
            f"FROM {table} GROUP BY run_id "
            f"ORDER BY last_checked DESC, run_id DESC LIMIT {MAX_VALIDATIONS}"
        )
        total = len(rows)
        if total == MAX_VALIDATIONS:
            counted = self._rows(f"SELECT COUNT(DISTINCT run_id) AS n FROM {table}")
            total = _int(counted[0]["n"])
        validations = tuple(
            ValidationSummary(
                run_id=_str(row["run_id"]),
                checked_at=_moment(row["last_checked"]),
                checks=_int(row["checks"]),
                failed_errors=_int(row["failed_errors"]),
                failed_warnings=_int(row["failed_warnings"]),
            )
            for row in rows
        )
        grid_runs = tuple(v.run_id for v in reversed(validations[:CHECK_GRID_VALIDATIONS]))
        # Every check of the newest validations: those at or after the Nth newest instant.
        results = self._rows(
            "SELECT run_id, table_name, check_name, severity, passed, observed, expected "
            f"FROM {table} WHERE checked_at >= (SELECT MIN(t) FROM ("
            f"SELECT checked_at AS t FROM {table} GROUP BY checked_at "
            f"ORDER BY 1 DESC LIMIT {CHECK_GRID_VALIDATIONS}) AS recent)"
        )
        column = {run_id: n for n, run_id in enumerate(grid_runs)}
        cells: dict[tuple[str, str], list[CheckOutcome | None]] = {}
        severities: dict[tuple[str, str], tuple[int, str]] = {}
        for row in results:
            run_id = _str(row["run_id"])
            if run_id not in column:
                continue
            key = (_str(row["table_name"]), _str(row["check_name"]))
            cells.setdefault(key, [None] * len(grid_runs))[column[run_id]] = CheckOutcome(
                passed=bool(row["passed"]),
                observed=_int(row["observed"]),
                expected=_int(row["expected"]),
            )
            severities[key] = max(
                severities.get(key, (-1, "")), (column[run_id], _str(row["severity"]))
            )
        checks = tuple(
            CheckHistory(
                table_name=table,
                check_name=check,
                severity=severities[(table, check)][1],
                outcomes=tuple(cells[(table, check)]),
            )
            for table, check in sorted(cells)
        )
        return validations, total, grid_runs, checks

    # ------------------------------------------------------------------ tables

    def _table(self, info: TableInfo) -> TableReport:
        history: tuple[CommitRecord, ...] = ()
        stored: list[int] = []
        if info.version is not None:
            history = tuple(
                self._engine.history(table_ref(self._storage, info.name), HISTORY_PER_TABLE)
            )
            folder = audit_key(info.name) if info.kind == "audit" else table_key(info.name)
            stored = [
                o.size_bytes
                for o in self._storage.list(folder)
                if o.key.endswith(".parquet") and "/_delta_log/" not in o.key
            ]
        return TableReport(
            name=info.name,
            kind=info.kind,
            location=info.location,
            version=info.version,
            rows=info.rows,
            data_files=len(stored),
            data_bytes=sum(stored),
            history=history,
        )

    def _rows(self, sql: str) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = self._query.sql(sql).to_pylist()
        return rows


def _summary(result: RunResult) -> RunSummary:
    statuses: dict[str, int] = {}
    for outcome in result.files:
        statuses[outcome.status.value] = statuses.get(outcome.status.value, 0) + 1
    failed = [c for c in result.checks if not c.passed]
    return RunSummary(
        run_id=result.run_id,
        engine=result.engine,
        started_at=_aware(result.started_at),
        finished_at=_aware(result.finished_at),
        ok=result.ok,
        failed_step=result.failed_step,
        error=result.error,
        step_seconds=dict(result.step_seconds),
        files_by_status=_in_status_order(statuses),
        totals=result.totals(),
        checks=len(result.checks),
        checks_failed=sum(c.fails_run for c in failed),
        checks_warned=sum(not c.fails_run for c in failed),
        warnings=result.warnings,
    )


def _in_status_order(counts: Mapping[str, int]) -> dict[str, int]:
    # The contract's status order; a status a newer release logs goes last.
    order = {status.value: n for n, status in enumerate(FileStatus)}
    return dict(sorted(counts.items(), key=lambda item: (order.get(item[0], len(order)), item)))


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _moment(value: object) -> datetime | None:
    return _aware(value) if isinstance(value, datetime) else None


def _str(value: object) -> str:
    return "" if value is None else str(value)


def _optional_str(value: object) -> str | None:
    return None if value is None else str(value)


def _int(value: object) -> int:
    # SUM over integers is a HUGEINT in DuckDB, which Arrow hands over as a Decimal.
    return int(value) if isinstance(value, int | float | Decimal) else 0


def _optional_int(value: object) -> int | None:
    return None if value is None else _int(value)
