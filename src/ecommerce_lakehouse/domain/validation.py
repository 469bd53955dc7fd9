"""Table validation checks, written once in SQL shared by Trino, Spark and DuckDB.

See docs/contract.md#validation.

Every check yields a count: ``observed`` must equal ``expected`` for it to pass. ``sample``
lists up to ten offending keys.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ecommerce_lakehouse.domain.audit import INGEST_LOG
from ecommerce_lakehouse.domain.schemas import SCHEMAS, TableSchema
from ecommerce_lakehouse.domain.types import FileStatus, Severity

SAMPLE_SIZE = 10


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
    """

    table_name: str
    check_name: str
    severity: Severity
    observed_sql: str
    sample_sql: str | None = None
    expected_sql: str | None = None
    expected_value: int = 0


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


@dataclass(frozen=True, slots=True, kw_only=True)
class ValidationPolicy:
    """Configurable severities (foreign keys warn by default: items may precede their order)."""

    foreign_key_severity: Severity = Severity.WARN


def _key_expr(schema: TableSchema) -> str:
    # Keys are strings in every schema; composite keys are joined with '|'.
    return " || '|' || ".join(schema.primary_key)


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
        ),
        Check(
            table_name=table,
            check_name="primary_key_not_null",
            severity=Severity.ERROR,
            observed_sql=_count_where(table, key_null),
        ),
        Check(
            table_name=table,
            check_name="required_columns_not_null",
            severity=Severity.ERROR,
            observed_sql=_count_where(table, required_null),
            sample_sql=_sample_where(schema, required_null),
        ),
        Check(
            table_name=table,
            check_name="row_count_matches_ingest_log",
            severity=Severity.ERROR,
            observed_sql=f"SELECT COUNT(*) AS n FROM {table}",
            expected_sql=(
                f"SELECT COALESCE(SUM(inserted), 0) AS n FROM {INGEST_LOG.name} "
                f"WHERE entity = '{table}' AND status = '{FileStatus.LOADED.value}'"
            ),
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
