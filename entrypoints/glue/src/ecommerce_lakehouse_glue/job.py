"""The AWS Glue job: run the pipeline's steps on one lake with the Spark engine.

Glue starts the job script (``glue_job.py``, uploaded as the job's ScriptLocation) with
arguments such as ``--JOB_NAME lakehouse --lake s3://bucket --run-id <execution>``; the
script calls :func:`main`. The job ingests (and, unless told otherwise, archives, catalogues
and validates), then writes a machine-readable result - the files committed with their
counts and the checks - to ``_runs/<run id>.json`` in the lake (or ``--result-key``) and
prints it as one JSON line, for the orchestration to pass on. It exits non-zero when a step
or an error-severity check failed, so Glue marks the run failed.

Outside Glue (no ``awsglue`` module) the same job runs locally on a directory lake with a
local Spark session: ``lakehouse-glue-job --lake ./lake``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ecommerce_lakehouse.application.lake import open_lake
from ecommerce_lakehouse.application.pipeline import selected_steps
from ecommerce_lakehouse.application.run import RunOptions, RunResult, new_run_id, utc_now
from ecommerce_lakehouse.domain.errors import ConfigurationError, LakehouseError
from ecommerce_lakehouse.domain.types import FileStatus, SchemaEvolution, Severity
from ecommerce_lakehouse.domain.validation import ValidationPolicy

#: Arguments every run must be given.
REQUIRED = ("lake",)
#: Optional arguments and their defaults (Glue passes ``--name value`` pairs).
DEFAULTS: Mapping[str, str] = {
    "JOB_NAME": "ecommerce-lakehouse",
    "run-id": "",
    "engine": "spark",
    "schema-evolution": SchemaEvolution.RESCUE.value,
    "fk-severity": Severity.WARN.value,
    "lock-timeout-seconds": "600",
    "steps": "",
    "result-key": "",
    "fail-on-error-checks": "true",
}
#: Job arguments passed on to the platform as its options (empty: the environment's value,
#: see the aws adapter's settings). A deployment sets them as the job's default arguments.
PLATFORM_OPTIONS: Mapping[str, str] = {
    "region": "region",
    "glue-database": "glue_database",
    "query": "query",
    "athena-workgroup": "athena_workgroup",
    "athena-output": "athena_output",
}

#: Key (relative to the lake root) of a run's result unless ``--result-key`` names another.
RESULT_KEY = "_runs/{run_id}.json"


@dataclass(frozen=True, slots=True, kw_only=True)
class JobArguments:
    """The job's arguments, parsed and checked.

    Attributes:
        job_name: Glue's ``JOB_NAME`` (used by ``awsglue.job.Job``).
        lake: the lake root (``s3://bucket[/prefix]`` on AWS, a directory locally).
        run_id: the run id (an orchestrator passes its execution name); generated if empty.
        engine: the table engine (``spark`` on Glue).
        options: the pipeline's run options.
        result_key: where the result JSON is written, relative to the lake root.
        fail_on_error_checks: whether a failing error-severity check fails the job run; an
            orchestrator that gates on the checks in a later state of its own passes false.
        platform_options: options for the lake's platform (region, Glue database, query
            service, ...) from ``--region``, ``--glue-database``, ``--query``,
            ``--athena-workgroup`` and ``--athena-output``.
    """

    job_name: str
    lake: str
    run_id: str
    engine: str
    options: RunOptions
    result_key: str
    fail_on_error_checks: bool = True
    platform_options: Mapping[str, str] = field(default_factory=dict)

    def exit_code(self, result: RunResult) -> int:
        """0 on success; 1 when a step or file failed (or an error check, if it counts)."""
        if self.fail_on_error_checks:
            return result.exit_code
        return 0 if result.ok or (not result.failed_step and not _failed_files(result)) else 1


def _failed_files(result: RunResult) -> bool:
    return any(f.status is FileStatus.FAILED for f in result.files)


def resolve_options(argv: Sequence[str], names: Sequence[str]) -> dict[str, str]:
    """``--name value`` (or ``--name=value``) pairs of ``argv`` for the given names.

    Behaves like ``awsglue.utils.getResolvedOptions`` for the arguments it is asked for:
    the last occurrence wins, and Glue's own arguments (``--TempDir``, ``--job-bookmark-
    option``, ...) are ignored. Unlike it, a missing name is simply absent from the result.

    Raises:
        ConfigurationError: a wanted ``--name`` has no value.
    """
    wanted = set(names)
    found: dict[str, str] = {}
    items = list(argv)
    index = 0
    while index < len(items):
        item = items[index]
        index += 1
        if not item.startswith("--"):
            continue
        name, sep, value = item[2:].partition("=")
        if name not in wanted:
            continue
        if not sep:
            if index >= len(items) or items[index].startswith("--"):
                raise ConfigurationError(f"job argument --{name} needs a value")
            value = items[index]
            index += 1
        found[name] = value
    return found


def _glue_options(argv: Sequence[str], names: Sequence[str]) -> dict[str, str] | None:
    try:
        from awsglue.utils import getResolvedOptions
    except ImportError:
        return None
    # getResolvedOptions treats every name as required: ask only for those present.
    present = [n for n in names if f"--{n}" in argv or any(a.startswith(f"--{n}=") for a in argv)]
    resolved: dict[str, str] = getResolvedOptions(list(argv), present)
    return resolved


def parse_arguments(argv: Sequence[str]) -> JobArguments:
    """Parse Glue-style job arguments (``awsglue`` when installed, the fallback when not).

    Raises:
        ConfigurationError: a required argument is missing or a value is invalid.
    """
    names = [*REQUIRED, *DEFAULTS, *PLATFORM_OPTIONS]
    given = _glue_options(argv, names)
    if given is None:
        given = resolve_options(argv, names)
    missing = [n for n in REQUIRED if not given.get(n, "").strip()]
    if missing:
        raise ConfigurationError(f"missing job argument(s): {', '.join('--' + n for n in missing)}")
    values = {**DEFAULTS, **given}
    try:
        timeout = float(values["lock-timeout-seconds"])
    except ValueError:
        raise ConfigurationError(
            f"invalid --lock-timeout-seconds '{values['lock-timeout-seconds']}': expected seconds"
        ) from None
    if timeout < 0:
        raise ConfigurationError("--lock-timeout-seconds must not be negative")
    steps_text = values["steps"].strip()
    steps = tuple(s.strip() for s in steps_text.split(",") if s.strip()) if steps_text else None
    selected_steps(steps)  # refuses unknown names now, not after Spark has started
    flag = values["fail-on-error-checks"].strip().lower()
    if flag not in ("true", "false"):
        raise ConfigurationError(
            f"invalid --fail-on-error-checks '{values['fail-on-error-checks']}': expected "
            "true or false"
        )
    run_id = values["run-id"].strip() or new_run_id(utc_now())
    options = RunOptions(
        evolution=SchemaEvolution.from_str(values["schema-evolution"]),
        policy=ValidationPolicy(foreign_key_severity=Severity.from_str(values["fk-severity"])),
        lock_timeout_seconds=timeout,
        run_id=run_id,
        steps=steps,
    )
    return JobArguments(
        job_name=values["JOB_NAME"],
        lake=values["lake"].strip(),
        run_id=run_id,
        engine=values["engine"].strip() or "spark",
        options=options,
        result_key=values["result-key"].strip() or RESULT_KEY.format(run_id=run_id),
        fail_on_error_checks=flag == "true",
        platform_options={
            option: given[name].strip()
            for name, option in PLATFORM_OPTIONS.items()
            if given.get(name, "").strip()
        },
    )


def run_job(
    arguments: JobArguments, *, progress: Callable[[str, str], None] | None = None
) -> RunResult:
    """Run the pipeline for ``arguments`` and write its result JSON into the lake.

    Returns:
        The run's result (also written to ``arguments.result_key``).
    """
    lake = open_lake(arguments.lake, engine=arguments.engine, options=arguments.platform_options)
    result = lake.run(arguments.options, progress=progress or _log)
    document = {**result.as_dict(), "result_key": arguments.result_key}
    payload = json.dumps(document, sort_keys=True).encode()
    lake.platform.storage.write_bytes(arguments.result_key, payload)
    return result


def _log(step: str, message: str) -> None:
    # Glue sends stderr to the job's error log stream in CloudWatch.
    print(f"{step}: {message}", file=sys.stderr, flush=True)


def _glue_job(job_name: str) -> Any | None:
    """Glue's ``Job`` bound to a GlueContext (which makes its Spark session the active one)."""
    try:
        from awsglue.context import GlueContext
        from awsglue.job import Job
        from pyspark.context import SparkContext
    except ImportError:
        return None
    glue_context = GlueContext(SparkContext.getOrCreate())
    job = Job(glue_context)
    job.init(job_name, {})
    return job


def main(argv: Sequence[str] | None = None) -> int:
    """Run the job; returns (and exits with) 0 on success, 1 on failure, 2 on bad arguments.

    The result JSON is printed as the last line of stdout; errors are one line on stderr.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        arguments = parse_arguments(args)
        job = _glue_job(arguments.job_name)
        result = run_job(arguments)
        if job is not None:
            job.commit()
    except ConfigurationError as error:
        print(f"error: {error}", file=sys.stderr)
        return _exit(2, argv)
    except LakehouseError as error:
        print(f"error: {error}", file=sys.stderr)
        return _exit(1, argv)
    print(json.dumps({**result.as_dict(), "result_key": arguments.result_key}, sort_keys=True))
    return _exit(arguments.exit_code(result), argv)


def _exit(code: int, argv: Sequence[str] | None) -> int:
    # Called as a script (argv None), a failure must end the process non-zero so Glue marks
    # the job run FAILED; called from Python, the code is returned.
    if argv is None and code:
        raise SystemExit(code)
    return code
