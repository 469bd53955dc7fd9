"""No file waits for a person: three uploads, one run at a time, every file loaded.

Three raw CSVs land in a moto S3 lake 0 s, 1 s and mid-run apart. The trigger gets the
events AWS would deliver: the S3 notification of each upload (moto's own, published to an
SQS queue through the stack's filter, ``raw-data/`` and ``.csv``), a "Step Functions
Execution Status Change" when an execution ends (built in AWS's documented shape from
moto's DescribeExecution) and a "Scheduled Event". Moto cannot run Lambda code here (no
Docker), so the test invokes the trigger's handler in process, with its environment
pointed at moto, one invocation at a time - as the function's reserved concurrency of 1
makes Lambda do. An invocation that raised would be retried by Lambda and then sent to the
failure queue: the test records every invocation's outcome and asserts that none raised.

Each execution is a real moto Step Functions execution of a small state machine whose one
Task (``sqs:sendMessage.waitForTaskToken``) keeps it RUNNING while the test - standing in
for the Glue job and the archive step - runs the real pipeline for it
(``open_lake("s3://...", engine="polars")`` on the moto lake, ``run_id`` = the execution
name), then ends it with SendTaskSuccess.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import pytest

from ecommerce_lakehouse.application.lake import open_lake
from ecommerce_lakehouse.application.run import RunOptions, RunResult
from ecommerce_lakehouse_datagen import generate
from ecommerce_lakehouse_lambdas import trigger
from tests.aws.sfn_support import create_state_machine, enable_execution, stop_running
from tests.aws.test_lambda_trigger import scheduled_event, status_change_event
from tests.aws_support import WEEK_END, MotoServer

pytestmark = pytest.mark.aws

PREFIX = "lake"


@dataclass
class Invocations:
    """Every trigger invocation: what it returned, or what it raised (the failure queue)."""

    results: list[dict[str, Any]] = field(default_factory=list)
    failures: list[tuple[dict[str, Any], BaseException]] = field(default_factory=list)

    def invoke(self, event: dict[str, Any]) -> dict[str, Any] | None:
        try:
            result = trigger.handler(event, None)
        except Exception as error:  # Lambda: retried, then sent to the failure queue
            self.failures.append((event, error))
            return None
        self.results.append(result)
        return result


class Lake:
    """The moto lake: a bucket whose raw CSV uploads notify an SQS queue, as the stack's
    bucket notifies the trigger."""

    def __init__(self, server: MotoServer) -> None:
        self.bucket = server.new_bucket()
        self.root = f"s3://{self.bucket}/{PREFIX}"
        self.s3 = server.client("s3")
        self.sqs = server.client("sqs")
        self.queue_url = self.sqs.create_queue(QueueName=f"s3-{uuid.uuid4().hex[:12]}")["QueueUrl"]
        queue_arn = self.sqs.get_queue_attributes(
            QueueUrl=self.queue_url, AttributeNames=["QueueArn"]
        )["Attributes"]["QueueArn"]
        rules = [
            {"Name": "prefix", "Value": f"{PREFIX}/raw-data/"},
            {"Name": "suffix", "Value": ".csv"},
        ]
        self.s3.put_bucket_notification_configuration(
            Bucket=self.bucket,
            NotificationConfiguration={
                "QueueConfigurations": [
                    {
                        "QueueArn": queue_arn,
                        "Events": ["s3:ObjectCreated:*"],
                        "Filter": {"Key": {"FilterRules": rules}},
                    }
                ]
            },
        )
        # S3 confirms a new notification configuration with a test event.
        assert "Records" not in self.notification()

    def upload(self, key: str, data: bytes) -> dict[str, Any]:
        """Upload a raw CSV; returns the notification S3 published for it."""
        self.s3.put_object(Bucket=self.bucket, Key=f"{PREFIX}/{key}", Body=data)
        event = self.notification()
        assert [unquote_plus(r["s3"]["object"]["key"]) for r in event["Records"]] == [
            f"{PREFIX}/{key}"
        ]
        return event

    def notification(self) -> dict[str, Any]:
        messages = self.sqs.receive_message(
            QueueUrl=self.queue_url, MaxNumberOfMessages=1, WaitTimeSeconds=5
        ).get("Messages", [])
        assert messages, "S3 published no notification"
        self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=messages[0]["ReceiptHandle"])
        event: dict[str, Any] = json.loads(messages[0]["Body"])
        return event

    def raw_keys(self) -> list[str]:
        listed = self.s3.list_objects_v2(Bucket=self.bucket, Prefix=f"{PREFIX}/raw-data/")
        return sorted(o["Key"] for o in listed.get("Contents", []))


class Pipeline:
    """The state machine in moto and the test's stand-in for its Glue job and archive step:
    each execution's one Task sends the run to a queue and waits for the test's answer."""

    def __init__(self, server: MotoServer, lake: Lake) -> None:
        self.server = server
        self.lake = lake
        self.sfn = server.client("stepfunctions")
        self.sqs = server.client("sqs")
        self.queue_url = self.sqs.create_queue(QueueName=f"runs-{uuid.uuid4().hex[:12]}")[
            "QueueUrl"
        ]
        self.options = server.options()
        self.arn = create_state_machine(
            server,
            {
                "StartAt": "Run",
                "States": {
                    "Run": {
                        "Type": "Task",
                        "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
                        "Parameters": {
                            "QueueUrl": self.queue_url,
                            "MessageBody": {
                                "run_id.$": "$$.Execution.Name",
                                "lake_root.$": "$.lake_root",
                                "token.$": "$$.Task.Token",
                            },
                        },
                        "End": True,
                    }
                },
            },
        )

    def running(self) -> list[str]:
        pages = self.sfn.get_paginator("list_executions").paginate(stateMachineArn=self.arn)
        return [e["name"] for p in pages for e in p["executions"] if e["status"] == "RUNNING"]

    def run_next(self, during_ingest: Any = None) -> tuple[str, RunResult]:
        """Take the waiting execution's task, run the pipeline for it and end it."""
        messages = self.sqs.receive_message(
            QueueUrl=self.queue_url, MaxNumberOfMessages=1, WaitTimeSeconds=10
        ).get("Messages", [])
        assert messages, "no execution is waiting for its run"
        self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=messages[0]["ReceiptHandle"])
        task = json.loads(messages[0]["Body"])
        assert self.running() == [task["run_id"]]
        lake = open_lake(task["lake_root"], engine="polars", options=self.options)
        done: set[str] = set()

        def progress(step: str, message: str) -> None:
            if step == "ingest" and during_ingest is not None and step not in done:
                done.add(step)  # after discover: a file landing now is not this run's
                during_ingest()

        result = lake.run(RunOptions(run_id=task["run_id"]), progress=progress)
        assert result.ok, result.error
        self.sfn.send_task_success(taskToken=task["token"], output=json.dumps({"ok": True}))
        return task["run_id"], result

    def ended(self, name: str) -> dict[str, Any]:
        """The status change event, once the execution is no longer RUNNING."""
        arn = f"{self.arn.replace(':stateMachine:', ':execution:')}:{name}"
        deadline = time.monotonic() + 30
        while True:
            described = self.sfn.describe_execution(executionArn=arn)
            if described["status"] != "RUNNING":
                return status_change_event(described)
            assert time.monotonic() < deadline, f"{name} still running"
            time.sleep(0.1)

    def intervals(self) -> list[tuple[str, datetime, datetime]]:
        pages = self.sfn.get_paginator("list_executions").paginate(stateMachineArn=self.arn)
        found = []
        for item in (e for p in pages for e in p["executions"]):
            described = self.sfn.describe_execution(executionArn=item["executionArn"])
            assert described["status"] == "SUCCEEDED", described
            found.append((item["name"], described["startDate"], described["stopDate"]))
        return sorted(found, key=lambda f: f[1])


