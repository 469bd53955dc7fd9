"""The ``lakehouse`` command: the composition root of the local profiles.

See docs/contract.md#command-line.

Exit codes: 0 success, 1 a failed run or failing error-severity check, 2 bad usage or
configuration. Every error is one line on stderr, never a traceback.
"""

from __future__ import annotations

import csv
import functools
import math
import os
import re
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, replace
from datetime import UTC, date, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Annotated, Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.text import Text
from typer.exceptions import TyperException

from ecommerce_lakehouse.application.lake import Lake, open_lake
from ecommerce_lakehouse.application.maintenance import MIN_RETAIN_HOURS, MaintenanceResult
from ecommerce_lakehouse.application.quarantine import quarantined_files
from ecommerce_lakehouse.application.rollback import ForgetResult
from ecommerce_lakehouse.application.run import (
    DEFAULT_SETTLE_SECONDS,
    MAX_SETTLE_SECONDS,
    ProgressCallback,
)
from ecommerce_lakehouse.application.tables import TABLE_NAMES
from ecommerce_lakehouse.domain.errors import (
    ConfigurationError,
    LakehouseError,
    describe_error,
    first_line,
)
from ecommerce_lakehouse.domain.types import SchemaEvolution, Severity
from ecommerce_lakehouse.settings import (
    LakeSettings,
    env_name,
    flag_name,
    info_of,
    read_settings,
    settings_fields,
    shown_default,
)
from ecommerce_lakehouse_cli import report
from ecommerce_lakehouse_cli.native import native_output_set_aside

app = typer.Typer(
    name="lakehouse",
    help="Raw e-commerce CSV drops to validated, deduplicated Delta Lake tables.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Help texts are plain text: "s3://bucket[/prefix]" is not Rich markup.
    rich_markup_mode=None,
)
# Piped output (CI logs, files) gets a wide console so report tables are not squeezed.
out = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, highlight=False, soft_wrap=True)

P = ParamSpec("P")
R = TypeVar("R")


class _Exit(Exception):
    def __init__(self, code: int) -> None:
        self.code = code


def _error_line(message: str) -> Text:
    # Messages quote data (column names, file names, SQL): never markup, one line, no escapes.
    return Text.assemble(("error:", "red"), " ", report.plain(message))


def _fail(message: str, code: int) -> _Exit:
    err.print(_error_line(message))
    return _Exit(code)


def handle_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Turn every error into one line on stderr and the contract's exit code."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except ConfigurationError as error:
            raise _fail(str(error), 2) from None
        except LakehouseError as error:
            raise _fail(str(error), 1) from None
        except KeyboardInterrupt:
            raise _fail("interrupted", 130) from None
        except _Terminated:
            raise _fail("terminated (SIGTERM)", 128 + signal.SIGTERM) from None
        except (typer.Exit, TyperException, _Exit):
            raise
        except OverflowError as error:
            # A value Python cannot hold (DuckDB's infinite or far-off dates): name it.
            shown = first_line(str(error))
            raise _fail(f"a value is out of the range that can be shown: {shown}", 1) from None
        except Exception as error:
            raise _fail(f"unexpected {describe_error(error)}", 1) from None

    return wrapper


@contextmanager
def _progress() -> Iterator[ProgressCallback]:
    with err.status("starting", spinner="dots") as status:

        def show(step: str, message: str) -> None:
            status.update(
                Text.assemble((report.visible(step), "bold"), ": ", report.plain(message))
            )
            if not err.is_terminal:
                err.print(report.plain(f"{step}: {message}"))

        yield show


def _open(lake: str, **given: str | None) -> Lake:
    # The one place the command reads its settings: the flags given, then LAKEHOUSE_*
    # variables, then the defaults (docs/settings.md).
    if not lake:
        raise ConfigurationError("--lake must not be empty")
    if not lake.startswith("s3://") and not Path(lake).is_dir():
        raise ConfigurationError(f"lake root '{lake}' is not a directory")
    settings = read_settings(LakeSettings, given, os.environ, spelling=flag_name)
    return open_lake(lake, settings=settings)


_SETTINGS = {field.name: field for field in settings_fields(LakeSettings)}


