"""Raw CSV headers: matching them to a schema and naming evolved columns.

See docs/contract.md#reading-files.

Every engine checks a file's header with these functions, so a file is accepted, rejected
or evolved identically whichever engine reads it.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import chain

from ecommerce_lakehouse.domain.errors import FileRejected
from ecommerce_lakehouse.domain.rules import RAGGED_RECORD
from ecommerce_lakehouse.domain.schemas import (
    FILE_ORDINAL,
    INGESTED_AT,
    LINE_NUMBER,
    RAW_RECORD,
    RESCUED_DATA,
    RUN_ID,
    SOURCE_CHECKSUM,
    SOURCE_FILE,
    TableSchema,
)
from ecommerce_lakehouse.domain.types import SchemaEvolution

#: Names an evolved column may not take: lineage columns, and ``_violation``, which engines
#: whose column names are case-insensitive (Spark) could not tell from their internal
#: ``_Violation`` column.
RESERVED_COLUMNS: frozenset[str] = frozenset(
    {
        RESCUED_DATA,
        SOURCE_FILE,
        INGESTED_AT,
        RUN_ID,
        FILE_ORDINAL,
        LINE_NUMBER,
        RAW_RECORD,
        RAGGED_RECORD,
        SOURCE_CHECKSUM,
        "_violation",
    }
)

_NOT_IDENTIFIER = re.compile(r"[^a-z0-9_]")


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadLimits:
    """Bounds on what one raw file may hold, checked before the costly parse.

    Defaults no real export reaches; a file over a bound is rejected whole (its raw record
    could not be stored within bounds either), the same way on every engine.

    Attributes:
        max_columns: the most fields a header may have (reason ``too_many_columns``).
        max_field_bytes: the longest field, header or value, in UTF-8 bytes (reason
            ``field_too_large``).
    """

    max_columns: int = 1000
    max_field_bytes: int = 1 << 20

    def __post_init__(self) -> None:
        if self.max_columns < 1 or self.max_field_bytes < 1:
            raise ValueError("read limits must be positive")


#: The limits engines apply unless configured otherwise.
DEFAULT_READ_LIMITS = ReadLimits()

#: Bytes an engine reads at a time while scanning a header (:func:`check_file_start`).
HEADER_CHUNK_BYTES = 1 << 16

#: Leading bytes of compressed formats. None is valid UTF-8 text a CSV export starts with,
#: so a match is never a false alarm; they are named rather than reported as ``not_utf8``.
COMPRESSED_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x1f\x8b", "gzip"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"PK\x03\x04", "zip"),
)
_BZIP2 = re.compile(rb"BZh[1-9]1AY&SY")
#: Enough leading bytes for every signature above.
_SIGNATURE_BYTES = 16
_HEADER_TOKENS = re.compile(rb'[",\n\r]')


def compressed_format(start: bytes) -> str | None:
    """The compressed format whose signature ``start`` (a file's first bytes) begins with."""
    for signature, name in COMPRESSED_SIGNATURES:
        if start.startswith(signature):
            return name
    return "bzip2" if _BZIP2.match(start) else None


def file_start_violation(chunks: Iterable[bytes], limits: ReadLimits) -> str | None:
    """The reason a file is rejected, from its leading bytes, or None.

    Reads ``chunks`` (the file's bytes, in order) only up to the end of the header line, or
    until a limit is exceeded: at most about ``max_field_bytes`` plus one chunk beyond the
    header, so a 50 MB single-line header costs no more than a normal one.

    A carriage return outside quotes in the header line that no line feed follows means the
    file ends its lines with a bare CR (old Mac OS): only LF or CRLF ends a line, so the
    whole file would read as one header line, and it is named rather than reported as a
    header that does not fit. A CR inside a quoted field is text.

    Returns:
        ``compressed``, ``too_many_columns``, ``field_too_large``,
        ``bare_cr_line_endings`` or None.
    """
    remaining = iter(chunks)
    first: list[bytes] = []
    start = b""
    for chunk in remaining:
        first.append(chunk)
        start += chunk[: _SIGNATURE_BYTES - len(start)]
        if len(start) >= _SIGNATURE_BYTES:
            break
    if compressed_format(start) is not None:
        return "compressed"
    fields, field_start, offset, quoted = 1, 0, 0, False
    # An unquoted CR that ended the previous chunk: the next byte tells CRLF from a bare CR.
    cr_pending = False
    for chunk in chain(first, remaining):
        if not chunk:
            continue
        if cr_pending and not chunk.startswith(b"\n"):
            return "bare_cr_line_endings"
        cr_pending = False
        for token in _HEADER_TOKENS.finditer(chunk):
            byte = token.group()
            if byte == b'"':
                quoted = not quoted
                continue
            if quoted:
                continue
            position = offset + token.start()
            if position - field_start > limits.max_field_bytes:
                return "field_too_large"
            if byte == b"\r":
                following = chunk[token.end() : token.end() + 1]
                if not following:
                    cr_pending = True
                elif following != b"\n":
                    return "bare_cr_line_endings"
                # CRLF: the LF that follows ends the header.
                continue
            if byte == b"\n":
                return None
            fields += 1
            if fields > limits.max_columns:
                return "too_many_columns"
            field_start = position + 1
        offset += len(chunk)
        if offset - field_start > limits.max_field_bytes:
            return "field_too_large"
    # A CR as the file's last byte ends a header line no LF follows.
    return "bare_cr_line_endings" if cr_pending else None


def limit_rejection(key: str, reason: str, limits: ReadLimits) -> FileRejected:
    """The rejection of a file for a reason :func:`file_start_violation` returns.

    Also of a file a parse finds over a bound. Every engine rejects through here, so a
    reason gets the same detail whichever engine found it.
    """
    detail = {
        "compressed": f"{key} is compressed (decompress it and drop the .csv text instead)",
        "too_many_columns": f"{key} has more than {limits.max_columns} columns",
        "field_too_large": (
            f"{key} has a field longer than {limits.max_field_bytes} bytes "
            "(or a quoted field that never ends)"
        ),
        "bare_cr_line_endings": (
            f"{key} ends its lines with a bare carriage return (CR); "
            "save it with LF or CRLF line endings"
        ),
    }[reason]
    return FileRejected(reason, detail)


@dataclass(frozen=True, slots=True)
class HeaderColumn:
    """One column of a raw file's header.

    Attributes:
        position: 0-based position in the file.
        original: the header text as written.
        name: the trimmed, lower-cased name it is matched by.
    """

    position: int
    original: str
    name: str


def header_columns(header: Sequence[str]) -> list[HeaderColumn]:
    """A header's columns, each with the name a schema column is matched by."""
    return [
        HeaderColumn(position=i, original=h, name=h.strip().lower()) for i, h in enumerate(header)
    ]


def evolved_name(header: str, position: int) -> str:
    """The column name an extra header gets under ``add_new_columns``.

    The trimmed lower-cased header with every character outside ``[a-z0-9_]`` replaced by
    ``_``; a blank header becomes ``column_<position>`` (1-based).
    """
    name = _NOT_IDENTIFIER.sub("_", header.strip().lower())
    return name or f"column_{position}"


def check_header(
    key: str, schema: TableSchema, evolution: SchemaEvolution, header: Sequence[str]
) -> list[HeaderColumn]:
    """The header's columns, once it fits ``schema`` under ``evolution``.

    Raises:
        FileRejected: a name repeats (trimmed, case-insensitively), a schema column is
            missing, an extra column arrives under ``fail``, or extra columns would get
            clashing names under ``add_new_columns``.
    """
    columns = header_columns(header)
    repeated = [n for n, count in Counter(c.name for c in columns).items() if count > 1]
    if repeated:
        raise FileRejected(
            "duplicate_columns",
            f"{key} repeats column(s) {quoted_names(repeated)} "
            "(headers are compared trimmed and lower-cased)",
        )
    present = {c.name for c in columns}
    missing = [n for n in schema.source_columns if n not in present]
    if missing:
        raise FileRejected("missing_columns", f"{key} lacks column(s) {quoted_names(missing)}")
    extras = [c for c in columns if c.name not in schema.column_names]
    if extras and evolution is SchemaEvolution.FAIL:
        raise FileRejected(
            "unexpected_columns",
            f"{key} has column(s) not in the {schema.name} schema: "
            f"{quoted_names([c.original.strip() for c in extras])}",
        )
    if extras and evolution is SchemaEvolution.ADD_NEW_COLUMNS:
        evolved = Counter(evolved_name(c.original, c.position + 1) for c in extras)
        taken = set(schema.column_names) | RESERVED_COLUMNS
        clashes = [n for n, count in evolved.items() if count > 1 or n in taken]
        if clashes:
            raise FileRejected(
                "duplicate_columns",
                f"{key}: new column name(s) {quoted_names(clashes)} clash with another "
                "column once made a valid column name",
            )
    return columns


def quoted_names(names: Sequence[str]) -> str:
    """``'a', 'b'``: names as they appear in rejection messages."""
    return ", ".join(repr(n) for n in names)


def stray_quote_detail(key: str) -> str:
    """The rejection detail of a file with an odd number of quotes in an unquoted field."""
    return (
        f"{key} has a quote character inside an unquoted field "
        '(quote the field and double its quotes: "a""b")'
    )
