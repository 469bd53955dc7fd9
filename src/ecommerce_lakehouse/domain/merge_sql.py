"""The MERGE conditions as SQL text, for engines whose MERGE takes SQL.

See docs/contract.md#deduplication-and-merge.

delta-rs and Delta Lake on Spark both take the MERGE predicate and the update condition as
SQL; only identifier quoting and literal syntax differ between their dialects, so engines
pass those in and the conditions themselves are written once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ecommerce_lakehouse.domain.schemas import MergeSpec

#: Quotes an identifier in the engine's SQL dialect.
Quote = Callable[[str], str]
#: Renders a partition value as a literal of the partition column's type.
Literal = Callable[[Any], str]


def partition_filter(column: str, touched: Sequence[Any], literal: Literal) -> str:
    """SQL keeping the rows whose ``column`` (an SQL reference) holds a value of ``touched``.

    Literal values let the engine prune files by partition; a None in ``touched`` stands
    for the null partition.
    """
    literals = [literal(v) for v in touched if v is not None]
    allowed = [f"{column} IN ({', '.join(literals)})"] if literals else []
    if any(v is None for v in touched):
        allowed.append(f"{column} IS NULL")
    return f"({' OR '.join(allowed)})"


def merge_predicate(
    spec: MergeSpec, touched: Sequence[Any], *, quote: Quote, literal: Literal
) -> str:
    """The MERGE condition: key equality, with the target limited to touched partitions."""
    keys = " AND ".join(f"target.{quote(k)} = source.{quote(k)}" for k in spec.key)
    column = f"target.{quote(spec.partition_column)}"
    return f"{keys} AND {partition_filter(column, touched, literal)}"


def update_condition(spec: MergeSpec, *, quote: Quote) -> str:
    """SQL twin of the classification's update condition (:mod:`.decisions`)."""
    differs = " OR ".join(
        f"(source.{quote(c)} IS DISTINCT FROM target.{quote(c)})" for c in spec.business_columns
    )
    clauses = [f"({differs or 'false'})"]
    if spec.ordering_column:
        column = quote(spec.ordering_column)
        clauses.insert(0, f"(source.{column} >= target.{column})")
    return " AND ".join(clauses)
