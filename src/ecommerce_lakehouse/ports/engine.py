"""Table engine port: reads raw CSV, applies the domain's rules, dedups and MERGEs into Delta.

The engine is generic over its frame type (a Polars DataFrame, a Spark DataFrame, a list of
dicts in the in-memory fake). The application layer drives the steps; each engine compiles
the same domain objects (rules, dedup and MERGE specs) to its own expressions.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Generic, Protocol, TypeVar

from ecommerce_lakehouse.domain.audit import AuditTable, RowCounts
from ecommerce_lakehouse.domain.schemas import TableSchema
from ecommerce_lakehouse.domain.types import Column, SchemaEvolution

FrameT = TypeVar("FrameT")

#: Commit-metadata key under which ``merge`` records its per-file counts (see ``merge``).
MERGE_COUNTS_KEY = "lakehouse.merge_counts"


def encode_merge_counts(counts: Mapping[str, RowCounts]) -> str:
    """JSON of per-file MERGE counts, as engines store it under ``MERGE_COUNTS_KEY``."""
    return json.dumps(
        {
            key: {"inserted": c.inserted, "updated": c.updated, "unchanged": c.unchanged}
            for key, c in sorted(counts.items())
        }
    )


def decode_merge_counts(text: str) -> dict[str, RowCounts]:
    """Inverse of :func:`encode_merge_counts`."""
    return {key: RowCounts(**value) for key, value in json.loads(text).items()}


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceFile:
    """A raw file selected for ingestion.

    Attributes:
        key: key relative to the lake root, e.g. ``raw-data/orders/orders_1.csv``.
        uri: absolute URI the engine reads.
        entity: the entity the file feeds.
        size_bytes: size when discovered.
        checksum: SHA-256 of the content when discovered.
        ordinal: position of the file, by name, within its entity's batch (ties in dedup go
            to the higher ordinal, then to the higher line number).
    """

    key: str
    uri: str
    entity: str
    size_bytes: int
    checksum: str
    ordinal: int


@dataclass(frozen=True, slots=True, kw_only=True)
class TableRef:
    """Where a Delta table lives."""

    name: str
    uri: str
    storage_options: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class RunContext:
    """What an engine needs to know about the run it works for."""

    run_id: str
    started_at: datetime
    evolution: SchemaEvolution = SchemaEvolution.RESCUE


@dataclass(frozen=True, slots=True, kw_only=True)
class StagedBatch(Generic[FrameT]):
    """One entity's batch after rules and in-batch dedup.

    Attributes:
        survivors: valid, typed, deduplicated rows with business, rescued and lineage
            columns plus any evolved columns.
        quarantine: rejected rows in the ``quarantine`` audit table's columns.
        counts: per source key, ``rows_read``, ``quarantined`` and ``duplicates_in_batch``.
        extra_columns: evolved (string) columns present in ``survivors`` under
            ``add_new_columns``.
        rescued: per source key whose header has columns not in the schema (``rescue``),
            the first ``_rescued_data`` of its records (a JSON object keyed by those columns).
        evolved: per source key whose header has columns not in the schema
            (``add_new_columns``), the evolved columns that hold them, in header order.
    """

    survivors: FrameT
    quarantine: FrameT
    counts: Mapping[str, RowCounts]
    extra_columns: tuple[str, ...] = ()
    rescued: Mapping[str, str] = field(default_factory=dict)
    evolved: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class MergeOutcome:
    """What a MERGE did.

    Attributes:
        counts: per source key, ``inserted``, ``updated`` and ``unchanged``.
        version: the table version after the commit (unchanged when nothing was written).
        touched_partitions: partition values the MERGE was allowed to read and rewrite.
        metrics: the engine's own operation metrics (e.g. ``num_target_files_removed``).
    """

    counts: Mapping[str, RowCounts]
    version: int
    touched_partitions: tuple[str | None, ...]
    metrics: Mapping[str, int]


@dataclass(frozen=True, slots=True, kw_only=True)
class CommitRecord:
    """One entry of a Delta table's history, the same whichever engine made the commit.

    Attributes:
        version: the table version the commit made.
        timestamp: when it was committed (None when the log does not say).
        operation: the commit's operation (``WRITE``, ``MERGE``, ``OPTIMIZE``, ...).
        metadata: the custom metadata stored with the commit, as text (for a MERGE, its
            ``commit_metadata`` and ``MERGE_COUNTS_KEY``).
        metrics: the commit's integer operation metrics under snake_case names, as delta-rs
            names them (e.g. ``num_added_rows``).
    """

    version: int
    timestamp: datetime | None
    operation: str
    metadata: Mapping[str, str]
    metrics: Mapping[str, int]


@dataclass(frozen=True, slots=True, kw_only=True)
class FileStatistics:
    """What a table version's Delta log records of one of its data files (its ``add`` action).

    Attributes:
        rows: the file's ``numRecords``; None when the log holds no statistics for it.
        partition: the file's partition values as the log stores them (text; None for the
            null partition).
        null_counts: ``nullCount`` per column the log has statistics for.
        minimum: ``minValues`` per column (text, numbers, timestamps as aware UTC datetimes).
            A long string may be cut to a prefix, which is still no greater than the value.
        maximum: ``maxValues`` per column, as ``minimum``. A long string's maximum may be cut
            too: only one shorter than :data:`STATISTICS_STRING_PREFIX` is the whole value.
    """

    rows: int | None
    partition: Mapping[str, str | None] = field(default_factory=dict)
    null_counts: Mapping[str, int] = field(default_factory=dict)
    minimum: Mapping[str, object] = field(default_factory=dict)
    maximum: Mapping[str, object] = field(default_factory=dict)


#: The length to which Delta writers may cut a string's file statistics (Delta Lake keeps a
#: prefix of 32 characters; a cut maximum is one character longer).
STATISTICS_STRING_PREFIX = 32


class TableEngine(Protocol[FrameT]):
    """Compiles the domain to one engine and owns every Delta read and write."""

    @property
    def name(self) -> str:
        """Short engine name, e.g. ``polars``."""
        ...

    @property
    def files_read_at_once(self) -> int:
        """How many files of one entity the ingest step reads at the same time.

        1 for an engine whose read of one file already keeps every core busy; more for one
        that reads a file in one task (Spark), so that several files fill the cores.
        """
        ...

    def read_source(
        self, source: SourceFile, schema: TableSchema, evolution: SchemaEvolution
    ) -> FrameT:
        """Read one CSV: every value as text, cast by the domain's rules, never inferred.

        Called from worker threads, up to :attr:`files_read_at_once` at a time.

        The frame carries the source key, rescued/evolved columns and, for every row that
        breaks a rule, its raw record and line number (an engine may leave the line number
        of a valid row null: only the quarantine keeps line numbers). An engine may already
        cast the values and evaluate the schema's rules here (file by file, to bound
        memory), as long as :meth:`stage` then yields the same batch.

        Raises:
            FileRejected: the file cannot be read at all (docs/contract.md#reading-files).
        """
        ...

    def stage(
        self, frames: Sequence[FrameT], schema: TableSchema, run: RunContext
    ) -> StagedBatch[FrameT]:
        """Quarantine rows that break a rule, cast, derive dates and dedup the batch.

        Survivors keep ``_source_file`` as the engine's string type of choice (Polars uses a
        categorical); the Delta table stores a string.
        """
        ...

    def ensure_table(
        self,
        table: TableRef,
        columns: Sequence[Column],
        partition_by: str | None,
        *,
        metadata: Mapping[str, str] | None = None,
    ) -> bool:
        """Create an empty Delta table with this schema when none exists at ``table.uri``.

        An existing table gains the ``columns`` it lacks (nullable, appended): how a lake
        written by an older version gets a column the contract appended since. ``metadata``
        is stored with each commit this makes (the ``lakehouse.run_id`` of the run).

        Returns:
            True when this call created the table, which then holds no rows (the lake's
            lock keeps other writers out); False when one existed.
        """
        ...

    def merge(
        self,
        table: TableRef,
        batch: StagedBatch[FrameT],
        schema: TableSchema,
        commit_metadata: Mapping[str, str],
    ) -> MergeOutcome:
        """MERGE the survivors on the primary key, touching only the partitions involved.

        ``commit_metadata`` is stored as custom metadata of the Delta commit, together with
        ``MERGE_COUNTS_KEY`` (:func:`encode_merge_counts` of the returned counts), so a run
        that stops after this commit but before its ``ingest_log`` rows can be reconciled.
        """
        ...

    def append_frame(
        self,
        table: TableRef,
        audit: AuditTable,
        frame: FrameT,
        *,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        """Append a frame (in ``audit``'s columns) to an audit table.

        Columns of ``audit`` an existing table lacks are added first (nullable). When
        ``audit.unique_key`` is set, rows whose key is already stored are skipped, so
        appending the same rows again (a run replayed after a crash) adds nothing.
        ``metadata`` is stored with each commit this makes (the ``lakehouse.run_id`` of the
        run that writes, so ``lakehouse history`` names it).
        """
        ...

    def append_records(
        self,
        table: TableRef,
        audit: AuditTable,
        records: Sequence[Mapping[str, object]],
        *,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        """Append plain records (``audit``'s column names) to an audit table.

        Columns of ``audit`` an existing table lacks are added first (nullable).
        ``metadata`` is stored with each commit this makes, as for :meth:`append_frame`.
        """
        ...

    def columns(self, table: TableRef) -> tuple[Column, ...]:
        """The stored columns of a table (empty when it does not exist)."""
        ...

    def history(self, table: TableRef, limit: int | None = None) -> list[CommitRecord]:
        """Commits of a table, newest first (empty when it does not exist)."""
        ...

    def file_statistics(self, table: TableRef) -> tuple[FileStatistics, ...] | None:
        """The Delta log's statistics of every data file of the table's latest version.

        Read from the log alone (no data file is opened). None when the table does not
        exist, or when its log cannot vouch for its rows: a file with deletion vectors
        holds fewer rows than its ``numRecords``.
        """
        ...

    def compact(
        self,
        table: TableRef,
        *,
        min_files: int,
        metadata: Mapping[str, str] | None = None,
        partitions: Sequence[str | None] | None = None,
    ) -> int:
        """Rewrite a table's data files into fewer, larger ones (Delta OPTIMIZE compaction).

        Only when the table has at least ``min_files`` data files; older versions stay
        readable (nothing is vacuumed). ``metadata`` is stored with the commit (the
        ``lakehouse.run_id`` of the command that asked). Returns the number of files
        removed, 0 when the table was left alone or does not exist.

        With ``partitions`` (partition values as text, as
        :attr:`MergeOutcome.touched_partitions` gives them; None for the null partition),
        only those of them that hold ``min_files`` data files or more each are rewritten,
        in one commit; every other partition keeps its files.
        """
        ...

    def vacuum(self, table: TableRef, *, retain_hours: int) -> int:
        """Delete the data files no version of the last ``retain_hours`` hours reads.

        Versions older than that can no longer be read (time travel stops there). Returns
        the number of files deleted, 0 when the table does not exist.
        """
        ...

    def restore(self, table: TableRef, version: int, *, metadata: Mapping[str, str]) -> int:
        """Return a table's rows (and columns) to those of an earlier ``version``.

        Delta RESTORE: one new commit, carrying ``metadata``; the versions in between stay in
        the history and readable. Returns the version the commit made.

        Raises:
            LakehouseError: the version cannot be restored (e.g. a vacuum deleted its files).
        """
        ...
