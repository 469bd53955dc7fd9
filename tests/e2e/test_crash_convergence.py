"""Issue 11: a run killed with SIGKILL at any step boundary converges when run again.

A small generated dirty drop is copied into one lake per boundary. A child process runs the
pipeline through the library with a progress callback that sends itself SIGKILL the moment
the chosen boundary is announced (each step reports its start, and ingest reports each entity
as it starts), so the kill lands exactly there, deterministically, with no hook in the
product. The lake is then run again, normally, and compared with a clean single run of the
same drop in another lake:

- the curated tables hold the same rows (by primary key; run ids and ingestion times aside);
- ``quarantine`` has no duplicate (source_checksum, line_number) and the same set of
  (source file name, line, rule);
- ``ingest_log`` has every file ``loaded`` exactly once, with the clean run's counts, and any
  other row of it ``skipped``; the row accounting holds on every row;
- ``lakehouse validate`` exits 0;
- the zones hold no leftovers: no ``.lakehouse-tmp-*``, nothing in ``raw-data/``, every raw
  file archived exactly once (so never both in ``raw-data/`` and ``archive/``).

Polars engine only.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from pathlib import Path, PurePosixPath
from typing import Any

import polars as pl
import pytest
from deltalake import DeltaTable
from typer.testing import CliRunner

import ecommerce_lakehouse as lh
from ecommerce_lakehouse.application.pipeline import PIPELINE
from ecommerce_lakehouse.domain.audit import COUNT_FIELDS
from ecommerce_lakehouse.domain.schemas import INGESTED_AT, RUN_ID, SCHEMAS
from ecommerce_lakehouse_cli.main import app
from ecommerce_lakehouse_datagen import generate

# Eight killed runs and their re-runs, each a fresh interpreter: the full tier only.
pytestmark = pytest.mark.slow

#: The child: run the pipeline and SIGKILL itself when the boundary's progress line appears.
CHILD = """
import os, re, signal, sys
import ecommerce_lakehouse as lh

lake, step, pattern = sys.argv[1:4]

def progress(name: str, message: str) -> None:
    if name == step and re.fullmatch(pattern, message):
        os.kill(os.getpid(), signal.SIGKILL)

lh.open_lake(lake).run(progress=progress)
sys.exit(3)  # the boundary never came
"""


@dataclass(frozen=True, slots=True)
class Boundary:
    """Where to kill: the step and a regular expression its progress message matches."""

    id: str
    step: str
    pattern: str


def _start(step: str) -> Boundary:
    (summary,) = [s.summary for s in PIPELINE if s.name == step]
    return Boundary(id=f"start-{step}", step=step, pattern=re.escape(summary))


BOUNDARIES: tuple[Boundary, ...] = (
    _start("discover"),
    # Each entity's start: the entities before it are committed and logged.
    *(
        Boundary(id=f"ingest-{s.name}", step="ingest", pattern=rf"{s.name}: \d+ file\(s\)")
        for s in SCHEMAS
    ),
    _start("archive"),
    _start("catalogue"),
    _start("validate"),
    _start("report"),
)


def _delta(lake: Path, key: str) -> list[dict[str, Any]]:
    table = DeltaTable(str(lake / "lakehouse-dwh" / key))
    return pl.DataFrame(pl.from_arrow(table.to_pyarrow_table())).to_dicts()


@dataclass(frozen=True, slots=True)
class LakeState:
    """What convergence is judged on, with run identities and times left out."""

    tables: dict[str, list[dict[str, Any]]]
    quarantine: list[dict[str, Any]]
    log: list[dict[str, Any]]
    archived: Counter[str]
    rejected: Counter[str]
    raw_left: list[str]
    temporaries: list[str]


def _state(lake: Path) -> LakeState:
    tables = {}
    for schema in SCHEMAS:
        rows = [
            {k: v for k, v in row.items() if k not in (RUN_ID, INGESTED_AT)}
            for row in _delta(lake, schema.name)
        ]
        tables[schema.name] = sorted(rows, key=lambda r: str(r[schema.primary_key[0]]))
    return LakeState(
        tables=tables,
        quarantine=_delta(lake, "_audit/quarantine"),
        log=_delta(lake, "_audit/ingest_log"),
        archived=Counter(p.name for p in (lake / "archive").rglob("*") if p.is_file()),
        rejected=Counter(p.name for p in (lake / "rejected").rglob("*") if p.is_file()),
        raw_left=[str(p) for p in (lake / "raw-data").rglob("*") if not p.is_dir()],
        temporaries=[str(p) for p in lake.rglob(".lakehouse-tmp*")],
    )


def _kill_at(lake: Path, boundary: Boundary) -> int:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(lake), boundary.step, boundary.pattern],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode


@pytest.fixture(scope="module")
def drop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small dirty generated drop, its files older than the quiet period."""
    root = tmp_path_factory.mktemp("drop")
    # A week of orders: every run of every boundary rewrites each date partition it touches.
    generate(root, scale=0.0003, seed=11, dirty=0.05, end=date(2024, 1, 7))
    for path in (root / "raw-data").rglob("*.csv"):
        os.utime(path, (1_700_000_000, 1_700_000_000))
    return root / "raw-data"


