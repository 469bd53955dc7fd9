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

What costs is kept to one pass of cheap kernels over the text: typed values are cast by
Polars' own parsers on every row (``expressions.fast_cast``), and only the rows holding a
value those cannot vouch for (padded, spelled otherwise, or invalid: few in real files) go
through the exact, costly cast (``expressions.cast_text``). A local file's bytes are also
scanned once (``memchr``): with no quote, each record is one line (line numbers are the
row index, not counted in every cell); with no whitespace either, no value needs trimming.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass
from typing import Any

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
from ecommerce_lakehouse.domain.zones import local_path
from ecommerce_lakehouse.ports.engine import SourceFile
from ecommerce_lakehouse_polars.dtypes import polars_dtype, polars_schema
from ecommerce_lakehouse_polars.expressions import (
    cast_text,
    fast_cast,
    fast_decided,
    first_violation_index,
    normalized,
    timestamp_parts,
    unpadded_normalized,
)

#: Index in ``schema.rules`` of the first rule a row breaks (null when the row is valid).
#: Engine-internal names hold a capital letter, so no evolved column (``[a-z0-9_]``) can
#: take them.
VIOLATION = "_Violation"
_UNDECIDED = "_Undecided"
_LINE = "_Line"


def source_frame_schema(schema: TableSchema) -> pl.Schema:
    """The columns of a source frame without evolved columns."""
    return pl.Schema(
        {
            **polars_schema(schema.columns),
            **{name: pl.Categorical() for name in schema.low_cardinality},
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
        valid rows). A row's line number is kept only in a file where some row breaks a
        rule (the quarantine's rows are the only ones that need it): null throughout a
        file whose rows all pass.

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
    # Internal names cannot clash with business or evolved names (see VIOLATION). The
    # parse leaves a few dozen chunks per column: rechunking the text costs more than the
    # expressions below lose on them, so only the (smaller) result is rechunked.
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
    evolved = (
        [evolved_name(c.original, c.position + 1) for c in extras]
        if evolution is SchemaEvolution.ADD_NEW_COLUMNS
        else []
    )

    # Every record is a row, blank ones too: they are quarantined (no key), not dropped.
    # The cells are string views: the slice, and the gathers of a few rows below, copy no
    # text.
    records = grid.slice(1)

    def raw(name: str) -> pl.Expr:
        found = in_schema.get(name)
        return pl.col(_cell(found.position)) if found else pl.lit(None, pl.String)

    casts = casts_needed(schema.rules, schema.types)
    typed = list(dict.fromkeys(c for c, _ in casts))
    scan = _scan(source)
    fast = _fast_casts(schema, casts, raw, scan.unpadded)
    trimmed = unpadded_normalized if scan.unpadded else normalized
    # One pass over the text, its expressions run in parallel: text columns trimmed, the
    # typed values cast by Polars' own parsers, which typed values are blank.
    checked = (
        records.lazy()
        .select(
            *(trimmed(raw(c)).alias(c) for c in schema.column_names if c not in typed),
            *(f.value.alias(_cast(f.column, f.type)) for f in fast),
            *(f.spelled.alias(_spelled(f.column, f.type)) for f in fast if f.spelled is not None),
            *(_non_blank(raw(c)).alias(_present(c)) for c in typed),
            *(
                [_json_object(extras).alias(RESCUED_DATA)]
                if extras and evolution is SchemaEvolution.RESCUE
                else []
            ),
            *(
                trimmed(pl.col(_cell(c.position))).alias(n)
                for c, n in zip(extras, evolved, strict=False)
            ),
            _ragged(width, total).alias(RAGGED_RECORD),
            (
                pl.int_range(2, pl.len() + 2, dtype=pl.Int64)
                if scan.one_line_per_record
                else pl.lit(None, pl.Int64)
            ).alias(LINE_NUMBER),
        )
        .with_columns(_undecided(fast).alias(_UNDECIDED))
        .collect()
    )
    if checked.get_column(LINE_NUMBER).has_nulls():
        # A quoted field may span lines: count them (see _line_numbers).
        lines = grid.select(_line_numbers(total)).to_series().slice(1)
        checked = checked.with_columns(lines.alias(LINE_NUMBER))
    if RESCUED_DATA not in checked.columns:
        # No extra column: null on every row. A repeated null is allocated, never written
        # (a broadcast literal would write each row's view once the frame is rechunked).
        nulls = pl.repeat(None, checked.height, dtype=pl.String, eager=True)
        checked = checked.with_columns(nulls.alias(RESCUED_DATA))
    checked = _with_violation(_cast_the_rest(checked, records, fast, raw), schema)
    rules_broken = checked.get_column(VIOLATION)
    any_broken = rules_broken.null_count() < rules_broken.len()
    frame = checked.select(
        # A repeated id is a 4-byte code in the batch instead of a 16-byte view (800 MB less
        # at scale 1); each data file's rows are cast back to text when written.
        *(
            pl.col(c).cast(pl.Categorical) if c in schema.low_cardinality else pl.col(c)
            for c in schema.column_names
        ),
        RESCUED_DATA,
        *evolved,
        # A file's constants are literals: Polars keeps one value, not one per row.
        pl.lit(source.key, pl.Categorical).alias(SOURCE_FILE),
        pl.lit(source.checksum, pl.Categorical).alias(SOURCE_CHECKSUM),
        pl.lit(source.ordinal, pl.Int64).alias(FILE_ORDINAL),
        # So are, in a file whose rows all pass (most files), the rule index and the line
        # numbers, which only a quarantined row needs: 390 MB less at scale 1, where every
        # source frame is held until the batch is written.
        LINE_NUMBER if any_broken else pl.lit(None, pl.Int64).alias(LINE_NUMBER),
        rules_broken if any_broken else pl.lit(None, pl.Int32).alias(VIOLATION),
    )
    raw_records = _raw_records(
        rules_broken, checked.get_column(RAGGED_RECORD), records, columns, width
    )
    # One chunk per column: the batch then has one per file in every column, and filters
    # on it need not realign (copy) columns of different chunkings.
    return frame.with_columns(raw_records.alias(RAW_RECORD)).rechunk()


def _non_blank(raw: pl.Expr) -> pl.Expr:
    """Whether raw text is neither null nor empty (never null)."""
    return (raw.str.len_bytes() > 0).fill_null(False)


#: Bytes that begin a character Python's ``str.strip()`` removes, but a line break (the
#: UTF-8 lead bytes of the non-ASCII ones included), and ``+``.
_PADDING_BYTES = (
    b" ", b"\t", b"\r", b"\x0b", b"\x0c", b"\x1c", b"\x1d", b"\x1e", b"\x1f",
    b"\xc2", b"\xe1", b"\xe2", b"\xe3", b"+",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class _Scan:
    """What the bytes of a file show about all its cells."""

    #: No quote: only a quoted field can hold a line break, so each record is one line.
    one_line_per_record: bool = False
    #: No quote and none of :data:`_PADDING_BYTES`: no value needs trimming (no cell holds
    #: whitespace) and no value holds a sign.
    unpadded: bool = False


#: How much of a file :func:`_scan` reads at a time.
_SCAN_CHUNK_BYTES = 8 << 20


def _scan(source: SourceFile) -> _Scan:
    """Scan a local file's bytes (a remote one is not read twice: nothing is known).

    ``bytearray.find`` of one byte is a ``memchr``: a byte is found in the whole file far
    faster than Polars trims or counts line breaks in every cell. The file is read, not
    mapped: a file truncated meanwhile must not crash the process (``SIGBUS``).
    """
    path = local_path(source.uri)
    if path is None:
        return _Scan()
    buffer = bytearray(_SCAN_CHUNK_BYTES)
    padded = False
    try:
        with open(path, "rb", buffering=0) as handle:
            while size := handle.readinto(buffer):
                if buffer.find(b'"', 0, size) != -1:
                    return _Scan()
                padded = padded or any(buffer.find(b, 0, size) != -1 for b in _PADDING_BYTES)
    except OSError:
        # Unreadable now (it was read a moment ago): assume nothing.
        return _Scan()
    return _Scan(one_line_per_record=True, unpadded=not padded)


@dataclass(frozen=True, slots=True)
class _FastCast:
    """How one typed column is cast on every row (see :func:`fast_cast`)."""

    column: str
    type: ColumnType
    value: pl.Expr
    spelled: pl.Expr | None
    #: Another cast this one is decided only with (a date read as its timestamp's prefix).
    after: tuple[str, ColumnType] | None = None


def _fast_casts(
    schema: TableSchema,
    casts: Sequence[tuple[str, ColumnType]],
    raw: Callable[[str], pl.Expr],
    unpadded: bool,
) -> list[_FastCast]:
    fast: list[_FastCast] = []
    for column, column_type in casts:
        value, spelled = fast_cast(raw(column), column_type, unpadded=unpadded)
        fast.append(_FastCast(column, column_type, value, spelled))
    if schema.derived_date is None:
        return fast
    date_column, ts_column = schema.derived_date
    timestamp = (ts_column, ColumnType.TIMESTAMP)
    if (date_column, ColumnType.DATE) not in casts or timestamp not in casts:
        return fast
    # A date that is the first 10 characters of its row's plain timestamp (decided) is
    # spelled YYYY-MM-DD and a real date: cheaper to see than its pattern.
    date, ts = raw(date_column), raw(ts_column)
    prefix = _FastCast(
        date_column,
        ColumnType.DATE,
        date.str.to_date("%Y-%m-%d", strict=False),
        (date.str.len_bytes() == 10) & ts.str.starts_with(date),
        after=timestamp,
    )
    return [prefix if (f.column, f.type) == (date_column, ColumnType.DATE) else f for f in fast]


def _undecided(fast: Sequence[_FastCast]) -> pl.Expr:
    """Whether a row holds a non-blank typed value :func:`fast_cast` does not decide."""
    decided: dict[tuple[str, ColumnType], pl.Expr] = {}
    # A cast decided with another one comes after it.
    for f in sorted(fast, key=lambda f: f.after is not None):
        spelled = None if f.spelled is None else pl.col(_spelled(f.column, f.type))
        if f.after is not None and spelled is not None:
            spelled = spelled & decided[f.after]
        decided[(f.column, f.type)] = fast_decided(pl.col(_cast(f.column, f.type)), f.type, spelled)
    return pl.any_horizontal(
        pl.lit(False), *(pl.col(_present(c)) & ~d for (c, _), d in decided.items())
    )


def _cast_the_rest(
    checked: pl.DataFrame,
    records: pl.DataFrame,
    fast: Sequence[_FastCast],
    raw: Callable[[str], pl.Expr],
) -> pl.DataFrame:
    """Cast the typed values :func:`fast_cast` left undecided, and flag present values.

    Those are the non-blank values it cannot vouch for: padded, spelled otherwise, or not
    of their type. Only their rows are trimmed and cast by :func:`cast_text` (rare in clean
    data, and the costly timestamp parse then runs on a few rows). Afterwards each typed
    column's ``_present`` flag says whether its normalised text is not null.
    """
    undecided = checked.get_column(_UNDECIDED)
    rows = undecided.arg_true()
    checked = checked.drop(_UNDECIDED)
    if rows.len() == 0:
        return checked
    typed = list(dict.fromkeys(f.column for f in fast))
    timestamps = [f.column for f in fast if f.type is ColumnType.TIMESTAMP]
    exact = (
        records[rows]
        .lazy()
        .select(*(normalized(raw(c)).alias(c) for c in typed))
        .with_columns(timestamp_parts(pl.col(c)).alias(_parts(c)) for c in timestamps)
        .select(
            *(
                cast_text(
                    pl.col(f.column),
                    f.type,
                    pl.col(_parts(f.column)) if f.type is ColumnType.TIMESTAMP else None,
                )
                .cast(checked.schema[_cast(f.column, f.type)])
                .alias(_cast(f.column, f.type))
                for f in fast
            ),
            *(pl.col(c).is_not_null().alias(_present(c)) for c in typed),
        )
        .collect()
    )
    return checked.with_columns(
        checked.get_column(name).scatter(rows, exact.get_column(name)) for name in exact.columns
    )


def _with_violation(checked: pl.DataFrame, schema: TableSchema) -> pl.DataFrame:
    """``checked`` with :data:`VIOLATION` and the typed business columns (date derived)."""
    casts = casts_needed(schema.rules, schema.types)
    typed = list(dict.fromkeys(c for c, _ in casts))

    def cast(column: str, column_type: ColumnType) -> pl.Expr:
        return pl.col(_cast(column, column_type))

    values: dict[str, pl.Expr] = {
        c.name: cast(c.name, c.type).cast(polars_dtype(c.type))
        for c in schema.columns
        if c.type is not ColumnType.STRING
    }
    if schema.derived_date is not None:
        # Derived on every row; only valid rows survive, and their values are the same.
        date_column, ts_column = schema.derived_date
        values[date_column] = pl.coalesce(
            values[date_column], cast(ts_column, ColumnType.TIMESTAMP).dt.date()
        )
    return (
        checked.lazy()
        # The rules read a typed column's text only for whether it is null.
        .with_columns(pl.when(pl.col(_present(c))).then(pl.lit(True)).alias(c) for c in typed)
        .with_columns(first_violation_index(schema.rules, schema.types, cast).alias(VIOLATION))
        .with_columns(value.alias(name) for name, value in values.items())
        .collect()
    )


def _ragged(width: int, total: int) -> pl.Expr:
    """Whether a record has a non-empty field past the header (``FieldCount``)."""
    past = [pl.col(_cell(i)) != "" for i in range(width, total)]
    return pl.any_horizontal(past) if past else pl.lit(False)


def _raw_records(
    violation: pl.Series,
    ragged: pl.Series,
    records: pl.DataFrame,
    columns: Sequence[HeaderColumn],
    width: int,
) -> pl.Series:
    """The raw record (JSON) of each row that breaks a rule; null for the others."""
    # Only the rows that break a rule need their raw record, and they are few: encode
    # those, and leave every other row null.
    broken = violation.is_not_null().arg_true()
    cells = records[broken].with_columns(ragged[broken].alias(RAGGED_RECORD))
    total = records.width
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
    return pl.repeat(None, violation.len(), dtype=pl.String, eager=True).scatter(broken, raw)


def _cell(position: int) -> str:
    return f"_Cell{position}"


def _cast(column: str, column_type: ColumnType) -> str:
    return f"_Cast{column_type.value}_{column}"


def _spelled(column: str, column_type: ColumnType) -> str:
    return f"_Spelled{column_type.value}_{column}"


def _present(column: str) -> str:
    return f"_Present_{column}"


def _parts(column: str) -> str:
    return f"_Parts_{column}"


def _has_records(rows: pl.DataFrame, width: int) -> bool:
    blank = pl.all_horizontal(normalized(pl.col(_cell(i))).is_null() for i in range(width))
    return bool(rows.select((~blank).any()).item())


def _chunks(uri: str, storage_options: Mapping[str, str]) -> Generator[bytes, None, None]:
    """The file's bytes, :data:`HEADER_CHUNK_BYTES` at a time, read only as they are taken.

    A remote object is opened with pyarrow and read as a stream: each chunk is one ranged
    GET, so a check that stops at the header fetches the header, never the whole object.
    """
    path = local_path(uri)
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
