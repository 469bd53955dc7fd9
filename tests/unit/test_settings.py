"""One reader for every setting: precedence, parsing, one-line errors, and the docs table."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from ecommerce_lakehouse.domain.errors import ConfigurationError
from ecommerce_lakehouse.domain.types import SchemaEvolution, Severity
from ecommerce_lakehouse.settings import (
    LakeSettings,
    env_name,
    flag_name,
    info_of,
    job_argument,
    read_settings,
    setting,
    settings_fields,
)
from ecommerce_lakehouse_glue.job import ARGUMENTS, GlueJobSettings
from scripts.render_settings import BEGIN, END, render

ROOT = Path(__file__).resolve().parents[2]


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class _Example:
    name: str = setting("a required name")
    count: int = setting("a count", default=3)
    ratio: float | None = setting("a ratio", default=None, aws_env=("AWS_RATIO",))
    strict: bool = setting("strictness", default=False)
    password: str | None = setting("a secret", default=None, secret=True)


def test_a_given_value_wins_over_the_environment_which_wins_over_the_default() -> None:
    environ = {"LAKEHOUSE_NAME": "env", "LAKEHOUSE_COUNT": "7"}
    assert read_settings(_Example, {"name": "given"}, environ) == _Example(name="given", count=7)
    assert read_settings(_Example, {"name": " ", "count": None}, environ).name == "env"
    assert read_settings(_Example, {}, {"LAKEHOUSE_NAME": "n"}).count == 3


def test_aws_variables_come_after_the_setting_s_own() -> None:
    both = {"LAKEHOUSE_NAME": "n", "LAKEHOUSE_RATIO": "0.5", "AWS_RATIO": "0.25"}
    assert read_settings(_Example, {}, both).ratio == 0.5
    assert read_settings(_Example, {}, {"LAKEHOUSE_NAME": "n", "AWS_RATIO": "0.25"}).ratio == 0.25


@pytest.mark.parametrize(
    ("given", "environ", "message"),
    [
        ({}, {}, "missing setting name: set --name or LAKEHOUSE_NAME"),
        ({"name": "n", "count": "many"}, {}, "invalid --count 'many': expected a whole number"),
        ({"name": "n"}, {"LAKEHOUSE_COUNT": "-1"}, "invalid LAKEHOUSE_COUNT '-1': expected a"),
        ({"name": "n", "ratio": "nan"}, {}, "invalid --ratio 'nan'"),
        ({"name": "n", "strict": "yes"}, {}, "invalid --strict 'yes': expected true or false"),
        ({"name": "n", "colour": "red"}, {}, r"unknown setting\(s\) --colour \(settings: count"),
    ],
)
def test_bad_values_are_one_line_errors_in_the_caller_s_spelling(
    given: dict[str, str], environ: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message) as raised:
        read_settings(_Example, given, environ, spelling=flag_name)
    assert "\n" not in str(raised.value)


def test_a_secret_is_never_shown() -> None:
    @dataclasses.dataclass(frozen=True, kw_only=True)
    class Secretive:
        port: int = setting("a port", secret=True)

    with pytest.raises(ConfigurationError) as raised:
        read_settings(Secretive, {"port": "hunter2"}, {})
    assert "hunter2" not in str(raised.value)
    shown = repr(read_settings(_Example, {"name": "n", "password": "hunter2"}, {}))
    assert "hunter2" not in shown


def test_enums_and_services_read_case_insensitively() -> None:
    settings = read_settings(
        LakeSettings,
        {"schema_evolution": "Add_New_Columns"},
        {"LAKEHOUSE_FK_SEVERITY": "ERROR", "LAKEHOUSE_QUERY": "Athena"},
    )
    assert settings.schema_evolution is SchemaEvolution.ADD_NEW_COLUMNS
    assert settings.fk_severity is Severity.ERROR
    assert settings.query == "athena"
    with pytest.raises(ConfigurationError, match="invalid 'query' 'presto': expected one of"):
        read_settings(LakeSettings, {"query": "presto"}, {})


def test_each_setting_has_one_name_spelled_by_one_rule() -> None:
    assert (flag_name("glue_database"), job_argument("glue_database")) == (
        "--glue-database",
        "--glue_database",
    )
    assert env_name("glue_database") == "LAKEHOUSE_GLUE_DATABASE"
    # The Glue job reads exactly its settings that have a job argument.
    job = {f.name for f in settings_fields(GlueJobSettings) if info_of(f).job}
    assert set(ARGUMENTS) == job


def test_the_command_takes_every_flag_setting_under_its_one_spelling() -> None:
    # The real command, as a user runs it.
    done = subprocess.run(
        [str(Path(sys.executable).with_name("lakehouse")), "run", "--help"],
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": "/usr/bin:/bin", "COLUMNS": "200"},
    )
    assert done.returncode == 0, done.stderr
    for field in settings_fields(LakeSettings):
        if info_of(field).flag:
            assert f"{flag_name(field.name)} " in done.stdout
            assert env_name(field.name) in done.stdout


def test_the_settings_table_in_the_docs_is_the_declared_one() -> None:
    text = (ROOT / "docs" / "settings.md").read_text(encoding="utf-8")
    block = text.split(BEGIN, 1)[1].split(END, 1)[0]
    assert block.strip() == render().strip(), "run: .venv/bin/python scripts/render_settings.py"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("1", "invalid compact_min_files 1: expected 0 .never compact. or at least 2"),
        ("-2", "invalid --compact-min-files '-2': expected a number, 0 or more"),
        ("some", "invalid --compact-min-files 'some': expected a whole number"),
    ],
)
def test_the_compaction_policy_is_off_or_at_least_two_files(value: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        read_settings(LakeSettings, {"compact_min_files": value}, {}, spelling=flag_name)
    assert (
        read_settings(LakeSettings, {}, {"LAKEHOUSE_COMPACT_MIN_FILES": "0"}).compact_min_files == 0
    )
    assert read_settings(LakeSettings, {}, {}).compact_min_files == 4
