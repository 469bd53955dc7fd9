"""The Polars engine checks an S3 object's first bytes before it parses it (moto).

On a local lake the engine reads a file's header line in chunks and rejects a compressed
file, a header over the read limits or bare-CR line endings before ``pl.read_csv`` runs.
These tests prove the same holds for ``s3://`` lakes: the leading bytes are streamed from
S3 (only as far as the check needs) and Polars never parses a rejected object; a gzip
object named ``.csv`` is rejected, not silently decompressed and loaded.

One lake, one run (discover, ingest, archive) on an engine with small read limits; every
test checks its own file. A spy counts the bytes the header check took from each object and
the ``pl.read_csv`` calls on it.
"""

from __future__ import annotations

import gzip
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import polars as pl
import pytest
from deltalake import DeltaTable

import ecommerce_lakehouse_polars.reader as polars_reader
from ecommerce_lakehouse.application.lake import Lake, open_lake
from ecommerce_lakehouse.application.run import RunOptions, RunResult
from ecommerce_lakehouse.domain.headers import HEADER_CHUNK_BYTES, ReadLimits
from ecommerce_lakehouse.domain.schemas import PRODUCTS
from ecommerce_lakehouse.domain.types import SchemaEvolution
from ecommerce_lakehouse.ports.engine import SourceFile
from ecommerce_lakehouse_polars.engine import PolarsDeltaTableEngine
from tests.aws_support import MotoServer

pytestmark = pytest.mark.aws

HEADER = "product_id,department_id,department,product_name"
LIMITS = ReadLimits(max_columns=6, max_field_bytes=1 << 16)
STEPS = ("discover", "ingest", "archive")

NORMAL = "raw-data/products/products_ok.csv"
GZIP = "raw-data/products/products_gzip.csv"
WIDE = "raw-data/products/products_wide.csv"
HUGE_HEADER = "raw-data/products/products_huge_header.csv"
BARE_CR = "raw-data/products/products_bare_cr.csv"

#: A one-line header of ~3 MB: far more than the check may fetch.
HUGE = ",".join(f"column_{i}" for i in range(300_000)).encode()

FILES: dict[str, bytes] = {
    NORMAL: f"{HEADER}\np-1,1,dairy,milk\np-2,1,dairy,cheese\n".encode(),
    GZIP: gzip.compress(f"{HEADER}\ngz-1,1,dairy,milk\n".encode()),
    # Seven columns: over the configured limit of six.
    WIDE: f"{HEADER},a,b,c\nw-1,1,dairy,milk,1,2,3\n".encode(),
    HUGE_HEADER: HUGE + b"\n1\n",
    BARE_CR: f"{HEADER}\rcr-1,1,dairy,milk\rcr-2,1,dairy,cheese\r".encode(),
}


@dataclass(frozen=True)
class Observed:
    """The run, its ``ingest_log`` rows by source path, and what the spies saw."""

    result: RunResult
    log: dict[str, dict[str, Any]]
    checked_bytes: Counter[str]
    parsed: Counter[str]
    uri: Mapping[str, str]


