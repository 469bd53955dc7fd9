"""The generated Step Functions definition: validated, snapshot-tested and checked structurally.

Structure: every Task has a timeout, a Retry and a Catch; every Catch ends in a Fail state;
every path ends in Succeed or Fail; every loop is bounded by a counter; every pipeline step
has its place. The ASL itself is checked by the `asl-validator` npm package (installed by
`make install`).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ecommerce_lakehouse.application.pipeline import PIPELINE
from ecommerce_lakehouse.domain.errors import ConfigurationError
from ecommerce_lakehouse.domain.types import Severity
from ecommerce_lakehouse.domain.validation import ValidationPolicy, gate_sql
from ecommerce_lakehouse.settings import LakeSettings, env_name, info_of, settings_fields
from ecommerce_lakehouse_glue.job import GlueJobSettings
from ecommerce_lakehouse_sfn import Integration, StateMachineSettings, build_definition
from ecommerce_lakehouse_sfn.definition import definition_json, job_steps, placement
from ecommerce_lakehouse_sfn.settings import VARIABLES

ROOT = Path(__file__).resolve().parents[2]
SNAPSHOT = ROOT / "tests" / "snapshots" / "state_machine.json"
VALIDATOR = Path(
    os.environ.get(
        "LAKEHOUSE_ASL_VALIDATOR",
        ROOT / "build" / "node" / "node_modules" / ".bin" / "asl-validator",
    )
)

VARIANTS = {
    "optimized": (StateMachineSettings(), Integration.OPTIMIZED),
    "optimized-crawler": (StateMachineSettings(crawler="lake-crawler"), Integration.OPTIMIZED),
    "polling": (StateMachineSettings(), Integration.POLLING),
    "polling-crawler": (StateMachineSettings(crawler="lake-crawler"), Integration.POLLING),
}


@pytest.fixture(params=sorted(VARIANTS))
def definition(request: pytest.FixtureRequest) -> dict[str, Any]:
    settings, integration = VARIANTS[request.param]
    return build_definition(settings, integration)


def successors(state: dict[str, Any]) -> Iterator[str]:
    if "Next" in state:
        yield state["Next"]
    if "Default" in state:
        yield state["Default"]
    for choice in state.get("Choices", []):
        yield choice["Next"]
    for catch in state.get("Catch", []):
        yield catch["Next"]


def test_the_production_definition_matches_its_snapshot() -> None:
    text = definition_json()
    if os.environ.get("UPDATE_SNAPSHOTS"):
        SNAPSHOT.parent.mkdir(exist_ok=True)
        SNAPSHOT.write_text(text, encoding="utf-8")
    assert text == SNAPSHOT.read_text(encoding="utf-8"), (
        "the definition changed: review it, then rerun with UPDATE_SNAPSHOTS=1"
    )


def test_every_variant_passes_the_asl_validator(tmp_path: Path) -> None:
    assert VALIDATOR.exists(), f"{VALIDATOR} missing: run `make install`"
    paths = []
    for name, (settings, integration) in VARIANTS.items():
        path = tmp_path / f"{name}.json"
        path.write_text(definition_json(settings, integration), encoding="utf-8")
        paths += ["--json-path", str(path)]
    done = subprocess.run(
        [str(VALIDATOR), *paths], capture_output=True, text=True, check=False, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("is valid") == len(VARIANTS)


def test_the_validator_catches_a_broken_definition(tmp_path: Path) -> None:
    broken = build_definition()
    del broken["States"]["ArchiveFailed"]
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(broken), encoding="utf-8")
    done = subprocess.run(
        [str(VALIDATOR), "--json-path", str(path)], capture_output=True, text=True, check=False
    )
    assert done.returncode != 0
    assert "ArchiveFailed" in done.stdout + done.stderr


def test_every_task_has_a_timeout_retry_and_a_catch_into_a_fail_state(
    definition: dict[str, Any],
) -> None:
    states = definition["States"]
    tasks = {name: s for name, s in states.items() if s["Type"] == "Task"}
    assert tasks
    for name, task in tasks.items():
        assert task.get("TimeoutSeconds", 0) > 0, name
        assert task["Retry"] and all(r["BackoffRate"] > 1 for r in task["Retry"]), name
        assert all("States.ALL" not in r["ErrorEquals"] for r in task["Retry"]), name
        assert task["Catch"], name
        for catch in task["Catch"]:
            assert states[catch["Next"]]["Type"] == "Fail", (name, catch)


def test_every_state_is_reachable_and_every_path_ends(definition: dict[str, Any]) -> None:
    states = definition["States"]
    seen: set[str] = set()
    todo = [definition["StartAt"]]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        state = states[name]
        follow = list(successors(state))
        if state["Type"] in ("Succeed", "Fail"):
            assert not follow
        else:
            assert follow, f"{name} leads nowhere"
        todo.extend(follow)
    assert seen == set(states)
    assert [n for n, s in states.items() if s["Type"] == "Succeed"] == ["Report"]


def test_no_loop_is_unbounded(definition: dict[str, Any]) -> None:
    states = definition["States"]

    def cycles() -> Iterator[list[str]]:
        # Every elementary cycle through a Wait state (loops here always wait).
        for start in (n for n, s in states.items() if s["Type"] == "Wait"):
            stack: list[tuple[str, list[str]]] = [(start, [start])]
            while stack:
                name, path = stack.pop()
                for nxt in successors(states[name]):
                    if nxt == start:
                        yield path
                    elif nxt not in path:
                        stack.append((nxt, [*path, nxt]))

    found = list(cycles())
    loops_expected = sum(
        1 for s in states.values() if s["Type"] == "Wait"
    )  # one polling loop per Wait
    assert len({frozenset(c) for c in found}) == loops_expected
    for cycle in found:
        counters = [
            states[n]["ResultPath"]
            for n in cycle
            if states[n]["Type"] == "Pass"
            and "States.MathAdd" in json.dumps(states[n].get("Parameters", {}))
        ]
        assert len(counters) == 1, cycle
        bounds = [
            choice
            for n in cycle
            if states[n]["Type"] == "Choice"
            for choice in states[n]["Choices"]
            if choice.get("Variable") == f"{counters[0]}.count"
            and "NumericGreaterThanEquals" in choice
        ]
        assert bounds and all(states[b["Next"]]["Type"] == "Fail" for b in bounds), cycle


def test_the_pipeline_definition_drives_the_states() -> None:
    definition = build_definition(StateMachineSettings(crawler="c"))
    states = definition["States"]
    assert definition["StartAt"] == "Ingest"
    job = states["Ingest"]
    assert job["Resource"] == "arn:aws:states:::glue:startJobRun.sync"
    assert job["Parameters"]["Arguments"] == {
        "--lake": "${LakeRoot}",
        "--run_id.$": "$$.Execution.Name",
        "--result_key.$": "States.Format('_runs/{}.json', $$.Execution.Name)",
        "--steps": "discover,ingest",
    }
    # ingest -> archive -> catalogue (crawler) -> validate -> report
    assert job["Next"] == "Archive"
    assert states["Archive"]["Next"] == "StartCrawler"
    assert states["Validate"]["Resource"] == "arn:aws:states:::athena:startQueryExecution.sync"
    assert states["GateOnChecks"]["Choices"][0]["Next"] == "Report"
    for step in PIPELINE:
        assert step.name in definition["Comment"]


def test_without_a_crawler_archive_leads_to_validation() -> None:
    states = build_definition()["States"]
    assert states["Archive"]["Next"] == "Validate"
    assert not any("Crawler" in name for name in states)
    # The job registers the tables itself then.
    assert states["Ingest"]["Parameters"]["Arguments"]["--steps"] == "discover,ingest,catalogue"


@pytest.mark.parametrize("crawler", [None, "lakehouse-crawler"])
@pytest.mark.parametrize("integration", list(Integration))
def test_catalogue_and_validate_each_run_in_exactly_one_place(
    crawler: str | None, integration: Integration
) -> None:
    settings = StateMachineSettings(crawler=crawler)
    states = build_definition(settings, integration)["States"]
    steps = states["Ingest"]["Parameters"]["Arguments"]["--steps"].split(",")
    assert tuple(steps) == job_steps(settings)
    in_job = {"catalogue": "catalogue" in steps, "validate": "validate" in steps}
    elsewhere = {"catalogue": ("crawler", "StartCrawler"), "validate": ("athena", "Validate")}
    places = {
        step: [p for p, here in (("job", in_job[step]), (place, state in states)) if here]
        for step, (place, state) in elsewhere.items()
    }
    assert places == {"catalogue": ["crawler" if crawler else "job"], "validate": ["athena"]}
    assert placement(settings)["catalogue"] == ("crawler" if crawler else "glue_job")


def test_the_gate_runs_the_shared_validation_sql() -> None:
    strict = StateMachineSettings(fk_severity=Severity.ERROR)
    validate = build_definition(strict)["States"]["Validate"]
    assert validate["Parameters"]["QueryString"] == gate_sql(
        ValidationPolicy(foreign_key_severity=Severity.ERROR)
    )
    assert validate["Parameters"]["QueryString"] != gate_sql()


def test_names_come_from_the_environment_or_stay_placeholders() -> None:
    settings = StateMachineSettings.from_env(
        {
            "LAKEHOUSE_LAKE": "s3://shop-lake/prod",
            "LAKEHOUSE_GLUE_JOB": "shop-ingest",
            "LAKEHOUSE_CRAWLER": "shop-crawler",
        }
    )
    definition = build_definition(settings)
    arguments = definition["States"]["Ingest"]["Parameters"]["Arguments"]
    assert arguments["--lake"] == "s3://shop-lake/prod"
    assert definition["States"]["Ingest"]["Parameters"]["JobName"] == "shop-ingest"
    assert definition["States"]["StartCrawler"]["Parameters"]["Name"] == "shop-crawler"
    archive = definition["States"]["Archive"]["Parameters"]
    assert archive["FunctionName"] == "${ArchiveFunctionArn}"
    assert "${AthenaWorkGroup}" in json.dumps(definition["States"]["Validate"])


def test_unset_names_stay_placeholders_and_the_defaults_are_the_settings_defaults() -> None:
    assert StateMachineSettings.from_env({}) == StateMachineSettings()
    settings = StateMachineSettings()
    for name, (variable, where) in VARIABLES.items():
        assert variable == env_name(name)
        assert getattr(settings, name) == "${" + where + "}"
    assert StateMachineSettings.from_env({"LAKEHOUSE_GLUE_JOB": "  "}).glue_job == "${GlueJobName}"


def test_the_limits_and_the_severity_come_from_the_environment() -> None:
    settings = StateMachineSettings.from_env(
        {
            "LAKEHOUSE_GLUE_TIMEOUT_SECONDS": "7200",
            "LAKEHOUSE_LAMBDA_TIMEOUT_SECONDS": "600",
            "LAKEHOUSE_VALIDATION_TIMEOUT_SECONDS": "300",
            "LAKEHOUSE_GLUE_POLL_SECONDS": "10",
            "LAKEHOUSE_ATHENA_POLL_SECONDS": "5",
            "LAKEHOUSE_CRAWLER_POLL_SECONDS": "20",
            "LAKEHOUSE_CRAWLER_MAX_POLLS": "9",
            "LAKEHOUSE_FK_SEVERITY": "ERROR",
        }
    )
    assert settings == StateMachineSettings(
        glue_timeout_seconds=7200,
        lambda_timeout_seconds=600,
        validation_timeout_seconds=300,
        glue_poll_seconds=10,
        athena_poll_seconds=5,
        crawler_poll_seconds=20,
        crawler_max_polls=9,
        fk_severity=Severity.ERROR,
    )
    assert build_definition(settings)["TimeoutSeconds"] == 7200 + 600 + 300 + 20 * 9
    # The library's Athena query timeout is another setting.
    assert StateMachineSettings.from_env({"LAKEHOUSE_ATHENA_TIMEOUT_SECONDS": "5"}) == (
        StateMachineSettings()
    )


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"LAKEHOUSE_LAKE": "/data/lake"}, "LAKEHOUSE_LAKE must be an s3:// lake root"),
        ({"LAKEHOUSE_FK_SEVERITY": "loud"}, "invalid LAKEHOUSE_FK_SEVERITY 'loud'"),
        ({"LAKEHOUSE_GLUE_POLL_SECONDS": "0.5"}, "invalid LAKEHOUSE_GLUE_POLL_SECONDS '0.5'"),
        (
            {"LAKEHOUSE_CRAWLER_MAX_POLLS": "0"},
            "crawler_max_polls (LAKEHOUSE_CRAWLER_MAX_POLLS) must be at least 1",
        ),
    ],
)
def test_malformed_state_machine_settings_are_one_line_errors(
    environ: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigurationError) as raised:
        StateMachineSettings.from_env(environ)
    assert message in str(raised.value) and "\n" not in str(raised.value)


def test_the_state_machine_settings_mean_what_the_same_settings_of_the_lake_mean() -> None:
    # The settings table has one row per name: a shared name has one meaning.
    known = {
        f.name: info_of(f).meaning
        for settings in (GlueJobSettings, LakeSettings)
        for f in settings_fields(settings)
    }
    for field in settings_fields(StateMachineSettings):
        info = info_of(field)
        assert not info.flag and not info.job and info.env, field.name
        assert info.meaning == known.get(field.name, info.meaning), field.name
