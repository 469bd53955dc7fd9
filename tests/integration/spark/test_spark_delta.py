"""Spark's Delta I/O and MERGE against the Polars engine's: same tables, shared history.

Batches are built by hand (``session.createDataFrame``), so these tests hold the Delta layer
of the Spark engine (``delta.py``, ``merge.py``) on their own; the engine-parametrised
suites under ``tests/integration/engines`` cover reading and staging CSV files.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pytest
from deltalake import DeltaTable

from ecommerce_lakehouse.domain.audit import INGEST_LOG, QUARANTINE, RowCounts
from ecommerce_lakehouse.domain.schemas import ORDERS, TableSchema
from ecommerce_lakehouse.ports.engine import (
    MERGE_COUNTS_KEY,
    MergeOutcome,
    StagedBatch,
    decode_merge_counts,
)
from ecommerce_lakehouse_polars.delta import table_history as polars_history
from ecommerce_lakehouse_polars.dtypes import polars_dtype
from ecommerce_lakehouse_polars.merge import merge_batch as polars_merge

pytestmark = pytest.mark.spark

ORDER_HEADER = ("order_num", "order_id", "user_id", "order_timestamp", "total_amount", "date")
PRODUCT_HEADER = ("product_id", "department_id", "department", "product_name")
INGESTED = datetime(2024, 6, 1, 12, tzinfo=UTC)


@pytest.fixture(scope="module")
def session() -> Any:
    from ecommerce_lakehouse_spark.session import spark_session

    return spark_session()


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def _survivors(
    schema: TableSchema, header: Sequence[str], rows: Sequence[tuple[Any, ...]], file: str
) -> list[dict[str, Any]]:
    return [
        {
            **dict(zip(header, row, strict=True)),
            "_rescued_data": None,
            "_source_file": file,
            "_ingested_at": INGESTED,
            "_run_id": "run",
        }
        for row in rows
    ]


def spark_batch(session: Any, schema: TableSchema, records: list[dict[str, Any]]) -> Any:
    from ecommerce_lakehouse_spark.dtypes import spark_schema

    columns = schema.stored_columns
    frame = session.createDataFrame(
        [tuple(r.get(c.name) for c in columns) for r in records], spark_schema(columns)
    )
    return StagedBatch(survivors=frame, quarantine=frame.limit(0), counts={})


def polars_batch(schema: TableSchema, records: list[dict[str, Any]]) -> StagedBatch[pl.DataFrame]:
    frame = pl.DataFrame(
        records, schema={c.name: polars_dtype(c.type) for c in schema.stored_columns}
    )
    return StagedBatch(survivors=frame, quarantine=frame.head(0), counts={})


def spark_merge(
    session: Any, uri: str, schema: TableSchema, records: list[dict[str, Any]], run: str
) -> MergeOutcome:
    from ecommerce_lakehouse_spark.merge import merge_batch

    batch = spark_batch(session, schema, records)
    return merge_batch(session, uri, batch, schema, {"lakehouse.run_id": run})


def stored(uri: str, *columns: str) -> list[tuple[Any, ...]]:
    """The table's rows (chosen columns), read by delta-rs, sorted."""
    frame = pl.DataFrame(pl.from_arrow(DeltaTable(uri).to_pyarrow_table()))
    return sorted(frame.select(columns).rows(), key=repr)


def files_by_partition(uri: str, column: str) -> dict[str | None, set[str]]:
    actions = pl.from_arrow(pa.table(DeltaTable(uri).get_add_actions(flatten=True)))
    assert isinstance(actions, pl.DataFrame)
    result: dict[str | None, set[str]] = {}
    for path, value in actions.select("path", f"partition.{column}").iter_rows():
        result.setdefault(None if value is None else str(value), set()).add(path)
    return result


