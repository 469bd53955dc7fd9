"""The model of `lakehouse report` (`Lake.report()`), gathered from a small real lake.

Runs on the Polars engine and DuckDB, the local defaults; the page itself is tested in a
browser (tests/e2e/test_report_html.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import ecommerce_lakehouse as lh
from ecommerce_lakehouse.application import lake_report
from ecommerce_lakehouse.application.lake_report import QuarantineExample
from ecommerce_lakehouse.application.tables import TABLE_NAMES

PRODUCTS = "product_id,department_id,department,product_name\n"
ORDERS = "order_num,order_id,user_id,order_timestamp,total_amount\n"


def _drop(root: Path, files: dict[str, str | bytes]) -> None:
    for key, content in files.items():
        path = root / "raw-data" / key
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)


def _run(lake: lh.Lake, run_id: str) -> lh.RunResult:
    result = lake.run(lh.RunOptions(run_id=run_id, settle_seconds=0))
    assert result.failed_step is None, result.error
    return result


@pytest.fixture
def lake(tmp_path: Path) -> lh.Lake:
    """Run r1: products (one with a column not in the schema), orders with 4 refused rows;
    run r2: a rejected file and an update."""
    opened = lh.open_lake(str(tmp_path))
    _drop(
        tmp_path,
        {
            "products/p.csv": PRODUCTS + "p1,1,dairy,Milk\n",
            "products/extra.csv": PRODUCTS.rstrip("\n") + ",coupon\np2,1,dairy,Butter,C\n",
            "orders/o1.csv": ORDERS
            + "1,o1,u1,2024-01-01T10:00:00Z,1.5\n"
            + "2,o2,u2,2024-01-01T10:00:00Z,x\n"
            + "3,o3,u3,2024-01-01T10:00:00Z,y\n"
            + "4,o4,u4,2024-01-01T10:00:00Z,z\n"
            + "5,o5,u5,2024-01-01T10:00:00Z,-1\n",
        },
    )
    _run(opened, "20260101T000000Z-aaaaaa")
    _drop(
        tmp_path,
        {
            "orders/bad.csv": b"\xff\xfe not utf-8\n",
            "orders/o2.csv": ORDERS + "1,o1,u1,2024-01-01T11:00:00Z,9.0\n",
        },
    )
    _run(opened, "20260102T000000Z-bbbbbb")
    return opened


def test_a_new_lake_gives_an_empty_report(tmp_path: Path) -> None:
    report = lh.open_lake(str(tmp_path)).report()
    assert report.runs == () and report.last_run is None and report.runs_total == 0
    assert report.files_by_status == {} and report.quarantine_groups == ()
    assert report.validations == () and report.checks == ()
    assert [t.name for t in report.tables] == list(TABLE_NAMES)
    assert all(t.version is None and t.rows is None for t in report.tables)


def test_the_report_holds_the_runs_files_quarantine_drift_checks_and_tables(
    lake: lh.Lake,
) -> None:
    report = lake.report()
    assert report.root == lake.root

    first, second = reversed(report.runs)
    assert report.last_run is second and report.runs_total == 2
    assert second.run_id == "20260102T000000Z-bbbbbb" and second.ok
    assert second.files_by_status == {"loaded": 1, "rejected": 1}
    assert second.totals.updated == 1 and len(second.warnings) == 1
    assert first.files_by_status == {"loaded": 3}
    assert first.totals.quarantined == 4 and first.checks == 16 and first.checks_failed == 0
    assert set(first.step_seconds) >= {"discover", "ingest", "validate"}
    assert first.seconds >= 0

    assert report.files_by_status == {"loaded": 4, "rejected": 1}
    [rejected] = report.rejected
    assert rejected.source_path == "raw-data/orders/bad.csv"
    assert rejected.run_id == second.run_id
    assert rejected.reason.startswith("not_utf8: ")
    assert rejected.destination and rejected.destination.startswith("rejected/")

    [drift] = report.drift
    assert (drift.source_path, drift.columns, drift.rows) == (
        "raw-data/products/extra.csv",
        ("coupon",),
        1,
    )

    assert report.quarantine_by_rule == {"parses_as_double": 3, "in_range": 1}
    assert report.quarantined_rows == 4
    biggest, smallest = report.quarantine_groups
    assert (biggest.rule, biggest.column_name, biggest.source_file, biggest.rows) == (
        "parses_as_double",
        "total_amount",
        "raw-data/orders/o1.csv",
        3,
    )
    assert [e.line_number for e in biggest.examples] == [3, 4, 5]
    assert json.loads(biggest.examples[0].raw_record)["total_amount"] == "x"
    assert smallest.rule == "in_range" and smallest.examples == (
        QuarantineExample(
            line_number=6,
            reason=smallest.examples[0].reason,
            raw_record=smallest.examples[0].raw_record,
        ),
    )
    assert report.quarantine_groups_total == 2

    assert [v.run_id for v in report.validations] == [second.run_id, first.run_id]
    assert report.validations_total == 2
    assert report.check_grid_runs == (first.run_id, second.run_id)
    assert len(report.checks) == 16
    assert all(len(c.outcomes) == 2 for c in report.checks)
    assert all(o is not None and o.passed for c in report.checks for o in c.outcomes)

    tables = {t.name: t for t in report.tables}
    assert (tables["products"].rows, tables["orders"].rows) == (2, 1)
    assert tables["orders"].data_files >= 2 and tables["orders"].data_bytes > 0
    assert tables["orders"].history[0].version == tables["orders"].version
    assert tables["orders"].history[0].metadata["lakehouse.run_id"] == second.run_id


def test_every_part_is_bounded(lake: lh.Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    # Smaller bounds on the same lake: the report shows the newest and counts them all.
    monkeypatch.setattr(lake_report, "MAX_RUNS", 1)
    monkeypatch.setattr(lake_report, "MAX_VALIDATIONS", 1)
    monkeypatch.setattr(lake_report, "CHECK_GRID_VALIDATIONS", 1)
    monkeypatch.setattr(lake_report, "MAX_QUARANTINE_GROUPS", 1)
    monkeypatch.setattr(lake_report, "EXAMPLES_PER_GROUP", 2)
    monkeypatch.setattr(lake_report, "MAX_REJECTED", 0)
    monkeypatch.setattr(lake_report, "HISTORY_PER_TABLE", 1)
    report = lake.report()
    assert [r.run_id for r in report.runs] == ["20260102T000000Z-bbbbbb"]
    assert report.runs_total == 2
    assert len(report.validations) == 1 and report.validations_total == 2
    assert report.check_grid_runs == ("20260102T000000Z-bbbbbb",)
    [group] = report.quarantine_groups
    assert group.rows == 3 and [e.line_number for e in group.examples] == [3, 4]
    assert report.quarantine_groups_total == 2
    assert report.rejected == () and report.rejected_total == 1
    assert all(len(t.history) <= 1 for t in report.tables)


def test_an_unreadable_run_record_is_named_and_the_others_still_read(
    lake: lh.Lake, tmp_path: Path
) -> None:
    (tmp_path / "_runs" / "20260103T000000Z-cccccc.json").write_text("{not json")
    newer = json.loads((tmp_path / "_runs" / "20260102T000000Z-bbbbbb.json").read_text())
    newer.update(run_id="20260104T000000Z-dddddd", version=99)
    (tmp_path / "_runs" / "20260104T000000Z-dddddd.json").write_text(json.dumps(newer))
    report = lake.report()
    assert report.runs_total == 4 and len(report.runs) == 2
    first, second = report.unreadable_runs
    assert first.startswith("_runs/20260103T000000Z-cccccc.json: ")
    assert second.startswith("_runs/20260104T000000Z-dddddd.json: ") and "newer" in second


def test_a_run_record_reads_back_its_rescued_columns(lake: lh.Lake, tmp_path: Path) -> None:
    record = json.loads((tmp_path / "_runs" / "20260101T000000Z-aaaaaa.json").read_text())
    again = lh.RunResult.from_dict(record)
    assert [f.rescued_columns for f in again.files if f.rescued_columns] == [("coupon",)]
    assert again.warnings == tuple(record["warnings"])
    record["files"][0]["rescued_columns"] = "coupon"
    with pytest.raises(ValueError, match="'rescued_columns' is not a list of names"):
        lh.RunResult.from_dict(record)
