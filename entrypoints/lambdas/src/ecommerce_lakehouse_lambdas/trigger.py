"""The trigger: start the pipeline's state machine for the lake's raw CSVs, one run at a time.

Three kinds of event invoke the function, all asynchronously:

* an S3 ``ObjectCreated`` notification (``Records[]``). Its records of raw CSVs
  (``<prefix>/raw-data/[<entity>/]<name>.csv`` in the lake's bucket) that are still in
  ``raw-data/`` with their ETag start one execution, named after their objects' bucket, key
  and ETag: a duplicate delivery of the same notification finds that execution and starts
  nothing (``duplicate``). Other records are ``ignored``, with the reason logged - so is a
  record whose object a run has already taken (a late delivery). (S3 puts one record in a
  notification; should one hold several, they share one execution.)
* an EventBridge "Step Functions Execution Status Change" of the state machine: an
  execution ended, so the files that arrived meanwhile can go. The function *sweeps*.
* an EventBridge "Scheduled Event" (every five minutes in the stack): a sweep too, the
  safety net for events that never came (EventBridge delivers service events on a
  best-effort basis, and Lambda may drop events from a long asynchronous queue).

A sweep lists the raw CSVs in ``raw-data/`` and, when there are any, starts one execution
named after all of them (bucket, key and ETag, like a notification's name; one file gives
the very name its notification gave). Two sweeps of the same raw zone therefore start one
execution, and a set of files whose execution already ran - e.g. failed - is not started
again (``duplicate``) until the raw zone changes: no retry loop.

Runs of one lake never overlap (docs/contract.md#concurrency). Before starting, the trigger

1. reads its record of the last execution it started (:data:`START_RECORD_KEY` in the lake)
   and asks DescribeExecution, which is strongly consistent, whether that one runs;
2. asks ListExecutions for RUNNING executions (those started elsewhere, e.g. by hand), each
   confirmed with DescribeExecution, since ListExecutions is eventually consistent;
3. claims the start: it writes the record naming the new execution with an S3 conditional
   write (``If-Match`` the ETag it read, ``If-None-Match: *`` when there was none), so of
   two invocations that raced through 1 and 2 only one starts; then it starts.

While another execution runs, the trigger starts nothing and the record or sweep is
``deferred``: logged, and the function returns normally - no retry, nothing in the failure
queue. The files wait in ``raw-data/``; the sweep at that execution's end starts the next
run. The stack gives the function a reserved concurrency of 1, so in AWS invocations do not
even race (Lambda keeps throttled asynchronous events queued and retries them).

Errors are never swallowed: AWS errors propagate, so Lambda retries the invocation and at
last sends the event to the function's failure queue.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote_plus

from botocore.exceptions import ClientError

from ecommerce_lakehouse.domain.zones import RAW, is_raw_csv
from ecommerce_lakehouse_aws.clients import (
    AwsClient,
    error_code,
    is_missing,
    is_precondition_failed,
)
from ecommerce_lakehouse_lambdas.clients import aws_client
from ecommerce_lakehouse_lambdas.errors import InvalidEvent
from ecommerce_lakehouse_lambdas.settings import TriggerSettings

LOGGER = logging.getLogger(__name__)
LOGGER.setLevel(logging.INFO)

#: Prefix of every execution name the trigger gives.
NAME_PREFIX = "lakehouse-"
#: Hex digits of SHA-256 in an execution name (160 bits; the name stays well under 80).
NAME_DIGITS = 40

STARTED = "started"
DUPLICATE = "duplicate"
DEFERRED = "deferred"
IGNORED = "ignored"
#: A sweep found no raw CSV.
EMPTY = "empty"
#: The statuses of a notification's records, counted in the function's result.
STATUSES: tuple[str, ...] = (STARTED, DUPLICATE, DEFERRED, IGNORED)

#: Kinds of event (the ``event`` of the function's result).
S3_NOTIFICATION = "s3"
EXECUTION_STATUS_CHANGE = "execution-status-change"
SCHEDULE = "schedule"
#: EventBridge's ``source`` and ``detail-type`` of the events that make the trigger sweep.
SWEEP_EVENTS: Mapping[tuple[str, str], str] = {
    ("aws.states", "Step Functions Execution Status Change"): EXECUTION_STATUS_CHANGE,
    ("aws.events", "Scheduled Event"): SCHEDULE,
}

#: The trigger's record of the last execution it started, relative to the lake root.
START_RECORD_KEY = "_trigger/last-start.json"
#: How long after a claim its execution may still be missing because the claiming
#: invocation is between its claim and its StartExecution (the function's timeout is 60 s).
#: An older claim without an execution is a crashed invocation's, and is claimed over.
CLAIM_GRACE_SECONDS = 180.0
#: A sweep's execution input lists at most this many objects (Step Functions passes at most
#: 256 KiB between states); its name covers every object, and ``objects_total`` counts them.
INPUT_OBJECTS = 100

_RUNNING = "RUNNING"

#: One object version: bucket, (decoded) key, ETag.
ObjectVersion = tuple[str, str, str]


def execution_name(objects: Sequence[ObjectVersion]) -> str:
    """The execution name of a set of objects: ``lakehouse-`` and 40 hex digits.

    SHA-256 over each object's bucket, decoded key and ETag (quotes ignored), in the given
    order, so every delivery of the same notification, and every sweep of the same raw zone
    (listed in key order), gives the same name. Valid for Step Functions (letters, digits
    and ``-``; 50 characters).

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
class RawObject:
    """One raw CSV version an execution is started for.

    Attributes:
        bucket: the lake's bucket.
        key: the object key (with the lake's prefix).
        etag: the ETag without quotes.
        size: the size in bytes (None when unknown).
    """

    bucket: str
    key: str
    etag: str
    size: int | None

    @property
    def version(self) -> ObjectVersion:
        """``(bucket, key, etag)`` for :func:`execution_name`."""
        return (self.bucket, self.key, self.etag)

    def as_input(self) -> dict[str, Any]:
        """The object as the execution input lists it."""
        return {"bucket": self.bucket, "key": self.key, "etag": self.etag, "size": self.size}


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    """What the trigger did with one record of a notification.

    Attributes:
        status: ``started``, ``duplicate``, ``deferred`` or ``ignored``.
        bucket: the record's bucket.
        key: the record's decoded key.
        reason: why it was ignored, deferred or is a duplicate; None when started.
        execution_name: the execution that runs (or ran) for it; None when ignored or
            deferred.
        execution_arn: that execution's ARN; None when ignored or deferred.
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


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    """What one attempt to start an execution came to.

    Attributes:
        status: ``started``, ``duplicate`` or ``deferred``.
        reason: why it is a duplicate or deferred; None when started.
        execution_name: the execution started or found; None when deferred.
        execution_arn: its ARN; None when deferred.
    """

    status: str
    reason: str | None = None
    execution_name: str | None = None
    execution_arn: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class StartRecord:
    """The trigger's record of the execution it last started (or is starting).

    Attributes:
        execution_name: the execution's name.
        execution_arn: its ARN.
        state_machine_arn: its state machine.
        claimed_at: when the trigger claimed the start (UTC).
    """

    execution_name: str
    execution_arn: str
    state_machine_arn: str
    claimed_at: datetime

    def to_json(self) -> bytes:
        """The record's JSON document."""
        document = {
            "execution_name": self.execution_name,
            "execution_arn": self.execution_arn,
            "state_machine_arn": self.state_machine_arn,
            "claimed_at": self.claimed_at.isoformat(timespec="seconds"),
        }
        return json.dumps(document, sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes) -> StartRecord:
        """Read a record.

        Raises:
            ValueError: the document is not a start record.
        """
        document = json.loads(data)
        if not isinstance(document, Mapping):
            raise ValueError("not a JSON object")
        fields = ("execution_name", "execution_arn", "state_machine_arn", "claimed_at")
        values = {name: document.get(name) for name in fields}
        missing = [name for name, value in values.items() if not isinstance(value, str)]
        if missing:
            raise ValueError(f"no {', '.join(missing)}")
        claimed_at = datetime.fromisoformat(str(values["claimed_at"]))
        if claimed_at.tzinfo is None:
            raise ValueError("claimed_at has no time zone")
        return cls(
            execution_name=str(values["execution_name"]),
            execution_arn=str(values["execution_arn"]),
            state_machine_arn=str(values["state_machine_arn"]),
            claimed_at=claimed_at,
        )


