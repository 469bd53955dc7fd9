"""`lakehouse generate --scale` and `lakehouse demo --scale` on values no data set can have.

typer reads "nan", "inf" and "1e308" as floats: each must be a one-line usage error (exit 2)
before anything is written, never a traceback, an overflow or a terabyte allocation.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

LAKEHOUSE = str(Path(sys.executable).parent / "lakehouse")

BAD_SCALES = ("nan", "NaN", "inf", "-inf", "1e400", "-1", "0", "-0.0", "1e308", "1e9", "100.5")


def lakehouse(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    # A short timeout: a scale that slips through would generate for hours, not fail.
    return subprocess.run(
        [LAKEHOUSE, *args], capture_output=True, text=True, cwd=cwd, timeout=60, check=False
    )


def assert_scale_usage_error(done: subprocess.CompletedProcess[str]) -> None:
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "Traceback" not in done.stdout + done.stderr
    assert done.stderr.startswith("error: invalid --scale "), done.stderr
    assert "at most 100" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


@pytest.mark.parametrize("scale", BAD_SCALES)
def test_generate_rejects_a_bad_scale_before_writing(scale: str, tmp_path: Path) -> None:
    out = tmp_path / "lake"

    done = lakehouse("generate", "--out", str(out), "--scale", scale, cwd=tmp_path)

    assert_scale_usage_error(done)
    assert not out.exists()


@pytest.mark.parametrize("scale", ["nan", "inf", "-1", "0", "1e308", "1e9"])
def test_demo_rejects_a_bad_scale_before_creating_the_workdir(scale: str, tmp_path: Path) -> None:
    workdir = tmp_path / "demo"

    done = lakehouse("demo", "--workdir", str(workdir), "--scale", scale, cwd=tmp_path)

    assert_scale_usage_error(done)
    assert not workdir.exists()


def test_a_tiny_positive_scale_still_generates_a_data_set(tmp_path: Path) -> None:
    done = lakehouse("generate", "--out", str(tmp_path), "--scale", "1e-9", cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    assert any((tmp_path / "raw-data" / "orders").glob("*.csv"))
