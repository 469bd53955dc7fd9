"""SQL over the lake's Delta tables on a Trino (or Starburst) cluster, with the ``trino`` client."""

from __future__ import annotations

import json
import logging
import re
import time as time_module
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time
from typing import Any

import pyarrow as pa
import sqlglot
import trino
from sqlglot import exp
from sqlglot.errors import ParseError, SqlglotError
from sqlglot.optimizer.scope import traverse_scope

from ecommerce_lakehouse.application.query_tables import (
    NOT_CREATED_YET,
    check_version,
    statement_refused,
    tables_to_read,
    version_unreadable,
)
from ecommerce_lakehouse.application.tables import TABLE_NAMES
from ecommerce_lakehouse.domain.errors import ConfigurationError, LakehouseError, first_line
from ecommerce_lakehouse_trino.settings import TrinoSettings

#: Seconds waited before asking again a query refused for want of an active node.
NO_NODES_WAITS = (1.0, 2.0, 4.0)

#: sqlglot's dialect of the statements checked and pinned before Trino sees them.
DIALECT = "trino"

#: Commands sqlglot does not model but Trino runs read-only (``SHOW ...``, ``DESCRIBE
#: INPUT``/``OUTPUT``); ``EXPLAIN`` is judged by what it explains.
_READ_COMMANDS = ("SHOW", "DESCRIBE")
#: ``EXPLAIN [ANALYZE] [VERBOSE] [(options)]`` before the statement it explains (after any
#: leading comments).
_EXPLAIN = re.compile(
    r"(?:\s|--[^\n]*(?:\n|$)|/\*.*?\*/)*EXPLAIN(?:\s+ANALYZE)?(?:\s+VERBOSE)?\s*(?:\([^)]*\))?",
    re.IGNORECASE | re.DOTALL,
)
_MISSING_TABLE = re.compile(r"Table '(?:[^']*\.)?([^'.]+)' does not exist", re.IGNORECASE)
#: The reason of a failed connection inside requests' long message.
_ERRNO = re.compile(r"\[Errno -?\d+\] ([^'\")\]]+)")


class _CommandFallbackFilter(logging.Filter):
    # sqlglot logs a warning for each statement it parses as a generic command (SHOW,
    # EXPLAIN, CALL); they are judged here, so the warning would only reach a user's
    # terminal (Python's last-resort handler) as noise.
    def filter(self, record: logging.LogRecord) -> bool:
        return "Falling back to parsing as a 'Command'" not in record.getMessage()


logging.getLogger("sqlglot").addFilter(_CommandFallbackFilter())


@dataclass(frozen=True, slots=True)
class _Statement:
    """A parsed statement and where its text starts in the query."""

    tree: exp.Expr
    offset: int