class Trigger:
    """Starts the state machine for the lake's raw CSVs, never two executions at once.

    Args:
        client: a boto3 Step Functions client.
        settings: the lake and the state machine.
        s3: a boto3 S3 client for the lake's bucket (the raw zone and the start record);
            by default the function's cached client in the state machine's region.
        now: the current UTC time (tests pass a fake).
    """

    def __init__(
        self,
        client: AwsClient,
        settings: TriggerSettings,
        s3: AwsClient | None = None,
        *,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._client = client
        self._settings = settings
        self._s3_client = s3
        self._now = now

    def __call__(self, event: object) -> dict[str, Any]:
        """Handle one event: an S3 notification, or an EventBridge event that makes it sweep.

        Returns:
            See :func:`handler`.

        Raises:
            InvalidEvent: the event is neither an S3 notification nor a well-formed
                EventBridge event of a kind the trigger handles.
            botocore.exceptions.ClientError: a Step Functions or S3 call failed.
        """
        if not isinstance(event, Mapping):
            raise InvalidEvent(
                "the trigger expects an S3 event notification or an EventBridge event "
                "(a JSON object)"
            )
        kind = SWEEP_EVENTS.get((str(event.get("source")), str(event.get("detail-type"))))
        if kind is None:
            return self._notification(event)
        return self._sweep(kind, event)

    # ------------------------------------------------------------------ notifications
    def _notification(self, event: Mapping[str, Any]) -> dict[str, Any]:
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
                decisions.append(self._ignored(record, reason))
        if accepted:
            # A late delivery (Lambda's queue may hold an event for minutes) must not start
            # a run for a file that a run has already taken: S3 lists strongly consistently.
            present = {o.key: o.etag for o in self._raw_objects()}
            objects = [
                RawObject(bucket=r.bucket, key=r.key, etag=r.etag or "", size=r.size)
                for r in accepted
                if present.get(r.key) == r.etag
            ]
            outcome = None
            if objects:
                versions = list(dict.fromkeys(o.version for o in objects))
                outcome = self._start(execution_name(versions), objects, swept=False)
            kept = {o.key for o in objects}
            gone = (
                f"no longer in {RAW}/ with this ETag: a run took it, or a newer upload replaced it"
            )
            for index, record in enumerate(records):
                if decisions[index] is not None:
                    continue
                if outcome is None or record.key not in kept:
                    decisions[index] = self._ignored(record, gone)
                    continue
                decisions[index] = Decision(
                    status=outcome.status,
                    bucket=record.bucket,
                    key=record.key,
                    reason=outcome.reason,
                    execution_name=outcome.execution_name,
                    execution_arn=outcome.execution_arn,
                )
            if outcome is not None:
                uris = ", ".join(f"s3://{o.bucket}/{o.key}" for o in objects)
                self._log(outcome, uris)
        done = [d for d in decisions if d is not None]
        summary: dict[str, Any] = {
            "state_machine_arn": self._settings.state_machine_arn,
            "event": S3_NOTIFICATION,
            "records": [d.as_dict() for d in done],
        }
        for status in STATUSES:
            summary[status] = sum(1 for d in done if d.status == status)
        return summary

    def _ignore_reason(self, record: ObjectEvent) -> str | None:
        lake = self._settings.location
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

    @staticmethod
    def _ignored(record: ObjectEvent, reason: str) -> Decision:
        LOGGER.info("ignored %s (%s): %s", record.uri, record.event_name, reason)
        return Decision(status=IGNORED, bucket=record.bucket, key=record.key, reason=reason)

    # ------------------------------------------------------------------ sweeps
    def _sweep(self, kind: str, event: Mapping[str, Any]) -> dict[str, Any]:
        summary: dict[str, Any] = {
            "state_machine_arn": self._settings.state_machine_arn,
            "event": kind,
            "ended_execution": None,
            "ended_status": None,
            "status": EMPTY,
            "reason": None,
            "execution_name": None,
            "execution_arn": None,
            "raw_files": 0,
        }
        if kind == EXECUTION_STATUS_CHANGE:
            detail = _mapping(event.get("detail"))
            machine, arn, status = (
                detail.get(k) for k in ("stateMachineArn", "executionArn", "status")
            )
            if not all(isinstance(v, str) and v for v in (machine, arn, status)):
                raise InvalidEvent(
                    "the execution status change has no detail.stateMachineArn, "
                    "detail.executionArn or detail.status"
                )
            summary.update(ended_execution=arn, ended_status=status)
            if machine != self._settings.state_machine_arn:
                reason = f"an execution of {machine}, not of {self._settings.state_machine_arn}"
                LOGGER.info("ignored the status change of %s: %s", arn, reason)
                summary.update(status=IGNORED, reason=reason)
                return summary
            LOGGER.info("execution %s is %s: sweeping %s", arn, status, self._raw_uri)
        else:
            LOGGER.info("scheduled sweep of %s", self._raw_uri)
        objects = self._raw_objects()
        summary["raw_files"] = len(objects)
        if not objects:
            summary["reason"] = f"no raw CSV in {self._raw_uri}/"
            LOGGER.info("sweep: %s", summary["reason"])
            return summary
        name = execution_name([o.version for o in objects])
        outcome = self._start(name, objects, swept=True)
        self._log(outcome, f"{len(objects)} raw CSV(s) in {self._raw_uri}/")
        summary.update(
            status=outcome.status,
            reason=outcome.reason,
            execution_name=outcome.execution_name,
            execution_arn=outcome.execution_arn,
        )
        return summary

    @property
    def _raw_uri(self) -> str:
        return f"{self._settings.location.uri}/{RAW}"

    def _raw_objects(self) -> list[RawObject]:
        """The raw CSVs in ``raw-data/`` now, in key order."""
        lake = self._settings.location
        folder = f"{lake.object_key(RAW)}/"
        strip = len(lake.prefix) + 1 if lake.prefix else 0
        found: list[RawObject] = []
        pages = self._s3.get_paginator("list_objects_v2").paginate(
            Bucket=lake.bucket, Prefix=folder
        )
        for page in pages:
            for item in page.get("Contents", []):
                key = str(item["Key"])
                if is_raw_csv(key[strip:]):
                    found.append(
                        RawObject(
                            bucket=lake.bucket,
                            key=key,
                            etag=str(item["ETag"]).strip('"'),
                            size=int(item["Size"]),
                        )
                    )
        return sorted(found, key=lambda o: o.key)

    # ------------------------------------------------------------------ starting
    def _start(self, name: str, objects: Sequence[RawObject], *, swept: bool) -> Outcome:
        """Start the execution ``name`` for ``objects`` unless another one runs."""
        arn = self._settings.execution_arn(name)
        record, etag = self._read_record()
        known: set[str] = set()
        if record is not None:
            status = self._status(record.execution_arn)
            known.add(record.execution_arn)
            if record.execution_name == name:
                if status == _RUNNING:
                    return Outcome(
                        status=DUPLICATE,
                        reason="its execution is running",
                        execution_name=name,
                        execution_arn=arn,
                    )
                if status is not None:
                    return Outcome(
                        status=DUPLICATE,
                        reason="its execution already ran",
                        execution_name=name,
                        execution_arn=arn,
                    )
                # Claimed but not started (a crash, or this event's earlier attempt): start
                # it; its name keeps a concurrent start of the same execution harmless.
            elif status == _RUNNING:
                return self._deferred(f"execution {record.execution_name} is running")
            elif status is None and self._age(record) < CLAIM_GRACE_SECONDS:
                return self._deferred(
                    f"execution {record.execution_name} is being started by another "
                    "invocation of the trigger"
                )
        running = self._running(known)
        if name in running:
            return Outcome(
                status=DUPLICATE,
                reason="its execution is running",
                execution_name=name,
                execution_arn=arn,
            )
        if running:
            return self._deferred(f"execution {running[0]} is running")
        claim = StartRecord(
            execution_name=name,
            execution_arn=arn,
            state_machine_arn=self._settings.state_machine_arn,
            claimed_at=self._now(),
        )
        if not self._claim(claim, etag):
            return self._deferred(
                "another invocation of the trigger claimed the next start at the same moment"
            )
        listed = [o.as_input() for o in objects]
        payload: dict[str, Any] = {"lake_root": self._settings.location.uri, "objects": listed}
        if swept and len(listed) > INPUT_OBJECTS:
            payload.update(objects=listed[:INPUT_OBJECTS], objects_total=len(listed))
        try:
            response = self._client.start_execution(
                stateMachineArn=self._settings.state_machine_arn,
                name=name,
                input=json.dumps(payload, sort_keys=True, ensure_ascii=False),
            )
        except ClientError as error:
            if error_code(error) == "ExecutionAlreadyExists":
                return Outcome(
                    status=DUPLICATE,
                    reason="its execution already ran",
                    execution_name=name,
                    execution_arn=arn,
                )
            raise
        return Outcome(
            status=STARTED,
            execution_name=name,
            execution_arn=str(response.get("executionArn") or arn),
        )

    def _deferred(self, why: str) -> Outcome:
        return Outcome(
            status=DEFERRED,
            reason=f"{why}: runs of a lake never overlap; the sweep when it ends starts the "
            "next run",
        )

    def _status(self, execution_arn: str) -> str | None:
        """An execution's status (strongly consistent), None when it does not exist."""
        try:
            described = self._client.describe_execution(executionArn=execution_arn)
        except ClientError as error:
            if error_code(error) == "ExecutionDoesNotExist":
                return None
            raise
        return str(described["status"])

    def _running(self, known: set[str]) -> list[str]:
        """Names of the other executions that run, confirmed by DescribeExecution.

        ListExecutions is eventually consistent: it can miss an execution that has just
        started (the start record covers the trigger's own) and list one that has just
        ended, hence the confirmation.
        """
        names: list[str] = []
        pages = self._client.get_paginator("list_executions").paginate(
            stateMachineArn=self._settings.state_machine_arn, statusFilter=_RUNNING
        )
        for page in pages:
            for item in page.get("executions", []):
                execution_arn = str(item["executionArn"])
                if execution_arn not in known and self._status(execution_arn) == _RUNNING:
                    names.append(str(item["name"]))
        return sorted(names)

    def _age(self, record: StartRecord) -> float:
        return (self._now() - record.claimed_at).total_seconds()

    # ------------------------------------------------------------------ the start record
    @property
    def _s3(self) -> AwsClient:
        if self._s3_client is None:
            self._s3_client = aws_client("s3", self._settings.region, self._settings.endpoint_url)
        return self._s3_client

    @property
    def _record_key(self) -> str:
        return self._settings.location.object_key(START_RECORD_KEY)

    def _read_record(self) -> tuple[StartRecord | None, str | None]:
        """The start record of this state machine and the object's ETag (None, None: none)."""
        bucket, key = self._settings.location.bucket, self._record_key
        try:
            response = self._s3.get_object(Bucket=bucket, Key=key)
        except ClientError as error:
            if is_missing(error):
                return None, None
            raise
        body = response["Body"]
        try:
            data: bytes = body.read()
        finally:
            body.close()
        etag = str(response["ETag"])
        try:
            record = StartRecord.from_json(data)
        except ValueError as error:
            # Only a hint for serialising starts: the next claim replaces it (If-Match).
            LOGGER.warning(
                "unreadable start record s3://%s/%s (%s): replacing it", bucket, key, error
            )
            return None, etag
        if record.state_machine_arn != self._settings.state_machine_arn:
            LOGGER.info(
                "the start record s3://%s/%s names %s, not this trigger's state machine",
                bucket,
                key,
                record.state_machine_arn,
            )
            return None, etag
        return record, etag

    def _claim(self, record: StartRecord, etag: str | None) -> bool:
        """Write the record unless it changed since it was read (False: another claimed)."""
        condition = {"IfMatch": etag} if etag is not None else {"IfNoneMatch": "*"}
        try:
            self._s3.put_object(
                Bucket=self._settings.location.bucket,
                Key=self._record_key,
                Body=record.to_json(),
                ContentType="application/json",
                **condition,
            )
        except ClientError as error:
            if is_precondition_failed(error) or (etag is not None and is_missing(error)):
                return False
            raise
        return True

    @staticmethod
    def _log(outcome: Outcome, what: str) -> None:
        if outcome.status == STARTED:
            LOGGER.info("started execution %s for %s", outcome.execution_name, what)
        elif outcome.status == DEFERRED:
            LOGGER.info("deferred %s: %s", what, outcome.reason)
        else:
            LOGGER.info("duplicate for %s: %s (%s)", what, outcome.reason, outcome.execution_name)


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _records(event: Mapping[str, Any]) -> Sequence[object]:
    records = event.get("Records")
    if records is None:
        # S3 sends an "s3:TestEvent" (no Records) when notifications are configured.
        what = event.get("Event") or event.get("detail-type") or "unknown"
        LOGGER.info("ignored an event without Records: %s", what)
        return []
    if not isinstance(records, list):
        raise InvalidEvent("the S3 event's Records is not a list")
    return records


def handler(event: dict[str, Any], context: object) -> dict[str, Any]:
    """Lambda entry point of the trigger (``ecommerce_lakehouse_lambdas.trigger.handler``).

    Args:
        event: an S3 event notification (``Records[]``), or an EventBridge "Step Functions
            Execution Status Change" or "Scheduled Event".
        context: the Lambda context (unused).

    Returns:
        For a notification, ``{"state_machine_arn", "event": "s3", "records": [...],
        "started", "duplicate", "deferred", "ignored"}``: the decision per record (status,
        bucket, key, reason, execution name and ARN) and how many records got each status.
        For a sweep, ``{"state_machine_arn", "event": "execution-status-change" or
        "schedule", "ended_execution", "ended_status", "status", "reason",
        "execution_name", "execution_arn", "raw_files"}``, the status one of ``started``,
        ``duplicate``, ``deferred``, ``empty`` (no raw CSV) or ``ignored`` (another state
        machine's execution).

    Raises:
        ConfigurationError: ``LAKEHOUSE_LAKE`` or ``LAKEHOUSE_STATE_MACHINE_ARN`` is
            missing or malformed.
        InvalidEvent: the event is not one the trigger handles.
        botocore.exceptions.ClientError: a Step Functions or S3 call failed (Lambda
            retries).
    """
    settings = TriggerSettings.from_env(os.environ)
    client = aws_client("stepfunctions", settings.region, settings.endpoint_url)
    s3 = aws_client("s3", settings.region, settings.endpoint_url)
    return Trigger(client, settings, s3)(event)
