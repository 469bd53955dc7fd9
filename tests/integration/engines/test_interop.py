"""Polars and Spark share tables: each MERGEs into the other's, reads its commits, and both
turn the same dirty input into the same tables (docs/contract.md#engines-and-platforms).

Every table is read back with delta-rs, whichever engine wrote it last.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from deltalake import DeltaTable

import ecommerce_lakehouse as lh
from ecommerce_lakehouse.domain.audit import QUARANTINE, RowCounts
from ecommerce_lakehouse.domain.schemas import (
    INGESTED_AT,
    ORDER_ITEMS,
    ORDERS,
    PRODUCTS,
    RUN_ID,
    SOURCE_FILE,
    TableSchema,
)
from ecommerce_lakehouse.domain.types import Column, ColumnType, FileStatus, SchemaEvolution
from ecommerce_lakehouse.domain.zones import audit_key, table_key
from ecommerce_lakehouse.ports.engine import MERGE_COUNTS_KEY, TableRef, decode_merge_counts
from tests.contract.conftest_engines import EngineCase, polars_case, spark_case
from tests.integration.engines.harness import (
    Content,
    Ingested,
    Lake,
    csv_text,
    delta_rows,
    source_writer,
)

pytestmark = pytest.mark.spark

ORDERS_HEADER = "order_num,order_id,user_id,order_timestamp,total_amount,date"
PRODUCTS_HEADER = "product_id,department_id,department,product_name"
ITEMS_HEADER = (
    "id,order_id,user_id,days_since_prior_order,product_id,add_to_cart_order,reordered,"
    "order_timestamp,date"
)
#: Columns that differ between two runs by design: wall-clock times.
CLOCK_COLUMNS = {INGESTED_AT, "quarantined_at", "started_at", "finished_at", "checked_at"}


@pytest.fixture
def engines() -> dict[str, EngineCase]:
    return {"polars": polars_case(), "spark": spark_case()}


@pytest.fixture(
    params=[("polars", "spark"), ("spark", "polars")], ids=["polars-first", "spark-first"]
)
def order(
    request: pytest.FixtureRequest, engines: dict[str, EngineCase]
) -> tuple[EngineCase, EngineCase]:
    """Which engine writes a table first, and which one MERGEs into it next."""
    first, second = request.param
    return engines[first], engines[second]


def protocol_of(uri: str) -> tuple[int, int, Any, Any]:
    protocol = DeltaTable(uri).protocol()
    return (
        protocol.min_reader_version,
        protocol.min_writer_version,
        protocol.reader_features,
        protocol.writer_features,
    )


def schema_json(uri: str) -> list[tuple[str, str, bool]]:
    fields = json.loads(DeltaTable(uri).schema().to_json())["fields"]
    return [(f["name"], f["type"], f["nullable"]) for f in fields]


def assert_shareable(uri: str) -> None:
    """Delta Lake 3.3, delta-rs and Athena read and write it: reader 1 / writer 2, no features."""
    assert protocol_of(uri) == (1, 2, None, None)
    configuration = DeltaTable(uri).metadata().configuration
    assert "delta.enableDeletionVectors" not in configuration
    assert "delta.columnMapping.mode" not in configuration


def without(rows: Sequence[dict[str, Any]], columns: set[str]) -> list[dict[str, Any]]:
    return [{k: v for k, v in row.items() if k not in columns} for row in rows]


# ---------------------------------------------------------------- one table, two engines


def test_each_engine_merges_into_the_others_table(
    order: tuple[EngineCase, EngineCase], tmp_path: Path
) -> None:
    first_case, second_case = order
    write = source_writer(tmp_path)
    first = Lake(case=first_case, write_source=write, root=tmp_path)
    created = first.ingest(
        ORDERS,
        [
            (
                "a.csv",
                csv_text(
                    ORDERS_HEADER,
                    "1,A,u1,2024-01-01T10:00:00Z,5,",
                    "2,B,u1,2024-01-02T10:00:00Z,6,",
                    "3,C,u1,2024-01-02T11:00:00Z,7,",
                ),
            )
        ],
    )
    assert created.per_file["a.csv"] == RowCounts(rows_read=3, inserted=3)

    second = Lake(case=second_case, write_source=write, root=tmp_path, runs=first.runs)
    merged = second.ingest(
        ORDERS,
        [
            (
                "b.csv",
                csv_text(
                    ORDERS_HEADER,
                    "1,A,u1,2024-01-03T10:00:00Z,5,",  # newer, moved to another date
                    "2,B,u1,2024-01-02T10:00:00+00:00,6,",  # identical
                    "3,C,u1,2024-01-02T09:00:00Z,70,",  # older: never overwrites
                    "4,D,u2,2024-01-02T12:00:00Z,8,",  # new
                ),
            )
        ],
    )
    assert merged.per_file["b.csv"] == RowCounts(rows_read=4, inserted=1, updated=1, unchanged=2)
    assert merged.outcome.touched_partitions == ("2024-01-01", "2024-01-02", "2024-01-03")
    assert merged.outcome.version == created.outcome.version + 1

    # The first engine again, on what the second wrote: identical rows are unchanged.
    back = Lake(case=first_case, write_source=write, root=tmp_path, runs=second.runs)
    again = back.ingest(
        ORDERS,
        [
            (
                "c.csv",
                csv_text(
                    ORDERS_HEADER,
                    "1,A,u1,2024-01-03T10:00:00Z,5,",
                    "5,E,u2,2024-01-04T00:00:00Z,1,",
                ),
            )
        ],
    )
    assert again.per_file["c.csv"] == RowCounts(rows_read=2, inserted=1, unchanged=1)

    rows = first.rows(ORDERS)
    assert [(r["order_id"], r["date"], r["total_amount"], r[RUN_ID]) for r in rows] == [
        ("A", date(2024, 1, 3), 5.0, "run-2"),
        ("B", date(2024, 1, 2), 6.0, "run-1"),
        ("C", date(2024, 1, 2), 7.0, "run-1"),
        ("D", date(2024, 1, 2), 8.0, "run-2"),
        ("E", date(2024, 1, 4), 1.0, "run-3"),
    ]
    assert rows[0]["order_timestamp"] == datetime(2024, 1, 3, 10, tzinfo=UTC)
    assert rows[0][SOURCE_FILE] == "raw-data/orders/r2_b.csv"
    assert None not in first.files_by_partition(ORDERS)
    assert "2024-01-01" not in first.files_by_partition(ORDERS)  # A left its old date

    ref = first.ref(ORDERS)
    assert_shareable(ref.uri)
    assert (
        first_case.engine.columns(ref) == second_case.engine.columns(ref) == ORDERS.stored_columns
    )

    # Each engine reads the other's commits: versions, times, operations, metadata, metrics.
    by_first = first_case.engine.history(ref)
    by_second = second_case.engine.history(ref)
    assert summary(by_first) == summary(by_second)
    outcomes = [again.outcome, merged.outcome, created.outcome]
    assert [c.version for c in by_first] == [*(o.version for o in outcomes), 0]
    # The first load stores no key yet: each engine appends it (a WRITE with the MERGE's
    # metadata) rather than MERGE it.
    assert [c.operation for c in by_first] == ["MERGE", "MERGE", "WRITE", "CREATE TABLE"]
    assert all(c.timestamp is not None and c.timestamp.tzinfo is UTC for c in by_first)
    for history in (by_first, by_second):
        runs = ["run-3", "run-2", "run-1"]
        for commit, outcome, run_id in zip(history[:3], outcomes, runs, strict=True):
            assert commit.metadata["lakehouse.run_id"] == run_id
            # The per-file counts of each MERGE travel with its commit, whoever reads them.
            assert decode_merge_counts(commit.metadata[MERGE_COUNTS_KEY]) == outcome.counts
            # Metrics under delta-rs's names whichever engine wrote the commit.
            inserted = sum(c.inserted for c in outcome.counts.values())
            updated = sum(c.updated for c in outcome.counts.values())
            if commit.operation == "WRITE":
                assert commit.metrics["num_added_rows"] == inserted and not updated
                assert commit.metrics.get("num_removed_files", 0) == 0
            else:
                assert commit.metrics["num_target_rows_inserted"] == inserted
                assert commit.metrics.get("num_target_rows_updated", 0) == updated
    assert [c.version for c in second_case.engine.history(ref, limit=1)] == [again.outcome.version]


def summary(history: Sequence[Any]) -> list[tuple[Any, ...]]:
    """What two engines must agree on about a table's commits."""
    return [(c.version, c.timestamp, c.operation, dict(c.metadata)) for c in history]


