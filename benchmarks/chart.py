"""Chart of compare.py results: wall time and peak memory per step, product against baseline.

Usage:
    .venv/bin/python benchmarks/chart.py RESULTS.json [MORE.json ...] --out docs/benchmarks.png
        [--title TEXT]

Each input is the JSON ``compare.py --out`` writes. The chart has two rows (seconds, peak MiB)
and one column per (engine, scale) found in the inputs; each panel shows the three steps
(full load, daily batch, no-op re-run) with the product's and the baseline's bars side by side
and the product/baseline time ratio above each pair.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: the chart is a file

import matplotlib.pyplot as plt

STEPS = ("full load", "daily batch", "no-op re-run")
SIDES = ("product", "baseline")
COLOURS = {"product": "#2b6cb0", "baseline": "#a0aec0"}


@dataclass(frozen=True, slots=True)
class Panel:
    """One engine at one scale: seconds and peak MiB per side and step."""

    engine: str
    scale: float
    date: str
    seconds: dict[str, dict[str, float]]
    peak_mib: dict[str, dict[str, float]]

    @property
    def label(self) -> str:
        """Column heading: engine and scale."""
        return f"{self.engine}, scale {self.scale:g}"


def panels(reports: Sequence[dict[str, Any]]) -> list[Panel]:
    """The panels of every (engine, scale) in ``reports``, in the order given.

    Raises:
        ValueError: a report has no engines, or a side lacks a step.
    """
    found: list[Panel] = []
    for report in reports:
        machine = report.get("machine", {})
        engines = report.get("engines") or {}
        if not engines:
            raise ValueError("a results file has no engines: is it compare.py's --out JSON?")
        for engine, entry in engines.items():
            seconds: dict[str, dict[str, float]] = {}
            peaks: dict[str, dict[str, float]] = {}
            for side in SIDES:
                steps = entry.get(side) or {}
                missing = [s for s in STEPS if s not in steps]
                if missing:
                    raise ValueError(f"{engine} {side} lacks step(s): {', '.join(missing)}")
                seconds[side] = {s: float(steps[s]["seconds"]) for s in STEPS}
                peaks[side] = {s: float(steps[s]["peak_mib"]) for s in STEPS}
            found.append(
                Panel(
                    engine=engine,
                    scale=float(machine.get("scale", 0)),
                    date=str(machine.get("date", "")),
                    seconds=seconds,
                    peak_mib=peaks,
                )
            )
    return found


def draw(found: Sequence[Panel], out: Path, title: str) -> None:
    """Write the chart of ``found`` to ``out`` (PNG)."""
    columns = len(found)
    figure, axes = plt.subplots(2, columns, figsize=(4.2 * columns, 6.4), squeeze=False)
    width = 0.38
    for column, panel in enumerate(found):
        for row, (values, unit) in enumerate(((panel.seconds, "s"), (panel.peak_mib, "MiB"))):
            ax = axes[row][column]
            for offset, side in ((-width / 2, "product"), (width / 2, "baseline")):
                heights = [values[side][s] for s in STEPS]
                bars = ax.bar(
                    [i + offset for i in range(len(STEPS))],
                    heights,
                    width,
                    label=side,
                    color=COLOURS[side],
                )
                ax.bar_label(bars, fmt="%.1f" if unit == "s" else "%.0f", fontsize=7)
            if row == 0:
                ax.set_title(panel.label, fontsize=10)
                top = max(max(values[side].values()) for side in SIDES)
                for i, step in enumerate(STEPS):
                    base = values["baseline"][step]
                    ratio = values["product"][step] / base if base else float("inf")
                    ax.annotate(
                        f"{ratio:.1f}x",
                        (i, top * 1.12),
                        ha="center",
                        fontsize=8,
                        color="#c53030" if ratio > 1.5 else "#2f855a",
                    )
                ax.set_ylim(0, top * 1.25)
            ax.set_xticks(range(len(STEPS)), [s.replace(" ", "\n", 1) for s in STEPS], fontsize=8)
            ax.set_ylabel("wall seconds" if unit == "s" else "peak RSS (MiB)", fontsize=8)
            ax.tick_params(axis="y", labelsize=7)
    handles, labels = axes[0][0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncol=2, fontsize=8, frameon=False)
    figure.suptitle(title, fontsize=11)
    figure.tight_layout(rect=(0, 0.04, 1, 1))
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=110)
    plt.close(figure)


def main(argv: Sequence[str] | None = None) -> None:
    """Read the results files and write the chart."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+", type=Path, help="compare.py --out JSON files")
    parser.add_argument("--out", type=Path, required=True, help="PNG file to write")
    parser.add_argument("--title", default="", help="chart title (default: dates of the runs)")
    args = parser.parse_args(argv)
    try:
        reports = [json.loads(path.read_text()) for path in args.results]
        found = panels(reports)
    except (OSError, ValueError, KeyError, TypeError) as error:
        parser.exit(2, f"chart.py: error: {error}\n")
    title = args.title or "product vs plain script, " + ", ".join(
        sorted({p.date.split(" ")[0] for p in found if p.date})
    )
    draw(found, args.out, title)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
