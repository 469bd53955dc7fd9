"""The AWS Glue job: run the pipeline's steps on one lake with the Spark engine.

Glue starts the job script (``glue_job.py``, the job's ScriptLocation) as
``glue_job.py --JOB_ID j_.. --JOB_RUN_ID jr_.. --job-bookmark-option .. --TempDir ..
--JOB_NAME <job> <DefaultArguments> <the run's Arguments>``; the script calls :func:`main`,
which reads the arguments with Glue's own ``awsglue.utils.getResolvedOptions`` - argparse
over ``argv[1:]`` - so the job's arguments are spelled with underscores, as AWS asks
(``--run_id``, ``--glue_database``): the same names as the settings they carry. The job runs
the steps it is given (``--steps``; the state machine passes the steps it places in the job),
then writes a machine-readable result - the files committed with their counts and the
checks - to ``_runs/<run id>.json`` in the lake (or ``--result_key``) and prints it as one
JSON line, for the orchestration to pass on. It exits non-zero when a step or file failed,
or an error-severity check (unless ``--fail_on_error_checks false``), so Glue marks the run
failed.

Outside Glue (no ``awsglue`` module) the same job runs locally on a directory lake with a
local Spark session, its arguments parsed the same way: ``lakehouse-glue-job --lake ./lake``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NoReturn

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
    "run_id": "",
    "engine": "spark",
    "schema_evolution": SchemaEvolution.RESCUE.value,
    "fk_severity": Severity.WARN.value,
    "lock_timeout": "600",
    "steps": "",
    "result_key": "",
    "fail_on_error_checks": "true",
}
#: Job arguments passed on to the platform as its options, under the same names (empty:
#: the environment's value, see the aws adapter's settings). A deployment sets them as the
#: job's default arguments, because Glue gives a job no environment variables.
PLATFORM_OPTIONS: tuple[str, ...] = (
    "region",
    "glue_database",
    "query",
    "athena_workgroup",
    "athena_output",
)
#: Every argument the job reads.
ARGUMENTS: tuple[str, ...] = (*REQUIRED, *DEFAULTS, *PLATFORM_OPTIONS)

#: Key (relative to the lake root) of a run's result unless ``--result_key`` names another.
RESULT_KEY = "_runs/{run_id}.json"

#: A run id names a folder of the archive and a result file: one safe path segment (what
#: the trigger's execution names and generated ids are).
RUN_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,79}")

#: What each argument means (``--help``).
HELP: Mapping[str, str] = {
    "lake": "the lake root: s3://bucket[/prefix] on AWS, a directory locally (required)",
    "run_id": "the run id; the state machine passes its execution name (default: generated)",
    "engine": "the table engine",
    "schema_evolution": "rescue, add_new_columns or fail",
    "fk_severity": "severity of the foreign-key checks: warn or error",
    "lock_timeout": "seconds to wait for another run to release the lake",
    "steps": "comma-separated pipeline steps to run (default: every step)",
    "result_key": "where the result JSON goes, relative to the lake (default: " + RESULT_KEY + ")",
    "fail_on_error_checks": "whether a failing error-severity check fails the run: true or false",
    "region": "AWS region (default: the environment's)",
    "glue_database": "Glue Data Catalog database (default: LAKEHOUSE_GLUE_DATABASE)",
    "query": "query service of the checks: spark, athena or duckdb",
    "athena_workgroup": "Athena workgroup, with --query athena",
    "athena_output": "s3:// location of Athena's results, with --query athena",
}


def usage() -> str:
    """The ``--help`` text: every argument, as Glue passes it (underscores)."""
    lines = [
        "usage: glue_job.py --lake LAKE [--NAME VALUE ...]",
        "",
        "The ecommerce-lakehouse Glue job: runs the pipeline's steps on one lake and writes",
        "the run's result to _runs/<run id>.json. Exit 0 success, 1 failure, 2 bad arguments.",
        "Arguments (spelled with underscores, as Glue's getResolvedOptions reads them):",
    ]
    for name in ARGUMENTS:
        default = DEFAULTS.get(name, "")
        shown = f" (default: {default})" if default and "default" not in HELP[name] else ""
        lines.append(f"  --{name:<22}{HELP[name]}{shown}")
    return "\n".join(lines)


@dataclass(frozen=True, slots=True, kw_only=True)
class JobArguments:
    """The job's arguments, parsed and checked.

    Attributes:
        lake: the lake root (``s3://bucket[/prefix]`` on AWS, a directory locally).
        run_id: the run id (an orchestrator passes its execution name); generated if empty.
        engine: the table engine (``spark`` on Glue).
        options: the pipeline's run options.
        result_key: where the result JSON is written, relative to the lake root.
        fail_on_error_checks: whether a failing error-severity check fails the job run.
        platform_options: options for the lake's platform (region, Glue database, query
            service, ...) from ``--region``, ``--glue_database``, ``--query``,
            ``--athena_workgroup`` and ``--athena_output``.
    """

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


def _given(argv: Sequence[str], name: str) -> bool:
    flag = f"--{name}"
    return any(arg == flag or arg.startswith(flag + "=") for arg in argv[1:])


def resolve_options(argv: Sequence[str], names: Sequence[str]) -> dict[str, str]:
    """``getResolvedOptions`` for machines without ``awsglue`` (a local job run).

    The same semantics as Glue's: argparse over ``argv[1:]`` (``argv[0]`` is the script),
    every asked-for name required, ``--name value`` or ``--name=value``, the last occurrence
    wins, other arguments (Glue's own, ``--conf``, ...) ignored. The tests hold it to the
    real function's answers.

    Raises:
        ConfigurationError: an asked-for argument is missing or has no value.
    """

    class _Parser(argparse.ArgumentParser):
        def error(self, message: str) -> NoReturn:
            raise ConfigurationError(f"job arguments: {message}")

    parser = _Parser(add_help=False)
    for name in names:
        parser.add_argument(f"--{name}", required=True)
    parsed, _ = parser.parse_known_args(list(argv[1:]))
    return {name: str(value) for name, value in vars(parsed).items()}


def _resolved(argv: Sequence[str], names: Sequence[str]) -> dict[str, str]:
    try:
        from awsglue.utils import getResolvedOptions
    except ImportError:
        return resolve_options(argv, names)
    try:
        resolved: dict[str, str] = getResolvedOptions(list(argv), list(names))
    except Exception as error:  # GlueArgumentError, RuntimeError: Glue's words, one line
        raise ConfigurationError(f"job arguments: {error}") from None
    return {name: str(resolved[name]) for name in names}


def parse_arguments(argv: Sequence[str]) -> JobArguments:
    """Parse the job's arguments as Glue delivers them (``argv[0]`` is the script).

    Glue's ``getResolvedOptions`` reads them when ``awsglue`` is installed (on Glue), and
    :func:`resolve_options` when it is not. Since it requires every name it is asked for,
    only the names present are asked for; the others take their defaults.

    Raises:
        ConfigurationError: a required argument is missing, a value is invalid, or one of
            the job's arguments is spelled with dashes (Glue resolves names as written, so
            ``--run-id`` would be silently ignored).
    """
    for name in ARGUMENTS:
        dashed = name.replace("_", "-")
        if dashed != name and _given(argv, dashed):
            raise ConfigurationError(
                f"job argument --{dashed} is spelled --{name} (Glue job arguments use underscores)"
            )
    given = _resolved(argv, [n for n in ARGUMENTS if _given(argv, n)])
    missing = [n for n in REQUIRED if not given.get(n, "").strip()]
    if missing:
        raise ConfigurationError(f"missing job argument(s): {', '.join('--' + n for n in missing)}")
    values = {**DEFAULTS, **given}
    try:
        timeout = float(values["lock_timeout"])
    except ValueError:
        raise ConfigurationError(
            f"invalid --lock_timeout {values['lock_timeout']!r}: expected seconds"
        ) from None
    if timeout < 0:
        raise ConfigurationError("--lock_timeout must not be negative")
    steps_text = values["steps"].strip()
    steps = tuple(s.strip() for s in steps_text.split(",") if s.strip()) if steps_text else None
    selected_steps(steps)  # refuses unknown names now, not after Spark has started
    flag = values["fail_on_error_checks"].strip().lower()
    if flag not in ("true", "false"):
        raise ConfigurationError(
            f"invalid --fail_on_error_checks {values['fail_on_error_checks']!r}: expected "
            "true or false"
        )
    run_id = values["run_id"].strip() or new_run_id(utc_now())
    if not RUN_ID_PATTERN.fullmatch(run_id):
        raise ConfigurationError(
            f"invalid --run_id {run_id!r}: letters, digits, '-', '_' and '.' only, 80 at most"
        )
    result_key = values["result_key"].strip() or RESULT_KEY.format(run_id=run_id)
    if result_key.startswith("/") or ".." in result_key.split("/") or "\\" in result_key:
        raise ConfigurationError(f"invalid --result_key {result_key!r}: a key inside the lake")
    options = RunOptions(
        evolution=SchemaEvolution.from_str(values["schema_evolution"]),
        policy=ValidationPolicy(foreign_key_severity=Severity.from_str(values["fk_severity"])),
        lock_timeout_seconds=timeout,
        run_id=run_id,
        steps=steps,
    )
    return JobArguments(
        lake=values["lake"].strip(),
        run_id=run_id,
        engine=values["engine"].strip() or "spark",
        options=options,
        result_key=result_key,
        fail_on_error_checks=flag == "true",
        platform_options={
            name: given[name].strip() for name in PLATFORM_OPTIONS if given.get(name, "").strip()
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


def main(argv: Sequence[str] | None = None) -> int:
    """Run the job; returns (and exits with) 0 on success, 1 on failure, 2 on bad arguments.

    Args:
        argv: the whole argument vector, script first (``sys.argv`` when None).

    The result JSON is printed as the last line of stdout; errors are one line on stderr.
    """
    args = list(sys.argv if argv is None else argv)
    if any(arg in ("-h", "--help") for arg in args[1:]):
        print(usage())
        return 0
    try:
        arguments = parse_arguments(args)
        result = run_job(arguments)
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