class TrinoQueryService:
    """Runs SQL on a Trino cluster over the schema that holds the lake's tables.

    Each query runs in its own Trino session whose catalog and schema are the lake's, so
    ``orders`` or ``ingest_log`` name the lake's tables as with the other query services,
    and whose time zone is UTC: ``CAST(timestamp AS DATE)`` is the UTC date and timestamps
    come back in UTC. Which tables the schema holds is the cluster's business: a Delta
    Lake catalog on the Glue Data Catalog sees the tables a run registered; for a
    directory lake the catalog must read the same directory.

    Only one read-only statement is sent (a query, ``SHOW``, ``DESCRIBE`` or ``EXPLAIN``
    of a query), as sqlglot parses it; anything else is refused before the cluster sees
    it. ``as_of`` pins tables to Delta versions with Trino's ``FOR VERSION AS OF``, added
    after each reference to a pinned table (the query's text is otherwise sent as it is).

    Args:
        settings: the cluster, catalog, schema and user.
    """

    def __init__(self, settings: TrinoSettings) -> None:
        self._settings = settings

    def sql(self, query: str, *, as_of: Mapping[str, int] | None = None) -> pa.Table:
        """Run one query over the lake's curated and audit tables.

        Args:
            query: Trino SQL; unqualified table names are the lake's tables.
            as_of: Delta versions to read, by table name (time travel); other tables are
                read at their latest version.

        Returns:
            The result as an Arrow table, typed from Trino's column types.

        Raises:
            ConfigurationError: the query is empty, ``as_of`` names an unknown table, a
                table not created yet or a version the table does not have.
            LakehouseError: the query is not one read-only statement, the cluster cannot
                be reached, or the query failed; the message is Trino's, on one line.
        """
        statements = _read_only_statements(query)
        pins = {n: v for n, v in tables_to_read(query, as_of).items() if v is not None}
        connection = self._open()
        try:
            cursor = connection.cursor()
            for name, version in pins.items():
                latest = self._latest_version(cursor, name)
                if latest is None:
                    raise version_unreadable(name, version, NOT_CREATED_YET)
                check_version(name, version, latest)
            text = _pinned(query, statements, pins).rstrip().rstrip(";")
            for wait in (*NO_NODES_WAITS, None):
                try:
                    cursor.execute(text)
                    rows = cursor.fetchall()
                    break
                except trino.exceptions.TrinoUserError as error:
                    raise LakehouseError(self._explain(error)) from None
                except Exception as error:  # the client's and requests' errors, of many kinds
                    # A cluster whose workers are (re)joining refuses a query it has not run
                    # yet: a read-only query is asked again a few times before giving up.
                    if wait is None or getattr(error, "error_name", None) != "NO_NODES_AVAILABLE":
                        raise LakehouseError(self._failed(error)) from None
                    time_module.sleep(wait)
                    cursor = connection.cursor()
            return result_table(cursor.description or [], rows)
        finally:
            connection.close()

    def _open(self) -> Any:
        settings = self._settings
        auth = (
            trino.auth.BasicAuthentication(settings.user, settings.password)
            if settings.password is not None
            else trino.constants.DEFAULT_AUTH
        )
        return trino.dbapi.connect(  # type: ignore[no-untyped-call]
            host=settings.host,
            port=settings.port,
            http_scheme=settings.scheme,
            user=settings.user,
            auth=auth,
            catalog=settings.catalog,
            schema=settings.schema,
            timezone="UTC",
            source="ecommerce-lakehouse",
            session_properties={"query_max_run_time": f"{settings.timeout_seconds:g}s"},
        )

    def _latest_version(self, cursor: Any, name: str) -> int | None:
        """The table's latest Delta version, or None when Trino finds no such table."""
        try:
            # The Delta Lake connector's history table: one row per commit.
            cursor.execute(f'SELECT max(version) FROM "{name}$history"')
            [(latest,)] = cursor.fetchall()
        except trino.exceptions.TrinoUserError as error:
            if error.error_name == "TABLE_NOT_FOUND":
                return None
            raise LakehouseError(self._explain(error)) from None
        except Exception as error:
            raise LakehouseError(self._failed(error)) from None
        return None if latest is None else int(latest)

    def _explain(self, error: trino.exceptions.TrinoUserError) -> str:
        message = first_line(error.message, default=error.error_name or "query failed")
        if error.error_name == "SYNTAX_ERROR":
            # "line 1:1: mismatched input 'SELEC'" reads like the other engines' messages.
            return f"syntax error: {message}"
        missing = _MISSING_TABLE.search(message)
        if error.error_name == "TABLE_NOT_FOUND" and missing:
            name = missing.group(1).lower()
            if name in TABLE_NAMES:
                return (
                    f"table '{name}' has not been created yet (Trino finds no "
                    f"{self._settings.catalog}.{self._settings.schema}.{name})"
                )
        return message

    def _failed(self, error: Exception) -> str:
        if isinstance(error, trino.exceptions.TrinoQueryError):
            return first_line(error.message, default=error.error_name or "query failed")
        text = str(error)
        if isinstance(error, trino.exceptions.TrinoConnectionError):
            reason = _ERRNO.search(text)
            return (
                f"cannot reach Trino at {self._settings.url}: "
                f"{reason.group(1).strip() if reason else first_line(text)}"
            )
        if isinstance(error, trino.exceptions.HttpError):
            return f"Trino at {self._settings.url} refused the request: {first_line(text)}"
        return f"Trino query failed: {first_line(text, default=type(error).__name__)}"


def _read_only_statements(query: str) -> list[_Statement]:
    """Refuse anything but one read-only statement, as sqlglot's Trino dialect parses it.

    Returns:
        The statement, and the statement an ``EXPLAIN`` explains, each with where its
        text starts (where ``as_of`` pins go).

    Raises:
        ConfigurationError: ``query`` holds no statement.
        LakehouseError: it does not parse, holds more than one statement, or one that
            is not a query, ``SHOW``, ``DESCRIBE`` or ``EXPLAIN`` of one.
    """
    statements = _parse(query)
    if not statements:
        raise ConfigurationError("empty query: pass one SELECT")
    if len(statements) > 1:
        raise LakehouseError(f"one statement at a time, not {len(statements)}")
    return _read_only(query, statements[0], 0)


def _read_only(query: str, tree: exp.Expr, offset: int) -> list[_Statement]:
    if isinstance(tree, exp.Query | exp.Values | exp.Describe):
        return [_Statement(tree, offset)]
    if isinstance(tree, exp.Command):
        kind = str(tree.this).upper()
        if kind.startswith(_READ_COMMANDS):
            return [_Statement(tree, offset)]
        explain = _EXPLAIN.match(query, offset)
        if kind == "EXPLAIN" and explain:
            # EXPLAIN ANALYZE runs what it explains: that must be read-only too.
            inner = _parse(query[explain.end() :])
            if len(inner) != 1:
                raise LakehouseError("EXPLAIN explains one statement")
            return [_Statement(tree, offset), *_read_only(query, inner[0], explain.end())]
    else:
        kind = type(tree).__name__.upper()
    raise statement_refused(kind)


def _parse(text: str) -> list[exp.Expr]:
    try:
        return [s for s in sqlglot.parse(text, dialect=DIALECT) if s is not None]
    except ParseError as error:
        raise LakehouseError(f"syntax error: {_parse_reason(error)}") from None
    except SqlglotError as error:
        raise LakehouseError(f"syntax error: {first_line(str(error))}") from None


