r"""The domain's text normalisation, casts and row rules compiled to Spark column expressions.

Every expression here reproduces a reference function of ``ecommerce_lakehouse.domain``
(``values.normalize_text``, ``rules.cast_value``, ``rules.first_violation``) value for value;
the contract tests hold them to it. Patterns and bounds are imported from the domain, never
copied, so both sides change together.

Patterns run on Java's regex engine. The domain's patterns mean the same there as in Python:
they use ASCII classes only (``[0-9]``, never ``\d``) and ``^...$`` anchors (Spark's
``rlike`` and ``regexp_extract`` search, so the anchors are needed), and ``$`` cannot stop
before a trailing line terminator because normalised text has none.

Casts never rely on Spark's lenient string casts failing to null: each one is gated on the
domain's pattern and bounds first, so the results are the same with ``spark.sql.ansi.enabled``
on or off and whatever the session time zone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import date
from functools import reduce
from typing import assert_never

from pyspark.sql import Column
from pyspark.sql import functions as F
from pyspark.sql.types import BooleanType, DateType, DecimalType, IntegerType, StringType

from ecommerce_lakehouse.domain import values
from ecommerce_lakehouse.domain.rules import (
    NUMERIC_TYPES,
    DateMatchesTimestamp,
    FieldCount,
    InRange,
    MaxBytes,
    NotNull,
    NotReserved,
    ParsesAs,
    RowRule,
    rule_name,
)
from ecommerce_lakehouse.domain.types import ColumnType
from ecommerce_lakehouse_spark.dtypes import spark_type

_INT_BOUNDS: Mapping[ColumnType, tuple[int, int]] = {
    ColumnType.INT: (values.INT32_MIN, values.INT32_MAX),
    ColumnType.BIGINT: (-(2**63), 2**63 - 1),
}
#: Whole numbers of up to 19 significant digits fit a ``decimal(20,0)`` exactly, so any
#: value that may fit 64 bits is compared to its bounds there, never overflowing a cast.
_WHOLE = DecimalType(20, 0)
_SIGNIFICANT_DIGITS = r"^[+-]?0*([0-9]*)$"
_DIGITS = "0123456789"
#: Up to this many ASCII digits, any value fits the type (10**9 - 1 < 2**31, 10**18 - 1 < 2**63).
PLAIN_DIGITS: Mapping[ColumnType, int] = {ColumnType.INT: 9, ColumnType.BIGINT: 18}

#: Where the year, month and day are in a ``YYYY-MM-DD`` text: (first position, length).
_DATE_FIELDS = ((1, 4), (6, 2), (9, 2))
_MICROS_PER_DAY = 86_400_000_000
_EPOCH = date(1970, 1, 1)
#: The UTC instants Python's ``datetime`` can hold: years 1..9999, in microseconds.
_MIN_MICROS = (date(1, 1, 1) - _EPOCH).days * _MICROS_PER_DAY
_MAX_MICROS = ((date(9999, 12, 31) - _EPOCH).days + 1) * _MICROS_PER_DAY - 1

#: The groups of ``values.TIMESTAMP_PATTERN`` a parse reads, in order: date, hour, minute,
#: second, fraction, offset. One ``regexp_replace`` rewrites a match to them joined by commas
#: (no group can hold one), which ``split`` takes apart: one regex pass, not one per group.
_TIMESTAMP_GROUPS = ",".join(f"${g}" for g in (1, 2, 3, 5, 7, 8))

#: How many steps :func:`timestamp_step` parses a timestamp in.
TIMESTAMP_STEPS = 4
#: The name of the parsed timestamp among the values of the last step.
TIMESTAMP = "timestamp"


def normalized(text: Column) -> Column:
    """Trim a raw text value; an empty string becomes null (``values.normalize_text``)."""
    trimmed = F.btrim(text, F.lit(values.WHITESPACE))
    return F.when(F.length(trimmed) > 0, trimmed)


def timestamp_step(step: int, text: Column, earlier: Callable[[str], Column]) -> dict[str, Column]:
    """Step ``step`` of the timestamp parse of normalised ``text``: named values.

    The parse reads most of its values several times. Spark's optimizer inlines an
    expression into each place that reads it when it can (a struct's fields always), and
    evaluates it there again, so the parse is split into :data:`TIMESTAMP_STEPS` steps, each
    reading the values of the steps before it through ``earlier``. Run each step as a
    projection of its own (the reader does) and every value is computed once per row; the
    last step's :data:`TIMESTAMP` is the result, null when the text does not parse.

    Built from the regex groups as microseconds since the epoch: Spark's own parsers accept
    leap second 60 and year 0 and depend on the session time zone, and offsets must be
    range-checked exactly as ``values.parse_timestamp`` does.

    Args:
        step: 0 to ``TIMESTAMP_STEPS - 1``.
        text: the normalised text.
        earlier: a value of an earlier step, by name.
    """

    def number(value: Column) -> Column:
        return value.cast("long")

    match step:
        case 0:
            pattern = values.TIMESTAMP_PATTERN
            split = F.split(F.regexp_replace(text, pattern, _TIMESTAMP_GROUPS), ",")
            # Null when the text does not match: every later value is then null or 0, and
            # the timestamp null.
            return {"groups": F.when(text.rlike(pattern), split)}
        case 1:
            groups = earlier("groups")
            day, hour, minute, second, fraction, offset = (groups.getItem(i) for i in range(6))
            digits = F.translate(F.substring(offset, 2, 5), ":", "")
            utc = offset.isin("", "Z", "z")
            return {
                "year": F.substring(day, 1, 4).cast(IntegerType()),
                "month": F.substring(day, 6, 2).cast(IntegerType()),
                "day": F.substring(day, 9, 2).cast(IntegerType()),
                "hour": number(hour),
                "minute": number(minute),
                "second": F.when(second != "", number(second)).otherwise(0),
                # Truncated (never rounded) to microseconds.
                "micros": F.when(
                    fraction != "", number(F.rpad(F.substring(fraction, 1, 6), 6, "0"))
                ).otherwise(0),
                "offset_hours": F.when(utc, 0).otherwise(number(F.substring(digits, 1, 2))),
                "offset_minutes": F.when(utc, 0).otherwise(number(F.substring(digits, 3, 2))),
                "sign": F.when(F.substring(offset, 1, 1) == "-", -1).otherwise(1),
            }
        case 2:
            hour, minute, second = earlier("hour"), earlier("minute"), earlier("second")
            offset_hours, offset_minutes = earlier("offset_hours"), earlier("offset_minutes")
            return {
                "date": _date_from_parts(earlier("year"), earlier("month"), earlier("day")),
                "clock": ((hour * 60 + minute) * 60 + second) * 1_000_000 + earlier("micros"),
                "offset": earlier("sign") * (offset_hours * 60 + offset_minutes) * 60_000_000,
                "in_range": (hour <= 23)
                & (minute <= 59)
                & (second <= 59)
                & (offset_hours <= 23)
                & (offset_minutes <= 59),
            }
        case 3:
            instant = (
                number(F.unix_date(earlier("date"))) * _MICROS_PER_DAY
                + earlier("clock")
                - earlier("offset")
            )
            valid = (
                earlier("in_range")
                # A UTC instant outside years 1..9999 is not a Python datetime.
                & instant.between(_MIN_MICROS, _MAX_MICROS)
            )
            return {TIMESTAMP: F.when(valid, F.timestamp_micros(instant)).cast("timestamp")}
        case _:
            raise ValueError(f"the timestamp parse has no step {step}")


def cast_text(text: Column, column_type: ColumnType) -> Column:
    """Cast normalised text to ``column_type``; null when it does not parse (``cast_value``).

    A timestamp is parsed in one expression here, which evaluates parts of it several times:
    run :func:`timestamp_step` as projections instead where speed matters.

    Args:
        text: normalised text.
        column_type: the target type.
    """
    match column_type:
        case ColumnType.STRING:
            return text
        case ColumnType.INT | ColumnType.BIGINT:
            return _parse_integer(text, column_type)
        case ColumnType.DOUBLE:
            # Java's Double.parseDouble rounds correctly like Python's float(); the pattern
            # keeps out what only Java accepts ("1d", "0x1p3", "Infinity").
            number = F.when(text.rlike(values.DOUBLE_PATTERN), text.cast("double"))
            return F.when(~F.isnan(number) & (F.abs(number) != F.lit(float("inf"))), number)
        case ColumnType.BOOLEAN:
            lowered = F.lower(text)
            return (
                F.when(lowered.isin(*values.TRUE_TOKENS), F.lit(True))
                .when(lowered.isin(*values.FALSE_TOKENS), F.lit(False))
                .otherwise(F.lit(None).cast(BooleanType()))
            )
        case ColumnType.DATE:
            return _parse_date(text, text.rlike(values.DATE_PATTERN))
        case ColumnType.TIMESTAMP:
            parsed: dict[str, Column] = {}
            for step in range(TIMESTAMP_STEPS):
                parsed.update(timestamp_step(step, text, parsed.__getitem__))
            return parsed[TIMESTAMP]


def _parse_integer(text: Column, column_type: ColumnType) -> Column:
    low, high = _INT_BOUNDS[column_type]
    # Most values are a few ASCII digits, which fit the type whatever they are: Spark's cast
    # is exact on them, and checking the shape without a regex is three times cheaper.
    plain = (F.length(text) <= PLAIN_DIGITS[column_type]) & (F.translate(text, _DIGITS, "") == "")
    significant = F.regexp_extract(text, _SIGNIFICANT_DIGITS, 1)
    shaped = text.rlike(values.INTEGER_PATTERN)
    number = F.when(shaped, F.when(F.length(significant) <= 19, text.cast(_WHOLE)))
    exact = F.when(number.between(low, high), number.cast(spark_type(column_type)))
    return F.when(plain, text.cast(spark_type(column_type))).otherwise(exact)


def _parse_date(text: Column, shaped: Column) -> Column:
    """A ``YYYY-MM-DD`` text (when ``shaped``) as a date, null when no such day exists."""
    parts = (F.substring(text, start, size).cast(IntegerType()) for start, size in _DATE_FIELDS)
    return F.when(shaped, _date_from_parts(*parts)).cast(DateType())


def _date_from_parts(year: Column, month: Column, day: Column) -> Column:
    """The date of a year, month and day, null when no such day exists.

    Checked field by field rather than with ``to_date``: Spark's parser raises for some
    impossible dates (legacy parser policy) and accepts year 0, Python's ``date`` does not.
    """
    leap = ((year % 4 == 0) & (year % 100 != 0)) | (year % 400 == 0)
    month_days = (
        F.when(month == 2, F.when(leap, 29).otherwise(28))
        .when(month.isin(4, 6, 9, 11), 30)
        .otherwise(31)
    )
    exists = (year >= 1) & month.between(1, 12) & (day >= 1) & (day <= month_days)
    return F.when(exists, F.make_date(year, month, day))


def utc_date(moment: Column) -> Column:
    """The UTC calendar date of a timestamp, whatever the session time zone."""
    micros = F.unix_micros(moment)
    # Floor division, exact in doubles: the dividend is a multiple of the divisor.
    days = (micros - F.pmod(micros, F.lit(_MICROS_PER_DAY))) / F.lit(_MICROS_PER_DAY)
    return F.date_from_unix_date(days.cast(IntegerType()))


#: How a rule obtains a column cast to a type (inline, or a column computed beforehand).
Cast = Callable[[str, ColumnType], Column]


def inline_cast(column: str, column_type: ColumnType) -> Column:
    """The cast of a normalised text column, computed where it is used."""
    return cast_text(F.col(column), column_type)


def rule_broken(rule: RowRule, types: Mapping[str, ColumnType], cast: Cast = inline_cast) -> Column:
    """A never-null boolean expression: whether a row of normalised text breaks ``rule``.

    Args:
        rule: the rule.
        types: column name to logical type (range checks cast with the column's type).
        cast: how to obtain a cast column; inline by default.
    """
    match rule:
        case FieldCount(marker=marker):
            broken = F.col(marker)
        case NotNull(column=column):
            broken = F.col(column).isNull()
        case ParsesAs(column=column, type=column_type):
            broken = F.col(column).isNotNull() & cast(column, column_type).isNull()
        case InRange(column=column, minimum=minimum, maximum=maximum):
            column_type = types[column]
            if column_type not in NUMERIC_TYPES:
                return F.lit(False)
            number = cast(column, column_type).cast("double")
            bounds = [number < minimum] if minimum is not None else []
            bounds += [number > maximum] if maximum is not None else []
            broken = reduce(lambda a, b: a | b, bounds)
        case DateMatchesTimestamp(date_column=date_column, timestamp_column=ts_column):
            day = cast(date_column, ColumnType.DATE)
            moment = cast(ts_column, ColumnType.TIMESTAMP)
            broken = utc_date(moment) != day
        case MaxBytes(column=column, maximum=maximum):
            broken = F.octet_length(F.col(column)) > maximum
        case NotReserved(column=column, reserved=reserved):
            broken = F.col(column).isin(list(reserved))
        case _:
            assert_never(rule)
    return F.coalesce(broken, F.lit(False))


def first_violation_index(
    rules: Sequence[RowRule], types: Mapping[str, ColumnType], cast: Cast = inline_cast
) -> Column:
    """Index in ``rules`` of the first rule a row breaks, null when the row is valid."""
    index = F.lit(None).cast(IntegerType())
    for position in reversed(range(len(rules))):
        index = F.when(rule_broken(rules[position], types, cast), F.lit(position)).otherwise(index)
    return index.cast(IntegerType())


def violation_label(index: Column, rules: Sequence[RowRule], label: str) -> Column:
    """Map a violation index to the rule's ``rule``, ``column`` or ``reason`` text."""
    labels: dict[str, list[str | None]] = {
        "rule": [rule_name(r) for r in rules],
        "column": [r.column for r in rules],
        "reason": [r.reason() for r in rules],
    }
    texts = labels[label]
    labelled = F.lit(None).cast(StringType())
    for position in reversed(range(len(rules))):
        labelled = F.when(index == position, F.lit(texts[position])).otherwise(labelled)
    return labelled
