"""Rendering of run results, check results, query results and history for the terminal."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from rich.console import Console
from rich.table import Table

from ecommerce_lakehouse.application.run import RunResult
from ecommerce_lakehouse.domain.audit import COUNT_FIELDS
from ecommerce_lakehouse.domain.validation import CheckResult
from ecommerce_lakehouse.ports.engine import CommitRecord
from ecommerce_lakehouse.ports.query import TabularResult

_COUNT_HEADERS = ("read", "inserted", "updated", "unchanged", "duplicates", "quarantined")


def _json_default(value: object) -> object:
    if isinstance(value, Decimal):
        # DuckDB sums integers into HUGEINT, which Arrow hands over as a decimal.
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


def to_json(value: object) -> str:
    """JSON text of plain data, with ISO dates."""
    return json.dumps(value, default=_json_default, indent=2)


def checks_table(checks: Sequence[CheckResult]) -> Table:
    """A table of validation results."""
    table = Table(title="Validation checks", title_justify="left")
    for header in ("table", "check", "severity", "result", "observed", "expected", "sample"):
        table.add_column(header, justify="right" if header in ("observed", "expected") else "left")
    for check in checks:
        if check.passed:
            verdict = "[green]pass[/]"
        else:
            verdict = "[red]FAIL[/]" if check.fails_run else "[yellow]warn[/]"
        table.add_row(
            check.table_name,
            check.check_name,
            check.severity.value,
            verdict,
            str(check.observed),
            str(check.expected),
            ", ".join(check.sample[:5]) + (" …" if len(check.sample) > 5 else ""),
        )
    return table


def print_run(console: Console, result: RunResult) -> None:
    """Print a run report: files and their row accounting, checks, tables."""
    files = Table(title=f"Run {result.run_id} ({result.engine})", title_justify="left")
    files.add_column("file")
    files.add_column("status")
    for header in _COUNT_HEADERS:
        files.add_column(header, justify="right")
    files.add_column("moved to / error")
    for outcome in result.files:
        counts = [str(getattr(outcome.counts, c)) for c in COUNT_FIELDS]
        files.add_row(
            outcome.file.key,
            outcome.status.value,
            *counts,
            outcome.error or outcome.destination or "left in raw-data/",
        )
    totals = result.totals()
    files.add_section()
    files.add_row("total", "", *[str(getattr(totals, c)) for c in COUNT_FIELDS], "")
    console.print(files)
    if result.checks:
        console.print(checks_table(result.checks))
    console.print("Tables:")
    for name, uri in result.tables.items():
        console.print(f"  {name:<12} {uri}")
    seconds = (result.finished_at - result.started_at).total_seconds()
    if result.failed_step:
        console.print(f"[red]Run failed in step '{result.failed_step}': {result.error}[/]")
    elif result.failed_checks:
        console.print(
            f"[red]Run finished in {seconds:.1f}s with "
            f"{len(result.failed_checks)} failing error check(s).[/]"
        )
    elif not result.ok:
        console.print(f"[red]Run finished in {seconds:.1f}s with failed files.[/]")
    else:
        console.print(f"[green]Run finished in {seconds:.1f}s: all error checks passed.[/]")


def format_result(result: TabularResult, output: str, console: Console) -> None:
    """Print a query result as a table, a JSON array of objects, or CSV."""
    rows = result.to_pylist()
    if output == "json":
        console.print_json(json.dumps(rows, default=_json_default))
        return
    if output == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(result.column_names)
        writer.writerows([_cell(row[c]) for c in result.column_names] for row in rows)
        console.file.write(buffer.getvalue())
        return
    table = Table()
    for name in result.column_names:
        table.add_column(name)
    for row in rows:
        table.add_row(*(_cell(row[c]) for c in result.column_names))
    console.print(table)
    console.print(f"{len(rows)} row(s)")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def history_table(table_name: str, commits: Sequence[CommitRecord]) -> Table:
    """A table of Delta commits, newest first."""
    table = Table(title=f"History of {table_name}", title_justify="left")
    for header in ("version", "timestamp", "operation", "run_id", "metrics"):
        table.add_column(header)
    for commit in commits:
        metrics = {k: v for k, v in commit.metrics.items() if v}
        table.add_row(
            str(commit.version),
            commit.timestamp.isoformat() if commit.timestamp else "",
            commit.operation,
            commit.metadata.get("lakehouse.run_id", ""),
            ", ".join(f"{k}={v}" for k, v in sorted(metrics.items())[:6]),
        )
    return table
