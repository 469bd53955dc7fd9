"""Issue 11: a corpus of hostile raw inputs, each with its pinned, designed outcome.

Every case is one small input built under ``raw-data/`` (a file, a name, a value, a link, a
file still being written) and the outcome the product designed for it: the exact
``ingest_log`` status and the start of its ``error`` (the reason), the quarantine rows
(line, rule, column) and the row counts. The whole corpus is built in ONE lake and ingested
by ONE run, so the test also proves that no hostile input stops the others; each case then
checks only its own rows. On every ``ingest_log`` row the row accounting identity holds
(``rows_read = inserted + updated + unchanged + duplicates_in_batch + quarantined``).

A second run re-drops every file the first one moved (the same bytes, from ``archive/`` and
``rejected/``) and proves a replay changes nothing: loaded files are ``skipped``, rejected
files are rejected again for the same reason, links and nested files stay ``ignored``, no
quarantine row is added and the curated tables keep their rows (the one file that was still
being written during the first run is taken now).

The Spark half (marked ``spark``) runs a subset of the corpus in one lake, one run, on the
Spark engine and on Polars, and asserts both give the pinned outcome of every case: the same
``ingest_log`` status and reason, and the same quarantine lines and rules. Those runs stop
after the archive step: catalogue, validate and report decide nothing about a file.

Only designed outcomes are pinned here: a traceback, a lost or uncounted row or a failed run
would fail ``test_no_input_stops_the_run_and_every_row_is_accounted_for``.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from deltalake import DeltaTable
from rich.console import Console

import ecommerce_lakehouse as lh
from ecommerce_lakehouse.application.run import RunOptions, RunResult
from ecommerce_lakehouse.domain.audit import COUNT_FIELDS
from ecommerce_lakehouse_cli import report
from ecommerce_lakehouse_local.storage import LocalObjectStorage

PRODUCTS_HEADER = "product_id,department_id,department,product_name"
ORDERS_HEADER = "order_num,order_id,user_id,order_timestamp,total_amount,date"
ITEMS_HEADER = (
    "id,order_id,user_id,days_since_prior_order,product_id,add_to_cart_order,reordered,"
    "order_timestamp,date"
)
TS = "2024-01-01T10:00:00"
DAY = "2024-01-01"
ESC = "\x1b"
#: The quiet period of the corpus runs: long enough to catch the growing file, short enough
#: to keep the run fast.
SETTLE_SECONDS = 0.5
#: The one file the corpus makes unreadable (chmod 000 does not stop root: see ``_unreadable``).
UNREADABLE = "raw-data/products_unreadable.csv"
GROWING = "raw-data/orders_growing.csv"

Build = Callable[[Path], None]
#: (line_number, rule, column_name) of one quarantine row.
QRow = tuple[int, str, str | None]


# ---------------------------------------------------------------------------- input builders
def _put(raw: Path, name: str, data: bytes) -> None:
    path = raw / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _csv(header: str, *rows: str, eol: str = "\n") -> str:
    return eol.join([header, *rows]) + eol


def _product(key: str, name: str = "thing", department: str = "corpus") -> str:
    return f"{key},1,{department},{name}"


def _order(key: str, total: str = "1.5", ts: str = TS, date: str = DAY) -> str:
    return f"1,{key},u1,{ts},{total},{date}"


def _item(key: str, days: str = "3", cart: str = "1", reordered: str = "1", ts: str = TS) -> str:
    return f"{key},o-items,u1,{days},p-items,{cart},{reordered},{ts},{DAY}"


def text_file(name: str, content: str, encoding: str = "utf-8") -> Build:
    return lambda raw: _put(raw, name, content.encode(encoding))


def bytes_file(name: str, content: bytes) -> Build:
    return lambda raw: _put(raw, name, content)


def products(name: str, *rows: str, header: str = PRODUCTS_HEADER, eol: str = "\n") -> Build:
    return text_file(name, _csv(header, *rows, eol=eol))


def orders(name: str, *rows: str) -> Build:
    return text_file(name, _csv(ORDERS_HEADER, *rows))


def items(name: str, *rows: str) -> Build:
    return text_file(name, _csv(ITEMS_HEADER, *rows))


def symlink(name: str, target: str) -> Build:
    def build(raw: Path) -> None:
        outside = raw.parent / "outside" / target
        _put(outside.parent, outside.name, _csv(PRODUCTS_HEADER, _product("link-1")).encode())
        (raw / name).parent.mkdir(parents=True, exist_ok=True)
        (raw / name).symlink_to(outside)

    return build


def both(*builds: Build) -> Build:
    def build(raw: Path) -> None:
        for each in builds:
            each(raw)

    return build


def fresh(build: Build, name: str) -> Build:
    """A file written just now (mtime now): the run watches it for the quiet period."""

    def wrapped(raw: Path) -> None:
        build(raw)
        now = time.time()
        os.utime(raw / name, (now, now))

    return wrapped


def future(build: Build, name: str) -> Build:
    """A file whose mtime is a day ahead (a skewed clock): watched, unchanged, taken."""

    def wrapped(raw: Path) -> None:
        build(raw)
        ahead = time.time() + 86_400
        os.utime(raw / name, (ahead, ahead))

    return wrapped


def _unreadable(raw: Path) -> None:
    _put(raw, "products_unreadable.csv", _csv(PRODUCTS_HEADER, _product("unr-1")).encode())
    (raw / "products_unreadable.csv").chmod(0)


def _growing(raw: Path) -> None:
    _put(raw, "orders_growing.csv", _csv(ORDERS_HEADER).encode())


# ---------------------------------------------------------------------------- the cases
@dataclass(frozen=True, slots=True, kw_only=True)
class Case:
    """One hostile input and its pinned outcome.

    Attributes:
        id: the case name (also the prefix of its keys).
        build: writes the input under ``raw-data/``.
        path: the ``ingest_log.source_path`` of the file; None when the run must not log it.
        status: the pinned ``ingest_log`` status.
        reason: the start of ``ingest_log.error`` ("" when the error must be null).
        quarantine: the file's quarantine rows, by line.
        counts: pinned row counts (only the fields given).
        stored: (table, primary key, column, value) read back from a curated table.
        spark: part of the Spark subset.
    """

    id: str
    build: Build
    path: str | None
    status: str | None
    reason: str = ""
    quarantine: tuple[QRow, ...] = ()
    counts: dict[str, int] = field(default_factory=dict)
    stored: tuple[tuple[str, str, str, Any], ...] = ()
    spark: bool = False


def _rows(n: int, prefix: str) -> list[str]:
    return [_product(f"{prefix}-{i}") for i in range(1, n + 1)]


WIDE_HEADER = PRODUCTS_HEADER + "".join(f",x{i}" for i in range(997))  # 1,001 columns
SQL_TEXT = "x'); DROP TABLE products; --"
ANSI_TEXT = f"{ESC}[31mred{ESC}]0;title\x07"
EMOJI_RTL = "😀 \u202eevil\u202c שלום"
LONG_NAME = "products_" + "l" * 240 + ".csv"

CASES: tuple[Case, ...] = (
    # ------------------------------------------------------------ encodings
    Case(
        id="enc-bom",
        build=text_file("products_bom.csv", "\ufeff" + _csv(PRODUCTS_HEADER, *_rows(2, "bom"))),
        path="raw-data/products_bom.csv",
        status="loaded",
        counts={"rows_read": 2, "inserted": 2},
        spark=True,
    ),
    Case(
        id="enc-utf16",
        build=text_file(
            "products_utf16.csv", _csv(PRODUCTS_HEADER, *_rows(1, "u16")), encoding="utf-16"
        ),
        path="raw-data/products_utf16.csv",
        status="rejected",
        reason="not_utf8",
        spark=True,
    ),
    Case(
        id="enc-latin1",
        build=text_file(
            "products_latin1.csv", _csv(PRODUCTS_HEADER, _product("lat-1", "café")), "latin-1"
        ),
        path="raw-data/products_latin1.csv",
        status="rejected",
        reason="not_utf8",
    ),
    Case(
        id="enc-nul",
        build=products("products_nul.csv", _product("nul-1", "a\x00b")),
        path="raw-data/products_nul.csv",
        status="loaded",
        stored=(("products", "nul-1", "product_name", "a\x00b"),),
    ),
    # ------------------------------------------------------------ line endings
    Case(
        id="eol-crlf",
        build=products("products_crlf.csv", *_rows(2, "crlf"), eol="\r\n"),
        path="raw-data/products_crlf.csv",
        status="loaded",
        counts={"rows_read": 2, "inserted": 2},
        stored=(("products", "crlf-1", "product_name", "thing"),),
        spark=True,
    ),
    Case(
        id="eol-cr",
        build=products("products_cr.csv", *_rows(2, "cr"), eol="\r"),
        path="raw-data/products_cr.csv",
        # CR alone is no line break (only LF or CRLF, docs/contract.md#reading-files): the
        # file would be one header line, so it is rejected whole, with a reason that says so.
        status="rejected",
        reason="bare_cr_line_endings",
        spark=True,
    ),
    Case(
        id="eol-cr-in-quotes",
        build=products(
            "products_quoted_cr.csv",
            _product("qcr-1", name='"a\rb"') + ",hello",
            header=PRODUCTS_HEADER + ',"note\rx"',
        ),
        path="raw-data/products_quoted_cr.csv",
        # A CR inside a quoted field is text, in the header line too.
        status="loaded",
        counts={"rows_read": 1, "inserted": 1},
        stored=(
            ("products", "qcr-1", "product_name", "a\rb"),
            ("products", "qcr-1", "_rescued_data", '{"note\\rx":"hello"}'),
        ),
        spark=True,
    ),
    # ------------------------------------------------------------ quotes
    Case(
        id="quote-unbalanced",
        build=products("products_unbalanced.csv", 'qub-1,1,corpus,"never closed', "qub-2,1,c,x"),
        path="raw-data/products_unbalanced.csv",
        status="rejected",
        reason="malformed_csv",
        spark=True,
    ),
    Case(
        id="quote-newline",
        build=products("products_newline.csv", 'qnl-1,1,corpus,"two\nlines"', ",1,corpus,no key"),
        path="raw-data/products_newline.csv",
        status="loaded",
        # The quoted value spans lines 2-3: the next record starts on line 4.
        quarantine=((4, "not_null", "product_id"),),
        counts={"rows_read": 2, "inserted": 1},
        stored=(("products", "qnl-1", "product_name", "two\nlines"),),
        spark=True,
    ),
    Case(
        id="quote-escaped",
        build=products("products_escaped.csv", 'qes-1,1,corpus,"say ""hi"", ok"'),
        path="raw-data/products_escaped.csv",
        status="loaded",
        stored=(("products", "qes-1", "product_name", 'say "hi", ok'),),
    ),
    # ------------------------------------------------------------ headers
    Case(
        id="header-missing-column",
        build=products(
            "products_nocol.csv", "nco-1,1,corpus", header="product_id,department_id,department"
        ),
        path="raw-data/products_nocol.csv",
        status="rejected",
        reason="missing_columns",
        spark=True,
    ),
    Case(
        id="header-absent",
        build=text_file(
            "products_noheader.csv", _product("nhd-1") + "\n" + _product("nhd-2") + "\n"
        ),
        path="raw-data/products_noheader.csv",
        status="rejected",
        reason="missing_columns",
    ),
    Case(
        id="header-duplicate",
        build=products(
            "products_dupcol.csv", "dco-1,1,corpus,a,b", header=PRODUCTS_HEADER + ",product_name"
        ),
        path="raw-data/products_dupcol.csv",
        status="rejected",
        reason="duplicate_columns",
        spark=True,
    ),
    Case(
        id="header-unknown-column",
        build=products(
            "products_extra.csv", "unk-1,1,corpus,a,hello", header=PRODUCTS_HEADER + ",colour"
        ),
        path="raw-data/products_extra.csv",
        status="loaded",
        stored=(("products", "unk-1", "_rescued_data", '{"colour":"hello"}'),),
    ),
    Case(
        id="header-case-whitespace",
        build=products(
            "products_case.csv",
            "cas-1,1,corpus,a",
            header=" Product_ID ,DEPARTMENT_ID,\tDepartment, product_NAME",
        ),
        path="raw-data/products_case.csv",
        status="loaded",
        counts={"rows_read": 1, "inserted": 1},
    ),
    Case(
        id="header-markup",
        build=products(
            "products_markup.csv", "mku-1,1,corpus,a,v", header=PRODUCTS_HEADER + ",[/x]"
        ),
        path="raw-data/products_markup.csv",
        status="loaded",
        counts={"rows_read": 1, "inserted": 1},
        spark=True,
    ),
    Case(
        id="header-1001-columns",
        build=products("products_wide.csv", header=WIDE_HEADER),
        path="raw-data/products_wide.csv",
        status="rejected",
        reason="too_many_columns",
        spark=True,
    ),
    # ------------------------------------------------------------ rows
    Case(
        id="row-short",
        build=products("products_short.csv", "sho-1,1"),
        path="raw-data/products_short.csv",
        status="loaded",
        counts={"rows_read": 1, "inserted": 1},
        stored=(("products", "sho-1", "product_name", None),),
    ),
    Case(
        id="row-long",
        build=products("products_long.csv", "lon-1,1,corpus,a,extra", "lon-2,1,corpus,b"),
        path="raw-data/products_long.csv",
        status="loaded",
        quarantine=((2, "wrong_field_count", None),),
        counts={"rows_read": 2, "inserted": 1},
        spark=True,
    ),
    Case(
        id="row-blank",
        build=products("products_blank.csv", "bla-1,1,corpus,a", "", "bla-2,1,corpus,b"),
        path="raw-data/products_blank.csv",
        status="loaded",
        quarantine=((3, "not_null", "product_id"),),
        counts={"rows_read": 3, "inserted": 2},
        spark=True,
    ),
    Case(
        id="row-all-commas",
        build=products("products_commas.csv", ",,,", "com-1,1,corpus,a"),
        path="raw-data/products_commas.csv",
        status="loaded",
        quarantine=((2, "not_null", "product_id"),),
        counts={"rows_read": 2, "inserted": 1},
        spark=True,
    ),
    Case(
        id="row-whitespace",
        build=products("products_spaces.csv", "   ", "wsp-1,1,corpus,a"),
        path="raw-data/products_spaces.csv",
        status="loaded",
        quarantine=((2, "not_null", "product_id"),),
        counts={"rows_read": 2, "inserted": 1},
    ),
    # ------------------------------------------------------------ values
    Case(
        id="value-bad-int",
        build=items("order_items_badint.csv", _item("bin-1", cart="two"), _item("bin-2")),
        path="raw-data/order_items_badint.csv",
        status="loaded",
        quarantine=((2, "parses_as_int", "add_to_cart_order"),),
        counts={"rows_read": 2, "inserted": 1},
        spark=True,
    ),
    Case(
        id="value-bad-timestamp",
        build=orders("orders_badts.csv", _order("bts-1", ts="yesterday"), _order("bts-2")),
        path="raw-data/orders_badts.csv",
        status="loaded",
        quarantine=((2, "parses_as_timestamp", "order_timestamp"),),
        counts={"rows_read": 2, "inserted": 1},
        spark=True,
    ),
    Case(
        id="value-out-of-range",
        build=items("order_items_range.csv", _item("rng-1", days="400"), _item("rng-2", cart="0")),
        path="raw-data/order_items_range.csv",
        status="loaded",
        quarantine=(
            (2, "in_range", "days_since_prior_order"),
            (3, "in_range", "add_to_cart_order"),
        ),
        counts={"rows_read": 2, "inserted": 0},
    ),
    Case(
        id="value-negative-amount",
        build=orders("orders_negative.csv", _order("neg-1", total="-1")),
        path="raw-data/orders_negative.csv",
        status="loaded",
        quarantine=((2, "in_range", "total_amount"),),
    ),
    Case(
        id="value-huge-numbers",
        build=orders(
            "orders_huge.csv", _order("hug-1", total="1e400"), _order("hug-2", total="9" * 40)
        ),
        path="raw-data/orders_huge.csv",
        status="loaded",
        # 1e400 overflows a double; forty nines are a finite double.
        quarantine=((2, "parses_as_double", "total_amount"),),
        counts={"rows_read": 2, "inserted": 1},
        stored=(("orders", "hug-2", "total_amount", 1e40),),
    ),
    Case(
        id="value-huge-int",
        build=items("order_items_hugeint.csv", _item("hin-1", cart="99999999999999999999")),
        path="raw-data/order_items_hugeint.csv",
        status="loaded",
        quarantine=((2, "parses_as_int", "add_to_cart_order"),),
    ),
    Case(
        id="value-nan-inf",
        build=orders(
            "orders_nan.csv",
            _order("nan-1", total="NaN"),
            _order("nan-2", total="inf"),
            _order("nan-3", total="-Infinity"),
        ),
        path="raw-data/orders_nan.csv",
        status="loaded",
        # total_amount must be finite: NaN and infinities do not parse as its doubles.
        quarantine=(
            (2, "parses_as_double", "total_amount"),
            (3, "parses_as_double", "total_amount"),
            (4, "parses_as_double", "total_amount"),
        ),
        counts={"rows_read": 3, "inserted": 0},
        spark=True,
    ),
    Case(
        id="value-date-mismatch",
        build=orders("orders_datemis.csv", _order("dmi-1", date="2024-01-02")),
        path="raw-data/orders_datemis.csv",
        status="loaded",
        quarantine=((2, "date_matches_timestamp", "date"),),
    ),
    Case(
        id="value-bad-boolean",
        build=items("order_items_bool.csv", _item("boo-1", reordered="yes")),
        path="raw-data/order_items_bool.csv",
        status="loaded",
        quarantine=((2, "parses_as_boolean", "reordered"),),
    ),
    Case(
        id="value-department-65-bytes",
        build=products(
            "products_longdept.csv",
            _product("ldp-1", department="d" * 64),
            _product("ldp-2", department="d" * 65),
        ),
        path="raw-data/products_longdept.csv",
        status="loaded",
        quarantine=((3, "value_too_long", "department"),),
        counts={"rows_read": 2, "inserted": 1},
        spark=True,
    ),
    Case(
        id="value-hive-default-partition",
        build=products(
            "products_hive.csv", _product("hiv-1", department=" __HIVE_DEFAULT_PARTITION__ ")
        ),
        path="raw-data/products_hive.csv",
        status="loaded",
        quarantine=((2, "reserved_value", "department"),),
        spark=True,
    ),
    Case(
        id="value-sql-text",
        build=products("products_sql.csv", _product("sql-1", name=f'"{SQL_TEXT}"')),
        path="raw-data/products_sql.csv",
        status="loaded",
        stored=(("products", "sql-1", "product_name", SQL_TEXT),),
    ),
    Case(
        id="value-ansi-escapes",
        build=products("products_ansi.csv", _product("ans-1", name=ANSI_TEXT)),
        path="raw-data/products_ansi.csv",
        status="loaded",
        stored=(("products", "ans-1", "product_name", ANSI_TEXT),),
    ),
    Case(
        id="value-emoji-rtl",
        build=products("products_emoji.csv", _product("emo-1", name=EMOJI_RTL)),
        path="raw-data/products_emoji.csv",
        status="loaded",
        stored=(("products", "emo-1", "product_name", EMOJI_RTL),),
    ),
    # ------------------------------------------------------------ names
    Case(
        id="name-spaces",
        build=products("products with spaces.csv", _product("nsp-1")),
        path="raw-data/products with spaces.csv",
        status="loaded",
    ),
    Case(
        id="name-unicode",
        build=products("products_ünïcødé_😀.csv", _product("nun-1")),
        path="raw-data/products_ünïcødé_😀.csv",
        status="loaded",
    ),
    Case(
        id="name-markup-escape",
        build=products(f"products_[red]x{ESC}[31m.csv", _product("nmk-1")),
        path=f"raw-data/products_[red]x{ESC}[31m.csv",
        status="loaded",
    ),
    Case(
        id="name-backslash",
        build=products("products_b\\ack.csv", _product("nbs-1")),
        path="raw-data/products_b\\ack.csv",
        status="ignored",
        reason="invalid_name",
    ),
    Case(
        # Kept in the destination, such a folder would clash with a file named x.csv there.
        id="name-folder-like-a-file",
        build=products("x.csv/products_fold.csv", _product("nfl-1")),
        path="raw-data/x.csv/products_fold.csv",
        status="ignored",
        reason="invalid_folder_name",
    ),
    Case(
        id="name-very-long",
        build=products(LONG_NAME, _product("nlg-1")),
        path=f"raw-data/{LONG_NAME}",
        status="loaded",
    ),
    Case(
        id="name-same-in-two-folders",
        build=both(
            products("products/products_twice.csv", _product("two-1", name="in folder")),
            products("products_twice.csv", _product("two-2", name="at top")),
        ),
        path="raw-data/products/products_twice.csv",
        status="loaded",
        counts={"rows_read": 1, "inserted": 1},
    ),
    Case(
        id="name-same-in-two-folders-top",
        build=lambda raw: None,  # built by the case above
        path="raw-data/products_twice.csv",
        status="loaded",
        counts={"rows_read": 1, "inserted": 1},
    ),
    Case(
        id="name-upper-case-extension",
        build=products("products_upper.CSV", _product("upc-1")),
        path="raw-data/products_upper.CSV",
        status="loaded",
        counts={"rows_read": 1, "inserted": 1},
    ),
    Case(
        id="name-hidden",
        build=products("products/.hidden.csv", _product("hid-1")),
        path="raw-data/products/.hidden.csv",
        # docs/input-rules.md: any raw-data/<entity>/<name>.csv is taken, hidden or not.
        status="loaded",
    ),
    Case(
        id="name-unknown-entity",
        build=text_file("customers.csv", "id,name\n1,x\n"),
        path="raw-data/customers.csv",
        status="rejected",
        reason="unknown_entity",
    ),
    Case(
        id="name-not-csv",
        build=products("products_notes.txt", _product("txt-1")),
        path=None,  # not a raw drop: left alone, not logged
        status=None,
    ),
    # ------------------------------------------------------------ files
    Case(
        id="file-empty",
        build=bytes_file("products_empty.csv", b""),
        path="raw-data/products_empty.csv",
        status="loaded",
        counts={"rows_read": 0},
        spark=True,
    ),
    Case(
        id="file-header-only",
        build=products("products_headeronly.csv"),
        path="raw-data/products_headeronly.csv",
        status="loaded",
        counts={"rows_read": 0},
    ),
    Case(
        id="file-gzip-named-csv",
        build=bytes_file(
            "products_gzip.csv", gzip.compress(_csv(PRODUCTS_HEADER, _product("gz-1")).encode())
        ),
        path="raw-data/products_gzip.csv",
        status="rejected",
        reason="compressed",
        spark=True,
    ),
    Case(
        id="file-symlink",
        build=symlink("products_link.csv", "products_target.csv"),
        path="raw-data/products_link.csv",
        status="ignored",
        reason="symlink",
    ),
    Case(
        id="file-nested-too-deep",
        build=products("orders/2024/orders_nested.csv", _product("nst-1")),
        path="raw-data/orders/2024/orders_nested.csv",
        status="ignored",
        reason="nested_path",
    ),
    Case(
        id="file-unreadable",
        build=_unreadable,
        path=UNREADABLE,
        status="ignored",
        reason="unreadable",
    ),
    # ------------------------------------------------------------ duplicates
    Case(
        id="dup-key-in-one-file",
        build=products(
            "products_dupkey.csv", _product("dky-1", name="first"), _product("dky-1", name="last")
        ),
        path="raw-data/products_dupkey.csv",
        status="loaded",
        counts={"rows_read": 2, "inserted": 1, "duplicates_in_batch": 1},
        stored=(("products", "dky-1", "product_name", "last"),),
        spark=True,
    ),
    Case(
        id="dup-file-under-two-names",
        build=both(
            products("products_copy_a.csv", _product("cpy-1")),
            products("products_copy_b.csv", _product("cpy-1")),
        ),
        path="raw-data/products_copy_a.csv",
        status="loaded",
        counts={"rows_read": 1, "inserted": 1},
    ),
    Case(
        id="dup-file-under-two-names-second",
        build=lambda raw: None,  # built by the case above
        path="raw-data/products_copy_b.csv",
        status="skipped",
        reason="already_loaded",  # naming the run that loaded the same content
        counts={"rows_read": 0},
    ),
    # ------------------------------------------------------------ timing
    Case(
        id="time-fresh-file",
        build=fresh(orders("orders_fresh.csv", _order("frs-1")), "orders_fresh.csv"),
        path="raw-data/orders_fresh.csv",
        status="loaded",
        counts={"rows_read": 1, "inserted": 1},
    ),
    Case(
        id="time-mtime-in-the-future",
        build=future(orders("orders_future.csv", _order("fut-1")), "orders_future.csv"),
        path="raw-data/orders_future.csv",
        # Watched for the quiet period like a fresh file; unchanged, so taken.
        status="loaded",
        counts={"rows_read": 1, "inserted": 1},
    ),
    Case(
        id="time-still-being-written",
        build=_growing,
        path=GROWING,
        status="waiting",
        reason="still_being_written",
    ),
)


def test_the_corpus_is_large_and_its_ids_and_paths_unique() -> None:
    assert len(CASES) >= 40
    assert len({c.id for c in CASES}) == len(CASES)
    paths = [c.path for c in CASES if c.path]
    assert len(set(paths)) == len(paths)
    assert sum(c.spark for c in CASES) >= 12


# ---------------------------------------------------------------------------- running
@dataclass(frozen=True, slots=True)
class Observed:
    """What one run left: its result, and the audit and curated tables after it."""

    result: RunResult
    log: list[dict[str, Any]]
    quarantine: list[dict[str, Any]]
    tables: dict[str, list[dict[str, Any]]]


def _delta(lake: Path, key: str) -> list[dict[str, Any]]:
    path = lake / "lakehouse-dwh" / key
    if not (path / "_delta_log").exists():
        return []
    return pl.DataFrame(pl.from_arrow(DeltaTable(str(path)).to_pyarrow_table())).to_dicts()


def _observe(lake: Path, result: RunResult) -> Observed:
    return Observed(
        result=result,
        log=_delta(lake, "_audit/ingest_log"),
        quarantine=_delta(lake, "_audit/quarantine"),
        tables={t: _delta(lake, t) for t in ("products", "orders", "order_items")},
    )


def _write_slowly(path: Path, stop: threading.Event) -> None:
    """Append a valid order every 20 ms until ``stop`` (set when discovery is over)."""
    with path.open("a") as handle:
        n = 0
        while not stop.is_set():
            n += 1
            handle.write(_order(f"grw-{n}") + "\n")
            handle.flush()
            time.sleep(0.02)


def run_corpus(
    lake: Path,
    cases: tuple[Case, ...],
    engine: str = "polars",
    steps: tuple[str, ...] | None = None,
) -> Observed:
    """Build every case under one ``raw-data/`` and ingest them all in one run."""
    raw = lake / "raw-data"
    raw.mkdir(parents=True)
    for case in cases:
        case.build(raw)
    opened = lh.open_lake(str(lake), engine=engine)
    stop = threading.Event()
    writer = None
    if any(c.path == GROWING for c in cases):
        writer = threading.Thread(target=_write_slowly, args=(lake / GROWING, stop))
        writer.start()

    def progress(step: str, message: str) -> None:
        if step != "discover":
            stop.set()  # discovery saw the file change: it is complete from now on

    try:
        options = RunOptions(settle_seconds=SETTLE_SECONDS, steps=steps)
        result = opened.run(options, progress=progress)
    finally:
        stop.set()
        if writer is not None:
            writer.join()
    return _observe(lake, result)


def replay(lake: Path, first: Observed, engine: str = "polars") -> Observed:
    """Drop again, byte for byte, every file the first run moved, and run again."""
    for outcome in first.result.files:
        if outcome.destination:
            target = lake / outcome.file.key
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(lake / outcome.destination, target)
    result = lh.open_lake(str(lake), engine=engine).run(RunOptions(settle_seconds=0))
    return _observe(lake, result)


def case_log(observed: Observed, case: Case) -> list[dict[str, Any]]:
    return [r for r in observed.log if r["source_path"] == case.path]


def case_quarantine(observed: Observed, case: Case) -> list[QRow]:
    rows = [q for q in observed.quarantine if q["source_file"] == case.path]
    return sorted((q["line_number"], q["rule"], q["column_name"]) for q in rows)


def outcome_of(observed: Observed, case: Case) -> tuple[str, str, tuple[QRow, ...]]:
    """(status, reason, quarantine rows) of the case's file in the one run observed."""
    (row,) = case_log(observed, case)
    reason = (row["error"] or "").split(": ", 1)[0] if row["error"] else ""
    return row["status"], reason, tuple(case_quarantine(observed, case))