def _setting(name: str) -> Any:
    # The typer option of a setting: its flag, meaning, default and variable, all from the
    # setting's one declaration. Its value is read by read_settings (None: not given).
    field = _SETTINGS[name]
    meaning = info_of(field).meaning
    return typer.Option(
        flag_name(name),
        help=f"{meaning[:1].upper()}{meaning[1:]} "
        f"(default: {shown_default(field)}; environment: {env_name(name)}).",
        show_default=False,
        metavar=_METAVARS.get(name, "TEXT"),
    )


_METAVARS = {
    "engine": "polars|spark",
    "schema_evolution": "|".join(e.value for e in SchemaEvolution),
    "fk_severity": "|".join(s.value for s in Severity),
    "lock_timeout": "SECONDS",
    "compact_min_files": "FILES",
}


LakeOption = Annotated[
    str, typer.Option("--lake", help="Lake root: a directory or s3://bucket[/prefix].")
]


def _print_version(given: bool) -> None:
    if given:
        out.print(Text(f"lakehouse {version('ecommerce-lakehouse-cli')}"))
        raise typer.Exit(0)


@app.callback()
def _options(
    show_version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            help="Print the release and exit.",
        ),
    ] = False,
) -> None:
    """Raw e-commerce CSV drops to validated, deduplicated Delta Lake tables."""


def _check_format(output: str, allowed: tuple[str, ...]) -> None:
    if output not in allowed:
        raise ConfigurationError(f"invalid --format '{output}': expected {', '.join(allowed)}")


@app.command()
@handle_errors
def generate(
    out_dir: Annotated[Path, typer.Option("--out", help="Lake root to write raw-data/ into.")],
    scale: Annotated[
        float, typer.Option(help="1.0 ≈ 50k products, 3.4M orders, 33M items.")
    ] = 0.01,
    seed: Annotated[int, typer.Option(help="Random seed: same seed, same files.")] = 42,
    dirty: Annotated[
        float, typer.Option(help="Fraction of rows with injected faults (0-1).")
    ] = 0.0,
    start: Annotated[str, typer.Option(help="First order date (YYYY-MM-DD).")] = "2024-01-01",
    end: Annotated[str, typer.Option(help="Last order date (YYYY-MM-DD).")] = "2024-03-31",
) -> None:
    """Write Instacart-shaped CSVs into LAKE/raw-data/."""
    from ecommerce_lakehouse_datagen import generate as run_generate

    _check_scale(scale)
    with _progress() as progress:
        summary = run_generate(
            out_dir,
            scale=scale,
            seed=seed,
            dirty=dirty,
            start=_date(start),
            end=_date(end),
            progress=lambda entity, rows: progress("generate", f"{entity}: {rows:,} rows"),
        )
    for output in summary.entities:
        out.print(
            report.plain(
                f"{output.name:<12} {output.rows:>12,} rows in {len(output.files)} file(s)"
            )
        )
    if dirty > 0:
        out.print(
            Text(
                f"faults injected: {summary.faults.invalid_rows:,} invalid rows, plus duplicates, "
                "late corrections, orphans and extra columns"
            )
        )
    out.print(report.plain(f"raw files written under {out_dir / 'raw-data'}"))


def _check_scale(scale: float) -> None:
    # typer reads "nan" and "inf" as floats; a huge scale would overflow the row counts or
    # try to allocate terabytes before writing a row.
    from ecommerce_lakehouse_datagen import MAX_SCALE

    if not math.isfinite(scale) or not 0 < scale <= MAX_SCALE:
        raise ConfigurationError(
            f"invalid --scale '{scale}': expected a number above 0, at most {MAX_SCALE:g}"
        )


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ConfigurationError(f"invalid date '{text}': expected YYYY-MM-DD") from None


def _check_settle_seconds(settle_seconds: float) -> None:
    # typer reads "nan" and "inf" as floats; either would make the run wait forever.
    if not math.isfinite(settle_seconds) or not 0 <= settle_seconds <= MAX_SETTLE_SECONDS:
        raise ConfigurationError(
            f"invalid --settle-seconds '{settle_seconds}': expected seconds from 0 to "
            f"{MAX_SETTLE_SECONDS:g}"
        )


