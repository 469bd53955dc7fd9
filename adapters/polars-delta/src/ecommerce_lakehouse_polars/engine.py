"""The Polars + delta-rs implementation of the ``TableEngine`` port."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import polars as pl

from ecommerce_lakehouse.domain.audit import AuditTable
from ecommerce_lakehouse.domain.headers import DEFAULT_READ_LIMITS, ReadLimits
from ecommerce_lakehouse.domain.schemas import TableSchema
from ecommerce_lakehouse.domain.types import Column, SchemaEvolution
from ecommerce_lakehouse.ports.engine import (
    CommitRecord,
    FileStatistics,
    MergeOutcome,
    RunContext,
    SourceFile,
    StagedBatch,
    TableRef,
)
from ecommerce_lakehouse_polars.delta import (
    append,
    compact_table,
    ensure_table,
    file_statistics,
    records_frame,
    restore_table,
    table_columns,
    table_history,
    vacuum_table,
)
from ecommerce_lakehouse_polars.merge import merge_batch
from ecommerce_lakehouse_polars.reader import read_source_frame
from ecommerce_lakehouse_polars.staging import stage_frames


class PolarsDeltaTableEngine:
    """Compiles the domain to Polars expressions and owns every Delta read and write.

    Args:
        storage_options: object-store options (credentials, endpoint, region) passed to the
            Polars CSV reader and to delta-rs; empty for local paths. A table's own
            ``TableRef.storage_options`` take precedence for that table.
        read_limits: bounds on the columns and field size of a raw file.
    """

    def __init__(
        self,
        storage_options: Mapping[str, str] | None = None,
        read_limits: ReadLimits = DEFAULT_READ_LIMITS,
    ) -> None:
        self._storage_options = dict(storage_options or {})
        self._read_limits = read_limits

    @property
    def name(self) -> str:
        """Short engine name: ``polars``."""
        return "polars"

    @property
    def storage_options(self) -> Mapping[str, str]:
        """The object-store options the engine was built with."""
        return dict(self._storage_options)

    @property
    def files_read_at_once(self) -> int:
        """One: Polars reads one file on every core (and peak memory stays one file's)."""
        return 1

    def read_source(
        self, source: SourceFile, schema: TableSchema, evolution: SchemaEvolution
    ) -> pl.DataFrame:
        """Read one CSV as text with line numbers, raw record and rescued/evolved columns.

        Raises:
            FileRejected: the file cannot be read at all (docs/contract.md#reading-files).
        """
        return read_source_frame(
            source, schema, evolution, self._storage_options, self._read_limits
        )

    def stage(
        self, frames: Sequence[pl.DataFrame], schema: TableSchema, run: RunContext
    ) -> StagedBatch[pl.DataFrame]:
        """Apply the schema's rules (quarantine), cast, derive dates and dedup the batch."""
        return stage_frames(frames, schema, run)

    def ensure_table(
        self,
        table: TableRef,
        columns: Sequence[Column],
        partition_by: str | None,
        *,
        metadata: Mapping[str, str] | None = None,
    ) -> bool:
        """Create an empty Delta table with this schema, or add the columns one lacks."""
        _, created = ensure_table(
            table.uri, columns, partition_by, self._options(table), table.name, metadata
        )
        return created

    def merge(
        self,
        table: TableRef,
        batch: StagedBatch[pl.DataFrame],
        schema: TableSchema,
        commit_metadata: Mapping[str, str],
    ) -> MergeOutcome:
        """MERGE the survivors on the primary key, touching only the partitions involved.

        Raises:
            IntegrityError: delta-rs's metrics disagree with the rows classified.
        """
        return merge_batch(table.uri, self._options(table), batch, schema, commit_metadata)

    def append_frame(
        self,
        table: TableRef,
        audit: AuditTable,
        frame: pl.DataFrame,
        *,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        """Append a frame (in ``audit``'s columns) to an audit table, creating it if missing.

        Rows whose ``audit.unique_key`` is already stored are skipped.
        """
        append(table.uri, frame, audit.columns, self._options(table), audit.unique_key, metadata)

    def append_records(
        self,
        table: TableRef,
        audit: AuditTable,
        records: Sequence[Mapping[str, object]],
        *,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        """Append plain records (``audit``'s column names) to an audit table."""
        append(
            table.uri,
            records_frame(records, audit.columns),
            audit.columns,
            self._options(table),
            metadata=metadata,
        )

    def columns(self, table: TableRef) -> tuple[Column, ...]:
        """The stored columns of a table (empty when it does not exist)."""
        return table_columns(table.uri, self._options(table))

    def history(self, table: TableRef, limit: int | None = None) -> list[CommitRecord]:
        """Commits of a table, newest first (empty when it does not exist)."""
        return table_history(table.uri, self._options(table), limit)

    def file_statistics(self, table: TableRef) -> tuple[FileStatistics, ...] | None:
        """The Delta log's statistics of the table's data files (delta-rs ``add`` actions)."""
        return file_statistics(table.uri, self._options(table))

    def compact(
        self,
        table: TableRef,
        *,
        min_files: int,
        metadata: Mapping[str, str] | None = None,
        partitions: Sequence[str | None] | None = None,
    ) -> int:
        """OPTIMIZE-compact a table (or those ``partitions``) with ``min_files`` data files."""
        return compact_table(table.uri, self._options(table), min_files, metadata, partitions)

    def vacuum(self, table: TableRef, *, retain_hours: int) -> int:
        """VACUUM a table, keeping ``retain_hours`` hours of versions; files deleted."""
        return vacuum_table(table.uri, self._options(table), retain_hours)

    def restore(self, table: TableRef, version: int, *, metadata: Mapping[str, str]) -> int:
        """Delta RESTORE of a table to ``version``; returns the version committed."""
        return restore_table(table.uri, self._options(table), version, metadata)

    def _options(self, table: TableRef) -> dict[str, str]:
        return {**self._storage_options, **table.storage_options}
