"""A pure-Python TableEngine over lists of dicts: the reference the unit tests run on.

It compiles nothing: it evaluates the domain's reference functions (rules, casts, dedup and
MERGE decisions) row by row, so the application layer can be tested without Polars or Spark.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ecommerce_lakehouse.domain.audit import AuditTable, RowCounts
from ecommerce_lakehouse.domain.decisions import MergeAction, deduplicate, merge_action
from ecommerce_lakehouse.domain.errors import FileRejected
from ecommerce_lakehouse.domain.headers import (
    DEFAULT_READ_LIMITS,
    file_start_violation,
    limit_rejection,
)
from ecommerce_lakehouse.domain.rules import (
    EXTRA_FIELDS_KEY,
    RAGGED_RECORD,
    cast_value,
    first_violation,
)
from ecommerce_lakehouse.domain.schemas import (
    FILE_ORDINAL,
    INGESTED_AT,
    LINE_NUMBER,
    RAW_RECORD,
    RESCUED_DATA,
    RUN_ID,
    SOURCE_CHECKSUM,
    SOURCE_FILE,
    TableSchema,
)
from ecommerce_lakehouse.domain.types import Column, ColumnType, SchemaEvolution
from ecommerce_lakehouse.ports.engine import (
    MERGE_COUNTS_KEY,
    CommitRecord,
    FileStatistics,
    MergeOutcome,
    RunContext,
    SourceFile,
    StagedBatch,
    TableRef,
    encode_merge_counts,
)
from ecommerce_lakehouse.ports.storage import ObjectStorage

Frame = list[dict[str, Any]]


@dataclass
class _Table:
    columns: list[Column]
    partition_by: str | None
    rows: list[dict[str, Any]] = field(default_factory=list)
    history: list[CommitRecord] = field(default_factory=list)
    #: Data files per partition (as text): a MERGE adds one to each partition it touches.
    files: dict[str | None, int] = field(default_factory=dict)

    #: Each version's columns and rows, by version (what a restore returns to).
    versions: list[tuple[list[Column], list[dict[str, Any]]]] = field(default_factory=list)
    #: When set, what stamps each commit's time (else commits carry none).
    clock: Callable[[], datetime] | None = None

    def commit(self, operation: str, metadata: Mapping[str, str] | None = None) -> None:
        self.versions.append((list(self.columns), [dict(row) for row in self.rows]))
        self.history.insert(
            0,
            CommitRecord(
                version=len(self.history),
                timestamp=self.clock() if self.clock else None,
                operation=operation,
                metadata=dict(metadata or {}),
                metrics={},
            ),
        )


class InMemoryTableEngine:
    """Reference engine; ``fail_merge_of`` names tables whose MERGE raises (failure injection)."""

    def __init__(self, storage: ObjectStorage) -> None:
        self._storage = storage
        self.tables: dict[str, _Table] = {}
        self.fail_merge_of: set[str] = set()
        #: Stamps commits with a time when set (tests of what depends on commit times).
        self.clock: Callable[[], datetime] | None = None

    @property
    def name(self) -> str:
        return "memory"

    @property
    def files_read_at_once(self) -> int:
        return 1

    def read_source(
        self, source: SourceFile, schema: TableSchema, evolution: SchemaEvolution
    ) -> Frame:
        content = self._storage.read_bytes(source.key)
        limits = DEFAULT_READ_LIMITS
        violation = file_start_violation([content], limits)
        if violation is not None:
            raise limit_rejection(source.key, violation, limits)
        try:
            text = content.decode("utf-8-sig")
        except UnicodeDecodeError as error:
            raise FileRejected("not_utf8", f"{source.key} is not UTF-8 ({error.reason})") from None
        try:
            rows = list(csv.reader(io.StringIO(text, newline=""), strict=True))
        except csv.Error as error:
            raise FileRejected("malformed_csv", f"{source.key}: {error}") from None
        # Like the engines: a blank file has no header; otherwise every record is a row.
        if not any(v.strip() for r in rows for v in r):
            return []
        if any(len(v.encode()) > limits.max_field_bytes for r in rows for v in r):
            raise limit_rejection(source.key, "field_too_large", limits)
        header = [h.strip().lower() for h in rows[0]]
        if len(set(header)) != len(header):
            raise FileRejected("duplicate_columns", f"{source.key} repeats a column")
        missing = [c for c in schema.source_columns if c not in header]
        if missing:
            raise FileRejected("missing_columns", f"{source.key} lacks {', '.join(missing)}")
        extra = [h for h in header if h not in schema.column_names]
        if extra and evolution is SchemaEvolution.FAIL:
            raise FileRejected("unexpected_columns", f"{source.key} has {', '.join(extra)}")
        frame: Frame = []
        for index, fields in enumerate(rows[1:]):
            fields = fields or [""]
            if len(fields) > limits.max_columns:
                raise limit_rejection(source.key, "too_many_columns", limits)
            # Aligned to the header: padded, trailing empty fields past it ignored.
            while len(fields) > len(header) and not fields[-1]:
                fields.pop()
            past = fields[len(header) :]
            values = fields[: len(header)] + [""] * (len(header) - len(fields))
            raw: dict[str, Any] = dict(zip(rows[0], values, strict=True))
            if past:
                raw[EXTRA_FIELDS_KEY] = past
            by_name = dict(zip(header, values, strict=True))
            record: dict[str, Any] = {c: by_name.get(c) for c in schema.column_names}
            rescued = {o: v for o, h, v in zip(rows[0], header, values, strict=True) if h in extra}
            record[RESCUED_DATA] = (
                json.dumps(rescued) if rescued and evolution is SchemaEvolution.RESCUE else None
            )
            if evolution is SchemaEvolution.ADD_NEW_COLUMNS:
                record.update({h: by_name[h] for h in extra})
            record.update(
                {
                    SOURCE_FILE: source.key,
                    FILE_ORDINAL: source.ordinal,
                    LINE_NUMBER: index + 2,
                    RAW_RECORD: json.dumps(raw),
                    RAGGED_RECORD: bool(past),
                    SOURCE_CHECKSUM: source.checksum,
                }
            )
            frame.append(record)
        return frame

    def stage(
        self, frames: Sequence[Frame], schema: TableSchema, run: RunContext
    ) -> StagedBatch[Frame]:
        counts: dict[str, dict[str, int]] = {}
        valid: Frame = []
        quarantine: Frame = []
        extra: list[str] = []
        evolved: dict[str, list[str]] = {}
        for record in (r for frame in frames for r in frame):
            # Like the engines: a file's evolved columns are those its header added.
            own = [k for k in record if k not in schema.column_names and not k.startswith("_")]
            if own:
                evolved.setdefault(record[SOURCE_FILE], own)
            tally = counts.setdefault(record[SOURCE_FILE], {"read": 0, "q": 0, "d": 0})
            tally["read"] += 1
            text = {
                c: (v.strip() or None) if isinstance(v, str) else v
                for c, v in record.items()
                if c in schema.column_names
            }
            text[RAGGED_RECORD] = record.get(RAGGED_RECORD)
            violation = first_violation(text, schema.rules, schema.types)
            if violation is not None:
                tally["q"] += 1
                quarantine.append(
                    {
                        "run_id": run.run_id,
                        "entity": schema.name,
                        "source_file": record[SOURCE_FILE],
                        "line_number": record[LINE_NUMBER],
                        "rule": violation.rule,
                        "column_name": violation.column,
                        "reason": violation.reason,
                        "raw_record": record[RAW_RECORD],
                        "quarantined_at": run.started_at,
                        "source_checksum": record[SOURCE_CHECKSUM],
                    }
                )
                continue
            typed = {c.name: cast_value(text[c.name], c.type) for c in schema.columns}
            if schema.derived_date is not None:
                date_column, ts_column = schema.derived_date
                if typed[date_column] is None:
                    typed[date_column] = typed[ts_column].date()
            others = {k: v for k, v in record.items() if k not in schema.column_names}
            for name in others:
                if not name.startswith("_") and name not in extra:
                    extra.append(name)
            valid.append({**others, **typed})
        survivors, dropped = deduplicate(valid, schema.dedup)
        for loser in dropped:
            counts[loser[SOURCE_FILE]]["d"] += 1
        finished = [
            {
                **{
                    k: v
                    for k, v in s.items()
                    if k
                    not in (FILE_ORDINAL, LINE_NUMBER, RAW_RECORD, RAGGED_RECORD, SOURCE_CHECKSUM)
                },
                INGESTED_AT: run.started_at,
                RUN_ID: run.run_id,
            }
            for s in survivors
        ]
        return StagedBatch(
            survivors=finished,
            quarantine=quarantine,
            counts={
                k: RowCounts(rows_read=t["read"], quarantined=t["q"], duplicates_in_batch=t["d"])
                for k, t in counts.items()
            },
            extra_columns=tuple(extra),
            evolved={k: tuple(v) for k, v in evolved.items()},
        )

    def ensure_table(
        self,
        table: TableRef,
        columns: Sequence[Column],
        partition_by: str | None,
        *,
        metadata: Mapping[str, str] | None = None,
    ) -> bool:
        if table.uri in self.tables:
            return False
        created = _Table(columns=list(columns), partition_by=partition_by, clock=self.clock)
        created.commit("CREATE TABLE", metadata)
        self.tables[table.uri] = created
        return True

    def merge(
        self,
        table: TableRef,
        batch: StagedBatch[Frame],
        schema: TableSchema,
        commit_metadata: Mapping[str, str],
    ) -> MergeOutcome:
        if table.name in self.fail_merge_of:
            raise RuntimeError(f"injected failure merging {table.name}")
        stored = self.tables[table.uri]
        for name in batch.extra_columns:
            if name not in [c.name for c in stored.columns]:
                stored.columns.append(Column(name=name, type=ColumnType.STRING))
        index = {tuple(r[k] for k in schema.primary_key): i for i, r in enumerate(stored.rows)}
        counts: dict[str, dict[str, int]] = {}
        touched: set[Any] = set()
        for row in batch.survivors:
            key = tuple(row[k] for k in schema.primary_key)
            position = index.get(key)
            current = stored.rows[position] if position is not None else None
            action = merge_action(current, row, schema.merge)
            tally = counts.setdefault(row[SOURCE_FILE], {"i": 0, "u": 0, "n": 0})
            if action is MergeAction.INSERT:
                tally["i"] += 1
                index[key] = len(stored.rows)
                stored.rows.append(dict(row))
            elif action is MergeAction.UPDATE:
                assert position is not None
                assert current is not None
                tally["u"] += 1
                touched.add(current[schema.partition_column])
                stored.rows[position] = dict(row)
            else:
                tally["n"] += 1
                continue
            touched.add(row[schema.partition_column])
        per_file = {
            k: RowCounts(inserted=t["i"], updated=t["u"], unchanged=t["n"])
            for k, t in counts.items()
        }
        if batch.survivors:
            stored.commit(
                "MERGE", {**commit_metadata, MERGE_COUNTS_KEY: encode_merge_counts(per_file)}
            )
        partitions = tuple(sorted((None if v is None else str(v)) for v in touched))
        for partition in partitions:
            stored.files[partition] = stored.files.get(partition, 0) + 1
        return MergeOutcome(
            counts=per_file,
            version=len(stored.history) - 1,
            touched_partitions=partitions,
            metrics={},
        )

    def append_frame(
        self,
        table: TableRef,
        audit: AuditTable,
        frame: Frame,
        *,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        if audit.unique_key and table.uri in self.tables:
            # Like the engines' insert-only MERGE: keys already stored (none null) are skipped.
            key = audit.unique_key
            stored = {
                tuple(r.get(k) for k in key)
                for r in self.tables[table.uri].rows
                if all(r.get(k) is not None for k in key)
            }
            frame = [r for r in frame if tuple(r.get(k) for k in key) not in stored]
        self.append_records(table, audit, frame, metadata=metadata)

    def append_records(
        self,
        table: TableRef,
        audit: AuditTable,
        records: Sequence[Mapping[str, object]],
        *,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        self.ensure_table(table, audit.columns, None, metadata=metadata)
        stored = self.tables[table.uri]
        # Columns the contract appended are added to a table that lacks them.
        known = {c.name for c in stored.columns}
        stored.columns += [c for c in audit.columns if c.name not in known]
        stored.rows.extend({c: r.get(c) for c in audit.column_names} for r in records)
        stored.commit("WRITE", metadata)

    def columns(self, table: TableRef) -> tuple[Column, ...]:
        stored = self.tables.get(table.uri)
        return tuple(stored.columns) if stored else ()

    def history(self, table: TableRef, limit: int | None = None) -> list[CommitRecord]:
        stored = self.tables.get(table.uri)
        records = stored.history if stored else []
        return records[:limit] if limit is not None else list(records)

    def file_statistics(self, table: TableRef) -> tuple[FileStatistics, ...] | None:
        # The fake keeps no Delta log: its checks always run their SQL.
        return None

    def vacuum(self, table: TableRef, *, retain_hours: int) -> int:
        # The fake keeps no files of old versions: nothing to delete.
        return 0

    def restore(self, table: TableRef, version: int, *, metadata: Mapping[str, str]) -> int:
        stored = self.tables[table.uri]
        columns, rows = stored.versions[version]
        stored.columns, stored.rows = list(columns), [dict(row) for row in rows]
        stored.commit("RESTORE", metadata)
        return stored.history[0].version

    def compact(
        self,
        table: TableRef,
        *,
        min_files: int,
        metadata: Mapping[str, str] | None = None,
        partitions: Sequence[str | None] | None = None,
    ) -> int:
        # One commit stands for one data file here; compaction keeps the rows.
        stored = self.tables.get(table.uri)
        if stored is None:
            return 0
        if partitions is not None:
            crowded = [p for p in dict.fromkeys(partitions) if stored.files.get(p, 0) >= min_files]
            if not crowded:
                return 0
            removed = sum(stored.files[p] for p in crowded)
            stored.files.update(dict.fromkeys(crowded, 1))
            stored.commit("OPTIMIZE", metadata)
            return removed
        writes = 0
        for commit in stored.history:  # newest first, back to the last compaction
            if commit.operation == "OPTIMIZE":
                break
            writes += commit.operation == "WRITE"
        if writes < min_files:
            return 0
        stored.commit("OPTIMIZE", metadata)
        return writes

    def rows(self, table: TableRef) -> list[dict[str, Any]]:
        """Stored rows of a table (test helper)."""
        return list(self.tables[table.uri].rows)


def _arrow_type(column_type: ColumnType) -> Any:
    import pyarrow as pa

    return {
        ColumnType.STRING: pa.string(),
        ColumnType.INT: pa.int32(),
        ColumnType.BIGINT: pa.int64(),
        ColumnType.DOUBLE: pa.float64(),
        ColumnType.BOOLEAN: pa.bool_(),
        ColumnType.DATE: pa.date32(),
        ColumnType.TIMESTAMP: pa.timestamp("us", tz="UTC"),
    }[column_type]


class InMemoryQueryService:
    """Runs SQL with DuckDB over the fake engine's tables (no Delta, no files)."""

    def __init__(self, engine: InMemoryTableEngine, storage: ObjectStorage) -> None:
        self._engine = engine
        self._storage = storage

    def sql(self, query: str, *, as_of: Mapping[str, int] | None = None) -> Any:
        import duckdb
        import pyarrow as pa

        from ecommerce_lakehouse.application.tables import TABLE_NAMES, table_ref

        connection = duckdb.connect()
        connection.execute("SET TimeZone = 'UTC'")
        for name in TABLE_NAMES:
            stored = self._engine.tables.get(table_ref(self._storage, name).uri)
            if stored is None:
                continue
            schema = pa.schema([pa.field(c.name, _arrow_type(c.type)) for c in stored.columns])
            rows = [{c.name: r.get(c.name) for c in stored.columns} for r in stored.rows]
            connection.register(name, pa.Table.from_pylist(rows, schema=schema))
        return connection.sql(query).to_arrow_table()
