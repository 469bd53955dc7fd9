"""S3ObjectStorage beyond the storage contract: pages, large copies, concurrent changes."""

from __future__ import annotations

import hashlib

import pytest

from ecommerce_lakehouse.domain.errors import IntegrityError, LakehouseError
from ecommerce_lakehouse_aws import S3Location, S3ObjectStorage
from ecommerce_lakehouse_aws.settings import AwsSettings
from tests.aws_support import MotoServer

pytestmark = pytest.mark.aws


def storage(server: MotoServer, root: str, page_size: int = 1000) -> S3ObjectStorage:
    settings = AwsSettings.read(server.options(), {})
    return S3ObjectStorage(
        server.client("s3"),
        S3Location.parse(root),
        settings.storage_options(),
        page_size=page_size,
    )


def test_listing_follows_every_page(moto: MotoServer) -> None:
    lake = storage(moto, moto.new_lake(), page_size=2)
    keys = [f"raw-data/orders/orders_{n}.csv" for n in range(7)]
    for key in keys:
        lake.write_bytes(key, b"x")

    assert [info.key for info in lake.list("raw-data")] == sorted(keys)


def test_a_lake_at_the_bucket_root(moto: MotoServer) -> None:
    bucket = moto.new_bucket()
    lake = storage(moto, f"s3://{bucket}")
    lake.write_bytes("raw-data/products.csv", b"p")
    moto.client("s3").put_object(Bucket=bucket, Key="raw-data/folder/", Body=b"")  # a marker

    assert lake.root_uri == f"s3://{bucket}"
    assert lake.uri("raw-data/products.csv") == f"s3://{bucket}/raw-data/products.csv"
    assert [info.key for info in lake.list("")] == ["raw-data/products.csv"]


def test_a_large_object_is_moved_by_multipart_copy_and_verified(moto: MotoServer) -> None:
    lake = storage(moto, moto.new_lake())
    data = bytes(range(256)) * (40 * 1024 + 7)  # about 10 MiB: above the multipart threshold
    lake.write_bytes("raw-data/big.csv", data)

    lake.move("raw-data/big.csv", "archive/big.csv")

    assert not lake.exists("raw-data/big.csv")
    assert lake.checksum("archive/big.csv") == hashlib.sha256(data).hexdigest()


def test_a_source_rewritten_during_the_move_is_kept(
    moto: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake = storage(moto, moto.new_lake())
    lake.write_bytes("raw-data/orders.csv", b"first upload")
    copy = lake._copy

    def copy_then_upload_again(source: str, destination: str, etag: str) -> None:
        copy(source, destination, etag)
        lake.write_bytes("raw-data/orders.csv", b"second upload")  # a producer re-sends it

    monkeypatch.setattr(lake, "_copy", copy_then_upload_again)

    with pytest.raises(IntegrityError, match="changed while being moved") as raised:
        lake.move("raw-data/orders.csv", "archive/orders.csv")

    assert "\n" not in str(raised.value)
    assert lake.read_bytes("raw-data/orders.csv") == b"second upload"
    assert lake.read_bytes("archive/orders.csv") == b"first upload"


def test_other_s3_errors_are_one_line_lakehouse_errors(moto: MotoServer) -> None:
    lake = storage(moto, "s3://no-such-bucket-here/lake")

    with pytest.raises(LakehouseError, match="cannot write s3://no-such-bucket-here/lake/x: "):
        lake.write_bytes("x", b"x")
    with pytest.raises(LakehouseError, match="NoSuchBucket") as raised:
        lake.list("raw-data")

    assert "\n" not in str(raised.value)
