"""Declarative row rules (docs/contract.md#row-rules-and-quarantine).

Each rule is a frozen value object. Engines compile the same rule objects to their own
expressions; :func:`first_violation` is the pure-Python reference that the in-memory fake
and the parity tests use. A row that breaks any rule goes to quarantine with the name of
the *first* rule it breaks, in the order the schema lists them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from ecommerce_lakehouse.domain import values
from ecommerce_lakehouse.domain.types import ColumnType

#: The reader's mark (true) on a record with a non-empty field past the header's last
#: column; engines carry it as a column of that name while the rules run.
RAGGED_RECORD = "_ragged_record"
#: The key under which such a record's raw record keeps its fields past the header (a JSON
#: array, trailing empty fields left out).
EXTRA_FIELDS_KEY = "_extra_fields"


@dataclass(frozen=True, slots=True, kw_only=True)
class FieldCount:
    """A record fits the header: no non-empty field past the header's last column.

    Records are aligned to the header: missing trailing fields read as empty (exporters
    drop trailing empty fields) and empty fields past the header (trailing commas) are
    ignored, but a value past the header has no column to go to. The reader marks such
    records in :data:`RAGGED_RECORD`; this rule is checked first, as the other values of a
    misaligned record mean nothing.
    """

    marker: str = RAGGED_RECORD
    name: Literal["wrong_field_count"] = "wrong_field_count"

    @property
    def column(self) -> None:
        """No single column is at fault (``quarantine.column_name`` is null)."""
        return None

    def reason(self) -> str:
        """Human-readable reason for a violation."""
        return "the record has more fields than the header"


@dataclass(frozen=True, slots=True, kw_only=True)
class NotNull:
    """The column is required: not null and not blank after trimming."""

    column: str
    name: Literal["not_null"] = "not_null"

    def reason(self) -> str:
        """Human-readable reason for a violation."""
        return f"{self.column} is required but is empty"


@dataclass(frozen=True, slots=True, kw_only=True)
class ParsesAs:
    """A non-null value must parse as the column's type by the product's own rules."""

    column: str
    type: ColumnType
    name: Literal["parses_as"] = "parses_as"

    def __post_init__(self) -> None:
        if self.type is ColumnType.STRING:
            raise ValueError("every string parses; ParsesAs needs a typed column")

    @property
    def rule_name(self) -> str:
        """The rule name written to quarantine, e.g. ``parses_as_timestamp``."""
        return f"parses_as_{self.type.value}"

    def reason(self) -> str:
        """Human-readable reason for a violation."""
        expected = {
            ColumnType.INT: "a 32-bit integer",
            ColumnType.BIGINT: "an integer",
            ColumnType.DOUBLE: "a finite number",
            ColumnType.BOOLEAN: "one of 0, 1, true, false",
            ColumnType.DATE: "a date YYYY-MM-DD",
            ColumnType.TIMESTAMP: "an ISO-8601 date-time",
        }[self.type]
        return f"{self.column} is not {expected}"


@dataclass(frozen=True, slots=True, kw_only=True)
class InRange:
    """A non-null numeric value lies in ``[minimum, maximum]`` (either bound optional)."""

    column: str
    minimum: float | None = None
    maximum: float | None = None
    name: Literal["in_range"] = "in_range"

    def __post_init__(self) -> None:
        if self.minimum is None and self.maximum is None:
            raise ValueError("InRange needs a minimum or a maximum")
        if self.minimum is not None and self.maximum is not None and self.minimum > self.maximum:
            raise ValueError("InRange minimum exceeds maximum")

    def reason(self) -> str:
        """Human-readable reason for a violation."""
        low = "-inf" if self.minimum is None else f"{self.minimum:g}"
        high = "+inf" if self.maximum is None else f"{self.maximum:g}"
        return f"{self.column} is outside [{low}, {high}]"


@dataclass(frozen=True, slots=True, kw_only=True)
class DateMatchesTimestamp:
    """A present date must equal the UTC date of the timestamp (absent dates are derived)."""

    date_column: str
    timestamp_column: str
    name: Literal["date_matches_timestamp"] = "date_matches_timestamp"

    @property
    def column(self) -> str:
        """The column reported in quarantine."""
        return self.date_column

    def reason(self) -> str:
        """Human-readable reason for a violation."""
        return f"{self.date_column} differs from the UTC date of {self.timestamp_column}"


@dataclass(frozen=True, slots=True, kw_only=True)
class MaxBytes:
    """A non-null value is at most ``maximum`` bytes long in UTF-8.

    Bounds a partition value: its directory name (``<column>=<escaped value>``) must stay
    well under the 255-byte file-name limit of common file systems, whichever engine writes.
    """

    column: str
    maximum: int
    name: Literal["value_too_long"] = "value_too_long"

    def __post_init__(self) -> None:
        if self.maximum < 1:
            raise ValueError("MaxBytes needs a positive maximum")

    def reason(self) -> str:
        """Human-readable reason for a violation."""
        return f"{self.column} is longer than {self.maximum} bytes"


@dataclass(frozen=True, slots=True, kw_only=True)
class NotReserved:
    """A non-null value is none of ``reserved`` (compared exactly, after trimming).

    ``__HIVE_DEFAULT_PARTITION__`` is the directory name of the null partition: a row
    holding it as text would be read back as null.
    """

    column: str
    reserved: tuple[str, ...]
    name: Literal["reserved_value"] = "reserved_value"

    def __post_init__(self) -> None:
        if not self.reserved:
            raise ValueError("NotReserved needs at least one reserved value")

    def reason(self) -> str:
        """Human-readable reason for a violation."""
        return (
            f"{self.column} holds a value reserved by the table format: {', '.join(self.reserved)}"
        )


RowRule = FieldCount | NotNull | ParsesAs | InRange | DateMatchesTimestamp | MaxBytes | NotReserved

#: Column types a range check compares as numbers (a boolean counts as 0/1).
NUMERIC_TYPES: tuple[ColumnType, ...] = (
    ColumnType.INT,
    ColumnType.BIGINT,
    ColumnType.DOUBLE,
    ColumnType.BOOLEAN,
)


def rule_name(rule: RowRule) -> str:
    """The name written to ``quarantine.rule`` for a rule."""
    return rule.rule_name if isinstance(rule, ParsesAs) else rule.name


def casts_needed(
    rules: Sequence[RowRule], types: Mapping[str, ColumnType]
) -> list[tuple[str, ColumnType]]:
    """Every ``(column, type)`` cast the rules and the typed output use, once each, in order.

    Engines compute these once as columns rather than inline in each rule, so the costly
    timestamp parse runs once however many rules read the timestamp.
    """
    needed: list[tuple[str, ColumnType]] = [
        (c, t) for c, t in types.items() if t is not ColumnType.STRING
    ]
    for rule in rules:
        match rule:
            case ParsesAs(column=column, type=column_type):
                needed.append((column, column_type))
            case InRange(column=column) if types[column] in NUMERIC_TYPES:
                needed.append((column, types[column]))
            case DateMatchesTimestamp(date_column=date_column, timestamp_column=ts_column):
                needed += [(date_column, ColumnType.DATE), (ts_column, ColumnType.TIMESTAMP)]
            case _:
                pass
    return list(dict.fromkeys(needed))


def cast_value(text: str | None, column_type: ColumnType) -> object:
    """Cast normalised text to a Python value of ``column_type`` (None when it does not parse)."""
    if text is None:
        return None
    match column_type:
        case ColumnType.STRING:
            return text
        case ColumnType.INT:
            return values.parse_integer(text)
        case ColumnType.BIGINT:
            return values.parse_bigint(text)
        case ColumnType.DOUBLE:
            return values.parse_double(text)
        case ColumnType.BOOLEAN:
            return values.parse_boolean(text)
        case ColumnType.DATE:
            return values.parse_date(text)
        case ColumnType.TIMESTAMP:
            return values.parse_timestamp(text)


@dataclass(frozen=True, slots=True, kw_only=True)
class Violation:
    """The first rule a row breaks."""

    rule: str
    column: str | None
    reason: str


def first_violation(
    record: Mapping[str, str | None], rules: Sequence[RowRule], types: Mapping[str, ColumnType]
) -> Violation | None:
    """Reference evaluation of ``rules`` on one record of *normalised* text values.

    Args:
        record: column name to trimmed text (None for empty), and the reader's
            :data:`RAGGED_RECORD` mark when set.
        rules: the schema's rules, in order.
        types: column name to logical type, used to cast values for range and date checks.

    Returns:
        The first violation, or None when the row is valid.
    """
    for rule in rules:
        if _breaks(rule, record, types):
            return Violation(rule=rule_name(rule), column=rule.column, reason=rule.reason())
    return None


def _breaks(
    rule: RowRule, record: Mapping[str, str | None], types: Mapping[str, ColumnType]
) -> bool:
    match rule:
        case FieldCount(marker=marker):
            return bool(record.get(marker))
        case NotNull(column=column):
            return record.get(column) is None
        case ParsesAs(column=column, type=column_type):
            text = record.get(column)
            return text is not None and cast_value(text, column_type) is None
        case InRange(column=column, minimum=minimum, maximum=maximum):
            number = cast_value(record.get(column), types[column])
            if not isinstance(number, int | float):
                return False
            return (minimum is not None and number < minimum) or (
                maximum is not None and number > maximum
            )
        case DateMatchesTimestamp(date_column=date_column, timestamp_column=ts_column):
            day = cast_value(record.get(date_column), ColumnType.DATE)
            moment = cast_value(record.get(ts_column), ColumnType.TIMESTAMP)
            if day is None or moment is None:
                return False
            assert hasattr(moment, "date")
            return bool(moment.date() != day)
        case MaxBytes(column=column, maximum=maximum):
            text = record.get(column)
            return text is not None and len(text.encode("utf-8")) > maximum
        case NotReserved(column=column, reserved=reserved):
            return record.get(column) in reserved
    raise TypeError(f"unknown rule {rule!r}")  # pragma: no cover
