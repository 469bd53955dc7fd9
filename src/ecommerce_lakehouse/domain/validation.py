"""Table validation checks, written once in SQL shared by Trino, Spark and DuckDB.

See docs/contract.md#validation.

Every check yields a count: ``observed`` must equal ``expected`` for it to pass. ``sample``
lists up to ten offending keys.

Each check also has a *scoped* form that reads only the rows a set of runs wrote (every
curated row carries the ``_run_id`` of the run that inserted or last updated it). On a lake
whose state before those runs was validated with the check passing, the scoped form counts
exactly what the full check counts (docs/contract.md#validation); the application decides
when that holds. Literals spliced into scoped SQL are plain strings (:func:`literal_ok`),
so the SQL stays in the subset Trino, Spark SQL and DuckDB share.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import StrEnum

from ecommerce_lakehouse.domain.audit import INGEST_LOG
from ecommerce_lakehouse.domain.schemas import RUN_ID, SCHEMAS, TableSchema
from ecommerce_lakehouse.domain.types import FileStatus, Severity

SAMPLE_SIZE = 10


class CheckKind(StrEnum):
    """What a check counts, which decides how it is scoped to a change."""

    #: Offending rows, each judged on its own (nulls, partition consistency): expected 0.
    ROW = "row"
    #: Keys stored more than once: expected 0.
    UNIQUE = "unique"
    #: A row count compared with the ledger: always evaluated over the whole table.
    COUNT = "count"
    #: Child rows whose foreign key has no parent row: expected 0.
    FOREIGN_KEY = "foreign_key"


@dataclass(frozen=True, slots=True, kw_only=True)
class Check:
    """One SQL check.

    Attributes:
        table_name: the table checked.
        check_name: stable name, e.g. ``primary_key_unique``.
        severity: ``error`` fails the run; ``warn`` is reported only.
        observed_sql: returns one row with one integer column.
        expected_sql: returns the expected integer, or None for ``expected_value``.
        expected_value: the expected integer when ``expected_sql`` is None.
        sample_sql: returns up to ``SAMPLE_SIZE`` offending keys in one column.
        kind: what the check counts (how it is scoped).
        condition: for a ``ROW`` check, the predicate an offending row meets.
        within: for a scoped ``ROW`` check, the predicate of the rows it reads (the runs'
            rows); it counts the rows that meet both.
        reference: for a ``FOREIGN_KEY`` check, ``(column, parent table, parent key)``.
        null_columns: for a ``ROW`` check of nulls, the columns of which none may be null.
        derived: for the ``ROW`` check of a derived date, ``(date column, timestamp column)``.
    """

    table_name: str
    check_name: str
    severity: Severity
    observed_sql: str
    sample_sql: str | None = None
    expected_sql: str | None = None
    expected_value: int = 0
    kind: CheckKind = CheckKind.COUNT
    condition: str | None = None
    within: str | None = None
    reference: tuple[str, str, str] | None = None
    null_columns: tuple[str, ...] = ()
    derived: tuple[str, str] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckResult:
    """Outcome of one check in one run (a ``validation_results`` row)."""

    table_name: str
    check_name: str
    severity: Severity
    passed: bool
    observed: int
    expected: int
    sample: tuple[str, ...] = ()

    @property
    def fails_run(self) -> bool:
        """Whether this result makes the run fail."""
        return not self.passed and self.severity is Severity.ERROR

    def as_dict(self) -> dict[str, object]:
        """The result as JSON-ready data: a run's ``checks`` and ``validate --format json``."""
        return {
            "table_name": self.table_name,
            "check_name": self.check_name,
            "severity": self.severity.value,
            "passed": self.passed,
            "observed": self.observed,
            "expected": self.expected,
            "sample": list(self.sample),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class ValidationPolicy:
    """Configurable severities (foreign keys warn by default: items may precede their order)."""

    foreign_key_severity: Severity = Severity.WARN


def _key_expr(schema: TableSchema) -> str:
    # Keys are strings in every schema; composite keys are joined with '|'.
    return " || '|' || ".join(schema.primary_key)


def _loaded(table: str) -> str:
    """The ledger rows that count ``table``'s rows: its loads and the reversals of restores."""
    counted = f"'{FileStatus.LOADED.value}', '{FileStatus.ROLLED_BACK.value}'"
    return f"entity = '{table}' AND status IN ({counted})"


def _ledger_sum(condition: str) -> str:
    return f"SELECT COALESCE(SUM(inserted), 0) AS n FROM {INGEST_LOG.name} WHERE {condition}"


def _count_where(table: str, condition: str) -> str:
    return f"SELECT COUNT(*) AS n FROM {table} WHERE {condition}"


def _sample_where(schema: TableSchema, condition: str) -> str:
    key = _key_expr(schema)
    return f"SELECT {key} AS k FROM {schema.name} WHERE {condition} ORDER BY 1 LIMIT {SAMPLE_SIZE}"


def table_checks(schema: TableSchema) -> list[Check]:
    """The per-table checks (docs/contract.md#validation) for one curated table."""
    table = schema.name
    key_cols = ", ".join(schema.primary_key)
    key_null = " OR ".join(f"{k} IS NULL" for k in schema.primary_key)
    required = [*schema.primary_key, *schema.foreign_keys]
    if schema.ordering_column:
        required.append(schema.ordering_column)
    required_null = " OR ".join(f"{c} IS NULL" for c in dict.fromkeys(required))
    duplicated = f"SELECT {key_cols} FROM {table} GROUP BY {key_cols} HAVING COUNT(*) > 1"
    checks = [
        Check(
            table_name=table,
            check_name="primary_key_unique",
            severity=Severity.ERROR,
            observed_sql=f"SELECT COUNT(*) AS n FROM ({duplicated}) d",
            sample_sql=(
                f"SELECT {_key_expr(schema)} AS k FROM ({duplicated}) d "
                f"ORDER BY 1 LIMIT {SAMPLE_SIZE}"
            ),
            kind=CheckKind.UNIQUE,
        ),
        Check(
            table_name=table,
            check_name="primary_key_not_null",
            severity=Severity.ERROR,
            observed_sql=_count_where(table, key_null),
            kind=CheckKind.ROW,
            condition=key_null,
            null_columns=schema.primary_key,
        ),
        Check(
            table_name=table,
            check_name="required_columns_not_null",
            severity=Severity.ERROR,
            observed_sql=_count_where(table, required_null),
            sample_sql=_sample_where(schema, required_null),
            kind=CheckKind.ROW,
            condition=required_null,
            null_columns=tuple(dict.fromkeys(required)),
        ),
        Check(
            table_name=table,
            check_name="row_count_matches_ingest_log",
            severity=Severity.ERROR,
            observed_sql=f"SELECT COUNT(*) AS n FROM {table}",
            expected_sql=_ledger_sum(_loaded(table)),
        ),
    ]
    if schema.derived_date is not None:
        date_column, ts_column = schema.derived_date
        inconsistent = f"{date_column} IS NULL OR {date_column} <> CAST({ts_column} AS DATE)"
        checks.append(
            Check(
                table_name=table,
                check_name="partition_column_consistent",
                severity=Severity.ERROR,
                observed_sql=_count_where(table, inconsistent),
                sample_sql=_sample_where(schema, inconsistent),
                kind=CheckKind.ROW,
                condition=inconsistent,
                derived=schema.derived_date,
            )
        )
    return checks


def _foreign_key(child: TableSchema, column: str, parent: TableSchema, severity: Severity) -> Check:
    # A foreign key points at the parent's one-column primary key, whatever its name
    # (orders.user_id -> customers.customer_id); all_checks refuses composite parents.
    (parent_key,) = parent.primary_key
    orphan = (
        f"FROM {child.name} c LEFT JOIN {parent.name} p ON c.{column} = p.{parent_key} "
        f"WHERE c.{column} IS NOT NULL AND p.{parent_key} IS NULL"
    )
    key = child.primary_key[0]
    return Check(
        table_name=child.name,
        check_name=f"{column}_in_{parent.name}",
        severity=severity,
        observed_sql=f"SELECT COUNT(*) AS n {orphan}",
        sample_sql=f"SELECT c.{key} AS k {orphan} ORDER BY 1 LIMIT {SAMPLE_SIZE}",
        kind=CheckKind.FOREIGN_KEY,
        reference=(column, parent.name, parent_key),
    )


def all_checks(
    policy: ValidationPolicy | None = None, schemas: Sequence[TableSchema] = SCHEMAS
) -> list[Check]:
    """Every check (docs/contract.md#validation), tables first, then cross-table foreign keys.

    The foreign-key checks follow each schema's ``references``, in schema order; each
    compares the child's column with the parent's primary key.

    Raises:
        ValueError: a reference names a table that is not among ``schemas``, or one whose
            primary key has more than one column.
    """
    policy = policy or ValidationPolicy()
    by_name = {schema.name: schema for schema in schemas}
    checks = [check for schema in schemas for check in table_checks(schema)]
    for child in schemas:
        for column, parent in child.references:
            if parent not in by_name:
                raise ValueError(f"{child.name}.{column} references unknown table {parent}")
            if len(by_name[parent].primary_key) != 1:
                raise ValueError(f"{child.name}.{column} references {parent}: a composite key")
            checks.append(_foreign_key(child, column, by_name[parent], policy.foreign_key_severity))
    return checks


def literal_ok(value: str) -> bool:
    """Whether ``value`` may be spliced into scoped SQL as a string literal.

    Only text without quotes, backslashes and control characters: the one literal form the
    three dialects read alike (Spark SQL treats a backslash as an escape, the others do not).
    """
    return not any(ch in "'\\" or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value)


def _literal(value: str) -> str:
    if not literal_ok(value):
        raise ValueError(f"not a plain SQL literal: {value!r}")
    return f"'{value}'"


def _written_by(run_ids: Sequence[str], alias: str = "") -> str:
    """The predicate of rows the runs wrote (inserted or last updated)."""
    if not run_ids:
        return "1 = 0"
    return f"{alias}{RUN_ID} IN ({', '.join(_literal(r) for r in sorted(set(run_ids)))})"


def scoped_check(
    check: Check,
    schema: TableSchema,
    run_ids: Sequence[str],
    key_range: tuple[str, str] | None = None,
) -> Check:
    """The form of a ``ROW`` or ``UNIQUE`` check that reads only the rows ``run_ids`` wrote.

    When the lake before those runs held no offending row (the check passed and, for
    ``UNIQUE``, no key was null), every offending row is one the runs wrote (``ROW``), and
    every key stored twice is a key they wrote (``UNIQUE``: a key held only by older rows
    was held as often before), so the counts and samples equal the full check's.

    Args:
        check: the check over whole tables.
        schema: its table.
        run_ids: the runs whose rows are read.
        key_range: for a ``UNIQUE`` check of a one-column key, ``(lowest, highest)`` bounds
            of every key the runs wrote. Only stored rows whose key lies between them can
            share one of those keys, so the others are not read: a filter an engine pushes
            into its scan, skipping every file whose key statistics lie outside.

    Raises:
        ValueError: the check is of another kind, a run id or a bound is not a plain
            literal, or ``key_range`` is given for a key of several columns.
    """
    table = schema.name
    written = _written_by(run_ids)
    if check.kind is CheckKind.ROW and check.condition is not None:
        condition = f"{written} AND ({check.condition})"
        return replace(
            check,
            observed_sql=_count_where(table, condition),
            sample_sql=_sample_where(schema, condition) if check.sample_sql else None,
            within=written,
        )
    if check.kind is CheckKind.UNIQUE:
        keys = schema.primary_key
        key_cols = ", ".join(f"t.{k}" for k in keys)
        same_key = " AND ".join(f"w.{k} = t.{k}" for k in keys)
        # Rows with a null key part: only the runs can have written them (none before).
        null_key = " OR ".join(f"t.{k} IS NULL" for k in keys)
        # Two disjoint branches (a key equal to another has no null part), not one OR:
        # the OR kept DuckDB from planning the EXISTS as a semi join (1.4x slower).
        in_range = ""
        if key_range is not None:
            if len(keys) != 1:
                raise ValueError(f"{table} has a key of {len(keys)} columns: no key range")
            low, high = key_range
            in_range = f"t.{keys[0]} BETWEEN {_literal(low)} AND {_literal(high)} AND "
        touched = (
            f"SELECT {key_cols} FROM {table} t "
            f"WHERE {in_range}EXISTS (SELECT 1 FROM {table} w "
            f"WHERE {_written_by(run_ids, 'w.')} AND {same_key}) "
            f"UNION ALL SELECT {key_cols} FROM {table} t "
            f"WHERE {_written_by(run_ids, 't.')} AND ({null_key})"
        )
        bare = ", ".join(keys)
        duplicated = f"SELECT {bare} FROM ({touched}) t GROUP BY {bare} HAVING COUNT(*) > 1"
        return replace(
            check,
            observed_sql=f"SELECT COUNT(*) AS n FROM ({duplicated}) d",
            sample_sql=(
                f"SELECT {_key_expr(schema)} AS k FROM ({duplicated}) d "
                f"ORDER BY 1 LIMIT {SAMPLE_SIZE}"
            ),
        )
    raise ValueError(f"{check.check_name} has no scoped form")


def _orphan_join(
    check: Check, child: TableSchema, value_range: tuple[str, str] | None = None
) -> tuple[str, str]:
    if check.reference is None:
        raise ValueError(f"{check.check_name} is not a foreign-key check")
    column, parent, parent_key = check.reference
    selected = ", ".join(f"c.{k} AS k{i}" for i, k in enumerate(child.primary_key))
    parents = parent
    if value_range is not None:
        # Only parents whose key lies between the bounds can match a child value there.
        low, high = value_range
        parents = (
            f"(SELECT {parent_key} FROM {parent} "
            f"WHERE {parent_key} BETWEEN {_literal(low)} AND {_literal(high)})"
        )
    orphan = (
        f"FROM {child.name} c LEFT JOIN {parents} p ON c.{column} = p.{parent_key} "
        f"WHERE c.{column} IS NOT NULL AND p.{parent_key} IS NULL"
    )
    return f"{selected}, c.{column} AS v", orphan


def orphans_sql(
    check: Check,
    child: TableSchema,
    run_ids: Sequence[str] | None,
    limit: int,
    value_range: tuple[str, str] | None = None,
) -> str:
    """Orphans of a ``FOREIGN_KEY`` check as rows ``(k0, .., v)``, at most ``limit``.

    ``k0, ..`` are the child's key columns and ``v`` the dangling value; the rows with the
    smallest ``k0`` come first, as in the check's sample.

    All of the table's orphans when ``run_ids`` is None, else those among the rows the runs
    wrote (judged against the parent table as it is now). ``value_range`` bounds every
    value of the check's column in the runs' rows: only parents between them are read.

    Raises:
        ValueError: ``value_range`` is given without ``run_ids``, or a bound or run id is
            not a plain literal.
    """
    if value_range is not None and run_ids is None:
        raise ValueError("a value range bounds the runs' rows: name the runs")
    selected, orphan = _orphan_join(check, child, value_range)
    if run_ids is not None:
        orphan += f" AND {_written_by(run_ids, 'c.')}"
    return f"SELECT {selected} {orphan} ORDER BY 1 LIMIT {limit}"


def orphans_count_sql(
    check: Check,
    child: TableSchema,
    run_ids: Sequence[str],
    value_range: tuple[str, str] | None = None,
) -> str:
    """How many of the rows ``run_ids`` wrote are orphans of a ``FOREIGN_KEY`` check.

    ``value_range`` as for :func:`orphans_sql`.
    """
    _, orphan = _orphan_join(check, child, value_range)
    return f"SELECT COUNT(*) AS n {orphan} AND {_written_by(run_ids, 'c.')}"


def kept_orphans_sql(
    check: Check,
    child: TableSchema,
    run_ids: Sequence[str],
    orphans: Sequence[Sequence[str]],
) -> str:
    """Which earlier orphans ``(k0, .., v)`` are still orphans, as rows ``(k0, .., v)``.

    An earlier orphan row is still stored as it was unless the runs rewrote its key (the
    rewritten row is judged among theirs); it stays an orphan while no parent holds its
    value (parents are never deleted, so only a parent the runs inserted can adopt it).
    """
    if check.reference is None:
        raise ValueError(f"{check.check_name} is not a foreign-key check")
    _, parent, parent_key = check.reference
    names = [f"k{i}" for i in range(len(child.primary_key))]
    rows = ", ".join(f"({', '.join(_literal(v) for v in orphan)})" for orphan in orphans)
    same_key = " AND ".join(
        f"c.{k} = o.{name}" for k, name in zip(child.primary_key, names, strict=True)
    )
    columns = ", ".join([*names, "v"])
    sql = (
        f"SELECT {', '.join(f'o.{n}' for n in [*names, 'v'])} "
        f"FROM (VALUES {rows}) AS o({columns}) "
        f"WHERE NOT EXISTS (SELECT 1 FROM {parent} p WHERE p.{parent_key} = o.v)"
    )
    if run_ids:
        sql += (
            f" AND NOT EXISTS (SELECT 1 FROM {child.name} c "
            f"WHERE {_written_by(run_ids, 'c.')} AND {same_key})"
        )
    return sql


@dataclass(frozen=True, slots=True)
class RowCount:
    """How many rows of ``table`` meet ``predicate`` (every row when it is None).

    With ``summed``, the sum of that column over those rows instead.
    """

    table: str
    predicate: str | None = None
    summed: str | None = None
    #: Only the rows that meet this are read (a filter the engine pushes into its scan).
    within: str | None = None


def row_count(check: Check) -> RowCount | None:
    """What ``check``'s observed SQL counts, when it counts rows of its table by a predicate."""
    table = check.table_name
    if check.observed_sql == f"SELECT COUNT(*) AS n FROM {table}":
        return RowCount(table)
    if check.condition is None:
        return None
    if check.within is None and check.observed_sql == _count_where(table, check.condition):
        return RowCount(table, check.condition)
    scoped = f"{check.within} AND ({check.condition})"
    if check.within is not None and check.observed_sql == _count_where(table, scoped):
        return RowCount(table, check.condition, within=check.within)
    return None


def ledger_count(check: Check) -> RowCount | None:
    """What ``check``'s expected SQL sums, when it is the rows the ledger logs as inserted."""
    if check.expected_sql == _ledger_sum(_loaded(check.table_name)):
        return RowCount(INGEST_LOG.name, _loaded(check.table_name), "inserted")
    return None


def scalars_sql(values: Sequence[str | RowCount]) -> str:
    """One query whose single row holds each value, in columns ``v0``, ``v1``...

    A value is a query returning one value, run as a scalar subquery, or a row count; the row
    counts of one table over the same rows (``within``) are aggregated in one scan of it (a
    one-row subquery per table and filter, cross joined), which Spark would not merge from
    separate subqueries; the filter stays a WHERE clause, so the scan can skip files. The
    SQL is the subset Trino, Spark SQL and DuckDB share.
    """
    scans: dict[tuple[str, str | None], list[str]] = {}
    columns = []
    for i, value in enumerate(values):
        if isinstance(value, str):
            columns.append(f"({value}) AS v{i}")
            continue
        aggregates = scans.setdefault((value.table, value.within), [])
        source = list(scans).index((value.table, value.within))
        columns.append(f"counts_{source}.c{len(aggregates)} AS v{i}")
        if value.predicate is None and value.summed is None:
            aggregates.append("COUNT(*)")
        else:
            aggregates.append(
                f"SUM(CASE WHEN ({value.predicate or 'TRUE'}) THEN {value.summed or 1} ELSE 0 END)"
            )
    sources = [
        f"(SELECT {', '.join(f'{a} AS c{j}' for j, a in enumerate(aggregates))} "
        f"FROM {table}{f' WHERE {within}' if within else ''}) counts_{k}"
        for k, ((table, within), aggregates) in enumerate(scans.items())
    ]
    sql = "SELECT " + ", ".join(columns)
    return f"{sql} FROM {' CROSS JOIN '.join(sources)}" if sources else sql


def gate_sql(policy: ValidationPolicy | None = None) -> str:
    """One query whose single row counts the error-severity checks that fail.

    Column ``failed_error_checks`` is 0 when every error check passes. Orchestrators that can
    only branch on one value (a Step Functions Choice over Athena's result) gate on it; each
    check is a scalar subquery, in the SQL subset Trino, Spark SQL and DuckDB share.
    """
    terms = []
    for check in all_checks(policy):
        if check.severity is not Severity.ERROR:
            continue
        expected = f"({check.expected_sql})" if check.expected_sql else str(check.expected_value)
        terms.append(f"CASE WHEN ({check.observed_sql}) = {expected} THEN 0 ELSE 1 END")
    return f"SELECT {' + '.join(terms) or '0'} AS failed_error_checks"
