r"""Reading one raw CSV file and checking its rows against the schema.

See docs/contract.md#reading-files and docs/contract.md#row-rules-and-quarantine.

Spark's own CSV reader skips blank lines, cannot report physical line numbers and silently
accepts ragged records and unterminated quotes, so it cannot implement these rules. The file is
instead loaded whole by the ``binaryFile`` source (one row: its bytes) and parsed on an
executor inside ``mapInArrow``: one row per record with the physical line it starts on and
its cells, the header as line 1, and a last row saying whether the file parsed. A file with
no quote and no lone CR (the bulk of real drops) is split on lines and commas by vectorised
Arrow kernels; any other by Python's ``csv`` module (RFC 4180, strict), with the same
records, lines and rejections. In the same pass the executor casts the plain values of
the typed columns (``42``, ``2024-01-31``, ``2024-01-31T08:00:00``) with Arrow kernels
(:mod:`arrow_casts`). Everything after that — trimming, the casts of the other values,
rules, derived dates, JSON records — is Spark column expressions.

Line numbers are physical: the header is line 1 and a record spanning lines (a quoted
newline) is numbered by the line it starts on. Every record is a row, blank lines and rows of
empty fields included (quarantined for their missing key). Records are aligned to the header
as by the Polars engine: missing trailing fields read as empty, empty fields past it are
ignored, and a record with a value past it is marked for rule ``wrong_field_count``. Only
``\n`` ends a line (``\r\n`` too, its ``\r`` dropped); a lone ``\r`` in a record is text, as
for the Polars engine (which also drops one ending an unquoted field: trimmed values are the
same, raw records may differ). One outside quotes in the header line means the file ends
its lines with bare CRs: it is rejected (``bare_cr_line_endings``), as by the Polars engine.

The rules and casts are compiled here, per file, like the Polars engine does, and the raw
record (a JSON object of the row) is built only for the rows that break a rule. The parsed
file is checkpointed when it is read, so later actions never read or parse it again.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import threading
import warnings
from collections.abc import Iterable, Iterator, Sequence
from functools import partial, reduce
from typing import TYPE_CHECKING

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import (
    ArrayType,
    BooleanType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
)

from ecommerce_lakehouse.domain.errors import FileRejected
from ecommerce_lakehouse.domain.headers import (
    DEFAULT_READ_LIMITS,
    HEADER_CHUNK_BYTES,
    HeaderColumn,
    ReadLimits,
    check_header,
    evolved_name,
    file_start_violation,
    limit_rejection,
    stray_quote_detail,
)
from ecommerce_lakehouse.domain.rules import EXTRA_FIELDS_KEY, RAGGED_RECORD, casts_needed
from ecommerce_lakehouse.domain.schemas import (
    FILE_ORDINAL,
    LINE_NUMBER,
    RAW_RECORD,
    RESCUED_DATA,
    SOURCE_CHECKSUM,
    SOURCE_FILE,
    TableSchema,
)
from ecommerce_lakehouse.domain.types import ColumnType, SchemaEvolution
from ecommerce_lakehouse.domain.values import WHITESPACE
from ecommerce_lakehouse.ports.engine import SourceFile
from ecommerce_lakehouse_spark.arrow_casts import (
    PlainCast,
    plain_casts,
    plain_name,
    with_plain_casts,
)
from ecommerce_lakehouse_spark.dtypes import local_frame, spark_schema, spark_type
from ecommerce_lakehouse_spark.expressions import (
    TIMESTAMP,
    TIMESTAMP_STEPS,
    cast_text,
    first_violation_index,
    normalized,
    timestamp_step,
    utc_date,
)

if TYPE_CHECKING:
    import pyarrow as pa

#: Index in ``schema.rules`` of the first rule a row breaks (null when the row is valid).
#: The Polars engine's name. Spark resolves column names case-insensitively, so unlike
#: there the capital letter does not set it apart from an evolved column ``_violation``:
#: that name is reserved (``domain.headers.RESERVED_COLUMNS``).
VIOLATION = "_Violation"


#: Held while the process's warning filters are swapped (``warnings.catch_warnings``).
_WARNINGS = threading.Lock()
#: Spark's file sources cannot read files over 2 GiB (one byte array per file).
MAX_FILE_BYTES = 2**31 - 1

# Engine-internal columns hold "#", which no business or evolved name ([a-z0-9_]) can, so
# they cannot clash even case-insensitively.
_LINE = "#line"
_CELLS = "#cells"
_ERROR = "#error"
_TRIM = "#trim"
_PAST = "#past"

#: What the executor-side parse yields: one row per record (header: line 1; cells padded
#: with "" to the header's width) and a last row with a null line, the error, if any, and
#: whether some cell may start or end with whitespace (false only when none does).
PARSED_SCHEMA = StructType(
    [
        StructField(_LINE, LongType()),
        StructField(_CELLS, ArrayType(StringType())),
        StructField(_ERROR, StringType()),
        StructField(_TRIM, BooleanType()),
    ]
)


def parsed_schema(casts: Sequence[PlainCast]) -> StructType:
    """:data:`PARSED_SCHEMA` and the plain values the parse casts (``arrow_casts``)."""
    plain = [StructField(plain_name(c), spark_type(t)) for c, t in casts]
    return StructType([*PARSED_SCHEMA.fields, *plain])


_NOT_UTF8 = "not_utf8"
_BAD_QUOTE = "bad_quote"
_STRAY_QUOTE = "stray_quote"
#: Rejections found by the file-start check or over a ``ReadLimits`` bound, reported under
#: their domain reason and detail.
_START_ERRORS = frozenset(
    {"compressed", "too_many_columns", "field_too_large", "bare_cr_line_endings"}
)
_BATCH_ROWS = 8192
_VALIDATE_BYTES = 1 << 24
# A lone "\r" is text, but the csv module ends a record on it: it is swapped for a lone
# surrogate, which strict UTF-8 decoding can never produce, and swapped back in the cells.
_LONE_CR = re.compile(r"\r(?!\n)")
_CR_STAND_IN = "\udc0d"


def source_frame_schema(schema: TableSchema) -> StructType:
    """The columns of a source frame without evolved columns."""
    return StructType(
        [
            *spark_schema(schema.columns).fields,
            StructField(RESCUED_DATA, StringType()),
            StructField(SOURCE_FILE, StringType()),
            StructField(SOURCE_CHECKSUM, StringType()),
            StructField(FILE_ORDINAL, LongType()),
            StructField(LINE_NUMBER, LongType()),
            StructField(VIOLATION, IntegerType()),
            StructField(RAW_RECORD, StringType()),
        ]
    )


def read_source_frame(
    session: SparkSession,
    source: SourceFile,
    schema: TableSchema,
    evolution: SchemaEvolution,
    limits: ReadLimits = DEFAULT_READ_LIMITS,
) -> DataFrame:
    """Read one CSV and check every row against ``schema``'s rules.

    The file is parsed once, by the one Spark job this runs (it must, to reject a file
    here); the frame returned reads the parsed records from a local checkpoint.

    Args:
        session: the Spark session.
        source: the raw file.
        schema: the table the file feeds.
        evolution: what to do with columns that are not in the schema.
        limits: bounds on columns and field size, checked on the executor before the parse
            (the header) and while parsing (every field).

    Returns:
        One row per record, in no particular order: the business columns typed (null where
        the text does not parse; a derivable date derived from the UTC timestamp),
        ``_rescued_data``, evolved text columns (``add_new_columns`` only),
        ``_source_file``, ``_file_ordinal``, ``_line_number``, :data:`VIOLATION` and
        ``_raw_record``, the JSON object ``{original header: raw value}`` of the rows that
        break a rule (null for valid rows).

    Raises:
        FileRejected: the file is compressed, not UTF-8, not parseable CSV, over a limit,
            ends its lines with a bare CR, its header does not fit, or Spark cannot read it
            (over 2 GiB, or a name Spark takes for hidden).
    """
    _check_size(source)
    casts = plain_casts(schema.columns)
    content = session.read.format("binaryFile").load(_literal_path(source.uri))
    # Listed without a job. Spark's file sources skip names starting with "_" or "."
    # without a word, even when given explicitly.
    if not content.inputFiles():
        raise FileRejected(
            "unreadable_name",
            f"{source.key}: Spark ignores files whose names start with '_' or '.'; rename the file",
        )
    # Files are read from several threads: catch_warnings swaps process-wide state.
    with _WARNINGS, warnings.catch_warnings():
        # PySpark 3.5 checks the pandas and pyarrow versions with distutils' LooseVersion.
        warnings.simplefilter("ignore", DeprecationWarning)
        parsing = content.select("content").mapInArrow(
            partial(_parse_files, limits=limits, casts=casts), parsed_schema(casts)
        )
    # Materialised by the first action below: the file is parsed exactly once.
    parsed = parsing.localCheckpoint(eager=False)
    header, error, trim = _summary(parsed)
    if error is not None:
        raise _rejection(source, error, limits)
    if header is None:
        # No record at all (Spark does not even scan a zero-byte file).
        return _empty(session, schema)
    width = len(header)
    cells = F.col(_CELLS)
    grid = parsed.where(F.col(_LINE) > 1).select(
        F.col(_LINE),
        *(cells.getItem(i).alias(_cell(i)) for i in range(width)),
        # The parse kept a longer record's fields past the header, but no trailing empty one.
        (F.size(cells) > width).alias(RAGGED_RECORD),
        F.slice(cells, width + 1, F.size(cells) - width).alias(_PAST),
        *(plain_name(c) for c, _ in casts),
    )
    if all(not h.strip() for h in header) and not _has_records(grid, width):
        # A whitespace-only file: no header and no data.
        return _empty(session, schema)
    columns = check_header(source.key, schema, evolution, header)
    in_schema = {c.name: c for c in columns if c.name in schema.column_names}
    extras = [c for c in columns if c.name not in schema.column_names]

    text: list[Column] = []
    for name in schema.column_names:
        found = in_schema.get(name)
        value = F.col(_norm(found.position)) if found else F.lit(None).cast(StringType())
        text.append(value.alias(name))
    if extras and evolution is SchemaEvolution.RESCUE:
        text.append(_json_object(extras).alias(RESCUED_DATA))
    else:
        text.append(F.lit(None).cast(StringType()).alias(RESCUED_DATA))
    evolved = (
        [evolved_name(c.original, c.position + 1) for c in extras]
        if evolution is SchemaEvolution.ADD_NEW_COLUMNS
        else []
    )
    text += [F.col(_norm(c.position)).alias(n) for c, n in zip(extras, evolved, strict=False)]
    text += [
        F.col(_LINE).alias(LINE_NUMBER),
        F.col(RAGGED_RECORD),
        F.col(_PAST),
        *(F.col(_cell(i)) for i in range(width)),
        *(F.col(plain_name(c)) for c, _ in casts),
    ]

    # Every record is a row, blank ones too: they are quarantined (no key), not dropped.
    # Trimming costs more than any other step of a plain value: it is skipped when the parse
    # saw no cell that starts or ends with whitespace (empty cells still read as null).
    normalise = normalized if trim else _null_if_empty
    records = grid.select(
        "*", *(normalise(F.col(_cell(i))).alias(_norm(i)) for i in range(width))
    ).select(text)
    checked = _typed_and_checked(records, schema, casts)
    broken = F.col(VIOLATION).isNotNull()
    return checked.select(
        *schema.column_names,
        RESCUED_DATA,
        *evolved,
        F.lit(source.key).alias(SOURCE_FILE),
        F.lit(source.checksum).alias(SOURCE_CHECKSUM),
        F.lit(source.ordinal).cast(LongType()).alias(FILE_ORDINAL),
        LINE_NUMBER,
        VIOLATION,
        # Only the rows that break a rule need their raw record, and they are few.
        F.when(broken & F.col(RAGGED_RECORD), _json_object(columns, F.col(_PAST)))
        .when(broken, _json_object(columns))
        .alias(RAW_RECORD),
    )


def _typed_and_checked(
    records: DataFrame, schema: TableSchema, plain: Sequence[PlainCast]
) -> DataFrame:
    """``records`` (normalised text) with typed business columns and :data:`VIOLATION`.

    A cast of ``plain`` reads the parse's cast of the value first, and casts the text only
    where that is null (the value was not plain).
    """
    casts = casts_needed(schema.rules, schema.types)
    timestamps = [c for c, t in casts if t is ColumnType.TIMESTAMP]
    cast_by_parse = set(plain)

    def unless_cast(column: str, column_type: ColumnType, value: Column) -> Column:
        if (column, column_type) not in cast_by_parse:
            return value
        return F.coalesce(F.col(plain_name(column)), value)

    def parse_step(step: int, column: str) -> dict[str, Column]:
        text = F.col(column)
        if (column, ColumnType.TIMESTAMP) in cast_by_parse:
            # Null where the parse cast it: the steps then pass nulls, and parse nothing.
            text = F.when(F.col(plain_name(column)).isNull(), text)
        return timestamp_step(step, text, lambda name: F.col(_step(column, name)))

    # Timestamps are parsed in steps, one projection each, so no part is computed twice.
    for step in range(TIMESTAMP_STEPS):
        records = records.select(
            "*",
            *(
                value.alias(_step(c, name))
                for c in timestamps
                for name, value in parse_step(step, c).items()
            ),
        )

    def cast(column: str, column_type: ColumnType) -> Column:
        return F.col(_cast(column, column_type))

    with_casts = records.select(
        "*",
        *(
            unless_cast(
                c,
                t,
                F.col(_step(c, TIMESTAMP)) if t is ColumnType.TIMESTAMP else cast_text(F.col(c), t),
            ).alias(_cast(c, t))
            for c, t in casts
        ),
    )
    checked = with_casts.select(
        "*", first_violation_index(schema.rules, schema.types, cast).alias(VIOLATION)
    )
    typed = {
        c.name: cast(c.name, c.type).cast(spark_type(c.type))
        for c in schema.columns
        if c.type is not ColumnType.STRING
    }
    if schema.derived_date is not None:
        # Derived on every row; only valid rows survive, and their values are the same.
        date_column, ts_column = schema.derived_date
        typed[date_column] = F.coalesce(
            typed[date_column], utc_date(cast(ts_column, ColumnType.TIMESTAMP))
        )
    return checked.withColumns(typed)


def _summary(parsed: DataFrame) -> tuple[list[str] | None, str | None, bool]:
    """The header (None for an empty file), the parse error, if any, and the trim flag."""
    rows = parsed.where(F.col(_LINE).isNull() | (F.col(_LINE) == 1)).collect()
    header = next((list(r[_CELLS]) for r in rows if r[_LINE] == 1), None)
    error = next((r[_ERROR] for r in rows if r[_ERROR] is not None), None)
    return header, error, any(r[_TRIM] is not False for r in rows if r[_LINE] is None)


def _null_if_empty(text: Column) -> Column:
    """:func:`normalized` of a text known not to start or end with whitespace."""
    # Compared, not measured: Spark's length counts the characters of every value.
    return F.when(text != F.lit(""), text)


def _has_records(grid: DataFrame, width: int) -> bool:
    blank = reduce(lambda a, b: a & b, (normalized(F.col(_cell(i))).isNull() for i in range(width)))
    return not grid.where(~blank).isEmpty()


def _check_size(source: SourceFile) -> None:
    if source.size_bytes > MAX_FILE_BYTES:
        raise FileRejected(
            "file_too_large",
            f"{source.key} has {source.size_bytes} bytes; the Spark engine reads files of "
            "at most 2 GiB (split it, or use the polars engine)",
        )


def _literal_path(uri: str) -> str:
    """``uri`` with Hadoop glob characters escaped, so it names exactly one file."""
    return re.sub(r"([\\*?\[\]{}])", r"\\\1", uri)


def _rejection(source: SourceFile, error: str, limits: ReadLimits) -> FileRejected:
    if error in _START_ERRORS:
        return limit_rejection(source.key, error, limits)
    if error == _NOT_UTF8:
        return FileRejected("not_utf8", f"{source.key} is not valid UTF-8 text")
    if error == _STRAY_QUOTE:
        return FileRejected("malformed_csv", stray_quote_detail(source.key))
    return FileRejected(
        "malformed_csv",
        f"{source.key} has a quoted field that is not terminated or is followed by "
        "other characters",
    )


# ---------------------------------------------------------------- executor side
def _parse_files(
    batches: Iterable[pa.RecordBatch], limits: ReadLimits, casts: Sequence[PlainCast]
) -> Iterator[pa.RecordBatch]:
    """``mapInArrow`` function: parse every file of the batches (one ``content`` each).

    Each file's plain values of ``casts`` are cast in the same pass (``arrow_casts``).
    """
    for batch in batches:
        for content in batch.column(0).to_pylist():
            yield from with_plain_casts(_parse_file(content, limits), casts, _CELLS, _LINE)


def _parse_file(
    content: bytes, limits: ReadLimits = DEFAULT_READ_LIMITS, *, vectorised: bool = True
) -> Iterator[pa.RecordBatch]:
    """The records of one file as batches of :data:`PARSED_SCHEMA`, then the end row.

    A file without quotes is split with Arrow kernels (:func:`_parse_unquoted`, unless
    ``vectorised`` is false), any other by Python's ``csv`` module, with the same results.
    """
    import pyarrow as pa

    arrow_schema = pa.schema(
        [
            pa.field(_LINE, pa.int64()),
            pa.field(_CELLS, pa.list_(pa.string())),
            pa.field(_ERROR, pa.string()),
            pa.field(_TRIM, pa.bool_()),
        ]
    )
    lines: list[int | None] = []
    cells: list[list[str] | None] = []

    def flush() -> pa.RecordBatch:
        batch = pa.RecordBatch.from_arrays(
            [
                pa.array(lines, pa.int64()),
                pa.array(cells, pa.list_(pa.string())),
                pa.array([None] * len(lines), pa.string()),
                pa.nulls(len(lines), pa.bool_()),
            ],
            schema=arrow_schema,
        )
        lines.clear()
        cells.clear()
        return batch

    def end(error: str | None) -> pa.RecordBatch:
        # This path does not look for whitespace: every cell is trimmed.
        return pa.RecordBatch.from_arrays(
            [
                pa.array([None], pa.int64()),
                pa.array([None]),
                pa.array([error], pa.string()),
                pa.array([True]),
            ],
            schema=arrow_schema,
        )

    # The header is checked first, from the file's first bytes only (as the Polars engine
    # does before it parses): compressed content, too many columns, a huge header field,
    # bare-CR line endings.
    view = memoryview(content)
    violation = file_start_violation(
        (bytes(view[i : i + HEADER_CHUNK_BYTES]) for i in range(0, len(view), HEADER_CHUNK_BYTES)),
        limits,
    )
    if violation is not None:
        yield end(violation)
        return
    # Validated whole first, so a file is "not UTF-8" wherever its bad bytes are.
    if not _is_utf8(content):
        yield end(_NOT_UTF8)
        return
    fast = _parse_unquoted(content, limits, arrow_schema) if vectorised else None
    if fast is not None:
        yield from fast
        return
    # The csv module's default 128 KiB field limit is not the product's.
    csv.field_size_limit(2**31 - 1)
    # Decoded lazily, line by line: only "\n" ends a line (as for the Polars engine).
    text = io.TextIOWrapper(io.BytesIO(content), encoding="utf-8-sig", newline="\n")
    raw = _RecordLines(_swap_lone_cr(text))
    reader = csv.reader(raw, strict=True)
    width = 0
    start = 1
    try:
        for row in reader:
            if raw.has_stray_quote():
                yield end(_STRAY_QUOTE)
                return
            # A blank line is a record of one empty field (it is a header of width 1).
            record = row or [""]
            if len(record) > limits.max_columns:
                yield end("too_many_columns")
                return
            if width == 0:
                width = len(record)
            # Empty fields past the header are ignored; others are kept for FieldCount.
            while len(record) > width and not record[-1]:
                record.pop()
            if any(_CR_STAND_IN in c for c in record):
                record = [c.replace(_CR_STAND_IN, "\r") for c in record]
            # A character is at most 4 UTF-8 bytes: only a long field needs encoding.
            if max(map(len, record)) * 4 > limits.max_field_bytes and any(
                len(c.encode("utf-8")) > limits.max_field_bytes for c in record
            ):
                yield end("field_too_large")
                return
            lines.append(start)
            cells.append(record + [""] * (width - len(record)))
            start = reader.line_num + 1
            if len(lines) >= _BATCH_ROWS:
                yield flush()
    except csv.Error:
        yield end(_BAD_QUOTE)
        return
    if lines:
        yield flush()
    yield end(None)


def _parse_unquoted(
    content: bytes, limits: ReadLimits, arrow_schema: pa.Schema
) -> list[pa.RecordBatch] | None:
    r""":func:`_parse_file`'s batches for a file without quotes, parsed with Arrow kernels.

    Without a ``"`` and without a lone ``\r`` the CSV grammar is plain: a record is a line
    (a ``\n``-ended line, its ``\r`` before the ``\n`` dropped) and its fields are the line
    split on commas, as Python's ``csv`` module reads it. Those files, the bulk of real drops,
    are split here with vectorised Arrow kernels, every record on line ``1 + its position``,
    with the same alignment, limits and error precedence as the ``csv`` loop. None for any
    other file: the ``csv`` loop parses it.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    body = content[len(codecs.BOM_UTF8) :] if content.startswith(codecs.BOM_UTF8) else content
    if b'"' in body or body.count(b"\r") != body.count(b"\r\n"):
        return None
    string_type = pa.list_(pa.string())

    def end(error: str | None, trim: bool = True) -> pa.RecordBatch:
        return pa.RecordBatch.from_arrays(
            [
                pa.array([None], pa.int64()),
                pa.array([None], string_type),
                pa.array([error]),
                pa.array([trim]),
            ],
            schema=arrow_schema,
        )

    if not body:
        return [end(None)]
    # At most MAX_FILE_BYTES: 32-bit offsets hold it, and the cells are Spark's list<string>.
    text = pa.array([body], pa.binary()).cast(pa.string())
    lines = pc.list_flatten(pc.split_pattern(text, "\n"))
    if body.endswith(b"\n"):
        lines = lines.slice(0, len(lines) - 1)
    if b"\r" in body:
        lines = pc.utf8_rtrim(lines, characters="\r")
    cells = pc.split_pattern(lines, ",")
    lengths = pc.list_value_length(cells).to_numpy()
    width = int(lengths[0])
    # The csv loop stops at the first record over a limit, too many columns first.
    first_bad = len(lengths)
    error = None
    too_wide = np.flatnonzero(lengths > limits.max_columns)
    if too_wide.size:
        first_bad, error = int(too_wide[0]), "too_many_columns"
    if pc.max(pc.binary_length(lines)).as_py() > limits.max_field_bytes:
        flat = pc.list_flatten(cells)
        large = np.flatnonzero(pc.binary_length(flat).to_numpy() > limits.max_field_bytes)
        if large.size:
            row = int(pc.list_parent_indices(cells).to_numpy()[large[0]])
            if row < first_bad:
                first_bad, error = row, "field_too_large"
    if error is not None:
        return [end(error)]
    # Records are aligned to the header: missing trailing fields read as empty, empty ones
    # past it are dropped, a value past it is kept (rule wrong_field_count).
    aligned = np.maximum(lengths, width)
    for row in np.flatnonzero(lengths > width):
        fields = cells[int(row)].values
        filled = np.flatnonzero(pc.not_equal(fields, "").to_numpy(zero_copy_only=False))
        aligned[row] = max(width, int(filled[-1]) + 1 if filled.size else 0)
    offsets = np.asarray(cells.offsets)
    batches = []
    for start in range(0, len(lengths), _BATCH_ROWS):
        stop = min(start + _BATCH_ROWS, len(lengths))
        chunk = cells.slice(start, stop - start)
        have, want = lengths[start:stop], aligned[start:stop]
        if not np.array_equal(have, want):
            # Gather each output field from its source position; padding is a null there,
            # filled with "".
            sizes = want.astype(np.int64)
            out_offsets = np.zeros(len(sizes) + 1, np.int64)
            np.cumsum(sizes, out=out_offsets[1:])
            within = np.arange(out_offsets[-1]) - np.repeat(out_offsets[:-1], sizes)
            source = np.repeat(offsets[start:stop], sizes) + within
            padding = within >= np.repeat(have, sizes)
            values = pc.fill_null(
                cells.values.take(pa.array(source, mask=padding)), pa.scalar("", cells.values.type)
            )
            chunk = pa.ListArray.from_arrays(pa.array(out_offsets.astype(np.int32)), values)
        batches.append(
            pa.RecordBatch.from_arrays(
                [
                    pa.array(np.arange(start + 1, stop + 1, dtype=np.int64)),
                    chunk,
                    pa.nulls(stop - start, pa.string()),
                    pa.nulls(stop - start, pa.bool_()),
                ],
                schema=arrow_schema,
            )
        )
    return [*batches, end(None, trim=_may_need_trimming(cells.values))]


