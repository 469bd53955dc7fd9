"""boto3 clients of the Lambdas, made once per execution environment and reused."""

from __future__ import annotations

import functools

import boto3
from botocore.config import Config

from ecommerce_lakehouse_aws.clients import AwsClient, require_conditional_s3


@functools.cache
def aws_client(service: str, region: str, endpoint_url: str | None) -> AwsClient:
    """A boto3 client of ``service`` in ``region``, cached for later invocations.

    Credentials come from boto3's own chain (in Lambda: the function's role). Clients use
    the ``standard`` retry mode, which backs off on throttling and transient errors; with
    a custom endpoint S3 is addressed path-style, as emulators expect.

    Raises:
        ConfigurationError: the runtime's botocore is too old for the conditional S3
            requests of the archive moves (checked for ``s3`` clients; nothing is cached).
    """
    config = Config(
        retries={"mode": "standard", "max_attempts": 5},
        s3={"addressing_style": "path"} if endpoint_url else None,
    )
    session = boto3.session.Session()
    client = session.client(service, region_name=region, endpoint_url=endpoint_url, config=config)
    if service == "s3":
        # The Lambda runtime's own boto3 runs this code, not the project's pinned one.
        require_conditional_s3(client)
    return client