# ---------------------------------------------------------------------------- Polars: one run
Corpus = tuple[Path, Observed, Observed]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Corpus]:
    """The whole corpus in one lake: one run, then one replay of every moved file."""
    lake = tmp_path_factory.mktemp("corpus") / "lake"
    with pytest.MonkeyPatch.context() as patch:
        checksum = LocalObjectStorage.checksum

        def as_non_root(self: LocalObjectStorage, key: str) -> str:
            # chmod 000 stops every user but root: play the unprivileged user under root too.
            if key == UNREADABLE:
                raise PermissionError(13, "Permission denied")
            return checksum(self, key)

        patch.setattr(LocalObjectStorage, "checksum", as_non_root)
        first = run_corpus(lake, CASES)
        second = replay(lake, first)
    yield lake, first, second
    (lake / "raw-data" / "products_unreadable.csv").chmod(0o644)


def _first_run_rows(observed: Observed) -> list[dict[str, Any]]:
    return [r for r in observed.log if r["run_id"] == observed.result.run_id]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_each_hostile_input_gets_its_pinned_outcome(corpus: Corpus, case: Case) -> None:
    lake, first, _ = corpus
    if case.path is None:
        assert not [r for r in first.log if r["source_path"].endswith(".txt")]
        assert (lake / "raw-data" / "products_notes.txt").exists()  # left alone
        return
    rows = [r for r in _first_run_rows(first) if r["source_path"] == case.path]
    assert len(rows) == 1, f"{case.id}: one ingest_log row per file per run"
    (row,) = rows
    assert row["status"] == case.status, (case.id, row["error"])
    if case.reason:
        assert (row["error"] or "").startswith(f"{case.reason}: "), (case.id, row["error"])
        assert "\n" not in row["error"]
    else:
        assert row["error"] is None, (case.id, row["error"])
    assert tuple(case_quarantine(first, case)) == case.quarantine
    assert row["quarantined"] == len(case.quarantine)
    for name, value in case.counts.items():
        assert row[name] == value, (case.id, name)
    if case.status in ("rejected", "ignored", "waiting", "skipped"):
        assert all(row[name] == 0 for name in COUNT_FIELDS if name != "rows_read")
    for table, key, column, value in case.stored:
        pk = {"products": "product_id", "orders": "order_id", "order_items": "id"}[table]
        (stored,) = [r for r in first.tables[table] if r[pk] == key]
        assert stored[column] == value, (case.id, column)


