"""The S3 trigger: a raw CSV arrived in the lake, so start the pipeline's state machine.

S3 invokes the function asynchronously with an ``ObjectCreated`` notification. Its records
of raw CSVs (``<prefix>/raw-data/[<entity>/]<name>.csv`` in the lake's bucket) start one
execution, named after their objects' bucket, key and ETag: a duplicate delivery of the same
notification finds that execution and starts nothing (``duplicate``). Other records are
``ignored``, with the reason logged. (S3 puts one record in a notification; should one hold
several, they share one execution, since one run ingests the whole raw zone.)

PRODUCT §7a: runs of one lake never overlap. While another execution of the state machine is
running, the trigger starts none and raises :class:`RunInProgress`; Lambda retries the
asynchronous invocation later (twice by default) and then hands the event to the function's
on-failure destination. The raw file stays in ``raw-data/`` meanwhile, and every run ingests
the whole raw zone, so the next run picks it up.

Errors are never swallowed: any AWS error propagates, so the invocation is retried.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

from botocore.exceptions import ClientError

from ecommerce_lakehouse.domain.zones import is_raw_csv
from ecommerce_lakehouse_aws.clients import AwsClient, error_code
from ecommerce_lakehouse_lambdas.clients import aws_client
from ecommerce_lakehouse_lambdas.errors import InvalidEvent, RunInProgress
from ecommerce_lakehouse_lambdas.settings import TriggerSettings

LOGGER = logging.getLogger(__name__)
LOGGER.setLevel(logging.INFO)

#: Prefix of every execution name the trigger gives.
NAME_PREFIX = "lakehouse-"
#: Hex digits of SHA-256 in an execution name (160 bits; the name stays well under 80).
NAME_DIGITS = 40

STARTED = "started"
DUPLICATE = "duplicate"
IGNORED = "ignored"
STATUSES: tuple[str, ...] = (STARTED, DUPLICATE, IGNORED)

#: One object version: bucket, (decoded) key, ETag.
ObjectVersion = tuple[str, str, str]


def execution_name(objects: Sequence[ObjectVersion]) -> str:
    """The execution name of a notification's objects: ``lakehouse-`` and 40 hex digits.

    SHA-256 over each object's bucket, decoded key and ETag (quotes ignored), so every
    delivery of the same notification gives the same name. Valid for Step Functions
    (letters, digits and ``-``; 50 characters).

    Raises:
        ValueError: no objects.
    """
    if not objects:
        raise ValueError("an execution name needs at least one object")
    versions = [[bucket, key, etag.strip('"')] for bucket, key, etag in objects]
    identity = json.dumps(versions[0] if len(versions) == 1 else versions, ensure_ascii=False)
    return NAME_PREFIX + hashlib.sha256(identity.encode()).hexdigest()[:NAME_DIGITS]


@dataclass(frozen=True, slots=True, kw_only=True)
class ObjectEvent:
    """One record of an S3 event notification.

    Attributes:
        event_name: e.g. ``ObjectCreated:Put`` or ``ObjectRemoved:Delete``.
        bucket: the bucket name.
        key: the object key, URL-decoded (S3 sends it encoded, ``+`` for a space).
        etag: the object's ETag without quotes (None when the record has none).
        size: the object's size in bytes (None when the record has none).
    """

    event_name: str
    bucket: str
    key: str
    etag: str | None
    size: int | None

    @classmethod
    def from_record(cls, record: object, index: int) -> ObjectEvent:
        """Read one ``Records[]`` entry.

        Raises:
            InvalidEvent: the record lacks the bucket name or the object key.
        """
        if not isinstance(record, Mapping):
            raise InvalidEvent(f"S3 event record {index} is not an object")
        s3 = _mapping(record.get("s3"))
        name = _mapping(s3.get("bucket")).get("name")
        item = _mapping(s3.get("object"))
        key = item.get("key")
        if not isinstance(name, str) or not isinstance(key, str) or not name or not key:
            raise InvalidEvent(f"S3 event record {index} has no s3.bucket.name or s3.object.key")
        etag, size = item.get("eTag"), item.get("size")
        return cls(
            event_name=str(record.get("eventName") or ""),
            bucket=name,
            key=unquote_plus(key),
            etag=str(etag).strip('"') if etag else None,
            size=size if isinstance(size, int) else None,
        )

    @property
    def uri(self) -> str:
        """``s3://bucket/key``."""
        return f"s3://{self.bucket}/{self.key}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    """What the trigger did with one record.

    Attributes:
        status: ``started``, ``duplicate`` or ``ignored``.
        bucket: the record's bucket.
        key: the record's decoded key.
        reason: why it was ignored or is a duplicate; None when started.
        execution_name: the execution that runs (or ran) for it; None when ignored.
        execution_arn: that execution's ARN; None when ignored.
    """

    status: str
    bucket: str
    key: str
    reason: str | None = None
    execution_name: str | None = None
    execution_arn: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        """The decision as JSON-ready values."""
        return {
            "status": self.status,
            "bucket": self.bucket,
            "key": self.key,
            "reason": self.reason,
            "execution_name": self.execution_name,
            "execution_arn": self.execution_arn,
        }


class Trigger:
    """Starts the state machine for the raw CSVs of S3 notifications.

    Args:
        client: a boto3 Step Functions client.
        settings: the lake and the state machine.
    """

    def __init__(self, client: AwsClient, settings: TriggerSettings) -> None:
        self._client = client
        self._settings = settings

    def __call__(self, event: object) -> dict[str, Any]:
        """Handle one S3 notification; returns the decision per record and their counts.

        Raises:
            InvalidEvent: the event is not an S3 notification.
            RunInProgress: another execution of the state machine is running.
            botocore.exceptions.ClientError: a Step Functions call failed.
        """
        records = [ObjectEvent.from_record(r, i) for i, r in enumerate(_records(event))]
        decisions: list[Decision | None] = []
        accepted: list[ObjectEvent] = []
        for record in records:
            reason = self._ignore_reason(record)
            if reason is None:
                if record.etag is None:
                    raise InvalidEvent(f"the ObjectCreated record of {record.uri} has no eTag")
                accepted.append(record)
                decisions.append(None)
            else:
                LOGGER.info("ignored %s (%s): %s", record.uri, record.event_name, reason)
                decisions.append(
                    Decision(status=IGNORED, bucket=record.bucket, key=record.key, reason=reason)
                )
        if accepted:
            status, reason, name, arn = self._start(accepted)
            decisions = [
                d
                or Decision(
                    status=status,
                    bucket=r.bucket,
                    key=r.key,
                    reason=reason,
                    execution_name=name,
                    execution_arn=arn,
                )
                for d, r in zip(decisions, records, strict=True)
            ]
        done = [d for d in decisions if d is not None]
        summary: dict[str, Any] = {
            "state_machine_arn": self._settings.state_machine_arn,
            "records": [d.as_dict() for d in done],
        }
        for status in STATUSES:
            summary[status] = sum(1 for d in done if d.status == status)
        return summary

    def _start(self, objects: Sequence[ObjectEvent]) -> tuple[str, str | None, str, str]:
        """Start the execution of these objects: (status, reason, name, ARN)."""
        versions = list(dict.fromkeys((o.bucket, o.key, o.etag or "") for o in objects))
        name = execution_name(versions)
        arn = self._settings.execution_arn(name)
        uris = ", ".join(o.uri for o in objects)
        running = self._running()
        if name in running:
            return self._duplicate(uris, name, arn, "its execution is running")
        if running:
            raise RunInProgress(
                f"execution {sorted(running)[0]} of {self._settings.state_machine_arn} is "
                f"running: not starting another for {uris} (runs of a lake never overlap); "
                "the invocation fails so that Lambda retries it"
            )
        payload = {
            "lake_root": self._settings.lake.uri,
            "objects": [
                {"bucket": o.bucket, "key": o.key, "etag": o.etag, "size": o.size} for o in objects
            ],
        }
        try:
            response = self._client.start_execution(
                stateMachineArn=self._settings.state_machine_arn,
                name=name,
                input=json.dumps(payload, sort_keys=True, ensure_ascii=False),
            )
        except ClientError as error:
            if error_code(error) == "ExecutionAlreadyExists":
                return self._duplicate(uris, name, arn, "its execution already ran")
            raise
        LOGGER.info("started execution %s for %s", name, uris)
        return STARTED, None, name, str(response.get("executionArn") or arn)

    def _ignore_reason(self, record: ObjectEvent) -> str | None:
        lake = self._settings.lake
        if not record.event_name.startswith("ObjectCreated:"):
            return f"{record.event_name or 'an event without eventName'} is not ObjectCreated"
        if record.bucket != lake.bucket:
            return f"bucket {record.bucket} is not the lake's bucket {lake.bucket}"
        relative = record.key
        if lake.prefix:
            if not record.key.startswith(f"{lake.prefix}/"):
                return f"outside the lake root {lake.uri}"
            relative = record.key[len(lake.prefix) + 1 :]
        if not is_raw_csv(relative):
            return "not a raw CSV (raw-data/<name>.csv or raw-data/<entity>/<name>.csv)"
        return None

    def _running(self) -> set[str]:
        names: set[str] = set()
        pages = self._client.get_paginator("list_executions").paginate(
            stateMachineArn=self._settings.state_machine_arn, statusFilter="RUNNING"
        )
        for page in pages:
            names.update(str(item["name"]) for item in page.get("executions", []))
        return names

    @staticmethod
    def _duplicate(uris: str, name: str, arn: str, why: str) -> tuple[str, str, str, str]:
        LOGGER.info("duplicate notification for %s: %s (%s)", uris, why, name)
        return DUPLICATE, why, name, arn


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _records(event: object) -> Sequence[object]:
    if not isinstance(event, Mapping):
        raise InvalidEvent("the S3 trigger expects an S3 event notification (a JSON object)")
    records = event.get("Records")
    if records is None:
        # S3 sends an "s3:TestEvent" (no Records) when notifications are configured.
        LOGGER.info("ignored an event without Records: %s", event.get("Event", "unknown"))
        return []
    if not isinstance(records, list):
        raise InvalidEvent("the S3 event's Records is not a list")
    return records


def handler(event: dict[str, Any], context: object) -> dict[str, Any]:
    """Lambda entry point of the S3 trigger (``ecommerce_lakehouse_lambdas.trigger.handler``).

    Args:
        event: an S3 event notification (``Records[]``).
        context: the Lambda context (unused).

    Returns:
        ``{"state_machine_arn", "records": [...], "started", "duplicate", "ignored"}``: the
        decision per record (status, bucket, key, reason, execution name and ARN) and how
        many records got each status.

    Raises:
        ConfigurationError: ``LAKEHOUSE_LAKE_ROOT`` or ``LAKEHOUSE_STATE_MACHINE_ARN`` is
            missing or malformed.
        InvalidEvent: the event is not an S3 notification.
        RunInProgress: another execution of the state machine is running (Lambda retries).
        botocore.exceptions.ClientError: a Step Functions call failed (Lambda retries).
    """
    settings = TriggerSettings.from_env(os.environ)
    client = aws_client("stepfunctions", settings.region, settings.endpoint_url)
    return Trigger(client, settings)(event)
