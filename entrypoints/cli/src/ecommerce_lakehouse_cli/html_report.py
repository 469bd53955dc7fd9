"""``lakehouse report``: one self-contained HTML page about a lake (docs/contract.md#lake-report).

The page is rendered by Jinja2 with autoescaping on, from ``templates/report.html.j2``, and
every text from data also goes through :func:`ecommerce_lakehouse_cli.report.visible` (the
template environment's ``finalize``), so a file named ``<script>…</script>.csv`` is shown
as text and invisible characters (zero-width, U+2028, bidirectional overrides) as escapes.
The plots are inline SVG drawn by Matplotlib (text kept as text, no fonts embedded, no
mathtext): the page loads no script, stylesheet, font or image from anywhere.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path

import matplotlib
from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from matplotlib.typing import RcKeyType

from ecommerce_lakehouse.application.lake_report import LakeReport
from ecommerce_lakehouse.domain.errors import ConfigurationError
from ecommerce_lakehouse.domain.types import FileStatus
from ecommerce_lakehouse_cli.report import shown_metrics, visible

#: A colour per file status, the same in every plot and table of the page.
STATUS_COLOURS = {
    FileStatus.LOADED.value: "#2e7d32",
    FileStatus.SKIPPED.value: "#9e9e9e",
    FileStatus.REJECTED.value: "#ef6c00",
    FileStatus.FAILED.value: "#c62828",
    FileStatus.WAITING.value: "#1565c0",
    FileStatus.IGNORED.value: "#6a1b9a",
    FileStatus.ROLLED_BACK.value: "#795548",
    FileStatus.FORGOTTEN.value: "#00838f",
}
_OTHER_COLOUR = "#455a64"
#: The runs plot is at least this many runs wide.
_MIN_RUN_SLOTS = 12

#: Matplotlib settings of every plot: SVG text stays text (small, searchable), "$" is never
#: read as mathtext (a rule or table name is data), and ids are the same on every render.
_RC: dict[RcKeyType, object] = {
    "svg.fonttype": "none",
    "text.parse_math": False,
    "font.family": "sans-serif",
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
}
#: What a standalone SVG file carries and an inline one does not need: the XML prologue, the
#: DOCTYPE and the namespace declarations (the HTML parser gives inline SVG its namespaces).
_SVG_PROLOGUE = re.compile(r"\A.*?(?=<svg\b)", re.S)
_SVG_NAMESPACES = re.compile(r'\s+xmlns(?::\w+)?="[^"]*"')
_SVG_SIZE = re.compile(r'(<svg\b[^>]*?)\s+width="[^"]*"\s+height="[^"]*"')


def _finalize(value: object) -> object:
    # Every {{ value }} of the page: text from data with its hidden characters made visible
    # (then autoescaped); markup this module made (the SVG plots) as it is.
    if isinstance(value, Markup) or not isinstance(value, str):
        return value
    return visible(value)


def _moment(value: datetime | None) -> str:
    return "" if value is None else value.strftime("%Y-%m-%d %H:%M:%S UTC")


def _size(value: int) -> str:
    size, units = float(value), ["B", "KiB", "MiB", "GiB", "TiB"]
    while size >= 1024 and len(units) > 1:
        size, units = size / 1024, units[1:]
    return f"{size:,.0f} B" if units[0] == "B" else f"{size:,.1f} {units[0]}"


_environment = Environment(
    loader=PackageLoader("ecommerce_lakehouse_cli", "templates"),
    autoescape=True,
    finalize=_finalize,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_environment.filters.update(
    moment=_moment,
    size=_size,
    number=lambda value: "" if value is None else f"{value:,}",
    seconds=lambda value: f"{value:,.1f} s",
    colour=lambda status: STATUS_COLOURS.get(status, _OTHER_COLOUR),
    metrics=lambda commit: ", ".join(f"{k}={v}" for k, v in shown_metrics(commit)),
)


def render(report: LakeReport) -> str:
    """The HTML page of a report: self-contained, no script, every value escaped."""
    return _environment.get_template("report.html.j2").render(
        report=report,
        plots={
            "runs": _plot(_runs_over_time, report, "runs"),
            "quarantine": _plot(_quarantine_by_rule, report, "quarantine"),
            "tables": _plot(_rows_per_table, report, "tables"),
        },
    )


def write(report: LakeReport, path: Path) -> None:
    """Write the page of ``report`` to ``path`` (UTF-8).

    Raises:
        ConfigurationError: the file cannot be written; the message names it.
    """
    text = render(report)
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as error:
        raise ConfigurationError(f"cannot write {path}: {error.strerror or error}") from None


def _plot(draw: Callable[[LakeReport], Figure | None], report: LakeReport, name: str) -> Markup:
    with matplotlib.rc_context({**_RC, "svg.hashsalt": name}):
        figure = draw(report)
        if figure is None:
            return Markup("")
        buffer = io.StringIO()
        figure.savefig(
            buffer,
            format="svg",
            bbox_inches="tight",
            # No creation date, tool name or format URLs in the image.
            metadata={"Date": None, "Creator": None, "Format": None, "Type": None},
        )
    svg = _SVG_NAMESPACES.sub("", _SVG_PROLOGUE.sub("", buffer.getvalue()))
    # The viewBox keeps the proportions; the page's style sets the width.
    svg = _SVG_SIZE.sub(rf'\1 role="img" aria-label="{name} plot" class="plot"', svg, count=1)
    # Matplotlib escaped every label it drew (text from data included).
    return Markup(svg)


def _label(text: str, width: int = 40) -> str:
    shown = visible(text)
    return shown if len(shown) <= width else shown[: width - 1] + "…"


def _runs_over_time(report: LakeReport) -> Figure | None:
    runs = list(reversed(report.runs))  # oldest first, left to right
    if not runs:
        return None
    figure = Figure(figsize=(9, 3.6), layout="constrained")
    files, seconds = figure.subplots(2, 1, sharex=True, height_ratios=(3, 2))
    positions = list(range(len(runs)))
    bottom = [0] * len(runs)
    statuses = [s.value for s in FileStatus]
    seen = {status for run in runs for status in run.files_by_status}
    for status in [*statuses, *sorted(seen - set(statuses))]:
        counts = [run.files_by_status.get(status, 0) for run in runs]
        if not any(counts):
            continue
        files.bar(
            positions,
            counts,
            width=0.6,
            bottom=bottom,
            label=_label(status),
            color=STATUS_COLOURS.get(status, _OTHER_COLOUR),
        )
        bottom = [b + c for b, c in zip(bottom, counts, strict=True)]
    files.set_ylabel("files")
    files.yaxis.set_major_locator(MaxNLocator(integer=True))
    # A few runs stay narrow bars on the left, as they would among many.
    files.set_xlim(-0.6, max(len(runs), _MIN_RUN_SLOTS) - 0.4)
    files.set_title("Files per run, by status (oldest run left)", loc="left")
    if any(bottom):
        files.legend(loc="upper right", fontsize=8, ncols=3, frameon=False)
    seconds.bar(
        positions,
        [run.seconds for run in runs],
        width=0.6,
        color=["#2e7d32" if run.ok else "#c62828" for run in runs],
    )
    seconds.set_ylabel("seconds")
    seconds.set_title("Run duration (red: the run failed)", loc="left")
    step = max(1, len(runs) // 12)
    seconds.set_xticks(
        positions[::step], [run.started_at.strftime("%m-%d %H:%M:%S") for run in runs][::step]
    )
    seconds.tick_params(axis="x", labelrotation=30)
    return figure


def _horizontal_bars(
    labels: Sequence[str], values: Sequence[int], title: str, colour: str
) -> Figure:
    figure = Figure(figsize=(9, 0.8 + 0.26 * len(labels)), layout="constrained")
    axes = figure.subplots()
    positions = list(range(len(labels)))
    bars = axes.barh(positions, values, color=colour)
    axes.set_yticks(positions, [_label(label) for label in labels])
    axes.invert_yaxis()  # the first label on top
    axes.bar_label(bars, labels=[f"{v:,}" for v in values], padding=3, fontsize=8)
    axes.set_title(title, loc="left")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.margins(x=0.12)
    return figure


def _quarantine_by_rule(report: LakeReport) -> Figure | None:
    if not report.quarantine_by_rule:
        return None
    rules = list(report.quarantine_by_rule.items())
    return _horizontal_bars(
        [rule for rule, _ in rules],
        [rows for _, rows in rules],
        "Quarantined rows by rule (every run)",
        "#ef6c00",
    )


def _rows_per_table(report: LakeReport) -> Figure | None:
    created = [t for t in report.tables if t.rows is not None]
    if not created:
        return None
    return _horizontal_bars(
        [t.name for t in created],
        [t.rows or 0 for t in created],
        "Rows per table (latest version)",
        "#1565c0",
    )
