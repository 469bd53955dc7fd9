"""Mappings between the domain's logical column types, Polars dtypes and Delta types."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import polars as pl

from ecommerce_lakehouse.domain.types import Column, ColumnType

#: Timestamps are UTC-adjusted (Delta ``timestamp``, never ``timestamp_ntz``).
UTC_TIMESTAMP = pl.Datetime("us", "UTC")

_POLARS: dict[ColumnType, pl.DataType] = {
    ColumnType.STRING: pl.String(),
    ColumnType.INT: pl.Int32(),
    ColumnType.BIGINT: pl.Int64(),
    ColumnType.DOUBLE: pl.Float64(),
    ColumnType.BOOLEAN: pl.Boolean(),
    ColumnType.DATE: pl.Date(),
    ColumnType.TIMESTAMP: UTC_TIMESTAMP,
}

#: Delta primitive type names (as in the transaction log) of each logical type.
_DELTA: dict[str, ColumnType] = {
    "string": ColumnType.STRING,
    "integer": ColumnType.INT,
    "long": ColumnType.BIGINT,
    "double": ColumnType.DOUBLE,
    "boolean": ColumnType.BOOLEAN,
    "date": ColumnType.DATE,
    "timestamp": ColumnType.TIMESTAMP,
}


def polars_dtype(column_type: ColumnType) -> pl.DataType:
    """The Polars dtype a logical type is held in."""
    return _POLARS[column_type]


def polars_schema(columns: Iterable[Column]) -> pl.Schema:
    """A Polars schema of domain columns, in order."""
    return pl.Schema({c.name: polars_dtype(c.type) for c in columns})


def arrow_schema(columns: Iterable[Column]) -> Any:
    """A pyarrow schema of domain columns (what ``DeltaTable.create`` is given)."""
    import pyarrow as pa

    types: Mapping[ColumnType, Any] = {
        ColumnType.STRING: pa.string(),
        ColumnType.INT: pa.int32(),
        ColumnType.BIGINT: pa.int64(),
        ColumnType.DOUBLE: pa.float64(),
        ColumnType.BOOLEAN: pa.bool_(),
        ColumnType.DATE: pa.date32(),
        ColumnType.TIMESTAMP: pa.timestamp("us", tz="UTC"),
    }
    return pa.schema([pa.field(c.name, types[c.type], nullable=c.nullable) for c in columns])


def column_type_of_delta(type_name: str, column: str) -> ColumnType:
    """The logical type of a Delta primitive type name.

    Raises:
        ValueError: the type is not one the product stores (e.g. ``timestamp_ntz``).
    """
    try:
        return _DELTA[type_name]
    except KeyError:
        raise ValueError(
            f"column {column} has Delta type {type_name}, which the product does not store"
        ) from None


def delta_type_name(column_type: ColumnType) -> str:
    """The Delta primitive type name of a logical type (``long`` for BIGINT)."""
    return next(name for name, logical in _DELTA.items() if logical is column_type)


def delta_columns(delta_schema: Any) -> tuple[Column, ...]:
    """Domain columns of a ``deltalake.Schema``."""
    columns: list[Column] = []
    for field in delta_schema.fields:
        type_name = getattr(field.type, "type", None)
        if not isinstance(type_name, str):
            raise ValueError(f"column {field.name} has a nested Delta type")
        columns.append(
            Column(
                name=field.name,
                type=column_type_of_delta(type_name, field.name),
                nullable=bool(field.nullable),
            )
        )
    return tuple(columns)
