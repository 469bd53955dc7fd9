"""Object storage in Amazon S3: ``s3://bucket[/prefix]`` is the lake root."""

from __future__ import annotations

import builtins
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from botocore.exceptions import BotoCoreError, ClientError

from ecommerce_lakehouse.domain.errors import (
    ConfigurationError,
    IntegrityError,
    LakehouseError,
    PathOutsideLake,
)
from ecommerce_lakehouse.domain.zones import clean_key
from ecommerce_lakehouse.ports.storage import ObjectInfo, UnusableEntry
from ecommerce_lakehouse_aws.clients import (
    AwsClient,
    is_missing,
    is_precondition_failed,
    one_line,
)

# S3's rules for bucket names (3-63 characters; lower-case letters, digits, dots, hyphens).
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
#: Objects are hashed in chunks of this size, never read whole.
CHUNK_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True)
class S3Location:
    """A lake root in S3.

    Attributes:
        bucket: the bucket name.
        prefix: the folder inside the bucket without leading or trailing ``/`` (``""`` for
            the whole bucket).
    """

    bucket: str
    prefix: str = ""

    @classmethod
    def parse(cls, root: str) -> S3Location:
        """Parse ``s3://bucket[/prefix]``.

        Raises:
            ConfigurationError: not an ``s3://`` URI, an invalid bucket name, or a prefix
                with ``..``.
        """
        if not root.startswith("s3://"):
            raise ConfigurationError(
                f"the aws platform needs an s3://bucket[/prefix] root, not {root!r}"
            )
        bucket, _, prefix = root.removeprefix("s3://").partition("/")
        if not _BUCKET.fullmatch(bucket):
            raise ConfigurationError(f"invalid S3 bucket name {bucket!r} in lake root {root!r}")
        prefix = prefix.strip("/")
        if prefix:
            try:
                prefix = clean_key(prefix)
            except PathOutsideLake:
                raise ConfigurationError(f"invalid prefix in lake root {root!r}") from None
        return cls(bucket=bucket, prefix=prefix)

    @property
    def uri(self) -> str:
        """``s3://bucket`` or ``s3://bucket/prefix``."""
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    def object_key(self, key: str) -> str:
        """The S3 object key of a lake key (refusing keys that escape the root).

        Raises:
            PathOutsideLake: the key is empty, absolute or leaves the root.
        """
        cleaned = clean_key(key)
        return f"{self.prefix}/{cleaned}" if self.prefix else cleaned


@dataclass(frozen=True, slots=True)
class _Head:
    size: int
    etag: str


