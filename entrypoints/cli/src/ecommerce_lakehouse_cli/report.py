"""Rendering of run results, check results, query results and history for the terminal.

Everything that comes from data (values, column names, file names, error messages quoting
them) reaches Rich as :class:`rich.text.Text`, never as a markup string, so ``[/x]`` is
printed as written instead of crashing the command, ``[red]`` is not a style and ``:smile:``
is not an emoji; control characters are shown as escapes (:func:`visible`) so that no
escape sequence from a CSV reaches the terminal.
"""

from __future__ import annotations

import contextlib
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
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from ecommerce_lakehouse.application.maintenance import MaintenanceResult, maintenance_record_key
from ecommerce_lakehouse.application.quarantine import QuarantinedFile, QuarantineStatus
from ecommerce_lakehouse.application.rollback import ForgetResult, RestoreResult
from ecommerce_lakehouse.application.run import RunResult
from ecommerce_lakehouse.application.tables import TableInfo
from ecommerce_lakehouse.domain.audit import COUNT_FIELDS
from ecommerce_lakehouse.domain.validation import CheckResult
from ecommerce_lakehouse.ports.engine import CommitRecord
from ecommerce_lakehouse.ports.query import TabularResult

_COUNT_HEADERS = ("read", "inserted", "updated", "unchanged", "duplicates", "quarantined")

#: The most rows ``sql`` shows as a table unless ``--max-rows`` says otherwise: rendering
#: is for a person; json and csv print every row.
DEFAULT_MAX_ROWS = 100

#: Wider than any table a command prints: the bound of a table's natural width.
_UNBOUNDED = 1_000_000

#: DEL, C1 controls, the bidirectional overrides and isolates that can make a terminal show
#: text other than the bytes it holds ("Trojan Source"), the line and paragraph separators
#: (U+2028, U+2029) and the invisible characters (soft hyphen, zero-width, BOM).
_HIDDEN = "\x7f-\x9f\u00ad\u200b-\u200f\u2028-\u202e\u2060\u2066-\u2069\ufeff"
#: The C0 control characters and :data:`_HIDDEN`.
_CONTROL = re.compile(f"[\x00-\x1f{_HIDDEN}]")
#: The same without tab, line feed and carriage return, which CSV quotes and which do no
#: harm there; a terminal-only escape (ESC, OSC, CSI) still never passes.
_CSV_CONTROL = re.compile(f"[\x00-\x08\x0b\x0c\x0e-\x1f{_HIDDEN}]")
#: :data:`_HIDDEN`, which ``json.dumps(ensure_ascii=False)`` leaves raw and JSON output
#: escapes: a line separator there breaks a JSON-lines reader or a JavaScript ``eval``, and
#: an invisible character hides what a value holds.
_JSON_RAW_CONTROL = re.compile(f"[{_HIDDEN}]")


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


