"""The S3 clients refuse a botocore too old for the lake's conditional requests.

botocore validates request parameters against the S3 model it bundles, so the lease lock's
``IfNoneMatch``/``IfMatch`` and the storage's ``DeleteObject(IfMatch=...)`` fail with a
``ParamValidationError`` on an SDK that predates them - and the Lambda and Glue runtimes
bring their own SDK. The clients check the loaded model when they are made. Real old
releases of boto3 and botocore are installed from PyPI into a throwaway directory and put
first on ``PYTHONPATH`` of a child interpreter: the minimum (1.35.69) passes; the release
before it (1.35.68: ``PutObject`` has ``IfNoneMatch`` but not yet ``IfMatch``) and 1.35.0
(none of the members) fail.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import botocore
import pytest

from ecommerce_lakehouse_aws import clients
from ecommerce_lakehouse_aws.settings import AwsSettings
from ecommerce_lakehouse_lambdas.clients import aws_client

ROOT = Path(__file__).resolve().parents[2]
#: s3transfer of the 1.35 line (boto3 1.35 needs >=0.10,<0.11; the pinned one is newer).
S3TRANSFER_OF_1_35 = "0.10.4"
#: What pip prints when no index can be reached (offline): the only reason to skip.
UNREACHABLE = ("from versions: none", "NewConnectionError", "Temporary failure in name resolution")

#: Makes an S3 client both ways (the adapters' make_client, the Lambdas' aws_client) and
#: prints, as JSON, the botocore version and each way's error (None when it succeeded).
PROBE = """
import json, sys
import botocore
from ecommerce_lakehouse.domain.errors import ConfigurationError
from ecommerce_lakehouse_aws.clients import make_client
from ecommerce_lakehouse_aws.settings import AwsSettings
from ecommerce_lakehouse_lambdas.clients import aws_client

def attempt(make):
    try:
        make()
    except ConfigurationError as error:
        return str(error)
    return None

settings = AwsSettings(region="eu-west-1", glue_database="shop", access_key_id="testing",
                       secret_access_key="testing")
print(json.dumps({
    "botocore": botocore.__version__,
    "botocore_file": botocore.__file__,
    "make_client": attempt(lambda: make_client("s3", settings)),
    "aws_client": attempt(lambda: aws_client("s3", "eu-west-1", None)),
    "glue": attempt(lambda: make_client("glue", settings)),
}))
"""


def pin(name: str) -> str:
    for line in (ROOT / "constraints.txt").read_text(encoding="utf-8").splitlines():
        found, sep, version = line.split("#", 1)[0].strip().partition("==")
        if sep and found == name:
            return version
    raise AssertionError(f"{name} is not pinned in constraints.txt")


@pytest.fixture(scope="session")
def old_sdk(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """A directory holding boto3 and botocore of a given release (installed once each)."""
    installed: dict[str, Path] = {}

    def install(version: str) -> Path:
        if version not in installed:
            target = tmp_path_factory.mktemp(f"sdk-{version}")
            # constraints.txt pins botocore 1.44.5: it must not apply to this install.
            env = {**os.environ, "PIP_CONSTRAINT": "", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
            done = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--no-deps",
                    "--target",
                    str(target),
                    f"boto3=={version}",
                    f"botocore=={version}",
                    f"s3transfer=={S3TRANSFER_OF_1_35}",
                ],
                capture_output=True,
                text=True,
                env=env,
                timeout=600,
                check=False,
            )
            if done.returncode != 0:
                if any(sign in done.stderr for sign in UNREACHABLE):
                    pytest.skip(f"PyPI is unreachable, cannot install botocore {version}")
                raise AssertionError(done.stderr)
            installed[version] = target
        return installed[version]

    return install


def probe(sdk: Path) -> dict[str, Any]:
    """Run :data:`PROBE` with ``sdk`` ahead of the virtual environment's boto3/botocore."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(sdk), str(ROOT)]),
        "PYTHONNOUSERSITE": "1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }
    env.pop("AWS_ENDPOINT_URL", None)
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result


def test_the_pinned_botocore_has_every_conditional_member() -> None:
    assert botocore.__version__ == pin("botocore")
    assert boto3.__version__ == pin("boto3")
    settings = AwsSettings(
        region="eu-west-1",
        glue_database="shop",
        access_key_id="testing",
        secret_access_key="testing",
    )
    client = clients.make_client("s3", settings)
    clients.require_conditional_s3(client)  # raises nothing
    model = client.meta.service_model
    for operation, members in clients.S3_CONDITIONAL_MEMBERS.items():
        assert set(members) <= set(model.operation_model(operation).input_shape.members)
    assert aws_client("s3", "eu-west-1", None).meta.service_model.service_name == "s3"


def test_the_minimum_botocore_passes_the_check(old_sdk: Callable[[str], Path]) -> None:
    sdk = old_sdk(clients.MINIMUM_BOTOCORE)
    result = probe(sdk)
    # The old release was imported, not the virtual environment's.
    assert result["botocore"] == clients.MINIMUM_BOTOCORE
    assert result["botocore_file"].startswith(str(sdk))
    assert result["make_client"] is None
    assert result["aws_client"] is None


@pytest.mark.parametrize(
    ("release", "lacks"),
    [
        # The release before the minimum: If-None-Match and conditional deletes, no If-Match.
        ("1.35.68", "PutObject.IfMatch"),
        # The first 1.35 release: no conditional writes or deletes at all.
        ("1.35.0", "PutObject.IfNoneMatch, PutObject.IfMatch, DeleteObject.IfMatch"),
    ],
)
def test_an_older_botocore_is_refused_in_one_line(
    old_sdk: Callable[[str], Path], release: str, lacks: str
) -> None:
    result = probe(old_sdk(release))
    assert result["botocore"] == release
    expected = (
        f"botocore {release} cannot send the lake's conditional S3 requests (its S3 model "
        f"lacks {lacks}): botocore {clients.MINIMUM_BOTOCORE} or newer is needed"
    )
    assert result["make_client"] == expected
    assert result["aws_client"] == expected
    assert "\n" not in expected
    # Only S3 clients are checked: a Glue client of the same SDK is made.
    assert result["glue"] is None


def test_the_minimum_is_the_release_after_the_newest_refused_one() -> None:
    major, minor, patch = clients.MINIMUM_BOTOCORE.split(".")
    assert (major, minor, int(patch) - 1) == ("1", "35", 68)