def _may_need_trimming(values: pa.Array) -> bool:
    """Whether a value starts or ends with a character ``str.strip()`` removes."""
    import pyarrow as pa
    import pyarrow.compute as pc

    whitespace = pa.array(list(WHITESPACE))
    for edge in (pc.utf8_slice_codeunits(values, 0, 1), pc.utf8_slice_codeunits(values, -1)):
        if pc.any(pc.is_in(edge, value_set=whitespace)).as_py():
            return True
    return False


class _RecordLines:
    """The lines handed to ``csv.reader``, remembering those of the record being read.

    The csv module reads a quote inside an unquoted field as text; the Polars reader cannot
    parse an odd number of them (``a"b``), so both engines reject such files.
    """

    def __init__(self, lines: Iterator[str]) -> None:
        self._lines = lines
        self._record: list[str] = []

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        line = next(self._lines)
        self._record.append(line)
        return line

    def has_stray_quote(self) -> bool:
        """Whether the record just read has an unquoted field with an odd number of quotes."""
        text = "".join(self._record)
        self._record.clear()
        return '"' in text and has_stray_quote(text)


def has_stray_quote(record: str) -> bool:
    """Whether an unquoted field of a CSV record holds an odd number of ``"`` characters."""
    position, end = 0, len(record)
    while position <= end:
        if record.startswith('"', position):
            # A quoted field: skip to its closing quote (doubled quotes are text).
            position += 1
            while position < end:
                if record[position] == '"':
                    if record.startswith('"', position + 1):
                        position += 2
                        continue
                    break
                position += 1
            comma = record.find(",", position)
        else:
            comma = record.find(",", position)
            field = record[position : end if comma < 0 else comma]
            if field.count('"') % 2:
                return True
        if comma < 0:
            return False
        position = comma + 1
    return False


