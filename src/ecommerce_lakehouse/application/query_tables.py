"""Which tables a SQL query reads, and at which Delta version, whatever the engine.

The query services (DuckDB, Spark SQL) register only the tables a query names, each at
its latest version or at the version ``as_of`` pins it to; the rules and their messages
live here so that every engine applies them alike.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

from ecommerce_lakehouse.application.tables import TABLE_NAMES
from ecommerce_lakehouse.domain.errors import ConfigurationError, LakehouseError
from ecommerce_lakehouse.ports.engine import CommitRecord

#: The reason :func:`version_unreadable` gives for a pinned table that does not exist yet.
NOT_CREATED_YET = "the table has not been created yet"


def tables_to_read(
    query: str, as_of: Mapping[str, int] | None, tables: Iterable[str] = TABLE_NAMES
) -> dict[str, int | None]:
    """The tables a query reads, each with the Delta version to read it at.

    A table is read when ``as_of`` pins it or when the query mentions it (see
    :func:`mentions`); the others are left out, which keeps each call cheap. A query
    that lists tables (:func:`lists_tables`) reads every table.

    Args:
        query: the SQL text.
        as_of: Delta versions to read, by table name (time travel); None or empty reads
            every table at its latest version.
        tables: the tables the engine can read, in the order they are to be registered.

    Returns:
        The tables to read, in the order of ``tables``, each mapped to its pinned version,
        or to None for the latest.

    Raises:
        ConfigurationError: ``as_of`` names a table that is not one of ``tables``.
    """
    names = list(tables)
    pinned = dict(as_of or {})
    unknown = sorted(set(pinned) - set(names))
    if unknown:
        raise ConfigurationError(
            f"as_of names unknown table(s) {', '.join(unknown)} "
            f"(tables: {', '.join(sorted(names))})"
        )
    every = lists_tables(query)
    return {
        name: pinned.get(name) for name in names if every or name in pinned or mentions(query, name)
    }


#: ``SHOW TABLES`` names no table yet lists them all.
_SHOW_TABLES = re.compile(r"SHOW\s+(?:ALL\s+)?TABLES(?:\s+FROM\s+\w+)?", re.IGNORECASE)
#: Queries that list tables without naming one: every table is read for them too.
_LISTS_TABLES = re.compile(
    r"\bSHOW\s+(?:ALL\s+)?TABLES\b|\binformation_schema\b|\bduckdb_(?:tables|views)\b",
    re.IGNORECASE,
)
_COMMENT = re.compile(r"--[^\n]*|/\*.*?\*/", re.DOTALL)


def is_show_tables(query: str) -> bool:
    """Whether ``query`` is ``SHOW TABLES`` (``SHOW ALL TABLES``, ``… FROM <schema>``).

    Comments and trailing semicolons aside. Every table is read for it, and an engine that
    registers helper views of its own lists the lake's tables only.
    """
    return _SHOW_TABLES.fullmatch(_bare(query)) is not None


def lists_tables(query: str) -> bool:
    """Whether ``query`` lists tables without naming them (SHOW TABLES, information_schema)."""
    return _LISTS_TABLES.search(_COMMENT.sub(" ", query)) is not None


def _bare(query: str) -> str:
    return _COMMENT.sub(" ", query).strip().rstrip(";").strip()


def mentions(query: str, name: str) -> bool:
    """Whether a query names a table: the name as a whole word, in any case.

    A false positive (the name inside a string literal or a comment) only makes an engine
    register one table too many.

    Args:
        query: the SQL text.
        name: a table name.

    Returns:
        True when ``name`` appears in ``query`` as a word of its own.
    """
    return re.search(rf"\b{re.escape(name)}\b", query, re.IGNORECASE) is not None


def check_version(name: str, version: int, latest: int) -> None:
    """Refuse a pinned version the table does not have.

    Args:
        name: the table name.
        version: the version ``as_of`` pins the table to.
        latest: the table's latest version.

    Raises:
        ConfigurationError: ``version`` is not between 0 and ``latest``.
    """
    if not 0 <= version <= latest:
        raise ConfigurationError(
            f"table '{name}' has no version {version} (versions 0 to {latest} exist)"
        )


def version_unreadable(name: str, version: int, reason: str) -> ConfigurationError:
    """The error for a pinned version that cannot be read.

    Args:
        name: the table name.
        version: the version ``as_of`` pins the table to.
        reason: why it cannot be read, on one line.

    Returns:
        The error to raise.
    """
    return ConfigurationError(f"cannot read table '{name}' as of version {version}: {reason}")


def version_at(name: str, commits: Sequence[CommitRecord], moment: datetime) -> int:
    """The version a table had at ``moment``: its newest commit made at or before it.

    As Delta's ``TIMESTAMP AS OF``: a date alone is that day's midnight, UTC.

    Args:
        name: the table name (for the error).
        commits: the table's history, any order.
        moment: an aware instant.

    Raises:
        ConfigurationError: the table did not exist yet at ``moment`` (or has no history).
    """
    dated = [c for c in commits if c.timestamp is not None]
    before = [c for c in dated if c.timestamp is not None and c.timestamp <= moment]
    if before:
        return max(before, key=lambda c: c.version).version
    first = min((c.timestamp for c in dated if c.timestamp is not None), default=None)
    since = f" (its first commit is of {first.isoformat()})" if first else ""
    raise ConfigurationError(f"table '{name}' has no version at {moment.isoformat()}{since}")


def statement_refused(kind: str) -> LakehouseError:
    """The error of every query service for a statement that is not a query."""
    return LakehouseError(f"SQL here is read-only: {kind} statements are refused, queries only")