def test_audit_appends_of_either_engine_are_in_the_others_history(
    order: tuple[EngineCase, EngineCase], tmp_path: Path
) -> None:
    first_case, second_case = order
    # Audit appends too: each engine reads the other's WRITE commits.
    log = TableRef(name="quarantine", uri=str(tmp_path / "quarantine"))
    record = {
        "run_id": "r1",
        "entity": "orders",
        "source_file": "a.csv",
        "line_number": 2,
        "rule": "not_null",
        "column_name": "order_id",
        "reason": "order_id is required but is empty",
        "raw_record": "{}",
        "quarantined_at": datetime(2024, 6, 1, tzinfo=UTC),
    }
    first_case.engine.append_records(log, QUARANTINE, [record])
    second_case.engine.append_records(log, QUARANTINE, [{**record, "run_id": "r2"}, record])
    assert summary(first_case.engine.history(log)) == summary(second_case.engine.history(log))
    writes = second_case.engine.history(log)
    assert [c.operation for c in writes[:2]] == ["WRITE", "WRITE"]
    assert [c.metrics.get("num_added_rows") for c in writes[:2]] == [2, 1]
    assert sorted(r["run_id"] for r in delta_rows(log.uri)) == ["r1", "r1", "r2"]
    assert_shareable(log.uri)


