"""Mappings between the domain's logical column types and Spark SQL types.

Spark's ``TimestampType`` is an instant (stored UTC-adjusted, Delta ``timestamp``), never
``timestamp_ntz``, so tables stay readable by delta-rs, Athena and Glue
(docs/contract.md#engines-and-platforms).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from ecommerce_lakehouse.domain.types import Column, ColumnType

if TYPE_CHECKING:
    from pyspark.sql import Column as SparkColumn
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import DataType, StructType

#: The Spark SQL type name (as in DDL and ``DataType.simpleString``) of each logical type.
SQL_TYPES: dict[ColumnType, str] = {
    ColumnType.STRING: "string",
    ColumnType.INT: "int",
    ColumnType.BIGINT: "bigint",
    ColumnType.DOUBLE: "double",
    ColumnType.BOOLEAN: "boolean",
    ColumnType.DATE: "date",
    ColumnType.TIMESTAMP: "timestamp",
}
_BY_SQL_NAME: dict[str, ColumnType] = {name: t for t, name in SQL_TYPES.items()}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def spark_type(column_type: ColumnType) -> DataType:
    """The Spark type a logical type is held in."""
    from pyspark.sql import types as T

    match column_type:
        case ColumnType.STRING:
            return T.StringType()
        case ColumnType.INT:
            return T.IntegerType()
        case ColumnType.BIGINT:
            return T.LongType()
        case ColumnType.DOUBLE:
            return T.DoubleType()
        case ColumnType.BOOLEAN:
            return T.BooleanType()
        case ColumnType.DATE:
            return T.DateType()
        case ColumnType.TIMESTAMP:
            return T.TimestampType()


def spark_schema(columns: Iterable[Column]) -> StructType:
    """A Spark schema of domain columns, in order, with their nullability."""
    from pyspark.sql import types as T

    return T.StructType(
        [T.StructField(c.name, spark_type(c.type), nullable=c.nullable) for c in columns]
    )


def column_type_of(data_type: DataType, column: str) -> ColumnType:
    """The logical type of a Spark type.

    Raises:
        ValueError: the type is not one the product stores (e.g. ``timestamp_ntz``).
    """
    name = data_type.simpleString()
    try:
        return _BY_SQL_NAME[name]
    except KeyError:
        raise ValueError(
            f"column {column} has Spark type {name}, which the product does not store"
        ) from None


def domain_columns(schema: StructType) -> tuple[Column, ...]:
    """Domain columns of a Spark schema (e.g. a Delta table's)."""
    return tuple(
        Column(name=f.name, type=column_type_of(f.dataType, f.name), nullable=f.nullable)
        for f in schema.fields
    )


def local_frame(
    session: SparkSession, rows: Sequence[tuple[object, ...]], schema: StructType
) -> DataFrame:
    """A frame of a few rows held by the driver (none for an empty frame), in one partition.

    ``createDataFrame`` of a list slices it into ``spark.default.parallelism`` partitions,
    and each slice starts a Python worker to hand its rows to the JVM (~0.1 s each: half
    the time of a one-row Delta append). One slice starts one.
    """
    return session.createDataFrame(session.sparkContext.parallelize(rows, 1), schema)


def collectable(column: SparkColumn, column_type: ColumnType) -> SparkColumn:
    """``column`` as a value a ``collect`` returns exactly (:func:`from_collected` reads it).

    PySpark turns collected timestamps into naive local-time datetimes; microseconds since
    the epoch are exact whatever the machine's time zone.
    """
    from pyspark.sql import functions as F

    return F.unix_micros(column) if column_type is ColumnType.TIMESTAMP else column


def from_collected(value: Any, column_type: ColumnType) -> Any:
    """The Python value of a collected :func:`collectable`: a timestamp as an aware datetime."""
    if value is not None and column_type is ColumnType.TIMESTAMP:
        return _EPOCH + timedelta(microseconds=int(value))
    return value
