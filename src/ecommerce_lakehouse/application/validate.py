"""Run the table validation checks and record them in ``validation_results``.

See docs/contract.md#validation.

A validation checks what changed since the last one. Each validation leaves a small state
document at ``VALIDATION_STATE_KEY``: the Delta version of every curated table it read and,
per check, the result, a fingerprint of the check's SQL and, for a foreign-key check, its
orphans (when there are at most ``ORPHAN_LIMIT``). The next validation walks each table's
Delta history back to the recorded version; when every commit since is a MERGE or append
stamped with a run id (``lakehouse.run_id``) or keeps the rows as they were (OPTIMIZE,
an added column, ...), the rows those runs wrote carry their ids in ``_run_id`` and every
other row is as the last validation saw it, so each check can be scoped to the runs' rows
(``ecommerce_lakehouse.domain.validation.scoped_check``) with the same result as the full
check. Anything else (no state, a restore or any commit by something else, a check whose
SQL changed, an earlier failure of a check) runs the full check.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ecommerce_lakehouse.application.ingest_log import META_RUN_ID, run_metadata
from ecommerce_lakehouse.application.log_statistics import decided, value_range
from ecommerce_lakehouse.application.run import Clock, utc_now
from ecommerce_lakehouse.application.tables import audit_ref, curated_ref
from ecommerce_lakehouse.domain.audit import VALIDATION_RESULTS
from ecommerce_lakehouse.domain.errors import LakehouseError
from ecommerce_lakehouse.domain.schemas import SCHEMAS, TableSchema
from ecommerce_lakehouse.domain.validation import (
    SAMPLE_SIZE,
    Check,
    CheckKind,
    CheckResult,
    RowCount,
    ValidationPolicy,
    all_checks,
    kept_orphans_sql,
    ledger_count,
    literal_ok,
    orphans_count_sql,
    orphans_sql,
    row_count,
    scalars_sql,
    scoped_check,
)
from ecommerce_lakehouse.ports.engine import CommitRecord, FileStatistics, TableEngine, TableRef
from ecommerce_lakehouse.ports.query import QueryService
from ecommerce_lakehouse.ports.storage import ObjectStorage

#: The state a validation leaves for the next one (next to ``_catalogue.sqlite``).
VALIDATION_STATE_KEY = "_validation_state.json"
#: The most orphans of one foreign-key check the state keeps; with more, it runs in full.
ORPHAN_LIMIT = 1000
_STATE_FORMAT = 1
#: Commits stamped with a run id whose new or rewritten rows carry that id in ``_run_id``.
_RUN_OPERATIONS = frozenset({"MERGE", "WRITE"})
#: Commits that keep every row as it was.
_ROW_PRESERVING = frozenset(
    {"OPTIMIZE", "ADD COLUMN", "ADD COLUMNS", "SET TBLPROPERTIES", "UPGRADE PROTOCOL"}
)
_CREATE = frozenset({"CREATE TABLE"})
#: Commit metrics that mean rows were added or files removed.
_ROW_METRICS = ("num_added_rows", "num_added_files", "num_removed_files", "num_output_rows")


def _scalars(
    query: QueryService, values: Sequence[str | RowCount | int], alone: Sequence[bool]
) -> list[int]:
    """The integers of one-value queries, row counts and known values.

    One statement for all but the queries marked ``alone``, which get one each: one plan,
    one session and one registration of each table instead of one per query, one scan per
    table for its row counts, and the heavy queries (a whole table's keys grouped or
    joined) one after another, so that an engine does not hold all their hash tables at
    once.
    """
    answers: dict[int, int] = {}
    batches = [[i for i, value in enumerate(values) if not isinstance(value, int) and not alone[i]]]
    batches += [[i] for i, value in enumerate(values) if not isinstance(value, int) and alone[i]]
    for batch in batches:
        if not batch:
            continue
        queries = [value for i in batch if not isinstance(value := values[i], int)]
        rows = query.sql(scalars_sql(queries)).to_pylist()
        if len(rows) != 1 or len(rows[0]) != len(batch):
            raise LakehouseError(
                f"a validation query returned {len(rows)} rows, expected one row of "
                f"{len(batch)} values"
            )
        answers.update(zip(batch, (int(v or 0) for v in rows[0].values()), strict=True))
    return [value if isinstance(value, int) else answers[i] for i, value in enumerate(values)]


def fingerprint(check: Check) -> str:
    """A digest of everything that decides a check's counts (not its severity)."""
    text = "\n".join(
        [
            check.observed_sql,
            check.expected_sql or str(check.expected_value),
            check.sample_sql or "",
        ]
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True, kw_only=True)
class _Recorded:
    fingerprint: str
    observed: int
    passed: bool
    orphans: tuple[tuple[str, ...], ...] | None = None