def test_schema_evolution_by_both_engines_keeps_the_protocol(
    order: tuple[EngineCase, EngineCase], tmp_path: Path
) -> None:
    first_case, second_case = order
    write = source_writer(tmp_path)
    evolve = SchemaEvolution.ADD_NEW_COLUMNS
    first = Lake(case=first_case, write_source=write, root=tmp_path)
    first.ingest(
        PRODUCTS,
        [("a.csv", csv_text(f"{PRODUCTS_HEADER},Gift Wrap", "1,1,dairy,milk,yes", "2,1,,x,"))],
        evolve,
    )
    second = Lake(case=second_case, write_source=write, root=tmp_path, runs=first.runs)
    result = second.ingest(
        PRODUCTS,
        [("b.csv", csv_text(f"{PRODUCTS_HEADER},size", "1,1,dairy,milk,L", "2,1,bakery,x,S"))],
        evolve,
    )
    # Evolved columns are no business columns: product 1 is unchanged, 2 moved department.
    assert result.per_file["b.csv"] == RowCounts(rows_read=2, updated=1, unchanged=1)
    ref = first.ref(PRODUCTS)
    evolved = [
        Column(name="gift_wrap", type=ColumnType.STRING),
        Column(name="size", type=ColumnType.STRING),
    ]
    # Both engines read the same schema. (Its order is not the schema's: delta-rs moves the
    # partition column after the others when a MERGE evolves the schema.)
    columns = first_case.engine.columns(ref)
    assert second_case.engine.columns(ref) == columns
    assert set(columns) == {*PRODUCTS.stored_columns, *evolved}
    assert [
        (r["product_id"], r["department"], r["gift_wrap"], r["size"]) for r in first.rows(PRODUCTS)
    ] == [
        ("1", "dairy", "yes", None),
        ("2", "bakery", None, "S"),
    ]
    assert_shareable(ref.uri)
    assert DeltaTable(ref.uri).metadata().partition_columns == ["department"]


# ---------------------------------------------------------------- same input, same tables

