"""The scoped forms of the checks and what lets a validation scope them (issue 13).

Equivalence with the full checks on real lakes: tests/integration/engines/
test_validation_equivalence.py.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ecommerce_lakehouse.application.ingest_log import META_RUN_ID
from ecommerce_lakehouse.application.validate import _changed_by, fingerprint
from ecommerce_lakehouse.domain.schemas import ORDER_ITEMS, ORDERS
from ecommerce_lakehouse.domain.validation import (
    CheckKind,
    all_checks,
    kept_orphans_sql,
    literal_ok,
    orphans_sql,
    scoped_check,
)
from ecommerce_lakehouse.ports.engine import CommitRecord


def test_every_check_has_a_kind_and_row_checks_a_condition() -> None:
    for check in all_checks():
        if check.kind is CheckKind.ROW:
            assert check.condition and check.condition in check.observed_sql
        if check.kind is CheckKind.FOREIGN_KEY:
            assert check.reference is not None
    kinds = {c.check_name: c.kind for c in all_checks()}
    assert kinds["primary_key_unique"] is CheckKind.UNIQUE
    assert kinds["row_count_matches_ingest_log"] is CheckKind.COUNT


def test_scoped_checks_read_the_runs_rows_only() -> None:
    (required,) = [
        c
        for c in all_checks()
        if c.table_name == "orders" and c.check_name == "required_columns_not_null"
    ]
    scoped = scoped_check(required, ORDERS, ["r2", "r1", "r2"])
    assert "_run_id IN ('r1', 'r2') AND (" in scoped.observed_sql
    assert scoped.sample_sql is not None and "_run_id IN ('r1', 'r2')" in scoped.sample_sql
    assert scoped.check_name == required.check_name and scoped.severity is required.severity
    (unique,) = [
        c for c in all_checks() if c.table_name == "orders" and c.check_name == "primary_key_unique"
    ]
    sql = scoped_check(unique, ORDERS, []).observed_sql
    assert "1 = 0" in sql and "HAVING COUNT(*) > 1" in sql


def test_count_and_foreign_key_checks_have_no_row_scoped_form() -> None:
    for check in all_checks():
        if check.kind in (CheckKind.COUNT, CheckKind.FOREIGN_KEY):
            with pytest.raises(ValueError, match="no scoped form"):
                scoped_check(check, ORDER_ITEMS, ["r1"])


def test_orphan_queries_splice_plain_literals_only() -> None:
    (fk,) = [c for c in all_checks() if c.check_name == "order_id_in_orders"]
    assert "ORDER BY 1 LIMIT 11" in orphans_sql(fk, ORDER_ITEMS, None, 11)
    kept = kept_orphans_sql(fk, ORDER_ITEMS, ["r1"], [("i1", "o9")])
    assert "(VALUES ('i1', 'o9')) AS o(k0, v)" in kept
    assert literal_ok("o-9 é") and not literal_ok("o'9") and not literal_ok("o\\9")
    assert not literal_ok("a\nb")
    with pytest.raises(ValueError, match="not a plain SQL literal"):
        kept_orphans_sql(fk, ORDER_ITEMS, ["r1"], [("i1", "o'9")])


def _commit(operation: str, run: str | None = None, **metrics: int) -> CommitRecord:
    return CommitRecord(
        version=1,
        timestamp=datetime(2024, 1, 1, tzinfo=UTC),
        operation=operation,
        metadata={META_RUN_ID: run} if run else {},
        metrics=metrics,
    )


def test_only_run_commits_and_row_preserving_ones_allow_scoping() -> None:
    assert _changed_by(_commit("MERGE", "r1")) == "r1"
    assert _changed_by(_commit("WRITE", "r1", num_added_files=1)) == "r1"
    assert _changed_by(_commit("WRITE", "r1", num_removed_files=1)) is None  # an overwrite
    assert _changed_by(_commit("OPTIMIZE")) == ""
    # A run's compaction and ``lakehouse optimize`` stamp their run id; the rows stay.
    assert _changed_by(_commit("OPTIMIZE", "r1")) == ""
    assert _changed_by(_commit("ADD COLUMN")) == ""
    assert _changed_by(_commit("CREATE TABLE")) == ""
    assert _changed_by(_commit("CREATE TABLE", num_added_rows=3)) is None
    assert _changed_by(_commit("WRITE")) is None  # no run id
    assert _changed_by(_commit("RESTORE")) is None
    assert _changed_by(_commit("RESTORE", "r1")) is None
    assert _changed_by(_commit("MERGE", "r'1")) is None


def test_a_fingerprint_follows_the_sql_not_the_severity() -> None:
    from dataclasses import replace

    from ecommerce_lakehouse.domain.types import Severity

    check = all_checks()[0]
    assert fingerprint(check) == fingerprint(replace(check, severity=Severity.WARN))
    assert fingerprint(check) != fingerprint(replace(check, observed_sql="SELECT 1 AS n"))
