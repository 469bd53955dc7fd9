"""Issue 11, "No input can crash a run": hostile inputs get a designed outcome on every engine.

Each test runs once per engine (Polars, and Spark marked ``spark``) with the same inputs and
the same expectations, so both engines reject, quarantine and load the same way.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import replace
from typing import Any

import pytest
from deltalake import DeltaTable, write_deltalake

from ecommerce_lakehouse.domain.audit import INGEST_LOG, QUARANTINE, AuditTable, RowCounts
from ecommerce_lakehouse.domain.errors import FileRejected
from ecommerce_lakehouse.domain.headers import DEFAULT_READ_LIMITS, ReadLimits
from ecommerce_lakehouse.domain.rules import EXTRA_FIELDS_KEY
from ecommerce_lakehouse.domain.schemas import PRODUCTS, TableSchema
from ecommerce_lakehouse.domain.types import SchemaEvolution
from ecommerce_lakehouse.domain.values import HIVE_DEFAULT_PARTITION, MAX_PARTITION_VALUE_BYTES
from ecommerce_lakehouse.ports.engine import TableRef
from tests.contract.conftest_engines import EngineCase
from tests.integration.engines.harness import Lake, WriteSource, csv_text, delta_rows, make_run

HEADER = "product_id,department_id,department,product_name"
RESCUE = SchemaEvolution.RESCUE


def _reject(engine: EngineCase, write_source: WriteSource, content: str | bytes) -> FileRejected:
    source = write_source("f.csv", content, PRODUCTS)
    with pytest.raises(FileRejected) as caught:
        engine.engine.read_source(source, PRODUCTS, RESCUE)
    assert "\n" not in caught.value.detail
    return caught.value


def _quarantine(lake: Lake, content: str, schema: TableSchema = PRODUCTS) -> list[dict[str, Any]]:
    ingested = lake.ingest(schema, [("f.csv", content)])
    rows = lake.case.records(ingested.staged.quarantine)
    return sorted(rows, key=lambda r: r["line_number"])


# ---------------------------------------------------------------- item 2: bounded resources
def test_a_header_over_the_column_limit_is_rejected_before_the_parse(
    engine: EngineCase, write_source: WriteSource
) -> None:
    wide = ",".join(f"c{i}" for i in range(200_000))
    rejected = _reject(engine, write_source, csv_text(wide, "1"))
    assert rejected.reason == "too_many_columns"
    assert str(DEFAULT_READ_LIMITS.max_columns) in rejected.detail


def test_a_single_line_header_of_one_huge_field_is_rejected(
    engine: EngineCase, write_source: WriteSource
) -> None:
    huge = "x" * (DEFAULT_READ_LIMITS.max_field_bytes + 1)
    rejected = _reject(engine, write_source, f"{HEADER},{huge}")
    assert rejected.reason == "field_too_large"


def test_a_value_over_the_field_limit_rejects_the_file(
    engine: EngineCase, write_source: WriteSource
) -> None:
    huge = "é" * (DEFAULT_READ_LIMITS.max_field_bytes // 2 + 1)  # 2 bytes a character
    rejected = _reject(engine, write_source, csv_text(HEADER, "1,2,x,y", f'2,2,x,"{huge}"'))
    assert rejected.reason == "field_too_large"


def test_read_limits_are_configurable_and_a_record_over_them_rejects_the_file(
    engine: EngineCase, write_source: WriteSource
) -> None:
    assert engine.name in ("polars", "spark")
    limits = ReadLimits(max_columns=6, max_field_bytes=16)
    if engine.name == "polars":
        from ecommerce_lakehouse_polars.engine import PolarsDeltaTableEngine

        limited: Any = PolarsDeltaTableEngine(read_limits=limits)
    else:
        from ecommerce_lakehouse_spark.engine import SparkDeltaTableEngine

        spark: Any = engine.engine
        limited = SparkDeltaTableEngine(spark.session, read_limits=limits)

    def reason(content: str) -> str:
        source = write_source("f.csv", content, PRODUCTS)
        with pytest.raises(FileRejected) as caught:
            limited.read_source(source, PRODUCTS, RESCUE)
        return caught.value.reason

    assert reason(csv_text(f"{HEADER},a,b,c", "1,2,3,4,5,6,7")) == "too_many_columns"
    assert reason(csv_text(HEADER, "1,2,3,4,5,6,7")) == "too_many_columns"
    assert reason(csv_text(HEADER, f"1,2,3,{'x' * 17}")) == "field_too_large"
    # Within the limits the file loads.
    fine = limited.read_source(
        write_source("g.csv", csv_text(HEADER, f"1,2,3,{'x' * 16}"), PRODUCTS), PRODUCTS, RESCUE
    )
    assert len(engine.records(fine)) == 1


# ---------------------------------------------------------------- item 11: compressed files
@pytest.mark.parametrize("compress", [gzip.compress], ids=["gzip"])
def test_a_compressed_file_named_csv_is_rejected(
    engine: EngineCase, write_source: WriteSource, compress: Any
) -> None:
    content = compress(csv_text(HEADER, "1,2,dairy,milk").encode())
    rejected = _reject(engine, write_source, content)
    assert rejected.reason == "compressed"


# ---------------------------------------------------------------- items 3 and 8: partitions
def test_a_department_too_long_for_a_partition_directory_is_quarantined(lake: Lake) -> None:
    longest = "d" * MAX_PARTITION_VALUE_BYTES
    too_long = "é" * (MAX_PARTITION_VALUE_BYTES // 2) + "x"  # one byte over, in UTF-8
    content = csv_text(HEADER, f"1,1,{longest},a", f"2,1,{too_long},b", f"3,1,{'z' * 300},c")
    quarantined = _quarantine(lake, content)
    assert [(q["line_number"], q["rule"], q["column_name"]) for q in quarantined] == [
        (3, "value_too_long", "department"),
        (4, "value_too_long", "department"),
    ]
    # The batch itself commits: the valid row is stored in its own partition.
    assert [r["product_id"] for r in lake.rows(PRODUCTS)] == ["1"]


def test_a_literal_null_partition_marker_is_quarantined_not_read_back_as_null(
    lake: Lake,
) -> None:
    content = csv_text(HEADER, f"1,1, {HIVE_DEFAULT_PARTITION} ,a", "2,1,,b", "3,1,frozen,c")
    quarantined = _quarantine(lake, content)
    assert [(q["line_number"], q["rule"], q["column_name"]) for q in quarantined] == [
        (2, "reserved_value", "department"),
    ]
    stored = {r["product_id"]: r["department"] for r in lake.rows(PRODUCTS)}
    assert stored == {"2": None, "3": "frozen"}


# ---------------------------------------------------------------- item 13: ragged and blank rows
def test_ragged_and_blank_rows_are_quarantined_and_counted(lake: Lake) -> None:
    content = csv_text(
        HEADER,
        "1,1,frozen,a",
        ",,,",  # every field empty: a row without a key
        "2,1,frozen,b,,",  # empty fields past the header are trailing commas: loads
        "3,1,frozen,c,,extra,",  # a value past the header: no column to go to
        "4,1",  # missing trailing fields read as empty: loads
        "",  # a blank line: a row without a key
        "5,1,frozen,e",
    )
    ingested = lake.ingest(PRODUCTS, [("f.csv", content)])
    quarantined = sorted(
        lake.case.records(ingested.staged.quarantine), key=lambda r: r["line_number"]
    )
    assert [(q["line_number"], q["rule"], q["column_name"]) for q in quarantined] == [
        (3, "not_null", "product_id"),
        (5, "wrong_field_count", None),
        (7, "not_null", "product_id"),
    ]
    assert json.loads(quarantined[1]["raw_record"]) == {
        "product_id": "3",
        "department_id": "1",
        "department": "frozen",
        "product_name": "c",
        EXTRA_FIELDS_KEY: ["", "extra"],
    }
    assert ingested.per_file["f.csv"] == RowCounts(rows_read=7, inserted=4, quarantined=3)
    stored = {r["product_id"]: r["department"] for r in lake.rows(PRODUCTS)}
    assert stored == {"1": "frozen", "2": "frozen", "4": None, "5": "frozen"}


def test_a_much_longer_record_anywhere_in_a_file_is_quarantined(lake: Lake) -> None:
    rows = [f"{i},1,frozen,p{i}" for i in range(1, 200)]
    rows[150] = "151,1,frozen,p151," + ",".join(["v"] * 40)
    quarantined = _quarantine(lake, csv_text(HEADER, *rows))
    assert [(q["line_number"], q["rule"]) for q in quarantined] == [(152, "wrong_field_count")]
    assert json.loads(quarantined[0]["raw_record"])[EXTRA_FIELDS_KEY] == ["v"] * 40
    assert len(lake.rows(PRODUCTS)) == 198


# ---------------------------------------------------------------- item 4: quarantine exactly once
def _quarantine_ref(lake: Lake) -> TableRef:
    return TableRef(name="quarantine", uri=str(lake.root / "lakehouse-dwh/_audit/quarantine"))


def test_quarantine_rows_are_written_once_per_file_checksum_and_line(lake: Lake) -> None:
    content = csv_text(HEADER, ",1,x,a", "2,1,y,b", ",1,z,c")
    ref = _quarantine_ref(lake)
    source = lake.write_source("f.csv", content, PRODUCTS)
    source = replace(source, checksum="a" * 64)
    for attempt in (1, 2):
        # A run that died after its quarantine append, and the run that read it again.
        run = make_run(f"run-{attempt}")
        frame = lake.engine.read_source(source, PRODUCTS, RESCUE)
        staged = lake.engine.stage([frame], PRODUCTS, run)
        lake.engine.append_frame(ref, QUARANTINE, staged.quarantine)
    stored = delta_rows(ref.uri, "line_number")
    assert [(r["run_id"], r["line_number"], r["source_checksum"]) for r in stored] == [
        ("run-1", 2, "a" * 64),
        ("run-1", 4, "a" * 64),
    ]
    # A corrected file dropped again under the same name is new content: new rows.
    corrected = replace(source, checksum="b" * 64)
    frame = lake.engine.read_source(corrected, PRODUCTS, RESCUE)
    staged = lake.engine.stage([frame], PRODUCTS, make_run("run-3"))
    lake.engine.append_frame(ref, QUARANTINE, staged.quarantine)
    assert len(delta_rows(ref.uri)) == 4


def test_a_quarantine_table_without_source_checksum_gains_it(lake: Lake) -> None:
    ref = _quarantine_ref(lake)
    old = AuditTable(name="quarantine", columns=QUARANTINE.columns[:-1])
    lake.engine.append_records(
        ref,
        old,
        [{"run_id": "old", "entity": "products", "source_file": "k", "line_number": 2}],
    )
    assert "source_checksum" not in DeltaTable(ref.uri).schema().to_arrow().names
    source = lake.write_source("f.csv", csv_text(HEADER, ",1,x,a"), PRODUCTS)
    frame = lake.engine.read_source(source, PRODUCTS, RESCUE)
    staged = lake.engine.stage([frame], PRODUCTS, make_run("new"))
    lake.engine.append_frame(ref, QUARANTINE, staged.quarantine)
    stored = delta_rows(ref.uri, "run_id")
    assert [(r["run_id"], r["source_checksum"]) for r in stored] == [
        ("new", "0" * 64),
        ("old", None),
    ]
    assert [c.name for c in lake.engine.columns(ref)] == list(QUARANTINE.column_names)


def test_delta_rs_reads_a_quarantine_table_written_before_the_column(lake: Lake) -> None:
    # A table an older version wrote with delta-rs directly (no engine involved).
    import pyarrow as pa

    ref = _quarantine_ref(lake)
    old = pa.table({"run_id": ["old"], "line_number": pa.array([2], pa.int64())})
    write_deltalake(ref.uri, old)
    staged_source = lake.write_source("f.csv", csv_text(HEADER, ",1,x,a"), PRODUCTS)
    frame = lake.engine.read_source(staged_source, PRODUCTS, RESCUE)
    staged = lake.engine.stage([frame], PRODUCTS, make_run("new"))
    lake.engine.append_frame(ref, QUARANTINE, staged.quarantine)
    assert len(delta_rows(ref.uri)) == 2


def test_an_ingest_log_without_destination_gains_it_when_the_tables_are_ensured(
    lake: Lake,
) -> None:
    ref = TableRef(name="ingest_log", uri=str(lake.root / "lakehouse-dwh/_audit/ingest_log"))
    old = AuditTable(name="ingest_log", columns=INGEST_LOG.columns[:-1])
    lake.engine.append_records(ref, old, [{"run_id": "old", "status": "loaded"}])
    assert "destination" not in DeltaTable(ref.uri).schema().to_arrow().names

    lake.engine.ensure_table(ref, INGEST_LOG.columns, None)

    assert [c.name for c in lake.engine.columns(ref)] == list(INGEST_LOG.column_names)
    assert [(r["run_id"], r["destination"]) for r in delta_rows(ref.uri)] == [("old", None)]
