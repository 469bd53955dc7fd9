"""`lakehouse report`: the HTML page of a known lake, opened in a real headless Chromium.

The lake is built by the CLI as a user would: two runs, a file with rows two rules refuse, a
rejected file, a file with a column not in the schema, and a file whose name is HTML. The
page is rendered by Debian's Chromium (`make install` installs it): the test reads the DOM
Chromium built and the screenshot it took, not the HTML text alone.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tests.e2e.test_cli import assert_one_line_error, lakehouse, sql_json
from tests.e2e.test_cli_operator import ORDERS, PRODUCTS, _drop

pytestmark = pytest.mark.browser

#: A file name that is HTML: shown as text, it changes nothing; run, it renames the page.
HOSTILE = "orders_<img src=x onerror=\"document.title='pwned'\">.csv"
#: A value that is a script, quarantined and shown among the examples.
SCRIPT = "<script>document.title='pwned'</script>"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _chromium() -> str:
    binary = os.environ.get("LAKEHOUSE_CHROMIUM") or shutil.which("chromium")
    if not binary or not Path(binary).exists():
        pytest.fail(
            "chromium not found (Debian's chromium package, or LAKEHOUSE_CHROMIUM): "
            "run make install"
        )
    return binary


def _browser(page: Path, *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [
            _chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            # Nothing but the page itself: a resource from elsewhere would fail to load.
            "--no-proxy-server",
            *args,
            page.resolve().as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done


def _dom(page: Path) -> str:
    return _browser(page, "--dump-dom").stdout


class _Tables(HTMLParser):
    """The rows of every <table id=...> of a DOM, each a list of its cells' text."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.title = ""
        self._table: str | None = None
        self._cell: list[str] | None = None
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self._table = dict(attrs).get("id")
            if self._table:
                self.tables[self._table] = []
        elif tag == "tr" and self._table:
            self.tables[self._table].append([])
        elif tag in ("td", "th") and self._table:
            self._cell = []
        elif tag == "title":
            self._in_title = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._table = None
        elif tag in ("td", "th") and self._table and self._cell is not None:
            self.tables[self._table][-1].append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "title":
            self._in_title = False

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        if self._in_title:
            self.title += data


def _parsed(dom: str) -> _Tables:
    parser = _Tables()
    parser.feed(dom)
    return parser


