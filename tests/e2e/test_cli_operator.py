"""What an operator meets on day 2, through the `lakehouse` command as a user types it.

Rejected files are warnings a scheduler can fail on (`--fail-on-rejected`), query output
to the terminal is capped with an "N of M rows" footer, `history` puts the row counts
first, `tables` lists the lake's tables, `validate --format json`, `--version`, and enum
errors name the flag, not a class (the library's, tests/unit/test_library_api.py, say it in
words).
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from importlib.metadata import version
from pathlib import Path

import pytest

from tests.e2e.test_cli import assert_one_line_error, lakehouse, sql_json

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


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A lake after one run: 150 orders over two days, then a daily batch updating one."""
    root = tmp_path_factory.mktemp("lake")
    rows = "".join(
        f"{i},o{i},u{i % 7},2024-01-0{1 + i % 2}T10:00:00Z,{i}.5\n" for i in range(1, 151)
    )
    _drop(root, {"products/p.csv": PRODUCTS + "p1,1,dairy,Milk\n", "orders/o1.csv": ORDERS + rows})
    done = lakehouse("run", "--lake", str(root), "--settle-seconds", "0")
    assert done.returncode == 0, done.stdout + done.stderr
    _drop(root, {"orders/o2.csv": ORDERS + "1,o1,u1,2024-01-02T11:00:00Z,99.0\n"})
    done = lakehouse("run", "--lake", str(root), "--settle-seconds", "0")
    assert done.returncode == 0, done.stdout + done.stderr
    return root


def test_version_names_the_release() -> None:
    done = lakehouse("--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"lakehouse {version('ecommerce-lakehouse-cli')}"


def test_a_rejected_file_is_a_warning_and_fails_the_run_only_when_asked(tmp_path: Path) -> None:
    _drop(
        tmp_path,
        {
            "products/p.csv": PRODUCTS + "p1,1,dairy,Milk\n",
            "orders/bad.csv": b"\xff\xfe not utf-8 at all\n",
        },
    )
    done = lakehouse("run", "--lake", str(tmp_path), "--settle-seconds", "0", "--format", "json")
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout)
    assert result["ok"] is True
    [warning] = result["warnings"]
    assert warning.startswith("raw-data/orders/bad.csv was rejected: ")
    assert "rejected/" in warning
    # The run's record says the same.
    record = json.loads((tmp_path / "_runs" / f"{result['run_id']}.json").read_text())
    assert record["warnings"] == result["warnings"] and record["ok"] is True

    _drop(tmp_path, {"orders/bad2.csv": b"\xff\xfe still not utf-8\n"})
    done = lakehouse("run", "--lake", str(tmp_path), "--settle-seconds", "0", "--fail-on-rejected")
    assert done.returncode == 1, done.stdout + done.stderr
    # The warning is one line of the report, the file name whole, however narrow the pipe.
    assert re.search(r"^warning: raw-data/orders/bad2\.csv was rejected: ", done.stdout, re.M)
    assert "1 file(s) rejected" in done.stdout
    assert "Traceback" not in done.stderr


def test_a_clean_run_has_no_warning_and_fail_on_rejected_keeps_exit_0(tmp_path: Path) -> None:
    long_name = "products_" + "daily_export_" * 12 + "2024-01-01.csv"
    _drop(tmp_path, {f"products/{long_name}": PRODUCTS + "p1,1,dairy,Milk\n"})
    done = lakehouse("run", "--lake", str(tmp_path), "--settle-seconds", "0", "--fail-on-rejected")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "warning:" not in done.stdout
    # Piped, the report is as wide as its longest file name: nothing is cut with "…".
    assert f"raw-data/products/{long_name}" in done.stdout
    assert "…" not in done.stdout