def test_created_tables_match_the_polars_engine(session: Any, tmp_path: Path) -> None:
    from ecommerce_lakehouse_polars.delta import create_table as polars_create
    from ecommerce_lakehouse_spark.delta import create_table, table_columns

    spark_uri, polars_uri = str(tmp_path / "spark"), str(tmp_path / "polars")
    create_table(session, spark_uri, ORDERS.stored_columns, "date", "orders")
    create_table(session, spark_uri, ORDERS.stored_columns, "date", "orders")  # left alone
    polars_create(polars_uri, ORDERS.stored_columns, "date", {}, "orders")

    spark_table, polars_table = DeltaTable(spark_uri), DeltaTable(polars_uri)
    assert spark_table.version() == 0
    assert spark_table.schema().to_json() == polars_table.schema().to_json()
    assert spark_table.metadata().partition_columns == ["date"]
    # Reader 1 / writer 2 with no table features or properties: Glue, Athena and delta-rs.
    protocol = spark_table.protocol()
    assert (protocol.min_reader_version, protocol.min_writer_version) == (1, 2)
    assert not protocol.reader_features
    assert not protocol.writer_features
    assert spark_table.metadata().configuration == {}
    assert table_columns(session, spark_uri) == ORDERS.stored_columns
    assert table_columns(session, polars_uri) == ORDERS.stored_columns
    assert table_columns(session, str(tmp_path / "none")) == ()


def test_appends_conform_to_the_audit_columns(session: Any, tmp_path: Path) -> None:
    from ecommerce_lakehouse_spark.delta import append_frame, append_records, table_history

    quarantine = str(tmp_path / "quarantine")
    append_frame(
        session, quarantine, session.createDataFrame([], "run_id string"), QUARANTINE.columns
    )
    assert DeltaTable(quarantine).version() == 0  # created, nothing else committed
    frame = session.createDataFrame(
        [("r1", 7, "not_null", INGESTED)],
        "run_id string, line_number int, rule string, quarantined_at timestamp",
    )
    append_frame(session, quarantine, frame, QUARANTINE.columns)
    rows = pl.DataFrame(pl.from_arrow(DeltaTable(quarantine).to_pyarrow_table()))
    assert rows.schema["line_number"] == pl.Int64
    assert rows.schema["quarantined_at"] == pl.Datetime("us", "UTC")
    assert rows.select("run_id", "line_number", "rule", "entity", "quarantined_at").rows() == [
        ("r1", 7, "not_null", None, INGESTED)
    ]

    ingest_log = str(tmp_path / "ingest_log")
    append_records(session, ingest_log, [], INGEST_LOG.columns)
    assert DeltaTable(ingest_log).version() == 0
    naive = datetime(2024, 6, 1, 12)  # naive datetimes are UTC, as in the Polars engine
    append_records(
        session,
        ingest_log,
        [{"run_id": "r1", "rows_read": 3, "started_at": naive}],
        INGEST_LOG.columns,
    )
    assert stored(ingest_log, "run_id", "rows_read", "started_at", "error") == [
        ("r1", 3, INGESTED, None)
    ]
    latest = table_history(session, ingest_log, 1)
    assert latest[0].operation == "WRITE"
    # Spark's numOutputRows / numFiles under delta-rs's names.
    assert latest[0].metrics["num_added_rows"] == 1
    assert latest[0].metrics["num_added_files"] == 1


