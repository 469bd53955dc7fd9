"""The domain's text normalisation, casts and row rules compiled to Polars expressions.

Every expression here reproduces a reference function of ``ecommerce_lakehouse.domain``
(``values.normalize_text``, ``rules.cast_value``, ``rules.first_violation``) value for value;
the contract tests hold them to it. Patterns and bounds are imported from the domain, never
copied, so both sides change together.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import assert_never

import polars as pl

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
from ecommerce_lakehouse_polars.dtypes import UTC_TIMESTAMP


def normalized(text: pl.Expr) -> pl.Expr:
    """Trim a raw text value; an empty string becomes null (``values.normalize_text``)."""
    # ``replace`` nulls the empty strings in one pass (a ``when`` costs twice the trim).
    return text.str.strip_chars(values.WHITESPACE).replace("", None)


def unpadded_normalized(text: pl.Expr) -> pl.Expr:
    """:func:`normalized` of text known to hold no whitespace: an empty string is null."""
    return text.replace("", None)


def timestamp_parts(text: pl.Expr) -> pl.Expr:
    """The regex groups of ``values.TIMESTAMP_PATTERN`` as a struct (null fields when absent).

    Materialise this once as a column and pass it to :func:`cast_text`: the timestamp parse
    reads the groups many times, and Polars does not share the extraction between them.
    """
    return text.str.extract_groups(values.TIMESTAMP_PATTERN)


def cast_text(text: pl.Expr, column_type: ColumnType, parts: pl.Expr | None = None) -> pl.Expr:
    """Cast normalised text to ``column_type``; null when it does not parse (``cast_value``).

    Args:
        text: normalised text.
        column_type: the target type.
        parts: for timestamps, a precomputed :func:`timestamp_parts` of ``text``.
    """
    match column_type:
        case ColumnType.STRING:
            return text
        case ColumnType.INT:
            # Gate on the pattern first: Polars' own parser accepts other spellings.
            return pl.when(text.str.contains(values.INTEGER_PATTERN)).then(
                text.cast(pl.Int32, strict=False)
            )
        case ColumnType.BIGINT:
            return pl.when(text.str.contains(values.INTEGER_PATTERN)).then(
                text.cast(pl.Int64, strict=False)
            )
        case ColumnType.DOUBLE:
            number = pl.when(text.str.contains(values.DOUBLE_PATTERN)).then(
                text.cast(pl.Float64, strict=False)
            )
            return pl.when(number.is_finite()).then(number)
        case ColumnType.BOOLEAN:
            lowered = text.str.to_lowercase()
            return (
                pl.when(lowered.is_in(list(values.TRUE_TOKENS)))
                .then(pl.lit(True))
                .when(lowered.is_in(list(values.FALSE_TOKENS)))
                .then(pl.lit(False))
                .otherwise(pl.lit(None, dtype=pl.Boolean))
            )
        case ColumnType.DATE:
            return _parse_date(text, values.DATE_PATTERN)
        case ColumnType.TIMESTAMP:
            return _parse_timestamp(timestamp_parts(text) if parts is None else parts)


#: The commonest spelling of a timestamp, ``YYYY-MM-DDTHH:MM:SS`` with seconds below 60
#: (chrono would take a leap second 60 and roll it over): Polars' own parser reads it at a
#: fraction of the cost of :func:`timestamp_parts`.
_PLAIN_TIMESTAMP_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-5][0-9]$"
_PLAIN_TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S"


def fast_cast(
    raw: pl.Expr, column_type: ColumnType, *, unpadded: bool = False
) -> tuple[pl.Expr, pl.Expr | None]:
    """A cheap cast of *raw* (untrimmed) text, and the condition on the text it needs.

    Returns ``(value, spelled)``: ``value`` is computed for every row with Polars' own
    parsers; where :func:`fast_decided` holds (``spelled``, when not None, and ``value``
    valid), it equals :func:`cast_text` of the normalised text (``values.cast_value``).
    Elsewhere the value is not decided: it is blank, padded, spelled otherwise or not of
    its type, and only those few rows need :func:`cast_text`.

    Why the values decided are exact:

    - int: Polars parses with ``atoi_simd::parse_skipped`` (Rust's ``str::parse``): an
      optional sign and ASCII digits, nothing else (no whitespace), out of range is null:
      exactly ``values.INTEGER_PATTERN`` within the type's bounds.
    - double: Polars parses with ``fast_float2::parse`` (Rust's float grammar): the finite
      values it reads are spelled as ``values.DOUBLE_PATTERN`` (``inf`` and ``nan`` are not
      finite, so not decided).
    - boolean: the exact tokens only (other cases and padding are not decided).
    - date: ``values.DATE_PATTERN`` gates it, as in :func:`cast_text`.
    - timestamp: only ``YYYY-MM-DDTHH:MM:SS`` (year not 0, seconds below 60) is decided:
      Polars' parser reads it as Python does, a naive value being UTC.

    Args:
        raw: raw text.
        column_type: the target type.
        unpadded: the text is known to hold no whitespace (nor ``+``) at all, so that a
            timestamp Polars parses with ``%Y-%m-%dT%H:%M:%S`` is plain if it is 19 bytes
            long: chrono (Polars' fallback) reads fields of fewer digits, but only
            whitespace or a sign could then make up the length.
    """
    match column_type:
        case ColumnType.STRING:
            return raw, None
        case ColumnType.INT:
            return raw.cast(pl.Int32, strict=False), None
        case ColumnType.BIGINT:
            return raw.cast(pl.Int64, strict=False), None
        case ColumnType.DOUBLE:
            return raw.cast(pl.Float64, strict=False), None
        case ColumnType.BOOLEAN:
            value = (
                pl.when(pl.any_horizontal(raw == t for t in values.TRUE_TOKENS))
                .then(pl.lit(True))
                .when(pl.any_horizontal(raw == t for t in values.FALSE_TOKENS))
                .then(pl.lit(False))
                .otherwise(pl.lit(None, dtype=pl.Boolean))
            )
            return value, None
        case ColumnType.DATE:
            return cast_text(raw, column_type), None
        case ColumnType.TIMESTAMP:
            parsed = raw.str.strptime(pl.Datetime("us"), _PLAIN_TIMESTAMP_FORMAT, strict=False)
            spelled = (
                (raw.str.len_bytes() == 19) & ~raw.str.starts_with("-") & ~raw.str.ends_with("60")
                if unpadded
                else raw.str.contains(_PLAIN_TIMESTAMP_PATTERN)
            ) & ~raw.str.starts_with("0000")
            return parsed.dt.replace_time_zone("UTC"), spelled


def fast_decided(value: pl.Expr, column_type: ColumnType, spelled: pl.Expr | None) -> pl.Expr:
    """Whether a :func:`fast_cast` value is exact (never null); see there."""
    valid = value.is_finite() if column_type is ColumnType.DOUBLE else value.is_not_null()
    return (valid if spelled is None else valid & spelled).fill_null(False)


def _parse_date(text: pl.Expr, pattern: str) -> pl.Expr:
    # chrono accepts year 0, Python's date does not.
    shaped = text.str.contains(pattern) & ~text.str.starts_with("0000")
    return pl.when(shaped).then(text.str.to_date("%Y-%m-%d", strict=False))


def _parse_timestamp(parts: pl.Expr) -> pl.Expr:
    # Built from the regex groups rather than strptime: chrono accepts leap second 60 and
    # year 0, and offsets must be range-checked exactly as ``values.parse_timestamp`` does.
    day = _parse_date(parts.struct.field("1"), values.DATE_PATTERN)
    hour = parts.struct.field("2").cast(pl.Int64)
    minute = parts.struct.field("3").cast(pl.Int64)
    second = parts.struct.field("5").cast(pl.Int64).fill_null(0)
    # Truncate (never round) the fraction to microseconds.
    micros = parts.struct.field("7").str.slice(0, 6).str.pad_end(6, "0").cast(pl.Int64)
    offset = parts.struct.field("8")
    utc_offset = offset.is_null() | offset.is_in(["Z", "z"])
    offset_digits = offset.str.replace(":", "", literal=True).str.slice(1)
    offset_hours = (
        pl.when(utc_offset).then(0).otherwise(offset_digits.str.slice(0, 2).cast(pl.Int64))
    )
    offset_minutes = (
        pl.when(utc_offset).then(0).otherwise(offset_digits.str.slice(2, 2).cast(pl.Int64))
    )
    sign = pl.when(offset.str.starts_with("-")).then(-1).otherwise(1)
    local = day.cast(pl.Datetime("us")) + pl.duration(
        hours=hour, minutes=minute, seconds=second, microseconds=micros.fill_null(0)
    )
    moment = (
        local - pl.duration(minutes=sign * (offset_hours * 60 + offset_minutes))
    ).dt.replace_time_zone("UTC")
    valid = (
        day.is_not_null()
        & (hour <= 23)
        & (minute <= 59)
        & (second <= 59)
        & (offset_hours <= 23)
        & (offset_minutes <= 59)
        # A UTC instant outside years 1..9999 is not a Python datetime.
        & moment.dt.year().is_between(1, 9999)
    )
    return pl.when(valid.fill_null(False)).then(moment).otherwise(pl.lit(None, UTC_TIMESTAMP))


#: How a rule obtains a column cast to a type (inline, or a column computed beforehand).
Cast = Callable[[str, ColumnType], pl.Expr]


def inline_cast(column: str, column_type: ColumnType) -> pl.Expr:
    """The cast of a normalised text column, computed where it is used."""
    return cast_text(pl.col(column), column_type)


def rule_broken(
    rule: RowRule, types: Mapping[str, ColumnType], cast: Cast = inline_cast
) -> pl.Expr:
    """A never-null boolean expression: whether a row of normalised text breaks ``rule``.

    Args:
        rule: the rule.
        types: column name to logical type (range checks cast with the column's type).
        cast: how to obtain a cast column; inline by default.
    """
    match rule:
        case FieldCount(marker=marker):
            broken = pl.col(marker)
        case NotNull(column=column):
            broken = pl.col(column).is_null()
        case ParsesAs(column=column, type=column_type):
            broken = pl.col(column).is_not_null() & cast(column, column_type).is_null()
        case InRange(column=column, minimum=minimum, maximum=maximum):
            column_type = types[column]
            if column_type not in NUMERIC_TYPES:
                return pl.lit(False)
            number = cast(column, column_type).cast(pl.Float64)
            bounds = [number < minimum] if minimum is not None else []
            bounds += [number > maximum] if maximum is not None else []
            broken = pl.any_horizontal(bounds)
        case DateMatchesTimestamp(date_column=date_column, timestamp_column=ts_column):
            day = cast(date_column, ColumnType.DATE)
            moment = cast(ts_column, ColumnType.TIMESTAMP)
            broken = moment.dt.date() != day
        case MaxBytes(column=column, maximum=maximum):
            broken = pl.col(column).str.len_bytes() > maximum
        case NotReserved(column=column, reserved=reserved):
            broken = pl.col(column).is_in(list(reserved))
        case _:
            assert_never(rule)
    return broken.fill_null(False)


def first_violation_index(
    rules: Sequence[RowRule], types: Mapping[str, ColumnType], cast: Cast = inline_cast
) -> pl.Expr:
    """Index in ``rules`` of the first rule a row breaks, null when the row is valid."""
    index: pl.Expr = pl.lit(None, dtype=pl.Int32)
    for position in reversed(range(len(rules))):
        index = (
            pl.when(rule_broken(rules[position], types, cast))
            .then(pl.lit(position, dtype=pl.Int32))
            .otherwise(index)
        )
    return index


def violation_label(index: pl.Expr, rules: Sequence[RowRule], label: str) -> pl.Expr:
    """Map a violation index to the rule's ``rule``, ``column`` or ``reason`` text."""
    labels: dict[str, list[str | None]] = {
        "rule": [rule_name(r) for r in rules],
        "column": [r.column for r in rules],
        "reason": [r.reason() for r in rules],
    }
    texts = labels[label]
    return index.replace_strict(
        old=list(range(len(rules))), new=texts, default=None, return_dtype=pl.String
    )