def test_query_output_to_the_terminal_is_capped_and_says_so(lake: Path) -> None:
    done = lakehouse("sql", "--lake", str(lake), "--max-rows", "20", "SELECT * FROM orders")
    assert done.returncode == 0, done.stderr
    assert "20 of 150 row(s) shown" in done.stdout
    assert "o1" in done.stdout
    done = lakehouse("sql", "--lake", str(lake), "SELECT * FROM orders")
    assert "100 of 150 row(s) shown" in done.stdout
    # Machine formats are never capped.
    done = lakehouse("sql", "--lake", str(lake), "--format", "csv", "SELECT * FROM orders")
    assert len(done.stdout.strip().splitlines()) == 151
    done = lakehouse("sql", "--lake", str(lake), "SELECT COUNT(*) AS n FROM orders")
    assert "1 row(s)" in done.stdout and " of " not in done.stdout
    assert_one_line_error(lakehouse("sql", "--lake", str(lake), "--max-rows", "0", "SELECT 1"), 2)


def test_history_shows_rows_inserted_and_updated_first(lake: Path) -> None:
    done = lakehouse("history", "orders", "--lake", str(lake))
    assert done.returncode == 0, done.stderr
    merge = next(line for line in done.stdout.splitlines() if "MERGE" in line)
    assert re.search(r"num_target_rows_inserted=0, num_target_rows_updated=1", merge), merge
    done = lakehouse("history", "orders", "--lake", str(lake), "--format", "json")
    commits = json.loads(done.stdout)
    # Metadata holding JSON is JSON, not a string to parse again.
    files = [
        c["metadata"]["lakehouse.files"] for c in commits if "lakehouse.files" in c["metadata"]
    ]
    assert files and all(isinstance(f, list) for f in files)


def test_tables_lists_every_table_with_its_version_and_rows(lake: Path) -> None:
    done = lakehouse("tables", "--lake", str(lake), "--format", "json")
    assert done.returncode == 0, done.stderr
    tables = {t["name"]: t for t in json.loads(done.stdout)}
    assert list(tables)[:3] == ["products", "orders", "order_items"]
    assert tables["orders"]["kind"] == "curated" and tables["orders"]["rows"] == 150
    assert tables["ingest_log"]["kind"] == "audit" and tables["ingest_log"]["rows"] == 3
    assert tables["orders"]["version"] >= 2
    assert tables["orders"]["location"].endswith("orders")
    done = lakehouse("tables", "--lake", str(lake))
    assert done.returncode == 0 and "order_items" in done.stdout
    # SHOW TABLES names no table, and lists them all.
    done = lakehouse("sql", "--lake", str(lake), "--format", "json", "SHOW TABLES")
    assert done.returncode == 0, done.stderr
    assert {row["name"] for row in json.loads(done.stdout)} == set(tables)


def test_validate_prints_json_when_asked(lake: Path) -> None:
    done = lakehouse("validate", "--lake", str(lake), "--format", "json")
    assert done.returncode == 0, done.stderr
    checks = json.loads(done.stdout)
    assert {c["check_name"] for c in checks} >= {
        "primary_key_unique",
        "row_count_matches_ingest_log",
    }
    assert all(c["passed"] for c in checks if c["severity"] == "error")


def test_an_unknown_choice_is_named_in_words(tmp_path: Path) -> None:
    done = lakehouse("run", "--lake", str(tmp_path), "--schema-evolution", "merge")
    assert_one_line_error(done, 2)
    assert "SchemaEvolution" not in done.stderr
    assert "invalid --schema-evolution 'merge': expected one of rescue" in done.stderr


def test_time_travel_by_timestamp_reads_the_version_of_that_instant(lake: Path) -> None:
    done = lakehouse("history", "orders", "--lake", str(lake), "--format", "json")
    commits = {c["version"]: c["timestamp"] for c in json.loads(done.stdout)}
    latest = max(commits)
    query = "SELECT total_amount FROM orders WHERE order_id = 'o1'"

    def amount(pin: str) -> object:
        done = lakehouse("sql", "--lake", str(lake), "--format", "json", "--as-of", pin, query)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)[0]["total_amount"]

    # At the instant of the commit before the update, o1 is as first loaded; at the newest
    # commit's instant (written with "Z"), as updated.
    assert amount(f"orders={commits[latest - 1]}") == 1.5
    newest = commits[latest].replace("+00:00", "Z")
    assert amount(f"orders={newest}") == 99.0
    assert amount(f"orders={latest - 1}") == 1.5  # versions still work
    # Before the table existed: one line naming its first commit.
    early = lakehouse("sql", "--lake", str(lake), "--as-of", "orders=2000-01-01", query)
    assert_one_line_error(early, 2)
    assert "table 'orders' has no version at 2000-01-01T00:00:00+00:00" in early.stderr
    assert_one_line_error(
        lakehouse("sql", "--lake", str(lake), "--as-of", "orders=yesterday", query), 2
    )


