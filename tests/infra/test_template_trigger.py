"""The trigger's part of ``infra/template.yaml``: what makes every file go without a person.

The stack must deliver to the trigger the three kinds of event its code handles (an S3
upload, an execution's end, the sweep schedule), each invocation scoped to its source, one
invocation at a time, with the failure queue kept for genuine failures, and grant the
trigger exactly what a sweep and the start record need (docs/adr/0005-no-file-waits.md).
The rules' patterns are checked against the events AWS sends, built by the trigger's tests.
"""

from __future__ import annotations

import fnmatch
from datetime import UTC, datetime
from typing import Any

from ecommerce_lakehouse.domain.zones import RAW
from ecommerce_lakehouse_lambdas import trigger
from ecommerce_lakehouse_lambdas.settings import TriggerSettings
from tests.aws.test_lambda_trigger import scheduled_event, status_change_event
from tests.infra.cfn import ACCOUNT, REGION, TEMPLATE, Stack, load, statements

STACK = "shop"
SAMPLE = {
    "ArtefactBucket": "shop-artefacts",
    "ArtefactPrefix": "releases/0123456789abcdef0123456789abcdef01234567",
    "GlueAdditionalPythonModules": "s3://shop-artefacts/releases/x/wheels/a.whl",
}
END_STATUSES = ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")


def stack() -> Stack:
    return Stack(load(TEMPLATE), SAMPLE, STACK)


def of_type(s: Stack, kind: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in s.resources.items() if r["Type"] == kind}


def matches(pattern: Any, event: Any) -> bool:
    """EventBridge's matching for what the stack's patterns use: a list of values matches
    when the event's value is one of them; an object matches field by field."""
    if isinstance(pattern, dict):
        return isinstance(event, dict) and all(
            key in event and matches(value, event[key]) for key, value in pattern.items()
        )
    return event in pattern


def rule_arn(s: Stack, logical_id: str) -> str:
    return f"arn:aws:events:{REGION}:{ACCOUNT}:rule/{s.properties(logical_id)['Name']}"


def settings(s: Stack) -> TriggerSettings:
    return TriggerSettings.from_env(s.properties("TriggerFunction")["Environment"]["Variables"])


def described(s: Stack, status: str, machine: str | None = None) -> dict[str, Any]:
    """A DescribeExecution answer for an execution of the stack's state machine (or
    ``machine``)."""
    arn = machine or s.arn_of("StateMachine")
    name = trigger.execution_name([(s.name_of("LakeBucket"), "raw-data/products.csv", "e1")])
    return {
        "executionArn": f"{arn.replace(':stateMachine:', ':execution:')}:{name}",
        "stateMachineArn": arn,
        "name": name,
        "status": status,
        "startDate": datetime(2026, 11, 25, 19, 38, tzinfo=UTC),
        "stopDate": None if status == "RUNNING" else datetime(2026, 11, 25, 19, 45, tzinfo=UTC),
        "input": "{}",
    }


def test_the_trigger_runs_one_invocation_at_a_time_and_keeps_genuine_failures() -> None:
    s = stack()
    assert s.properties("TriggerFunction")["ReservedConcurrentExecutions"] == 1
    config = s.properties("TriggerInvokeConfig")
    # Throttled events wait in Lambda's queue up to their maximum age; failures are retried
    # twice, then kept in the queue, whose alarm stays.
    assert config["MaximumEventAgeInSeconds"] == 21600
    assert config["MaximumRetryAttempts"] == 2
    assert config["DestinationConfig"]["OnFailure"]["Destination"] == s.arn_of(
        "TriggerFailureQueue"
    )
    alarm = s.properties("TriggerFailureAlarm")
    assert alarm["Dimensions"] == [{"Name": "QueueName", "Value": s.name_of("TriggerFailureQueue")}]
    assert "never a run in progress" in alarm["AlarmDescription"]


def test_an_executions_end_invokes_the_trigger_and_nothing_else_does() -> None:
    s = stack()
    rule = s.properties("TriggerRunEndedRule")
    assert rule["State"] == "ENABLED"
    assert rule["Targets"] == [{"Id": "trigger", "Arn": s.arn_of("TriggerFunction")}]
    pattern = rule["EventPattern"]
    for status in END_STATUSES:
        event = status_change_event(described(s, status))
        assert matches(pattern, event), status
        # The trigger reads it as an execution status change of its own state machine.
        key = (event["source"], event["detail-type"])
        assert trigger.SWEEP_EVENTS[key] == trigger.EXECUTION_STATUS_CHANGE
        assert event["detail"]["stateMachineArn"] == settings(s).state_machine_arn
    assert not matches(pattern, status_change_event(described(s, "RUNNING")))
    other = s.arn_of("StateMachine") + "-other"
    assert not matches(pattern, status_change_event(described(s, "SUCCEEDED", other)))
    assert not matches(pattern, scheduled_event())


