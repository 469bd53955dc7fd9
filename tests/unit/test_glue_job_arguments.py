"""The Glue job's argument parsing (no Spark: arguments are refused before a session starts)."""

from __future__ import annotations

import pytest

from ecommerce_lakehouse.domain.errors import ConfigurationError
from ecommerce_lakehouse.domain.types import SchemaEvolution, Severity
from ecommerce_lakehouse_glue.job import main, parse_arguments, resolve_options

# What Glue passes besides the job's own arguments.
GLUE_NOISE = [
    "--JOB_ID", "j_1", "--JOB_RUN_ID", "jr_1", "--TempDir", "s3://tmp/x",
    "--job-bookmark-option", "job-bookmark-disable", "--enable-metrics", "true",
]  # fmt: skip


def test_glue_style_arguments_are_parsed_and_unknown_ones_ignored() -> None:
    args = parse_arguments(
        [
            *GLUE_NOISE,
            "--JOB_NAME",
            "lakehouse-ingest",
            "--lake",
            "s3://bucket/lake",
            "--run-id",
            "exec-42",
            "--schema-evolution=add_new_columns",
            "--fk-severity",
            "error",
            "--steps",
            "discover,ingest",
            "--lock-timeout-seconds",
            "30",
        ]
    )
    assert args.job_name == "lakehouse-ingest"
    assert args.lake == "s3://bucket/lake"
    assert args.run_id == "exec-42" == args.options.run_id
    assert args.engine == "spark"
    assert args.options.evolution is SchemaEvolution.ADD_NEW_COLUMNS
    assert args.options.policy.foreign_key_severity is Severity.ERROR
    assert args.options.steps == ("discover", "ingest")
    assert args.options.lock_timeout_seconds == 30.0
    assert args.result_key == "_runs/exec-42.json"
    assert args.platform_options == {}


def test_platform_settings_come_from_the_job_arguments() -> None:
    # A deployment sets these as the job's default arguments (Glue sets no environment).
    args = parse_arguments(
        [
            *GLUE_NOISE,
            "--lake", "s3://bucket/lake",
            "--glue-database", "shop_lake",
            "--region", "eu-west-1",
            "--query", "athena",
            "--athena-workgroup", "lakehouse",
            "--athena-output", " ",
        ]
    )  # fmt: skip
    assert args.platform_options == {
        "glue_database": "shop_lake",
        "region": "eu-west-1",
        "query": "athena",
        "athena_workgroup": "lakehouse",
    }


def test_defaults_generate_a_run_id_and_run_every_step() -> None:
    args = parse_arguments(["--lake", "/tmp/lake"])
    assert args.options.steps is None
    assert args.run_id and args.result_key == f"_runs/{args.run_id}.json"
    assert args.options.evolution is SchemaEvolution.RESCUE


def test_the_last_occurrence_wins_like_glue() -> None:
    assert resolve_options(["--lake", "a", "--lake", "b"], ["lake"]) == {"lake": "b"}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "missing job argument.*--lake"),
        (["--lake"], "--lake needs a value"),
        (["--lake", "x", "--schema-evolution", "merge"], "merge"),
        (["--lake", "x", "--steps", "ingest,upload"], "unknown pipeline step.*'upload'"),
        (["--lake", "x", "--lock-timeout-seconds", "soon"], "invalid --lock-timeout-seconds"),
    ],
)
def test_bad_arguments_are_one_line_errors(argv: list[str], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        parse_arguments(argv)


def test_main_reports_bad_arguments_on_one_line_with_exit_code_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--lake", "x", "--steps", "nope"]) == 2
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
    strict = parse_arguments(["--lake", "x"])
    lenient = parse_arguments(["--lake", "x", "--fail-on-error-checks", "false"])
    assert strict.exit_code(result) == 1
    assert lenient.exit_code(result) == 0
    assert lenient.exit_code(replace(result, failed_step="ingest")) == 1
    with pytest.raises(ConfigurationError, match="fail-on-error-checks"):
        parse_arguments(["--lake", "x", "--fail-on-error-checks", "maybe"])
