"""The S3 trigger Lambda, invoked directly with real S3 event notifications.

Moto cannot run a Lambda's code here (no Docker), so the handler is called in-process with
the events S3 sends. Most events are the emulator's own: the lake's bucket notifies an SQS
queue in moto, and the test receives what S3 published, URL-encoded keys and all. One is
AWS's documented notification (with ``sequencer``, ``userIdentity`` and the other fields
moto leaves out). The state machines are moto's, executing (their executions run, succeed,
or wait until stopped).
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote_plus

import pytest
from botocore.exceptions import ClientError

from ecommerce_lakehouse_lambdas import trigger
from ecommerce_lakehouse_lambdas.errors import RunInProgress
from ecommerce_lakehouse_lambdas.trigger import execution_name
from tests.aws.sfn_support import (
    DONE,
    HOLD,
    create_state_machine,
    enable_execution,
    executions,
    stop_running,
    wait_for_end,
)
from tests.aws_support import ACCESS_KEY_ID, ACCOUNT_ID, REGION, SECRET_ACCESS_KEY, MotoServer

pytestmark = pytest.mark.aws


class Lake:
    """A lake bucket whose S3 notifications land in an SQS queue of the emulator."""

    def __init__(self, server: MotoServer, prefix: str = "lake") -> None:
        self.server = server
        self.bucket = server.new_bucket()
        self.prefix = prefix
        self.s3 = server.client("s3")
        self.sqs = server.client("sqs")
        self.queue_url = self.sqs.create_queue(QueueName=f"events-{uuid.uuid4().hex[:12]}")[
            "QueueUrl"
        ]
        queue_arn = self.sqs.get_queue_attributes(
            QueueUrl=self.queue_url, AttributeNames=["QueueArn"]
        )["Attributes"]["QueueArn"]
        self.s3.put_bucket_notification_configuration(
            Bucket=self.bucket,
            NotificationConfiguration={
                "QueueConfigurations": [
                    {
                        "QueueArn": queue_arn,
                        "Events": ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"],
                    }
                ]
            },
        )
        # S3 confirms a new notification configuration with a test event.
        self.test_event = self.notification()
        assert self.test_event["Event"] == "s3:TestEvent", self.test_event

    @property
    def root(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    def key(self, relative: str) -> str:
        return f"{self.prefix}/{relative}" if self.prefix else relative

    def upload(self, relative: str, data: bytes = b"order_id\n1\n") -> dict[str, Any]:
        """Upload an object; returns the S3 notification it caused."""
        self.s3.put_object(Bucket=self.bucket, Key=self.key(relative), Body=data)
        return self.notification()

    def notification(self) -> dict[str, Any]:
        """The next S3 event notification S3 published to the queue."""
        messages = self.sqs.receive_message(
            QueueUrl=self.queue_url, MaxNumberOfMessages=1, WaitTimeSeconds=2
        ).get("Messages", [])
        assert messages, "S3 published no notification"
        self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=messages[0]["ReceiptHandle"])
        event: dict[str, Any] = json.loads(messages[0]["Body"])
        return event


def documented_notification(
    bucket: str, key: str, etag: str, size: int, event_name: str = "ObjectCreated:Put"
) -> dict[str, Any]:
    """An S3 notification in the shape AWS documents (event structure version 2.1)."""
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": REGION,
                "eventTime": "2026-11-25T19:38:00.000Z",
                "eventName": event_name,
                "userIdentity": {"principalId": "AWS:AIDAEXAMPLE"},
                "requestParameters": {"sourceIPAddress": "203.0.113.7"},
                "responseElements": {
                    "x-amz-request-id": "C3D13FE58DE4C810",
                    "x-amz-id-2": "FMyUVURIY8/IgAtTv8xRjskZQpcIZ9KG4V5Wp6S7S/JRWeUWerMUE5",
                },
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "configurationId": "raw-csv-arrived",
                    "bucket": {
                        "name": bucket,
                        "ownerIdentity": {"principalId": "A3NL1KOZZKExample"},
                        "arn": f"arn:aws:s3:::{bucket}",
                    },
                    "object": {
                        # S3 URL-encodes keys in notifications, a space as "+", "/" kept.
                        "key": quote_plus(key, safe="/"),
                        "size": size,
                        "eTag": etag,
                        "sequencer": "0055AED6DCD90281E5",
                    },
                },
            }
        ]
    }


@pytest.fixture
def lake(moto: MotoServer) -> Lake:
    enable_execution(moto)
    return Lake(moto)


@pytest.fixture
def configure(moto: MotoServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Point the trigger at a lake and a new state machine; stops its executions after."""
    created: list[str] = []

    def configure_(lake: Lake, definition: dict[str, Any]) -> str:
        arn = create_state_machine(moto, definition)
        created.append(arn)
        for name, value in {
            "LAKEHOUSE_LAKE_ROOT": lake.root,
            "LAKEHOUSE_STATE_MACHINE_ARN": arn,
            "AWS_ENDPOINT_URL": moto.endpoint,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
            "AWS_REGION": REGION,
        }.items():
            monkeypatch.setenv(name, value)
        return arn

    yield configure_
    for arn in created:
        stop_running(moto, arn)


