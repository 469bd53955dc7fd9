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
import os
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NoReturn

from ecommerce_lakehouse.application.lake import open_lake
from ecommerce_lakehouse.application.pipeline import selected_steps
from ecommerce_lakehouse.application.run import RunOptions, RunResult, new_run_id, utc_now
from ecommerce_lakehouse.domain.errors import ConfigurationError, LakehouseError, describe_error
from ecommerce_lakehouse.domain.types import FileStatus
from ecommerce_lakehouse.domain.validation import ValidationPolicy
from ecommerce_lakehouse.domain.zones import run_record_key
from ecommerce_lakehouse.settings import (
    LakeSettings,
    info_of,
    job_argument,
    read_settings,
    setting,
    settings_fields,
    shown_default,
)

#: Key (relative to the lake root) of a run's result unless ``--result_key`` names another.
RESULT_KEY = run_record_key("{run_id}")

#: A run id names a folder of the archive and a result file: one safe path segment (what
#: the trigger's execution names and generated ids are).
RUN_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,79}")


@dataclass(frozen=True, slots=True, kw_only=True)
class GlueJobSettings(LakeSettings):
    """The Glue job's settings: the lake settings, the lake and the job's own arguments.

    Read from the job arguments (and ``LAKEHOUSE_*`` variables, which Glue does not set)
    by :func:`ecommerce_lakehouse.settings.read_settings`; docs/settings.md lists them.
    """

    lake: str = setting("the lake root: s3://bucket[/prefix] on AWS, a directory locally")
    # Two defaults of its own: Glue runs the Spark engine, and a job started while another
    # run holds the lake waits for it rather than failing.
    engine: str = setting("the table engine: polars (embedded) or spark", default="spark")
    lock_timeout: float = setting(
        "seconds to wait for another run to release the lake", default=600.0
    )
    run_id: str = setting(
        "the run id; the state machine passes its execution name (default: generated)",
        default="",
        flag=False,
        env=False,
    )
    steps: str = setting(
        "comma-separated pipeline steps to run (default: every step)",
        default="",
        flag=False,
        env=False,
    )
    result_key: str = setting(
        "where the run's result JSON goes, relative to the lake (default: " + RESULT_KEY + ")",
        default="",
        flag=False,
        env=False,
    )
    fail_on_error_checks: bool = setting(
        "whether a failing error-severity check fails the job run: true or false",
        default=True,
        flag=False,
        env=False,
    )


#: Every argument the job reads, as Glue passes it (``--name``): the lake first.
ARGUMENTS: tuple[str, ...] = tuple(
    sorted(
        (f.name for f in settings_fields(GlueJobSettings) if info_of(f).job),
        key=lambda name: name != "lake",
    )
)


def usage() -> str:
    """The ``--help`` text: every argument, as Glue passes it (underscores)."""
    lines = [
        "usage: glue_job.py --lake LAKE [--NAME VALUE ...]",
        "",
        "The ecommerce-lakehouse Glue job: runs the pipeline's steps on one lake and writes",
        "the run's result to _runs/<run id>.json. Exit 0 success, 1 failure, 2 bad arguments.",
        "Arguments (spelled with underscores, as Glue's getResolvedOptions reads them):",
    ]
    fields = {f.name: f for f in settings_fields(GlueJobSettings)}
    for name in ARGUMENTS:
        field = fields[name]
        shown = shown_default(field)
        meaning = info_of(field).meaning
        suffix = (
            f" (default: {shown})" if shown not in ("", None) and "default" not in meaning else ""
        )
        lines.append(f"  {job_argument(name):<24} {meaning}{suffix}")
    return "\n".join(lines)


@dataclass(frozen=True, slots=True, kw_only=True)
class JobArguments:
    """The job's arguments, parsed and checked.

    Attributes:
        lake: the lake root (``s3://bucket[/prefix]`` on AWS, a directory locally).
        run_id: the run id (an orchestrator passes its execution name); generated if empty.
        options: the pipeline's run options.
        result_key: where the result JSON is written, relative to the lake root.
        fail_on_error_checks: whether a failing error-severity check fails the job run.
        settings: every setting the job read (engine, region, Glue database, query
            service, ...), for the lake's composition.
    """

    lake: str
    run_id: str
    options: RunOptions
    result_key: str
    fail_on_error_checks: bool = True
    settings: GlueJobSettings

    @property
    def engine(self) -> str:
        """The table engine the job runs."""
        return self.settings.engine

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
    settings = read_settings(GlueJobSettings, given, os.environ, spelling=job_argument)
    steps_text = settings.steps.strip()
    steps = tuple(s.strip() for s in steps_text.split(",") if s.strip()) if steps_text else None
    selected_steps(steps)  # refuses unknown names now, not after Spark has started
    run_id = settings.run_id or new_run_id(utc_now())
    if not RUN_ID_PATTERN.fullmatch(run_id):
        raise ConfigurationError(
            f"invalid --run_id {run_id!r}: letters, digits, '-', '_' and '.' only, 80 at most"
        )
    result_key = settings.result_key or RESULT_KEY.format(run_id=run_id)
    if result_key.startswith("/") or ".." in result_key.split("/") or "\\" in result_key:
        raise ConfigurationError(f"invalid --result_key {result_key!r}: a key inside the lake")
    options = RunOptions(
        evolution=settings.schema_evolution,
        policy=ValidationPolicy(foreign_key_severity=settings.fk_severity),
        lock_timeout_seconds=settings.lock_timeout,
        compact_min_files=settings.compact_min_files,
        run_id=run_id,
        steps=steps,
    )
    return JobArguments(
        lake=settings.lake,
        run_id=run_id,
        options=options,
        result_key=result_key,
        fail_on_error_checks=settings.fail_on_error_checks,
        settings=settings,
    )


def run_job(
    arguments: JobArguments, *, progress: Callable[[str, str], None] | None = None
) -> RunResult:
    """Run the pipeline for ``arguments`` and write its result JSON into the lake.

    Returns:
        The run's result (also written to ``arguments.result_key``).
    """
    with open_lake(arguments.lake, settings=arguments.settings) as lake:
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
        return _exit(_fail(str(error), 2), argv)
    except LakehouseError as error:
        return _exit(_fail(str(error), 1), argv)
    except Exception as error:  # an SDK's or the file system's: still one line, not a trace
        return _exit(_fail(f"unexpected {describe_error(error)}", 1), argv)
    print(json.dumps({**result.as_dict(), "result_key": arguments.result_key}, sort_keys=True))
    return _exit(arguments.exit_code(result), argv)


def _fail(message: str, code: int) -> int:
    # One line on stderr (CloudWatch's error stream), with what came from data - a value,
    # a name - shown escaped: never a second line, never a terminal escape.
    shown = "".join(c if c.isprintable() else repr(c)[1:-1] for c in message)
    print(f"error: {shown}", file=sys.stderr)
    return code


def _exit(code: int, argv: Sequence[str] | None) -> int:
    # Called as a script (argv None), a failure must end the process non-zero so Glue marks
    # the job run FAILED; called from Python, the code is returned.
    if argv is None and code:
        raise SystemExit(code)
    return code
