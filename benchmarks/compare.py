"""Product against plain baseline scripts, side by side: wall time and peak RSS per step.

Usage:
    .venv/bin/python benchmarks/compare.py --scale 0.01 --engines polars,spark [--dirty 0]
        [--verify] [--out results.json] [--keep]

Not timed: the data is generated once (--seed, 2024-01-01..2024-03-31), then the last day's
orders and items are cut out of those files into a separate "daily" batch (same generator run,
so its ids are new and its items' orders are in it); products are in the full load only. Each
engine gets two lakes, one for the product and one for its baseline (baseline_polars.py or
baseline_pyspark.py), with a copy of the same files. Timed, each in its own process, on each
lake: the full load, then the daily batch, then a re-run with nothing new.

The product archives what it loaded; the baselines do not, so between steps this script empties
the baseline's raw-data/ (the move a scheduler would do), untimed. The product runs with
``--settle-seconds 0``: the files are in place before the clock starts, and waiting for them to
settle is not work either side should be charged for.

``--verify`` compares the final tables of both lakes (rows, key sets, every business value),
which must be equal on clean data (``--dirty 0``).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import polars as pl

from ecommerce_lakehouse.domain.schemas import SCHEMAS

HERE = Path(__file__).resolve().parent
BASELINES = {"polars": HERE / "baseline_polars.py", "spark": HERE / "baseline_pyspark.py"}
START, DAILY = date(2024, 1, 1), date(2024, 3, 31)
STEPS = ("full load", "daily batch", "no-op re-run")

# Runs one command and reports its wall time and the peak RSS of its process tree's largest
# process. A fresh wrapper per measurement, because RUSAGE_CHILDREN's ru_maxrss is a maximum
# over every child reaped so far. The wrapper is a child subreaper (prctl
# PR_SET_CHILD_SUBREAPER) and reaps every orphan before reading it: PySpark never waits for its
# JVM, which would otherwise be re-parented to init and never counted (as /usr/bin/time -f %M
# would miss it). The kernel's maxrss is per process, not a sum: for Spark it is the JVM's.
_WRAPPER = """
import ctypes, json, os, resource, subprocess, sys, time
ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)
with open(sys.argv[1], "wb") as out, open(sys.argv[1] + ".err", "wb") as err:
    began = time.perf_counter()
    code = subprocess.run(sys.argv[2:], stdout=out, stderr=err).returncode
    seconds = time.perf_counter() - began
while True:
    try:
        os.wait()
    except ChildProcessError:
        break
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({"seconds": seconds, "peak_kib": peak, "code": code}))
"""


# The product's `lakehouse` command, with the Spark engine's job counts logged to a file:
# the adapter logs one INFO line per entity and step on the "ecommerce_lakehouse_spark"
# logger ("spark jobs: order_items read=3 (3 files), stage=2, ..."), which the CLI leaves
# unconfigured (and it sets file descriptor 2 aside while a command runs).
_LOGGED_LAKEHOUSE = """
import logging, os, sys
handler = logging.FileHandler(os.environ["LAKEHOUSE_BENCH_JOB_LOG"])
handler.setFormatter(logging.Formatter("%(message)s"))
logger = logging.getLogger("ecommerce_lakehouse_spark")
logger.addHandler(handler)
logger.setLevel(os.environ.get("LAKEHOUSE_BENCH_LOG_LEVEL", "INFO"))
from ecommerce_lakehouse_cli.main import run
sys.argv[0] = "lakehouse"
run()
"""
JOB_LINE = re.compile(r"^spark jobs: (\S+) (.*)$")
JOB_COUNT = re.compile(r"(\w+)=(\d+)")


@dataclass(frozen=True, slots=True)
class Measure:
    seconds: float
    peak_mib: float
    code: int
    output: Any
    #: Spark jobs by entity (or table, or "sql") and step, summed over the run.
    spark_jobs: dict[str, dict[str, int]] | None = None


def spark_jobs(log: Path) -> dict[str, dict[str, int]] | None:
    """Job counts of the "spark jobs:" lines of a run's log, summed by entity and step."""
    if not log.exists():
        return None
    found: dict[str, dict[str, int]] = {}
    for line in log.read_text(errors="replace").splitlines():
        match = JOB_LINE.match(line.strip())
        if not match:
            continue
        steps = found.setdefault(match.group(1), {})
        for step, jobs in JOB_COUNT.findall(match.group(2)):
            if step != "total":
                steps[step] = steps.get(step, 0) + int(jobs)
    return found


