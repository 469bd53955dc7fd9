"""The archive Lambda, invoked directly (moto cannot run Lambda code here: no Docker).

Each test lays out a lake in the emulator's S3 as a Glue job run leaves it: raw files in
``raw-data/`` and the run's result at ``_runs/<run id>.json``, written exactly as the job
writes it (``RunResult.as_dict()`` plus ``result_key``). The event is the payload the state
machine's Archive task sends.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from ecommerce_lakehouse.application.run import DiscoveredFile, FileOutcome, RunResult
from ecommerce_lakehouse.domain.audit import RowCounts
from ecommerce_lakehouse.domain.errors import LakehouseError
from ecommerce_lakehouse.domain.types import FileStatus
from ecommerce_lakehouse.domain.zones import entity_of
from ecommerce_lakehouse_lambdas import archive
from ecommerce_lakehouse_lambdas.errors import InvalidEvent, InvalidRunResult, RunResultMissing
from tests.aws_support import MotoServer

pytestmark = pytest.mark.aws

RUN_ID = "lakehouse-0123456789abcdef0123456789abcdef01234567"
STARTED = datetime(2026, 11, 25, 19, 38, tzinfo=UTC)
DAY = "2026/11/25"

RAW = {
    "raw-data/orders/orders_1.csv": (b"order_id,user_id\n1,7\n", FileStatus.LOADED),
    "raw-data/products.csv": (b"product_id,product_name\n1,Tea\n", FileStatus.SKIPPED),
    "raw-data/order_items/broken.csv": (b"\xff\xfe not utf-8", FileStatus.REJECTED),
    "raw-data/orders/orders_2.csv": (b"order_id,user_id\n2,8\n", FileStatus.FAILED),
}
ERRORS = {
    FileStatus.REJECTED: "not_utf8: the file is not UTF-8 text",
    FileStatus.FAILED: "MERGE failed: throttled",
}
#: Arrived after the run's discovery: not in its result.
LATE = "raw-data/orders/orders_3.csv"


class RunLake:
    """A lake in the emulator's S3 after a Glue job run, and the archive event for it."""

    def __init__(self, server: MotoServer) -> None:
        self.bucket = server.new_bucket()
        self.root = f"s3://{self.bucket}/lake"
        self.s3 = server.client("s3")
        for key, (data, _) in RAW.items():
            self.put(key, data)
        self.put(LATE, b"order_id,user_id\n3,9\n")
        self.result_key = f"_runs/{RUN_ID}.json"
        self.put(self.result_key, json.dumps(self.result(), sort_keys=True).encode())

    def result(
        self, run_id: str = RUN_ID, destinations: dict[str, str] | None = None
    ) -> dict[str, Any]:
        """The job's result; ``destinations`` are those the job planned (by source key)."""
        files = tuple(
            FileOutcome(
                file=DiscoveredFile(
                    key=key,
                    entity=entity_of(key),
                    size_bytes=len(data),
                    checksum=hashlib.sha256(data).hexdigest(),
                ),
                status=status,
                counts=RowCounts(rows_read=1, inserted=1)
                if status is FileStatus.LOADED
                else RowCounts(),
                started_at=STARTED,
                finished_at=STARTED,
                error=ERRORS.get(status),
                destination=(destinations or {}).get(key),
            )
            for key, (data, status) in RAW.items()
        )
        result = RunResult(
            run_id=run_id,
            lake_root=self.root,
            engine="spark",
            started_at=STARTED,
            finished_at=STARTED,
            files=files,
            checks=(),
            tables={},
        )
        return {**result.as_dict(), "result_key": f"_runs/{run_id}.json"}

    def event(self) -> dict[str, str]:
        return {"lake_root": self.root, "run_id": RUN_ID, "result_key": self.result_key}

    def put(self, key: str, data: bytes) -> None:
        self.s3.put_object(Bucket=self.bucket, Key=f"lake/{key}", Body=data)

    def get(self, key: str) -> bytes:
        body: bytes = self.s3.get_object(Bucket=self.bucket, Key=f"lake/{key}")["Body"].read()
        return body

    def object_keys(self) -> list[str]:
        pages = self.s3.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix="lake/"
        )
        return sorted(o["Key"][len("lake/") :] for p in pages for o in p.get("Contents", []))


@pytest.fixture
def lake(moto: MotoServer, monkeypatch: pytest.MonkeyPatch) -> RunLake:
    for name, value in moto.lambda_environment().items():
        monkeypatch.setenv(name, value)
    return RunLake(moto)


def test_the_runs_files_are_moved_to_archive_and_rejected(lake: RunLake) -> None:
    summary = archive.handler(lake.event(), None)

    archived = f"archive/orders/{DAY}/{RUN_ID}/orders_1.csv"
    skipped = f"archive/products/{DAY}/{RUN_ID}/products.csv"
    rejected = f"rejected/{RUN_ID}/broken.csv"
    assert summary == {
        "run_id": RUN_ID,
        "lake_root": lake.root,
        "result_key": lake.result_key,
        "archived": 2,
        "rejected": 1,
        "left": 1,
        "files": [
            {
                "source_path": "raw-data/orders/orders_1.csv",
                "status": "loaded",
                "destination": archived,
            },
            {"source_path": "raw-data/products.csv", "status": "skipped", "destination": skipped},
            {
                "source_path": "raw-data/order_items/broken.csv",
                "status": "rejected",
                "destination": rejected,
            },
            {
                "source_path": "raw-data/orders/orders_2.csv",
                "status": "failed",
                "destination": None,
            },
        ],
    }
    json.dumps(summary)  # the state machine keeps it: JSON-serialisable
    assert lake.get(archived) == RAW["raw-data/orders/orders_1.csv"][0]
    assert lake.get(skipped) == RAW["raw-data/products.csv"][0]
    assert lake.get(rejected) == RAW["raw-data/order_items/broken.csv"][0]
    report = json.loads(lake.get(f"{rejected}.error.json"))
    assert report == {
        "run_id": RUN_ID,
        "source_path": "raw-data/order_items/broken.csv",
        "size_bytes": len(RAW["raw-data/order_items/broken.csv"][0]),
        "checksum": hashlib.sha256(RAW["raw-data/order_items/broken.csv"][0]).hexdigest(),
        "error": "not_utf8: the file is not UTF-8 text",
    }
    # The failed file and the file that arrived after discovery stay for the next run.
    assert [k for k in lake.object_keys() if k.startswith("raw-data/")] == [
        "raw-data/orders/orders_2.csv",
        LATE,
    ]


