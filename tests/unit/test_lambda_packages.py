"""The Lambdas without AWS: what they import, their settings, names and result parsing."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from typing import Any

import pytest

from ecommerce_lakehouse.domain.errors import ConfigurationError
from ecommerce_lakehouse.domain.types import FileStatus
from ecommerce_lakehouse.settings import LakeSettings, info_of, read_settings, settings_fields
from ecommerce_lakehouse_glue.job import GlueJobSettings
from ecommerce_lakehouse_lambdas import trigger
from ecommerce_lakehouse_lambdas.archive import read_run_result
from ecommerce_lakehouse_lambdas.errors import InvalidEvent, InvalidRunResult
from ecommerce_lakehouse_lambdas.settings import ArchiveSettings, TriggerSettings
from ecommerce_lakehouse_lambdas.trigger import ObjectEvent, execution_name

#: What the Lambda zips leave out (they hold our pure packages and boto3 only).
HEAVY = (
    "polars",
    "pyspark",
    "deltalake",
    "pyarrow",
    "duckdb",
    "dependency_injector",
    "ecommerce_lakehouse_polars",
    "ecommerce_lakehouse_spark",
    "ecommerce_lakehouse_local",
    "ecommerce_lakehouse_aws.containers",
    "ecommerce_lakehouse_aws.query",
)

ARN = "arn:aws:states:eu-west-1:123456789012:stateMachine:lakehouse"


def test_the_handlers_import_no_engine_pyarrow_duckdb_or_di_framework() -> None:
    code = (
        "import json, sys\n"
        "import ecommerce_lakehouse_lambdas.trigger, ecommerce_lakehouse_lambdas.archive\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    modules = json.loads(done.stdout)
    loaded = [m for m in modules if any(m == h or m.startswith(f"{h}.") for h in HEAVY)]
    assert loaded == []
    assert "boto3" in modules and "ecommerce_lakehouse_aws.storage" in modules


def test_missing_trigger_settings_are_one_clear_error() -> None:
    with pytest.raises(ConfigurationError) as raised:
        TriggerSettings.from_env({})
    assert str(raised.value) == "missing setting lake: set LAKEHOUSE_LAKE"
    with pytest.raises(ConfigurationError, match="LAKEHOUSE_STATE_MACHINE_ARN"):
        TriggerSettings.from_env({"LAKEHOUSE_LAKE": "s3://shop-lake/lake"})
    # The old name is no longer read.
    with pytest.raises(ConfigurationError, match=r"LAKEHOUSE_LAKE$"):
        TriggerSettings.from_env(
            {"LAKEHOUSE_LAKE_ROOT": "s3://shop-lake/lake", "LAKEHOUSE_STATE_MACHINE_ARN": ARN}
        )


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"LAKEHOUSE_LAKE": "/data/lake"}, "needs an s3://bucket"),
        ({"LAKEHOUSE_STATE_MACHINE_ARN": "lakehouse"}, "invalid LAKEHOUSE_STATE_MACHINE_ARN"),
        ({"AWS_ENDPOINT_URL": "localhost:5000"}, r"invalid LAKEHOUSE_ENDPOINT_URL \(or AWS_"),
        ({"LAKEHOUSE_ENDPOINT_URL": "localhost:5000"}, "invalid LAKEHOUSE_ENDPOINT_URL"),
    ],
)
def test_malformed_trigger_settings_are_refused(environ: dict[str, str], message: str) -> None:
    valid = {"LAKEHOUSE_LAKE": "s3://shop-lake/lake", "LAKEHOUSE_STATE_MACHINE_ARN": ARN}
    with pytest.raises(ConfigurationError, match=message) as raised:
        TriggerSettings.from_env({**valid, **environ})
    assert "\n" not in str(raised.value)


def test_trigger_settings_read_the_region_from_the_state_machine() -> None:
    settings = TriggerSettings.from_env(
        {"LAKEHOUSE_LAKE": " s3://shop-lake/lake/ ", "LAKEHOUSE_STATE_MACHINE_ARN": ARN}
    )
    assert (settings.location.bucket, settings.location.prefix) == ("shop-lake", "lake")
    assert settings.location.uri == "s3://shop-lake/lake"
    assert settings.region == "eu-west-1"
    assert settings.endpoint_url is None
    assert settings.execution_arn("run-1") == (
        "arn:aws:states:eu-west-1:123456789012:execution:lakehouse:run-1"
    )
    assert settings == read_settings(
        TriggerSettings,
        {},
        {"LAKEHOUSE_LAKE": "s3://shop-lake/lake/", "LAKEHOUSE_STATE_MACHINE_ARN": ARN},
    )


@pytest.mark.parametrize("cls", [TriggerSettings, ArchiveSettings])
def test_the_lambdas_endpoint_is_lakehouse_endpoint_url_then_aws_endpoint_url(
    cls: type[TriggerSettings | ArchiveSettings],
) -> None:
    base = {
        "LAKEHOUSE_LAKE": "s3://shop-lake",
        "LAKEHOUSE_STATE_MACHINE_ARN": ARN,
        "AWS_REGION": "eu-west-1",
        "AWS_ENDPOINT_URL": "http://aws:4566",
    }
    assert cls.from_env(base).endpoint_url == "http://aws:4566"
    both = {**base, "LAKEHOUSE_ENDPOINT_URL": "https://lake:9000"}
    assert cls.from_env(both).endpoint_url == "https://lake:9000"


def test_the_archive_function_needs_a_region() -> None:
    assert ArchiveSettings.from_env({"AWS_DEFAULT_REGION": "us-east-2"}).region == "us-east-2"
    environ = {"AWS_DEFAULT_REGION": "us-east-2", "AWS_REGION": "eu-west-1"}
    assert ArchiveSettings.from_env(environ).region == "eu-west-1"
    assert ArchiveSettings.from_env({**environ, "LAKEHOUSE_REGION": "eu-north-1"}).region == (
        "eu-north-1"
    )
    with pytest.raises(ConfigurationError, match=r"missing setting region: .* AWS_REGION"):
        ArchiveSettings.from_env({})


@pytest.mark.parametrize("cls", [TriggerSettings, ArchiveSettings])
def test_the_lambdas_settings_mean_what_the_same_settings_of_the_lake_mean(
    cls: type[TriggerSettings | ArchiveSettings],
) -> None:
    # The settings table has one row per name: a shared name has one meaning and the same
    # variables.
    known = {
        f.name: info_of(f)
        for settings in (GlueJobSettings, LakeSettings)
        for f in settings_fields(settings)
    }
    for field in settings_fields(cls):
        info = info_of(field)
        assert not info.flag and not info.job and info.env, field.name
        if field.name in known:
            assert info.meaning == known[field.name].meaning, field.name
            if known[field.name].aws_env:
                assert info.aws_env == known[field.name].aws_env, field.name


def test_execution_names_are_deterministic_valid_and_distinct() -> None:
    name = execution_name(
        [("shop-lake", "lake/raw-data/orders 1.csv", '"9b2cf535f27731c974343645a3985328"')]
    )

    assert name == execution_name(
        [("shop-lake", "lake/raw-data/orders 1.csv", "9b2cf535f27731c974343645a3985328")]
    )
    assert re.fullmatch(r"lakehouse-[0-9a-f]{40}", name) and len(name) <= 80
    others = {
        execution_name([("other-lake", "lake/raw-data/orders 1.csv", "9b2c")]),
        execution_name([("shop-lake", "lake/raw-data/orders 2.csv", "9b2c")]),
        execution_name([("shop-lake", "lake/raw-data/orders 1.csv", "9b2d")]),
        execution_name([("shop-lake", "lake/raw-data/orders 1.csv", "9b2c")] * 2),
    }
    assert len(others) == 4 and name not in others
    with pytest.raises(ValueError, match="at least one object"):
        execution_name([])


def test_s3_keys_are_url_decoded() -> None:
    record = {
        "eventName": "ObjectCreated:Put",
        "s3": {
            "bucket": {"name": "shop-lake"},
            "object": {"key": "lake/raw-data/orders+2026%2B%C3%A9t%C3%A9.csv", "eTag": "abc"},
        },
    }
    event = ObjectEvent.from_record(record, 0)
    assert event.key == "lake/raw-data/orders 2026+été.csv"
    assert (event.etag, event.size) == ("abc", None)


@pytest.mark.parametrize(
    "event",
    [[], {"Records": "nope"}, {"Records": [{"eventName": "ObjectCreated:Put", "s3": {}}]}],
)
def test_events_that_are_not_s3_notifications_are_refused(event: Any) -> None:
    settings = TriggerSettings.from_env(
        {"LAKEHOUSE_LAKE": "s3://shop-lake", "LAKEHOUSE_STATE_MACHINE_ARN": ARN}
    )
    with pytest.raises(InvalidEvent):
        trigger.Trigger(client=None, settings=settings)(event)


def result(**changes: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "run_id": "run-1",
        "started_at": "2026-11-25T19:38:00+00:00",
        "finished_at": "2026-11-25T19:40:00+00:00",
        "files": [
            {
                "source_path": "raw-data/orders/orders_1.csv",
                "entity": "orders",
                "status": "loaded",
                "checksum": "ab" * 32,
                "size_bytes": 10,
                "destination": None,
                "error": None,
                "rows_read": 2,
                "inserted": 2,
                "updated": 0,
                "unchanged": 0,
                "duplicates_in_batch": 0,
                "quarantined": 0,
            }
        ],
    }
    document.update(changes)
    return document


def test_a_run_result_becomes_file_outcomes() -> None:
    run = read_run_result(result(), run_id="run-1", where="s3://l/_runs/run-1.json")
    (outcome,) = run.files
    assert run.started_at.isoformat() == "2026-11-25T19:38:00+00:00"
    assert outcome.file.key == "raw-data/orders/orders_1.csv"
    assert outcome.status is FileStatus.LOADED
    assert outcome.counts.inserted == 2


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"run_id": "run-2"}, "is the result of run 'run-2', not of run 'run-1'"),
        ({"started_at": None}, "'started_at' is not an ISO timestamp"),
        ({"files": {}}, "'files' is not a list"),
        ({"files": [{"source_path": "x.csv"}]}, "'size_bytes' is not an integer"),
        (
            {"files": [{**result()["files"][0], "status": "moved"}]},
            "invalid file status 'moved'",
        ),
    ],
)
def test_malformed_run_results_are_one_clear_error(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidRunResult, match=re.escape(message)) as raised:
        read_run_result(result(**changes), run_id="run-1", where="s3://l/_runs/run-1.json")
    assert "\n" not in str(raised.value)


def test_a_run_result_of_a_newer_release_is_refused() -> None:
    with pytest.raises(InvalidRunResult, match="version 2, written by a newer release"):
        read_run_result(result(version=2), run_id="run-1", where="s3://l/_runs/run-1.json")


def test_a_run_result_without_a_version_is_version_one() -> None:
    document = result()
    document.pop("version", None)
    assert read_run_result(document, run_id="run-1", where="-").run_id == "run-1"