def measure(command: list[str], log: Path, jobs_log: Path | None = None) -> Measure:
    env = dict(os.environ)
    if jobs_log is not None:
        jobs_log.unlink(missing_ok=True)
        env["LAKEHOUSE_BENCH_JOB_LOG"] = str(jobs_log)
    done = subprocess.run(
        [sys.executable, "-c", _WRAPPER, str(log), *command],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    facts = json.loads(done.stdout)
    text = log.read_text()
    try:
        output = json.loads(text) if text.strip() else None
    except json.JSONDecodeError:
        output = text[-2000:]
    if facts["code"] != 0:
        tail = log.with_name(log.name + ".err").read_text(errors="replace")[-1500:]
        print(f"  exit {facts['code']}: {' '.join(command[:3])} ...\n{tail}", file=sys.stderr)
    return Measure(
        seconds=round(facts["seconds"], 2),
        peak_mib=round(facts["peak_kib"] / 1024, 1),
        code=facts["code"],
        output=output,
        spark_jobs=spark_jobs(jobs_log) if jobs_log is not None else None,
    )


def split_daily(raw: Path, daily: Path) -> dict[str, int]:
    """Move the records of the last day out of the timestamped entities' files into ``daily``.

    Records are cut by the raw text of their ``order_timestamp`` (kept byte for byte, dirty
    ones included); a record is complete when its quotes balance (RFC 4180).
    """
    moved: dict[str, int] = {}
    for schema in SCHEMAS:
        if schema.ordering_column is None:
            continue
        moved[schema.name] = 0
        for path in sorted((raw / schema.name).glob("*.csv")):
            with path.open("rb") as handle:
                lines = handle.readlines()  # split on LF only: bytes kept as written
            if not lines:
                continue
            header = [h.strip().lower() for h in _fields(lines[0].decode("utf-8-sig"))]
            column = header.index(schema.ordering_column)
            keep, cut = [lines[0]], [lines[0]]
            record = b""
            for line in lines[1:]:
                record += line
                if record.count(b'"') % 2:
                    continue
                fields = _fields(record.decode("utf-8", errors="replace"))
                value = fields[column].strip() if column < len(fields) else ""
                (cut if value.startswith(DAILY.isoformat()) else keep).append(record)
                record = b""
            if record:  # an unclosed quote to the end: leave it to the full load
                keep.append(record)
            path.write_bytes(b"".join(keep))
            target = daily / schema.name / f"{path.stem}_{DAILY.isoformat()}.csv"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(b"".join(cut))
            moved[schema.name] += len(cut) - 1
    return moved


def _fields(record: str) -> list[str]:
    try:
        return next(csv.reader([record]), [])
    except csv.Error:
        return []


def stage(source: Path, lake: Path, *, clear: bool) -> None:
    """Put a batch's files into ``lake/raw-data`` (emptied first when ``clear``)."""
    raw = lake / "raw-data"
    if clear and raw.exists():
        shutil.rmtree(raw)
    if source.exists():
        shutil.copytree(source, raw, dirs_exist_ok=True)
    raw.mkdir(parents=True, exist_ok=True)


def run_engine(
    engine: str, workdir: Path, batches: dict[str, Path | None]
) -> dict[str, dict[str, Measure]]:
    lakehouse = str(Path(sys.executable).with_name("lakehouse"))
    results: dict[str, dict[str, Measure]] = {"product": {}, "baseline": {}}
    for tool, results_of in results.items():
        lake = workdir / f"{engine}-{tool}"
        if tool == "product":
            # For Spark, the same command with its job counts logged (_LOGGED_LAKEHOUSE).
            program = [sys.executable, "-c", _LOGGED_LAKEHOUSE] if engine == "spark" else []
            command = [*(program or [lakehouse]), "run", "--lake", str(lake), "--engine", engine]
            command += ["--format", "json", "--settle-seconds", "0"]
        else:
            command = [sys.executable, str(BASELINES[engine]), "--lake", str(lake)]
        for number, (step, batch) in enumerate(batches.items()):
            stage(batch or workdir / "nothing", lake, clear=tool == "baseline")
            log = workdir / "logs" / f"{engine}-{tool}-{number}.json"
            log.parent.mkdir(exist_ok=True)
            print(f"  {engine} {tool}: {step} ...", file=sys.stderr, flush=True)
            jobs_log = log.with_suffix(".jobs.log") if engine == "spark" else None
            results_of[step] = measure(command, log, jobs_log if tool == "product" else None)
    return results


def verify(product: Path, baseline: Path) -> dict[str, dict[str, int]]:
    """Per table: rows of each, keys only in one of them, rows whose values differ."""
    found: dict[str, dict[str, int]] = {}
    for schema in SCHEMAS:
        columns, key = list(schema.column_names), list(schema.primary_key)
        ours = pl.read_delta(str(product / schema.name), columns=columns)
        theirs = pl.read_delta(str(baseline / schema.name), columns=columns).cast(ours.schema)
        keys = ours.select(key).unique(), theirs.select(key).unique()
        found[schema.name] = {
            "product_rows": ours.height,
            "baseline_rows": theirs.height,
            "keys_only_in_product": keys[0].join(keys[1], on=key, how="anti").height,
            "keys_only_in_baseline": keys[1].join(keys[0], on=key, how="anti").height,
            "rows_differing": ours.join(theirs, on=columns, how="anti", nulls_equal=True).height,
        }
    return found


def machine(engines: list[str]) -> dict[str, Any]:
    with open("/proc/meminfo") as meminfo:
        total_kib = int(meminfo.readline().split()[1])
    facts: dict[str, Any] = {
        "date": f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "host": f"{platform.node()} {platform.machine()}",
        "cores": len(os.sched_getaffinity(0)),
        "ram_gib": round(total_kib / 2**20, 1),
        # Another job on the machine shows here: report it with the timings.
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
    }
    packages = ["polars", "deltalake", "duckdb"] + (["pyspark"] if "spark" in engines else [])
    facts |= {name: version(name) for name in packages}
    if "spark" in engines:
        java = subprocess.run(["java", "-version"], capture_output=True, text=True, check=False)
        facts["java"] = java.stderr.splitlines()[0] if java.stderr else "unknown"
    return facts


def table(engine: str, results: dict[str, dict[str, Measure]]) -> list[str]:
    head = (
        f"{'step':<14}{'product s':>11}{'baseline s':>12}{'ratio':>8}"
        f"{'product MiB':>13}{'baseline MiB':>14}  exit"
    )
    lines = [f"engine {engine} (ratio = product / baseline)", head]
    for step in STEPS:
        ours, theirs = results["product"][step], results["baseline"][step]
        ratio = f"{ours.seconds / theirs.seconds:.1f}x" if theirs.seconds else "-"
        lines.append(
            f"{step:<14}{ours.seconds:>11.2f}{theirs.seconds:>12.2f}{ratio:>8}"
            f"{ours.peak_mib:>13.0f}{theirs.peak_mib:>14.0f}  {ours.code}/{theirs.code}"
        )
    for step in STEPS:
        jobs = results["product"][step].spark_jobs
        if jobs is None:
            continue
        total = sum(sum(steps.values()) for steps in jobs.values())
        output = results["baseline"][step].output
        theirs = output.get("spark_jobs") if isinstance(output, dict) else None
        baseline = f" (baseline: {sum(theirs.values())}, {theirs})" if theirs else ""
        lines.append(f"spark jobs, product {step}: {total}{baseline}")
        for name, steps in jobs.items():
            detail = ", ".join(f"{s}={n}" for s, n in steps.items())
            lines.append(f"  {name:<18} {sum(steps.values()):>4}  {detail}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=0.01)
    parser.add_argument("--dirty", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--engines", default="polars", help="comma-separated: polars,spark")
    parser.add_argument("--verify", action="store_true", help="compare the final tables")
    parser.add_argument("--out", type=Path, help="write the results as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the working directory")
    args = parser.parse_args()
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    if unknown := set(engines) - set(BASELINES):
        parser.error(f"unknown engine(s): {', '.join(sorted(unknown))}")
    facts = machine(engines)
    workdir = Path(tempfile.mkdtemp(prefix="lakehouse-compare-"))
    try:
        began = time.perf_counter()
        generate = [str(Path(sys.executable).with_name("lakehouse")), "generate"]
        generate += ["--out", str(workdir / "full"), "--scale", str(args.scale)]
        generate += ["--seed", str(args.seed), "--dirty", str(args.dirty)]
        generate += ["--start", START.isoformat(), "--end", DAILY.isoformat()]
        subprocess.run(generate, capture_output=True, check=True)
        daily_rows = split_daily(workdir / "full" / "raw-data", workdir / "daily" / "raw-data")
        csv_bytes = sum(p.stat().st_size for p in (workdir / "full").rglob("*.csv"))
        facts |= {
            "scale": args.scale,
            "dirty": args.dirty,
            "seed": args.seed,
            "full_load_csv_mib": round(csv_bytes / 2**20, 1),
            "daily_batch": {"date": DAILY.isoformat(), "records": daily_rows},
            "prepare_seconds": round(time.perf_counter() - began, 1),
        }
        batches: dict[str, Path | None] = {
            STEPS[0]: workdir / "full" / "raw-data",
            STEPS[1]: workdir / "daily" / "raw-data",
            STEPS[2]: None,
        }
        report: dict[str, Any] = {"machine": facts, "engines": {}}
        lines = [f"{k:<18}{v}" for k, v in facts.items()]
        for engine in engines:
            results = run_engine(engine, workdir, batches)
            entry: dict[str, Any] = {
                tool: {step: asdict(m) for step, m in steps.items()}
                for tool, steps in results.items()
            }
            lines += ["", *table(engine, results)]
            if args.verify:
                baseline_dir = "baseline-polars" if engine == "polars" else "baseline-pyspark"
                found = verify(
                    workdir / f"{engine}-product" / "lakehouse-dwh",
                    workdir / f"{engine}-baseline" / baseline_dir,
                )
                entry["verify"] = found
                lines.append(f"verify ({engine}, final tables, product vs baseline):")
                for name, counts in found.items():
                    same = (
                        counts["product_rows"] == counts["baseline_rows"]
                        and not counts["keys_only_in_product"]
                        and not counts["keys_only_in_baseline"]
                        and not counts["rows_differing"]
                    )
                    detail = ", ".join(f"{k} {v}" for k, v in counts.items())
                    lines.append(f"  {name:<12} {'equal' if same else 'DIFFERENT'}: {detail}")
            report["engines"][engine] = entry
        print("\n".join(lines))
        if args.out:
            args.out.write_text(json.dumps(report, indent=2) + "\n")
    finally:
        if args.keep:
            print(f"working directory kept at {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
