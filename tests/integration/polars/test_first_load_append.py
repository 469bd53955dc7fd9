"""Polars: a batch whose keys no stored row holds is appended, not MERGEd, with the same commit.

Also: which data files the key lookup reads (their key statistics rule the others out), and
that a crash after such an append commit is reconciled like one after a MERGE commit.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from ecommerce_lakehouse.application.reconcile import ReconcileInterruptedRuns
from ecommerce_lakehouse.domain.audit import RowCounts
from ecommerce_lakehouse.domain.schemas import ORDERS, PRODUCTS
from ecommerce_lakehouse.domain.types import FileStatus, SchemaEvolution
from ecommerce_lakehouse.ports.engine import MERGE_COUNTS_KEY, decode_merge_counts
from ecommerce_lakehouse_polars import merge as merge_module
from tests.contract.conftest_engines import polars_case
from tests.integration.engines.harness import Lake, csv_text, source_writer

ORDERS_HEADER = "order_num,order_id,user_id,order_timestamp,total_amount,date"


def orders(*rows: str) -> str:
    return csv_text(ORDERS_HEADER, *rows)


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return Lake(case=polars_case(), write_source=source_writer(tmp_path), root=tmp_path)


def _no_merge(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("a batch of new keys must not be MERGEd")


def test_a_first_load_is_one_append_commit_with_the_merge_metadata(
    lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(merge_module, "_merge", _no_merge)
    content = orders("1,A,u1,2024-01-01T10:00:00Z,5,", "2,B,u1,2024-01-02T10:00:00Z,6,")

    first = lake.ingest(
        ORDERS, [("a.csv", content), ("b.csv", orders("3,C,u2,2024-01-02T11:00:00Z,7,"))]
    )

    assert first.per_file == {
        "a.csv": RowCounts(rows_read=2, inserted=2),
        "b.csv": RowCounts(rows_read=1, inserted=1),
    }
    assert first.outcome.touched_partitions == ("2024-01-01", "2024-01-02")
    assert first.outcome.metrics["num_target_rows_inserted"] == 3
    assert first.outcome.metrics["num_added_rows"] == 3
    [commit] = lake.engine.history(lake.ref(ORDERS), limit=1)
    assert commit.version == first.outcome.version
    assert commit.operation == "WRITE"
    assert commit.metrics["num_added_rows"] == 3
    assert commit.metadata["lakehouse.run_id"] == "run-1"
    assert decode_merge_counts(commit.metadata[MERGE_COUNTS_KEY]) == first.outcome.counts
    # Partitioned like a MERGE writes it.
    assert sorted(
        pl.DataFrame(lake.table(ORDERS).get_add_actions(flatten=True))["partition.date"]
        .cast(pl.String)
        .to_list()
    ) == ["2024-01-01", "2024-01-02"]
    assert [r["order_id"] for r in lake.rows(ORDERS)] == ["A", "B", "C"]


def test_new_keys_into_a_loaded_table_are_appended_and_stored_keys_merged(
    lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake.ingest(ORDERS, [("a.csv", orders("1,A,u1,2024-01-01T10:00:00Z,5,"))])
    appended = lake.ingest(ORDERS, [("b.csv", orders("2,B,u1,2024-01-02T10:00:00Z,6,"))])
    assert lake.engine.history(lake.ref(ORDERS), limit=1)[0].operation == "WRITE"
    assert appended.per_file["b.csv"] == RowCounts(rows_read=1, inserted=1)

    # One stored key in the batch: a MERGE (an append would store "A" twice).
    merged = lake.ingest(
        ORDERS,
        [("c.csv", orders("1,A,u1,2024-01-03T10:00:00Z,9,", "3,C,u1,2024-01-03T10:00:00Z,1,"))],
    )
    assert merged.per_file["c.csv"] == RowCounts(rows_read=2, inserted=1, updated=1)
    assert lake.engine.history(lake.ref(ORDERS), limit=1)[0].operation == "MERGE"
    assert [(r["order_id"], r["total_amount"]) for r in lake.rows(ORDERS)] == [
        ("A", 9.0),
        ("B", 6.0),
        ("C", 1.0),
    ]


def test_the_key_lookup_reads_no_file_whose_key_range_rules_the_batch_out(
    lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake.ingest(ORDERS, [("a.csv", orders("1,k10,u1,2024-01-01T10:00:00Z,5,"))])
    lake.ingest(ORDERS, [("b.csv", orders("2,k20,u1,2024-01-02T10:00:00Z,5,"))])
    scanned: list[Any] = []
    scan = pl.scan_delta

    def counting(*args: Any, **kwargs: Any) -> Any:
        scanned.append(args)
        return scan(*args, **kwargs)

    monkeypatch.setattr(pl, "scan_delta", counting)
    table = lake.table(ORDERS)
    survivors = pl.DataFrame({"order_id": ["k30", "k31"]})
    assert merge_module.candidate_partitions(table, survivors, ORDERS.merge) == []
    survivors = pl.DataFrame({"order_id": ["k15", "k20"]})
    assert [
        str(v) for v in merge_module.candidate_partitions(table, survivors, ORDERS.merge) or ()
    ] == ["2024-01-02"]

    # A batch of new keys only: nothing is scanned and it is appended.
    fresh = lake.ingest(ORDERS, [("c.csv", orders("3,k30,u1,2024-01-01T11:00:00Z,5,"))])
    assert fresh.per_file["c.csv"] == RowCounts(rows_read=1, inserted=1)
    assert scanned == []
    # A stored key is found in its file, which alone is read.
    again = lake.ingest(ORDERS, [("d.csv", orders("2,k20,u1,2024-01-02T10:00:00Z,5,"))])
    assert again.per_file["d.csv"] == RowCounts(rows_read=1, unchanged=1)
    assert len(scanned) == 1


def test_long_keys_whose_statistics_may_be_cut_are_always_looked_up(lake: Lake) -> None:
    long_key = "x" * 40
    lake.ingest(ORDERS, [("a.csv", orders(f"1,{long_key},u1,2024-01-01T10:00:00Z,5,"))])
    table = lake.table(ORDERS)
    survivors = pl.DataFrame({"order_id": [long_key + "y"]})
    assert merge_module.candidate_partitions(table, survivors, ORDERS.merge) != []
    again = lake.ingest(ORDERS, [("b.csv", orders(f"1,{long_key},u1,2024-01-01T10:00:00Z,6,"))])
    assert again.per_file["b.csv"] == RowCounts(rows_read=1, updated=1)


def test_an_append_whose_metrics_disagree_is_refused(
    lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ecommerce_lakehouse.domain.errors import IntegrityError

    real = merge_module._logged_rows

    def short(table: Any, paths: set[str]) -> tuple[int, int]:
        files, rows = real(table, paths)
        return files, rows - 1

    monkeypatch.setattr(merge_module, "_logged_rows", short)
    with pytest.raises(IntegrityError, match="num_target_rows_inserted=1 but 2"):
        lake.ingest(
            ORDERS,
            [("a.csv", orders("1,A,u1,2024-01-01T10:00:00Z,5,", "2,B,u1,2024-01-01T10:00:00Z,5,"))],
        )


def test_an_append_whose_files_the_log_lacks_is_refused(
    lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ecommerce_lakehouse.domain.errors import IntegrityError

    monkeypatch.setattr(merge_module, "_logged_rows", lambda table, paths: (len(paths) - 1, 2))
    with pytest.raises(IntegrityError, match="wrote 2 file"):
        lake.ingest(
            ORDERS,
            [("a.csv", orders("1,A,u1,2024-01-01T10:00:00Z,5,", "2,B,u1,2024-01-02T10:00:00Z,5,"))],
        )


def test_a_batch_adding_columns_is_appended_by_delta_rs(
    lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fallback the docstring of ``_append`` names: evolved columns go to write_deltalake."""
    calls: list[bool] = []
    real = merge_module._append_with_delta_rs

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(True)
        return real(*args, **kwargs)

    monkeypatch.setattr(merge_module, "_append_with_delta_rs", spy)
    header = "product_id,department_id,department,product_name"
    lake.ingest(PRODUCTS, [("a.csv", csv_text(header, "1,1,dairy,milk"))])
    assert calls == []
    evolved = lake.ingest(
        PRODUCTS,
        [("b.csv", csv_text(f"{header},Gift Wrap", "2,1,dairy,cream,no"))],
        SchemaEvolution.ADD_NEW_COLUMNS,
    )
    assert calls == [True]
    assert evolved.per_file["b.csv"] == RowCounts(rows_read=1, inserted=1)
    assert lake.engine.history(lake.ref(PRODUCTS), limit=1)[0].operation == "WRITE"
    assert {r["product_id"]: r["gift_wrap"] for r in lake.rows(PRODUCTS)} == {"1": None, "2": "no"}


