"""The MERGE conditions as SQL text, shared by both engines.

See docs/contract.md#deduplication-and-merge.
"""

from __future__ import annotations

from ecommerce_lakehouse.domain.merge_sql import merge_predicate, update_condition
from ecommerce_lakehouse.domain.schemas import MergeSpec


def backticks(name: str) -> str:
    return f"`{name}`"


ORDERS = MergeSpec(
    key=("order_id",),
    business_columns=("user_id", "date"),
    ordering_column="order_ts",
    partition_column="date",
)


def test_the_predicate_limits_the_target_to_the_touched_partitions() -> None:
    predicate = merge_predicate(
        ORDERS, ["2026-11-25", None, "2026-11-26"], quote=backticks, literal=lambda v: f"'{v}'"
    )
    assert predicate == (
        "target.`order_id` = source.`order_id` AND "
        "(target.`date` IN ('2026-11-25', '2026-11-26') OR target.`date` IS NULL)"
    )


def test_a_stored_row_is_replaced_only_by_a_changed_and_not_older_one() -> None:
    assert update_condition(ORDERS, quote=backticks) == (
        "(source.`order_ts` >= target.`order_ts`) AND "
        "((source.`user_id` IS DISTINCT FROM target.`user_id`) OR "
        "(source.`date` IS DISTINCT FROM target.`date`))"
    )


def test_without_business_columns_nothing_is_ever_updated() -> None:
    spec = MergeSpec(key=("k",), business_columns=(), ordering_column=None, partition_column="p")
    assert update_condition(spec, quote=backticks) == "(false)"
