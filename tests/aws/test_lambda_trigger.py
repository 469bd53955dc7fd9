"""The trigger Lambda, invoked directly with real S3 notifications and EventBridge events.

Moto cannot run a Lambda's code here (no Docker), so the handler is called in-process with
the events AWS sends. Most S3 notifications are the emulator's own: the lake's bucket
notifies an SQS queue in moto, and the test receives what S3 published, URL-encoded keys
and all. One is AWS's documented notification (with ``sequencer``, ``userIdentity`` and the
other fields moto leaves out). The EventBridge events ("Step Functions Execution Status
Change", "Scheduled Event") are built in the shape AWS documents, from moto's own
DescribeExecution. The state machines are moto's, executing (their executions run, succeed,
fail, or wait until stopped).
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote_plus, unquote_plus

import pytest
from botocore.exceptions import ClientError

from ecommerce_lakehouse_lambdas import trigger
from ecommerce_lakehouse_lambdas.errors import InvalidEvent
from ecommerce_lakehouse_lambdas.settings import TriggerSettings
from ecommerce_lakehouse_lambdas.trigger import START_RECORD_KEY, execution_name
from tests.aws.sfn_support import (
    DONE,
    HOLD,
    create_state_machine,
    enable_execution,
    executions,
    stop_running,
    wait_for_end,
)
from tests.aws_support import ACCOUNT_ID, REGION, MotoServer

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
        """The next S3 event notification S3 published to the queue, skipping those of the
        trigger's start record (the stack's filter, ``raw-data/`` and ``.csv``, never
        sends them)."""
        while True:
            messages = self.sqs.receive_message(
                QueueUrl=self.queue_url, MaxNumberOfMessages=1, WaitTimeSeconds=2
            ).get("Messages", [])
            assert messages, "S3 published no notification"
            self.sqs.delete_message(
                QueueUrl=self.queue_url, ReceiptHandle=messages[0]["ReceiptHandle"]
            )
            event: dict[str, Any] = json.loads(messages[0]["Body"])
            keys = [unquote_plus(r["s3"]["object"]["key"]) for r in event.get("Records", [])]
            if not keys or not all(k == self.key(START_RECORD_KEY) for k in keys):
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


#: A state machine whose executions fail at once (as the pipeline's do in IngestFailed).
FAILS: dict[str, Any] = {
    "StartAt": "IngestFailed",
    "States": {"IngestFailed": {"Type": "Fail", "Error": "IngestFailed", "Cause": "test"}},
}


def _millis(moment: datetime | None) -> int | None:
    return None if moment is None else int(moment.timestamp() * 1000)


def status_change_event(described: dict[str, Any]) -> dict[str, Any]:
    """EventBridge's "Step Functions Execution Status Change" for an execution, in the shape
    AWS documents, from its ``DescribeExecution`` (the event's detail carries the same)."""
    arn = described["executionArn"]
    stop = described.get("stopDate")
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Step Functions Execution Status Change",
        "source": "aws.states",
        "account": ACCOUNT_ID,
        "time": (stop or described["startDate"]).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": REGION,
        "resources": [arn],
        "detail": {
            "executionArn": arn,
            "stateMachineArn": described["stateMachineArn"],
            "name": described["name"],
            "status": described["status"],
            "startDate": _millis(described["startDate"]),
            "stopDate": _millis(stop),
            "input": described.get("input"),
            "output": described.get("output"),
            "inputDetails": {"included": True},
            "outputDetails": {"included": True},
        },
    }


