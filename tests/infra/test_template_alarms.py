"""The stack's alarms on the pipeline: failed, timed-out and aborted executions.

Each of Step Functions' three metrics of an execution that did not succeed
(``ExecutionsFailed``, ``ExecutionsTimedOut``, ``ExecutionsAborted``) has an alarm of its own
on the stack's state machine, which notifies the ``AlarmTopicArn`` topic when one is given,
and ``docs/runbook.md`` says for each what it means and what to do. cfn-lint runs on the
whole template in ``tests/infra/test_template.py``.
"""

from __future__ import annotations

import json
import re
from functools import cache
from typing import Any

import pytest

from tests.infra.cfn import ROOT, TEMPLATE, Stack, load

STACK = "shop"
SAMPLE = {
    "ArtefactBucket": "shop-artefacts",
    "ArtefactPrefix": "releases/0123456789abcdef0123456789abcdef01234567",
    "GlueAdditionalPythonModules": "s3://shop-artefacts/releases/x/wheels/a.whl",
}
TOPIC = "arn:aws:sns:eu-west-1:123456789012:lakehouse-alarms"
#: The metric each execution outcome is counted in, and the alarm name's suffix.
OUTCOMES = {
    "ExecutionsFailed": "pipeline-failed",
    "ExecutionsTimedOut": "pipeline-timed-out",
    "ExecutionsAborted": "pipeline-aborted",
}
RUNBOOK = ROOT / "docs" / "runbook.md"


@cache
def template() -> dict[str, Any]:
    return load(TEMPLATE)


def stack(**parameters: str) -> Stack:
    return Stack(template(), {**SAMPLE, **parameters}, STACK)


def pipeline_alarms(s: Stack) -> dict[str, dict[str, Any]]:
    """The stack's alarms on Step Functions metrics, by metric name."""
    found: dict[str, dict[str, Any]] = {}
    for logical_id, resource in s.resources.items():
        if resource["Type"] != "AWS::CloudWatch::Alarm":
            continue
        props = s.properties(logical_id)
        if props.get("Namespace") == "AWS/States":
            assert props["MetricName"] not in found, f"two alarms on {props['MetricName']}"
            found[props["MetricName"]] = props
    return found


def test_failed_timed_out_and_aborted_executions_each_have_an_alarm() -> None:
    s = stack()
    alarms = pipeline_alarms(s)
    assert set(alarms) == set(OUTCOMES)
    machine = s.arn_of("StateMachine")
    for metric, alarm in alarms.items():
        assert alarm["AlarmName"] == f"{STACK}-{OUTCOMES[metric]}"
        assert alarm["Dimensions"] == [{"Name": "StateMachineArn", "Value": machine}]
        # A single execution in five minutes raises it; no execution is no alarm.
        assert alarm["Statistic"] == "Sum"
        assert (alarm["Period"], alarm["EvaluationPeriods"]) == (300, 1)
        assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
        assert alarm["Threshold"] == 1
        assert alarm["TreatMissingData"] == "notBreaching"
        assert "docs/runbook.md" in alarm["AlarmDescription"]


def test_every_pipeline_alarm_notifies_the_alarm_topic() -> None:
    alarms = pipeline_alarms(stack(AlarmTopicArn=TOPIC))
    assert {m: a["AlarmActions"] for m, a in alarms.items()} == {m: [TOPIC] for m in OUTCOMES}
    # Without a topic, no action: CloudFormation refuses an empty ARN.
    assert all("AlarmActions" not in a for a in pipeline_alarms(stack()).values())


def test_the_failure_alarm_keeps_its_logical_id_and_name() -> None:
    # Renaming it would replace the alarm (and lose its history) on the next update.
    props = stack().properties("PipelineFailureAlarm")
    assert (props["MetricName"], props["AlarmName"]) == (
        "ExecutionsFailed",
        f"{STACK}-pipeline-failed",
    )


@pytest.mark.parametrize("crawler", ["false", "true"])
def test_an_execution_can_time_out_so_the_timeout_alarm_can_fire(crawler: str) -> None:
    definition = json.loads(
        stack(EnableCrawler=crawler).properties("StateMachine")["DefinitionString"]
    )
    assert definition["TimeoutSeconds"] > 0


# ---------------------------------------------------------------------------- the runbook


def runbook_section(title: str) -> str:
    text = RUNBOOK.read_text(encoding="utf-8")
    match = re.search(rf"^### {re.escape(title)}\n(.*?)(?=^#{{1,3}} )", text, re.S | re.M)
    assert match, f"docs/runbook.md has no section '### {title}'"
    return match.group(1)


def failure_errors() -> set[str]:
    """The errors of the Fail states of every variant of the embedded definition."""
    errors = set()
    for crawler in ("false", "true"):
        for severity in ("warn", "error"):
            s = stack(EnableCrawler=crawler, ForeignKeySeverity=severity)
            states = json.loads(s.properties("StateMachine")["DefinitionString"])["States"]
            errors |= {st["Error"] for st in states.values() if st["Type"] == "Fail"}
    return errors


def test_the_runbook_says_what_each_alarm_means_and_what_to_do() -> None:
    section = runbook_section("Alarms")
    for suffix in OUTCOMES.values():
        assert f"<stack>-{suffix}" in section
    # Where to look and how to run again.
    for needle in ("get-execution-history", "_runs/", "/aws-glue/jobs/", "start-execution"):
        assert needle in section, needle


def test_the_runbook_names_every_way_the_pipeline_fails() -> None:
    section = runbook_section("Alarms")
    errors = failure_errors()
    assert {"IngestFailed", "ArchiveFailed", "ValidationFailed"} <= errors
    assert [e for e in sorted(errors) if f"`{e}`" not in section] == []