def test_history_metadata_is_shared_by_both_engines(session: Any, tmp_path: Path) -> None:
    from ecommerce_lakehouse_spark.delta import table_history

    uri = str(tmp_path / "orders")
    day = ("1", "A", "u", _at("2024-01-01T10:00Z"), 1.0, date(2024, 1, 1))
    # delta-rs commit: custom metadata as top-level commitInfo keys.
    polars_merge(
        uri,
        {},
        polars_batch(ORDERS, _survivors(ORDERS, ORDER_HEADER, [day], "raw-data/a.csv")),
        ORDERS,
        {"lakehouse.run_id": "polars-run"},
    )
    # Spark commit: the same keys as a JSON object in userMetadata.
    moved = ("1", "B", "u", _at("2024-01-02T10:00Z"), 2.0, date(2024, 1, 2))
    spark_merge(
        session,
        uri,
        ORDERS,
        _survivors(ORDERS, ORDER_HEADER, [moved], "raw-data/b.csv"),
        "spark-run",
    )

    spark_view = table_history(session, uri, None)
    polars_view = polars_history(uri, {}, None)
    assert [c.version for c in spark_view] == [2, 1, 0]
    # Batches of new keys only: each engine appends them, with the MERGE's metadata.
    assert [c.operation for c in spark_view] == ["WRITE", "WRITE", "CREATE TABLE"]
    assert [c.metadata.get("lakehouse.run_id") for c in spark_view] == [
        "spark-run",
        "polars-run",
        None,
    ]
    for commit in spark_view[:2]:
        assert set(decode_merge_counts(commit.metadata[MERGE_COUNTS_KEY]).values()) == {
            RowCounts(inserted=1)
        }
        assert commit.metrics["num_added_rows"] == 1
        assert commit.timestamp is not None and commit.timestamp.tzinfo is UTC
    # The same records whichever engine reads the history.
    assert spark_view == polars_view
    assert table_history(session, uri, 1) == spark_view[:1]
    assert table_history(session, str(tmp_path / "none"), None) == []


def test_compaction(session: Any, tmp_path: Path) -> None:
    from ecommerce_lakehouse_spark.delta import append_records, compact_table, table_history

    uri = str(tmp_path / "ingest_log")
    for run in range(4):
        append_records(session, uri, [{"run_id": f"r{run}", "rows_read": run}], INGEST_LOG.columns)
    version = table_history(session, uri, 1)[0].version

    assert compact_table(session, uri, min_files=5) == 0  # below the threshold: left alone
    assert compact_table(session, uri, min_files=4) == 4

    table = DeltaTable(uri)
    assert len(table.file_uris()) == 1
    assert table.to_pyarrow_table().num_rows == 4
    latest = table_history(session, uri, 1)[0]
    assert latest.operation == "OPTIMIZE"
    assert latest.metrics["num_files_removed"] == 4
    assert latest.metrics["num_files_added"] == 1
    table.load_as_version(version)
    assert table.to_pyarrow_table().num_rows == 4  # time travel still works
    assert compact_table(session, str(tmp_path / "none"), min_files=1) == 0