def _parse_reason(error: ParseError) -> str:
    if not error.errors:
        return first_line(str(error), default="the query does not parse")
    found = error.errors[0]
    near = str(found.get("highlight") or "").strip()
    where = f"line {found.get('line')}:{found.get('col')}"
    description = first_line(str(found.get("description") or ""), default="unexpected token")
    return f"{where}: {description}" + (f" near {near!r}" if near else "")


def _pinned(query: str, statements: Sequence[_Statement], pins: Mapping[str, int]) -> str:
    """``query`` with ``FOR VERSION AS OF n`` after each reference to a pinned table.

    A reference is an unqualified table name, in a query, that is not a ``WITH`` query's
    name in its scope; one that already has a version clause is left as it is. ``SHOW``
    and ``DESCRIBE`` read the latest version (Trino pins no version there).
    """
    if not pins:
        return query
    ends: dict[int, int] = {}
    for statement in statements:
        if not isinstance(statement.tree, exp.Query):
            continue
        for table in _table_references(statement.tree):
            version = pins.get(table.name.lower())
            if version is None or table.db or table.catalog or table.args.get("version"):
                continue
            end = table.this.meta.get("end")
            if end is None:
                raise LakehouseError(f"cannot pin table '{table.name}' in this query to a version")
            ends[statement.offset + int(end) + 1] = version
    for position in sorted(ends, reverse=True):
        query = f"{query[:position]} FOR VERSION AS OF {ends[position]}{query[position:]}"
    return query


def _table_references(tree: exp.Expr) -> Iterable[exp.Table]:
    """The tables a query reads: table names that are not ``WITH`` queries' names."""
    try:
        scopes = traverse_scope(tree)
    except SqlglotError:
        # A query sqlglot cannot scope: every table name that no WITH query takes.
        ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
        yield from (t for t in tree.find_all(exp.Table) if t.name.lower() not in ctes)
        return
    for scope in scopes:
        for table in scope.tables:
            if scope.sources.get(table.alias_or_name) is table:
                yield table


def result_table(description: Sequence[Sequence[Any]], rows: Sequence[Sequence[Any]]) -> pa.Table:
    """An Arrow table from a Trino result: its DB-API description and the client's rows.

    Booleans, integers, ``real``/``double``, ``decimal(p, s)``, ``date``, ``varbinary``,
    text types and arrays of them get their Arrow types; ``timestamp(p)`` is
    ``timestamp[ms]`` up to ``p`` 3, else ``timestamp[us]`` (Python's precision), with
    ``UTC`` for ``timestamp(p) with time zone``. Other types (``json``, ``uuid``, maps,
    rows, intervals, ...) are text: JSON for structures, the client's text otherwise.
    """
    names = [str(column[0]) for column in description]
    arrays = [
        _array(str(column[1]), [row[i] for row in rows]) for i, column in enumerate(description)
    ]
    return pa.Table.from_arrays(arrays, names=names) if names else pa.table({})


_SCALARS: Mapping[str, pa.DataType] = {
    "boolean": pa.bool_(),
    "tinyint": pa.int8(),
    "smallint": pa.int16(),
    "integer": pa.int32(),
    "bigint": pa.int64(),
    "real": pa.float32(),
    "double": pa.float64(),
    "date": pa.date32(),
    "varbinary": pa.binary(),
}
_TEXT = re.compile(r"(?:varchar|char)(?:\(\d+\))?")
_DECIMAL = re.compile(r"decimal\((\d+),\s*(\d+)\)")
_TIMESTAMP = re.compile(r"timestamp(?:\((\d+)\))?( with time zone)?")
_ARRAY = re.compile(r"array\((.*)\)")


def arrow_type(trino_type: str) -> pa.DataType | None:
    """The Arrow type of a Trino type, or None for the types kept as text."""
    kind = trino_type.strip().lower()
    if kind in _SCALARS:
        return _SCALARS[kind]
    if _TEXT.fullmatch(kind):
        return pa.string()
    decimal = _DECIMAL.fullmatch(kind)
    if decimal:
        return pa.decimal128(int(decimal.group(1)), int(decimal.group(2)))
    timestamp = _TIMESTAMP.fullmatch(kind)
    if timestamp:
        precision = int(timestamp.group(1) or 3)
        return pa.timestamp(
            "ms" if precision <= 3 else "us", tz="UTC" if timestamp.group(2) else None
        )
    array = _ARRAY.fullmatch(kind)
    if array:
        element = arrow_type(array.group(1))
        return None if element is None else pa.list_(element)
    return None


def _array(trino_type: str, values: list[Any]) -> pa.Array:
    arrow = arrow_type(trino_type)
    if arrow is None:
        return pa.array([None if v is None else _text(v) for v in values], pa.string())
    if pa.types.is_timestamp(arrow) and arrow.tz is not None:
        values = [_utc(v) for v in values]
    return pa.array(values, arrow)


def _utc(value: Any) -> Any:
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC)
    return value


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list | tuple | dict):
        return json.dumps(value, default=str, ensure_ascii=False)
    if isinstance(value, time | datetime):
        return value.isoformat()
    return str(value)
