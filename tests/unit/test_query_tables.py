"""Which tables a query reads (and at which version), and the first line of a message."""

from __future__ import annotations

import pytest

from ecommerce_lakehouse.application.query_tables import (
    NOT_CREATED_YET,
    check_version,
    is_show_tables,
    mentions,
    tables_to_read,
    version_unreadable,
)
from ecommerce_lakehouse.application.tables import TABLE_NAMES
from ecommerce_lakehouse.domain.errors import ConfigurationError, first_line

# ----------------------------------------------------------------------------- mentions


@pytest.mark.parametrize(
    ("query", "name", "expected"),
    [
        ("SELECT * FROM orders", "orders", True),
        ("select * from ORDERS o", "orders", True),
        ("SELECT count(*) FROM\norders", "orders", True),
        ('SELECT * FROM "orders"', "orders", True),
        ("SELECT * FROM order_items", "orders", False),
        ("SELECT * FROM order_items", "order_items", True),
        ("SELECT * FROM preorders", "orders", False),
        ("SELECT * FROM orders_2024", "orders", False),
        ("SELECT 'orders' AS label", "orders", True),  # a false positive costs one table
        ("SELECT 1", "products", False),
    ],
)
def test_a_table_is_mentioned_as_a_whole_word_in_any_case(
    query: str, name: str, expected: bool
) -> None:
    assert mentions(query, name) is expected


# ----------------------------------------------------------------------------- tables_to_read


def test_only_the_tables_a_query_mentions_are_read_at_their_latest_version() -> None:
    query = "SELECT * FROM orders JOIN order_items USING (order_id)"

    assert tables_to_read(query, None) == {"orders": None, "order_items": None}
    assert tables_to_read(query, {}) == {"orders": None, "order_items": None}


def test_a_pinned_table_is_read_at_its_version_even_if_not_mentioned() -> None:
    to_read = tables_to_read("SELECT * FROM orders", {"products": 3, "orders": 0})

    assert to_read == {"products": 3, "orders": 0}


def test_the_tables_come_in_the_order_the_engine_gives_them() -> None:
    query = "SELECT * FROM validation_results, quarantine, products"

    assert list(tables_to_read(query, None)) == ["products", "quarantine", "validation_results"]
    assert list(tables_to_read(query, None, ["validation_results", "products"])) == [
        "validation_results",
        "products",
    ]


def test_a_query_that_mentions_no_table_reads_none() -> None:
    assert tables_to_read("SELECT 1", None) == {}


def test_as_of_naming_unknown_tables_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError) as raised:
        tables_to_read("SELECT * FROM orders", {"zebra": 1, "orders": 0, "apples": 2})

    assert str(raised.value) == (
        f"as_of names unknown table(s) apples, zebra (tables: {', '.join(sorted(TABLE_NAMES))})"
    )


def test_unknown_tables_are_those_outside_the_engines_tables() -> None:
    with pytest.raises(ConfigurationError, match=r"unknown table\(s\) orders \(tables: products\)"):
        tables_to_read("SELECT 1", {"orders": 1}, ("products",))


# ----------------------------------------------------------------------------- versions


@pytest.mark.parametrize("version", [0, 2, 5])
def test_a_version_the_table_has_passes(version: int) -> None:
    check_version("orders", version, 5)


@pytest.mark.parametrize("version", [-1, 6, 100])
def test_a_version_the_table_does_not_have_is_refused(version: int) -> None:
    with pytest.raises(ConfigurationError) as raised:
        check_version("orders", version, 5)

    assert str(raised.value) == (f"table 'orders' has no version {version} (versions 0 to 5 exist)")


def test_an_unreadable_version_names_the_table_the_version_and_the_reason() -> None:
    error = version_unreadable("quarantine", 4, NOT_CREATED_YET)

    assert isinstance(error, ConfigurationError)
    assert str(error) == (
        "cannot read table 'quarantine' as of version 4: the table has not been created yet"
    )


# ----------------------------------------------------------------------------- first_line


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("one line", "one line"),
        ("first\nsecond\nthird", "first"),
        ("  padded  \nnext", "padded"),
        ("\n\n   \nafter blanks\nmore", "after blanks"),
        ("windows\r\nline", "windows"),
        ("", ""),
        ("  \n \t\n", ""),
    ],
)
def test_first_line_is_the_first_non_blank_line_stripped(text: str, expected: str) -> None:
    assert first_line(text) == expected


def test_first_line_of_a_blank_text_is_the_default() -> None:
    assert first_line("\n  \n", default="ValueError") == "ValueError"
    assert first_line("reason\n", default="ValueError") == "reason"


@pytest.mark.parametrize(
    "query",
    [
        "SHOW TABLES",
        "  show tables; ",
        "Show\nTables",
        "SHOW TABLES;;",
        "SHOW TABLES -- all of them",
        "/* c */ SHOW TABLES",
        "SHOW TABLES FROM main",
        "SHOW ALL TABLES",
    ],
)
def test_show_tables_reads_every_table(query: str) -> None:
    assert is_show_tables(query)
    assert list(tables_to_read(query, None)) == list(TABLE_NAMES)


@pytest.mark.parametrize(
    "query",
    ["SELECT * FROM (SHOW TABLES)", "SELECT table_name FROM information_schema.tables"],
)
def test_queries_that_list_tables_read_every_table(query: str) -> None:
    assert not is_show_tables(query)
    assert list(tables_to_read(query, None)) == list(TABLE_NAMES)
    assert list(tables_to_read("SELECT 1 -- SHOW TABLES", None)) == []
