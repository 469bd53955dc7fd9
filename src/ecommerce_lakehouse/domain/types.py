"""Column types, columns and enums shared by every schema."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Self

from ecommerce_lakehouse.domain.errors import ConfigurationError


class _ParsableEnum(enum.Enum):
    @classmethod
    def from_str(cls, value: str) -> Self:
        """Parse a value case-insensitively; the error lists the valid values."""
        wanted = value.strip().lower()
        for member in cls:
            if str(member.value) == wanted:
                return member
        valid = ", ".join(str(m.value) for m in cls)
        # "SchemaEvolution" is a class, not a word a user knows: "schema evolution" is.
        words = re.sub(r"(?<!^)(?=[A-Z])", " ", cls.__name__).lower()
        raise ConfigurationError(f"invalid {words} {value!r}: expected one of {valid}")


class ColumnType(_ParsableEnum):
    """Logical column types; every engine maps them to its own physical types."""

    STRING = "string"
    INT = "int"
    BIGINT = "bigint"
    DOUBLE = "double"
    BOOLEAN = "boolean"
    DATE = "date"
    TIMESTAMP = "timestamp"


class SchemaEvolution(_ParsableEnum):
    """What happens to CSV columns not in the table schema (docs/contract.md#reading-files)."""

    RESCUE = "rescue"
    ADD_NEW_COLUMNS = "add_new_columns"
    FAIL = "fail"


class Severity(_ParsableEnum):
    """Validation severity: ``error`` fails the run, ``warn`` is reported only."""

    ERROR = "error"
    WARN = "warn"


class FileStatus(_ParsableEnum):
    """Outcome of one raw file in one run (``ingest_log.status``).

    ``waiting`` (still being written) and ``ignored`` (a link, a nested or unreadable path)
    are files a run saw but did not take; they stay where they are. ``rolled_back`` and
    ``forgotten`` rows are written by ``lakehouse restore`` and ``lakehouse forget``, not by a
    run: a ``rolled_back`` row reverses a ``loaded`` one (its counts are the load's, negated),
    a ``forgotten`` one lets the next run load that content again (its counts are 0).
    """

    LOADED = "loaded"
    SKIPPED = "skipped"
    REJECTED = "rejected"
    FAILED = "failed"
    WAITING = "waiting"
    IGNORED = "ignored"
    ROLLED_BACK = "rolled_back"
    FORGOTTEN = "forgotten"


@dataclass(frozen=True, slots=True, kw_only=True)
class Column:
    """One column of a table.

    Attributes:
        name: lower-case column name.
        type: logical type.
        nullable: whether the stored column may hold nulls.
    """

    name: str
    type: ColumnType
    nullable: bool = True

    def __post_init__(self) -> None:
        if not self.name or self.name != self.name.strip().lower():
            raise ValueError(f"column names are trimmed lower-case, got {self.name!r}")