def test_a_schedule_sweeps_every_five_minutes() -> None:
    s = stack()
    rule = s.properties("TriggerSweepSchedule")
    assert rule["State"] == "ENABLED"
    assert rule["ScheduleExpression"] == "rate(5 minutes)"
    assert "EventPattern" not in rule
    assert rule["Targets"] == [{"Id": "trigger", "Arn": s.arn_of("TriggerFunction")}]
    event = scheduled_event(rule["Name"])
    assert trigger.SWEEP_EVENTS[(event["source"], event["detail-type"])] == trigger.SCHEDULE


def test_each_source_may_invoke_the_trigger_only_for_its_own_events() -> None:
    s = stack()
    permissions = {
        name: s.properties(name)
        for name in of_type(s, "AWS::Lambda::Permission")
        if s.properties(name)["FunctionName"] == s.arn_of("TriggerFunction")
    }
    assert {(p["Principal"], p["SourceArn"]) for p in permissions.values()} == {
        ("s3.amazonaws.com", s.arn_of("LakeBucket")),
        ("events.amazonaws.com", rule_arn(s, "TriggerRunEndedRule")),
        ("events.amazonaws.com", rule_arn(s, "TriggerSweepSchedule")),
    }
    for permission in permissions.values():
        assert permission["Action"] == "lambda:InvokeFunction"
        assert permission["SourceAccount"] == ACCOUNT
    # Every rule targeting the trigger has its permission: none is left out.
    targeting = [
        name
        for name, rule in of_type(s, "AWS::Events::Rule").items()
        if any(t["Arn"] == s.arn_of("TriggerFunction") for t in s.properties(name)["Targets"])
    ]
    assert sorted(targeting) == ["TriggerRunEndedRule", "TriggerSweepSchedule"]


def test_the_trigger_role_reaches_the_raw_zone_listing_the_start_record_and_the_runs() -> None:
    s = stack()
    bucket = s.arn_of("LakeBucket")
    found = [
        st
        for policy in s.properties("TriggerRole")["Policies"]
        for st in statements(policy["PolicyDocument"])
    ]
    by_action: dict[str, list[str]] = {}
    for statement in found:
        assert statement["Effect"] == "Allow" and "Condition" not in statement
        for action in statement["Action"]:
            by_action.setdefault(action, []).extend(statement["Resource"])
    # Objects: the start record only - never raw-data/ or the tables.
    record = f"{bucket}/{settings(s).location.object_key(trigger.START_RECORD_KEY)}"
    for action in ("s3:GetObject", "s3:PutObject"):
        (resource,) = by_action[action]
        assert fnmatch.fnmatchcase(record, resource) and resource == f"{bucket}/_trigger/*"
    assert not fnmatch.fnmatchcase(f"{bucket}/{RAW}/orders.csv", by_action["s3:GetObject"][0])
    assert by_action["s3:ListBucket"] == [bucket]
    # DescribeExecution: any execution of this state machine, and no other's.
    (executions,) = by_action["states:DescribeExecution"]
    assert fnmatch.fnmatchcase(settings(s).execution_arn("lakehouse-0123"), executions)
    other = settings(s).execution_arn("x").replace(":shop-pipeline:", ":shop-pipeline2:")
    assert not fnmatch.fnmatchcase(other, executions)
    assert "s3:DeleteObject" not in by_action


def test_the_deploy_role_may_manage_the_trigger_rules() -> None:
    s = stack()
    bootstrap = Stack(
        load(TEMPLATE.parent / "bootstrap.yaml"),
        {"GitHubOrg": "shop-org", "GitHubRepo": "lakehouse", "LakehouseStackName": STACK},
        "lakehouse-bootstrap",
    )
    granted = [
        st
        for name, resource in bootstrap.resources.items()
        if resource["Type"] == "AWS::IAM::ManagedPolicy"
        for st in statements(bootstrap.properties(name)["PolicyDocument"])
        if st["Effect"] == "Allow"
    ]
    for logical_id in ("TriggerRunEndedRule", "TriggerSweepSchedule"):
        arn = rule_arn(s, logical_id)
        for action in ("events:PutRule", "events:PutTargets", "events:DeleteRule"):
            assert any(
                action in st["Action"] and any(fnmatch.fnmatchcase(arn, r) for r in st["Resource"])
                for st in granted
            ), (logical_id, action)