def test_optimize_compacts_with_an_audit_trail_and_vacuum_keeps_a_week(tmp_path: Path) -> None:
    for day in range(1, 4):  # three runs: three small files in one partition
        rows = f"{day},o{day},u1,2024-01-01T0{day}:00:00Z,{day}.0\n"
        _drop(tmp_path, {f"orders/o{day}.csv": ORDERS + rows})
        done = lakehouse("run", "--lake", str(tmp_path), "--settle-seconds", "0")
        assert done.returncode == 0, done.stdout + done.stderr

    done = lakehouse("optimize", "orders", "--lake", str(tmp_path), "--format", "json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["command"] == "optimize" and result["files"] == {"orders": 3}
    # Who, when and what: the record, and the OPTIMIZE commit carries the command's run id.
    record = json.loads((tmp_path / "_maintenance" / f"{result['run_id']}.json").read_text())
    assert record["files"] == {"orders": 3} and record["user"] and record["finished_at"]
    history = lakehouse("history", "orders", "--lake", str(tmp_path), "--format", "json")
    newest = json.loads(history.stdout)[0]
    assert newest["operation"] == "OPTIMIZE"
    assert newest["metadata"]["lakehouse.run_id"] == result["run_id"]
    # The rows and the checks are unchanged.
    count = lakehouse(
        "sql", "--lake", str(tmp_path), "--format", "csv", "SELECT COUNT(*) FROM orders"
    )
    assert count.stdout.splitlines()[1] == "3"
    assert lakehouse("validate", "--lake", str(tmp_path)).returncode == 0

    # Vacuum keeps at least a week; the files optimize replaced are younger than that.
    assert_one_line_error(lakehouse("vacuum", "--lake", str(tmp_path), "--retain", "1"), 2)
    done = lakehouse("vacuum", "--lake", str(tmp_path), "--format", "json")
    assert done.returncode == 0, done.stderr
    vacuumed = json.loads(done.stdout)
    assert vacuumed["retain_hours"] == 168 and set(vacuumed["files"]) >= {"orders", "ingest_log"}
    assert all(n == 0 for n in vacuumed["files"].values())
    assert_one_line_error(lakehouse("optimize", "nope", "--lake", str(tmp_path)), 2)
    huge = lakehouse("vacuum", "--lake", str(tmp_path), "--retain", "2562047788016")
    assert_one_line_error(huge, 2)
    assert "at most 876000 hours" in huge.stderr

    # A record that cannot be written does not undo (or hide) the work done.
    (tmp_path / "_maintenance").rename(tmp_path / "records")
    (tmp_path / "_maintenance").write_text("a file where the folder should be")
    done = lakehouse("optimize", "--lake", str(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "warning: could not write the record _maintenance/" in done.stdout


def test_a_file_name_that_is_not_utf8_is_ignored_and_the_others_load(tmp_path: Path) -> None:
    _drop(tmp_path, {"products/ok.csv": PRODUCTS + "p1,1,dairy,Milk\n"})
    folder = bytes(tmp_path / "raw-data" / "products")
    with open(folder + b"/raw\xffname.csv", "wb") as handle:
        handle.write((PRODUCTS + "p2,1,dairy,Cream\n").encode())
    done = lakehouse("run", "--lake", str(tmp_path), "--settle-seconds", "0", "--format", "json")
    assert done.returncode == 0, done.stdout + done.stderr
    files = {f["source_path"]: f for f in json.loads(done.stdout)["files"]}
    assert files["raw-data/products/ok.csv"]["status"] == "loaded"
    odd = files["raw-data/products/raw\\xffname.csv"]
    assert odd["status"] == "ignored" and odd["error"].startswith("invalid_name: ")
    assert os.path.exists(folder + b"/raw\xffname.csv")  # left where it is


def test_quarantined_rows_export_with_their_header_and_load_once_fixed(tmp_path: Path) -> None:
    lake, out = tmp_path / "lake", tmp_path / "export"
    # The header as the sender wrote it (case, spaces, an extra column kept in the record).
    header = "Order_Num, order_id ,user_id,order_timestamp,total_amount,coupon\n"
    good = "1,o1,u1,2024-01-01T10:00:00Z,5.0,\n"
    bad = (
        '2,o2,u2,2024-01-01T11:00:00Z,-3.0,"SAVE, 10%"\n'  # negative amount
        "3,,u3,2024-01-01T12:00:00Z,4.0,\n"  # no order id
        "4,o4,u4,2024-01-01T13:00:00Z,6.0,,surplus\n"  # a field past the header
    )
    _drop(lake, {"orders/orders_2024-01-01.csv": header + good + bad})
    done = lakehouse("run", "--lake", str(lake), "--settle-seconds", "0")
    assert done.returncode == 0, done.stdout + done.stderr

    done = lakehouse("quarantine", "export", "--lake", str(lake), "--out", str(out))
    assert done.returncode == 0, done.stderr
    [written] = list((out / "orders").glob("orders_2024-01-01.quarantine-*.csv"))
    assert written.name in done.stdout
    rows = list(csv.reader(written.open(newline="")))
    assert rows[0] == [
        "Order_Num",
        " order_id ",
        "user_id",
        "order_timestamp",
        "total_amount",
        "coupon",
    ]
    assert rows[1:] == [
        ["2", "o2", "u2", "2024-01-01T11:00:00Z", "-3.0", "SAVE, 10%"],
        ["3", "", "u3", "2024-01-01T12:00:00Z", "4.0", ""],
        ["4", "o4", "u4", "2024-01-01T13:00:00Z", "6.0", "", "surplus"],
    ]
    # Filters: by rule, and a file or rule nothing matches writes nothing.
    by_rule = tmp_path / "by-rule"
    done = lakehouse(
        "quarantine", "export", "--lake", str(lake), "--out", str(by_rule), "--rule", "not_null"
    )
    assert done.returncode == 0, done.stderr
    [only] = list((by_rule / "orders").glob("*.csv"))
    assert [r[2] for r in csv.reader(only.open(newline=""))] == ["user_id", "u3"]
    none = tmp_path / "none"
    done = lakehouse(
        "quarantine", "export", "--lake", str(lake), "--out", str(none), "--file", "x.csv"
    )
    assert done.returncode == 0 and "nothing written" in done.stdout
    assert_one_line_error(
        lakehouse("quarantine", "export", "--lake", str(lake), "--out", str(out)), 2
    )

    # Fixed and dropped back, the rows load.
    fixed = [rows[0], [*rows[1][:4], "3.0", "SAVE"], [rows[2][0], "o3", *rows[2][2:6]]]
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows(fixed)
    _drop(lake, {"orders/orders_2024-01-01_fixed.csv": text.getvalue()})
    done = lakehouse("run", "--lake", str(lake), "--settle-seconds", "0", "--format", "json")
    assert done.returncode == 0, done.stdout + done.stderr
    [outcome] = [f for f in json.loads(done.stdout)["files"] if f["status"] == "loaded"]
    assert (outcome["inserted"], outcome["quarantined"]) == (2, 0)


def test_schema_drift_is_a_warning_naming_the_columns(tmp_path: Path) -> None:
    _drop(tmp_path, {"products/p.csv": PRODUCTS.rstrip("\n") + ",coupon_code\np1,1,dairy,Milk,X\n"})
    done = lakehouse("run", "--lake", str(tmp_path), "--settle-seconds", "0", "--format", "json")
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout)
    assert result["warnings"] == [
        "raw-data/products/p.csv has column(s) not in the schema: coupon_code; "
        "its 1 row(s) keep them in _rescued_data"
    ]
    assert result["files"][0]["rescued_columns"] == ["coupon_code"]


def test_the_runbook_rollback_leaves_a_valid_lake_and_the_file_loads_again(tmp_path: Path) -> None:
    # The trap: restore, then validate failed row_count_matches_ingest_log forever,
    # the archived file put back was skipped by checksum, and every later run exited 1.
    first = "".join(f"{i},o{i},u1,2024-01-01T10:00:00Z,{i}.5\n" for i in range(1, 6))
    _drop(tmp_path, {"orders/o1.csv": ORDERS + first})
    assert lakehouse("run", "--lake", str(tmp_path), "--settle-seconds", "0").returncode == 0
    _drop(tmp_path, {"orders/o2.csv": ORDERS + "1,o1,u1,2024-01-02T10:00:00Z,9.0\n"})
    assert lakehouse("run", "--lake", str(tmp_path), "--settle-seconds", "0").returncode == 0
    loaded = json.loads(
        lakehouse("history", "orders", "--lake", str(tmp_path), "--format", "json").stdout
    )
    version = loaded[1]["version"]  # the first load's commit

    done = lakehouse("restore", "orders", "--lake", str(tmp_path), "--version", str(version))

    assert done.returncode == 0, done.stderr
    assert f"orders: restored to version {version}" in done.stdout
    assert "raw-data/orders/o2.csv" in done.stdout
    checked = lakehouse("validate", "--lake", str(tmp_path), "--format", "json")
    assert checked.returncode == 0, checked.stdout
    assert all(check["passed"] for check in json.loads(checked.stdout))
    ledger = sql_json(
        tmp_path,
        "SELECT status, inserted, updated FROM ingest_log WHERE source_path LIKE '%o2.csv' "
        "ORDER BY started_at",
    )
    assert ledger == [
        {"status": "loaded", "inserted": 0, "updated": 1},
        {"status": "rolled_back", "inserted": 0, "updated": -1},
    ]

    back = lakehouse("reprocess", "raw-data/orders/o2.csv", "--lake", str(tmp_path))
    assert back.returncode == 0, back.stderr
    assert (tmp_path / "raw-data" / "orders" / "o2.csv").is_file()
    again = lakehouse("run", "--lake", str(tmp_path), "--settle-seconds", "0", "--format", "json")
    assert again.returncode == 0, again.stdout
    assert [f["status"] for f in json.loads(again.stdout)["files"]] == ["loaded"]
    assert sql_json(tmp_path, "SELECT total_amount FROM orders WHERE order_id = 'o1'") == [
        {"total_amount": 9.0}
    ]


def test_restore_forget_and_reprocess_refuse_bad_requests_in_one_line(tmp_path: Path) -> None:
    _drop(tmp_path, {"orders/o1.csv": ORDERS + "1,o1,u1,2024-01-01T10:00:00Z,1.5\n"})
    assert lakehouse("run", "--lake", str(tmp_path), "--settle-seconds", "0").returncode == 0
    lake = ("--lake", str(tmp_path))
    for args in (
        ("restore", "orders", *lake),  # neither --version nor --timestamp
        ("restore", "orders", *lake, "--version", "1", "--timestamp", "2024-01-01"),
        ("restore", "orders", *lake, "--version", "99"),
        ("restore", "orders", *lake, "--timestamp", "yesterday"),
        ("restore", "orders", *lake, "--timestamp", "1999-01-01"),  # before the table
        ("restore", "ingest_log", *lake, "--version", "0"),
        ("forget", "raw-data/orders/nope.csv", *lake),
        ("reprocess", "[bold]x[/bold]", *lake),
    ):
        done = lakehouse(*args)
        assert_one_line_error(done, 2)
    assert "[bold]x[/bold]" in done.stderr  # shown as written, not as markup
    for command in ("restore", "forget", "reprocess"):
        helped = lakehouse(command, "--help")
        assert helped.returncode == 0 and "Usage" in helped.stdout