#: Two runs per entity of dirty input: padding, quoting, offsets, duplicates within and
#: across files, every rule broken, moved partitions, older and identical rows, rescued
#: columns, a file without a date column, an empty and a header-only file.
DIRTY: dict[str, list[list[tuple[str, Content]]]] = {
    "products": [
        [
            (
                "a.csv",
                csv_text(
                    f"{PRODUCTS_HEADER}, Colour ",
                    " p1 ,1,frozen, Ice ,white",
                    "p2,2,bakery,Bread,",
                    ",3,dairy,NoKey,red",
                    "p3,3,,Loose,",
                    "p4,4,kid's corner,Toy,",
                    '"p2",2,bakery,"Bread, v2",',
                    " \u3000,9,x,y,",
                ),
            ),
            (
                "b.csv",
                csv_text(
                    PRODUCTS_HEADER,
                    "p1,1,frozen,Ice Cream",
                    'p5,5,pets,"Food ""dry"""',
                    "p6,6,pets",
                ),
            ),
            ("c.csv", b""),
            ("d.csv", csv_text(PRODUCTS_HEADER, eol="\r\n")),
        ],
        [
            (
                "e.csv",
                csv_text(
                    PRODUCTS_HEADER,
                    "p1,1,frozen,Ice Cream",
                    "p3,3,bakery,Loose",
                    "p4,4,kid's corner,Toy 2",
                    "p7,7,pets,New",
                    " ,1,x,y",
                    eol="\r\n",
                ),
            )
        ],
    ],
    "orders": [
        [
            (
                "a.csv",
                csv_text(
                    ORDERS_HEADER,
                    "1,o1,u1,2024-01-01T10:00:00,10.0,2024-01-01",
                    "2,o2,u1,2024-01-02T23:30:00-02:00,4.5,",
                    "3,o3,u2,not-a-time,7.5,",
                    "4,o4,u2,2024-01-01T10:00:00.123456789Z,1e999,",
                    "5,o5,u3,2024-01-01T10:00Z,-1,",
                    "6,o6,u3,2024-01-05T10:00Z,3,2024-01-04",
                    "7,o7,u3,2024-01-05T10:00:00.5+05:30,3,",
                    "8,o1,u1,2024-01-01T09:00:00,11.0,",
                    "9,o11,u9,0001-01-01T00:30+01:00,1,",
                    "10,o12,,2024-01-01T10:00Z,1,",
                    "11,o13,u9,2024-01-01T10:00Z, 2.50 ,",
                ),
            ),
            (
                "b.csv",
                csv_text(
                    "order_num,order_id,user_id,order_timestamp,total_amount",
                    "12,o8,u4,2024-02-29T12:00,0",
                    "13,o7,u3,2024-01-05T04:30:00.5Z,99",
                    "14,o14,u4,2024-02-30T12:00,1",
                ),
            ),
        ],
        [
            (
                "c.csv",
                csv_text(
                    ORDERS_HEADER,
                    "15,o1,u1,2024-01-01T08:00:00,50,",
                    "16,o2,u1,2024-01-06T10:00Z,4.5,",
                    "17,o8,u4,2024-02-29T12:00Z,0,",
                    "18,o9,u5,2024-03-01T00:00Z,1,",
                    "19,o10,u5,2024-13-01T00:00Z,1,",
                    "20,o13,u9,2024-01-01T10:00Z,2.5,2024-01-01",
                ),
            )
        ],
    ],
    "order_items": [
        [
            (
                "a.csv",
                csv_text(
                    ITEMS_HEADER,
                    "i1,o1,u1,,p1,1,TRUE,2024-01-01T10:00Z,",
                    "i2,o1,u1,365,p2,2,0,2024-01-01T10:00Z,2024-01-01",
                    "i3,o1,u1,366,p3,1,1,2024-01-01T10:00Z,",
                    "i4,o2,u1,1,p1,0,1,2024-01-03T01:30Z,",
                    "i5,o2,u1,1,p1,2147483648,1,2024-01-03T01:30Z,",
                    "i6,o2,u1,1,p1,1,yes,2024-01-03T01:30Z,",
                    "i7,o2,,1,p1,1,false,2024-01-03T01:30Z,",
                    "i1,o1,u1,,p1,3,true,2024-01-01T10:00Z,",
                    "i9,o2,u1, 007 ,p1, +2 ,FaLsE,2024-01-02 23:30-02:00,",
                ),
            )
        ],
        [
            (
                "b.csv",
                csv_text(
                    ITEMS_HEADER,
                    "i1,o1,u1,,p1,3,True,2024-01-01T10:00Z,",
                    "i2,o1,u1,7,p2,2,0,2024-01-01T11:00Z,",
                    "i8,o9,u5,,p6,1,FALSE,2024-03-01T00:00Z,",
                    "i9,o2,u1,7,p1,2,false,2024-01-03T01:30Z,",
                ),
            )
        ],
    ],
}
_SCHEMAS = {s.name: s for s in (PRODUCTS, ORDERS, ORDER_ITEMS)}