def _lake_with(drop: Path, root: Path) -> Path:
    shutil.copytree(drop, root / "raw-data")  # keeps the old mtimes: no file waits
    return root


def _quarantine_keys(state: LakeState) -> Counter[tuple[str, int, str]]:
    return Counter(
        (PurePosixPath(q["source_file"]).name, q["line_number"], q["rule"])
        for q in state.quarantine
    )


def test_a_run_killed_at_any_step_boundary_converges(drop: Path, tmp_path: Path) -> None:
    lakes = {b.id: _lake_with(drop, tmp_path / b.id) for b in BOUNDARIES}
    with ThreadPoolExecutor(max_workers=2) as pool:
        killed = pool.map(lambda b: (b, _kill_at(lakes[b.id], b)), BOUNDARIES)
        clean_lake = _lake_with(drop, tmp_path / "clean")
        clean_run = lh.open_lake(str(clean_lake)).run()
        assert clean_run.ok, clean_run.error
        codes = dict((b.id, code) for b, code in killed)
    assert codes == {b.id: -signal.SIGKILL for b in BOUNDARIES}  # every boundary was reached
    clean = _state(clean_lake)
    assert clean.raw_left == [] and clean.quarantine and not clean.rejected
    loaded = {r["source_path"]: r for r in clean.log}
    assert {r["status"] for r in clean.log} == {"loaded"}

    for boundary in BOUNDARIES:
        lake = lakes[boundary.id]
        rerun = lh.open_lake(str(lake)).run()
        assert rerun.ok, (boundary.id, rerun.failed_step, rerun.error)
        validated = CliRunner().invoke(app, ["validate", "--lake", str(lake)])
        assert validated.exit_code == 0, (boundary.id, validated.output)
        state = _state(lake)

        assert state.tables == clean.tables, boundary.id
        keys = [(q["source_checksum"], q["line_number"]) for q in state.quarantine]
        assert len(set(keys)) == len(keys), f"{boundary.id}: duplicate quarantine rows"
        assert _quarantine_keys(state) == _quarantine_keys(clean), boundary.id

        for row in state.log:
            counted = sum(row[name] for name in COUNT_FIELDS if name != "rows_read")
            assert row["rows_read"] == counted, (boundary.id, row["source_path"])
        by_file: dict[str, list[dict[str, Any]]] = {}
        for row in state.log:
            by_file.setdefault(row["source_path"], []).append(row)
        assert set(by_file) == set(loaded), boundary.id
        for path, rows in by_file.items():
            statuses = sorted(r["status"] for r in rows)
            assert statuses.count("loaded") == 1, (boundary.id, path, statuses)
            assert set(statuses) <= {"loaded", "skipped"}, (boundary.id, path, statuses)
            (once,) = [r for r in rows if r["status"] == "loaded"]
            counts = {name: once[name] for name in COUNT_FIELDS}
            assert counts == {name: loaded[path][name] for name in COUNT_FIELDS}, path

        assert state.temporaries == [], boundary.id
        assert state.raw_left == [], boundary.id
        assert state.archived == clean.archived, boundary.id  # each file archived once
        assert state.rejected == clean.rejected, boundary.id
