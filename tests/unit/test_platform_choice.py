"""Which platform a lake root and engine select, and how a local Spark session reaches S3."""

from __future__ import annotations

import pytest

from ecommerce_lakehouse.application.platform import platform_name_for
from ecommerce_lakehouse.domain.errors import ConfigurationError
from ecommerce_lakehouse_aws import create_platform
from ecommerce_lakehouse_spark.session import s3a_settings


@pytest.mark.parametrize(
    ("root", "engine", "platform"),
    [
        ("/data/lake", "polars", "local"),
        ("/data/lake", "spark", "spark-local"),
        ("s3://bucket/lake", "polars", "aws"),
        ("s3://bucket/lake", "spark", "spark-aws"),
        ("s3://bucket", "other", "aws"),
    ],
)
def test_the_engine_s_own_platform_is_chosen_when_installed(
    root: str, engine: str, platform: str
) -> None:
    assert platform_name_for(root, engine) == platform


def test_spark_sql_on_the_plain_aws_platform_is_a_configuration_error() -> None:
    options = {"region": "eu-west-1", "glue_database": "shop", "query": "spark"}
    with pytest.raises(ConfigurationError, match="use --engine spark"):
        create_platform("s3://bucket/lake", options)


def test_s3a_gets_the_emulator_endpoint_and_explicit_keys() -> None:
    settings = s3a_settings(
        {
            "AWS_REGION": "eu-west-1",
            "AWS_ENDPOINT_URL": "http://127.0.0.1:5000",
            "AWS_ACCESS_KEY_ID": "key",
            "AWS_SECRET_ACCESS_KEY": "secret",
            "AWS_CONDITIONAL_PUT": "etag",
        }
    )
    assert settings == {
        "fs.s3.impl": "org.apache.hadoop.fs.s3a.S3AFileSystem",
        "fs.s3a.endpoint.region": "eu-west-1",
        "fs.s3a.endpoint": "http://127.0.0.1:5000",
        "fs.s3a.path.style.access": "true",
        "fs.s3a.connection.ssl.enabled": "false",
        "fs.s3a.access.key": "key",
        "fs.s3a.secret.key": "secret",
        "fs.s3a.aws.credentials.provider": "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider",
    }


def test_s3a_uses_its_default_credential_chain_on_aws() -> None:
    # No keys given: the environment, profile or instance role (never a stored secret).
    assert s3a_settings({"AWS_REGION": "us-east-1"}) == {
        "fs.s3.impl": "org.apache.hadoop.fs.s3a.S3AFileSystem",
        "fs.s3a.endpoint.region": "us-east-1",
    }


def test_temporary_credentials_carry_their_session_token() -> None:
    settings = s3a_settings(
        {"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s", "AWS_SESSION_TOKEN": "t"}
    )
    assert settings["fs.s3a.session.token"] == "t"
    assert settings["fs.s3a.aws.credentials.provider"].endswith("TemporaryAWSCredentialsProvider")
