"""Which query service a lake is composed with, and how a local Spark session reaches S3."""

from __future__ import annotations

import pytest

from ecommerce_lakehouse.application.lake import _query_service
from ecommerce_lakehouse.domain.errors import ConfigurationError
from ecommerce_lakehouse.settings import LakeSettings
from ecommerce_lakehouse_spark.session import s3a_settings


class _Containers:
    """Containers as the composition sees them: providers by name."""

    def __init__(self, own: tuple[str, ...] = (), **services: str) -> None:
        self._own = own
        for name, service in services.items():
            setattr(self, name, lambda service=service: service)

    def query_services(self) -> tuple[str, ...]:
        return self._own

    def shutdown_resources(self) -> None:
        pass


LOCAL = _Containers(duckdb="duckdb on this machine")
AWS = _Containers(duckdb="duckdb over s3", athena="athena")
POLARS = _Containers()
SPARK = _Containers(("spark",), spark="spark sql")


@pytest.mark.parametrize(
    ("platform", "engine", "query", "chosen"),
    [
        (LOCAL, POLARS, None, "duckdb on this machine"),
        (LOCAL, SPARK, None, "spark sql"),
        (LOCAL, SPARK, "duckdb", "duckdb on this machine"),
        (AWS, POLARS, None, "duckdb over s3"),
        (AWS, POLARS, "athena", "athena"),
        (AWS, SPARK, None, "spark sql"),
        (AWS, SPARK, "athena", "athena"),
    ],
)
def test_the_query_setting_else_the_engine_s_own_sql_else_duckdb(
    platform: _Containers, engine: _Containers, query: str | None, chosen: str
) -> None:
    settings = LakeSettings(query=query)
    assert _query_service(settings, platform, engine) == chosen  # type: ignore[arg-type]


def test_spark_sql_without_the_spark_engine_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="choose the engine spark"):
        _query_service(LakeSettings(query="spark"), AWS, POLARS)  # type: ignore[arg-type]


def test_athena_on_a_directory_lake_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="needs an s3:// lake"):
        _query_service(LakeSettings(query="athena"), LOCAL, POLARS)  # type: ignore[arg-type]


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