def print_whole(console: Console, table: Table) -> None:
    """Print ``table`` so that no cell is cut: as wide as it needs when output is piped.

    A terminal's width is the terminal's; a pipe or a file has none, so a table there is
    printed at its natural width instead of a fixed one that would cut file names.
    """
    if console.is_terminal:
        console.print(table)
        return
    # Measured without the console's width as a bound, which would cap the measure.
    natural = Measurement.get(console, console.options.update_width(_UNBOUNDED), table)
    # print(width=) cannot exceed the console's width: widen the console for this table.
    width = console.width
    console.width = max(width, natural.maximum)
    try:
        console.print(table)
    finally:
        console.width = width


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
    print_whole(console, files)
    for warning in result.warnings:
        # One line each, never wrapped: a scheduler's log is grepped for "warning:".
        console.print(plain(f"warning: {warning}", style="yellow"), soft_wrap=True)
    if result.checks:
        print_whole(console, checks_table(result.checks))
    console.print(Text("Tables:"))
    for name, uri in result.tables.items():
        console.print(plain(f"  {name:<12} {uri}"), soft_wrap=True)
    seconds = (result.finished_at - result.started_at).total_seconds()
    if result.failed_step:
        console.print(
            plain(f"Run failed in step '{result.failed_step}': {result.error}", style="red"),
            soft_wrap=True,
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
    elif result.rejected:
        console.print(
            Text(
                f"Run finished in {seconds:.1f}s: all error checks passed; "
                f"{len(result.rejected)} file(s) rejected (see the warnings).",
                style="yellow",
            )
        )
    else:
        console.print(
            Text(f"Run finished in {seconds:.1f}s: all error checks passed.", style="green")
        )


def format_result(
    result: TabularResult, output: str, console: Console, *, max_rows: int = DEFAULT_MAX_ROWS
) -> None:
    """Print a query result as a table, a JSON array of objects, or CSV.

    The table shows at most ``max_rows`` rows and says how many it left out; JSON and CSV
    print every row.
    """
    if output == "json":
        print_json(console, result.to_pylist())
        return
    if output == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow([_csv_cell(name) for name in result.column_names])
        writer.writerows(
            [_csv_cell(row[c]) for c in result.column_names] for row in result.to_pylist()
        )
        console.file.write(buffer.getvalue())
        return
    total = result.num_rows
    # Only the rows shown are converted: a person reads a hundred rows, not a million.
    rows = result.slice(0, max_rows).to_pylist() if total > max_rows else result.to_pylist()
    table = Table()
    for name in result.column_names:
        table.add_column(plain(name))
    for row in rows:
        table.add_row(*(plain(_cell(row[c])) for c in result.column_names))
    print_whole(console, table)
    if total > len(rows):
        console.print(
            Text(
                f"{len(rows)} of {total} row(s) shown: --max-rows shows more, "
                "--format csv or json prints every row."
            )
        )
    else:
        console.print(Text(f"{total} row(s)"))


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def _csv_cell(value: Any) -> str:
    return _CSV_CONTROL.sub(_escape, _cell(value))


def history_table(table_name: str, commits: Sequence[CommitRecord]) -> Table:
    """A table of Delta commits, newest first.

    Row counts (inserted, updated, deleted) come first and show even when 0; then the other
    non-zero metrics, files before timings, up to :data:`_SHOWN_METRICS` in all.
    """
    table = Table(title=plain(f"History of {table_name}"), title_justify="left")
    for header in ("version", "timestamp", "operation", "run_id", "metrics"):
        table.add_column(header)
    for commit in commits:
        table.add_row(
            str(commit.version),
            commit.timestamp.isoformat() if commit.timestamp else "",
            plain(commit.operation),
            plain(commit.metadata.get("lakehouse.run_id", "")),
            plain(", ".join(f"{k}={v}" for k, v in shown_metrics(commit))),
        )
    return table


def shown_metrics(commit: CommitRecord) -> list[tuple[str, int]]:
    """The metrics of a commit a person looks at, in the order they look at them.

    Row counts first (even when 0), then the other non-zero ones, files before timings, up
    to :data:`_SHOWN_METRICS` in all.
    """
    ranked = sorted((_metric_rank(name), name, value) for name, value in commit.metrics.items())
    return [(name, value) for rank, name, value in ranked if value or rank[0] < len(_ROW_COUNTS)][
        :_SHOWN_METRICS
    ]


#: Words of the metrics a person looks for first, as delta-rs (num_target_rows_inserted)
#: and Delta on Spark (numTargetRowsInserted) spell them, once lower-cased without "_".
_ROW_COUNTS = ("inserted", "updated", "deleted")
_THEN = ("addedrows", "copied", "outputrows", "files")
_SHOWN_METRICS = 6


def _metric_rank(name: str) -> tuple[int, str]:
    words = name.lower().replace("_", "")
    for rank, word in enumerate((*_ROW_COUNTS, *_THEN)):
        if word in words:
            return rank, name
    # Timings last: they differ on every commit and say little about the data.
    return len(_ROW_COUNTS) + len(_THEN) + ("time" in words), name


def decoded_metadata(metadata: Mapping[str, str]) -> dict[str, object]:
    """Commit metadata for JSON output: values that hold JSON arrays or objects decoded.

    The pipeline's commits store ``lakehouse.files`` and ``lakehouse.merge_counts`` as JSON
    text; a reader of ``history --format json`` gets them as JSON, not a string to parse.
    """
    decoded: dict[str, object] = {}
    for key, value in metadata.items():
        decoded[key] = value
        if isinstance(value, str) and value[:1] in ("[", "{"):
            # Text that only looks like JSON stays text.
            with contextlib.suppress(ValueError):
                decoded[key] = json.loads(value)
    return decoded


def tables_table(tables: Sequence[TableInfo]) -> Table:
    """A table of the lake's tables: name, kind, version, rows and location."""
    table = Table(title="Tables", title_justify="left")
    for header in ("table", "kind", "version", "rows", "location"):
        table.add_column(header, justify="right" if header in ("version", "rows") else "left")
    for info in tables:
        table.add_row(
            plain(info.name),
            plain(info.kind),
            "" if info.version is None else str(info.version),
            "not created yet" if info.rows is None else str(info.rows),
            plain(info.location),
        )
    return table


def print_maintenance(console: Console, done: MaintenanceResult, counted: str) -> None:
    """Print what ``optimize`` or ``vacuum`` did to each table, and where its record is."""
    table = Table()
    table.add_column("table")
    table.add_column(counted, justify="right")
    for name, files in done.files.items():
        table.add_row(plain(name), str(files))
    print_whole(console, table)
    _print_record(console, done.command, done.run_id, done.record_error)


def _print_record(console: Console, command: str, run_id: str, error: str | None) -> None:
    record = maintenance_record_key(run_id)
    if error:
        message = f"warning: could not write the record {record}: {error}"
        console.print(plain(message, style="yellow"), soft_wrap=True)
    else:
        console.print(plain(f"{command} {run_id}: recorded in {record}"), soft_wrap=True)


def print_restore(console: Console, done: RestoreResult) -> None:
    """Print what ``restore`` did: the versions, and the loads it undid or brought back."""
    console.print(
        plain(
            f"{done.table}: restored to version {done.to_version} (was {done.from_version}; "
            f"the restore is version {done.version})"
        ),
        soft_wrap=True,
    )
    _print_files(console, "rolled back, can be loaded again", done.rolled_back)
    _print_files(console, "reinstated, loaded again by this version", done.reinstated)
    _print_record(console, "restore", done.run_id, done.record_error)


def print_forget(console: Console, done: ForgetResult) -> None:
    """Print what ``forget`` or ``reprocess`` did to each file."""
    _print_files(console, "forgotten, the next run loads them again", done.forgotten)
    _print_files(console, "moved back to raw-data/", done.returned)
    if not done.forgotten and not done.returned:
        console.print(plain("nothing to do: these contents already load again"), soft_wrap=True)
    command = "reprocess" if done.returned else "forget"
    _print_record(console, command, done.run_id, done.record_error)


def _print_files(console: Console, what: str, files: Sequence[str]) -> None:
    if files:
        console.print(plain(f"{len(files)} file(s) {what}:"), soft_wrap=True)
        for file in files:
            console.print(plain(f"  {file}"), soft_wrap=True)


def quarantine_status_table(statuses: Sequence[QuarantineStatus]) -> Table:
    """A table of ``quarantine list``: per source file, its rows quarantined and resolved."""
    table = Table(title="Quarantined rows by source file", title_justify="left")
    for header in ("entity", "source file", "went to", "rules", "quarantined", "resolved"):
        table.add_column(
            header, justify="right" if header in ("quarantined", "resolved") else "left"
        )
    for status in statuses:
        table.add_row(
            plain(status.entity),
            plain(status.source_file),
            plain(status.destination or "raw-data/ (not moved)"),
            plain(", ".join(f"{rule} ({n})" for rule, n in status.rules.items())),
            str(status.quarantined),
            str(status.resolved),
        )
    return table


def quarantine_table(files: Sequence[QuarantinedFile], out_dir: object) -> Table:
    """A table of the CSVs ``quarantine export`` wrote: where, from which file, which rules."""
    table = Table(title=plain(f"Quarantined rows written under {out_dir}"), title_justify="left")
    for header in ("file written", "source file", "rows", "rules"):
        table.add_column(header, justify="right" if header == "rows" else "left")
    for exported in files:
        table.add_row(
            plain(exported.export_name),
            plain(exported.source_file),
            str(len(exported.rows)),
            plain(", ".join(f"{rule} ({n})" for rule, n in sorted(exported.rules.items()))),
        )
    return table
