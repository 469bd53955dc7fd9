"""S3LakeLock beyond the lock contract: leases expire, are renewed, taken over and never stolen.

Moto honours ``If-None-Match: *`` and ``If-Match`` on PutObject and DeleteObject, and stamps
``Last-Modified`` and the ``Date`` header to the second, so leases here last one second and
a crashed holder's lease is taken over within about two.
"""

from __future__ import annotations

import json
import threading
import time
from contextlib import ExitStack
from typing import Any

import pytest

from ecommerce_lakehouse.domain.errors import LakehouseError, LockTimeout
from ecommerce_lakehouse_aws import S3LakeLock
from tests.aws_support import MotoServer

pytestmark = pytest.mark.aws
KEY = "lake/_lakehouse.lock"


@pytest.fixture
def bucket(moto: MotoServer) -> str:
    return moto.new_bucket()


def lock(server: MotoServer, bucket: str, lease_seconds: float = 1.0) -> S3LakeLock:
    return S3LakeLock(server.client("s3"), bucket, KEY, lease_seconds=lease_seconds)


def lease(server: MotoServer, bucket: str) -> dict[str, Any] | None:
    try:
        body = server.client("s3").get_object(Bucket=bucket, Key=KEY)["Body"].read()
    except server.client("s3").exceptions.NoSuchKey:
        return None
    content: dict[str, Any] = json.loads(body)
    return content


def test_a_crashed_runs_lease_is_taken_over_once_it_expires(
    moto: MotoServer,
    bucket: str,
) -> None:
    # What a run that died while holding the lake leaves behind: a lease nobody renews.
    crashed = {"owner": "run-crashed", "since": "2024-01-01T00:00:00Z", "lease_seconds": 1}
    moto.client("s3").put_object(Bucket=bucket, Key=KEY, Body=json.dumps(crashed).encode())

    with (
        pytest.raises(LockTimeout, match="locked by run run-crashed since 2024-01-01T00:00:00Z"),
        lock(moto, bucket).acquire(owner="run-early", timeout_seconds=0),
    ):
        pytest.fail("a fresh lease was taken over")
    started = time.monotonic()
    with lock(moto, bucket).acquire(owner="run-next", timeout_seconds=10):
        taken_after = time.monotonic() - started
        assert lease(moto, bucket)["owner"] == "run-next"  # type: ignore[index]

    assert 0 < taken_after < 5
    assert lease(moto, bucket) is None


def test_a_held_lease_is_renewed_while_the_run_lasts(
    moto: MotoServer,
    bucket: str,
) -> None:
    with lock(moto, bucket).acquire(owner="run-long", timeout_seconds=1):
        started = time.monotonic()
        with (
            pytest.raises(LockTimeout, match="locked by run run-long since"),
            lock(moto, bucket).acquire(owner="run-B", timeout_seconds=3),
        ):
            pytest.fail("a renewed lease was taken over")
        # Three lease lengths went by: only renewals kept the lease.
        assert time.monotonic() - started >= 3


def test_a_lost_lease_fails_the_holder_and_the_new_holders_lease_is_kept(
    moto: MotoServer,
    bucket: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    holder = lock(moto, bucket)
    renew = holder._renew
    taken_over = threading.Event()

    def unreachable_until_taken_over(current: Any) -> Any:
        if not taken_over.is_set():
            raise LakehouseError("S3 unreachable")  # renewals fail, as in a network outage
        return renew(current)

    monkeypatch.setattr(holder, "_renew", unreachable_until_taken_over)

    def run_a(successor: ExitStack) -> None:
        with holder.acquire(owner="run-A", timeout_seconds=1):
            # run-B takes the expired lease over while run-A cannot renew it.
            successor.enter_context(
                lock(moto, bucket, lease_seconds=60).acquire(owner="run-B", timeout_seconds=10)
            )
            taken_over.set()
            time.sleep(1.0)  # run-A's next renewal finds the lease is not its own any more

    with ExitStack() as successor:
        with pytest.raises(LakehouseError, match=r"run run-A lost the lake lock at s3://.*took it"):
            run_a(successor)
        # run-A ended without deleting run-B's lease.
        assert lease(moto, bucket)["owner"] == "run-B"  # type: ignore[index]
    assert lease(moto, bucket) is None


def test_an_unreadable_object_at_the_lock_key_expires_like_a_lease(
    moto: MotoServer,
    bucket: str,
) -> None:
    moto.client("s3").put_object(Bucket=bucket, Key=KEY, Body=b"not a lease")

    with (
        pytest.raises(LockTimeout, match=r"locked by another run \(s3://.*_lakehouse.lock\)"),
        lock(moto, bucket).acquire(owner="run-early", timeout_seconds=0),
    ):
        pytest.fail("a fresh object was taken over")
    with lock(moto, bucket).acquire(owner="run-next", timeout_seconds=10):
        assert lease(moto, bucket)["owner"] == "run-next"  # type: ignore[index]


def test_release_deletes_only_the_lease_it_holds(
    moto: MotoServer,
    bucket: str,
) -> None:
    with lock(moto, bucket, lease_seconds=60).acquire(owner="run-A", timeout_seconds=1):
        # The lease is replaced under run-A's feet (an operator, a misbehaving client).
        other = {"owner": "run-X", "since": "2024-01-01T00:00:00Z", "lease_seconds": 60}
        moto.client("s3").put_object(Bucket=bucket, Key=KEY, Body=json.dumps(other).encode())

    assert lease(moto, bucket) == other