def scheduled_event(rule: str = "lakehouse-sweep") -> dict[str, Any]:
    """The event an EventBridge schedule rule sends its target, in the shape AWS documents."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT_ID,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": REGION,
        "resources": [f"arn:aws:events:{REGION}:{ACCOUNT_ID}:rule/{rule}"],
        "detail": {},
    }


def ended(moto: MotoServer, execution_arn: str) -> dict[str, Any]:
    """The status change event AWS sends once the execution has ended."""
    return status_change_event(wait_for_end(moto, execution_arn))


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
        for name, value in moto.lambda_environment(
            LAKEHOUSE_LAKE=lake.root, LAKEHOUSE_STATE_MACHINE_ARN=arn
        ).items():
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


def test_a_file_uploaded_during_a_run_is_deferred_and_the_runs_end_starts_it(
    moto: MotoServer, lake: Lake, configure: Any, caplog: pytest.LogCaptureFixture
) -> None:
    machine = configure(lake, HOLD)
    running = trigger.handler(lake.upload("raw-data/products.csv"), None)
    event = lake.upload("raw-data/orders/orders_1.csv")

    with caplog.at_level(logging.INFO, logger=trigger.__name__):
        deferred = trigger.handler(event, None)  # returns: no retry, no failure queue

    (record,) = deferred["records"]
    assert (record["status"], deferred["deferred"], deferred["started"]) == ("deferred", 1, 0)
    first = running["records"][0]["execution_name"]
    assert record["reason"].startswith(f"execution {first} is running")
    assert record["execution_name"] is None and "\n" not in record["reason"]
    assert f"deferred s3://{lake.bucket}/lake/raw-data/orders/orders_1.csv" in caplog.text
    assert len(executions(moto, machine)) == 1
    # The run ends; the status change makes the trigger sweep, which starts the next run
    # for everything still in raw-data/ (HOLD archived nothing: both files).
    stop_running(moto, machine)

    swept = trigger.handler(ended(moto, running["records"][0]["execution_arn"]), None)

    listed = lake.s3.list_objects_v2(Bucket=lake.bucket, Prefix="lake/raw-data/")["Contents"]
    assert swept["event"] == "execution-status-change" and swept["ended_status"] == "ABORTED"
    assert (swept["status"], swept["raw_files"]) == ("started", 2)
    assert swept["execution_name"] == execution_name(
        [(lake.bucket, o["Key"], o["ETag"]) for o in sorted(listed, key=lambda o: o["Key"])]
    )
    assert len(executions(moto, machine)) == 2


def test_a_sweep_starts_one_execution_for_the_raw_zone_and_a_second_sweep_none(
    moto: MotoServer, lake: Lake, configure: Any
) -> None:
    machine = configure(lake, HOLD)
    for relative in ("raw-data/products.csv", "raw-data/orders/o1.csv", "raw-data/notes.txt"):
        lake.upload(relative)  # notifications not delivered: e.g. lost

    first = trigger.handler(scheduled_event(), None)
    again = trigger.handler(scheduled_event(), None)

    assert (first["event"], first["status"], first["raw_files"]) == ("schedule", "started", 2)
    assert (again["status"], again["reason"]) == ("duplicate", "its execution is running")
    assert again["execution_name"] == first["execution_name"]
    (started,) = executions(moto, machine)
    described = moto.client("stepfunctions").describe_execution(
        executionArn=started["executionArn"]
    )
    payload = json.loads(described["input"])
    assert payload["lake_root"] == lake.root
    assert [o["key"] for o in payload["objects"]] == [
        "lake/raw-data/orders/o1.csv",
        "lake/raw-data/products.csv",
    ]
    assert "objects_total" not in payload


def test_a_sweep_of_an_empty_raw_zone_starts_nothing(
    moto: MotoServer, lake: Lake, configure: Any
) -> None:
    machine = configure(lake, DONE)
    lake.upload("archive/orders/2026/11/25/run/orders.csv")
    lake.upload("raw-data/orders/README.txt")

    summary = trigger.handler(scheduled_event(), None)

    assert (summary["status"], summary["raw_files"]) == ("empty", 0)
    assert summary["reason"] == f"no raw CSV in {lake.root}/raw-data/"
    assert summary["execution_name"] is None
    assert executions(moto, machine) == []


def test_a_set_of_files_whose_execution_failed_is_not_started_again(
    moto: MotoServer, lake: Lake, configure: Any
) -> None:
    machine = configure(lake, FAILS)
    first = trigger.handler(lake.upload("raw-data/products.csv"), None)
    failed = ended(moto, first["records"][0]["execution_arn"])
    assert failed["detail"]["status"] == "FAILED"

    # The file stayed in raw-data/; its end, and every schedule after, sweep the same set.
    sweeps = [trigger.handler(failed, None), trigger.handler(scheduled_event(), None)]

    for sweep in sweeps:
        assert (sweep["status"], sweep["reason"]) == ("duplicate", "its execution already ran")
        assert sweep["execution_name"] == first["records"][0]["execution_name"]
    assert len(executions(moto, machine)) == 1
    # A new file changes the set: the next sweep (or its notification) starts a run of both.
    lake.upload("raw-data/orders/orders_2.csv")
    assert trigger.handler(scheduled_event(), None)["status"] == "started"
    assert len(executions(moto, machine)) == 2


def test_a_sweep_ignores_the_executions_of_other_state_machines(
    moto: MotoServer, lake: Lake, configure: Any
) -> None:
    machine = configure(lake, HOLD)
    other = create_state_machine(moto, DONE)
    arn = moto.client("stepfunctions").start_execution(stateMachineArn=other, name="other-run")[
        "executionArn"
    ]
    lake.upload("raw-data/products.csv")

    summary = trigger.handler(ended(moto, arn), None)

    assert summary["status"] == "ignored"
    assert summary["reason"] == f"an execution of {other}, not of {machine}"
    assert executions(moto, machine) == []


def test_a_late_notification_for_a_file_a_run_took_starts_nothing(
    moto: MotoServer, lake: Lake, configure: Any
) -> None:
    machine = configure(lake, DONE)
    event = lake.upload("raw-data/products.csv")
    # A run archived the file before Lambda delivered the (throttled) notification.
    lake.s3.delete_object(Bucket=lake.bucket, Key=lake.key("raw-data/products.csv"))
    lake.notification()

    summary = trigger.handler(event, None)

    assert summary["ignored"] == 1 and summary["started"] == 0
    assert summary["records"][0]["reason"].startswith("no longer in raw-data/ with this ETag")
    assert executions(moto, machine) == []


class ListsNothing:
    """A Step Functions client whose ListExecutions lags behind, as it may in AWS."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def get_paginator(self, operation: str) -> Any:
        assert operation == "list_executions"

        class Empty:
            def paginate(self, **_: Any) -> list[dict[str, Any]]:
                return [{"executions": []}]

        return Empty()


