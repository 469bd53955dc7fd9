"""Polars: the data files of an append are the ones delta-rs would write, committed as a WRITE.

The files Polars writes for a first load (``delta.write_data_files``) are compared with what
``write_deltalake`` writes for the same rows: partition directories and values, statistics,
Parquet types and rows.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, date, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.dataset as pds
import pyarrow.parquet as pq
import pytest
from deltalake import CommitProperties, DeltaTable, write_deltalake

from ecommerce_lakehouse.domain.types import Column, ColumnType
from ecommerce_lakehouse_polars import merge as merge_module
from ecommerce_lakehouse_polars.delta import create_table, to_delta_arrow, write_data_files

COLUMNS = (
    Column(name="k", type=ColumnType.STRING, nullable=False),
    Column(name="i", type=ColumnType.INT),
    Column(name="n", type=ColumnType.BIGINT),
    Column(name="x", type=ColumnType.DOUBLE),
    Column(name="b", type=ColumnType.BOOLEAN),
    Column(name="ts", type=ColumnType.TIMESTAMP),
    Column(name="empty", type=ColumnType.STRING),
    Column(name="d", type=ColumnType.DATE),
)


def _ts(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


def _frame() -> pl.DataFrame:
    return pl.DataFrame(
        {
            # Text statistics are cut at 64 bytes, as delta-rs cuts them.
            "k": ["b", "a" * 31, "x" * 70, "é" * 40, "c", "\U0010ffff" * 20, "中" * 30],
            "i": [1, None, 3, -4, 5, 6, 7],
            "n": [10**12, 2, None, 4, 5, 6, 7],
            "x": [1.5, float("nan"), 2.25, None, -0.5, 3.0, 4.0],
            "b": [True, None, False, True, False, None, True],
            "ts": [
                _ts(2024, 1, 1, 10, 0, 0, 123456),
                _ts(2024, 1, 1, 11),
                None,
                _ts(2024, 1, 2, 9, 30, 0, 999),
                _ts(2023, 12, 31, 23, 59, 59, 999999),
                _ts(2024, 1, 2, 8),
                _ts(2024, 1, 3),
            ],
            "empty": pl.Series([None] * 7, dtype=pl.String),
            "d": [date(2024, 1, d) if d else None for d in (1, 1, 0, 2, 0, 2, 3)],
        },
        schema_overrides={"i": pl.Int32, "ts": pl.Datetime("us", "UTC")},
    )


def _append(tmp_path: Path, frame: pl.DataFrame, columns: Any, partition: str) -> DeltaTable:
    table = create_table(str(tmp_path / "mine"), columns, partition, {})
    merge_module._append(
        table,
        frame,
        columns,
        SimpleNamespace(partition_column=partition),  # type: ignore[arg-type]
        False,
        CommitProperties(custom_metadata={"lakehouse.run_id": "r1"}),
    )
    return DeltaTable(str(tmp_path / "mine"))


def _reference(tmp_path: Path, frame: pl.DataFrame, columns: Any, partition: str) -> DeltaTable:
    create_table(str(tmp_path / "theirs"), columns, partition, {})
    data = to_delta_arrow(frame, columns)
    write_deltalake(str(tmp_path / "theirs"), data, mode="append", partition_by=[partition])
    return DeltaTable(str(tmp_path / "theirs"))


def _log_adds(table: DeltaTable) -> dict[Any, dict[str, Any]]:
    """The add actions of the table's last commit by partition value, stats parsed."""
    version = table.version()
    log = Path(table.table_uri.removeprefix("file://")) / "_delta_log" / f"{version:020}.json"
    adds = [json.loads(line)["add"] for line in log.read_text().splitlines() if '"add"' in line]
    return {
        tuple(a["partitionValues"].items()): {**a, "stats": json.loads(a["stats"])} for a in adds
    }


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    return bool(a == b)


def test_files_statistics_and_rows_are_those_delta_rs_writes(tmp_path: Path) -> None:
    frame = _frame()
    mine = _append(tmp_path, frame, COLUMNS, "d")
    theirs = _reference(tmp_path, frame, COLUMNS, "d")

    mine_adds, their_adds = _log_adds(mine), _log_adds(theirs)
    assert (
        set(mine_adds)
        == set(their_adds)
        == {
            (("d", "2024-01-01"),),
            (("d", "2024-01-02"),),
            (("d", "2024-01-03"),),
            (("d", None),),
        }
    )
    for partition, add in mine_adds.items():
        theirs_add = their_adds[partition]
        assert add["stats"] == theirs_add["stats"], partition
        assert add["path"].split("/")[0] == theirs_add["path"].split("/")[0]
        assert add["path"].endswith(".snappy.parquet") and add["dataChange"] is True
    assert mine_adds[(("d", None),)]["path"].startswith("d=__HIVE_DEFAULT_PARTITION__/part-")
    # A key under 32 characters is exact; longer ones are cut (the maximum raised).
    stats = mine_adds[(("d", "2024-01-01"),)]["stats"]
    assert (stats["minValues"]["k"], stats["maxValues"]["k"]) == ("a" * 31, "b")
    assert stats["minValues"]["x"] == stats["maxValues"]["x"] == 1.5  # NaN left out

    # The same rows in the same order, read by delta-rs, Polars and a pyarrow dataset.
    def rows(table: DeltaTable) -> list[tuple[Any, ...]]:
        return pl.scan_delta(table).collect().sort("d", "k", nulls_last=True).rows()

    assert all(
        _same(a, b)
        for left, right in zip(rows(mine), rows(theirs), strict=True)
        for a, b in zip(left, right, strict=True)
    )
    dataset = mine.to_pyarrow_dataset()
    assert dataset.to_table(filter=pds.field("k") == "c").column("i").to_pylist() == [5]

    # Every stored column holds the Delta schema's Parquet type (text may be large_string).
    for uri in mine.file_uris():
        schema = pq.read_schema(uri)
        assert "d" not in schema.names
        assert {f.name: f.type for f in schema} == {
            "k": pa.large_string(),
            "i": pa.int32(),
            "n": pa.int64(),
            "x": pa.float64(),
            "b": pa.bool_(),
            "ts": pa.timestamp("us", tz="UTC"),
            "empty": pa.large_string(),
        }