@dataclass(slots=True)
class _State:
    tables: dict[str, tuple[int, str | None] | None] = field(default_factory=dict)
    checks: dict[str, _Recorded] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Plan:
    """How one check is counted: by ``sql``, or ``known`` without a query."""

    sql: Check
    scoped: bool
    known: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ValidationScope:
    """How a validation ran.

    Attributes:
        runs: the runs whose rows the scoped checks read (empty: nothing changed since the
            last validation), or None when every check ran over whole tables.
        full_checks: the checks (``table.check``) that still ran over whole tables.
        reason: why the validation ran in full, when ``runs`` is None.
        from_statistics: the checks (``table.check``) whose count the tables' Delta log
            statistics decided, without reading rows (log_statistics).
    """

    runs: tuple[str, ...] | None
    full_checks: tuple[str, ...] = ()
    reason: str = ""
    from_statistics: tuple[str, ...] = ()

    def describe(self) -> str:
        """One line for progress displays."""
        counted = (
            f"; {len(self.from_statistics)} decided by the Delta log's statistics"
            if self.from_statistics
            else ""
        )
        if self.runs is None:
            return f"full checks ({self.reason}){counted}"
        runs = ", ".join(self.runs) or "none"
        full = f"; in full: {', '.join(self.full_checks)}" if self.full_checks else ""
        return f"checks scoped to the rows of run(s) {runs}{full}{counted}"


def _check_id(check: Check) -> str:
    return f"{check.table_name}.{check.check_name}"


def _orphan_rows(rows: Sequence[Mapping[str, Any]]) -> tuple[tuple[str, ...], ...] | None:
    """Orphan rows as plain tuples, or None when one cannot be spliced back into SQL."""
    out = []
    for row in rows:
        values = tuple(row.values())
        if any(not isinstance(v, str) or not literal_ok(v) for v in values):
            return None
        out.append(tuple(str(v) for v in values))
    return tuple(out)


def _stamp(commit: CommitRecord) -> str | None:
    return commit.timestamp.isoformat() if commit.timestamp else None


def _changed_by(commit: CommitRecord) -> str | None:
    """The run a commit belongs to, "" for one that keeps every row, None for anything else."""
    run = commit.metadata.get(META_RUN_ID)
    removed = commit.metrics.get("num_removed_files", 0)
    if commit.operation in _RUN_OPERATIONS and run and literal_ok(run):
        # An append or a MERGE; a WRITE that removed files overwrote rows.
        return run if commit.operation == "MERGE" or not removed else None
    if commit.operation in _ROW_PRESERVING:
        # Whoever made it: a run's own compaction and ``lakehouse optimize`` stamp theirs.
        return ""
    if commit.operation in _CREATE and not any(commit.metrics.get(m) for m in _ROW_METRICS):
        return ""
    return None