def test_a_raw_csv_starts_one_execution_and_a_duplicate_delivery_starts_none(
    moto: MotoServer, lake: Lake, configure: Any
) -> None:
    machine = configure(lake, DONE)
    event = lake.upload("raw-data/orders/orders_2026_11_25.csv")
    record = event["Records"][0]

    first = trigger.handler(event, None)
    key = lake.key("raw-data/orders/orders_2026_11_25.csv")
    name = execution_name([(lake.bucket, key, record["s3"]["object"]["eTag"])])
    assert first["started"] == 1 and first["records"][0]["execution_name"] == name
    assert wait_for_end(moto, first["records"][0]["execution_arn"])["status"] == "SUCCEEDED"

    again = trigger.handler(event, None)  # S3 delivered the same notification twice

    assert again["started"] == 0 and again["duplicate"] == 1
    assert again["records"][0]["reason"] == "its execution already ran"
    assert again["records"][0]["execution_name"] == name
    assert [e["name"] for e in executions(moto, machine)] == [name]
    described = moto.client("stepfunctions").describe_execution(
        executionArn=first["records"][0]["execution_arn"]
    )
    assert json.loads(described["input"]) == {
        "lake_root": lake.root,
        "objects": [
            {
                "bucket": lake.bucket,
                "key": "lake/raw-data/orders/orders_2026_11_25.csv",
                "etag": record["s3"]["object"]["eTag"],
                "size": len(b"order_id\n1\n"),
            }
        ],
    }


def test_a_duplicate_delivery_while_its_execution_runs_starts_none(
    moto: MotoServer, lake: Lake, configure: Any
) -> None:
    machine = configure(lake, HOLD)
    event = lake.upload("raw-data/products.csv")

    first = trigger.handler(event, None)
    again = trigger.handler(event, None)

    assert first["started"] == 1
    assert again["duplicate"] == 1 and again["records"][0]["reason"] == "its execution is running"
    assert len(executions(moto, machine)) == 1


def test_a_new_version_of_the_same_key_is_a_new_run(
    moto: MotoServer, lake: Lake, configure: Any
) -> None:
    machine = configure(lake, DONE)
    first = trigger.handler(lake.upload("raw-data/orders.csv", b"order_id\n1\n"), None)
    wait_for_end(moto, first["records"][0]["execution_arn"])

    second = trigger.handler(lake.upload("raw-data/orders.csv", b"order_id\n2\n"), None)

    assert second["started"] == 1
    assert second["records"][0]["execution_name"] != first["records"][0]["execution_name"]
    assert len(executions(moto, machine)) == 2


def test_a_documented_notification_with_an_encoded_key_and_spaces(
    moto: MotoServer, lake: Lake, configure: Any
) -> None:
    machine = configure(lake, DONE)
    key = lake.key("raw-data/order_items/order items 2026-11-25 (part 1).csv")
    put = lake.s3.put_object(Bucket=lake.bucket, Key=key, Body=b"order_id\n1\n")
    lake.notification()  # the emulator's own copy of this event is not used here
    etag = put["ETag"].strip('"')
    event = documented_notification(lake.bucket, key, etag, 11)
    assert "order+items+2026-11-25+%28part+1%29.csv" in event["Records"][0]["s3"]["object"]["key"]

    summary = trigger.handler(event, None)

    assert summary["started"] == 1
    assert summary["records"][0]["key"] == key
    assert summary["records"][0]["execution_name"] == execution_name([(lake.bucket, key, etag)])
    started = executions(moto, machine)[0]
    described = moto.client("stepfunctions").describe_execution(
        executionArn=started["executionArn"]
    )
    assert json.loads(described["input"])["objects"][0]["key"] == key


def test_the_emulators_encoded_key_with_spaces_is_decoded(
    moto: MotoServer, lake: Lake, configure: Any
) -> None:
    configure(lake, DONE)
    event = lake.upload("raw-data/orders/orders from shop+1.csv")
    assert "+" in event["Records"][0]["s3"]["object"]["key"]  # the emulator encoded it

    summary = trigger.handler(event, None)

    assert summary["started"] == 1
    assert summary["records"][0]["key"] == "lake/raw-data/orders/orders from shop+1.csv"