@app.command("run")
@handle_errors
def run_command(
    lake: LakeOption,
    engine: Annotated[str | None, _setting("engine")] = None,
    schema_evolution: Annotated[str | None, _setting("schema_evolution")] = None,
    fk_severity: Annotated[str | None, _setting("fk_severity")] = None,
    lock_timeout: Annotated[str | None, _setting("lock_timeout")] = None,
    compact_min_files: Annotated[str | None, _setting("compact_min_files")] = None,
    settle_seconds: Annotated[
        float,
        typer.Option(
            help="Quiet period of a local lake's raw files: a file changed more recently "
            "waits for it, and one still changing is left for the next run (0: off)."
        ),
    ] = DEFAULT_SETTLE_SECONDS,
    output: Annotated[
        str, typer.Option("--format", help="Report format: table or json.")
    ] = "table",
    fail_on_rejected: Annotated[
        bool,
        typer.Option(
            "--fail-on-rejected",
            help="Exit 1 when a file was rejected, even though the other files loaded.",
        ),
    ] = False,
) -> None:
    """Run the whole pipeline: ingest, archive, catalogue, validate, report."""
    _check_format(output, ("table", "json"))
    _check_settle_seconds(settle_seconds)
    opened = _open(
        lake,
        engine=engine,
        schema_evolution=schema_evolution,
        fk_severity=fk_severity,
        lock_timeout=lock_timeout,
        compact_min_files=compact_min_files,
    )
    options = replace(opened.run_options(), settle_seconds=settle_seconds)
    with _progress() as progress:
        result = opened.run(options, progress=progress)
    if output == "json":
        report.print_json(out, result.as_dict())
    else:
        report.print_run(out, result)
    raise typer.Exit(1 if fail_on_rejected and result.rejected else result.exit_code)


@app.command()
@handle_errors
def validate(
    lake: LakeOption,
    engine: Annotated[str | None, _setting("engine")] = None,
    fk_severity: Annotated[str | None, _setting("fk_severity")] = None,
    full: Annotated[
        bool,
        typer.Option(
            "--full",
            help="Run every check over whole tables. Without it, the checks read only the "
            "rows written since the last validation when that gives the same results.",
        ),
    ] = False,
    output: Annotated[str, typer.Option("--format", help="table or json.")] = "table",
) -> None:
    """Run the table validation checks only."""
    _check_format(output, ("table", "json"))
    checks = _open(lake, engine=engine, fk_severity=fk_severity).validate(full=full)
    if output == "json":
        report.print_json(out, [c.as_dict() for c in checks])
    else:
        report.print_whole(out, report.checks_table(checks))
    failing = [c for c in checks if c.fails_run]
    raise typer.Exit(1 if failing else 0)


@app.command(help=f"Query {', '.join(TABLE_NAMES)}.")
@handle_errors
def sql(
    query: Annotated[str, typer.Argument(help="The SELECT to run.")],
    lake: LakeOption,
    engine: Annotated[str | None, _setting("engine")] = None,
    output: Annotated[str, typer.Option("--format", help="table, json or csv.")] = "table",
    as_of: Annotated[
        list[str] | None,
        typer.Option(
            "--as-of",
            help="Pin a table to a Delta version (TABLE=VERSION) or to the version it had "
            "at an instant (TABLE=2026-12-04T10:00:00Z; a date is its midnight, UTC).",
        ),
    ] = None,
    athena: Annotated[
        bool,
        typer.Option(
            "--athena", help="Run the query on Amazon Athena (s3:// lakes) instead of locally."
        ),
    ] = False,
    max_rows: Annotated[
        int,
        typer.Option(
            "--max-rows",
            help="The most rows the table format shows (json and csv print every row).",
        ),
    ] = report.DEFAULT_MAX_ROWS,
) -> None:
    """One read-only SQL query on the lake's tables (help: the catalogue's table names)."""
    _check_format(output, ("table", "json", "csv"))
    if max_rows < 1:
        raise ConfigurationError(f"invalid --max-rows {max_rows}: expected 1 or more")
    if not query.strip():
        raise ConfigurationError("empty query: pass one SELECT")
    if athena and not lake.startswith("s3://"):
        raise ConfigurationError("--athena needs an s3:// lake root")
    versions = _as_of_versions(as_of or [])
    opened = _open(lake, engine=engine, query="athena" if athena else None)
    result = opened.sql(query, as_of=versions or None)
    report.format_result(result, output, out, max_rows=max_rows)