def _column(rows: list[list[str]], header: str) -> dict[str, str]:
    """First cell of each body row -> the cell under ``header``."""
    index = rows[0].index(header)
    return {row[0]: row[index] for row in rows[1:]}


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two runs: 3 products (one file with a column not in the schema), 5 orders of 9 rows
    (two refused by parses_as_double, one by in_range, one by parses_as_timestamp), a
    hostile file name, then a daily batch with a rejected file and one updated order."""
    root = tmp_path_factory.mktemp("lake")
    good = "".join(f"{i},o{i},u{i},2024-01-0{i}T10:00:00Z,{i}.5\n" for i in range(1, 5))
    _drop(
        root,
        {
            "products/p.csv": PRODUCTS + "p1,1,dairy,Milk\np2,1,dairy,Butter\n",
            "products/p_new.csv": PRODUCTS.rstrip("\n") + ",coupon_code\np3,2,bakery,Bread,X1\n",
            "orders/o1.csv": ORDERS
            + good
            + "5,o5,u5,2024-01-05T10:00:00Z,abc\n"
            + "6,o6,u6,2024-01-05T10:00:00Z,-3\n"
            + "7,o7,u7,yesterday,1.0\n",
            f"orders/{HOSTILE}": ORDERS
            + "8,o8,u8,2024-01-06T10:00:00Z,8.5\n"
            + f'9,o9,u9,2024-01-06T10:00:00Z,"{SCRIPT}"\n',
        },
    )
    done = lakehouse("run", "--lake", str(root), "--settle-seconds", "0")
    assert done.returncode == 0, done.stdout + done.stderr
    _drop(
        root,
        {
            "orders/bad.csv": b"\xff\xfe not utf-8 at all\n",
            "orders/o2.csv": ORDERS + "1,o1,u1,2024-01-01T11:00:00Z,99.0\n",
        },
    )
    done = lakehouse("run", "--lake", str(root), "--settle-seconds", "0")
    assert done.returncode == 0, done.stdout + done.stderr
    return root


@pytest.fixture(scope="module")
def page(lake: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("page") / "report.html"
    done = lakehouse("report", "--lake", str(lake), "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"report written to {out}"
    return out


def test_the_browser_shows_the_figures_of_the_lake(lake: Path, page: Path) -> None:
    dom = _parsed(_dom(page))
    tables = dom.tables

    rows = _column(tables["tables-table"], "rows")
    assert rows["products"] == "3"
    assert rows["orders"] == "5"  # o1-o4 and o8; o1 updated by the second run
    assert rows["quarantine"] == "4"
    assert int(rows["ingest_log"]) == 6

    assert _column(tables["files-by-status"], "files") == {"loaded": "5", "rejected": "1"}
    by_rule = _column(tables["quarantine-by-rule"], "rows")
    assert by_rule == {"parses_as_double": "2", "in_range": "1", "parses_as_timestamp": "1"}
    # By rule, column and file: o1.csv has one row per rule, the hostile file one.
    groups = {(r[0], r[1], r[2]): r[3] for r in tables["quarantine-groups"][1:]}
    assert groups[("in_range", "total_amount", "raw-data/orders/o1.csv")] == "1"
    assert groups[("parses_as_timestamp", "order_timestamp", "raw-data/orders/o1.csv")] == "1"
    assert groups[("parses_as_double", "total_amount", f"raw-data/orders/{HOSTILE}")] == "1"

    [_header, rejected] = tables["rejected-files"]
    assert rejected[0] == "raw-data/orders/bad.csv"
    [logged] = sql_json(lake, "SELECT error FROM ingest_log WHERE status = 'rejected'")
    assert rejected[1] == logged["error"] and rejected[1]
    assert rejected[2].startswith("rejected/")

    [drift] = tables["drift-files"][1:]
    assert drift[:3] == ["raw-data/products/p_new.csv", "coupon_code", "1"]

    # Two runs, newest first; the second updated o1 and rejected a file.
    runs = tables["runs-table"]
    assert len(runs) == 3
    assert _column(runs, "updated")[runs[1][0]] == "1"
    assert "ok, 1 warning(s)" in runs[1][3]
    # Every check of both validations, passing.
    grid = tables["check-grid"]
    assert len(grid) > 10 and all(row[3:] == ["pass", "pass"] for row in grid[1:])


def test_text_from_data_is_shown_as_text_and_no_script_runs(lake: Path, page: Path) -> None:
    html = page.read_text(encoding="utf-8")
    dom_text = _dom(page)
    dom = _parsed(dom_text)
    # Neither the file name nor the quarantined value ran: the page keeps its title ...
    assert dom.title.startswith("Lake report: ") and "pwned" not in dom.title
    # ... and both are on the page, as the text they are.
    files = [row[2] for row in dom.tables["quarantine-groups"][1:]]
    assert f"raw-data/orders/{HOSTILE}" in files
    examples = " ".join(row[4] for row in dom.tables["quarantine-groups"][1:])
    assert SCRIPT in examples
    # Self-contained: nothing is loaded from anywhere, and no script at all.
    assert not re.search(r"https?://", html)
    assert not re.search(r"<(script|link|iframe|object|embed)\b", html)
    # The control: the same markup, not escaped, does run in this browser.
    control = page.parent / "control.html"
    control.write_text(f"<title>Lake report</title><p>{HOSTILE}</p>{SCRIPT}", encoding="utf-8")
    assert "pwned" in _parsed(_dom(control)).title


def test_invisible_characters_in_data_are_shown(tmp_path: Path) -> None:
    # A zero-width space and a line separator in a file name: visible escapes on the page.
    name = "orders_a\u200bb\u2028c.csv"
    _drop(tmp_path, {f"orders/{name}": ORDERS + "1,o1,u1,2024-01-01T10:00:00Z,oops\n"})
    done = lakehouse("run", "--lake", str(tmp_path), "--settle-seconds", "0")
    assert done.returncode == 0, done.stdout + done.stderr
    out = tmp_path / "report.html"
    assert lakehouse("report", "--lake", str(tmp_path), "--out", str(out)).returncode == 0
    html = out.read_text(encoding="utf-8")
    assert "\u200b" not in html and "\u2028" not in html
    groups = _parsed(_dom(out)).tables["quarantine-groups"]
    assert groups[1][2] == "raw-data/orders/orders_a\\u200bb\\u2028c.csv"


def test_the_screenshot_shows_the_page(page: Path, tmp_path: Path) -> None:
    shot = tmp_path / "report.png"
    _browser(page, f"--screenshot={shot}", "--window-size=1280,2400")
    data = shot.read_bytes()
    assert data.startswith(PNG_MAGIC)
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (1280, 2400)
    # A page of text, tables and plots, not a blank one (a white PNG is a few KB).
    assert len(data) > 60_000


def test_the_page_of_a_new_lake_says_there_is_nothing_yet(tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    done = lakehouse("report", "--lake", str(tmp_path), "--out", str(out))
    assert done.returncode == 0, done.stderr
    dom = _dom(out)
    assert "no run yet" in dom
    assert _column(_parsed(dom).tables["tables-table"], "rows")["orders"] == "not created yet"


def test_errors_are_one_line(tmp_path: Path) -> None:
    assert_one_line_error(lakehouse("report", "--lake", str(tmp_path / "missing")), 2)
    (tmp_path / "lake").mkdir()
    target = tmp_path / "no-such-folder" / "report.html"
    done = lakehouse("report", "--lake", str(tmp_path / "lake"), "--out", str(target))
    assert_one_line_error(done, 2)
    assert str(target) in done.stderr