def test_no_input_stops_the_run_and_every_row_is_accounted_for(corpus: Corpus) -> None:
    _, first, second = corpus
    assert first.result.ok and first.result.failed_step is None, first.result.error
    assert second.result.ok and second.result.failed_step is None, second.result.error
    expected = {c.path for c in CASES if c.path}
    assert sorted(r["source_path"] for r in _first_run_rows(first)) == sorted(expected)
    for row in first.log + second.log:
        counted = sum(row[name] for name in COUNT_FIELDS if name != "rows_read")
        assert row["rows_read"] == counted, row["source_path"]
    # Every quarantine row is a pinned one: nothing quarantined that a case did not expect.
    pinned = {(c.path, *q) for c in CASES for q in c.quarantine}
    stored = {
        (q["source_file"], q["line_number"], q["rule"], q["column_name"]) for q in first.quarantine
    }
    assert stored == pinned
    assert len(first.quarantine) == len(pinned)


def test_every_file_went_to_one_zone(corpus: Corpus) -> None:
    lake, first, _ = corpus
    for outcome in first.result.files:
        status, key = outcome.status.value, outcome.file.key
        if status in ("loaded", "skipped"):
            assert outcome.destination and outcome.destination.startswith("archive/"), key
            assert (lake / outcome.destination).is_file(), key
        elif status == "rejected":
            assert outcome.destination and outcome.destination.startswith("rejected/"), key
            report_path = lake / f"{outcome.destination}.error.json"
            assert json.loads(report_path.read_text())["source_path"] == key
        else:
            assert outcome.destination is None, key
        assert all(len(part.encode()) <= 255 for part in (outcome.destination or "").split("/"))
    destinations = [o.destination for o in first.result.files if o.destination]
    assert len(set(destinations)) == len(destinations)  # same name in two folders: two places
    # After both runs only the files a run must not take are left in raw-data/.
    left = sorted(
        p.relative_to(lake).as_posix()
        for p in (lake / "raw-data").rglob("*")
        if p.is_file() or p.is_symlink()
    )
    untaken = sorted(c.path for c in CASES if c.status == "ignored" and c.path)
    assert left == sorted([*untaken, "raw-data/products_notes.txt"])
    assert not [p for p in lake.rglob("*") if p.name.startswith(".lakehouse-tmp")]


