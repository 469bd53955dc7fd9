"""The Glue job's argument parsing, through AWS's own ``awsglue.utils.getResolvedOptions``.

The real function comes from ``awsgluedataplanepython`` 5.1.0 (PyPI; AWS's Glue 5.1 Python
library, Amazon Software License: its ``awsglue/utils.py`` is AWS's): argparse over
``argv[1:]``, every asked-for name required, dashes kept in flags but turned into
underscores in the names it returns. No Spark: arguments are refused before a session
starts.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import pytest

from ecommerce_lakehouse.domain.errors import ConfigurationError
from ecommerce_lakehouse.domain.types import SchemaEvolution, Severity
from ecommerce_lakehouse_glue.job import ARGUMENTS, main, parse_arguments, resolve_options

SCRIPT = "/tmp/glue_job.py"
# What Glue puts before and among the job's own arguments.
GLUE_NOISE = [
    "--JOB_ID", "j_1", "--JOB_RUN_ID", "jr_1", "--TempDir", "s3://tmp/x",
    "--job-bookmark-option", "job-bookmark-disable", "--enable-metrics", "true",
    "--conf", "spark.sql.extensions=x --conf spark.sql.catalog.spark_catalog=y",
    "--python-modules-installer-option", "--no-deps", "--JOB_NAME", "lakehouse-ingest",
]  # fmt: skip


def test_the_real_awsglue_package_is_the_one_under_test() -> None:
    from awsglue import utils

    assert importlib.metadata.version("awsgluedataplanepython") == "5.1.0"
    assert "Amazon.com, Inc." in Path(utils.__file__).read_text(encoding="utf-8")[:400]


def test_glue_style_arguments_are_parsed_and_unknown_ones_ignored() -> None:
    args = parse_arguments(
        [
            SCRIPT,
            *GLUE_NOISE,
            "--lake", "s3://bucket/lake",
            "--run_id", "exec-42",
            "--schema_evolution=add_new_columns",
            "--fk_severity", "error",
            "--steps", "discover,ingest",
            "--lock_timeout", "30",
            "--fail_on_error_checks", "false",
        ]
    )  # fmt: skip
    assert args.lake == "s3://bucket/lake"
    assert args.run_id == "exec-42" == args.options.run_id
    assert args.engine == "spark"
    assert args.options.evolution is SchemaEvolution.ADD_NEW_COLUMNS
    assert args.options.policy.foreign_key_severity is Severity.ERROR
    assert args.options.steps == ("discover", "ingest")
    assert args.options.lock_timeout_seconds == 30.0
    assert args.fail_on_error_checks is False
    assert args.result_key == "_runs/exec-42.json"
    assert args.settings.lock_timeout == 30.0


def test_the_first_argument_is_the_script_and_is_never_read() -> None:
    # Glue's getResolvedOptions parses argv[1:]: a job handed sys.argv[1:] loses its first
    # real argument.
    assert parse_arguments([SCRIPT, "--run_id", "r", "--lake", "s3://b"]).run_id == "r"
    assert parse_arguments(["--run_id", "r", "--lake", "s3://b"]).run_id != "r"
    with pytest.raises(ConfigurationError, match=r"missing setting lake: set --lake"):
        parse_arguments(["--lake", "s3://b/a"])


def test_platform_settings_come_from_the_job_arguments() -> None:
    # A deployment sets these as the job's default arguments (Glue sets no environment).
    args = parse_arguments(
        [
            SCRIPT,
            *GLUE_NOISE,
            "--lake", "s3://bucket/lake",
            "--glue_database", "shop_lake",
            "--region", "eu-west-1",
            "--query", "athena",
            "--athena_workgroup", "lakehouse",
            "--athena_output", " ",
        ]
    )  # fmt: skip
    settings = args.settings
    assert (settings.glue_database, settings.region) == ("shop_lake", "eu-west-1")
    assert (settings.query, settings.athena_workgroup) == ("athena", "lakehouse")
    assert settings.athena_output is None  # blank: not given


@pytest.mark.parametrize("name", [n for n in ARGUMENTS if "_" in n])
def test_a_dashed_spelling_is_refused_not_silently_ignored(name: str) -> None:
    dashed = "--" + name.replace("_", "-")
    with pytest.raises(ConfigurationError, match=f"{dashed} is spelled --{name}"):
        parse_arguments([SCRIPT, "--lake", "s3://b", dashed, "x"])


def test_help_lists_every_argument_as_glue_passes_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([SCRIPT, "--help"]) == 0
    printed = capsys.readouterr().out
    assert all(f"--{name} " in printed for name in ARGUMENTS)


def test_defaults_generate_a_run_id_and_run_every_step() -> None:
    args = parse_arguments([SCRIPT, "--lake", "/tmp/lake"])
    assert args.options.steps is None
    assert args.run_id and args.result_key == f"_runs/{args.run_id}.json"
    assert args.options.evolution is SchemaEvolution.RESCUE
    assert args.fail_on_error_checks is True


@pytest.mark.parametrize(
    "argv",
    [
        [SCRIPT, *GLUE_NOISE, "--lake", "s3://b", "--run_id", "r1", "--steps=discover"],
        [SCRIPT, "--lake", "a", "--lake", "b", "--run_id", "x", "--region"],
        [SCRIPT, "--run_id", "--lake", "b"],
        [SCRIPT, "--lake", "s3://b", "--result_key", "k.json", "--lake_root", "s3://other"],
    ],
)
def test_the_local_parser_answers_as_glue_does(argv: list[str]) -> None:
    from awsglue.utils import getResolvedOptions

    names = ["lake", "run_id"]

    def outcome(resolve: object) -> object:
        try:
            resolved = resolve(argv, names)  # type: ignore[operator]
        except Exception:  # both refuse: Glue with its own error, ours one line
            return "refused"
        return {n: resolved[n] for n in names}

    assert outcome(resolve_options) == outcome(getResolvedOptions)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([SCRIPT], "missing setting lake: set --lake"),
        ([SCRIPT, "--lake"], "--lake: expected one argument"),
        ([SCRIPT, "--lake", "x", "--schema_evolution", "merge"], "merge"),
        ([SCRIPT, "--lake", "x", "--steps", "ingest,upload"], "unknown pipeline step.*'upload'"),
        ([SCRIPT, "--lake", "x", "--lock_timeout", "soon"], "invalid --lock_timeout"),
        ([SCRIPT, "--lake", "x", "--fk_severity", "fatal"], "fatal"),
        ([SCRIPT, "--lake", "x", "--run_id", "../x"], "invalid --run_id '../x'"),
        ([SCRIPT, "--lake", "x", "--run_id", "a b"], "invalid --run_id"),
        ([SCRIPT, "--lake", "x", "--result_key", "../../etc/x.json"], "invalid --result_key"),
    ],
)
def test_bad_arguments_are_one_line_errors(argv: list[str], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        parse_arguments(argv)


def test_main_reports_bad_arguments_on_one_line_with_exit_code_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main([SCRIPT, "--lake", "x", "--steps", "nope"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and captured.err.startswith("error: unknown pipeline")


def test_failing_checks_can_be_left_to_the_orchestrator() -> None:
    from dataclasses import replace
    from datetime import UTC, datetime

    from ecommerce_lakehouse.application.run import RunResult
    from ecommerce_lakehouse.domain.validation import CheckResult

    failing = CheckResult(
        table_name="orders",
        check_name="primary_key_unique",
        severity=Severity.ERROR,
        passed=False,
        observed=1,
        expected=0,
    )
    now = datetime(2024, 1, 1, tzinfo=UTC)
    result = RunResult(
        run_id="r",
        lake_root="/l",
        engine="spark",
        started_at=now,
        finished_at=now,
        files=(),
        checks=(failing,),
        tables={},
    )
    strict = parse_arguments([SCRIPT, "--lake", "x"])
    lenient = parse_arguments([SCRIPT, "--lake", "x", "--fail_on_error_checks", "false"])
    assert strict.exit_code(result) == 1
    assert lenient.exit_code(result) == 0
    assert lenient.exit_code(replace(result, failed_step="ingest")) == 1
    with pytest.raises(ConfigurationError, match="fail_on_error_checks"):
        parse_arguments([SCRIPT, "--lake", "x", "--fail_on_error_checks", "maybe"])
