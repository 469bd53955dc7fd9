"""The CLI's rendering through a real Rich console: data text is never markup (issue 11)."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime

import pyarrow as pa
import pytest
from rich.console import Console

from ecommerce_lakehouse.domain.types import Severity
from ecommerce_lakehouse.domain.validation import CheckResult
from ecommerce_lakehouse.ports.engine import CommitRecord
from ecommerce_lakehouse_cli import main, report

ESC = "\x1b"
HOSTILE = f"[/x] [bold red]b[/bold red] {ESC}[31mred {ESC}]0;t\x07 \x9b2J \u202eevil :smile:"
SHOWN = r"[/x] [bold red]b[/bold red] \x1b[31mred \x1b]0;t\x07 \x9b2J \u202eevil :smile:"


def _terminal() -> Console:
    # A colour terminal: markup, if parsed, would turn into styles or crash.
    return Console(record=True, file=io.StringIO(), force_terminal=True, width=400, highlight=False)


def _assert_literal(console: Console) -> None:
    text = console.export_text(clear=False, styles=False)
    assert SHOWN in text, text
    styled = console.export_text(clear=False, styles=True)
    # The only escape sequences are Rich's own styles, never the data's.
    assert f"{ESC}[31mred" not in styled and f"{ESC}]0;" not in styled and "\x9b" not in styled
    assert "\u202e" not in styled


@pytest.mark.parametrize(
    "text",
    [
        "plain",
        "[/x]",
        "\x00\x1f\x7f\x85",
        "tab\tnew\nline\rcr",
        "\u2066isolate\u2069",
        "line\u2028separator\u2029paragraph",
        "zero\u200bwidth\u00adsoft\ufeffbom",
    ],
)
def test_visible_leaves_one_line_without_control_characters(text: str) -> None:
    shown = report.visible(text)

    assert shown.isprintable() and "\n" not in shown
    assert shown == text or "\\" in shown
    # Nothing a terminal would break a line at or show as nothing.
    assert not set(shown) & set("\u2028\u2029\u200b\u00ad\ufeff")


def test_query_results_render_literally() -> None:
    console = _terminal()
    result = pa.table({HOSTILE: [HOSTILE, None]})

    report.format_result(result, "table", console)

    _assert_literal(console)
    assert console.export_text().count(SHOWN) == 2  # header and value


def test_csv_output_has_no_escape_sequences() -> None:
    console = _terminal()

    report.format_result(pa.table({"a": [HOSTILE, "multi\nline"]}), "csv", console)

    written = console.file.getvalue()  # type: ignore[attr-defined]
    assert SHOWN in written and '"multi\nline"' in written
    assert ESC not in written and "\x9b" not in written


def test_json_output_is_strict_and_escaped() -> None:
    console = _terminal()
    result = pa.table({"a": [HOSTILE], "n": [float("nan")], "i": [float("-inf")]})

    report.format_result(result, "json", console)

    written = console.file.getvalue()  # type: ignore[attr-defined]
    assert ESC not in written and "\x9b" not in written and "\u202e" not in written

    def refuse(constant: str) -> object:
        raise ValueError(constant)

    assert json.loads(written, parse_constant=refuse) == [{"a": HOSTILE, "n": None, "i": None}]


def test_check_and_history_tables_render_literally() -> None:
    console = _terminal()
    check = CheckResult(
        table_name=HOSTILE,
        check_name="primary_key_unique",
        severity=Severity.ERROR,
        passed=False,
        observed=1,
        expected=0,
        sample=(HOSTILE,),
    )
    commit = CommitRecord(
        version=1,
        timestamp=datetime(2024, 1, 1, tzinfo=UTC),
        operation=HOSTILE,
        metadata={"lakehouse.run_id": "r"},
        metrics={},
    )

    console.print(report.checks_table([check]))
    console.print(report.history_table(HOSTILE, [commit]))

    _assert_literal(console)
    assert "FAIL" in console.export_text()


def test_an_error_line_quoting_data_is_one_literal_line(monkeypatch: pytest.MonkeyPatch) -> None:
    console = _terminal()
    monkeypatch.setattr(main, "err", console)

    stop = main._fail(f"{HOSTILE}\nsecond line", 1)

    assert stop.code == 1
    _assert_literal(console)
    assert console.export_text().count("\n") == 1