def test_the_start_record_defers_a_run_that_listexecutions_does_not_show_yet(
    moto: MotoServer, lake: Lake, configure: Any
) -> None:
    machine = configure(lake, HOLD)
    settings = TriggerSettings.from_env({**_env(lake, machine)})
    lagging = trigger.Trigger(
        ListsNothing(moto.client("stepfunctions")), settings, moto.client("s3")
    )
    first = lagging(lake.upload("raw-data/products.csv"))

    second = lagging(lake.upload("raw-data/orders/orders_1.csv"))

    assert first["started"] == 1
    assert second["deferred"] == 1
    name = first["records"][0]["execution_name"]
    assert second["records"][0]["reason"].startswith(f"execution {name} is running")
    assert len(executions(moto, machine)) == 1
    record = json.loads(
        lake.s3.get_object(Bucket=lake.bucket, Key=lake.key(START_RECORD_KEY))["Body"].read()
    )
    assert record["execution_name"] == name
    assert record["state_machine_arn"] == machine


class RaceOnRecord:
    """An S3 client that holds each writer of the start record until the other is about to
    write it too, so that both invocations have read the record and listed the executions
    before either claims: the conditional write alone decides which one starts."""

    def __init__(self, client: Any, key: str, barrier: threading.Barrier) -> None:
        self._client, self._key, self._barrier = client, key, barrier

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def put_object(self, **kwargs: Any) -> Any:
        if kwargs["Key"] == self._key:
            self._barrier.wait(timeout=30)
        return self._client.put_object(**kwargs)


def test_two_invocations_racing_to_start_start_one_execution(
    moto: MotoServer, lake: Lake, configure: Any
) -> None:
    """Without the reserved concurrency of 1, two invocations may check at the same time:
    the conditional write of the start record lets exactly one of them start."""
    machine = configure(lake, HOLD)
    settings = TriggerSettings.from_env(_env(lake, machine))
    events = [lake.upload("raw-data/products.csv"), lake.upload("raw-data/orders/o1.csv")]
    barrier = threading.Barrier(2)
    s3 = RaceOnRecord(moto.client("s3"), lake.key(START_RECORD_KEY), barrier)
    results: list[dict[str, Any]] = []
    errors: list[BaseException] = []

    def invoke(event: dict[str, Any]) -> None:
        try:
            results.append(trigger.Trigger(moto.client("stepfunctions"), settings, s3)(event))
        except BaseException as error:  # reported below, not lost in the thread
            errors.append(error)

    threads = [threading.Thread(target=invoke, args=(e,)) for e in events]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    statuses = sorted(r["records"][0]["status"] for r in results)
    assert statuses == ["deferred", "started"]
    (loser,) = [r for r in results if r["deferred"]]
    assert "claimed the next start at the same moment" in loser["records"][0]["reason"]
    assert len(executions(moto, machine)) == 1