def _is_utf8(content: bytes) -> bool:
    decoder = codecs.getincrementaldecoder("utf-8")(errors="strict")
    view = memoryview(content)
    try:
        for offset in range(0, len(view), _VALIDATE_BYTES):
            decoder.decode(view[offset : offset + _VALIDATE_BYTES])
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


def _swap_lone_cr(lines: Iterable[str]) -> Iterator[str]:
    for line in lines:
        yield _LONE_CR.sub(_CR_STAND_IN, line) if "\r" in line else line


# ---------------------------------------------------------------- driver side helpers
def _cell(position: int) -> str:
    return f"#cell{position}"


def _norm(position: int) -> str:
    return f"#norm{position}"


def _cast(column: str, column_type: ColumnType) -> str:
    return f"#cast_{column_type.value}#{column}"


def _step(column: str, name: str) -> str:
    """A value of :func:`expressions.timestamp_step` parsing ``column``."""
    return f"#ts#{column}#{name}"


#: Jackson writes ``\\u001C`` where the Polars engine (and Python's json) write
#: ``\\u001c``: lower-case the hex digits of the control-character escapes Jackson writes in
#: full (U+000B, U+000E, U+000F, U+001A..U+001F), wherever the backslash is not escaped.
_UPPER_HEX_ESCAPE = r"\\u00[01][A-F]"


def _json_object(columns: Sequence[HeaderColumn], past: Column | None = None) -> Column:
    """A JSON object ``{original header: raw value}`` of the given columns.

    ``past``, when given, is an array of fields past the header, kept under
    ``EXTRA_FIELDS_KEY``.
    """
    fields = [F.col(_cell(c.position)).alias(c.original) for c in columns]
    if past is not None:
        fields.append(past.alias(EXTRA_FIELDS_KEY))
    encoded = F.to_json(F.struct(*fields), {"ignoreNullFields": "false"})
    lowered = encoded
    for digit in "ABCDEF":
        lowered = F.regexp_replace(
            lowered, rf"(?<!\\)((?:\\\\)*)\\u00([01]){digit}", rf"$1\\u00$2{digit.lower()}"
        )
    return F.when(encoded.rlike(_UPPER_HEX_ESCAPE), lowered).otherwise(encoded)


def _empty(session: SparkSession, schema: TableSchema) -> DataFrame:
    return local_frame(session, [], source_frame_schema(schema))
