"""Step Functions on the moto server: executing state machines and reading their history.

Moto executes definitions only once ``/moto-api/config`` says so; the setting is global to
the server (one per test process), so every test that needs it calls
:func:`enable_execution` first and creates its own state machines afterwards. The same call
selects moto's Lambda backend: the Docker-free one answers ``invoke`` with the request's
payload (or a queued response) without running any code.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tests.aws_support import ACCOUNT_ID, MotoServer

ROLE_ARN = f"arn:aws:iam::{ACCOUNT_ID}:role/lakehouse-states"

#: A state machine whose executions stay RUNNING until stopped.
HOLD: dict[str, Any] = {
    "StartAt": "Hold",
    "States": {"Hold": {"Type": "Wait", "Seconds": 3600, "End": True}},
}
#: A state machine whose executions succeed at once.
DONE: dict[str, Any] = {"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}


def enable_execution(server: MotoServer, *, docker_free_lambda: bool = True) -> None:
    """Let moto execute state machines.

    Args:
        server: the emulator.
        docker_free_lambda: use moto's Docker-free Lambda backend, whose ``invoke`` answers
            with the request's payload for any function name, existing or not; False
            selects the default backend, which refuses functions that do not exist
            (``ResourceNotFoundException``) and cannot run the others here (no Docker).
    """
    config = {
        "stepfunctions": {"execute_state_machine": True},
        "lambda": {"use_docker": not docker_free_lambda},
    }
    status = server.post("/moto-api/config", json.dumps(config).encode())
    assert status == 201, status


def create_state_machine(server: MotoServer, definition: dict[str, Any]) -> str:
    """Create a state machine with a fresh name; returns its ARN."""
    response = server.client("stepfunctions").create_state_machine(
        name=f"lakehouse-{uuid.uuid4().hex[:12]}",
        definition=json.dumps(definition),
        roleArn=ROLE_ARN,
    )
    return str(response["stateMachineArn"])


def executions(server: MotoServer, state_machine_arn: str) -> list[dict[str, Any]]:
    """Every execution of a state machine."""
    pages = (
        server.client("stepfunctions")
        .get_paginator("list_executions")
        .paginate(stateMachineArn=state_machine_arn)
    )
    return [item for page in pages for item in page["executions"]]


def stop_running(server: MotoServer, state_machine_arn: str) -> None:
    """Stop every running execution of a state machine (ends moto's worker threads)."""
    client = server.client("stepfunctions")
    for item in executions(server, state_machine_arn):
        if item["status"] == "RUNNING":
            client.stop_execution(executionArn=item["executionArn"])


def wait_for_end(server: MotoServer, execution_arn: str, timeout: float = 60) -> dict[str, Any]:
    """``DescribeExecution`` once the execution is no longer RUNNING."""
    client = server.client("stepfunctions")
    deadline = time.monotonic() + timeout
    while True:
        described: dict[str, Any] = client.describe_execution(executionArn=execution_arn)
        if described["status"] != "RUNNING":
            return described
        assert time.monotonic() < deadline, f"{execution_arn} still running after {timeout} s"
        time.sleep(0.2)


def history(server: MotoServer, execution_arn: str) -> list[dict[str, Any]]:
    """The execution's events, oldest first."""
    pages = (
        server.client("stepfunctions")
        .get_paginator("get_execution_history")
        .paginate(executionArn=execution_arn)
    )
    return [event for page in pages for event in page["events"]]


def entered(events: list[dict[str, Any]]) -> list[str]:
    """The names of the states the execution entered, in order."""
    return [
        event["stateEnteredEventDetails"]["name"]
        for event in events
        if "stateEnteredEventDetails" in event
    ]


def exited_output(events: list[dict[str, Any]], state: str) -> list[dict[str, Any]]:
    """The outputs of every exit from ``state``, in order."""
    return [
        json.loads(event["stateExitedEventDetails"]["output"])
        for event in events
        if event.get("stateExitedEventDetails", {}).get("name") == state
    ]


@contextmanager
def transitions(server: MotoServer, model: str, transition: dict[str, Any]) -> Iterator[None]:
    """Set how moto advances ``model`` (e.g. ``glue::job_run``) for the duration."""
    body = {"model_name": model, "transition": transition}
    server.post("/moto-api/state-manager/set-transition", json.dumps(body).encode())
    try:
        yield
    finally:
        body = {"model_name": model}
        server.post("/moto-api/state-manager/unset-transition", json.dumps(body).encode())