@pytest.fixture
def raw_files(tmp_path: Path) -> dict[str, bytes]:
    generate(tmp_path, scale=0.0005, seed=11, end=WEEK_END)
    return {
        p.relative_to(tmp_path).as_posix(): p.read_bytes()
        for p in sorted((tmp_path / "raw-data").rglob("*.csv"))
    }


@pytest.fixture
def pipeline(moto: MotoServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Pipeline]:
    enable_execution(moto)
    built = Pipeline(moto, Lake(moto))
    for name, value in moto.lambda_environment(
        LAKEHOUSE_LAKE=built.lake.root, LAKEHOUSE_STATE_MACHINE_ARN=built.arn
    ).items():
        monkeypatch.setenv(name, value)
    yield built
    stop_running(moto, built.arn)


def test_files_landing_during_a_run_are_loaded_by_the_next_without_a_person(
    pipeline: Pipeline, raw_files: dict[str, bytes]
) -> None:
    lake, calls = pipeline.lake, Invocations()
    products, orders, items = (
        next(k for k in raw_files if f"/{entity}/" in k)
        for entity in ("products", "orders", "order_items")
    )
    statuses: list[str | None] = []

    def deliver(event: dict[str, Any]) -> dict[str, Any] | None:
        result = calls.invoke(event)
        statuses.append(None if result is None else _status(result))
        assert len(pipeline.running()) <= 1  # never two executions at once
        return result

    # 0 s: the first upload starts a run. 1 s: the second finds it running and is deferred.
    first = deliver(lake.upload(products, raw_files[products]))
    time.sleep(1)
    deliver(lake.upload(orders, raw_files[orders]))
    # Mid-run, after the run's discovery: the third is deferred as well.
    x1, r1 = pipeline.run_next(lambda: deliver(lake.upload(items, raw_files[items])))
    assert first is not None and first["records"][0]["execution_name"] == x1
    assert lake.raw_keys() == [f"{PREFIX}/{items}"]  # the only file the first run left

    # The run's end makes the trigger sweep: the file left starts the next run. A schedule
    # sweep meanwhile finds that run running and starts nothing.
    second = deliver(pipeline.ended(x1))
    deliver(scheduled_event())
    x2, r2 = pipeline.run_next()
    assert second is not None and second["execution_name"] == x2 != x1
    deliver(pipeline.ended(x2))
    deliver(scheduled_event())

    assert calls.failures == []  # nothing would have reached the failure queue
    assert statuses == [
        "started",  # products, 0 s
        "deferred",  # orders, 1 s
        "deferred",  # order_items, mid-run
        "started",  # the sweep when the first run ended
        "duplicate",  # the schedule while the second runs
        "empty",  # the sweep when the second ended
        "empty",  # the schedule after it
    ]
    # Every file was loaded, by the run its arrival allowed, and left raw-data/.
    assert {(f.file.key, f.status.value) for f in r1.files} == {
        (products, "loaded"),
        (orders, "loaded"),
    }
    assert {(f.file.key, f.status.value) for f in r2.files} == {(items, "loaded")}
    assert lake.raw_keys() == []
    reader = open_lake(lake.root, engine="polars", options=pipeline.options)
    log = reader.sql("SELECT source_path, run_id, status FROM ingest_log").to_pylist()
    assert sorted((r["source_path"], r["run_id"], r["status"]) for r in log) == sorted(
        [(products, x1, "loaded"), (orders, x1, "loaded"), (items, x2, "loaded")]
    )
    counts = reader.sql(
        "SELECT (SELECT COUNT(*) FROM products) AS products, "
        "(SELECT COUNT(*) FROM orders) AS orders, "
        "(SELECT COUNT(*) FROM order_items) AS order_items"
    ).to_pylist()[0]
    assert all(n > 0 for n in counts.values()), counts
    # One execution at a time: the runs' [start, stop] intervals never overlap.
    (n1, start1, stop1), (n2, start2, stop2) = pipeline.intervals()
    assert (n1, n2) == (x1, x2)
    assert start1 <= stop1 <= start2 <= stop2


def _status(result: dict[str, Any]) -> str:
    if result["event"] == trigger.S3_NOTIFICATION:
        (record,) = result["records"]
        return str(record["status"])
    return str(result["status"])
