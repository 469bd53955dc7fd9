"""Delta tables every engine creates and appends to: schema, protocol, audit, history.

Every table is read back with delta-rs, whichever engine wrote it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, write_deltalake

from ecommerce_lakehouse.domain.audit import INGEST_LOG, QUARANTINE, VALIDATION_RESULTS
from ecommerce_lakehouse.domain.schemas import ORDER_ITEMS, ORDERS
from ecommerce_lakehouse.domain.types import Column, ColumnType, SchemaEvolution
from ecommerce_lakehouse.ports.engine import TableRef
from tests.contract.conftest_engines import EngineCase
from tests.integration.engines.harness import Lake, csv_text

STARTED = datetime(2024, 6, 1, 12, 0, 0, 123456, tzinfo=UTC)


def ref(tmp_path: Path, name: str) -> TableRef:
    return TableRef(name=name, uri=str(tmp_path / name))


def schema_json(table: DeltaTable) -> dict[str, str]:
    fields = json.loads(table.schema().to_json())["fields"]
    return {f["name"]: f["type"] for f in fields}


def test_curated_table_types_partitioning_and_protocol(engine: EngineCase, tmp_path: Path) -> None:
    table = ref(tmp_path, "order_items")
    engine.engine.ensure_table(table, ORDER_ITEMS.stored_columns, "date")
    delta = DeltaTable(table.uri)
    assert schema_json(delta) == {
        "id": "string",
        "order_id": "string",
        "user_id": "string",
        "days_since_prior_order": "integer",
        "product_id": "string",
        "add_to_cart_order": "integer",
        "reordered": "boolean",
        # UTC-adjusted timestamps, never timestamp_ntz (which needs reader 3 / writer 7).
        "order_timestamp": "timestamp",
        "date": "date",
        "_rescued_data": "string",
        "_source_file": "string",
        "_ingested_at": "timestamp",
        "_run_id": "string",
    }
    assert delta.metadata().partition_columns == ["date"]
    protocol = delta.protocol()
    # Readable and writable by Delta Lake 3.3 (Glue 5.1) and Athena engine v3.
    assert (protocol.min_reader_version, protocol.min_writer_version) == (1, 2)
    assert not protocol.reader_features
    assert not protocol.writer_features
    configuration = delta.metadata().configuration
    assert "delta.enableDeletionVectors" not in configuration
    assert "delta.columnMapping.mode" not in configuration
    assert engine.engine.columns(table) == ORDER_ITEMS.stored_columns


def test_ensure_table_leaves_an_existing_table_alone(engine: EngineCase, tmp_path: Path) -> None:
    table = ref(tmp_path, "orders")
    # Whether the call created the table: a run then knows it holds no rows to read.
    assert engine.engine.ensure_table(table, ORDERS.stored_columns, "date") is True
    assert engine.engine.ensure_table(table, ORDERS.stored_columns, "date") is False
    assert DeltaTable(table.uri).version() == 0


def test_protocol_stays_compatible_after_merges_and_evolution(lake: Lake) -> None:
    header = "order_num,order_id,user_id,order_timestamp,total_amount,date"
    lake.ingest(ORDERS, [("a.csv", csv_text(header, "1,A,u,2024-01-01T10:00Z,1,"))])
    lake.ingest(
        ORDERS,
        [("b.csv", csv_text(f"{header},x", "1,A,u,2024-01-02T10:00Z,1,,y"))],
        SchemaEvolution.ADD_NEW_COLUMNS,
    )
    delta = lake.table(ORDERS)
    protocol = delta.protocol()
    assert (protocol.min_reader_version, protocol.min_writer_version) == (1, 2)
    assert schema_json(delta)["x"] == "string"
    assert schema_json(delta)["order_timestamp"] == "timestamp"


def test_append_records_creates_the_audit_table_with_its_types(
    engine: EngineCase, tmp_path: Path
) -> None:
    table = ref(tmp_path, "ingest_log")
    record = {
        "run_id": "r1",
        "entity": "orders",
        "source_path": "raw-data/orders/a.csv",
        "size_bytes": 12,
        "checksum": "ab",
        "status": "loaded",
        "rows_read": 3,
        "inserted": 1,
        "updated": 1,
        "unchanged": 0,
        "duplicates_in_batch": 1,
        "quarantined": 0,
        "started_at": STARTED,
        "finished_at": STARTED,
        "error": None,
        "destination": "archive/orders/2024/01/01/r1/a.csv",
    }
    engine.engine.append_records(table, INGEST_LOG, [record])
    engine.engine.append_records(
        table, INGEST_LOG, [{**record, "run_id": "r2", "status": "failed"}]
    )
    delta = DeltaTable(table.uri)
    assert engine.engine.columns(table) == INGEST_LOG.columns
    assert schema_json(delta)["size_bytes"] == "long"
    assert schema_json(delta)["started_at"] == "timestamp"
    rows = pl.DataFrame(pl.from_arrow(delta.to_pyarrow_table())).sort("run_id").to_dicts()
    assert rows[0] == record
    assert rows[1]["status"] == "failed"


def test_append_frame_and_empty_appends(engine: EngineCase, tmp_path: Path) -> None:
    table = ref(tmp_path, "quarantine")
    # An empty frame, every column text (as an empty batch may come): nothing to append.
    text = [Column(name=c.name, type=ColumnType.STRING) for c in QUARANTINE.columns]
    engine.engine.append_frame(table, QUARANTINE, engine.frame([], text))
    # The table exists (queries can run) but nothing was committed beyond its creation.
    assert DeltaTable(table.uri).version() == 0
    record = {
        "run_id": "r1",
        "entity": "orders",
        "source_file": "a.csv",
        "line_number": 7,
        "rule": "not_null",
        "column_name": "order_id",
        "reason": "order_id is required but is empty",
        "raw_record": '{"order_id": ""}',
        "quarantined_at": STARTED,
        "source_checksum": "c" * 64,
    }
    frame = engine.frame([record], QUARANTINE.columns)
    engine.engine.append_frame(table, QUARANTINE, frame)
    stored = pl.DataFrame(pl.from_arrow(DeltaTable(table.uri).to_pyarrow_table()))
    assert stored.schema["line_number"] == pl.Int64
    assert stored.schema["quarantined_at"] == pl.Datetime("us", "UTC")
    assert stored.to_dicts() == engine.records(frame) == [record]


def test_absent_tables_have_no_columns_and_no_history(engine: EngineCase, tmp_path: Path) -> None:
    missing = ref(tmp_path, "validation_results")
    assert engine.engine.columns(missing) == ()
    assert engine.engine.history(missing) == []
    engine.engine.append_records(missing, VALIDATION_RESULTS, [])
    assert engine.engine.columns(missing) == VALIDATION_RESULTS.columns


def test_history_is_newest_first_with_metadata_and_metrics(
    engine: EngineCase, tmp_path: Path
) -> None:
    table = ref(tmp_path, "t")
    engine.engine.ensure_table(table, INGEST_LOG.columns, None)
    engine.engine.append_records(table, INGEST_LOG, [{"run_id": "r1"}])
    # A Spark-style commit: metadata as one userMetadata JSON string.
    write_deltalake(
        table.uri,
        pa.table({"run_id": pa.array(["r2"], pa.string())}),
        mode="append",
        schema_mode="merge",
        commit_properties=CommitProperties(
            custom_metadata={"userMetadata": json.dumps({"lakehouse.run_id": "r2"})}
        ),
    )
    history = engine.engine.history(table)
    assert [c.version for c in history] == [2, 1, 0]
    assert [c.operation for c in history] == ["WRITE", "WRITE", "CREATE TABLE"]
    assert history[0].metadata == {"lakehouse.run_id": "r2"}
    assert engine.metric(history[1].metrics, "num_added_rows") == 1
    assert all(c.timestamp is not None and c.timestamp.tzinfo is UTC for c in history)
    assert [c.version for c in engine.engine.history(table, limit=1)] == [2]


def test_compaction_rewrites_small_files_and_keeps_rows_and_history(
    engine: EngineCase, tmp_path: Path
) -> None:
    ref = TableRef(name="ingest_log", uri=str(tmp_path / "ingest_log"))
    moment = datetime(2024, 1, 1, tzinfo=UTC)
    record = {
        "run_id": "r",
        "entity": "orders",
        "source_path": "raw-data/a.csv",
        "size_bytes": 1,
        "checksum": "c",
        "status": "loaded",
        "rows_read": 1,
        "inserted": 1,
        "updated": 0,
        "unchanged": 0,
        "duplicates_in_batch": 0,
        "quarantined": 0,
        "started_at": moment,
        "finished_at": moment,
        "error": None,
    }
    for _ in range(4):
        engine.engine.append_records(ref, INGEST_LOG, [record])
    version = engine.engine.history(ref, 1)[0].version

    assert engine.engine.compact(ref, min_files=5) == 0  # below the threshold: left alone
    assert engine.engine.compact(ref, min_files=4) == 4

    table = DeltaTable(ref.uri)
    assert len(table.file_uris()) == 1
    assert table.to_pyarrow_table().num_rows == 4
    assert engine.engine.history(ref, 1)[0].operation == "OPTIMIZE"
    table.load_as_version(version)
    assert table.to_pyarrow_table().num_rows == 4  # time travel still works
    assert engine.engine.compact(TableRef(name="x", uri=str(tmp_path / "none")), min_files=1) == 0

    # The command's run id goes with its commit, whichever engine wrote it.
    engine.engine.append_records(ref, INGEST_LOG, [record])
    engine.engine.append_records(ref, INGEST_LOG, [record])
    assert engine.engine.compact(ref, min_files=2, metadata={"lakehouse.run_id": "m1"}) == 3
    assert engine.engine.history(ref, 1)[0].metadata["lakehouse.run_id"] == "m1"

    # VACUUM with no retention deletes the files only older versions read: time travel to
    # them stops, the latest version keeps its rows. (The floor of a week is the command's.)
    assert engine.engine.vacuum(ref, retain_hours=0) == 7
    assert DeltaTable(ref.uri).to_pyarrow_table().num_rows == 6
    assert len(list(Path(ref.uri).glob("*.parquet"))) == 1
    assert engine.engine.vacuum(ref, retain_hours=0) == 0
    assert engine.engine.vacuum(TableRef(name="x", uri=str(tmp_path / "none")), retain_hours=0) == 0
