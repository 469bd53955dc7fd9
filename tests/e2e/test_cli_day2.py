"""Operator fixes of issue 14, through the `lakehouse` command as a user types it.

A table whose ``_delta_log`` is corrupt is named in a one-line error; JSON output escapes
the line separators and invisible characters; ``--schema-evolution add_new_columns`` says
which columns it added; ``quarantine list`` shows which quarantined rows a later run loaded.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.e2e.test_cli import assert_one_line_error, lakehouse

PRODUCTS = "product_id,department_id,department,product_name\n"
ORDERS = "order_num,order_id,user_id,order_timestamp,total_amount\n"


def _drop(root: Path, files: dict[str, str]) -> None:
    for key, content in files.items():
        path = root / "raw-data" / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")


def _run(root: Path, *extra: str) -> dict[str, object]:
    done = lakehouse(
        "run", "--lake", str(root), "--settle-seconds", "0", "--format", "json", *extra
    )
    assert done.returncode == 0, done.stdout + done.stderr
    result: dict[str, object] = json.loads(done.stdout)
    return result


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A lake after one run of a few products and orders."""
    root = tmp_path_factory.mktemp("lake")
    _drop(
        root,
        {
            "products/p.csv": PRODUCTS + "p1,1,dairy,Milk\n",
            "orders/o.csv": ORDERS + "1,o1,u1,2024-01-01T10:00:00Z,1.5\n",
        },
    )
    _run(root)
    return root


@pytest.mark.parametrize(
    ("table", "log"),
    [("orders", "lakehouse-dwh/orders"), ("ingest_log", "lakehouse-dwh/_audit/ingest_log")],
)
def test_a_corrupt_delta_log_is_a_one_line_error_naming_the_table(
    loaded: Path, tmp_path: Path, table: str, log: str
) -> None:
    root = tmp_path / "lake"
    shutil.copytree(loaded, root)
    (root / log / "_delta_log" / "00000000000000000001.json").write_text("garbage{\n")

    for command in (
        ["tables"],
        ["history", table],
        ["optimize", table],
        ["vacuum", table],
    ):
        done = lakehouse(*command, "--lake", str(root))
        assert_one_line_error(done, 1)
        message = done.stderr.strip()
        assert f"table '{table}'" in message, (command, message)
        assert "_delta_log" in message and "json" in message.lower(), (command, message)


#: A line separator and a zero-width space: invisible, or a line break, in a terminal.
HIDDEN = "\u2028\u200b"
ITEMS = (
    "id,order_id,user_id,days_since_prior_order,product_id,add_to_cart_order,reordered,"
    "order_timestamp,date\n"
)


def test_json_output_escapes_line_separators_and_invisible_characters(tmp_path: Path) -> None:
    name = f"products/p{HIDDEN}.csv"
    _drop(
        tmp_path,
        {
            name: PRODUCTS + f"p1,1,dairy,Milk{HIDDEN}\n",
            # An orphan item (no order o9): its id is the sample of the failing check.
            "order_items/i.csv": ITEMS + f"i{HIDDEN},o9,u1,,p1,1,0,2024-01-01T10:00:00Z,\n",
        },
    )
    lake = ["--lake", str(tmp_path), "--format", "json"]
    outputs = {
        "run": lakehouse("run", *lake, "--settle-seconds", "0"),
        "sql": lakehouse("sql", *lake, "SELECT product_name FROM products"),
        "validate": lakehouse("validate", *lake),
        "history": lakehouse("history", "products", *lake),
    }
    for command, done in outputs.items():
        assert done.stdout, (command, done.stderr)
        assert not set(HIDDEN) & set(done.stdout), command  # escaped: \u2028, \u200b
        assert HIDDEN in json.dumps(json.loads(done.stdout), ensure_ascii=False), command
    assert json.loads(outputs["sql"].stdout) == [{"product_name": f"Milk{HIDDEN}"}]
    assert f"raw-data/{name}" in outputs["run"].stdout.encode().decode("unicode_escape")


