r"""Casting a file's plain values with Arrow kernels, in the batches its parse already holds.

Most values of a real drop are spelled the plainest way their type allows: a few ASCII
digits, ``YYYY-MM-DD``, ``YYYY-MM-DDTHH:MM:SS``, ``0`` or ``1``. The executor that parses a
file casts those in the same pass, column by column with Arrow's vectorised kernels, and
hands them to Spark typed; the Spark expressions of :mod:`expressions` then cast only the
values left null here (anything less plain, and everything of a file whose header does not
fit). On clean data that takes the regular expressions and substrings of those expressions,
most of staging's time, off every row.

A value gets a cast here only when it is the domain's (``rules.cast_value``), value for
value; the contract tests hold both to it:

- the shape is checked first (ASCII digits only, no sign, no whitespace, no exponent, a
  fixed layout for dates and times), and a shape's values all fit the type: at most 9
  digits for an int, 18 for a bigint, 15 before and after the point for a double, which
  Arrow parses correctly rounded as Python does;
- Arrow's ISO-8601 cast accepts exactly the days and times that exist (no 30 February, hour
  24 or second 60), but it fails the whole array on one that does not: such a batch is left
  to Spark whole. Year 0 parses in Arrow and not in Python, so it is never cast here.
- Only kernels of pyarrow 10 (Glue 4.0's) are used; a pyarrow lacking one leaves every
  value to Spark instead of failing the read.

A time without an offset is UTC, as in the domain.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING

from ecommerce_lakehouse.domain.headers import header_columns
from ecommerce_lakehouse.domain.types import Column, ColumnType
from ecommerce_lakehouse.domain.values import DATE_PATTERN, FALSE_TOKENS, TRUE_TOKENS
from ecommerce_lakehouse_spark.dtypes import spark_type
from ecommerce_lakehouse_spark.expressions import PLAIN_DIGITS

if TYPE_CHECKING:
    import pyarrow as pa

#: A column the parse casts: its name and logical type.
PlainCast = tuple[str, ColumnType]

#: The plainest spelling of each type's values. Every text of these shapes fits the type.
_SHAPES: dict[ColumnType, str] = {
    **{t: rf"^[0-9]{{1,{digits}}}$" for t, digits in PLAIN_DIGITS.items()},
    ColumnType.DOUBLE: r"^[0-9]{1,15}(\.[0-9]{1,15})?$",
    ColumnType.DATE: DATE_PATTERN,
    ColumnType.TIMESTAMP: r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}$",
}
#: Types whose Arrow cast fails on a value of the right shape that does not exist.
_CALENDAR = (ColumnType.DATE, ColumnType.TIMESTAMP)
_YEAR_ZERO = "0000"


def plain_casts(columns: Iterable[Column]) -> tuple[PlainCast, ...]:
    """The columns whose plain values the parse casts: every one not held as text."""
    return tuple(
        (c.name, c.type) for c in columns if c.type in _SHAPES or c.type is ColumnType.BOOLEAN
    )


def plain_name(column: str) -> str:
    """The parse's column holding ``column``'s plain values cast (null where not plain).

    It holds ``#``, which no business or evolved name can.
    """
    return f"#plain#{column}"


def arrow_type(column_type: ColumnType) -> pa.DataType:
    """The Arrow type Spark reads as the type it holds ``column_type`` in."""
    from pyspark.sql.pandas.types import to_arrow_type

    return to_arrow_type(spark_type(column_type))


def cast_plain(texts: pa.Array, column_type: ColumnType) -> pa.Array:
    """``texts`` cast to ``column_type`` where plain, null elsewhere.

    Args:
        texts: raw cells (untrimmed: a cell with whitespace is not plain).
        column_type: a type of :func:`plain_casts`.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    target = arrow_type(column_type)
    if column_type is ColumnType.BOOLEAN:
        # The domain compares case-insensitively; its tokens are lower case.
        unknown = pa.scalar(None, pa.bool_())
        false = pc.if_else(pc.is_in(texts, value_set=pa.array(FALSE_TOKENS)), False, unknown)
        return pc.if_else(pc.is_in(texts, value_set=pa.array(TRUE_TOKENS)), True, false)
    shaped = pc.match_substring_regex(texts, _SHAPES[column_type])
    if column_type in _CALENDAR:
        shaped = pc.and_(shaped, pc.invert(pc.starts_with(texts, _YEAR_ZERO)))
    plain = pc.if_else(shaped, texts, pa.scalar(None, pa.string()))
    try:
        if column_type in _CALENDAR:
            # Through Arrow's ISO-8601 timestamp parse: pyarrow before 14 (Glue 4.0 ships
            # 10) has no array cast from text to date.
            moments = pc.cast(plain, pa.timestamp("s"))
            if column_type is ColumnType.DATE:
                return pc.cast(moments, target)
            return pc.cast(pc.multiply(pc.cast(moments, pa.int64()), 1_000_000), target)
        return pc.cast(plain, target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        # A day or time that does not exist, or a pyarrow without one of these kernels:
        # Spark casts this batch (and rejects a value that does not exist).
        return pa.nulls(len(texts), target)


def with_plain_casts(
    batches: Iterable[pa.RecordBatch],
    casts: Sequence[PlainCast],
    cells: str,
    line: str,
) -> Iterator[pa.RecordBatch]:
    """One file's parsed batches with a :func:`plain_name` column per cast.

    Args:
        batches: the file's batches, in order: a ``cells`` list per record (padded to the
            header's width), the header on ``line`` 1.
        casts: the columns to cast; a column is found in the header by the name a schema
            column is matched by, and is null throughout where it is not there.
        cells: the name of the batches' list of cells.
        line: the name of their line number.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    positions: dict[str, int] | None = None
    for batch in batches:
        records = batch.column(cells)
        if positions is None and batch.num_rows and batch.column(line)[0].as_py() == 1:
            header = records[0].as_py()
            found: dict[str, int] = {}
            for column in header_columns(header):
                found.setdefault(column.name, column.position)
            positions = found
        columns = [batch.column(i) for i in range(batch.num_columns)]
        names = list(batch.schema.names)
        for name, column_type in casts:
            position = (positions or {}).get(name)
            names.append(plain_name(name))
            if position is None or not batch.num_rows:
                columns.append(pa.nulls(batch.num_rows, arrow_type(column_type)))
            else:
                texts = pc.list_element(records, position)
                columns.append(cast_plain(texts, column_type))
        yield pa.RecordBatch.from_arrays(columns, names=names)
