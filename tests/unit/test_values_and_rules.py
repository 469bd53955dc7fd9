import sys
from datetime import UTC, date, datetime
from typing import Any

import pytest

from ecommerce_lakehouse.domain import values
from ecommerce_lakehouse.domain.rules import (
    RAGGED_RECORD,
    DateMatchesTimestamp,
    FieldCount,
    InRange,
    MaxBytes,
    NotNull,
    NotReserved,
    ParsesAs,
    Violation,
    cast_value,
    first_violation,
)
from ecommerce_lakehouse.domain.schemas import ORDER_ITEMS, ORDERS, PRODUCTS
from ecommerce_lakehouse.domain.types import ColumnType


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(None, None), ("", None), ("   ", None), (" a ", "a"), ("a b", "a b")],
)
def test_text_is_trimmed_and_empty_becomes_null(raw: str | None, expected: str | None) -> None:
    assert values.normalize_text(raw) == expected


def test_the_whitespace_engines_trim_is_what_str_strip_removes() -> None:
    stripped = {chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace()}
    assert set(values.WHITESPACE) == stripped
    assert len(values.WHITESPACE) == len(stripped)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-01-02T03:04:05", datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2024-01-02 03:04:05", datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2024-01-02T03:04", datetime(2024, 1, 2, 3, 4, tzinfo=UTC)),
        ("2024-01-02T03:04:05Z", datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2024-01-02T03:04:05+02:00", datetime(2024, 1, 2, 1, 4, 5, tzinfo=UTC)),
        ("2024-01-02T23:30:00-0130", datetime(2024, 1, 3, 1, 0, tzinfo=UTC)),
        ("2024-01-02T03:04:05.123456789", datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)),
        ("2024-01-02T03:04:05.5", datetime(2024, 1, 2, 3, 4, 5, 500000, tzinfo=UTC)),
        ("2024-13-02T03:04:05", None),
        ("2024-02-30T03:04:05", None),
        ("2024-01-02T24:00:00", None),
        ("2024-01-02", None),
        ("yesterday", None),
        ("2024-01-02T03:04:05+25:00", None),
    ],
)
def test_timestamps_honour_offsets_and_naive_values_are_utc(
    text: str, expected: datetime | None
) -> None:
    assert values.parse_timestamp(text) == expected


@pytest.mark.parametrize(
    ("text", "column_type", "expected"),
    [
        ("42", ColumnType.INT, 42),
        ("+7", ColumnType.INT, 7),
        ("-3", ColumnType.INT, -3),
        ("2147483648", ColumnType.INT, None),
        ("4.0", ColumnType.INT, None),
        ("x", ColumnType.INT, None),
        ("1.5", ColumnType.DOUBLE, 1.5),
        ("1e3", ColumnType.DOUBLE, 1000.0),
        (".5", ColumnType.DOUBLE, 0.5),
        ("nan", ColumnType.DOUBLE, None),
        ("inf", ColumnType.DOUBLE, None),
        ("1e999", ColumnType.DOUBLE, None),
        ("1,5", ColumnType.DOUBLE, None),
        ("TRUE", ColumnType.BOOLEAN, True),
        ("0", ColumnType.BOOLEAN, False),
        ("False", ColumnType.BOOLEAN, False),
        ("yes", ColumnType.BOOLEAN, None),
        ("2024-02-29", ColumnType.DATE, date(2024, 2, 29)),
        ("2023-02-29", ColumnType.DATE, None),
        ("20240101", ColumnType.DATE, None),
    ],
)
def test_casts_follow_the_products_own_rules(
    text: str, column_type: ColumnType, expected: object
) -> None:
    assert cast_value(text, column_type) == expected


def _order(**overrides: str | None) -> dict[str, str | None]:
    record: dict[str, str | None] = {
        "order_num": "1",
        "order_id": "o1",
        "user_id": "u1",
        "order_timestamp": "2024-01-02T03:04:05",
        "total_amount": "10.5",
        "date": "2024-01-02",
    }
    record.update(overrides)
    return record


@pytest.mark.parametrize(
    ("overrides", "rule", "column"),
    [
        ({}, None, None),
        ({"date": None}, None, None),
        ({"order_id": None}, "not_null", "order_id"),
        ({"user_id": None}, "not_null", "user_id"),
        ({"order_timestamp": None}, "not_null", "order_timestamp"),
        ({"order_timestamp": "2024-01-02"}, "parses_as_timestamp", "order_timestamp"),
        ({"total_amount": "ten"}, "parses_as_double", "total_amount"),
        ({"total_amount": "-0.01"}, "in_range", "total_amount"),
        ({"total_amount": None}, None, None),
        ({"date": "2024-01-03"}, "date_matches_timestamp", "date"),
        ({"date": "2024-01-01", "order_timestamp": "2024-01-02T01:00:00+02:00"}, None, None),
        ({"date": "01/02/2024"}, "parses_as_date", "date"),
        # The first broken rule wins: the key is checked before the amount.
        ({"order_id": None, "total_amount": "-1"}, "not_null", "order_id"),
    ],
)
def test_order_rules_report_the_first_broken_rule(
    overrides: dict[str, str | None], rule: str | None, column: str | None
) -> None:
    violation = first_violation(_order(**overrides), ORDERS.rules, ORDERS.types)
    assert (violation.rule if violation else None) == rule
    assert (violation.column if violation else None) == column


