"""Fixtures of the port contract suites: one parameter per adapter of each port.

To run a suite against a new adapter (S3ObjectStorage, GlueCatalogue, AthenaQueryService, an
S3 lock, ...), add a parameter to the port's fixture that builds the adapter and its harness
hooks; the tests themselves do not change.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import IO, Literal

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from ecommerce_lakehouse.application.lake import Lake, open_lake
from ecommerce_lakehouse.application.tables import TABLE_NAMES, table_ref
from ecommerce_lakehouse.domain.schemas import SCHEMAS
from ecommerce_lakehouse.ports.catalogue import Catalogue, TableDefinition
from ecommerce_lakehouse.ports.lock import Lock
from ecommerce_lakehouse.ports.platform import Platform
from ecommerce_lakehouse.ports.query import QueryService
from ecommerce_lakehouse.ports.storage import ObjectStorage
from tests.aws_support import shared_moto
from tests.fakes import InMemoryCatalogue, InMemoryLock, InMemoryObjectStorage
from tests.trino_support import shared_trino

Mutation = Callable[[bytes], bytes]


def local_platform(root: Path) -> Platform:
    """The local adapters of a lake directory, composed the way the product composes them."""
    return open_lake(str(root), options={"query": "duckdb"}).platform


def aws_platform(root: str, options: dict[str, str]) -> Platform:
    """The AWS adapters of an S3 lake on the moto server, composed the way the product does."""
    return open_lake(root, options={**options, "query": "duckdb"}).platform


#: Adapter cases that need the moto server (``pytest -m "not aws"`` leaves them out).
_AWS_CASES = frozenset({"s3", "glue"})


def _marks(name: str) -> tuple[pytest.MarkDecorator, ...]:
    return (pytest.mark.aws,) if name in _AWS_CASES else ()


@dataclass(frozen=True)
class StorageCase:
    """An ObjectStorage under test, with the hooks its suite needs.

    Attributes:
        storage: the adapter.
        corrupt_copies: make every later copy inside ``move`` apply a mutation, to prove
            that verification catches it.
        link_outside: create ``key`` as a symbolic link to a file outside the lake; None for
            stores without links (in memory, S3).
    """

    storage: ObjectStorage
    corrupt_copies: Callable[[Mutation], None]
    link_outside: Callable[[str], None] | None = None


@dataclass(frozen=True)
class CatalogueCase:
    """A Catalogue under test and a way to open the same catalogue afresh."""

    catalogue: Catalogue
    reopen: Callable[[], Catalogue]


@dataclass(frozen=True)
class LockCase:
    """A Lock under test and a way to get another handle on the same lake's lock.

    ``other()`` is what a second, concurrent run of the same lake would hold.
    """

    lock: Lock
    other: Callable[[], Lock]


@dataclass(frozen=True)
class QueryCase:
    """A QueryService under test and the storage its tables live in.

    Attributes:
        query: the adapter.
        storage: where the tables are written.
        registered: called with a table's key after each write, for services that find
            tables in a catalogue (Trino: the Glue registration a run makes).
        resolution: the finest timestamp the service returns (Trino reads a Delta
            ``timestamp`` as ``timestamp(3) with time zone``: milliseconds).
    """

    query: QueryService
    storage: ObjectStorage
    registered: Callable[[str], None] | None = None
    resolution: timedelta = timedelta(microseconds=1)

    def write(
        self,
        key: str,
        data: pa.Table,
        mode: Literal["append", "overwrite"] = "append",
        partition_by: list[str] | None = None,
    ) -> None:
        """Commit ``data`` to the Delta table at ``key`` (one new version)."""
        write_deltalake(
            self.storage.uri(key),
            data,
            mode=mode,
            partition_by=partition_by,
            storage_options=dict(self.storage.storage_options) or None,
        )
        if self.registered is not None:
            self.registered(key)


# ---------------------------------------------------------------- storage


def _in_memory_storage(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> StorageCase:
    storage = InMemoryObjectStorage()

    def corrupt(mutate: Mutation) -> None:
        monkeypatch.setattr(storage, "_copy", mutate)

    return StorageCase(storage=storage, corrupt_copies=corrupt)


def _local_storage(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> StorageCase:
    root = tmp_path / "lake"
    root.mkdir()
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"secret")

    def corrupt(mutate: Mutation) -> None:
        def copy(reader: IO[bytes], writer: IO[bytes], length: int = 0) -> None:
            writer.write(mutate(reader.read()))

        monkeypatch.setattr(shutil, "copyfileobj", copy)

    def link_outside(key: str) -> None:
        link = root / key
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(outside)

    return StorageCase(
        storage=local_platform(root).storage, corrupt_copies=corrupt, link_outside=link_outside
    )


def _s3_storage(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> StorageCase:
    server = shared_moto()
    storage = aws_platform(server.new_lake(), server.options()).storage
    client = server.client("s3")

    def corrupt(mutate: Mutation) -> None:
        # Replaces the server-side copy of move() with a download, mutation and upload.
        def copy(source: str, destination: str, etag: str) -> None:
            bucket = storage.root_uri.removeprefix("s3://").partition("/")[0]
            data = client.get_object(Bucket=bucket, Key=source)["Body"].read()
            client.put_object(Bucket=bucket, Key=destination, Body=mutate(data))

        monkeypatch.setattr(storage, "_copy", copy)

    return StorageCase(storage=storage, corrupt_copies=corrupt)


_STORAGES: dict[str, Callable[[pytest.MonkeyPatch, Path], StorageCase]] = {
    "in-memory": _in_memory_storage,
    "local": _local_storage,
    "s3": _s3_storage,
}


@pytest.fixture(params=[pytest.param(name, marks=_marks(name)) for name in sorted(_STORAGES)])
def storage_case(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> StorageCase:
    """Every ObjectStorage adapter in turn."""
    return _STORAGES[request.param](monkeypatch, tmp_path)


# ---------------------------------------------------------------- catalogue


def _in_memory_catalogue(tmp_path: Path) -> CatalogueCase:
    catalogue = InMemoryCatalogue()
    return CatalogueCase(
        catalogue=catalogue, reopen=lambda: InMemoryCatalogue(tables=catalogue.tables)
    )


def _sqlite_catalogue(tmp_path: Path) -> CatalogueCase:
    root = tmp_path / "lake"
    return CatalogueCase(
        catalogue=local_platform(root).catalogue, reopen=lambda: local_platform(root).catalogue
    )


def _glue_catalogue(tmp_path: Path) -> CatalogueCase:
    server = shared_moto()
    root, options = server.new_lake(), server.options()
    return CatalogueCase(
        catalogue=aws_platform(root, options).catalogue,
        reopen=lambda: aws_platform(root, options).catalogue,
    )


_CATALOGUES: dict[str, Callable[[Path], CatalogueCase]] = {
    "in-memory": _in_memory_catalogue,
    "sqlite": _sqlite_catalogue,
    "glue": _glue_catalogue,
}


@pytest.fixture(params=[pytest.param(name, marks=_marks(name)) for name in sorted(_CATALOGUES)])
def catalogue_case(request: pytest.FixtureRequest, tmp_path: Path) -> CatalogueCase:
    """Every Catalogue adapter in turn."""
    return _CATALOGUES[request.param](tmp_path)


# ---------------------------------------------------------------- lock


def _in_memory_lock(tmp_path: Path) -> LockCase:
    lock = InMemoryLock()
    # One process, one lake: every run shares the same in-memory lock.
    return LockCase(lock=lock, other=lambda: lock)


def _file_lock(tmp_path: Path) -> LockCase:
    root = tmp_path / "lake"
    # A second run builds its own platform; both lock the same <lake>/_lakehouse.lock file.
    return LockCase(lock=local_platform(root).lock, other=lambda: local_platform(root).lock)


def _s3_lock(tmp_path: Path) -> LockCase:
    server = shared_moto()
    root, options = server.new_lake(), server.options()
    # A second run builds its own platform; both lease the same <lake>/_lakehouse.lock object.
    return LockCase(
        lock=aws_platform(root, options).lock, other=lambda: aws_platform(root, options).lock
    )


_LOCKS: dict[str, Callable[[Path], LockCase]] = {
    "in-memory": _in_memory_lock,
    "file": _file_lock,
    "s3": _s3_lock,
}


@pytest.fixture(params=[pytest.param(name, marks=_marks(name)) for name in sorted(_LOCKS)])
def lock_case(request: pytest.FixtureRequest, tmp_path: Path) -> LockCase:
    """Every Lock adapter in turn."""
    return _LOCKS[request.param](tmp_path)


# ---------------------------------------------------------------- query


def _duckdb_query(tmp_path: Path) -> QueryCase:
    platform = local_platform(tmp_path / "lake")
    return QueryCase(query=platform.query, storage=platform.storage)


def _duckdb_s3_query(tmp_path: Path) -> QueryCase:
    # The aws platform's default query service: DuckDB here, tables read from S3 by delta-rs.
    server = shared_moto()
    platform = aws_platform(server.new_lake(), server.options())
    return QueryCase(query=platform.query, storage=platform.storage)


def _spark_query(tmp_path: Path) -> QueryCase:
    # The Spark engine's own query service: Spark SQL over the same Delta tables.
    platform = open_lake(str(tmp_path / "lake"), engine="spark").platform
    return QueryCase(query=platform.query, storage=platform.storage)


def _trino_query(tmp_path: Path) -> QueryCase:
    # Trino's Delta Lake catalog on moto's Glue and S3 (tests/trino_support.py): each table
    # is registered in the lake's Glue database once written, as a run registers it.
    moto_server = shared_moto()
    options = moto_server.options()
    lake = open_lake(
        moto_server.new_lake(),
        options={**options, "query": "trino", "trino_url": shared_trino(moto_server).endpoint},
    )
    # The database exists before any table is in it, as a deployed stack creates it.
    moto_server.client("glue").create_database(DatabaseInput={"Name": options["glue_database"]})

    def register(key: str) -> None:
        _register_in_glue(lake, key)

    return QueryCase(
        query=lake.platform.query,
        storage=lake.platform.storage,
        registered=register,
        resolution=timedelta(milliseconds=1),
    )


def _register_in_glue(lake: Lake, key: str) -> None:
    """Register the written table at ``key`` in the lake's catalogue, with its stored
    columns and partitioning."""
    storage = lake.platform.storage
    [name] = [n for n in TABLE_NAMES if table_ref(storage, n).uri == storage.uri(key)]
    ref = table_ref(storage, name)
    stored = DeltaTable(ref.uri, storage_options=dict(storage.storage_options))
    lake.platform.catalogue.register(
        TableDefinition(
            name=name,
            location=ref.uri,
            columns=lake.engine.columns(ref),
            partition_columns=tuple(stored.metadata().partition_columns),
            kind="curated" if name in {s.name for s in SCHEMAS} else "audit",
        )
    )


_QUERIES: dict[str, Callable[[Path], QueryCase]] = {
    "duckdb": _duckdb_query,
    "duckdb-s3": _duckdb_s3_query,
    "spark": _spark_query,
    "trino": _trino_query,
}
_QUERY_MARKS: dict[str, tuple[pytest.MarkDecorator, ...]] = {
    "spark": (pytest.mark.spark,),
    "duckdb-s3": (pytest.mark.aws,),
    "trino": (pytest.mark.aws, pytest.mark.trino),
}


@pytest.fixture(
    params=[pytest.param(name, marks=_QUERY_MARKS.get(name, ())) for name in sorted(_QUERIES)]
)
def query_case(request: pytest.FixtureRequest, tmp_path: Path) -> QueryCase:
    """Every QueryService adapter in turn, over an empty lake."""
    return _QUERIES[request.param](tmp_path)
