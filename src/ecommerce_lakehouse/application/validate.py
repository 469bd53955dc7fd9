"""Run the table validation checks and record them in ``validation_results``.

See docs/contract.md#validation.
"""

from __future__ import annotations

import json
from typing import Any

from ecommerce_lakehouse.application.run import Clock, utc_now
from ecommerce_lakehouse.application.tables import audit_ref
from ecommerce_lakehouse.domain.audit import VALIDATION_RESULTS
from ecommerce_lakehouse.domain.errors import LakehouseError
from ecommerce_lakehouse.domain.validation import (
    Check,
    CheckResult,
    ValidationPolicy,
    all_checks,
)
from ecommerce_lakehouse.ports.engine import TableEngine
from ecommerce_lakehouse.ports.query import QueryService
from ecommerce_lakehouse.ports.storage import ObjectStorage


def _scalar(query: QueryService, sql: str) -> int:
    rows = query.sql(sql).to_pylist()
    if len(rows) != 1 or len(rows[0]) != 1:
        raise LakehouseError(f"a validation query returned {len(rows)} rows, expected one value")
    value = next(iter(rows[0].values()))
    return int(value or 0)


class ValidateTables:
    """Evaluate every check through the query port and append the results."""

    def __init__(
        self,
        query: QueryService,
        engine: TableEngine[Any],
        storage: ObjectStorage,
        clock: Clock = utc_now,
    ) -> None:
        self._query = query
        self._engine = engine
        self._storage = storage
        self._clock = clock

    def evaluate(self, check: Check) -> CheckResult:
        """Evaluate one check."""
        observed = _scalar(self._query, check.observed_sql)
        expected = (
            _scalar(self._query, check.expected_sql)
            if check.expected_sql is not None
            else check.expected_value
        )
        passed = observed == expected
        sample: tuple[str, ...] = ()
        if not passed and check.sample_sql is not None:
            sample = tuple(
                str(next(iter(row.values())))
                for row in self._query.sql(check.sample_sql).to_pylist()
            )
        return CheckResult(
            table_name=check.table_name,
            check_name=check.check_name,
            severity=check.severity,
            passed=passed,
            observed=observed,
            expected=expected,
            sample=sample,
        )

    def __call__(self, run_id: str, policy: ValidationPolicy | None = None) -> list[CheckResult]:
        """Evaluate every check of ``policy`` and record the results under ``run_id``."""
        results = [self.evaluate(check) for check in all_checks(policy)]
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
        )
        return results
