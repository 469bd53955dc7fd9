"""Quarantined rows back as the files they came from, ready to fix and drop again.

``quarantine.raw_record`` keeps each refused record as a JSON object keyed by the file's
header as written (values past the header under ``_extra_fields``), so the records of one
file rebuild its header and rows exactly (docs/contract.md#quarantine-export), and give
each record's primary key, which tells whether a later run loaded it
(docs/contract.md#quarantine-list).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from ecommerce_lakehouse.domain.rules import EXTRA_FIELDS_KEY
from ecommerce_lakehouse.domain.schemas import INGESTED_AT, SCHEMAS, TableSchema
from ecommerce_lakehouse.domain.values import normalize_text
from ecommerce_lakehouse.ports.query import QueryService

#: A name part of an exported file: anything else in a source file's name becomes "_".
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


@dataclass(frozen=True, slots=True, kw_only=True)
class QuarantinedFile:
    """The quarantined records of one source file (one content: one checksum).

    Attributes:
        entity: the entity the file fed.
        source_file: its key in ``raw-data/`` when it was read.
        checksum: the SHA-256 of its content.
        header: its header as written.
        rows: each record's values in header order, then any fields past the header.
        lines: each record's line number in the source file.
        rules: how many records each rule refused.
    """

    entity: str
    source_file: str
    checksum: str
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    lines: tuple[int, ...]
    rules: dict[str, int] = field(default_factory=dict)

    @property
    def export_name(self) -> str:
        """``<entity>/<name>.quarantine-<checksum>.csv``: one safe file name per content."""
        name = self.source_file.rsplit("/", 1)[-1]
        stem = name[:-4] if name.lower().endswith(".csv") else name
        safe = _UNSAFE.sub("_", stem)[:120] or "file"
        return f"{_UNSAFE.sub('_', self.entity)}/{safe}.quarantine-{self.checksum[:12]}.csv"


def quarantined_files(
    query: QueryService,
    *,
    entity: str | None = None,
    source_file: str | None = None,
    rule: str | None = None,
    run_id: str | None = None,
) -> list[QuarantinedFile]:
    """The quarantined records matching every filter given, grouped by source file.

    The filters are compared in Python, not written into SQL: a file name is data.

    Args:
        query: the lake's query service.
        entity: only the files of this entity.
        source_file: only this file (its ``raw-data/`` key, or just its name).
        rule: only the records this rule refused.
        run_id: only the records this run quarantined.

    Returns:
        One entry per file content, by source file and checksum; records by line.
    """
    rows = query.sql(
        "SELECT entity, source_file, source_checksum, line_number, rule, run_id, raw_record "
        "FROM quarantine"
    ).to_pylist()
    groups: dict[tuple[str, str, str], list[dict[str, object]]] = {}
    for row in rows:
        source = str(row["source_file"])
        if entity is not None and row["entity"] != entity:
            continue
        if source_file is not None and source_file not in (source, source.rsplit("/", 1)[-1]):
            continue
        if (rule is not None and row["rule"] != rule) or (
            run_id is not None and row["run_id"] != run_id
        ):
            continue
        key = (str(row["entity"]), source, str(row["source_checksum"] or ""))
        groups.setdefault(key, []).append(row)
    return [_rebuilt(*key, sorted(group, key=_line)) for key, group in sorted(groups.items())]


def _line(row: dict[str, object]) -> int:
    line = row["line_number"]
    return line if isinstance(line, int) else 0


def _rebuilt(
    entity: str, source_file: str, checksum: str, rows: list[dict[str, object]]
) -> QuarantinedFile:
    records = [_record(row["raw_record"]) for row in rows]
    # Every record of a file has the file's header as keys; a union in order of appearance
    # still rebuilds it if one record is missing a key.
    header = tuple(dict.fromkeys(k for record in records for k in record if k != EXTRA_FIELDS_KEY))
    values = tuple(
        (
            *(_text(record.get(column)) for column in header),
            *(_text(extra) for extra in _extras(record)),
        )
        for record in records
    )
    rules: dict[str, int] = {}
    for row in rows:
        rules[str(row["rule"])] = rules.get(str(row["rule"]), 0) + 1
    return QuarantinedFile(
        entity=entity,
        source_file=source_file,
        checksum=checksum,
        header=header,
        rows=values,
        lines=tuple(_line(row) for row in rows),
        rules=rules,
    )


def _record(raw: object) -> dict[str, object]:
    try:
        parsed = json.loads(raw) if isinstance(raw, str) else None
    except ValueError:
        parsed = None
    return parsed if isinstance(parsed, dict) else {}


def _extras(record: dict[str, object]) -> list[object]:
    extra = record.get(EXTRA_FIELDS_KEY)
    return extra if isinstance(extra, list) else []


def _text(value: object) -> str:
    return "" if value is None else str(value)


@dataclass(frozen=True, slots=True, kw_only=True)
class QuarantineStatus:
    """One source file's quarantined rows, and how many a later run loaded after all.

    Attributes:
        entity: the entity the file fed.
        source_file: its key in ``raw-data/`` when it was read.
        checksum: the SHA-256 of its content.
        destination: where the run that quarantined the rows moved the file
            (``ingest_log.destination``); None while it is in ``raw-data/``.
        rules: how many records each rule refused.
        quarantined: how many of its records were quarantined.
        resolved: how many of those have their primary key in the curated table, loaded by
            a later run (a fixed copy dropped back, or a later file with the same key).
    """

    entity: str
    source_file: str
    checksum: str
    destination: str | None
    rules: dict[str, int]
    quarantined: int
    resolved: int


def quarantine_status(query: QueryService) -> list[QuarantineStatus]:
    """Every source file with quarantined rows: where it went, and what was resolved since.

    The counts by file and rule are one grouped query. Then, per entity, only the rows a
    later load could have resolved are read (quarantined before the table's last load),
    their keys taken from ``raw_record`` as the readers match the header (trimmed,
    lower-cased), with the table's keys loaded after the entity's first quarantined row.

    Args:
        query: the lake's query service.

    Returns:
        One entry per file content, by entity, source file and checksum.
    """
    groups: dict[tuple[str, str, str], dict[str, Any]] = {}
    for row in query.sql(
        "SELECT entity, source_file, source_checksum, run_id, rule, COUNT(*) AS n "
        "FROM quarantine GROUP BY entity, source_file, source_checksum, run_id, rule"
    ).to_pylist():
        key = (str(row["entity"]), str(row["source_file"]), str(row["source_checksum"] or ""))
        # A checksum is loaded once: every row of a file content has the same run.
        group = groups.setdefault(key, {"run": str(row["run_id"]), "rules": {}, "resolved": 0})
        group["rules"][str(row["rule"])] = int(row["n"])
    for schema in SCHEMAS:
        if any(entity == schema.name for entity, _, _ in groups):
            for key in _resolved_rows(query, schema):
                if key in groups:
                    groups[key]["resolved"] += 1
    destinations = {
        (str(r["run_id"]), str(r["source_path"]), str(r["checksum"])): r["destination"]
        for r in query.sql(
            "SELECT run_id, source_path, checksum, destination FROM ingest_log "
            "WHERE destination IS NOT NULL"
        ).to_pylist()
    }
    return [
        QuarantineStatus(
            entity=entity,
            source_file=source,
            checksum=checksum,
            destination=destinations.get((group["run"], source, checksum)),
            rules=dict(sorted(group["rules"].items())),
            quarantined=sum(group["rules"].values()),
            resolved=group["resolved"],
        )
        for (entity, source, checksum), group in sorted(groups.items())
    ]


def _resolved_rows(query: QueryService, schema: TableSchema) -> list[tuple[str, str, str]]:
    """``(entity, source file, checksum)`` of each of ``schema``'s resolved quarantined rows.

    A row is resolved when its primary key is in the table, loaded by a later run.
    """
    # Names from the schema and its catalogue name only: no text from data in the SQL.
    later = (
        f"quarantined_at < (SELECT MAX({INGESTED_AT}) FROM {schema.name}) "
        f"AND entity = '{schema.name}'"
    )
    rows = query.sql(
        "SELECT source_file, source_checksum, raw_record, quarantined_at FROM quarantine "
        f"WHERE {later}"
    ).to_pylist()
    if not rows:
        return []
    key = ", ".join(f"{c} AS k{i}" for i, c in enumerate(schema.primary_key))
    loaded = {
        tuple(str(row[f"k{i}"]) for i in range(len(schema.primary_key))): row["t"]
        for row in query.sql(
            f"SELECT {key}, {INGESTED_AT} AS t FROM {schema.name} WHERE {INGESTED_AT} > "
            f"(SELECT MIN(quarantined_at) FROM quarantine WHERE {later})"
        ).to_pylist()
    }
    found = []
    names: dict[tuple[str, ...], tuple[str, ...] | None] = {}
    for row in rows:
        record = _record(row["raw_record"])
        header = tuple(record)
        if header not in names:
            # The header as written, matched as the readers match it: once per header.
            by_name = {str(k).strip().lower(): k for k in header}
            found_names = [by_name.get(c) for c in schema.primary_key]
            names[header] = None if None in found_names else tuple(map(str, found_names))
        key_names = names[header]
        if key_names is None:
            continue
        values = [record[c] for c in key_names]
        parts = [normalize_text(v) if isinstance(v, str) else None for v in values]
        at = None if None in parts else loaded.get(tuple(str(p) for p in parts))
        if at is not None and at > row["quarantined_at"]:
            found.append((schema.name, str(row["source_file"]), str(row["source_checksum"] or "")))
    return found