def _item(**overrides: str | None) -> dict[str, str | None]:
    record: dict[str, str | None] = {
        "id": "i1",
        "order_id": "o1",
        "user_id": "u1",
        "days_since_prior_order": "7",
        "product_id": "p1",
        "add_to_cart_order": "1",
        "reordered": "1",
        "order_timestamp": "2024-01-02T03:04:05",
        "date": None,
    }
    record.update(overrides)
    return record


@pytest.mark.parametrize(
    ("overrides", "rule", "column"),
    [
        ({}, None, None),
        ({"days_since_prior_order": None}, None, None),
        ({"days_since_prior_order": "365"}, None, None),
        ({"days_since_prior_order": "366"}, "in_range", "days_since_prior_order"),
        ({"days_since_prior_order": "-1"}, "in_range", "days_since_prior_order"),
        ({"add_to_cart_order": "0"}, "in_range", "add_to_cart_order"),
        ({"add_to_cart_order": "x"}, "parses_as_int", "add_to_cart_order"),
        ({"reordered": "TRUE"}, None, None),
        ({"reordered": "maybe"}, "parses_as_boolean", "reordered"),
        ({"product_id": None}, "not_null", "product_id"),
        ({"order_id": None}, "not_null", "order_id"),
        ({"id": None}, "not_null", "id"),
    ],
)
def test_order_item_rules(
    overrides: dict[str, str | None], rule: str | None, column: str | None
) -> None:
    violation = first_violation(_item(**overrides), ORDER_ITEMS.rules, ORDER_ITEMS.types)
    assert (violation.rule if violation else None) == rule
    assert (violation.column if violation else None) == column


def test_products_require_only_their_key() -> None:
    record = {"product_id": None, "department_id": None, "department": None, "product_name": None}
    violation = first_violation(record, PRODUCTS.rules, PRODUCTS.types)
    assert violation is not None and violation.rule == "not_null"
    record["product_id"] = "p1"
    assert first_violation(record, PRODUCTS.rules, PRODUCTS.types) is None


def test_rules_are_declarative_value_objects() -> None:
    assert NotNull(column="a") == NotNull(column="a")
    assert InRange(column="total_amount", minimum=0) in ORDERS.rules
    assert DateMatchesTimestamp(date_column="date", timestamp_column="order_timestamp") in (
        ORDERS.rules
    )
    with pytest.raises(ValueError, match="minimum or a maximum"):
        InRange(column="a")
    with pytest.raises(ValueError, match="exceeds"):
        InRange(column="a", minimum=2, maximum=1)
    with pytest.raises(ValueError, match="typed column"):
        ParsesAs(column="a", type=ColumnType.STRING)


# ---------------------------------------------------------------- issue 11
def _product(department: str | None, **marks: object) -> dict[str, object]:
    return {
        "product_id": "p1",
        "department_id": "1",
        "department": department,
        "product_name": "x",
        **marks,
    }


@pytest.mark.parametrize(
    ("department", "rule"),
    [
        ("d" * values.MAX_PARTITION_VALUE_BYTES, None),
        ("d" * (values.MAX_PARTITION_VALUE_BYTES + 1), "value_too_long"),
        ("é" * (values.MAX_PARTITION_VALUE_BYTES // 2) + "x", "value_too_long"),  # bytes count
        (values.HIVE_DEFAULT_PARTITION, "reserved_value"),
        (values.HIVE_DEFAULT_PARTITION.lower(), None),
        (None, None),
    ],
)
def test_a_text_partition_value_is_bounded_and_never_the_null_marker(
    department: str | None, rule: str | None
) -> None:
    record: Any = _product(department)
    violation = first_violation(record, PRODUCTS.rules, PRODUCTS.types)
    assert (violation.rule if violation else None) == rule
    if violation:
        assert violation.column == "department"


def test_partition_rules_apply_to_text_partitions_only() -> None:
    assert MaxBytes(column="department", maximum=values.MAX_PARTITION_VALUE_BYTES) in (
        PRODUCTS.rules
    )
    assert not any(isinstance(r, MaxBytes | NotReserved) for r in ORDERS.rules)
    # The encoded directory name stays well under the 255-byte file-name limit.
    assert len("department=") + 3 * values.MAX_PARTITION_VALUE_BYTES < 255 - 32
    with pytest.raises(ValueError, match="positive maximum"):
        MaxBytes(column="a", maximum=0)
    with pytest.raises(ValueError, match="at least one"):
        NotReserved(column="a", reserved=())


def test_a_record_marked_ragged_breaks_wrong_field_count_first() -> None:
    record: Any = _product(None, product_id=None, **{RAGGED_RECORD: True})
    violation = first_violation(record, PRODUCTS.rules, PRODUCTS.types)
    assert violation == Violation(
        rule="wrong_field_count",
        column=None,
        reason="the record has more fields than the header",
    )
    assert all(s.rules[0] == FieldCount() for s in (PRODUCTS, ORDERS, ORDER_ITEMS))
    record[RAGGED_RECORD] = False
    violation = first_violation(record, PRODUCTS.rules, PRODUCTS.types)
    assert violation is not None and violation.rule == "not_null"
