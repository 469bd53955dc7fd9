"""The `lakehouse` command on hostile input (issue 11): no input can crash a run.

Data text (CSV headers and values, file names, SQL results, messages quoting them) is printed
literally, never as Rich markup, and never sends a control sequence to the terminal; bad
option values are one-line usage errors; ``lakehouse sql`` is read-only.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

LAKEHOUSE = str(Path(sys.executable).parent / "lakehouse")

ESC = "\x1b"
#: A value that would colour the terminal, set its title, and be markup.
HOSTILE = f"[bold red]x[/bold red]{ESC}[31mred{ESC}]0;title\x07 :smile:"
#: What a reader sees of it: the markup as written, the control characters as escapes.
SHOWN = r"[bold red]x[/bold red]\x1b[31mred\x1b]0;title\x07 :smile:"
#: A file name (no "/" possible) that is markup and holds an escape sequence.
HOSTILE_NAME = f"products_[red]x{ESC}[31m.csv"
COMMANDS = ("run", "sql", "history", "validate", "generate", "demo", "state-machine", "report")


def lakehouse(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [LAKEHOUSE, *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def assert_clean(done: subprocess.CompletedProcess[str]) -> None:
    """No traceback, and no escape or bell character reached the terminal."""
    both = done.stdout + done.stderr
    assert "Traceback" not in both and "MarkupError" not in both
    assert ESC not in both and "\x07" not in both and "\x9b" not in both


def assert_one_line_error(done: subprocess.CompletedProcess[str], code: int) -> None:
    assert done.returncode == code, (done.stdout, done.stderr)
    assert_clean(done)
    assert done.stderr.startswith("error: ")
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def _strict_json(text: str) -> object:
    def refuse(constant: str) -> object:
        raise ValueError(f"not JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


def _hostile_raw(root: Path) -> None:
    """Raw drops with a markup header, markup and escapes in a value, and a hostile name."""
    products = root / "raw-data" / "products"
    products.mkdir(parents=True)
    (products / HOSTILE_NAME).write_text(
        "product_id,department_id,department,product_name,[/x]\n"
        f'1,20,deli,"{HOSTILE}",[/y]\n'
        "2,14,breakfast,Oatmeal,z\n",
        encoding="utf-8",
    )


@pytest.fixture(scope="module")
def first_run(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, subprocess.CompletedProcess[str]]:
    root = tmp_path_factory.mktemp("hostile")
    _hostile_raw(root)
    return root, lakehouse("run", "--lake", str(root))


@pytest.fixture(scope="module")
def lake(first_run: tuple[Path, subprocess.CompletedProcess[str]]) -> Path:
    root, done = first_run
    assert done.returncode == 0, done.stdout + done.stderr
    return root


# ------------------------------------------------------------------ help texts


@pytest.mark.parametrize("command", COMMANDS)
def test_every_help_text_prints(command: str) -> None:
    done = lakehouse(command, "--help")

    assert done.returncode == 0, done.stderr
    assert_clean(done)
    assert "Usage:" in done.stdout
    if command in ("run", "sql", "history", "validate"):
        assert "s3://bucket[/prefix]" in done.stdout


def test_the_top_level_help_prints() -> None:
    done = lakehouse("--help")

    assert done.returncode == 0 and "history" in done.stdout
    assert_clean(done)


# ------------------------------------------------------------------ data text


def test_a_markup_header_and_file_name_do_not_break_a_run(
    first_run: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    lake, done = first_run

    assert done.returncode == 0, done.stdout + done.stderr
    assert_clean(done)
    assert "products_[red]x\\x1b[" in done.stdout  # the name as written, made visible
    rows = _strict_json(
        lakehouse(
            "sql",
            "--lake",
            str(lake),
            "--format",
            "json",
            "SELECT product_name, _rescued_data, _source_file FROM products ORDER BY product_id",
        ).stdout
    )

    assert isinstance(rows, list) and rows[0]["product_name"] == HOSTILE
    assert "[/x]" in rows[0]["_rescued_data"]
    assert rows[0]["_source_file"].endswith(HOSTILE_NAME)


def test_a_markup_header_in_an_error_message_is_one_plain_line(tmp_path: Path) -> None:
    _hostile_raw(tmp_path)

    done = lakehouse("run", "--lake", str(tmp_path), "--schema-evolution", "fail")

    assert_clean(done)
    # Before, printing the rejected file's reason raised MarkupError and then again in the
    # error handler: a traceback.
    assert done.returncode in (0, 1), done.stdout + done.stderr
    assert "'[/x]'" in done.stdout


def test_query_results_are_shown_literally_in_every_format(lake: Path) -> None:
    query = "SELECT product_name AS \"[/col]\" FROM products WHERE product_id = '1'"

    table = lakehouse("sql", "--lake", str(lake), query)
    csv = lakehouse("sql", "--lake", str(lake), "--format", "csv", query)
    as_json = lakehouse("sql", "--lake", str(lake), "--format", "json", query)

    for done in (table, csv, as_json):
        assert done.returncode == 0, done.stderr
        assert_clean(done)
    assert "[/col]" in table.stdout and SHOWN in table.stdout
    assert csv.stdout.splitlines() == ["[/col]", SHOWN]
    assert _strict_json(as_json.stdout) == [{"[/col]": HOSTILE}]


def test_markup_in_a_literal_query_is_printed(lake: Path) -> None:
    done = lakehouse(
        "sql", "--lake", str(lake), "SELECT '[/oops]' AS a, 'x' || chr(10) || 'y' AS b"
    )

    assert done.returncode == 0, done.stderr
    assert_clean(done)
    assert "[/oops]" in done.stdout and r"x\x0ay" in done.stdout


def test_an_error_quoting_data_is_one_plain_line(lake: Path) -> None:
    done = lakehouse("sql", "--lake", str(lake), f'SELECT "[/x]{ESC}[31m\nnope" FROM products')

    assert_one_line_error(done, 1)
    assert "[/x]\\x1b[31m" in done.stderr


def test_history_of_a_hostile_table_name_is_one_plain_line(lake: Path) -> None:
    assert_one_line_error(lakehouse("history", "--lake", str(lake), f"[/x]{ESC}[2J"), 2)


def test_an_unknown_option_quoting_markup_is_one_plain_line(lake: Path) -> None:
    done = lakehouse("sql", "--lake", str(lake), "--[/x]", "SELECT 1")

    assert done.returncode == 2 and "[/x]" in done.stderr
    assert_clean(done)


def test_json_has_no_nan_or_infinity(lake: Path) -> None:
    done = lakehouse(
        "sql",
        "--lake",
        str(lake),
        "--format",
        "json",
        "SELECT 'nan'::DOUBLE AS a, 'inf'::DOUBLE AS b, '-inf'::FLOAT AS c, "
        "[1.5, 'nan'::DOUBLE] AS d",
    )

    assert done.returncode == 0, done.stderr
    assert _strict_json(done.stdout) == [{"a": None, "b": None, "c": None, "d": [1.5, None]}]


def test_run_and_history_json_is_strict(lake: Path) -> None:
    run = lakehouse("run", "--lake", str(lake), "--format", "json")
    history = lakehouse("history", "--lake", str(lake), "products", "--format", "json")

    assert run.returncode == 0 and history.returncode == 0, run.stderr + history.stderr
    assert isinstance(_strict_json(run.stdout), dict)
    assert isinstance(_strict_json(history.stdout), list)


# ------------------------------------------------------------------ option values


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("sql", "--as-of", "orders=²", "SELECT 1"), "TABLE=VERSION"),
        (("sql", "--as-of", "orders=٣", "SELECT 1"), "TABLE=VERSION"),
        (("sql", "--as-of", "=1", "SELECT 1"), "TABLE=VERSION"),
        (("sql", "--as-of", "orders=-1", "SELECT 1"), "TABLE=VERSION"),
        (("sql", "--as-of", "orders=1", "--as-of", "orders=2", "SELECT 1"), "two versions"),
        (("sql", ""), "empty query"),
        (("sql", " \n\t"), "empty query"),
        (("sql", ";"), "empty query"),
        (("history", "orders", "--limit", "-1"), "--limit"),
        (("history", "orders", "--limit", "0"), "--limit"),
        (("run", "--lock-timeout", "nan"), "--lock-timeout"),
        (("run", "--lock-timeout", "inf"), "--lock-timeout"),
        (("run", "--lock-timeout", "-1"), "--lock-timeout"),
        (("run", "--settle-seconds", "nan"), "--settle-seconds"),
        (("run", "--settle-seconds", "-1"), "--settle-seconds"),
        (("run", "--settle-seconds", "3601"), "--settle-seconds"),
    ],
)
def test_bad_option_values_are_one_line_and_exit_2(
    lake: Path, args: tuple[str, ...], fragment: str
) -> None:
    command, *rest = args
    done = lakehouse(command, "--lake", str(lake), *rest, timeout=30)

    assert_one_line_error(done, 2)
    assert fragment in done.stderr


def test_a_huge_history_limit_lists_every_commit(lake: Path) -> None:
    done = lakehouse("history", "--lake", str(lake), "products", "--limit", "9" * 30)

    assert done.returncode == 0, done.stderr


# ------------------------------------------------------------------ read-only SQL


@pytest.mark.parametrize(
    "query",
    [
        "COPY (SELECT 1) TO '{outside}'",
        "SELECT * FROM read_text('/etc/passwd')",
        "SELECT * FROM glob('/etc/*')",
        "SELECT * FROM read_csv('/etc/passwd')",
        "ATTACH '{outside}' AS other",
        "INSTALL httpfs",
        "LOAD httpfs",
        "SET enable_external_access = true",
        "PRAGMA version",
        "CREATE TABLE t AS SELECT 1",
        "SELECT 1; COPY (SELECT 1) TO '{outside}'",
        "SELECT * FROM query('COPY (SELECT 1) TO ''{outside}''')",
    ],
)
def test_sql_cannot_touch_the_filesystem_or_change_settings(
    lake: Path, tmp_path: Path, query: str
) -> None:
    outside = tmp_path / "written.csv"

    done = lakehouse("sql", "--lake", str(lake), query.format(outside=outside))

    assert_one_line_error(done, 1)
    assert not outside.exists()
    assert "root:" not in done.stdout + done.stderr


def test_read_only_sql_still_reads_and_time_travels(lake: Path) -> None:
    latest = lakehouse(
        "sql",
        "--lake",
        str(lake),
        "--format",
        "json",
        "WITH p AS (SELECT * FROM products) SELECT count(*) AS n FROM p",
    )
    first = lakehouse(
        "sql",
        "--lake",
        str(lake),
        "--format",
        "json",
        "--as-of",
        "products=0",
        "SELECT count(*) AS n FROM products",
    )
    explain = lakehouse("sql", "--lake", str(lake), "EXPLAIN SELECT * FROM orders")

    assert _strict_json(latest.stdout) == [{"n": 2}], latest.stderr
    assert _strict_json(first.stdout) == [{"n": 0}], first.stderr
    assert explain.returncode == 0, explain.stderr


# ------------------------------------------------------------------ the lake lock


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
def test_an_unreadable_lock_file_is_one_line_naming_it(tmp_path: Path) -> None:
    lock = tmp_path / "_lakehouse.lock"
    lock.write_text("")
    lock.chmod(0)

    done = lakehouse("run", "--lake", str(tmp_path))

    assert_one_line_error(done, 2)
    assert str(lock) in done.stderr and "Permission denied" in done.stderr


def test_a_lock_file_that_cannot_be_opened_is_one_line_naming_it(tmp_path: Path) -> None:
    lock = tmp_path / "_lakehouse.lock"
    lock.mkdir()

    done = lakehouse("run", "--lake", str(tmp_path))

    assert_one_line_error(done, 1)
    assert str(lock) in done.stderr and "Is a directory" in done.stderr
    assert "unexpected" not in done.stderr


def test_a_planted_lock_file_link_is_refused(tmp_path: Path) -> None:
    lake, outside = tmp_path / "lake", tmp_path / "outside.txt"
    lake.mkdir()
    outside.write_text("keep me")
    (lake / "_lakehouse.lock").symlink_to(outside)

    done = lakehouse("run", "--lake", str(lake))

    assert done.returncode != 0 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert_clean(done)
    assert outside.read_text() == "keep me"


def test_a_value_python_cannot_hold_is_a_named_one_line_error(tmp_path: Path) -> None:
    done = subprocess.run(
        [LAKEHOUSE, "sql", "--lake", str(tmp_path), "SELECT 'infinity'::timestamp AS x"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1
    assert "out of the range that can be shown" in done.stderr
    assert "unexpected" not in done.stderr
