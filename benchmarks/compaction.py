"""Measure the run's compaction policy (``compact_min_files``): run time, files, query time.

Usage: python benchmarks/compaction.py [--scale 0.1] [--drops 6] [--policies 0,4,8]

Generates a full load (seed 42) and small drops across the whole date range (scale/20 each,
seeds 1, 2, ...; their order and item ids prefixed so that every drop adds new rows, as in
issue 14: each drop appends a file to every partition). For each policy, on a lake of its
own: the full load, then each drop, each a separate ``lakehouse run`` process. Reports per
run the ingest step's seconds (the compaction's cost is in it), the data files of
``orders`` and ``order_items`` and the files compacted, then the median time of a scan of
``order_items`` over five DuckDB queries once every drop is loaded.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import ecommerce_lakehouse as lh

#: The columns of each entity that are renamed per drop, so that its rows are new rows.
_IDS = {"orders": ("order_id",), "order_items": ("id", "order_id")}
_SCAN = "SELECT date, COUNT(*), SUM(add_to_cart_order) FROM order_items GROUP BY date"


def _generate(lakehouse: str, out: Path, scale: float, seed: int) -> None:
    command = [lakehouse, "generate", "--out", str(out), "--scale", str(scale)]
    subprocess.run([*command, "--seed", str(seed)], check=True, stdout=subprocess.DEVNULL)


def _fresh_ids(raw: Path, tag: str) -> None:
    """Prefix the ids of a drop's orders and items (products are left out of drops)."""
    shutil.rmtree(raw / "products", ignore_errors=True)
    for entity, columns in _IDS.items():
        for path in (raw / entity).glob("*.csv"):
            rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))
            header = [h.strip().lower() for h in rows[0]]
            positions = [header.index(c) for c in columns]
            for row in rows[1:]:
                for i in positions:
                    if i < len(row) and row[i]:
                        row[i] = f"{tag}-{row[i]}"
            text = io.StringIO()
            csv.writer(text, lineterminator="\n").writerows(rows)
            path.write_text(text.getvalue(), encoding="utf-8")


def _files(lake: Path, table: str) -> int:
    from deltalake import DeltaTable

    return len(DeltaTable(str(lake / "lakehouse-dwh" / table)).file_uris())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", type=float, default=0.1)
    parser.add_argument("--drops", type=int, default=6)
    parser.add_argument("--policies", default="0,4,8")
    args = parser.parse_args()
    lakehouse = str(Path(sys.executable).with_name("lakehouse"))
    workdir = Path(tempfile.mkdtemp(prefix="lakehouse-compaction-"))
    try:
        _generate(lakehouse, workdir / "full", args.scale, 42)
        batches = [("full load", workdir / "full" / "raw-data")]
        for n in range(1, args.drops + 1):
            _generate(lakehouse, workdir / f"drop{n}", args.scale / 20, n)
            _fresh_ids(workdir / f"drop{n}" / "raw-data", f"d{n}")
            batches.append((f"drop {n}", workdir / f"drop{n}" / "raw-data"))
        print("| policy | run | ingest s | orders files | order_items files | compacted |")
        print("|---|---|---|---|---|---|")
        scans: dict[int, float] = {}
        for policy in (int(p) for p in args.policies.split(",")):
            lake = workdir / f"lake{policy}"
            lake.mkdir()
            for label, raw in batches:
                shutil.copytree(raw, lake / "raw-data", dirs_exist_ok=True)
                options = ["--settle-seconds", "0", "--compact-min-files", str(policy)]
                done = subprocess.run(
                    [lakehouse, "run", "--lake", str(lake), *options, "--format", "json"],
                    capture_output=True,
                    text=True,
                    check=False,
                )
                result = json.loads(done.stdout)
                print(
                    f"| {policy} | {label} | {result['step_seconds']['ingest']:.2f} | "
                    f"{_files(lake, 'orders')} | {_files(lake, 'order_items')} | "
                    f"{result.get('compacted', {})} |",
                    flush=True,
                )
            with lh.open_lake(str(lake), options={"query": "duckdb"}) as opened:
                times = []
                for _ in range(5):
                    started = time.perf_counter()
                    opened.sql(_SCAN).to_pylist()
                    times.append(time.perf_counter() - started)
            scans[policy] = statistics.median(times)
        for policy, seconds in scans.items():
            print(f"policy {policy}: scan of order_items {seconds:.3f} s (median of 5)")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