def test_a_second_invocation_reports_the_same_and_moves_nothing(lake: RunLake) -> None:
    first = archive.handler(lake.event(), None)
    keys = lake.object_keys()

    second = archive.handler(lake.event(), None)

    assert second == first
    assert lake.object_keys() == keys


def test_a_retry_after_a_crash_between_copy_and_delete_finishes_the_move(lake: RunLake) -> None:
    # The earlier attempt copied orders_1.csv and died before deleting the source.
    archived = f"archive/orders/{DAY}/{RUN_ID}/orders_1.csv"
    lake.put(archived, RAW["raw-data/orders/orders_1.csv"][0])

    summary = archive.handler(lake.event(), None)

    assert summary["files"][0]["destination"] == archived
    assert "raw-data/orders/orders_1.csv" not in lake.object_keys()
    assert lake.get(archived) == RAW["raw-data/orders/orders_1.csv"][0]


def test_a_file_uploaded_again_since_the_run_stays(lake: RunLake) -> None:
    lake.put("raw-data/orders/orders_1.csv", b"order_id,user_id\n1,7\n10,70\n")  # new content

    summary = archive.handler(lake.event(), None)

    assert summary["files"][0] == {
        "source_path": "raw-data/orders/orders_1.csv",
        "status": "loaded",
        "destination": None,
    }
    assert summary["left"] == 2
    assert lake.get("raw-data/orders/orders_1.csv") == b"order_id,user_id\n1,7\n10,70\n"
    assert not any(k.startswith("archive/orders/") for k in lake.object_keys())


def test_a_missing_result_is_a_clear_error(lake: RunLake) -> None:
    event = {
        **lake.event(),
        "run_id": "lakehouse-other",
        "result_key": "_runs/lakehouse-other.json",
    }

    with pytest.raises(RunResultMissing) as raised:
        archive.handler(event, None)

    assert str(raised.value) == (
        f"no result of run lakehouse-other at {lake.root}/_runs/lakehouse-other.json: "
        "the Glue job did not write one"
    )
    assert all(k in lake.object_keys() for k in RAW)  # nothing moved


def test_another_runs_result_is_refused(lake: RunLake) -> None:
    lake.put("_runs/other.json", json.dumps(lake.result(run_id="other")).encode())
    event = {**lake.event(), "result_key": "_runs/other.json"}

    with pytest.raises(InvalidRunResult, match="is the result of run 'other', not of run"):
        archive.handler(event, None)


def test_a_result_that_is_not_json_is_refused(lake: RunLake) -> None:
    lake.put(lake.result_key, b"{truncated")

    with pytest.raises(InvalidRunResult, match="is not JSON"):
        archive.handler(lake.event(), None)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"run_id": None}, "has no 'run_id'"),
        ({"lake_root": ""}, "has no 'lake_root'"),
        ({"result_key": "../elsewhere.json"}, "invalid result_key"),
    ],
)
def test_an_incomplete_event_is_refused(
    lake: RunLake, change: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidEvent, match=message):
        archive.handler({**lake.event(), **change}, None)


def test_a_skipped_file_goes_onto_the_copy_the_run_that_loaded_it_left(lake: RunLake) -> None:
    # An earlier run loaded products.csv, copied it to its archive and died before the
    # delete; the job planned this skipped file onto that copy (its ingest_log destination).
    earlier = "archive/products/2026/11/24/lakehouse-earlier/products.csv"
    lake.put(earlier, RAW["raw-data/products.csv"][0])
    planned = {"raw-data/products.csv": earlier}
    lake.put(lake.result_key, json.dumps(lake.result(destinations=planned)).encode())

    summary = archive.handler(lake.event(), None)

    assert summary["files"][1] == {
        "source_path": "raw-data/products.csv",
        "status": "skipped",
        "destination": earlier,
    }
    copies = [k for k in lake.object_keys() if k.endswith("/products.csv")]
    assert copies == [earlier]  # archived once, not a second time under this run


def test_a_planned_destination_outside_archive_and_rejected_is_not_followed(
    lake: RunLake,
) -> None:
    planned = {"raw-data/orders/orders_1.csv": "lakehouse-dwh/orders/part-0.parquet"}
    lake.put(lake.result_key, json.dumps(lake.result(destinations=planned)).encode())

    with pytest.raises(LakehouseError, match="not a key in archive/ or rejected/"):
        archive.handler(lake.event(), None)

    keys = lake.object_keys()
    assert "raw-data/orders/orders_1.csv" in keys
    assert not any(k.startswith("lakehouse-dwh/") for k in keys)
    assert f"archive/products/{DAY}/{RUN_ID}/products.csv" in keys  # the others still moved
