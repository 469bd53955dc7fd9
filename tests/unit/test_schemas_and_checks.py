from dataclasses import replace

import pytest

from ecommerce_lakehouse.domain.audit import INGEST_LOG, QUARANTINE, VALIDATION_RESULTS
from ecommerce_lakehouse.domain.rules import NotNull
from ecommerce_lakehouse.domain.schemas import ORDER_ITEMS, ORDERS, PRODUCTS
from ecommerce_lakehouse.domain.types import Column, ColumnType, Severity
from ecommerce_lakehouse.domain.validation import ValidationPolicy, all_checks


def test_schemas_match_the_product_spec() -> None:
    assert PRODUCTS.column_names == ("product_id", "department_id", "department", "product_name")
    assert ORDERS.column_names == (
        "order_num",
        "order_id",
        "user_id",
        "order_timestamp",
        "total_amount",
        "date",
    )
    assert ORDER_ITEMS.column_names == (
        "id",
        "order_id",
        "user_id",
        "days_since_prior_order",
        "product_id",
        "add_to_cart_order",
        "reordered",
        "order_timestamp",
        "date",
    )
    assert (PRODUCTS.partition_column, ORDERS.partition_column, ORDER_ITEMS.partition_column) == (
        "department",
        "date",
        "date",
    )
    stored = [c.name for c in ORDERS.stored_columns]
    assert stored[-4:] == ["_rescued_data", "_source_file", "_ingested_at", "_run_id"]
    assert "date" not in ORDERS.source_columns


def test_audit_columns_are_the_contract() -> None:
    assert INGEST_LOG.column_names == (
        "run_id",
        "entity",
        "source_path",
        "size_bytes",
        "checksum",
        "status",
        "rows_read",
        "inserted",
        "updated",
        "unchanged",
        "duplicates_in_batch",
        "quarantined",
        "started_at",
        "finished_at",
        "error",
        "destination",
    )
    assert QUARANTINE.column_names == (
        "run_id",
        "entity",
        "source_file",
        "line_number",
        "rule",
        "column_name",
        "reason",
        "raw_record",
        "quarantined_at",
        "source_checksum",
    )
    assert VALIDATION_RESULTS.column_names == (
        "run_id",
        "table_name",
        "check_name",
        "severity",
        "passed",
        "observed",
        "expected",
        "sample",
        "checked_at",
    )


def test_checks_cover_every_table_and_foreign_keys_warn_by_default() -> None:
    checks = {(c.table_name, c.check_name): c for c in all_checks()}
    for table in ("products", "orders", "order_items"):
        for name in (
            "primary_key_unique",
            "primary_key_not_null",
            "required_columns_not_null",
            "row_count_matches_ingest_log",
        ):
            assert checks[(table, name)].severity is Severity.ERROR
    assert ("orders", "partition_column_consistent") in checks
    assert ("products", "partition_column_consistent") not in checks
    assert checks[("order_items", "order_id_in_orders")].severity is Severity.WARN
    assert checks[("order_items", "product_id_in_products")].severity is Severity.WARN
    strict = {
        c.check_name: c for c in all_checks(ValidationPolicy(foreign_key_severity=Severity.ERROR))
    }
    assert strict["order_id_in_orders"].severity is Severity.ERROR


def test_check_sql_stays_in_the_shared_dialect() -> None:
    for check in all_checks():
        for sql in (check.observed_sql, check.sample_sql, check.expected_sql):
            if sql is None:
                continue
            assert "::" not in sql and "`" not in sql and '"' not in sql
            assert "LIMIT 10" in sql or sql is not check.sample_sql


def test_foreign_key_checks_follow_the_references_declared_on_the_schemas() -> None:
    # A catalogue where orders also reference the products table (say, a featured product).
    orders = replace(
        ORDERS,
        columns=(*ORDERS.columns, Column(name="product_id", type=ColumnType.STRING)),
        foreign_keys=(*ORDERS.foreign_keys, "product_id"),
        references=(("product_id", "products"),),
    )
    names = [c.check_name for c in all_checks(schemas=(PRODUCTS, orders, ORDER_ITEMS))]
    assert names[-3:] == ["product_id_in_products", "order_id_in_orders", "product_id_in_products"]
    assert "product_id" in {r.column for r in orders.rules if isinstance(r, NotNull)}

    with pytest.raises(ValueError, match=r"order_items\.order_id references unknown table orders"):
        all_checks(schemas=(PRODUCTS, ORDER_ITEMS))
    with pytest.raises(ValueError, match="reference id is not a foreign key"):
        replace(ORDER_ITEMS, references=(("id", "orders"),))


@pytest.mark.parametrize("column", ["id", "add_to_cart_order", "no_such_column"])
def test_a_low_cardinality_column_is_a_text_column_outside_the_key(column: str) -> None:
    with pytest.raises(ValueError, match=f"low-cardinality column {column} is not a text column"):
        replace(ORDER_ITEMS, low_cardinality=(column,))
    assert replace(ORDER_ITEMS, low_cardinality=("order_id",)).low_cardinality == ("order_id",)


def test_every_table_of_the_catalogue_has_its_own_name() -> None:
    # A table name is a folder, a catalogue entry and a SQL name: two schemas (or a schema
    # and an audit table) sharing one would write into each other.
    from ecommerce_lakehouse.application.tables import TABLE_NAMES

    assert len(set(TABLE_NAMES)) == len(TABLE_NAMES)