@pytest.fixture(scope="module")
def observed(moto: MotoServer) -> Observed:
    opened = open_lake(moto.new_lake(), engine="polars", options=moto.options())
    storage = opened.platform.storage
    options = dict(storage.storage_options)
    lake = Lake(
        engine=PolarsDeltaTableEngine(options, read_limits=LIMITS), platform=opened.platform
    )
    for key, data in FILES.items():
        storage.write_bytes(key, data)

    checked_bytes: Counter[str] = Counter()
    parsed: Counter[str] = Counter()
    chunks = polars_reader._chunks
    read_csv = pl.read_csv

    def counted_chunks(uri: str, storage_options: Mapping[str, str]) -> Iterator[bytes]:
        # Counts what the header check took: the stream fetches nothing it is not asked for.
        for chunk in chunks(uri, storage_options):
            checked_bytes[uri] += len(chunk)
            yield chunk

    def spied_read_csv(source: Any, *args: Any, **kwargs: Any) -> pl.DataFrame:
        parsed[str(source)] += 1
        return read_csv(source, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(polars_reader, "_chunks", counted_chunks)
        patch.setattr(pl, "read_csv", spied_read_csv)
        result = lake.run(RunOptions(steps=STEPS, settle_seconds=0))
    log = DeltaTable(
        storage.uri("lakehouse-dwh/_audit/ingest_log"), storage_options=options
    ).to_pyarrow_table()
    rows = {r["source_path"]: r for r in log.to_pylist()}
    return Observed(
        result=result,
        log=rows,
        checked_bytes=checked_bytes,
        parsed=parsed,
        uri={key: storage.uri(key) for key in FILES},
    )


def _rejected_before_the_parse(observed: Observed, key: str, reason: str) -> str:
    assert observed.result.ok, observed.result.error
    row = observed.log[key]
    assert row["status"] == "rejected", row["error"]
    assert row["error"].startswith(f"{reason}: "), row["error"]
    assert row["rows_read"] == 0
    (outcome,) = [f for f in observed.result.files if f.file.key == key]
    assert outcome.destination is not None and outcome.destination.startswith("rejected/")
    uri = observed.uri[key]
    assert observed.checked_bytes[uri] > 0, "the object's first bytes were not checked"
    assert observed.parsed[uri] == 0, "Polars parsed an object its first bytes reject"
    return str(row["error"])


def test_a_gzip_object_named_csv_is_rejected_as_compressed(observed: Observed) -> None:
    _rejected_before_the_parse(observed, GZIP, "compressed")


def test_a_header_over_the_configured_column_limit_is_rejected(observed: Observed) -> None:
    error = _rejected_before_the_parse(observed, WIDE, "too_many_columns")
    assert "more than 6 columns" in error


def test_a_huge_header_is_rejected_from_its_first_chunk_only(observed: Observed) -> None:
    _rejected_before_the_parse(observed, HUGE_HEADER, "too_many_columns")
    # Seven short names fit in the first chunk: the other ~3 MB were never fetched.
    assert observed.checked_bytes[observed.uri[HUGE_HEADER]] <= HEADER_CHUNK_BYTES < len(HUGE)


def test_bare_cr_line_endings_are_named(observed: Observed) -> None:
    error = _rejected_before_the_parse(observed, BARE_CR, "bare_cr_line_endings")
    assert error == (
        f"bare_cr_line_endings: {BARE_CR} ends its lines with a bare carriage return (CR); "
        "save it with LF or CRLF line endings"
    )


def test_a_normal_object_is_checked_then_loads(observed: Observed) -> None:
    row = observed.log[NORMAL]
    assert (row["status"], row["error"], row["rows_read"], row["inserted"]) == (
        "loaded",
        None,
        2,
        2,
    )
    uri = observed.uri[NORMAL]
    # The whole (small) object was checked: its header line ends within it.
    assert observed.checked_bytes[uri] == len(FILES[NORMAL])
    assert observed.parsed[uri] >= 1


def test_an_object_that_cannot_be_read_is_an_error_not_a_rejection(moto: MotoServer) -> None:
    opened = open_lake(moto.new_lake(), engine="polars", options=moto.options())
    storage = opened.platform.storage
    source = SourceFile(
        key="raw-data/products/missing.csv",
        uri=storage.uri("raw-data/products/missing.csv"),
        entity=PRODUCTS.entity,
        size_bytes=10,
        checksum="0" * 64,
        ordinal=0,
    )
    # The header check opens the object first: its I/O error propagates (a FileRejected,
    # not an OSError, would escape pytest.raises and fail the test).
    with pytest.raises(OSError, match=r"missing\.csv"):
        polars_reader.read_source_frame(
            source, PRODUCTS, SchemaEvolution.RESCUE, storage.storage_options
        )
