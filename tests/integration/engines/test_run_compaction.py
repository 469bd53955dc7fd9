"""A run compacts the partitions it touched once they hold many files, on every engine.

Each run below adds new orders only, so each engine appends new files to the partitions
they fall in (no MERGE rewrite): the files pile up run after run until the policy
(``compact_min_files``) compacts the crowded partitions the run touched, and only those.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
from deltalake import DeltaTable

import ecommerce_lakehouse as lh
from tests.contract.conftest_engines import EngineCase

HEADER = "order_num,order_id,user_id,order_timestamp,total_amount,date\n"


def _drop(root: Path, name: str, *orders: tuple[str, str]) -> None:
    path = root / "raw-data" / "orders" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = "".join(f"1,{order},u1,{day}T10:00:00Z,1.5,{day}\n" for order, day in orders)
    path.write_text(HEADER + rows, encoding="utf-8")


def _files(table: DeltaTable) -> dict[str, set[str]]:
    """The data files of the table's loaded version, by partition (its date as text)."""
    actions = pl.DataFrame(table.get_add_actions(flatten=True))
    files: dict[str, set[str]] = {}
    for path, day in actions.select("path", "partition.date").iter_rows():
        files.setdefault(str(day), set()).add(path)
    return files


def _rows(table: DeltaTable) -> list[dict[str, Any]]:
    frame = pl.DataFrame(table.to_pyarrow_table())
    return frame.sort("order_id").to_dicts()


def _run(lake: lh.Lake, run_id: str, compact_min_files: int) -> tuple[lh.RunResult, list[str]]:
    lines: list[str] = []
    options = lh.RunOptions(run_id=run_id, settle_seconds=0, compact_min_files=compact_min_files)
    result = lake.run(options, progress=lambda step, message: lines.append(message))
    assert result.ok, (result.error, result.failed_checks)
    return result, lines


def test_a_run_compacts_the_crowded_partitions_it_touched(
    tmp_path: Path, engine: EngineCase
) -> None:
    lake = lh.open_lake(str(tmp_path), engine=engine.name, options={"query": "duckdb"})
    uri = str(tmp_path / "lakehouse-dwh" / "orders")

    # Three small drops with the policy off: every drop adds files to both days.
    for n in (1, 2, 3):
        _drop(tmp_path, f"orders_{n}.csv", (f"a{n}", "2024-01-01"), (f"b{n}", "2024-01-02"))
        result, _ = _run(lake, f"r{n}", compact_min_files=0)
        assert result.compacted == {}
    piled = _files(DeltaTable(uri))
    assert all(len(files) >= 3 for files in piled.values()), piled
    assert "OPTIMIZE" not in [c.operation for c in lake.history("orders")]

    # A fourth drop touches 2024-01-01 only: that partition is compacted, the other is not.
    _drop(tmp_path, "orders_4.csv", ("a4", "2024-01-01"))
    result, lines = _run(lake, "r4", compact_min_files=3)

    table = DeltaTable(uri)
    after = _files(table)
    assert len(after["2024-01-01"]) <= 3  # at most N files in the touched partition
    assert len(after["2024-01-01"]) < len(piled["2024-01-01"]) + 1
    assert after["2024-01-02"] == piled["2024-01-02"]  # untouched: not rewritten
    assert result.compacted["orders"] == len(piled["2024-01-01"]) + 1
    assert f"compacted the touched partitions of orders: {result.compacted['orders']} small " in (
        " ".join(lines)
    )

    # The compaction commit follows the run's own commit and carries the run's id.
    compaction, merge = lake.history("orders", 2)
    assert compaction.operation == "OPTIMIZE"
    assert compaction.metadata["lakehouse.run_id"] == "r4"
    assert compaction.metadata["lakehouse.command"] == "compact"
    assert merge.metadata["lakehouse.run_id"] == "r4"
    # Same rows before and after it: the seven orders loaded.
    assert _rows(table) == _rows(DeltaTable(uri, version=merge.version))
    assert len(_rows(table)) == 7
    # It keeps the run's validation scoped to the run's rows.
    assert any(line.startswith("checks scoped to the rows of run(s) r4;") for line in lines)

    # With nothing new to load, nothing is touched and nothing is compacted.
    result, _ = _run(lake, "r5", compact_min_files=3)
    assert "orders" not in result.compacted
    assert lake.history("orders", 1)[0].version == compaction.version
