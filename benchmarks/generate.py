"""Benchmark of the sample-data generator: wall time, peak RSS, rows and files written.

Usage:
    .venv/bin/python benchmarks/generate.py --scale 1
    .venv/bin/python benchmarks/generate.py --scale 0.1 --dirty 0.05 --out build/bench --keep

Without ``--out`` the files go to a temporary directory that is removed afterwards.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

from ecommerce_lakehouse_datagen import generate


def _peak_rss_mib() -> float:
    # ru_maxrss is in KiB on Linux (bytes on macOS).
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=0.1, help="1 = Instacart volumes")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--dirty", type=float, default=0.0, help="fraction of damaged rows")
    parser.add_argument("--rows-per-file", type=int, default=1_000_000)
    parser.add_argument("--out", type=Path, help="lake root (default: a temporary directory)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args(argv)

    root = args.out or Path(tempfile.mkdtemp(prefix="lakehouse-generate-"))
    rss_before = _peak_rss_mib()
    began = time.perf_counter()
    try:
        summary = generate(
            root,
            scale=args.scale,
            seed=args.seed,
            dirty=args.dirty,
            rows_per_file=args.rows_per_file,
        )
        wall = time.perf_counter() - began
        peak = _peak_rss_mib()
        written = sum(path.stat().st_size for path in summary.files)
    finally:
        if args.out is None and not args.keep:
            shutil.rmtree(root, ignore_errors=True)

    print(f"generate --scale {args.scale:g} --seed {args.seed} --dirty {args.dirty:g}")
    for output in summary.entities:
        print(f"  {output.name:<12} {output.rows:>12,} rows  {len(output.files):>4} files")
    print(f"  {'total':<12} {summary.rows:>12,} rows  {len(summary.files):>4} files")
    print(f"  written      {written / 2**20:>12,.1f} MiB")
    print(f"  wall time    {wall:>12.2f} s  ({summary.rows / wall:,.0f} rows/s)")
    print(f"  peak RSS     {peak:>12,.1f} MiB  (before generate: {rss_before:,.1f} MiB)")
    if args.dirty > 0:
        faults = ", ".join(f"{k}={v:,}" for k, v in summary.faults.as_dict().items())
        print(f"  faults       {faults}")
    if args.out is not None or args.keep:
        print(f"  files under  {root}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
