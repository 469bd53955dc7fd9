"""Raw CSV headers: matching them to a schema and naming evolved columns (PRODUCT §4.1).

Every engine checks a file's header with these functions, so a file is accepted, rejected
or evolved identically whichever engine reads it.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from ecommerce_lakehouse.domain.errors import FileRejected
from ecommerce_lakehouse.domain.schemas import (
    FILE_ORDINAL,
    INGESTED_AT,
    LINE_NUMBER,
    RAW_RECORD,
    RESCUED_DATA,
    RUN_ID,
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
        "_violation",
    }
)

_NOT_IDENTIFIER = re.compile(r"[^a-z0-9_]")


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
    columns = [
        HeaderColumn(position=i, original=h, name=h.strip().lower()) for i, h in enumerate(header)
    ]
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
