"""benchmarks/chart.py: the chart of compare.py's results, run as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from PIL import Image

CHART = Path(__file__).resolve().parents[2] / "benchmarks" / "chart.py"
STEPS = ("full load", "daily batch", "no-op re-run")


def _results(engine: str, scale: float, seconds: float) -> dict[str, object]:
    side = {step: {"seconds": seconds, "peak_mib": 100.0 * (i + 1)} for i, step in enumerate(STEPS)}
    return {
        "machine": {"date": "2026-12-05 10:00 UTC", "scale": scale},
        "engines": {engine: {"product": side, "baseline": side}},
    }


def _chart(tmp_path: Path, *reports: dict[str, object]) -> subprocess.CompletedProcess[str]:
    paths = []
    for i, report in enumerate(reports):
        path = tmp_path / f"r{i}.json"
        path.write_text(json.dumps(report))
        paths.append(str(path))
    out = tmp_path / "chart.png"
    return subprocess.run(
        [sys.executable, str(CHART), *paths, "--out", str(out)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_one_column_per_engine_and_scale(tmp_path: Path) -> None:
    one = _chart(tmp_path, _results("polars", 0.1, 2.0))
    single = Image.open(tmp_path / "chart.png")
    assert one.returncode == 0, one.stderr
    width_one = single.size[0]
    two = _chart(tmp_path, _results("polars", 0.1, 2.0), _results("spark", 1, 9.0))
    assert two.returncode == 0, two.stderr
    double = Image.open(tmp_path / "chart.png")
    assert double.format == "PNG"
    # Two panels side by side are about twice as wide as one.
    assert double.size[0] > 1.8 * width_one


def test_a_file_that_is_not_compare_output_is_one_line(tmp_path: Path) -> None:
    done = _chart(tmp_path, {"engines": {"polars": {"product": {}, "baseline": {}}}})
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0
    assert "lacks step(s): full load" in done.stderr
    assert not (tmp_path / "chart.png").exists()
