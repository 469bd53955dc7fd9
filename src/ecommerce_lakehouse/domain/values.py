"""The product's own text-to-value casting rules (docs/contract.md#input-schemas).

These pure-Python functions are the reference semantics. Engines compile the same
patterns and bounds (exported below) to their own expressions, and the parity tests
check that every engine agrees with these functions value for value.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime, timedelta, timezone

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1

#: An optionally signed whole number.
INTEGER_PATTERN = r"^[+-]?[0-9]+$"
#: A finite decimal number, optionally in scientific notation (no NaN, no Infinity).
DOUBLE_PATTERN = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$"
#: A calendar date ``YYYY-MM-DD``.
DATE_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
#: ISO-8601 date-time: date, ``T`` or space, ``HH:MM[:SS[.fraction]]``, optional ``Z`` or offset.
TIMESTAMP_PATTERN = (
    r"^([0-9]{4}-[0-9]{2}-[0-9]{2})[T ]([0-9]{2}):([0-9]{2})(:([0-9]{2})(\.([0-9]{1,9}))?)?"
    r"(Z|z|[+-][0-9]{2}:?[0-9]{2})?$"
)
#: Exactly the characters Python's ``str.strip()`` removes (``str.isspace``), the trimming of
#: :func:`normalize_text`. Engines trim with this set: Rust's ``char::is_whitespace`` leaves
#: out U+001C..U+001F, Java's ``Character.isWhitespace`` also U+0085, Spark's ``trim`` all
#: but the space.
WHITESPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005"
    "\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
#: Accepted boolean spellings (compared case-insensitively).
TRUE_TOKENS: tuple[str, ...] = ("1", "true")
FALSE_TOKENS: tuple[str, ...] = ("0", "false")

_TIMESTAMP_RE = re.compile(TIMESTAMP_PATTERN)

#: The longest text partition value, in UTF-8 bytes. Engines escape some characters of a
#: partition value as ``%XX`` (3 bytes each) in its directory name, so even a value escaped
#: whole stays at ``len("<column>=") + 3 * 64`` bytes, well under the 255-byte file-name
#: limit of common file systems (ext4, XFS, APFS, NTFS).
MAX_PARTITION_VALUE_BYTES = 64
#: The directory name Hive, Spark and delta-rs give the null partition: a text partition
#: value equal to it would be read back as null.
HIVE_DEFAULT_PARTITION = "__HIVE_DEFAULT_PARTITION__"


def normalize_text(value: str | None) -> str | None:
    """Trim a raw value; an empty string becomes null."""
    if value is None:
        return None
    trimmed = value.strip()
    return trimmed or None


def parse_integer(text: str) -> int | None:
    """Parse a 32-bit integer, or return None when the text is not one."""
    if not re.match(INTEGER_PATTERN, text):
        return None
    number = int(text)
    return number if INT32_MIN <= number <= INT32_MAX else None


def parse_bigint(text: str) -> int | None:
    """Parse a 64-bit integer, or return None when the text is not one."""
    if not re.match(INTEGER_PATTERN, text):
        return None
    number = int(text)
    return number if -(2**63) <= number <= 2**63 - 1 else None


def parse_double(text: str) -> float | None:
    """Parse a finite double, or return None when the text is not one."""
    if not re.match(DOUBLE_PATTERN, text):
        return None
    number = float(text)
    return number if math.isfinite(number) else None


def parse_boolean(text: str) -> bool | None:
    """Parse ``0``, ``1``, ``true`` or ``false`` in any case."""
    lowered = text.lower()
    if lowered in TRUE_TOKENS:
        return True
    if lowered in FALSE_TOKENS:
        return False
    return None


def parse_date(text: str) -> date | None:
    """Parse ``YYYY-MM-DD``, or return None for anything else (including impossible dates)."""
    if not re.match(DATE_PATTERN, text):
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def parse_timestamp(text: str) -> datetime | None:
    """Parse an ISO-8601 date-time to an aware UTC datetime with microsecond precision.

    An offset is honoured and converted to UTC; a naive value is taken as UTC. Digits
    beyond microseconds are truncated (Delta stores microseconds).
    """
    match = _TIMESTAMP_RE.match(text)
    if match is None:
        return None
    day, hour, minute, _, second, _, fraction, offset = match.groups()
    try:
        moment = datetime.fromisoformat(f"{day}T{hour}:{minute}:{second or '00'}")
    except ValueError:
        return None
    micros = int((fraction or "0").ljust(6, "0")[:6])
    moment = moment.replace(microsecond=micros)
    tz = UTC
    if offset and offset not in ("Z", "z"):
        digits = offset[1:].replace(":", "")
        hours, minutes = int(digits[:2]), int(digits[2:])
        if hours > 23 or minutes > 59:
            return None
        delta = timedelta(hours=hours, minutes=minutes)
        tz = timezone(delta if offset[0] == "+" else -delta)
    try:
        return moment.replace(tzinfo=tz).astimezone(UTC)
    except OverflowError:  # the UTC instant falls outside years 1-9999
        return None