#: TABLE=VERSION or TABLE=TIMESTAMP; a version in ASCII digits only: str.isdigit() and int()
#: also take "²" and "٣".
_AS_OF = re.compile(r"\s*([^=\s][^=]*?)\s*=\s*(\S.*?)\s*")
_VERSION = re.compile(r"[0-9]+", re.ASCII)


def _as_of_versions(items: list[str]) -> dict[str, int | datetime]:
    pins: dict[str, int | datetime] = {}
    for item in items:
        match = _AS_OF.fullmatch(item)
        pin = None if match is None else _pin(match.group(2))
        if match is None or pin is None:
            raise ConfigurationError(
                f"invalid --as-of '{item}': expected TABLE=VERSION or TABLE=TIMESTAMP "
                "(2026-12-04 or 2026-12-04T10:00:00Z)"
            )
        name = match.group(1)
        if pins.get(name, pin) != pin:
            raise ConfigurationError(f"--as-of pins table '{name}' to two versions")
        pins[name] = pin
    return pins


def _pin(text: str) -> int | datetime | None:
    if _VERSION.fullmatch(text):
        return int(text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    # A date alone or a time without a zone is UTC, as Delta's TIMESTAMP AS OF reads it.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


_MAX_LIMIT = 2**31 - 1


@app.command()
@handle_errors
def history(
    table: Annotated[str, typer.Argument(help="Table name, e.g. orders or ingest_log.")],
    lake: LakeOption,
    engine: Annotated[str | None, _setting("engine")] = None,
    limit: Annotated[int | None, typer.Option(help="Newest N commits only.")] = None,
    output: Annotated[str, typer.Option("--format", help="table or json.")] = "table",
) -> None:
    """Show a table's Delta history (versions usable with `sql --as-of`)."""
    _check_format(output, ("table", "json"))
    if limit is not None and limit < 1:
        raise ConfigurationError(
            f"invalid --limit {limit}: expected a number of commits, 1 or more"
        )
    # More commits than a table has means all of them; a bound keeps delta-rs's integer
    # conversion from overflowing.
    opened = _open(lake, engine=engine)
    commits = opened.history(table, None if limit is None else min(limit, _MAX_LIMIT))
    if output == "json":
        report.print_json(
            out,
            [
                {
                    "version": c.version,
                    "timestamp": c.timestamp,
                    "operation": c.operation,
                    "metadata": report.decoded_metadata(c.metadata),
                    "metrics": dict(c.metrics),
                }
                for c in commits
            ],
        )
    else:
        report.print_whole(out, report.history_table(table, commits))


TablesArgument = Annotated[
    list[str] | None,
    typer.Argument(
        help="Tables to work on, e.g. orders ingest_log (default: all six).", show_default=False
    ),
]


@app.command()
@handle_errors
def optimize(
    lake: LakeOption,
    table: TablesArgument = None,
    engine: Annotated[str | None, _setting("engine")] = None,
    lock_timeout: Annotated[str | None, _setting("lock_timeout")] = None,
    output: Annotated[str, typer.Option("--format", help="table or json.")] = "table",
) -> None:
    """Compact the tables' small files into larger ones (Delta OPTIMIZE); history is kept."""
    _check_format(output, ("table", "json"))
    done = _open(lake, engine=engine, lock_timeout=lock_timeout).optimize(table)
    _print_maintenance(done, output, "files removed")


@app.command()
@handle_errors
def vacuum(
    lake: LakeOption,
    table: TablesArgument = None,
    retain: Annotated[
        int,
        typer.Option(
            "--retain",
            metavar="HOURS",
            help="Keep the files of the versions of the last HOURS hours (at least 168, a "
            "week); older versions can no longer be read.",
        ),
    ] = MIN_RETAIN_HOURS,
    engine: Annotated[str | None, _setting("engine")] = None,
    lock_timeout: Annotated[str | None, _setting("lock_timeout")] = None,
    output: Annotated[str, typer.Option("--format", help="table or json.")] = "table",
) -> None:
    """Delete the data files only versions older than --retain hours read (Delta VACUUM)."""
    _check_format(output, ("table", "json"))
    done = _open(lake, engine=engine, lock_timeout=lock_timeout).vacuum(table, retain_hours=retain)
    _print_maintenance(done, output, "files deleted")


@app.command()
@handle_errors
def restore(
    table: Annotated[str, typer.Argument(help="A curated table: products, orders or order_items.")],
    lake: LakeOption,
    to_version: Annotated[
        int | None,
        typer.Option("--version", metavar="N", help="Return to version N (see `history`)."),
    ] = None,
    timestamp: Annotated[
        str | None,
        typer.Option(
            metavar="T",
            help="Return to the version the table had at T (2026-12-04 or "
            "2026-12-04T10:00:00Z; UTC unless it names a zone).",
        ),
    ] = None,
    engine: Annotated[str | None, _setting("engine")] = None,
    lock_timeout: Annotated[str | None, _setting("lock_timeout")] = None,
    output: Annotated[str, typer.Option("--format", help="table or json.")] = "table",
) -> None:
    """Return a table to an earlier version (Delta RESTORE) and log the loads it undoes."""
    _check_format(output, ("table", "json"))
    moment: datetime | None = None
    if timestamp is not None:
        pin = _pin(timestamp)
        if not isinstance(pin, datetime):
            raise ConfigurationError(
                f"invalid --timestamp '{timestamp}': expected 2026-12-04 or 2026-12-04T10:00:00Z"
            )
        moment = pin
    if (to_version is None) == (moment is None):
        raise ConfigurationError("give --version N or --timestamp T (one of them)")
    opened = _open(lake, engine=engine, lock_timeout=lock_timeout)
    done = opened.restore(table, version=to_version, timestamp=moment)
    if output == "json":
        report.print_json(out, asdict(done))
    else:
        report.print_restore(out, done)


FilesArgument = Annotated[
    list[str],
    typer.Argument(
        help="Loaded files: each its raw-data/ key, the archive/ key its run moved it to, or "
        "its checksum (as ingest_log has them).",
        show_default=False,
    ),
]


@app.command()
@handle_errors
def forget(
    files: FilesArgument,
    lake: LakeOption,
    engine: Annotated[str | None, _setting("engine")] = None,
    lock_timeout: Annotated[str | None, _setting("lock_timeout")] = None,
    output: Annotated[str, typer.Option("--format", help="table or json.")] = "table",
) -> None:
    """Let the next run load these files' contents again; their rows stay as they are."""
    _check_format(output, ("table", "json"))
    done = _open(lake, engine=engine, lock_timeout=lock_timeout).forget(files)
    _print_forget(done, output)


@app.command()
@handle_errors
def reprocess(
    files: FilesArgument,
    lake: LakeOption,
    engine: Annotated[str | None, _setting("engine")] = None,
    lock_timeout: Annotated[str | None, _setting("lock_timeout")] = None,
    output: Annotated[str, typer.Option("--format", help="table or json.")] = "table",
) -> None:
    """Forget these files and move each back to raw-data/: the next run loads them again."""
    _check_format(output, ("table", "json"))
    done = _open(lake, engine=engine, lock_timeout=lock_timeout).reprocess(files)
    _print_forget(done, output)


def _print_forget(done: ForgetResult, output: str) -> None:
    if output == "json":
        report.print_json(out, asdict(done))
    else:
        report.print_forget(out, done)


def _print_maintenance(done: MaintenanceResult, output: str, counted: str) -> None:
    if output == "json":
        report.print_json(out, asdict(done))
        return
    report.print_maintenance(out, done, counted)


quarantine_app = typer.Typer(
    help="Work with the rows the rules refused.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(quarantine_app, name="quarantine")


@quarantine_app.command("list")
@handle_errors
def quarantine_list(
    lake: LakeOption,
    engine: Annotated[str | None, _setting("engine")] = None,
    output: Annotated[str, typer.Option("--format", help="table or json.")] = "table",
) -> None:
    """Per source file: where it went, the rules, rows quarantined and rows resolved since."""
    _check_format(output, ("table", "json"))
    statuses = _open(lake, engine=engine).quarantine()
    if output == "json":
        report.print_json(out, [asdict(s) for s in statuses])
    elif statuses:
        report.print_whole(out, report.quarantine_status_table(statuses))
    else:
        out.print(Text("no quarantined rows"))


@quarantine_app.command("export")
@handle_errors
def quarantine_export(
    lake: LakeOption,
    out_dir: Annotated[
        Path,
        typer.Option("--out", help="Empty or new directory: one CSV per source file, by entity."),
    ],
    entity: Annotated[str | None, typer.Option(help="Only this entity's files.")] = None,
    file: Annotated[
        str | None, typer.Option("--file", help="Only this file (raw-data/ key or name).")
    ] = None,
    rule: Annotated[str | None, typer.Option(help="Only the rows this rule refused.")] = None,
    run_id: Annotated[
        str | None, typer.Option("--run", help="Only the rows this run quarantined.")
    ] = None,
    engine: Annotated[str | None, _setting("engine")] = None,
) -> None:
    """Write quarantined rows as CSVs with their file's original header, to fix and drop back."""
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise ConfigurationError(f"--out '{out_dir}' is not an empty directory")
    found = quarantined_files(
        _open(lake, engine=engine).platform.query,
        entity=entity,
        source_file=file,
        rule=rule,
        run_id=run_id,
    )
    for exported in found:
        target = out_dir / exported.export_name
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(exported.header)
            writer.writerows(exported.rows)
    report.print_whole(out, report.quarantine_table(found, out_dir))
    if not found:
        out.print(Text("no quarantined rows match: nothing written"))


@app.command()
@handle_errors
def tables(
    lake: LakeOption,
    engine: Annotated[str | None, _setting("engine")] = None,
    output: Annotated[str, typer.Option("--format", help="table or json.")] = "table",
) -> None:
    """List the lake's tables: kind, latest Delta version, rows and location."""
    _check_format(output, ("table", "json"))
    described = _open(lake, engine=engine).tables()
    if output == "json":
        report.print_json(out, [asdict(t) for t in described])
    else:
        report.print_whole(out, report.tables_table(described))


@app.command("report")
@handle_errors
def report_page(
    lake: LakeOption,
    out_file: Annotated[
        Path,
        typer.Option(
            "--out", help="The HTML file to write (replaced if it exists).", show_default=True
        ),
    ] = Path("lakehouse-report.html"),
    engine: Annotated[str | None, _setting("engine")] = None,
) -> None:
    """Write one self-contained HTML page about the lake: runs, files, quarantine, checks."""
    # Imported here: Matplotlib and Jinja2 are for this command only.
    from ecommerce_lakehouse_cli import html_report

    gathered = _open(lake, engine=engine).report()
    html_report.write(gathered, out_file)
    out.print(report.plain(f"report written to {out_file}"), soft_wrap=True)


@app.command()
@handle_errors
def demo(
    workdir: Annotated[Path, typer.Option(help="Empty or new directory for the demo lake.")] = Path(
        "lakehouse-demo"
    ),
    scale: Annotated[float, typer.Option(help="Data scale (1.0 ≈ 33M order items).")] = 0.002,
) -> None:
    """Generate sample data with some dirt in it, run the pipeline locally, print the report."""
    from ecommerce_lakehouse_datagen import generate as run_generate

    # Before the workdir is created: a bad scale leaves nothing behind.
    _check_scale(scale)
    if workdir.exists() and any(workdir.iterdir()):
        raise ConfigurationError(
            f"demo workdir '{workdir}' is not empty: remove it or pick another"
        )
    workdir.mkdir(parents=True, exist_ok=True)
    # Settings are read (and the lake opened) before any data is written: a bad
    # LAKEHOUSE_* value leaves the workdir empty, ready for the next try.
    opened = _open(str(workdir))
    with _progress() as progress:
        progress("generate", f"writing sample CSVs at scale {scale}")
        run_generate(workdir, scale=scale, seed=42, dirty=0.02)
        result = opened.run(progress=progress)
    report.print_run(out, result)
    out.print()
    out.print(
        report.plain(
            f"Try: lakehouse sql --lake {workdir} "
            '"SELECT rule, COUNT(*) AS n FROM quarantine GROUP BY rule ORDER BY n DESC"'
        )
    )
    raise typer.Exit(result.exit_code)


@app.command("state-machine")
@handle_errors
def state_machine(
    out_file: Annotated[
        Path | None, typer.Option("--out", help="Write the definition to FILE, not stdout.")
    ] = None,
    polling: Annotated[
        bool,
        typer.Option(
            "--polling",
            help="Await Glue and Athena with aws-sdk polling loops instead of .sync "
            "integrations (for emulators without .sync support).",
        ),
    ] = False,
) -> None:
    """Print the Step Functions (Amazon States Language) definition of the pipeline.

    Names come from LAKEHOUSE_LAKE, LAKEHOUSE_GLUE_JOB, LAKEHOUSE_ARCHIVE_FUNCTION,
    LAKEHOUSE_GLUE_DATABASE, LAKEHOUSE_ATHENA_WORKGROUP, LAKEHOUSE_ATHENA_OUTPUT and the optional
    LAKEHOUSE_CRAWLER; unset ones stay ${Placeholders} for CloudFormation's
    DefinitionSubstitutions. LAKEHOUSE_FK_SEVERITY and the limits (LAKEHOUSE_GLUE_TIMEOUT_SECONDS
    and the others in docs/settings.md) are read too.
    """
    import os

    from ecommerce_lakehouse_sfn import Integration, StateMachineSettings, definition_json

    settings = StateMachineSettings.from_env(os.environ)
    text = definition_json(settings, Integration.POLLING if polling else Integration.OPTIMIZED)
    if out_file is None:
        sys.stdout.write(text)
        return
    try:
        out_file.write_text(text, encoding="utf-8")
    except OSError as error:
        raise ConfigurationError(f"cannot write {out_file}: {error.strerror}") from None
    err.print(report.plain(f"state machine definition written to {out_file}"))


def _main() -> int:
    """Run the typer app; returns the exit code (usage errors are one line and exit 2)."""
    try:
        code = app(standalone_mode=False)
    except _Exit as stop:
        return int(stop.code)
    except typer.Exit as stop:
        return int(stop.exit_code)
    except typer.Abort:
        err.print(_error_line("aborted"))
        return 130
    except TyperException as error:
        # Typer's own parsing errors (it vendors click): usage problems and --help on no args.
        ctx = getattr(error, "ctx", None)
        if type(error).__name__ == "NoArgsIsHelpError" and ctx is not None:
            out.print(Text(ctx.get_help()))
            return 2
        message = error.format_message() if hasattr(error, "format_message") else str(error)
        # The message quotes the command line ("No such option: --[/x]").
        err.print(_error_line(message))
        if ctx is not None:
            err.print(report.plain(f"{ctx.get_usage()}  (--help for more)"))
        return int(getattr(error, "exit_code", 2))
    return code if isinstance(code, int) else 0


class _Terminated(BaseException):
    """SIGTERM arrived (a BaseException, so no ``except Exception`` takes it for a failure)."""


def _terminated(signum: int, frame: object) -> None:
    # SIGTERM (a scheduler's stop, `timeout`): unwind like Ctrl-C, so the lake lock is
    # released and native output is restored; the exit code is the shell's 128 + 15.
    raise _Terminated


def run() -> None:
    """Console-script entry point.

    What native code writes to file descriptor 2 (delta-rs worker panics, a local Spark
    JVM's log) is set aside in a file, named in one line when the command failed and deleted
    otherwise: the user sees this CLI's own messages only. The process ends with
    ``os._exit`` once output is flushed: pyarrow's and delta-rs's
    native threads can crash or hang a normal interpreter shutdown after a scan that stopped
    early (e.g. ``LIMIT``), and a finished command must neither hang nor print a crash.
    """
    import os

    signal.signal(signal.SIGTERM, _terminated)
    with native_output_set_aside() as native:
        try:
            code = _main()
        except _Terminated:  # before or after a command's own handling
            code = 128 + signal.SIGTERM
    if native.size_bytes and code != 0:
        # Rust panics and JVM logs of a failed command: kept for a bug report, not shown.
        err.print(
            report.plain(
                f"note: native libraries wrote {native.size_bytes} bytes of diagnostics; "
                f"kept in {native.keep()}"
            )
        )
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