def test_a_crash_after_an_append_commit_is_reconciled(
    lake: Lake, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The append commit carries what reconciliation reads: the files and their counts."""
    from ecommerce_lakehouse.application.ingest_log import META_ENTITY, META_FILES, META_RUN_ID
    from ecommerce_lakehouse.ports.engine import TableRef

    staged_files = [
        {
            "key": "raw-data/orders/r1_a.csv",
            "checksum": "c" * 64,
            "size_bytes": 10,
            "rows_read": 2,
            "duplicates_in_batch": 0,
            "quarantined": 0,
        }
    ]
    real_merge = lake.engine.merge

    def with_metadata(ref: Any, batch: Any, schema: Any, metadata: Any) -> Any:
        full = {
            **metadata,
            META_ENTITY: schema.name,
            META_FILES: json.dumps(staged_files),
        }
        return real_merge(ref, batch, schema, full)

    monkeypatch.setattr(lake.engine, "merge", with_metadata)
    lake.ingest(
        ORDERS,
        [("a.csv", orders("1,A,u1,2024-01-01T10:00:00Z,5,", "2,B,u1,2024-01-02T10:00:00Z,6,"))],
    )
    [commit] = lake.engine.history(lake.ref(ORDERS), limit=1)
    assert commit.operation == "WRITE" and commit.metadata[META_RUN_ID] == "run-1"

    class Storage:
        root_uri = str(tmp_path)

        @property
        def storage_options(self) -> dict[str, str]:
            return {}

        def uri(self, key: str) -> str:
            return str(tmp_path / key)

    logged: list[Any] = []

    class Engine:
        def history(self, ref: TableRef, limit: int | None = None) -> Any:
            return lake.engine.history(ref, limit) if ref.name == "orders" else []

        def append_records(self, ref: TableRef, audit: Any, records: Any, **kwargs: Any) -> None:
            logged.extend(records)

    class Query:
        def sql(self, text: str) -> Any:
            return pa_empty()

    def pa_empty() -> Any:
        import pyarrow as pa

        return pa.table({"run_id": pa.array([], pa.string()), "entity": pa.array([], pa.string())})

    from ecommerce_lakehouse.application import tables

    orders_ref = lake.ref(ORDERS)
    real_ref = tables.curated_ref

    def ref_of(storage: Any, schema: Any) -> Any:
        return orders_ref if schema.name == "orders" else real_ref(storage, schema)

    monkeypatch.setattr("ecommerce_lakehouse.application.reconcile.curated_ref", ref_of)
    entries = ReconcileInterruptedRuns(Engine(), Storage(), Query())("run-2")  # type: ignore[arg-type]
    assert [(e.run_id, e.source_path, e.status, e.counts) for e in entries] == [
        ("run-1", "raw-data/orders/r1_a.csv", FileStatus.LOADED, RowCounts(rows_read=2, inserted=2))
    ]
    assert logged and logged[0]["run_id"] == "run-1"