def test_a_claim_whose_execution_never_started_defers_only_for_the_grace_period(
    moto: MotoServer, lake: Lake, configure: Any
) -> None:
    machine = configure(lake, DONE)
    settings = TriggerSettings.from_env(_env(lake, machine))
    claimed = datetime.now(UTC)
    crashed = {
        "execution_name": "lakehouse-crashed",
        "execution_arn": settings.execution_arn("lakehouse-crashed"),
        "state_machine_arn": machine,
        "claimed_at": claimed.isoformat(),
    }
    key = lake.key(START_RECORD_KEY)
    lake.s3.put_object(Bucket=lake.bucket, Key=key, Body=json.dumps(crashed).encode())
    event = lake.upload("raw-data/products.csv")

    def at(moment: datetime) -> trigger.Trigger:
        return trigger.Trigger(
            moto.client("stepfunctions"), settings, moto.client("s3"), now=lambda: moment
        )

    soon = at(claimed + timedelta(seconds=30))(event)
    later = at(claimed + timedelta(seconds=trigger.CLAIM_GRACE_SECONDS + 1))(event)

    assert soon["deferred"] == 1
    assert "lakehouse-crashed is being started" in soon["records"][0]["reason"]
    assert later["started"] == 1
    assert [e["name"] for e in executions(moto, machine)] == [later["records"][0]["execution_name"]]


def test_an_unreadable_start_record_is_replaced(
    moto: MotoServer, lake: Lake, configure: Any, caplog: pytest.LogCaptureFixture
) -> None:
    configure(lake, DONE)
    key = lake.key(START_RECORD_KEY)
    lake.s3.put_object(Bucket=lake.bucket, Key=key, Body=b"{not json")

    with caplog.at_level(logging.WARNING, logger=trigger.__name__):
        summary = trigger.handler(lake.upload("raw-data/products.csv"), None)

    assert summary["started"] == 1
    assert f"unreadable start record s3://{lake.bucket}/{key}" in caplog.text
    record = json.loads(lake.s3.get_object(Bucket=lake.bucket, Key=key)["Body"].read())
    assert record["execution_name"] == summary["records"][0]["execution_name"]


def test_a_sweeps_input_lists_at_most_the_first_objects(
    moto: MotoServer, lake: Lake, configure: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    machine = configure(lake, DONE)
    monkeypatch.setattr(trigger, "INPUT_OBJECTS", 2)
    for index in range(3):
        lake.upload(f"raw-data/orders/orders_{index}.csv", f"order_id\n{index}\n".encode())

    summary = trigger.handler(scheduled_event(), None)

    assert (summary["status"], summary["raw_files"]) == ("started", 3)
    (started,) = executions(moto, machine)
    described = moto.client("stepfunctions").describe_execution(
        executionArn=started["executionArn"]
    )
    payload = json.loads(described["input"])
    assert [o["key"] for o in payload["objects"]] == [
        "lake/raw-data/orders/orders_0.csv",
        "lake/raw-data/orders/orders_1.csv",
    ]
    assert payload["objects_total"] == 3


@pytest.mark.parametrize(
    "event",
    [
        {"source": "aws.states", "detail-type": "Step Functions Execution Status Change"},
        {
            "source": "aws.states",
            "detail-type": "Step Functions Execution Status Change",
            "detail": {"executionArn": "x", "status": "SUCCEEDED"},
        },
    ],
)
def test_a_malformed_status_change_is_refused(
    lake: Lake, configure: Any, event: dict[str, Any]
) -> None:
    configure(lake, DONE)
    with pytest.raises(InvalidEvent, match=r"has no detail\.stateMachineArn"):
        trigger.handler(event, None)


def _env(lake: Lake, machine: str) -> dict[str, str]:
    return {"LAKEHOUSE_LAKE": lake.root, "LAKEHOUSE_STATE_MACHINE_ARN": machine}


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
        with pytest.raises(ClientError, match="StateMachineDoesNotExist"):
            trigger.handler(scheduled_event(), None)


def test_s3_errors_of_a_sweep_propagate(moto: MotoServer, lake: Lake, configure: Any) -> None:
    configure(lake, DONE)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LAKEHOUSE_LAKE", f"s3://no-such-lake-{uuid.uuid4().hex[:12]}")
        with pytest.raises(ClientError, match="NoSuchBucket"):
            trigger.handler(scheduled_event(), None)