def test_the_commit_is_one_write_with_its_metadata_and_metrics(tmp_path: Path) -> None:
    frame = _frame()
    table = _append(tmp_path, frame, COLUMNS, "d")
    [entry] = table.history(1)
    assert entry["operation"] == "WRITE"
    assert entry["operationParameters"]["mode"] == "Append"
    assert entry["lakehouse.run_id"] == "r1"
    assert entry["operationMetrics"] == {
        "num_added_files": 4,
        "num_added_rows": 7,
        "num_removed_files": 0,
    }
    # No metaData action: the schema is the table's own.
    assert table.version() == 1
    log = Path(str(table.table_uri).removeprefix("file://")) / "_delta_log" / f"{1:020}.json"
    assert '"metaData"' not in log.read_text()


def test_partition_directories_are_escaped_as_delta_rs_escapes_them(tmp_path: Path) -> None:
    columns = (Column(name="k", type=ColumnType.STRING), Column(name="p", type=ColumnType.STRING))
    values = ["a/b c=%", "é", "x~y.z-_", None, "#?:'\"*[]{}^\\"]
    frame = pl.DataFrame({"k": [str(i) for i in range(len(values))], "p": values})
    mine = _append(tmp_path, frame, columns, "p")
    theirs = _reference(tmp_path, frame, columns, "p")
    mine_adds, their_adds = _log_adds(mine), _log_adds(theirs)
    assert set(mine_adds) == set(their_adds)
    for partition, add in mine_adds.items():
        assert add["path"].split("/")[0] == their_adds[partition]["path"].split("/")[0]
    assert pl.scan_delta(mine).collect().sort("k").get_column("p").to_list() == values


def test_a_large_partition_is_split_into_files_in_row_order(tmp_path: Path) -> None:
    frame = pl.DataFrame(
        {
            "k": [f"k{i:02d}" for i in range(10)][::-1],
            "d": [date(2024, 1, 1 + i % 2) for i in range(10)],
        }
    )
    columns = (Column(name="k", type=ColumnType.STRING), Column(name="d", type=ColumnType.DATE))
    table = create_table(str(tmp_path / "t"), columns, "d", {})
    files = write_data_files(str(tmp_path / "t"), frame, columns, "d", rows_per_file=2)
    assert [f.rows for f in files] == [2, 2, 1, 2, 2, 1]
    assert [json.loads(f.action.stats)["numRecords"] for f in files] == [2, 2, 1, 2, 2, 1]
    read = [pq.read_table(tmp_path / "t" / f.action.path).column("k").to_pylist() for f in files]
    assert read == [
        ["k09", "k07"],
        ["k05", "k03"],
        ["k01"],
        ["k08", "k06"],
        ["k04", "k02"],
        ["k00"],
    ]
    table.create_write_transaction(
        [f.action for f in files], mode="append", schema=table.schema(), partition_by=["d"]
    )
    assert DeltaTable(str(tmp_path / "t")).to_pyarrow_table().num_rows == 10


@pytest.mark.parametrize(
    "dates",
    [
        pytest.param([1, 1, 1, 1, 1, None, None, 3, 3, 2], id="each-partition-one-run"),
        pytest.param([1, None, 3, 1, 2, 1, 3, None, 1, 1], id="partitions-interleaved"),
    ],
)
def test_each_file_holds_its_partitions_rows_in_row_order(
    tmp_path: Path, dates: list[int | None]
) -> None:
    # A batch in date order is sliced without a copy; any other order is gathered: either
    # way each partition's files hold its rows in the batch's order, split every 2 rows.
    frame = pl.DataFrame(
        {
            "k": [f"k{i:02d}" for i in range(len(dates))],
            "d": [None if d is None else date(2024, 1, d) for d in dates],
        }
    )
    columns = (Column(name="k", type=ColumnType.STRING), Column(name="d", type=ColumnType.DATE))
    create_table(str(tmp_path / "t"), columns, "d", {})
    files = write_data_files(str(tmp_path / "t"), frame, columns, "d", rows_per_file=2)
    written = [
        (f.action.partition_values["d"], pq.read_table(tmp_path / "t" / f.action.path))
        for f in files
    ]
    expected = []
    for value in [None, 1, 2, 3]:
        keys = [k for k, d in zip(frame["k"], dates, strict=True) if d == value]
        text = None if value is None else f"2024-01-{value:02d}"
        expected += [(text, keys[i : i + 2]) for i in range(0, len(keys), 2)]
    assert [(p, t.column("k").to_pylist()) for p, t in written] == expected
    assert all(t.column_names == ["k"] for _, t in written)
    assert [f.rows for f in files] == [len(keys) for _, keys in expected]


@pytest.mark.parametrize("rows", [0])
def test_no_rows_write_no_file(tmp_path: Path, rows: int) -> None:
    columns = (Column(name="k", type=ColumnType.STRING), Column(name="d", type=ColumnType.DATE))
    frame = pl.DataFrame(schema={"k": pl.String, "d": pl.Date})
    assert write_data_files(str(tmp_path), frame.head(rows), columns, "d") == []
