"""Benchmark `lakehouse run` on generated data: wall time and peak memory.

Usage: python benchmarks/run_pipeline.py [--scale 0.1] [--dirty 0.02] [--engine polars]

Generation happens first (not timed); the run itself is a separate `lakehouse` process so
its peak RSS is measured alone (getrusage of the child). A second run with nothing new in
raw-data/ measures the fixed cost of a run (lock, table checks, validation SQL).
"""

from __future__ import annotations

import argparse
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path


def _lakehouse() -> str:
    found = shutil.which("lakehouse", path=str(Path(sys.executable).parent))
    if found is None:
        raise SystemExit("lakehouse is not installed in this environment (run `make install`)")
    return found


def _timed(command: list[str]) -> tuple[float, float, int]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    completed = subprocess.run(command, stdout=subprocess.DEVNULL, check=False)
    elapsed = time.perf_counter() - started
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    # ru_maxrss of children is the max over all children so far: report it only when it grew.
    return elapsed, max(peak_kib, before) / 1024, completed.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", type=float, default=0.1)
    parser.add_argument("--dirty", type=float, default=0.02)
    parser.add_argument("--engine", default="polars")
    parser.add_argument("--keep", action="store_true", help="keep the lake directory")
    args = parser.parse_args()
    lakehouse = _lakehouse()
    workdir = Path(tempfile.mkdtemp(prefix="lakehouse-bench-"))
    try:
        started = time.perf_counter()
        subprocess.run(
            [
                lakehouse,
                "generate",
                "--out",
                str(workdir),
                "--scale",
                str(args.scale),
                "--dirty",
                str(args.dirty),
            ],
            stdout=subprocess.DEVNULL,
            check=True,
        )
        generated = time.perf_counter() - started
        raw_bytes = sum(p.stat().st_size for p in (workdir / "raw-data").rglob("*.csv"))
        wall, peak_mib, code = _timed(
            [lakehouse, "run", "--lake", str(workdir), "--engine", args.engine]
        )
        rerun, _, _ = _timed([lakehouse, "run", "--lake", str(workdir), "--engine", args.engine])
        print(f"date           {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
        print(
            f"machine        {platform.node()} {platform.machine()}, "
            f"{_cpus()} cores, {_memory_gib():.0f} GiB, Python {platform.python_version()}"
        )
        print(
            f"scale          {args.scale} (dirty {args.dirty}), raw CSV {raw_bytes / 2**20:.0f} MiB"
        )
        print(f"generate       {generated:.1f} s")
        print(f"run ({args.engine})   {wall:.1f} s wall, peak RSS {peak_mib:.0f} MiB, exit {code}")
        print(f"re-run         {rerun:.1f} s wall (nothing new to ingest)")
    finally:
        if args.keep:
            print(f"lake kept at {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0))


def _memory_gib() -> float:
    with open("/proc/meminfo") as meminfo:
        total_kib = int(meminfo.readline().split()[1])
    return total_kib / 2**20


if __name__ == "__main__":
    main()