@pytest.mark.parametrize(
    ("relative", "reason"),
    [
        ("raw-data/orders/README.txt", "not a raw CSV"),
        ("raw-data/orders.csv.gz", "not a raw CSV"),
        ("raw-data/orders/2026/11/orders.csv", "not a raw CSV"),
        ("archive/orders/2026/11/25/run/orders.csv", "not a raw CSV"),
        ("rejected/run/orders.csv", "not a raw CSV"),
        ("orders.csv", "not a raw CSV"),
    ],
)
def test_objects_that_are_not_raw_csvs_are_ignored(
    moto: MotoServer,
    lake: Lake,
    configure: Any,
    caplog: pytest.LogCaptureFixture,
    relative: str,
    reason: str,
) -> None:
    machine = configure(lake, DONE)
    event = lake.upload(relative)

    with caplog.at_level(logging.INFO, logger=trigger.__name__):
        summary = trigger.handler(event, None)

    assert summary["ignored"] == 1 and summary["started"] == 0
    assert summary["records"][0]["reason"].startswith(reason)
    assert f"ignored s3://{lake.bucket}/{lake.key(relative)}" in caplog.text
    assert executions(moto, machine) == []


def test_keys_outside_the_lake_root_and_other_buckets_are_ignored(
    moto: MotoServer, lake: Lake, configure: Any
) -> None:
    machine = configure(lake, DONE)
    outside = Lake(moto, prefix="")  # another bucket, same account
    beside = lake.s3.put_object(Bucket=lake.bucket, Key="other/raw-data/orders.csv", Body=b"x")
    lake.notification()
    events = [
        outside.upload("lake/raw-data/orders.csv"),
        documented_notification(lake.bucket, "other/raw-data/orders.csv", beside["ETag"], 1),
        documented_notification(lake.bucket, "lakehouse/raw-data/orders.csv", "abc", 1),
    ]

    reasons = [trigger.handler(event, None)["records"][0]["reason"] for event in events]

    assert reasons == [
        f"bucket {outside.bucket} is not the lake's bucket {lake.bucket}",
        f"outside the lake root {lake.root}",
        f"outside the lake root {lake.root}",
    ]
    assert executions(moto, machine) == []


def test_removed_objects_are_ignored(moto: MotoServer, lake: Lake, configure: Any) -> None:
    machine = configure(lake, DONE)
    lake.upload("raw-data/orders.csv")  # not handed to the trigger
    lake.s3.delete_object(Bucket=lake.bucket, Key=lake.key("raw-data/orders.csv"))
    removed = lake.notification()
    assert removed["Records"][0]["eventName"].startswith("ObjectRemoved:")

    summary = trigger.handler(removed, None)

    assert summary["ignored"] == 1
    assert "is not ObjectCreated" in summary["records"][0]["reason"]
    assert executions(moto, machine) == []


def test_s3s_test_event_is_ignored(lake: Lake, configure: Any) -> None:
    configure(lake, DONE)

    assert trigger.handler(lake.test_event, None)["records"] == []


def test_a_running_execution_of_the_lake_makes_the_trigger_fail(
    moto: MotoServer, lake: Lake, configure: Any
) -> None:
    machine = configure(lake, HOLD)
    running = trigger.handler(lake.upload("raw-data/products.csv"), None)
    event = lake.upload("raw-data/orders/orders_1.csv")

    with pytest.raises(RunInProgress, match="is running: not starting another") as raised:
        trigger.handler(event, None)

    assert "\n" not in str(raised.value)
    assert running["records"][0]["execution_name"] in str(raised.value)
    assert len(executions(moto, machine)) == 1
    # Once the run is over, Lambda's retry of the same event starts the next run.
    stop_running(moto, machine)
    retried = trigger.handler(event, None)
    assert retried["started"] == 1
    assert len(executions(moto, machine)) == 2


def test_a_multi_record_event_starts_one_execution(
    moto: MotoServer, lake: Lake, configure: Any
) -> None:
    machine = configure(lake, HOLD)
    first = lake.upload("raw-data/products.csv")
    second = lake.upload("raw-data/orders/orders_1.csv")
    ignored = lake.upload("raw-data/orders/notes.txt")
    event = {"Records": first["Records"] + second["Records"] + ignored["Records"]}

    summary = trigger.handler(event, None)
    again = trigger.handler(event, None)

    assert [r["status"] for r in summary["records"]] == ["started", "started", "ignored"]
    names = {r["execution_name"] for r in summary["records"][:2]}
    assert len(names) == 1
    assert [r["status"] for r in again["records"]] == ["duplicate", "duplicate", "ignored"]
    assert [e["name"] for e in executions(moto, machine)] == sorted(names)


def test_aws_errors_propagate(moto: MotoServer, lake: Lake, configure: Any) -> None:
    configure(lake, DONE)
    missing = f"arn:aws:states:{REGION}:{ACCOUNT_ID}:stateMachine:no-such-machine"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LAKEHOUSE_STATE_MACHINE_ARN", missing)
        with pytest.raises(ClientError, match="StateMachineDoesNotExist"):
            trigger.handler(lake.upload("raw-data/products.csv"), None)