class S3ObjectStorage:
    r"""The lake's files under one S3 bucket and prefix.

    Keys are relative to the root; one that would leave it raises
    :class:`~ecommerce_lakehouse.domain.errors.PathOutsideLake`. A put replaces an object
    atomically (readers see the old or the new content), so writes need no temporary
    objects. Checksums are SHA-256 over the streamed content, never S3's ETag (an MD5 only
    for single-part uploads). Errors other than a missing object become one-line
    :class:`~ecommerce_lakehouse.domain.errors.LakehouseError`\\ s.

    Args:
        client: a boto3 S3 client.
        location: the lake root.
        storage_options: what delta-rs and Polars need to reach the same bucket (see
            :meth:`AwsSettings.storage_options
            <ecommerce_lakehouse_aws.settings.AwsSettings.storage_options>`).
        page_size: objects per listing request (S3 returns at most 1000).
    """

    def __init__(
        self,
        client: AwsClient,
        location: S3Location,
        storage_options: Mapping[str, str],
        *,
        page_size: int = 1000,
    ) -> None:
        self._client = client
        self._location = location
        self._options = dict(storage_options)
        self._page_size = page_size

    @property
    def location(self) -> S3Location:
        """The bucket and prefix of the lake root."""
        return self._location

    @property
    def root_uri(self) -> str:
        """``s3://bucket[/prefix]``."""
        return self._location.uri

    @property
    def storage_options(self) -> Mapping[str, str]:
        """Region, endpoint, credentials and the conditional-put setting for delta-rs."""
        return dict(self._options)

    def uri(self, key: str) -> str:
        """``s3://bucket/prefix/key``."""
        return f"s3://{self._location.bucket}/{self.object_key(key)}"

    def object_key(self, key: str) -> str:
        """The S3 object key of a lake key."""
        return self._location.object_key(key)

    def list(self, prefix: str) -> list[ObjectInfo]:
        """Every object under the folder ``prefix`` (recursively), sorted by key.

        Listing is paginated, so folders of any size are listed whole. Zero-byte "folder"
        markers (keys ending in ``/``, as the S3 console creates) are left out.
        """
        folder = self.object_key(prefix.rstrip("/")) + "/" if prefix.strip("/") else ""
        if not folder and self._location.prefix:
            folder = f"{self._location.prefix}/"
        strip = len(f"{self._location.prefix}/") if self._location.prefix else 0
        found: list[ObjectInfo] = []
        try:
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self._location.bucket,
                Prefix=folder,
                PaginationConfig={"PageSize": self._page_size},
            )
            for page in pages:
                for item in page.get("Contents", []):
                    if not item["Key"].endswith("/"):
                        found.append(
                            ObjectInfo(
                                key=item["Key"][strip:],
                                size_bytes=item["Size"],
                                version=str(item.get("ETag", "")) or None,
                            )
                        )
        except (ClientError, BotoCoreError) as error:
            raise self._failed("list", folder, error) from None
        return sorted(found, key=lambda info: info.key)

    def unusable(self, prefix: str) -> builtins.list[UnusableEntry]:
        """Nothing: S3 has no links or unreadable folders."""
        return []

    def remove_stale_temporaries(self, older_than: datetime) -> builtins.list[str]:
        """Nothing: puts and copies are atomic, so no temporary objects are ever written."""
        return []

    def info(self, key: str) -> ObjectInfo:
        """Size and ETag (the version) of an object, from one HEAD request.

        Raises:
            FileNotFoundError: no object at ``key``.
        """
        head = self._head(self.object_key(key))
        if head is None:
            raise FileNotFoundError(f"no object at {self.uri(key)}")
        return ObjectInfo(key=clean_key(key), size_bytes=head.size, version=head.etag)

    def exists(self, key: str) -> bool:
        """Whether an object exists at ``key``."""
        return self._head(self.object_key(key)) is not None

    def read_bytes(self, key: str) -> bytes:
        """The content of an object.

        Raises:
            FileNotFoundError: no object at ``key``.
        """
        name = self.object_key(key)
        try:
            body = self._client.get_object(Bucket=self._location.bucket, Key=name)["Body"]
            try:
                data: bytes = body.read()
            finally:
                body.close()
            return data
        except ClientError as error:
            if is_missing(error):
                raise FileNotFoundError(f"no object at {self.uri(key)}") from None
            raise self._failed("read", name, error) from None
        except BotoCoreError as error:
            raise self._failed("read", name, error) from None

    def write_bytes(self, key: str, data: bytes) -> None:
        """Create or replace an object (a single atomic put)."""
        name = self.object_key(key)
        try:
            self._client.put_object(Bucket=self._location.bucket, Key=name, Body=bytes(data))
        except (ClientError, BotoCoreError) as error:
            raise self._failed("write", name, error) from None

    def checksum(self, key: str) -> str:
        """SHA-256 hex digest of an object, streamed in chunks.

        Raises:
            FileNotFoundError: no object at ``key``.
        """
        return self._digest(self.object_key(key))[1]

    def move(
        self,
        source: str,
        destination: str,
        *,
        checksum: str | None = None,
        version: str | None = None,
    ) -> None:
        """Copy, verify (same size and SHA-256), then delete the source.

        S3 copies server-side (multipart for large objects) and only the version that was
        hashed (``CopySourceIfMatch``); the copy is then read back and hashed. The source is
        deleted only while it still has that ETag (``IfMatch``), so content uploaded again
        under the same key meanwhile is never lost.

        When ``version`` (with ``checksum``) is the source's current ETag, the source is
        known to hold ``checksum`` and is not read: only its copy is hashed (against
        ``checksum``), and the copy and the delete stay conditional on that ETag.

        Raises:
            IntegrityError: the source is not ``checksum``, the copy differs from the source
                (the copy is removed and the source kept), a different object already exists
                at ``destination``, or the source changed during the move.
            FileNotFoundError: neither the source nor the destination exists.
        """
        src, dst = self.object_key(source), self.object_key(destination)
        if src == dst:
            if self._head(src) is None:
                raise FileNotFoundError(f"cannot move {source!r}: it does not exist")
            return
        try:
            size, digest, etag = self._known(src, checksum, version) or self._digest(src)
        except FileNotFoundError:
            if self._head(dst) is not None:
                return  # a retried move: the earlier attempt finished the copy and delete
            raise FileNotFoundError(f"cannot move {source!r}: it does not exist") from None
        if checksum is not None and digest != checksum:
            raise IntegrityError(
                f"cannot move {source!r}: its content changed since it was read; "
                "the source was kept"
            )
        existing = self._head(dst)
        if existing is not None:
            if existing.size != size or self._digest(dst)[1] != digest:
                raise IntegrityError(
                    f"cannot move {source!r}: a different file already exists at {destination!r}"
                )
            # An identical copy is already in place (e.g. a crash before the delete).
            self._delete_source(src, etag, source, destination)
            return
        try:
            self._copy(src, dst, etag)
        except ClientError as error:
            if is_precondition_failed(error):
                raise IntegrityError(
                    f"cannot move {source!r}: it changed while being copied; the source was kept"
                ) from None
            raise self._failed("copy", src, error) from None
        except BotoCoreError as error:
            raise self._failed("copy", src, error) from None
        copied_size, copied_digest, copied_etag = self._digest(dst)
        if (copied_size, copied_digest) != (size, digest):
            self._delete(dst, copied_etag)
            raise IntegrityError(
                f"copy of {source!r} to {destination!r} failed verification "
                f"(size {copied_size} vs {size}, sha256 {copied_digest[:12]} vs "
                f"{digest[:12]}); the source was kept"
            )
        self._delete_source(src, etag, source, destination)

    def _known(
        self, name: str, checksum: str | None, version: str | None
    ) -> tuple[int, str, str] | None:
        """Size, SHA-256 and ETag of the object when it still has the ETag ``version``.

        That ETag was taken when ``checksum`` was, so the content is known without a read.
        None when there is nothing to go by, or the object has another ETag.
        """
        if checksum is None or version is None:
            return None
        head = self._head(name)
        if head is None:
            raise FileNotFoundError(f"no object at s3://{self._location.bucket}/{name}")
        return (head.size, checksum, head.etag) if head.etag == version else None

    def delete(self, key: str) -> None:
        """Delete an object; nothing happens when it does not exist."""
        self._delete(self.object_key(key), None)

    def _copy(self, source: str, destination: str, etag: str) -> None:
        # The copy step of move(); tests replace it to simulate a corrupted copy.
        self._client.copy(
            CopySource={"Bucket": self._location.bucket, "Key": source},
            Bucket=self._location.bucket,
            Key=destination,
            ExtraArgs={"CopySourceIfMatch": etag},
        )

    def _delete_source(self, name: str, etag: str, source: str, destination: str) -> None:
        try:
            self._client.delete_object(Bucket=self._location.bucket, Key=name, IfMatch=etag)
        except ClientError as error:
            if is_missing(error):
                return
            if is_precondition_failed(error):
                raise IntegrityError(
                    f"{source!r} changed while being moved: its earlier content is verified at "
                    f"{destination!r} and the new content was kept"
                ) from None
            raise self._failed("delete", name, error) from None
        except BotoCoreError as error:
            raise self._failed("delete", name, error) from None

    def _delete(self, name: str, etag: str | None) -> None:
        condition = {} if etag is None else {"IfMatch": etag}
        try:
            self._client.delete_object(Bucket=self._location.bucket, Key=name, **condition)
        except ClientError as error:
            if not (is_missing(error) or is_precondition_failed(error)):
                raise self._failed("delete", name, error) from None
        except BotoCoreError as error:
            raise self._failed("delete", name, error) from None

    def _head(self, name: str) -> _Head | None:
        try:
            head = self._client.head_object(Bucket=self._location.bucket, Key=name)
        except ClientError as error:
            if is_missing(error):
                return None
            raise self._failed("read", name, error) from None
        except BotoCoreError as error:
            raise self._failed("read", name, error) from None
        return _Head(size=int(head["ContentLength"]), etag=str(head["ETag"]))

    def _digest(self, name: str) -> tuple[int, str, str]:
        """Size, SHA-256 and ETag of one version of an object, read in chunks."""
        hasher = hashlib.sha256()
        size = 0
        try:
            response = self._client.get_object(Bucket=self._location.bucket, Key=name)
            body = response["Body"]
            try:
                for chunk in body.iter_chunks(CHUNK_BYTES):
                    hasher.update(chunk)
                    size += len(chunk)
            finally:
                body.close()
        except ClientError as error:
            if is_missing(error):
                raise FileNotFoundError(
                    f"no object at s3://{self._location.bucket}/{name}"
                ) from None
            raise self._failed("read", name, error) from None
        except BotoCoreError as error:
            raise self._failed("read", name, error) from None
        return size, hasher.hexdigest(), str(response["ETag"])

    def _failed(self, action: str, name: str, error: ClientError | BotoCoreError) -> LakehouseError:
        return LakehouseError(
            f"cannot {action} s3://{self._location.bucket}/{name}: {one_line(error)}"
        )