def test_add_new_columns_says_which_columns_it_added(tmp_path: Path) -> None:
    # Which file added which columns is each engine's to tell: test_merge.py's
    # test_add_new_columns_evolves_the_table holds both engines to it.
    _drop(
        tmp_path,
        {
            "orders/o1.csv": ORDERS.strip() + ",Coupon Code\n1,o1,u1,2024-01-01T10:00:00Z,1.5,X\n",
            "orders/o2.csv": ORDERS + "2,o2,u1,2024-01-01T11:00:00Z,2.5\n",
        },
    )
    lake = ["--lake", str(tmp_path), "--settle-seconds", "0"]
    evolve = ["--schema-evolution", "add_new_columns"]

    result = _run(tmp_path, *evolve)

    files = {f["source_path"]: f for f in result["files"]}  # type: ignore[union-attr]
    assert files["raw-data/orders/o1.csv"]["added_columns"] == ["coupon_code"]
    assert files["raw-data/orders/o2.csv"]["added_columns"] == []
    assert files["raw-data/orders/o1.csv"]["rescued_columns"] == []
    assert result["warnings"] == [
        "raw-data/orders/o1.csv has column(s) not in the schema, loaded into the added "
        "column(s) coupon_code of orders"
    ]
    # The terminal report says it too.
    _drop(tmp_path, {"orders/o3.csv": ORDERS.strip() + ",coupon_code\n3,o3,u1,2024-01-02,1,Y\n"})
    done = lakehouse("run", *lake, *evolve)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (
        "warning: raw-data/orders/o3.csv has column(s) not in the schema, loaded into the "
        "added column(s) coupon_code of orders" in done.stdout
    )


def _quarantine_list(root: Path) -> list[dict[str, object]]:
    done = lakehouse("quarantine", "list", "--lake", str(root), "--format", "json")
    assert done.returncode == 0, done.stdout + done.stderr
    listed: list[dict[str, object]] = json.loads(done.stdout)
    return listed


def test_quarantine_list_shows_rows_a_later_run_loaded_as_resolved(tmp_path: Path) -> None:
    lake, out = tmp_path / "lake", tmp_path / "export"
    # The header as the sender wrote it: the key column is found trimmed and lower-cased.
    header = "order_num, Order_ID ,user_id,order_timestamp,total_amount\n"
    _drop(
        lake,
        {
            "orders/o.csv": header
            + "1,o1,u1,2024-01-01T10:00:00Z,5.0\n"
            + "2,o2,u2,yesterday,4.0\n"  # a bad timestamp
            + "3,,u3,2024-01-01T12:00:00Z,4.0\n"  # no key: never resolved
        },
    )
    _run(lake)
    [listed] = _quarantine_list(lake)
    destination = listed.pop("destination")
    assert isinstance(destination, str) and destination.startswith("archive/orders/")
    assert listed == {
        "entity": "orders",
        "source_file": "raw-data/orders/o.csv",
        "checksum": listed["checksum"],
        "rules": {"not_null": 1, "parses_as_timestamp": 1},
        "quarantined": 2,
        "resolved": 0,
    }

    # Exported, fixed and dropped back: the next run loads o2.
    done = lakehouse("quarantine", "export", "--lake", str(lake), "--out", str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    [written] = list((out / "orders").glob("*.csv"))
    fixed = written.read_text().replace("yesterday", "2024-01-01T11:00:00Z")
    _drop(lake, {"orders/o_fixed.csv": fixed})
    _run(lake)

    by_file = {str(f["source_file"]): f for f in _quarantine_list(lake)}
    assert (
        by_file["raw-data/orders/o.csv"]["quarantined"],
        by_file["raw-data/orders/o.csv"]["resolved"],
    ) == (2, 1)
    # The fixed file's own keyless row is quarantined again, and not resolved either.
    assert by_file["raw-data/orders/o_fixed.csv"]["resolved"] == 0
    done = lakehouse("quarantine", "list", "--lake", str(lake))
    assert done.returncode == 0, done.stderr
    assert "resolved" in done.stdout and "raw-data/orders/o.csv" in done.stdout