class ValidateTables:
    """Evaluate the checks through the query port and append the results.

    After a call, :attr:`scope` tells how the checks ran.
    """

    def __init__(
        self,
        query: QueryService,
        engine: TableEngine[Any],
        storage: ObjectStorage,
        clock: Clock = utc_now,
        schemas: Sequence[TableSchema] = SCHEMAS,
    ) -> None:
        self._query = query
        self._engine = engine
        self._storage = storage
        self._clock = clock
        self._schemas = {s.name: s for s in schemas}
        self.scope = ValidationScope(runs=None, reason="not run yet")
        # Each table's Delta log statistics, read at most once per validation.
        self._statistics: dict[str, tuple[FileStatistics, ...] | None] = {}

    def evaluate(self, check: Check) -> CheckResult:
        """Evaluate one check over whole tables."""
        return self._evaluate([(check, check, None)])[0]

    def _evaluate(self, planned: Sequence[tuple[Check, Check, int | None]]) -> list[CheckResult]:
        """Evaluate ``(check, sql, known)`` triples with one query for all their counts.

        ``sql`` is the form of the check run, ``known`` an observed count known without a
        query. A failed check's sample is one more query.
        """
        values: list[str | RowCount | int] = []
        alone: list[bool] = []
        for check, sql, known in planned:
            values.append(row_count(sql) or sql.observed_sql if known is None else known)
            # Key checks group or join a whole table's keys, scoped or not.
            alone.append(check.kind in (CheckKind.UNIQUE, CheckKind.FOREIGN_KEY))
            if sql.expected_sql is not None:
                values.append(ledger_count(sql) or sql.expected_sql)
                alone.append(False)
        counts = iter(_scalars(self._query, values, alone))
        results = []
        for check, sql, _ in planned:
            observed = next(counts)
            expected = next(counts) if sql.expected_sql is not None else sql.expected_value
            sample: tuple[str, ...] = ()
            if observed != expected and sql.sample_sql is not None:
                rows = self._query.sql(sql.sample_sql).to_pylist()
                sample = tuple(str(next(iter(row.values()))) for row in rows)
            results.append(_result(check, observed, expected, sample))
        return results

    def __call__(
        self, run_id: str, policy: ValidationPolicy | None = None, *, full: bool = False
    ) -> list[CheckResult]:
        """Evaluate every check of ``policy`` and record the results under ``run_id``.

        Args:
            run_id: the run the results are recorded under.
            policy: severities.
            full: evaluate every check by its SQL over whole tables, whatever the last
                validation saw and whatever the Delta log's statistics say.
        """
        checks = all_checks(policy, tuple(self._schemas.values()))
        self._statistics = {}
        marks = {name: self._mark(name) for name in self._schemas}
        state = None if full else self._read_state()
        by_table, reason = (None, "--full") if full else self._runs_since(state, marks)
        runs = None if by_table is None else set().union(*by_table.values())
        recorded = state.checks if state is not None and by_table is not None else {}
        # Tables no run wrote since the last validation are the versions it read.
        unchanged = {name for name, found in (by_table or {}).items() if not found}
        # Every count first, the foreign keys' orphans included (a few statements, see
        # _scalars): on a lake without orphans that is the whole validation. Orphans are
        # listed afterwards (the state keeps them), and a key check scoped on the assumption
        # that its table's keys are unique runs again if they are not.
        plans = {_check_id(check): self._plan(check, runs, recorded, unchanged) for check in checks}
        from_statistics = []
        for check_id, plan in plans.items():
            # --full reads the rows themselves: it also catches a data file changed in
            # place, behind the log its statistics come from.
            if plan is not None and plan.known is None and not full:
                schema = self._schemas[plan.sql.table_name]
                files = self._files(schema)
                known = None if files is None else decided(plan.sql, schema, files)
                if known is not None:
                    plans[check_id] = replace(plan, known=known)
                    from_statistics.append(check_id)
        batched = [check for check in checks if plans[_check_id(check)] is not None]
        evaluated = self._evaluate(
            [
                (check, plan.sql, plan.known)
                for check in batched
                if (plan := plans[_check_id(check)])
            ]
        )
        outcomes: dict[str, tuple[CheckResult, tuple[tuple[str, ...], ...] | None, bool]] = {}
        for check, result in zip(batched, evaluated, strict=True):
            plan = plans[_check_id(check)]
            assert plan is not None
            outcomes[_check_id(check)] = (result, None, plan.scoped)
        done = {check_id: outcome[0] for check_id, outcome in outcomes.items()}
        for check in checks:
            if check.kind is not CheckKind.FOREIGN_KEY:
                continue
            counted = outcomes.get(_check_id(check))
            unique = done.get(f"{check.table_name}.primary_key_unique")
            if counted is None or counted[0].observed or (counted[2] and not _passed(unique)):
                outcomes[_check_id(check)] = self._foreign_key(
                    check, runs, recorded, done, unchanged
                )
            else:
                outcomes[_check_id(check)] = (counted[0], (), counted[2])
        results: list[CheckResult] = []
        fresh: dict[str, _Recorded] = {}
        full_checks: list[str] = []
        for check in checks:
            result, orphans, scoped = outcomes[_check_id(check)]
            if runs is not None and not scoped:
                full_checks.append(_check_id(check))
            results.append(result)
            fresh[_check_id(check)] = _Recorded(
                fingerprint=fingerprint(check),
                observed=result.observed,
                passed=result.passed,
                orphans=orphans,
            )
        self.scope = ValidationScope(
            runs=None if runs is None else tuple(sorted(runs)),
            full_checks=tuple(full_checks),
            reason=reason,
            from_statistics=tuple(from_statistics),
        )
        self._record(run_id, results)
        self._write_state(_State(tables=marks, checks=fresh))
        return results

    # ---- what changed since the last validation -------------------------------------------

    def _mark(self, name: str) -> tuple[int, str | None] | None:
        latest = self._engine.history(curated_ref(self._storage, self._schemas[name]), 1)
        return (latest[0].version, _stamp(latest[0])) if latest else None

    def _runs_since(
        self, state: _State | None, marks: Mapping[str, tuple[int, str | None] | None]
    ) -> tuple[dict[str, set[str]] | None, str]:
        """The runs that wrote each table since ``state``; None and why, if none can say."""
        if state is None:
            return None, "no earlier validation"
        if set(state.tables) != set(marks):
            return None, "the catalogue changed since the last validation"
        runs: dict[str, set[str]] = {}
        for name, schema in self._schemas.items():
            found = self._table_runs(curated_ref(self._storage, schema), state.tables[name])
            if found is None:
                return None, f"{name} changed other than by a run since the last validation"
            runs[name] = found
        return runs, ""

    def _table_runs(self, ref: TableRef, mark: tuple[int, str | None] | None) -> set[str] | None:
        limit = 8
        while True:
            commits = self._engine.history(ref, limit)
            runs: set[str] = set()
            for commit in commits:  # newest first
                if mark is not None and commit.version <= mark[0]:
                    # The validated version must still be the one validated (not rolled back
                    # and written again, nor a table deleted and created anew).
                    same = commit.version == mark[0] and _stamp(commit) == mark[1]
                    return runs if same else None
                run = _changed_by(commit)
                if run is None:
                    return None
                if run:
                    runs.add(run)
            if len(commits) < limit:  # the whole history was read
                return runs if mark is None else None
            limit *= 4

    # ---- the checks ------------------------------------------------------------------------

    def _bounds(self, schema: TableSchema, column: str, runs: set[str]) -> tuple[str, str] | None:
        """Bounds of the values of ``column`` in the rows ``runs`` wrote, from the statistics."""
        files = self._files(schema)
        return None if files is None else value_range(column, sorted(runs), files)

    def _fk_bounds(
        self, check: Check, child: TableSchema, runs: set[str]
    ) -> tuple[str, str] | None:
        if check.reference is None:
            raise ValueError(f"{check.check_name} is not a foreign-key check")
        return self._bounds(child, check.reference[0], runs)

    def _files(self, schema: TableSchema) -> tuple[FileStatistics, ...] | None:
        """The Delta log statistics of the table's files (None when the log cannot vouch)."""
        if schema.name not in self._statistics:
            ref = curated_ref(self._storage, schema)
            self._statistics[schema.name] = self._engine.file_statistics(ref)
        return self._statistics[schema.name]

    def _sound(
        self, check: Check, runs: set[str] | None, recorded: Mapping[str, _Recorded]
    ) -> _Recorded | None:
        """The check's last recorded result when it may be scoped to ``runs``, else None."""
        before = recorded.get(_check_id(check))
        if (
            runs is None
            or before is None
            or before.fingerprint != fingerprint(check)
            or not all(literal_ok(run) for run in runs)
        ):
            return None
        return before

    def _scopable_key(
        self, check: Check, runs: set[str] | None, recorded: Mapping[str, _Recorded]
    ) -> _Recorded | None:
        """A foreign-key check's last result when it may be scoped to ``runs``.

        It may when its orphans were listed and its table's keys were unique (as they must
        still be, which this validation's uniqueness check tells).
        """
        before = self._sound(check, runs, recorded)
        unique_before = recorded.get(f"{check.table_name}.primary_key_unique")
        if before is None or before.orphans is None or not _passed_recorded(unique_before):
            return None
        return before

    def _plan(
        self,
        check: Check,
        runs: set[str] | None,
        recorded: Mapping[str, _Recorded],
        unchanged: set[str],
    ) -> _Plan | None:
        """How a check is counted: its SQL (scoped or whole), or its count when known.

        A foreign-key check is planned as the count of its orphans, scoped when its earlier
        orphans were none; None when it has earlier orphans (they are checked one by one).
        Over tables no run wrote since the last validation, a check's count is the one
        recorded then (the tables are the versions it read).
        """
        before = self._sound(check, runs, recorded)
        table = check.table_name
        schema = self._schemas[table]
        if check.kind is CheckKind.FOREIGN_KEY:
            before = self._scopable_key(check, runs, recorded)
            if runs is None or before is None:
                return _Plan(replace(check, sample_sql=None), scoped=False)
            if before.orphans:
                return None
            known = 0 if _key_tables(check) <= unchanged else None
            bounds = None if known is not None else self._fk_bounds(check, schema, runs)
            counted = replace(
                check,
                observed_sql=orphans_count_sql(check, schema, sorted(runs), bounds),
                sample_sql=None,
            )
            return _Plan(counted, scoped=True, known=known)
        if check.kind is CheckKind.UNIQUE:
            not_null = recorded.get(f"{table}.primary_key_not_null")
            if not_null is None or not_null.observed != 0:
                before = None
        if runs is not None and before is not None:
            if check.kind is CheckKind.COUNT and table in unchanged:
                return _Plan(check, scoped=True, known=before.observed)
            if before.observed == 0 and check.kind in (CheckKind.ROW, CheckKind.UNIQUE):
                # A key check reads only the stored keys the runs' keys may equal.
                bounds = None
                one_key = len(schema.primary_key) == 1
                if check.kind is CheckKind.UNIQUE and one_key and table not in unchanged:
                    bounds = self._bounds(schema, schema.primary_key[0], runs)
                scoped = scoped_check(check, schema, sorted(runs), bounds)
                return _Plan(scoped, scoped=True, known=0 if table in unchanged else None)
        return _Plan(check, scoped=check.kind is CheckKind.COUNT)

    def _foreign_key(
        self,
        check: Check,
        runs: set[str] | None,
        recorded: Mapping[str, _Recorded],
        done: Mapping[str, CheckResult],
        unchanged: set[str],
    ) -> tuple[CheckResult, tuple[tuple[str, ...], ...] | None, bool]:
        """The result, the orphans to keep and whether the check was scoped."""
        schema = self._schemas[check.table_name]
        before = self._scopable_key(check, runs, recorded)
        unique = done.get(f"{check.table_name}.primary_key_unique")
        if runs is None or before is None or before.orphans is None or not _passed(unique):
            return (*self._full_foreign_key(check, schema), False)
        if _key_tables(check) <= unchanged:
            # Both tables are the versions the last validation read: the same orphans.
            names = [*(f"k{i}" for i in range(len(schema.primary_key))), "v"]
            listed = [dict(zip(names, orphan, strict=True)) for orphan in before.orphans]
            return self._foreign_key_result(check, listed), before.orphans, True
        return (*self._scoped_foreign_key(check, schema, runs, before.orphans), True)

    def _full_foreign_key(
        self, check: Check, child: TableSchema
    ) -> tuple[CheckResult, tuple[tuple[str, ...], ...] | None]:
        listed = self._query.sql(orphans_sql(check, child, None, ORPHAN_LIMIT + 1)).to_pylist()
        if len(listed) > ORPHAN_LIMIT:
            return self.evaluate(check), None
        return self._foreign_key_result(check, listed), _orphan_rows(listed)

    def _scoped_foreign_key(
        self,
        check: Check,
        child: TableSchema,
        runs: set[str],
        earlier: Sequence[Sequence[str]],
    ) -> tuple[CheckResult, tuple[tuple[str, ...], ...] | None]:
        ordered = sorted(runs)
        bounds = self._fk_bounds(check, child, runs)
        kept = (
            self._query.sql(kept_orphans_sql(check, child, ordered, earlier)).to_pylist()
            if earlier
            else []
        )
        new = self._query.sql(
            orphans_sql(check, child, ordered, ORPHAN_LIMIT + 1, bounds)
        ).to_pylist()
        if len(new) <= ORPHAN_LIMIT:
            listed = [*kept, *new]
            orphans = _orphan_rows(listed) if len(listed) <= ORPHAN_LIMIT else None
            return self._foreign_key_result(check, listed), orphans
        # Too many new orphans to list: count them, sample the smallest keys.
        counting = orphans_count_sql(check, child, ordered, bounds)
        (count,) = _scalars(self._query, [counting], [True])
        return self._foreign_key_result(check, kept, count, new[:SAMPLE_SIZE]), None

    def _foreign_key_result(
        self,
        check: Check,
        listed: Sequence[Mapping[str, Any]],
        unlisted: int = 0,
        smallest: Sequence[Mapping[str, Any]] = (),
    ) -> CheckResult:
        """A foreign-key result from orphan rows ``(k0, .., v)``.

        ``unlisted`` more orphans were counted, not listed: ``smallest`` holds the ones with
        the smallest keys, enough for the sample.
        """
        observed = len(listed) + unlisted
        passed = observed == check.expected_value
        sample: tuple[str, ...] = ()
        if not passed:
            rows = [*listed, *smallest]
            # As ORDER BY 1 LIMIT n: binary order of the text, NULLs last.
            keys = sorted(
                (str(row["k0"]) for row in rows if row["k0"] is not None),
                key=lambda k: k.encode("utf-8", "surrogatepass"),
            )
            keys += ["None"] * sum(1 for row in rows if row["k0"] is None)
            sample = tuple(keys[:SAMPLE_SIZE])
        return _result(check, observed, check.expected_value, sample)

    # ---- recording ------------------------------------------------------------------------

    def _record(self, run_id: str, results: Sequence[CheckResult]) -> None:
        checked_at = self._clock()
        self._engine.append_records(
            audit_ref(self._storage, VALIDATION_RESULTS),
            VALIDATION_RESULTS,
            [
                {
                    "run_id": run_id,
                    "table_name": r.table_name,
                    "check_name": r.check_name,
                    "severity": r.severity.value,
                    "passed": r.passed,
                    "observed": r.observed,
                    "expected": r.expected,
                    "sample": json.dumps(list(r.sample)),
                    "checked_at": checked_at,
                }
                for r in results
            ],
            metadata=run_metadata(run_id),
        )

    def _read_state(self) -> _State | None:
        try:
            if not self._storage.exists(VALIDATION_STATE_KEY):
                return None
            document = json.loads(self._storage.read_bytes(VALIDATION_STATE_KEY))
            if document.get("format") != _STATE_FORMAT:
                return None
            tables = {
                name: None if mark is None else (int(mark[0]), mark[1])
                for name, mark in document["tables"].items()
            }
            checks = {
                name: _Recorded(
                    fingerprint=str(c["fingerprint"]),
                    observed=int(c["observed"]),
                    passed=bool(c["passed"]),
                    orphans=(
                        None
                        if c.get("orphans") is None
                        else tuple(tuple(str(v) for v in o) for o in c["orphans"])
                    ),
                )
                for name, c in document["checks"].items()
            }
        except (OSError, LakehouseError, ValueError, KeyError, TypeError, IndexError):
            return None  # unreadable: the checks run in full and write it anew
        return _State(tables=tables, checks=checks)

    def _write_state(self, state: _State) -> None:
        document = {
            "format": _STATE_FORMAT,
            "tables": {
                name: None if mark is None else [mark[0], mark[1]]
                for name, mark in state.tables.items()
            },
            "checks": {
                name: {
                    "fingerprint": c.fingerprint,
                    "observed": c.observed,
                    "passed": c.passed,
                    "orphans": None if c.orphans is None else [list(o) for o in c.orphans],
                }
                for name, c in state.checks.items()
            },
        }
        self._storage.write_bytes(VALIDATION_STATE_KEY, json.dumps(document).encode())


def _passed(result: CheckResult | None) -> bool:
    return result is not None and result.observed == 0


def _passed_recorded(recorded: _Recorded | None) -> bool:
    return recorded is not None and recorded.observed == 0


def _key_tables(check: Check) -> set[str]:
    """The child and parent tables of a foreign-key check."""
    if check.reference is None:
        raise ValueError(f"{check.check_name} is not a foreign-key check")
    return {check.table_name, check.reference[1]}


def _result(check: Check, observed: int, expected: int, sample: tuple[str, ...]) -> CheckResult:
    return CheckResult(
        table_name=check.table_name,
        check_name=check.check_name,
        severity=check.severity,
        passed=observed == expected,
        observed=observed,
        expected=expected,
        sample=sample,
    )
