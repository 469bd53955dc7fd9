"""Reading one raw CSV file as text, with lineage columns (PRODUCT §4.1).

Polars parses the file with no header and no type inference, so the header row arrives
verbatim (duplicate names are not silently renamed) and every value is text. Line numbers
are physical: the header is line 1 and a record spanning lines (a quoted newline) is
numbered by the line it starts on; records whose every field is blank (blank lines) are
skipped, not counted as rows.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import polars as pl

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
from ecommerce_lakehouse.ports.engine import SourceFile
from ecommerce_lakehouse_polars.expressions import normalized

#: Columns an engine adds to every source frame; an evolved column may not take these names.
RESERVED_COLUMNS: frozenset[str] = frozenset(
    {RESCUED_DATA, SOURCE_FILE, INGESTED_AT, RUN_ID, FILE_ORDINAL, LINE_NUMBER, RAW_RECORD}
)

_NOT_IDENTIFIER = re.compile(r"[^a-z0-9_]")


@dataclass(frozen=True, slots=True)
class _HeaderColumn:
    position: int
    original: str
    name: str


def source_frame_schema(schema: TableSchema) -> pl.Schema:
    """The columns of a source frame without evolved columns."""
    return pl.Schema(
        {
            **{name: pl.String() for name in schema.column_names},
            RESCUED_DATA: pl.String(),
            SOURCE_FILE: pl.String(),
            FILE_ORDINAL: pl.Int64(),
            LINE_NUMBER: pl.Int64(),
            RAW_RECORD: pl.String(),
        }
    )


def evolved_name(header: str, position: int) -> str:
    """The column name an extra header gets under ``add_new_columns``.

    The trimmed lower-cased header with every character outside ``[a-z0-9_]`` replaced by
    ``_``; a blank header becomes ``column_<position>`` (1-based).
    """
    name = _NOT_IDENTIFIER.sub("_", header.strip().lower())
    return name or f"column_{position}"


def read_source_frame(
    source: SourceFile,
    schema: TableSchema,
    evolution: SchemaEvolution,
    storage_options: Mapping[str, str],
) -> pl.DataFrame:
    """Read one CSV into a frame of normalised text plus rescued and lineage columns.

    Args:
        source: the raw file.
        schema: the table the file feeds.
        evolution: what to do with columns that are not in the schema.
        storage_options: object-store options for non-local URIs.

    Returns:
        Business columns (trimmed text, null when empty), ``_rescued_data``, evolved columns
        (``add_new_columns`` only), ``_source_file``, ``_file_ordinal``, ``_line_number`` and
        ``_raw_record``.

    Raises:
        FileRejected: the file is not UTF-8, not parseable CSV, or its header does not fit.
    """
    grid = _read_grid(source, storage_options)
    if grid.width == 0:
        return _empty(schema)
    cells = grid.columns
    blank = pl.all_horizontal([normalized(pl.col(c)).is_null() for c in cells])
    grid = grid.with_columns(_line_numbers(cells).alias(LINE_NUMBER), blank.alias("__blank"))
    header = ["" if v is None else str(v) for v in grid.row(0)[: len(cells)]]
    records = grid.slice(1).filter(~pl.col("__blank"))
    if all(not h.strip() for h in header) and records.height == 0:
        # A whitespace-only file: no header and no data.
        return _empty(schema)
    columns = _check_header(source, schema, evolution, header)
    in_schema = {c.name: c for c in columns if c.name in schema.column_names}
    extras = [c for c in columns if c.name not in schema.column_names]

    selected: list[pl.Expr] = []
    for name in schema.column_names:
        found = in_schema.get(name)
        value = normalized(pl.col(cells[found.position])) if found else pl.lit(None, pl.String)
        selected.append(value.alias(name))
    if extras and evolution is SchemaEvolution.RESCUE:
        selected.append(_json_object(cells, extras).alias(RESCUED_DATA))
    else:
        selected.append(pl.lit(None, pl.String).alias(RESCUED_DATA))
    if evolution is SchemaEvolution.ADD_NEW_COLUMNS:
        selected += [
            normalized(pl.col(cells[c.position])).alias(evolved_name(c.original, c.position + 1))
            for c in extras
        ]
    selected += [
        pl.lit(source.key, pl.String).alias(SOURCE_FILE),
        pl.lit(source.ordinal, pl.Int64).alias(FILE_ORDINAL),
        pl.col(LINE_NUMBER),
        _json_object(cells, columns).alias(RAW_RECORD),
    ]
    return records.select(selected)


def _read_grid(source: SourceFile, storage_options: Mapping[str, str]) -> pl.DataFrame:
    try:
        return pl.read_csv(
            source.uri,
            has_header=False,
            separator=",",
            quote_char='"',
            infer_schema=False,
            empty_string_is_null=False,
            raise_if_empty=False,
            glob=False,
            storage_options=dict(storage_options) or None,
        )
    except pl.exceptions.ComputeError as error:
        rejected = _rejection(source, error)
        if rejected is None:
            raise
        raise rejected from None


def _rejection(source: SourceFile, error: pl.exceptions.ComputeError) -> FileRejected | None:
    # Polars reports these as ComputeError; its messages quote file content, so the detail
    # is rewritten as one line of our own. Anything else (I/O, credentials) is not the
    # file's fault and propagates unchanged.
    message = str(error).lower()
    if "utf-8" in message or "utf8" in message:
        return FileRejected("not_utf8", f"{source.key} is not valid UTF-8 text")
    if "more fields" in message:
        return FileRejected(
            "malformed_csv", f"{source.key} has a record with more fields than its header"
        )
    if "could not parse" in message or "quote" in message:
        return FileRejected(
            "malformed_csv",
            f"{source.key} has a quoted field that is not terminated or is followed by "
            "other characters",
        )
    return None


def _line_numbers(cells: Sequence[str]) -> pl.Expr:
    # A record spans 1 + (newlines inside its quoted fields) physical lines; blank lines
    # are records of empty fields, so they are counted too.
    embedded = pl.sum_horizontal(
        [pl.col(c).str.count_matches("\n", literal=True).cast(pl.Int64) for c in cells]
    )
    span = embedded + 1
    return (span.cum_sum() - span + 1).cast(pl.Int64)


def _check_header(
    source: SourceFile, schema: TableSchema, evolution: SchemaEvolution, header: Sequence[str]
) -> list[_HeaderColumn]:
    columns = [
        _HeaderColumn(position=i, original=h, name=h.strip().lower()) for i, h in enumerate(header)
    ]
    repeated = [n for n, count in Counter(c.name for c in columns).items() if count > 1]
    if repeated:
        raise FileRejected(
            "duplicate_columns",
            f"{source.key} repeats column(s) {_names(repeated)} "
            "(headers are compared trimmed and lower-cased)",
        )
    present = {c.name for c in columns}
    missing = [n for n in schema.source_columns if n not in present]
    if missing:
        raise FileRejected("missing_columns", f"{source.key} lacks column(s) {_names(missing)}")
    extras = [c for c in columns if c.name not in schema.column_names]
    if extras and evolution is SchemaEvolution.FAIL:
        raise FileRejected(
            "unexpected_columns",
            f"{source.key} has column(s) not in the {schema.name} schema: "
            f"{_names([c.original.strip() for c in extras])}",
        )
    if extras and evolution is SchemaEvolution.ADD_NEW_COLUMNS:
        evolved = Counter(evolved_name(c.original, c.position + 1) for c in extras)
        taken = set(schema.column_names) | RESERVED_COLUMNS
        clashes = [n for n, count in evolved.items() if count > 1 or n in taken]
        if clashes:
            raise FileRejected(
                "duplicate_columns",
                f"{source.key}: new column name(s) {_names(clashes)} clash with another "
                "column once made a valid column name",
            )
    return columns


def _names(names: Sequence[str]) -> str:
    return ", ".join(repr(n) for n in names)


def _json_object(cells: Sequence[str], columns: Sequence[_HeaderColumn]) -> pl.Expr:
    """A JSON object ``{original header: raw value}`` of the given columns."""
    return pl.struct(
        [pl.col(cells[c.position]).alias(c.original) for c in columns]
    ).struct.json_encode()


def _empty(schema: TableSchema) -> pl.DataFrame:
    return pl.DataFrame(schema=source_frame_schema(schema))