def _feed(case: EngineCase, root: Path, schema: TableSchema) -> list[Ingested]:
    lake = Lake(case=case, write_source=source_writer(root), root=root)
    quarantine = TableRef(name="quarantine", uri=str(root / "quarantine"))
    results = []
    for files in DIRTY[schema.name]:
        ingested = lake.ingest(schema, files)
        case.engine.append_frame(quarantine, QUARANTINE, ingested.staged.quarantine)
        results.append(ingested)
    return results


@pytest.mark.parametrize("name", list(DIRTY))
def test_the_same_dirty_input_gives_the_same_tables(
    engines: dict[str, EngineCase], tmp_path: Path, name: str
) -> None:
    schema = _SCHEMAS[name]
    runs = {n: _feed(case, tmp_path / n, schema) for n, case in engines.items()}
    for polars_run, spark_run in zip(runs["polars"], runs["spark"], strict=True):
        assert spark_run.per_file == polars_run.per_file
        assert spark_run.outcome.counts == polars_run.outcome.counts
        assert spark_run.outcome.touched_partitions == polars_run.outcome.touched_partitions
        assert spark_run.staged.counts == polars_run.staged.counts
        assert spark_run.staged.extra_columns == polars_run.staged.extra_columns

    # Something of every kind happened, or the comparison proves little.
    def total(run: Ingested, field: str) -> int:
        return sum(getattr(counts, field) for counts in run.per_file.values())

    first, second = runs["polars"]
    assert all(total(first, f) for f in ("inserted", "quarantined", "duplicates_in_batch"))
    assert all(total(second, f) for f in ("updated", "unchanged"))

    def table(engine: str, key: str, order: Sequence[str]) -> list[dict[str, Any]]:
        return without(delta_rows(str(tmp_path / engine / key), list(order)), CLOCK_COLUMNS)

    curated = f"lakehouse-dwh/{name}"
    key_order = list(schema.primary_key)
    assert table("spark", curated, key_order) == table("polars", curated, key_order)
    quarantine_order = ["source_file", "line_number"]
    spark_quarantine = table("spark", "quarantine", quarantine_order)
    assert spark_quarantine == table("polars", "quarantine", quarantine_order)
    assert spark_quarantine  # dirty input quarantines rows
    for uri in (tmp_path / "spark" / curated, tmp_path / "spark" / "quarantine"):
        assert_shareable(str(uri))
        assert schema_json(str(uri)) == schema_json(
            str(tmp_path / "polars" / uri.relative_to(tmp_path / "spark"))
        )
    assert (
        DeltaTable(str(tmp_path / "spark" / curated)).metadata().partition_columns
        == DeltaTable(str(tmp_path / "polars" / curated)).metadata().partition_columns
        == [schema.partition_column]
    )


# ---------------------------------------------------------------- the pipeline

RAW: dict[str, Content] = {
    "products/products_1.csv": DIRTY["products"][0][0][1],
    "products/products_2.csv": DIRTY["products"][0][1][1],
    "orders/orders_1.csv": DIRTY["orders"][0][0][1],
    "orders_2.csv": DIRTY["orders"][0][1][1],
    "order_items_1.csv": DIRTY["order_items"][0][0][1],
    "order_items_2.csv": b"",
    "order_items_3.csv": b"id,order_id\ni1,\xe9\n",  # not UTF-8: rejected
}


def _drop(root: Path, files: dict[str, Content]) -> None:
    for name, content in files.items():
        path = root / "raw-data" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)


def _tree(root: Path, zone: str) -> list[str]:
    return sorted(str(p.relative_to(root / zone)) for p in (root / zone).rglob("*") if p.is_file())


