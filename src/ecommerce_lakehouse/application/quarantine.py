"""Quarantined rows back as the files they came from, ready to fix and drop again.

``quarantine.raw_record`` keeps each refused record as a JSON object keyed by the file's
header as written (values past the header under ``_extra_fields``), so the records of one
file rebuild its header and rows exactly (docs/contract.md#quarantine-export).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from ecommerce_lakehouse.domain.rules import EXTRA_FIELDS_KEY
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