def test_file_statistics_come_from_the_log_and_step_aside_when_it_cannot_be_read(
    session: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from py4j.protocol import Py4JError

    import ecommerce_lakehouse_spark.delta as spark_delta

    uri = str(tmp_path / "ingest_log")
    for run in range(2):
        spark_delta.append_records(
            session, uri, [{"run_id": f"r{run}", "rows_read": run}], INGEST_LOG.columns
        )
    files = spark_delta.file_statistics(session, uri)
    assert files is not None
    assert sorted(f.rows for f in files) == [1, 1]
    assert sorted(f.minimum["run_id"] for f in files) == ["r0", "r1"]  # type: ignore[type-var]
    assert all(f.null_counts["rows_read"] == 0 for f in files)
    assert spark_delta.file_statistics(session, str(tmp_path / "none")) is None

    # A Delta Lake without the snapshot API this reads: no statistics, so validation
    # counts by SQL alone, instead of failing.
    def unreadable(*_: Any) -> Any:
        raise Py4JError("no such method")

    monkeypatch.setattr(spark_delta, "add_actions", unreadable)
    assert spark_delta.file_statistics(session, uri) is None


def test_a_failed_spark_job_is_one_line_naming_its_cause(
    session: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from py4j.protocol import Py4JJavaError

    import ecommerce_lakehouse_spark.delta as spark_delta

    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not a parquet file")
    with pytest.raises(Py4JJavaError) as raised:
        session.read.schema("a int").parquet(str(bad)).collect()
    # Py4J's first line names the JVM call only; the run's ledger gets the cause.
    assert str(raised.value).startswith("An error occurred while calling")
    text = str(spark_delta.spark_failure(raised.value, "give it more (X)"))
    assert text.startswith("Spark failed: ") and "\n" not in text
    assert "parquet" in text.lower() and "An error occurred" not in text
    assert "out of memory" not in text

    # A task out of memory (as a 4 GiB driver sorting a quarter of a large batch was)
    # says what gives the session more.
    monkeypatch.setattr(
        spark_delta,
        "_root_cause",
        lambda _: "SparkOutOfMemoryError: [UNABLE_TO_ACQUIRE_MEMORY] Unable to acquire",
    )
    text = str(spark_delta.spark_failure(raised.value, "give it more (X)"))
    assert text.endswith("the Spark session ran out of memory: give it more (X)")


def test_a_large_batch_is_deduplicated_in_more_shuffle_partitions(session: Any) -> None:
    from ecommerce_lakehouse_spark.staging import BYTES_PER_SHUFFLE_PARTITION, shuffle_partitions

    configured = int(session.conf.get("spark.sql.shuffle.partitions"))
    assert shuffle_partitions(session, 0) == configured
    assert shuffle_partitions(session, BYTES_PER_SHUFFLE_PARTITION) == configured
    # 1.9 GiB of order_items (scale 1): a 64 MiB share each.
    assert shuffle_partitions(session, 1900 * 2**20) == 30


def test_a_session_built_here_compiles_the_rules_huge_generated_method(session: Any) -> None:
    """Staging keeps whole-stage code generation only where the JIT compiles its method."""
    from ecommerce_lakehouse_spark.session import HUGE_METHODS_FLAG, compiles_huge_methods

    jvm = session.sparkContext._jvm
    bean = jvm.java.lang.management.ManagementFactory.getPlatformMXBean(
        jvm.java.lang.Class.forName("com.sun.management.HotSpotDiagnosticMXBean")
    )
    # Asked of the running JVM, not of the configuration: the flag reached it.
    assert bean.getVMOption("DontCompileHugeMethods").getValue() == "false"
    assert compiles_huge_methods(session)
    assert HUGE_METHODS_FLAG in session.conf.get("spark.executor.extraJavaOptions").split()


def test_a_launchers_200_shuffle_partitions_do_not_become_200_tasks_per_small_merge(
    session: Any, tmp_path: Path
) -> None:
    # Glue and spark-submit build the session, with Spark's default of 200 shuffle
    # partitions: a batch of two rows must still run in one wave of tasks.
    from ecommerce_lakehouse_spark.delta import SHUFFLE_PARTITIONS_CONF, session_conf
    from ecommerce_lakehouse_spark.jobs import SparkJobCounter
    from ecommerce_lakehouse_spark.staging import shuffle_partitions

    uri = str(tmp_path / "orders")
    first = ("1", "o1", "u1", _at("2024-01-01T10:00:00+00:00"), 5.0, date(2024, 1, 1))
    spark_merge(session, uri, ORDERS, _survivors(ORDERS, ORDER_HEADER, [first], "a.csv"), "r1")
    context = session.sparkContext
    cores = context.defaultParallelism
    corrected = ("1", "o1", "u1", _at("2024-01-02T10:00:00+00:00"), 6.0, date(2024, 1, 2))
    new = ("2", "o2", "u1", _at("2024-01-02T11:00:00+00:00"), 7.0, date(2024, 1, 2))
    batch = _survivors(ORDERS, ORDER_HEADER, [corrected, new], "b.csv")
    # The engine's own job group for the step (restored afterwards) names the MERGE's jobs.
    with (
        SparkJobCounter(session).step("orders", "merge"),
        session_conf(session, SHUFFLE_PARTITIONS_CONF, "200"),
    ):
        group = context.getLocalProperty("spark.jobGroup.id")
        assert shuffle_partitions(session, 0) == cores
        outcome = spark_merge(session, uri, ORDERS, batch, "r2")

    assert outcome.counts["b.csv"] == RowCounts(inserted=1, updated=1)
    tracker = context.statusTracker()
    jobs = [info for job in tracker.getJobIdsForGroup(group) if (info := tracker.getJobInfo(job))]
    tasks = {
        stage: info.numTasks
        for job in jobs
        for stage in job.stageIds
        if (info := tracker.getStageInfo(stage)) is not None
    }
    assert tasks and max(tasks.values()) <= cores, tasks