def test_the_pipeline_builds_the_same_lake_on_both_engines(tmp_path: Path) -> None:
    roots = {"polars": tmp_path / "polars", "spark": tmp_path / "spark"}
    for root in roots.values():
        _drop(root, RAW)
    polars_lake = lh.open_lake(str(roots["polars"]), engine="polars")
    # A directory lake opened with the Spark engine answers SQL with Spark SQL.
    spark_lake = lh.open_lake(str(roots["spark"]), engine="spark")
    assert type(spark_lake.platform.query).__name__ == "SparkSqlQueryService"
    options = lh.RunOptions(run_id="r1")
    results = {"polars": polars_lake.run(options), "spark": spark_lake.run(options)}

    for result in results.values():
        assert result.failed_step is None, result.error
        assert not result.failed_checks
    assert results["spark"].engine == "spark"

    def files(result: Any) -> list[tuple[str, FileStatus, RowCounts]]:
        return sorted((o.file.key, o.status, o.counts) for o in result.files)

    assert files(results["spark"]) == files(results["polars"])
    statuses = {o.status for o in results["spark"].files}
    assert statuses == {FileStatus.LOADED, FileStatus.REJECTED}

    def checks(result: Any) -> list[tuple[Any, ...]]:
        return sorted(
            (c.table_name, c.check_name, c.passed, c.observed, c.expected, c.sample)
            for c in result.checks
        )

    assert checks(results["spark"]) == checks(results["polars"])
    for zone in ("archive", "rejected", "raw-data"):
        assert _tree(roots["spark"], zone) == _tree(roots["polars"], zone)

    tables = {
        table_key("products"): ["product_id"],
        table_key("orders"): ["order_id"],
        table_key("order_items"): ["id"],
        audit_key("ingest_log"): ["source_path"],
        audit_key("quarantine"): ["source_file", "line_number"],
        audit_key("validation_results"): ["table_name", "check_name"],
    }
    for key, order in tables.items():
        spark_rows = without(delta_rows(str(roots["spark"] / key), order), CLOCK_COLUMNS)
        assert spark_rows == without(
            delta_rows(str(roots["polars"] / key), order), CLOCK_COLUMNS
        ), key
        assert_shareable(str(roots["spark"] / key))

    # Spark SQL and DuckDB answer the same query the same way.
    query = (
        "SELECT date, COUNT(*) AS n, SUM(total_amount) AS amount FROM orders"
        " GROUP BY date ORDER BY date"
    )
    assert spark_lake.sql(query).to_pylist() == polars_lake.sql(query).to_pylist()


@pytest.mark.parametrize(
    ("crashed_on", "recovered_on"),
    [("polars", "spark"), ("spark", "polars")],
    ids=["polars-crashes", "spark-crashes"],
)
def test_a_run_interrupted_on_one_engine_is_reconciled_by_the_other(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, crashed_on: str, recovered_on: str
) -> None:
    _drop(
        tmp_path,
        {
            "products/products_1.csv": csv_text(
                PRODUCTS_HEADER, "p1,1,frozen,Ice", "p2,2,bakery,Bread"
            )
        },
    )
    crashing = lh.open_lake(str(tmp_path), engine=crashed_on, options={"query": "duckdb"})
    original = crashing.engine.append_records

    def lose_the_log(table: Any, audit: Any, records: Any, **kwargs: Any) -> None:
        if audit.name == "ingest_log":
            raise OSError("injected: process killed")
        original(table, audit, records, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(crashing.engine, "append_records", lose_the_log)
        crashed = crashing.run(lh.RunOptions(run_id="crashed"))
    assert crashed.failed_step == "ingest"

    # The MERGE's commit (its metadata written by one engine) is read by the other's history.
    recovering = lh.open_lake(str(tmp_path), engine=recovered_on, options={"query": "duckdb"})
    recovered = recovering.run(lh.RunOptions(run_id="next"))

    assert recovered.ok, (recovered.error, recovered.failed_checks)
    log = recovering.sql(
        "SELECT run_id, status, inserted FROM ingest_log WHERE entity = 'products'"
    )
    assert sorted(tuple(r.values()) for r in log.to_pylist()) == [
        ("crashed", "loaded", 2),
        ("next", "skipped", 0),
    ]
    assert [
        r["product_id"] for r in delta_rows(str(tmp_path / table_key("products")), "product_id")
    ] == ["p1", "p2"]
