"""Reading one raw CSV file and checking its rows against the schema.

See docs/contract.md#reading-files and docs/contract.md#row-rules-and-quarantine.

Polars parses the file with no header and no type inference, so the header row arrives
verbatim (duplicate names are not silently renamed) and every value is text. Line numbers
are physical: the header is line 1 and a record spanning lines (a quoted newline) is
numbered by the line it starts on. Every record is a row, blank lines and rows of empty
fields included (they are quarantined for their missing key, never dropped uncounted).
Records are aligned to the header: missing trailing fields read as empty, empty fields past
it are ignored, and a record with a value past it is marked for rule ``wrong_field_count``.

The rules and casts run here, one file at a time, rather than on the whole batch in
``stage``: a source frame then holds typed values (far smaller than text) and builds the
raw record (a JSON object of the row) only for the rows that break a rule.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping, Sequence
from contextlib import closing
from typing import Any
from urllib.parse import unquote, urlparse

import polars as pl
from pyarrow import fs

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
from ecommerce_lakehouse.ports.engine import SourceFile
from ecommerce_lakehouse_polars.dtypes import polars_dtype, polars_schema
from ecommerce_lakehouse_polars.expressions import (
    cast_text,
    first_violation_index,
    normalized,
    timestamp_parts,
)

#: Index in ``schema.rules`` of the first rule a row breaks (null when the row is valid).
#: Engine-internal names hold a capital letter, so no evolved column (``[a-z0-9_]``) can
#: take them.
VIOLATION = "_Violation"
_LINE = "_Line"


def source_frame_schema(schema: TableSchema) -> pl.Schema:
    """The columns of a source frame without evolved columns."""
    return pl.Schema(
        {
            **polars_schema(schema.columns),
            RESCUED_DATA: pl.String(),
            # One key per file: categorical codes, not the key text on every row.
            SOURCE_FILE: pl.Categorical(),
            SOURCE_CHECKSUM: pl.Categorical(),
            FILE_ORDINAL: pl.Int64(),
            LINE_NUMBER: pl.Int64(),
            VIOLATION: pl.Int32(),
            RAW_RECORD: pl.String(),
        }
    )


def read_source_frame(
    source: SourceFile,
    schema: TableSchema,
    evolution: SchemaEvolution,
    storage_options: Mapping[str, str],
    limits: ReadLimits = DEFAULT_READ_LIMITS,
) -> pl.DataFrame:
    """Read one CSV and check every row against ``schema``'s rules.

    Args:
        source: the raw file.
        schema: the table the file feeds.
        evolution: what to do with columns that are not in the schema.
        storage_options: object-store options for non-local URIs (delta-rs /
            ``object_store`` keys such as ``AWS_REGION``), for Polars' read and, mapped
            onto pyarrow's, for the stream the header check reads.
        limits: bounds on columns and field size. The file's first bytes (local or remote)
            are checked before the parse, reading only up to the end of the header line:
            compressed content, too many columns, a huge header field, bare-CR line endings.
            Records are checked after it.

    Returns:
        One row per record: the business columns typed (null where the text does not
        parse; a derivable date derived from the UTC timestamp), ``_rescued_data``, evolved
        text columns (``add_new_columns`` only), ``_source_file`` (categorical),
        ``_file_ordinal``, ``_line_number``, :data:`VIOLATION` and ``_raw_record``, the JSON
        object ``{original header: raw value}`` of the rows that break a rule (null for
        valid rows).

    Raises:
        FileRejected: the file is compressed, not UTF-8, not parseable CSV, over a limit,
            ends its lines with a bare CR, or its header does not fit.
        OSError: a remote file cannot be opened or read (credentials, network): not the
            file's fault, so not a rejection.
    """
    # Polars would decompress a gzip file silently (on S3 too), and a very wide header costs
    # far more to parse than its size suggests: both are caught from the file's first bytes.
    # Closed as soon as the check is done: a remote stream is not left open until collected.
    with closing(_chunks(source.uri, storage_options)) as chunks:
        violation = file_start_violation(chunks, limits)
    if violation is not None:
        raise limit_rejection(source.key, violation, limits)
    grid, width = _read_grid(source, storage_options, limits)
    if grid.width == 0:
        return _empty(schema)
    if width > limits.max_columns:
        raise limit_rejection(source.key, "too_many_columns", limits)
    # String views know their length: this reads no text.
    longest = grid.select(pl.max_horizontal(pl.all().str.len_bytes().max())).item()
    if longest is not None and longest > limits.max_field_bytes:
        raise limit_rejection(source.key, "field_too_large", limits)
    # Internal names cannot clash with business or evolved names (see VIOLATION).
    grid = grid.rename({c: _cell(i) for i, c in enumerate(grid.columns)})
    # Cells past the header's width hold the fields of longer records ("" elsewhere).
    total = grid.width
    header = ["" if v is None else str(v) for v in grid.row(0)[:width]]
    if all(not h.strip() for h in header) and not _has_records(grid.slice(1), total):
        # A whitespace-only file: no header and no data.
        return _empty(schema)
    columns = check_header(source.key, schema, evolution, header)
    in_schema = {c.name: c for c in columns if c.name in schema.column_names}
    extras = [c for c in columns if c.name not in schema.column_names]

    text: list[pl.Expr] = []
    for name in schema.column_names:
        found = in_schema.get(name)
        value = pl.col(_norm(found.position)) if found else pl.lit(None, pl.String)
        text.append(value.alias(name))
    if extras and evolution is SchemaEvolution.RESCUE:
        text.append(_json_object(extras).alias(RESCUED_DATA))
    else:
        text.append(pl.lit(None, pl.String).alias(RESCUED_DATA))
    evolved = (
        [evolved_name(c.original, c.position + 1) for c in extras]
        if evolution is SchemaEvolution.ADD_NEW_COLUMNS
        else []
    )
    text += [pl.col(_norm(c.position)).alias(n) for c, n in zip(extras, evolved, strict=False)]
    text += [
        pl.col(_LINE).alias(LINE_NUMBER),
        _ragged(width, total).alias(RAGGED_RECORD),
        *(pl.col(_cell(i)) for i in range(total)),
    ]

    # Every record is a row, blank ones too: they are quarantined (no key), not dropped.
    records = (
        grid.lazy()
        .with_columns(_line_numbers(total).alias(_LINE))
        .slice(1)
        .with_columns(normalized(pl.col(_cell(i))).alias(_norm(i)) for i in range(width))
        .select(text)
    )
    checked = _typed_and_checked(records, schema).select(
        *schema.column_names,
        RESCUED_DATA,
        *evolved,
        pl.lit(source.key, pl.Categorical).alias(SOURCE_FILE),
        pl.lit(source.checksum, pl.Categorical).alias(SOURCE_CHECKSUM),
        pl.lit(source.ordinal, pl.Int64).alias(FILE_ORDINAL),
        LINE_NUMBER,
        VIOLATION,
        RAGGED_RECORD,
        *(_cell(i) for i in range(total)),
    )
    frame = checked.collect()
    # One chunk per column: the batch then has one per file in every column, and filters
    # on it need not realign (copy) columns of different chunkings.
    return frame.select(
        pl.exclude([RAGGED_RECORD, *(_cell(i) for i in range(total))]),
        _raw_records(frame, columns, width, total).alias(RAW_RECORD),
    ).rechunk()


def _ragged(width: int, total: int) -> pl.Expr:
    """Whether a record has a non-empty field past the header (``FieldCount``)."""
    past = [pl.col(_cell(i)) != "" for i in range(width, total)]
    return pl.any_horizontal(past) if past else pl.lit(False)


def _typed_and_checked(records: pl.LazyFrame, schema: TableSchema) -> pl.LazyFrame:
    """``records`` (normalised text) with typed business columns and :data:`VIOLATION`."""
    casts = casts_needed(schema.rules, schema.types)
    timestamps = [c for c, t in casts if t is ColumnType.TIMESTAMP]

    def cast(column: str, column_type: ColumnType) -> pl.Expr:
        return pl.col(_cast(column, column_type))

    checked = (
        records.with_columns(timestamp_parts(pl.col(c)).alias(_parts(c)) for c in timestamps)
        .with_columns(
            cast_text(pl.col(c), t, pl.col(_parts(c)) if t is ColumnType.TIMESTAMP else None).alias(
                _cast(c, t)
            )
            for c, t in casts
        )
        .with_columns(first_violation_index(schema.rules, schema.types, cast).alias(VIOLATION))
    )
    typed = {
        c.name: cast(c.name, c.type).cast(polars_dtype(c.type))
        for c in schema.columns
        if c.type is not ColumnType.STRING
    }
    if schema.derived_date is not None:
        # Derived on every row; only valid rows survive, and their values are the same.
        date_column, ts_column = schema.derived_date
        typed[date_column] = pl.coalesce(
            typed[date_column], cast(ts_column, ColumnType.TIMESTAMP).dt.date()
        )
    return checked.with_columns(value.alias(name) for name, value in typed.items())


def _raw_records(
    frame: pl.DataFrame, columns: Sequence[HeaderColumn], width: int, total: int
) -> pl.Series:
    # Only the rows that break a rule need their raw record, and they are few: encode
    # those, and leave every other row null.
    broken = frame.get_column(VIOLATION).is_not_null()
    cells = frame.select(RAGGED_RECORD, *(_cell(i) for i in range(total))).filter(broken)
    encoded = _json_object(columns)
    if total > width:
        # A record longer than the header keeps its fields past it, as a JSON array
        # without the trailing empty ones (the padding of shorter records).
        past = [pl.col(_cell(i)) for i in range(width, total)]
        kept = pl.max_horizontal(
            pl.when(cell != "").then(pl.lit(n + 1)).otherwise(pl.lit(0))
            for n, cell in enumerate(past)
        )
        with_extra = pl.struct(
            [
                *(pl.col(_cell(c.position)).alias(c.original) for c in columns),
                pl.concat_list(past).list.head(kept).alias(EXTRA_FIELDS_KEY),
            ]
        ).struct.json_encode()
        encoded = pl.when(pl.col(RAGGED_RECORD)).then(with_extra).otherwise(encoded)
    raw = cells.select(encoded).to_series()
    return pl.repeat(None, frame.height, dtype=pl.String, eager=True).scatter(
        broken.arg_true(), raw
    )


def _cell(position: int) -> str:
    return f"_Cell{position}"


def _norm(position: int) -> str:
    return f"_Norm{position}"


def _cast(column: str, column_type: ColumnType) -> str:
    return f"_Cast{column_type.value}_{column}"


def _parts(column: str) -> str:
    return f"_Parts_{column}"


def _has_records(rows: pl.DataFrame, width: int) -> bool:
    blank = pl.all_horizontal(normalized(pl.col(_cell(i))).is_null() for i in range(width))
    return bool(rows.select((~blank).any()).item())


def _local_path(uri: str) -> str | None:
    """The file-system path of a local URI (a plain path or ``file://``), else None."""
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return unquote(parsed.path)
    # A one-letter scheme is a Windows drive.
    return uri if len(parsed.scheme) <= 1 else None


def _chunks(uri: str, storage_options: Mapping[str, str]) -> Generator[bytes, None, None]:
    """The file's bytes, :data:`HEADER_CHUNK_BYTES` at a time, read only as they are taken.

    A remote object is opened with pyarrow and read as a stream: each chunk is one ranged
    GET, so a check that stops at the header fetches the header, never the whole object.
    """
    path = _local_path(uri)
    if path is not None:
        with open(path, "rb") as handle:
            while chunk := handle.read(HEADER_CHUNK_BYTES):
                yield chunk
        return
    filesystem, object_path = _remote_filesystem(uri, storage_options)
    # compression=None: the raw bytes, never decompressed on the strength of the name.
    with filesystem.open_input_stream(object_path, compression=None) as stream:
        while chunk := stream.read(HEADER_CHUNK_BYTES):
            yield chunk


#: ``object_store`` keys (lower-cased, ``aws_`` prefix dropped) Polars and delta-rs accept
#: for one setting, by the ``S3FileSystem`` setting they map onto.
_S3_KEYS: dict[str, tuple[str, ...]] = {
    "region": ("region", "default_region"),
    "endpoint": ("endpoint_url", "endpoint"),
    "access_key": ("access_key_id", "access_key"),
    "secret_key": ("secret_access_key", "secret_key"),
    "session_token": ("session_token", "token"),
    "allow_http": ("allow_http",),
    "virtual_hosted": ("virtual_hosted_style_request",),
    "skip_signature": ("skip_signature",),
}


def _remote_filesystem(uri: str, storage_options: Mapping[str, str]) -> tuple[Any, str]:
    """A pyarrow file system reaching ``uri`` as Polars does, and the object's path in it."""
    scheme, _, rest = uri.partition("://")
    if scheme.lower() in ("s3", "s3a"):
        # The key as written: lake URIs are not percent-encoded.
        return _s3_filesystem(storage_options), rest
    # Another store: pyarrow's own configuration of it (environment, default credentials).
    filesystem, path = fs.FileSystem.from_uri(uri)
    return filesystem, str(path)


def _s3_filesystem(storage_options: Mapping[str, str]) -> Any:
    """An ``S3FileSystem`` configured by the engine's ``object_store``-style options.

    Region, endpoint (its scheme, or ``AWS_ALLOW_HTTP`` for one without, chooses HTTP or
    HTTPS), access key with secret (and session token), virtual-hosted addressing and
    unsigned requests; other options (e.g. ``AWS_CONDITIONAL_PUT``) concern writes only.
    What is not given is found as the AWS SDK finds it (environment, profile, instance
    role).
    """
    given = {k.lower().removeprefix("aws_"): v for k, v in storage_options.items()}

    def option(setting: str) -> str | None:
        return next((given[k] for k in _S3_KEYS[setting] if k in given), None)

    def flag(setting: str) -> bool:
        return (option(setting) or "").strip().lower() in ("true", "1", "yes", "on")

    settings: dict[str, Any] = {
        "region": option("region"),
        "force_virtual_addressing": flag("virtual_hosted"),
    }
    key, secret = option("access_key"), option("secret_key")
    if flag("skip_signature"):
        settings["anonymous"] = True
    elif key and secret:
        # pyarrow refuses a key without its secret (or a token without both): short of
        # both, the AWS SDK's default chain finds the credentials.
        settings.update(access_key=key, secret_key=secret, session_token=option("session_token"))
    endpoint = option("endpoint")
    if endpoint:
        # Given apart: pyarrow takes the endpoint as host[:port] and the scheme separately.
        scheme, found, address = endpoint.partition("://")
        if found:
            settings.update(scheme=scheme.lower(), endpoint_override=address.rstrip("/"))
        else:
            settings.update(
                scheme="http" if flag("allow_http") else "https", endpoint_override=endpoint
            )
    return fs.S3FileSystem(**settings)


def _read_grid(
    source: SourceFile, storage_options: Mapping[str, str], limits: ReadLimits
) -> tuple[pl.DataFrame, int]:
    """The file's cells (no header, all text) and the header's width.

    Polars takes the first record's width for the file's and fails on a longer record: the
    file is then read again (dirty files only) with room for the longer records, doubling
    it up to ``limits.max_columns``, shorter records padded with ``""``.
    """
    try:
        grid = _read_csv(source, storage_options)
        return grid, grid.width
    except pl.exceptions.ComputeError as error:
        if "more fields" not in str(error).lower():
            raise
    width = _read_csv(source, storage_options, n_rows=1).width
    room = 2 * width
    while True:
        try:
            return _read_csv(source, storage_options, width=min(room, limits.max_columns)), width
        except pl.exceptions.ComputeError as error:
            if "more fields" not in str(error).lower():
                raise
            if room >= limits.max_columns:
                raise limit_rejection(source.key, "too_many_columns", limits) from None
            room *= 2


def _read_csv(
    source: SourceFile,
    storage_options: Mapping[str, str],
    *,
    width: int | None = None,
    n_rows: int | None = None,
) -> pl.DataFrame:
    try:
        return pl.read_csv(
            source.uri,
            has_header=False,
            separator=",",
            quote_char='"',
            infer_schema=False,
            schema=None if width is None else {f"c{i}": pl.String for i in range(width)},
            missing_columns=None if width is None else "insert",
            n_rows=n_rows,
            # Only to learn the header's width: longer records later are not read.
            truncate_ragged_lines=n_rows is not None,
            empty_string_is_null=False,
            raise_if_empty=False,
            glob=False,
            storage_options=dict(storage_options) or None,
        )
    except pl.exceptions.ComputeError as error:
        if "more fields" in str(error).lower():
            raise
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
    if "csv malformed" in message:
        # Polars' chunk row count goes wrong on an odd number of quotes in an unquoted
        # field (``a"b``): the one way a parse fails with this message.
        return FileRejected("malformed_csv", stray_quote_detail(source.key))
    if "could not parse" in message or "quote" in message:
        return FileRejected(
            "malformed_csv",
            f"{source.key} has a quoted field that is not terminated or is followed by "
            "other characters",
        )
    return None


def _line_numbers(width: int) -> pl.Expr:
    # A record spans 1 + (newlines inside its quoted fields) physical lines; blank lines
    # are records of empty fields, so they are counted too.
    embedded = pl.sum_horizontal(
        pl.col(_cell(i)).str.count_matches("\n", literal=True).cast(pl.Int64) for i in range(width)
    )
    span = embedded + 1
    return (span.cum_sum() - span + 1).cast(pl.Int64)


def _json_object(columns: Sequence[HeaderColumn]) -> pl.Expr:
    """A JSON object ``{original header: raw value}`` of the given columns."""
    return pl.struct(
        [pl.col(_cell(c.position)).alias(c.original) for c in columns]
    ).struct.json_encode()


def _empty(schema: TableSchema) -> pl.DataFrame:
    return pl.DataFrame(schema=source_frame_schema(schema))
