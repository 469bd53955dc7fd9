"""The lake-wide lock of an S3 lake: a lease object written with S3 conditional writes."""

from __future__ import annotations

import json
import math
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ecommerce_lakehouse.domain.errors import LakehouseError, LockTimeout
from ecommerce_lakehouse.settings import DEFAULT_LOCK_LEASE_SECONDS
from ecommerce_lakehouse_aws.clients import (
    AwsClient,
    is_missing,
    is_precondition_failed,
    one_line,
)


@dataclass(frozen=True, slots=True)
class _Lease:
    """A lease this process holds: the ETag of the lease object it wrote last."""

    etag: str
    body: bytes


@dataclass(frozen=True, slots=True)
class _Holder:
    """Another run's lease as read from S3 (owner and since unknown when unreadable)."""

    owner: str | None
    since: str | None
    etag: str
    expired: bool


class S3LakeLock:
    """One run per S3 lake at a time, across machines (docs/contract.md#concurrency).

    The lock is a small JSON object (owner, since, lease length) at one key. It is taken
    with a conditional put that only succeeds when no object exists (``If-None-Match: *``),
    so exactly one of several racing runs wins. While held, a background thread renews
    the lease every third of its length with a put conditional on the lease's own ETag
    (``If-Match``). A run that crashed stops renewing: once its lease is older than its
    length, judged by S3's own clock (the object's ``Last-Modified`` against the response's
    ``Date``, so machines' clocks do not matter), another run takes it over, again with
    ``If-Match`` on the ETag it read, so only one taker wins. Release deletes the lease
    only while it still carries our ETag. A holder whose renewals kept failing until
    another run took the lease over learns it at the end of its ``with`` block, which then
    raises (the block is not interrupted; each Delta commit stays atomic on its own).

    A run that waits backs off exponentially (with jitter, up to ``max_poll_seconds``)
    until its timeout, then raises :class:`LockTimeout` naming the holder and since when
    it holds the lake. The lock is not re-entrant.

    Args:
        client: a boto3 S3 client.
        bucket: the lake's bucket.
        key: the lease object's key.
        lease_seconds: how long a lease lasts without renewal.
        max_poll_seconds: the longest wait between two attempts of a waiting run.
        now: the current UTC time, recorded as ``since`` (tests pass a fake).
    """

    def __init__(
        self,
        client: AwsClient,
        bucket: str,
        key: str,
        *,
        lease_seconds: float = DEFAULT_LOCK_LEASE_SECONDS,
        max_poll_seconds: float = 1.0,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if lease_seconds <= 0:
            raise ValueError("lease_seconds must be positive")
        self._client = client
        self._bucket = bucket
        self._key = key
        self._lease_seconds = lease_seconds
        self._max_poll = max_poll_seconds
        self._now = now

    @property
    def uri(self) -> str:
        """``s3://bucket/key`` of the lease object."""
        return f"s3://{self._bucket}/{self._key}"

    def acquire(self, *, owner: str, timeout_seconds: float) -> AbstractContextManager[None]:
        """Hold the lock for the ``with`` block.

        Args:
            owner: who takes the lock (a run id), reported to runs that have to wait.
            timeout_seconds: how long to wait for the lock; a negative value waits forever.

        Raises:
            LockTimeout: another owner held the lock for longer than ``timeout_seconds``.
            LakehouseError: S3 refused a lease operation, or the lease was lost while held
                (it could not be renewed in time and another run took it over).
        """
        return self._held(owner, timeout_seconds)

    @contextmanager
    def _held(self, owner: str, timeout_seconds: float) -> Iterator[None]:
        lease = self._take(owner, timeout_seconds)
        renewal = _Renewal(self._renew, lease, interval=self._lease_seconds / 3)
        renewal.start()
        try:
            yield
        finally:
            lost = renewal.stop()
            if lost is None:
                self._release(renewal.lease)
        if lost is not None:
            raise LakehouseError(f"run {owner} lost the lake lock at {self.uri}: {lost}")

    # ------------------------------------------------------------------ taking
    def _take(self, owner: str, timeout_seconds: float) -> _Lease:
        since = self._now().isoformat(timespec="seconds").replace("+00:00", "Z")
        body = json.dumps(
            {
                "owner": owner,
                "since": since,
                "lease_seconds": self._lease_seconds,
                "token": uuid.uuid4().hex,  # tells two leases of the same owner apart
            }
        ).encode()
        started = time.monotonic()
        delay = min(0.05, self._max_poll)
        while True:
            lease = self._put(body, IfNoneMatch="*")
            if lease is not None:
                return lease
            holder = self._holder()
            if holder is not None and holder.expired:
                lease = self._put(body, IfMatch=holder.etag)
                if lease is not None:
                    return lease
            waited = time.monotonic() - started
            if 0 <= timeout_seconds <= waited:
                who = (
                    f"run {holder.owner} since {holder.since}"
                    if holder is not None and holder.owner is not None
                    else f"another run ({self.uri})"
                )
                raise LockTimeout(f"lake is locked by {who}; gave up after {timeout_seconds:g}s")
            # Jitter, so that waiting runs do not retry in step; none when the lease was
            # released between our attempts.
            pause = 0.0 if holder is None else delay * random.uniform(0.5, 1.0)
            if timeout_seconds >= 0:
                pause = min(pause, timeout_seconds - waited)
            time.sleep(max(pause, 0.0))
            delay = min(delay * 2, self._max_poll)

    def _put(self, body: bytes, **condition: str) -> _Lease | None:
        """Write the lease under a condition; None when the condition did not hold."""
        try:
            response = self._client.put_object(
                Bucket=self._bucket,
                Key=self._key,
                Body=body,
                ContentType="application/json",
                **condition,
            )
        except ClientError as error:
            if is_precondition_failed(error) or (condition.get("IfMatch") and is_missing(error)):
                return None
            raise self._failed("write", error) from None
        except BotoCoreError as error:
            raise self._failed("write", error) from None
        return _Lease(etag=str(response["ETag"]), body=body)

    def _holder(self) -> _Holder | None:
        """The current lease, or None when it was released meanwhile."""
        try:
            response = self._client.get_object(Bucket=self._bucket, Key=self._key)
            raw = response["Body"].read()
        except ClientError as error:
            if is_missing(error):
                return None
            raise self._failed("read", error) from None
        except BotoCoreError as error:
            raise self._failed("read", error) from None
        owner: str | None = None
        since: str | None = None
        lease_seconds = self._lease_seconds
        try:
            content: dict[str, Any] = json.loads(raw)
            owner, since = str(content["owner"]), str(content["since"])
            lease_seconds = float(content["lease_seconds"])
            if not 0 < lease_seconds < math.inf:
                raise ValueError(lease_seconds)
        except (ValueError, KeyError, TypeError):
            # Not a lease this adapter wrote: it expires like one of our own length.
            owner = since = None
            lease_seconds = self._lease_seconds
        age = _server_now(response) - response["LastModified"]
        return _Holder(
            owner=owner,
            since=since,
            etag=str(response["ETag"]),
            expired=age.total_seconds() > lease_seconds,
        )

    # ------------------------------------------------------------------ holding
    def _renew(self, lease: _Lease) -> _Lease | None:
        """Rewrite our lease (refreshing its age); None when it is no longer ours."""
        return self._put(lease.body, IfMatch=lease.etag)

    def _release(self, lease: _Lease) -> None:
        # Not ours any more, or S3 unreachable: a lease left behind expires by itself.
        with suppress(ClientError, BotoCoreError):
            self._client.delete_object(Bucket=self._bucket, Key=self._key, IfMatch=lease.etag)

    def _failed(self, action: str, error: ClientError | BotoCoreError) -> LakehouseError:
        return LakehouseError(f"cannot {action} the lake lock {self.uri}: {one_line(error)}")


class _Renewal:
    """Renews a lease in a daemon thread until stopped."""

    def __init__(
        self, renew: Callable[[_Lease], _Lease | None], lease: _Lease, *, interval: float
    ) -> None:
        self._renew = renew
        self.lease = lease
        self._interval = interval
        self._stop = threading.Event()
        self._lost: str | None = None
        self._thread = threading.Thread(target=self._run, name="lake-lock-renewal", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> str | None:
        """Stop renewing; why the lease was lost, or None when it is still ours."""
        self._stop.set()
        self._thread.join()
        return self._lost

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                renewed = self._renew(self.lease)
            except LakehouseError:
                continue  # a transient S3 error: try again at the next tick
            if renewed is None:
                self._lost = "its lease expired and another run took it over"
                return
            self.lease = renewed


def _server_now(response: dict[str, Any]) -> datetime:
    # The response's Date header is S3's clock, the one Last-Modified was written with.
    header = response.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
    if header:
        try:
            return parsedate_to_datetime(header)
        except (TypeError, ValueError):
            pass
    return datetime.now(UTC)
