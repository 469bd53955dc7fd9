"""Rendering of run results, check results, query results and history for the terminal.

Everything that comes from data (values, column names, file names, error messages quoting
them) reaches Rich as :class:`rich.text.Text`, never as a markup string, so ``[/x]`` is
printed as written instead of crashing the command, ``[red]`` is not a style and ``:smile:``
is not an emoji; control characters are shown as escapes (:func:`visible`) so that no
escape sequence from a CSV reaches the terminal.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from ecommerce_lakehouse.application.run import RunResult
from ecommerce_lakehouse.domain.audit import COUNT_FIELDS
from ecommerce_lakehouse.domain.validation import CheckResult
from ecommerce_lakehouse.ports.engine import CommitRecord
from ecommerce_lakehouse.ports.query import TabularResult

_COUNT_HEADERS = ("read", "inserted", "updated", "unchanged", "duplicates", "quarantined")

#: C0 and C1 control characters, DEL, and the bidirectional overrides and isolates that can
#: make a terminal show text other than the bytes it holds ("Trojan Source").
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
#: The same without tab, line feed and carriage return, which CSV quotes and which do no
#: harm there; a terminal-only escape (ESC, OSC, CSI) still never passes.
_CSV_CONTROL = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]"
)
#: The characters of ``_CONTROL`` that ``json.dumps(ensure_ascii=False)`` leaves raw.
_JSON_RAW_CONTROL = re.compile("[\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def visible(text: str) -> str:
    r"""``text`` with every control character written as an escape, e.g. ESC as ``\x1b``.

    The result is one line (line feeds become ``\x0a``) and cannot move the cursor, change
    colours or set the terminal's title, whatever a CSV or a file name held.
    """
    return _CONTROL.sub(_escape, text)


def plain(value: object, style: str = "") -> Text:
    """``value`` as literal Rich text: never parsed as markup, control characters visible."""
    return Text(visible(value if isinstance(value, str) else str(value)), style=style)


def _finite(value: object) -> object:
    """``value`` with NaN and infinities replaced by None, as JSON has no such numbers."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


def _json_default(value: object) -> object:
    if isinstance(value, Decimal):
        if not value.is_finite():
            return None
        # DuckDB sums integers into HUGEINT, which Arrow hands over as a decimal.
        if value == value.to_integral_value():
            return int(value)
        number = float(value)
        return number if math.isfinite(number) else None
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


def to_json(value: object) -> str:
    r"""Strict JSON text of plain data, with ISO dates.

    NaN and infinities become ``null`` (as JavaScript's ``JSON.stringify`` does), so every
    JSON parser accepts the text; control characters in strings are ``\u`` escapes, so the
    text is safe to print to a terminal.
    """
    text = json.dumps(
        _finite(value), default=_json_default, indent=2, ensure_ascii=False, allow_nan=False
    )
    # json.dumps escapes only U+0000-U+001F; escaping the rest inside strings keeps the same
    # JSON value (they can appear nowhere else).
    return _JSON_RAW_CONTROL.sub(lambda match: f"\\u{ord(match.group()):04x}", text)


def print_json(console: Console, value: object) -> None:
    """Print ``value`` as strict JSON text, unstyled, so that a program can parse it."""
    console.file.write(to_json(value) + "\n")
    console.file.flush()


def checks_table(checks: Sequence[CheckResult]) -> Table:
    """A table of validation results."""
    table = Table(title="Validation checks", title_justify="left")
    for header in ("table", "check", "severity", "result", "observed", "expected", "sample"):
        table.add_column(header, justify="right" if header in ("observed", "expected") else "left")
    for check in checks:
        if check.passed:
            verdict = Text("pass", style="green")
        else:
            verdict = Text("FAIL", style="red") if check.fails_run else Text("warn", style="yellow")
        table.add_row(
            plain(check.table_name),
            plain(check.check_name),
            plain(check.severity.value),
            verdict,
            plain(check.observed),
            plain(check.expected),
            plain(", ".join(check.sample[:5]) + (" …" if len(check.sample) > 5 else "")),
        )
    return table


def print_run(console: Console, result: RunResult) -> None:
    """Print a run report: files and their row accounting, checks, tables."""
    files = Table(title=plain(f"Run {result.run_id} ({result.engine})"), title_justify="left")
    files.add_column("file")
    files.add_column("status")
    for header in _COUNT_HEADERS:
        files.add_column(header, justify="right")
    files.add_column("moved to / error")
    for outcome in result.files:
        counts = [str(getattr(outcome.counts, c)) for c in COUNT_FIELDS]
        files.add_row(
            plain(outcome.file.key),
            plain(outcome.status.value),
            *counts,
            plain(outcome.error or outcome.destination or "left in raw-data/"),
        )
    totals = result.totals()
    files.add_section()
    files.add_row("total", "", *[str(getattr(totals, c)) for c in COUNT_FIELDS], "")
    console.print(files)
    if result.checks:
        console.print(checks_table(result.checks))
    console.print(Text("Tables:"))
    for name, uri in result.tables.items():
        console.print(plain(f"  {name:<12} {uri}"))
    seconds = (result.finished_at - result.started_at).total_seconds()
    if result.failed_step:
        console.print(
            plain(f"Run failed in step '{result.failed_step}': {result.error}", style="red")
        )
    elif result.failed_checks:
        console.print(
            Text(
                f"Run finished in {seconds:.1f}s with "
                f"{len(result.failed_checks)} failing error check(s).",
                style="red",
            )
        )
    elif not result.ok:
        console.print(Text(f"Run finished in {seconds:.1f}s with failed files.", style="red"))
    else:
        console.print(
            Text(f"Run finished in {seconds:.1f}s: all error checks passed.", style="green")
        )


def format_result(result: TabularResult, output: str, console: Console) -> None:
    """Print a query result as a table, a JSON array of objects, or CSV."""
    rows = result.to_pylist()
    if output == "json":
        print_json(console, rows)
        return
    if output == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow([_csv_cell(name) for name in result.column_names])
        writer.writerows([_csv_cell(row[c]) for c in result.column_names] for row in rows)
        console.file.write(buffer.getvalue())
        return
    table = Table()
    for name in result.column_names:
        table.add_column(plain(name))
    for row in rows:
        table.add_row(*(plain(_cell(row[c])) for c in result.column_names))
    console.print(table)
    console.print(Text(f"{len(rows)} row(s)"))


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def _csv_cell(value: Any) -> str:
    return _CSV_CONTROL.sub(_escape, _cell(value))


def history_table(table_name: str, commits: Sequence[CommitRecord]) -> Table:
    """A table of Delta commits, newest first."""
    table = Table(title=plain(f"History of {table_name}"), title_justify="left")
    for header in ("version", "timestamp", "operation", "run_id", "metrics"):
        table.add_column(header)
    for commit in commits:
        metrics = {k: v for k, v in commit.metrics.items() if v}
        table.add_row(
            str(commit.version),
            commit.timestamp.isoformat() if commit.timestamp else "",
            plain(commit.operation),
            plain(commit.metadata.get("lakehouse.run_id", "")),
            plain(", ".join(f"{k}={v}" for k, v in sorted(metrics.items())[:6])),
        )
    return table
