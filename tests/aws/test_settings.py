"""AWS platform settings and lake roots: options, environment, validation (no emulator needed)."""

from __future__ import annotations

import pytest

from ecommerce_lakehouse.domain.errors import ConfigurationError, PathOutsideLake
from ecommerce_lakehouse.settings import LakeSettings, read_settings
from ecommerce_lakehouse_aws import AwsSettings, S3Location, platform_container

BASE = {"region": "eu-west-1", "glue_database": "lake"}


def settings(environ: dict[str, str] | None = None, **options: str) -> AwsSettings:
    return AwsSettings.read(options, environ or {})


def test_options_win_over_the_environment() -> None:
    environ = {
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-west-2",
        "LAKEHOUSE_GLUE_DATABASE": "from_env",
        "LAKEHOUSE_ATHENA_WORKGROUP": "analysts",
    }

    chosen = settings(environ, region="eu-west-1", glue_database="from_options")

    assert (chosen.region, chosen.glue_database) == ("eu-west-1", "from_options")
    assert chosen.athena_workgroup == "analysts"


def test_every_setting_can_come_from_the_environment() -> None:
    environ = {
        "AWS_DEFAULT_REGION": "eu-central-1",
        "AWS_ENDPOINT_URL": "https://s3.internal.example",
        "LAKEHOUSE_GLUE_DATABASE": "shop",
        "LAKEHOUSE_QUERY": "Athena",
        "LAKEHOUSE_ATHENA_WORKGROUP": "lakehouse",
        "LAKEHOUSE_ATHENA_OUTPUT": "s3://results/athena/",
        "LAKEHOUSE_ATHENA_TIMEOUT_SECONDS": "90",
        "LAKEHOUSE_LOCK_LEASE_SECONDS": "45.5",
    }

    assert settings(environ) == AwsSettings(
        region="eu-central-1",
        endpoint_url="https://s3.internal.example",
        glue_database="shop",
        query="athena",
        athena_workgroup="lakehouse",
        athena_output="s3://results/athena/",
        athena_timeout_seconds=90.0,
        lock_lease_seconds=45.5,
    )


def test_the_profile_region_is_the_last_resort() -> None:
    chosen = AwsSettings.read(
        {"glue_database": "lake"}, {}, profile_region=lambda: "ap-southeast-2"
    )

    assert chosen.region == "ap-southeast-2"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"glue_database": "lake"}, "no AWS region: set AWS_REGION"),
        ({"region": "eu-west-1"}, "no Glue database .*LAKEHOUSE_GLUE_DATABASE"),
        ({**BASE, "glue_database": "Shop-Lake"}, "invalid Glue database name 'Shop-Lake'"),
        ({**BASE, "query": "presto"}, "invalid 'query' 'presto'"),
        ({**BASE, "query": "athena"}, "Athena needs a result location"),
        ({**BASE, "athena_output": "/tmp/results"}, "invalid Athena output location"),
        ({**BASE, "endpoint_url": "localhost:5000"}, "invalid AWS endpoint"),
        ({**BASE, "access_key_id": "AKIA"}, "give both 'access_key_id' and"),
        ({**BASE, "lock_lease_seconds": "soon"}, "invalid 'lock_lease_seconds' 'soon'"),
        ({**BASE, "athena_timeout_seconds": "0"}, "'athena_timeout_seconds' must be a positive"),
    ],
)
def test_missing_or_invalid_settings_are_one_line_configuration_errors(
    options: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message) as raised:
        settings(**options)

    assert "\n" not in str(raised.value)


def test_storage_options_for_delta_rs() -> None:
    on_aws = settings(**BASE).storage_options()
    emulated = settings(
        **BASE,
        endpoint_url="http://127.0.0.1:5000",
        access_key_id="key",
        secret_access_key="secret",
        session_token="token",
    ).storage_options()

    assert on_aws == {"AWS_REGION": "eu-west-1", "AWS_CONDITIONAL_PUT": "etag"}
    assert emulated == {
        "AWS_REGION": "eu-west-1",
        "AWS_CONDITIONAL_PUT": "etag",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:5000",
        "AWS_ALLOW_HTTP": "true",
        "AWS_ACCESS_KEY_ID": "key",
        "AWS_SECRET_ACCESS_KEY": "secret",
        "AWS_SESSION_TOKEN": "token",
    }
    assert "AWS_ALLOW_HTTP" not in settings(**BASE, endpoint_url="https://x").storage_options()


@pytest.mark.parametrize(
    ("root", "bucket", "prefix", "uri"),
    [
        ("s3://shop-lake", "shop-lake", "", "s3://shop-lake"),
        ("s3://shop-lake/", "shop-lake", "", "s3://shop-lake"),
        ("s3://shop-lake/prod/lake/", "shop-lake", "prod/lake", "s3://shop-lake/prod/lake"),
        ("s3://shop.lake.2024/a//b/./c", "shop.lake.2024", "a/b/c", "s3://shop.lake.2024/a/b/c"),
    ],
)
def test_lake_roots_are_parsed(root: str, bucket: str, prefix: str, uri: str) -> None:
    location = S3Location.parse(root)

    assert (location.bucket, location.prefix, location.uri) == (bucket, prefix, uri)


def test_object_keys_stay_under_the_prefix() -> None:
    assert S3Location.parse("s3://lake-bucket/p").object_key("raw-data/x.csv") == "p/raw-data/x.csv"
    assert S3Location.parse("s3://lake-bucket").object_key("a/./b") == "a/b"
    with pytest.raises(PathOutsideLake):
        S3Location.parse("s3://lake-bucket/p").object_key("../other/x.csv")


@pytest.mark.parametrize(
    ("root", "message"),
    [
        ("/data/lake", "needs an s3://bucket"),
        ("s3://", "invalid S3 bucket name ''"),
        ("s3://Upper_Case/lake", "invalid S3 bucket name 'Upper_Case'"),
        ("s3://lake-bucket/../escape", "invalid prefix"),
    ],
)
def test_invalid_lake_roots_are_configuration_errors(root: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        platform_container(root, read_settings(LakeSettings, BASE, {}))