def test_the_run_report_prints_hostile_text_plainly(corpus: Corpus) -> None:
    _, first, _ = corpus
    buffer = io.StringIO()
    report.print_run(Console(file=buffer, width=400, color_system=None), first.result)
    printed = buffer.getvalue()
    assert ESC not in printed and "\x07" not in printed
    assert "products_[red]x\\x1b[31m.csv" in printed
    assert "products_b\\ack.csv" in printed


def test_a_replay_of_every_file_changes_nothing(corpus: Corpus) -> None:
    _, first, second = corpus
    statuses = {o.file.key: (o.status.value, o.error or "") for o in second.result.files}
    for case in CASES:
        if case.path is None:
            continue
        status, error = statuses[case.path]
        expected = {"loaded": "skipped", "skipped": "skipped", "waiting": "loaded"}.get(
            case.status or "", case.status
        )
        assert status == expected, (case.id, error)
        if expected in ("rejected", "ignored"):
            assert error.startswith(f"{case.reason}: "), (case.id, error)
    # No quarantine row added, none duplicated.
    assert len(second.quarantine) == len(first.quarantine)
    keys = [(q["source_checksum"], q["line_number"]) for q in second.quarantine]
    assert len(set(keys)) == len(keys) and None not in {k[0] for k in keys}
    # The tables keep their rows; only the file that was still being written came in.
    assert second.tables["products"] == first.tables["products"]
    assert second.tables["order_items"] == first.tables["order_items"]
    before = sorted(first.tables["orders"], key=lambda r: r["order_id"])
    after = sorted(
        (r for r in second.tables["orders"] if not r["order_id"].startswith("grw-")),
        key=lambda r: r["order_id"],
    )
    assert after == before
    (growing,) = [o for o in second.result.files if o.file.key == GROWING]
    grown = [r for r in second.tables["orders"] if r["order_id"].startswith("grw-")]
    assert growing.counts.rows_read == growing.counts.inserted == len(grown) > 0


# ---------------------------------------------------------------------------- Spark subset
SPARK_CASES = tuple(c for c in CASES if c.spark)
#: The steps that decide a file's outcome (catalogue, validate and report decide none of it,
#: and on Spark they cost more than the rest of the run).
OUTCOME_STEPS = ("discover", "ingest", "archive")


@pytest.mark.spark
def test_the_spark_engine_gives_the_subset_the_same_outcomes(tmp_path: Path) -> None:
    polars = run_corpus(tmp_path / "polars", SPARK_CASES, "polars", OUTCOME_STEPS)
    spark = run_corpus(tmp_path / "spark", SPARK_CASES, "spark", OUTCOME_STEPS)
    assert spark.result.ok, spark.result.error
    assert len(SPARK_CASES) >= 12
    for case in SPARK_CASES:
        on_spark = outcome_of(spark, case)
        assert on_spark == outcome_of(polars, case), case.id
        assert on_spark == (case.status, case.reason, case.quarantine), case.id
        (row,) = case_log(spark, case)
        for name, value in case.counts.items():
            assert row[name] == value, (case.id, name)
        counted = sum(row[name] for name in COUNT_FIELDS if name != "rows_read")
        assert row["rows_read"] == counted, case.id
