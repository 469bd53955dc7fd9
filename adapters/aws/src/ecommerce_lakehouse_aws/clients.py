"""boto3 clients of the AWS platform, and reading their errors as one line."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import boto3
import botocore
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from ecommerce_lakehouse.domain.errors import ConfigurationError, first_line
from ecommerce_lakehouse_aws.settings import AwsSettings

#: A boto3 client; botocore builds its methods at run time, so there is no static type.
AwsClient = Any

#: The first botocore whose S3 model has every conditional request member below: 1.35.68
#: still lacks ``PutObject.IfMatch`` (read from ``botocore/data/s3/2006-03-01/service-2.json``
#: of each release; tests/aws/test_sdk_requirements.py installs both to prove it).
MINIMUM_BOTOCORE = "1.35.69"

#: The S3 request members the lake lock (``If-None-Match: *``, ``If-Match``) and the
#: storage's moves (``DeleteObject`` with ``If-Match``) send, by operation.
S3_CONDITIONAL_MEMBERS: Mapping[str, tuple[str, ...]] = {
    "PutObject": ("IfNoneMatch", "IfMatch"),
    "DeleteObject": ("IfMatch",),
}

# One boto3 session per set of credentials (see make_client).
_SESSIONS: dict[tuple[str | None, ...], Any] = {}
_SESSIONS_GUARD = threading.Lock()


def make_client(service: str, settings: AwsSettings) -> AwsClient:
    """A boto3 client of ``service`` (``s3``, ``glue``, ``athena``) for these settings.

    Clients use the ``standard`` retry mode, which backs off on throttling and transient
    errors. With a custom endpoint S3 is addressed path-style (``endpoint/bucket/key``),
    which emulators and S3-compatible stores expect.

    Raises:
        ConfigurationError: an S3 client's botocore is too old for the lake's conditional
            requests (:func:`require_conditional_s3`).
    """
    config = Config(
        retries={"mode": "standard", "max_attempts": 5},
        s3={"addressing_style": "path"} if settings.endpoint_url else None,
    )
    credentials = (
        settings.region,
        settings.access_key_id,
        settings.secret_access_key,
        settings.session_token,
    )
    # One session per set of credentials: a session caches the service models it loaded
    # (a new one reads them from disk again). Sessions are not thread-safe, so clients are
    # made under a lock; the clients themselves are.
    with _SESSIONS_GUARD:
        session = _SESSIONS.get(credentials)
        if session is None:
            session = boto3.session.Session(
                aws_access_key_id=settings.access_key_id,
                aws_secret_access_key=settings.secret_access_key,
                aws_session_token=settings.session_token,
                region_name=settings.region,
            )
            _SESSIONS[credentials] = session
        client = session.client(service, endpoint_url=settings.endpoint_url, config=config)
    if service == "s3":
        require_conditional_s3(client)
    return client


def require_conditional_s3(client: AwsClient) -> None:
    """Check that an S3 client's SDK can send the lake's conditional writes and deletes.

    botocore validates request parameters against the S3 model it bundles, so an older one
    (as a Lambda or Glue runtime may ship) would refuse the lock's first ``IfNoneMatch`` with
    a ``ParamValidationError``. The loaded model is checked, not the version string: it is
    what botocore validates against, whatever the version says.

    Raises:
        ConfigurationError: the model lacks a member of :data:`S3_CONDITIONAL_MEMBERS`.
    """
    model = client.meta.service_model
    missing = [
        f"{operation}.{member}"
        for operation, members in S3_CONDITIONAL_MEMBERS.items()
        for member in members
        if member not in model.operation_model(operation).input_shape.members
    ]
    if missing:
        raise ConfigurationError(
            f"botocore {botocore.__version__} cannot send the lake's conditional S3 requests "
            f"(its S3 model lacks {', '.join(missing)}): botocore {MINIMUM_BOTOCORE} or newer "
            "is needed"
        )


def error_code(error: ClientError) -> str:
    """The AWS error code of a failed call, e.g. ``NoSuchKey`` or ``PreconditionFailed``."""
    return str(error.response.get("Error", {}).get("Code", ""))


def http_status(error: ClientError) -> int:
    """The HTTP status of a failed call (0 when unknown)."""
    return int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


def is_missing(error: ClientError) -> bool:
    """Whether a failed S3 call means the object (or bucket) does not exist."""
    return http_status(error) == 404 or error_code(error) in {"NoSuchKey", "404", "NotFound"}


def is_precondition_failed(error: ClientError) -> bool:
    """Whether a conditional S3 write or delete lost.

    Either its ETag condition did not hold (412), or a concurrent conditional write on the
    same key won (409 ``ConditionalRequestConflict``).
    """
    return http_status(error) in (409, 412) or error_code(error) in {
        "PreconditionFailed",
        "ConditionalRequestConflict",
    }


def one_line(error: ClientError | BotoCoreError) -> str:
    """A failed call as one line: ``Code: message`` for service errors."""
    if isinstance(error, ClientError):
        details = error.response.get("Error", {})
        message = str(details.get("Message") or "").strip()
        code = error_code(error)
        text = f"{code}: {message}" if code and message else message or code or str(error)
    else:
        text = str(error)
    return first_line(text, default=type(error).__name__)
