"""SQL over the lake's Delta tables with Spark SQL, returning Arrow tables like DuckDB does."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

import pyarrow as pa

from ecommerce_lakehouse.application.query_tables import (
    NOT_CREATED_YET,
    check_version,
    statement_refused,
    tables_to_read,
    version_unreadable,
)
from ecommerce_lakehouse.application.tables import TABLE_NAMES, table_ref
from ecommerce_lakehouse.domain.errors import ConfigurationError, LakehouseError, first_line
from ecommerce_lakehouse.ports.storage import ObjectStorage
from ecommerce_lakehouse_spark.jobs import SparkJobCounter
from ecommerce_lakehouse_spark.session import SESSION_SETTINGS

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

#: Settings of the sessions queries run in, on top of the engine's.
QUERY_SETTINGS: Mapping[str, str] = {
    # Errors instead of NULLs for invalid casts and overflows, like DuckDB and Athena.
    "spark.sql.ansi.enabled": "true",
    # No `SELECT * FROM csv.`/any/path``: queries read the lake's tables only.
    "spark.sql.runSQLOnFiles": "false",
}

#: Commands of the parsed plan that only read (metadata, or a plan they do not run).
_READ_COMMAND_PREFIXES = ("Show", "Describe")
_READ_COMMANDS = frozenset({"ExplainCommand"})
_LOGICAL = "org.apache.spark.sql.catalyst.plans.logical."

_MISSING_TABLE = re.compile(r"table or view `?([\w.]+?)`? cannot be found", re.IGNORECASE)
_ERROR_CLASS = re.compile(r"^\[([A-Z0-9_.]+)\]\s*")
_SYNTAX_ERROR = "syntax error"


class SparkSqlQueryService:
    """Runs Spark SQL over the lake's curated and audit Delta tables.

    Every call runs in a fresh child session of the engine's (same Spark context, own
    settings and temporary views), so each query sees the tables' latest commits (or the
    versions pinned by ``as_of``), ANSI mode never leaks into the engine, and nothing
    leaks between calls. The session time zone is UTC: ``CAST(timestamp AS DATE)`` is the
    UTC date, and timestamps come back as ``timestamp[us, tz=UTC]``.

    Args:
        storage: the lake's storage; tables are read at ``storage.uri(key)``.
        session: the Spark session (with Delta Lake) queries derive their sessions from.
    """

    def __init__(self, storage: ObjectStorage, session: SparkSession) -> None:
        self._storage = storage
        self._session = session
        self._jobs = SparkJobCounter(session)

    def sql(self, query: str, *, as_of: Mapping[str, int] | None = None) -> pa.Table:
        """Run one query over the catalogue's tables and the audit tables.

        Args:
            query: Spark SQL.
            as_of: Delta versions to read, by table name (time travel); other tables are
                read at their latest version.

        Returns:
            The result as an Arrow table, in the Arrow types DuckDB gives the same columns.

        Raises:
            ConfigurationError: the query is empty, ``as_of`` names an unknown table, a
                table not created yet or a version the table does not have.
            LakehouseError: the query is not one read-only statement, or it failed; the
                message is Spark's, on one line.
        """
        if not query.strip():
            raise ConfigurationError("empty query: pass one SELECT")
        try:
            with self._jobs.step("sql", "query"):
                return self._sql(query, as_of)
        finally:
            self._jobs.report("sql", ("query",), detail=" ".join(query.split())[:80])

    def _sql(self, query: str, as_of: Mapping[str, int] | None) -> pa.Table:
        from py4j.protocol import Py4JJavaError
        from pyspark.errors import PySparkException

        to_read = tables_to_read(query, as_of)
        session = self._query_session()
        try:
            _check_read_only(session, query)
        except (PySparkException, Py4JJavaError) as error:
            raise LakehouseError(self._explain(error, set())) from None
        registered: set[str] = set()
        for name, version in to_read.items():
            frame = self._table(session, name, version)
            if frame is not None:
                frame.createOrReplaceTempView(name)
                registered.add(name)
            elif version is not None:
                raise version_unreadable(name, version, NOT_CREATED_YET)
            # A table not created yet stays unregistered; _explain names it if queried.
        try:
            return to_arrow(session.sql(query))
        except (PySparkException, Py4JJavaError) as error:
            raise LakehouseError(self._explain(error, registered)) from None

    def _query_session(self) -> SparkSession:
        session = self._session.newSession()
        for key, value in {**SESSION_SETTINGS, **QUERY_SETTINGS}.items():
            session.conf.set(key, value)
        return session

    def _table(self, session: SparkSession, name: str, version: int | None) -> DataFrame | None:
        """The table as of ``version`` (latest when None), or None when it does not exist."""
        from delta.tables import DeltaTable
        from py4j.protocol import Py4JJavaError
        from pyspark.errors import PySparkException

        uri = self._uri(name)
        if not DeltaTable.isDeltaTable(session, uri):
            return None
        reader = session.read.format("delta")
        if version is not None:
            row = DeltaTable.forPath(session, uri).history(1).select("version").first()
            check_version(name, version, 0 if row is None else int(row[0]))
            reader = reader.option("versionAsOf", version)
        try:
            return reader.load(uri)
        except (PySparkException, Py4JJavaError) as error:
            if version is not None:
                # e.g. the log of an old version was cleaned up by a checkpoint and vacuum.
                raise version_unreadable(name, version, _message(error)) from None
            raise LakehouseError(f"cannot open table '{name}': {_message(error)}") from None

    def _explain(self, error: BaseException, registered: set[str]) -> str:
        from pyspark.errors import ParseException

        message = _message(error)
        if isinstance(error, ParseException):
            # "[PARSE_SYNTAX_ERROR] Syntax error at or near ..." reads, like DuckDB's
            # message, "syntax error at or near ...".
            reason = _ERROR_CLASS.sub("", message)
            if reason.lower().startswith(_SYNTAX_ERROR):
                return _SYNTAX_ERROR + reason[len(_SYNTAX_ERROR) :]
            return f"{_SYNTAX_ERROR}: {reason}"
        missing = _MISSING_TABLE.search(message)
        if missing:
            name = missing.group(1).lower()
            if name in TABLE_NAMES and name not in registered:
                return (
                    f"table '{name}' has not been created yet (no Delta table at {self._uri(name)})"
                )
        return message

    def _uri(self, name: str) -> str:
        return table_ref(self._storage, name).uri


def to_arrow(frame: DataFrame) -> pa.Table:
    """Collect a Spark result as an Arrow table.

    Spark's own Arrow collection gives the types DuckDB gives for the product's columns
    (``string``, ``int32``/``int64``, ``double``, ``bool``, ``date32``, and timestamps as
    ``timestamp[us, tz=UTC]`` in a UTC session); fields are nullable, as DuckDB's are.
    """
    from pyspark.sql.pandas.types import to_arrow_schema

    schema = to_arrow_schema(frame.schema)
    schema = pa.schema([field.with_nullable(True) for field in schema])
    # The Arrow stream of the driver, without pandas (PySpark 3.5 has no public toArrow).
    batches = frame._collect_as_arrow()
    if not batches:
        return schema.empty_table()
    return pa.Table.from_batches(batches).cast(schema)


#: What may not appear in a query's parsed plan: script transforms and the functions that
#: call Java methods (unresolved functions print as ``'name(``).
_UNSAFE_IN_PLAN = re.compile(r"(ScriptTransformation|'(?:reflect|java_method|try_reflect)\()", re.I)


def _check_read_only(session: SparkSession, query: str) -> None:
    """Refuse anything but one query, judged on the plan Spark's own parser makes of it.

    ``session.sql`` runs a command (INSERT, CREATE, SET, ADD JAR, VACUUM, ...) as soon as it
    is called, so the statement is parsed, not run, first.

    Raises:
        LakehouseError: the statement is not a query, SHOW, DESCRIBE or EXPLAIN.
        pyspark.errors.ParseException: it does not parse (more than one statement included).
    """
    java_class = session._jvm.java.lang.Class  # type: ignore[union-attr]
    plan = session._jsparkSession.sessionState().sqlParser().parsePlan(query)
    with_cte = java_class.forName(_LOGICAL + "UnresolvedWith")
    while with_cte.isInstance(plan):  # WITH ... is a query only if what it wraps is one
        plan = plan.child()
    name = str(plan.getClass().getSimpleName())
    command = java_class.forName(_LOGICAL + "Command").isInstance(plan)
    statement = java_class.forName(_LOGICAL + "ParsedStatement").isInstance(plan)
    if command and (name in _READ_COMMANDS or name.startswith(_READ_COMMAND_PREFIXES)):
        return
    if command or statement:
        raise statement_refused(name.rstrip("$"))
    # A query can still run a program (SELECT TRANSFORM ... USING) or call static Java
    # methods (reflect, java_method); Spark has no setting to turn either off.
    found = _UNSAFE_IN_PLAN.search(str(plan.treeString()))
    if found:
        raise LakehouseError(
            f"SQL here is read-only: {found.group(1).strip(chr(39) + '(')} is refused in queries"
        )


def _message(error: BaseException) -> str:
    """The first meaningful line of a Spark error (the Java one for unconverted errors)."""
    from py4j.protocol import Py4JJavaError

    text = str(error)
    if isinstance(error, Py4JJavaError):
        text = str(error.java_exception.getMessage() or error.java_exception.toString())
    return first_line(text, default=type(error).__name__)
