"""The PySpark + Delta Lake implementation of the ``TableEngine`` port."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import TYPE_CHECKING, Any

from ecommerce_lakehouse.domain.audit import QUARANTINE, AuditTable
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
from ecommerce_lakehouse.settings import env_name
from ecommerce_lakehouse_spark.delta import (
    USER_METADATA_CONF,
    append_frame,
    append_records,
    compact_table,
    ensure_table,
    file_statistics,
    restore_table,
    session_conf,
    spark_failure,
    table_columns,
    table_history,
    vacuum_table,
)
from ecommerce_lakehouse_spark.jobs import SparkJobCounter
from ecommerce_lakehouse_spark.merge import merge_batch
from ecommerce_lakehouse_spark.reader import read_source_frame
from ecommerce_lakehouse_spark.session import BUILT_HERE_CONF
from ecommerce_lakehouse_spark.staging import stage_frames

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


class SparkDeltaTableEngine:
    """Compiles the domain to Spark column expressions and owns every Delta read and write.

    Args:
        session: the Spark session (with Delta Lake) every read and write runs on.
        read_limits: bounds on the columns and field size of a raw file.
    """

    def __init__(
        self, session: SparkSession, read_limits: ReadLimits = DEFAULT_READ_LIMITS
    ) -> None:
        self._session = session
        self._read_limits = read_limits
        self._jobs = SparkJobCounter(session)
        # The entity whose batch was staged last: its quarantine rows are appended next.
        self._staged_entity = "quarantine"
        self._quarantine_rows: tuple[DataFrame | None, int] = (None, 0)
        # The survivors staged last, with their count per partition value: a first load of
        # exactly those survivors needs no pass to count them.
        self._survivors_by_partition: tuple[DataFrame | None, dict[Any, int]] = (None, {})
        # Each entity's files of its batch, by ordinal (files are read from several threads):
        # staging names their rows' files by ordinal, and sizes its shuffle on them. A read
        # after a stage of the entity starts its next batch (a batch may be staged again).
        self._read_sources: dict[str, dict[int, SourceFile]] = {}
        self._staged_batches: set[str] = set()
        self._read_lock = threading.Lock()

    @property
    def name(self) -> str:
        """Short engine name: ``spark``."""
        return "spark"

    @property
    def session(self) -> SparkSession:
        """The Spark session the engine runs on."""
        return self._session

    @property
    def job_counts(self) -> dict[str, dict[str, int]]:
        """Spark jobs run per entity and step and not reported yet (see ``jobs``)."""
        return self._jobs.counts

    @property
    def files_read_at_once(self) -> int:
        """As many files as the session runs tasks at once: a file is read by one task."""
        return max(1, int(self._session.sparkContext.defaultParallelism))

    def read_source(
        self, source: SourceFile, schema: TableSchema, evolution: SchemaEvolution
    ) -> DataFrame:
        """Read one CSV as text with line numbers, raw record and rescued/evolved columns.

        Raises:
            FileRejected: the file cannot be read at all (docs/contract.md#reading-files).
        """
        with self._read_lock:
            if schema.name in self._staged_batches:
                self._staged_batches.discard(schema.name)
                self._read_sources.pop(schema.name, None)
            self._read_sources.setdefault(schema.name, {})[source.ordinal] = source
        with self._jobs.step(schema.name, "read"):
            return read_source_frame(self._session, source, schema, evolution, self._read_limits)

    def stage(
        self, frames: Sequence[DataFrame], schema: TableSchema, run: RunContext
    ) -> StagedBatch[DataFrame]:
        """Apply the schema's rules (quarantine), cast, derive dates and dedup the batch."""
        self._staged_entity = schema.name
        with self._read_lock:
            sources = list(self._read_sources.get(schema.name, {}).values())
            self._staged_batches.add(schema.name)
        with self._jobs.step(schema.name, "stage"), self._described_failures():
            staged, by_partition = stage_frames(self._session, frames, schema, run, sources)
        self._survivors_by_partition = (staged.survivors, by_partition)
        # The counts tell how many rows the quarantine frame holds: appending it then needs
        # no job to find out whether it is empty.
        self._quarantine_rows = (
            staged.quarantine,
            sum(c.quarantined for c in staged.counts.values()),
        )
        return staged

    def ensure_table(
        self,
        table: TableRef,
        columns: Sequence[Column],
        partition_by: str | None,
        *,
        metadata: Mapping[str, str] | None = None,
    ) -> bool:
        """Create an empty Delta table with this schema, or add the columns one lacks."""
        with self._jobs.step(table.name, "ensure"), self._user_metadata(metadata):
            created = ensure_table(self._session, table.uri, columns, partition_by, table.name)
        self._jobs.report(table.name, ("ensure",), quiet=True)
        return created

    def merge(
        self,
        table: TableRef,
        batch: StagedBatch[DataFrame],
        schema: TableSchema,
        commit_metadata: Mapping[str, str],
    ) -> MergeOutcome:
        """MERGE the survivors on the primary key, touching only the partitions involved.

        Raises:
            IntegrityError: Delta's metrics disagree with the rows classified.
        """
        try:
            with self._jobs.step(schema.name, "merge"), self._described_failures():
                known, by_partition = self._survivors_by_partition
                return merge_batch(
                    self._session,
                    table.uri,
                    batch,
                    schema,
                    commit_metadata,
                    by_partition if batch.survivors is known else None,
                )
        finally:
            # Held no longer than this MERGE: the survivors hold staging's checkpoint.
            self._survivors_by_partition = (None, {})
            self._jobs.report(schema.name, ("read", "stage", "quarantine", "merge"))

    def append_frame(
        self,
        table: TableRef,
        audit: AuditTable,
        frame: DataFrame,
        *,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        """Append a frame (in ``audit``'s columns) to an audit table, creating it if missing.

        Rows whose ``audit.unique_key`` is already stored are skipped.
        """
        if audit.name == QUARANTINE.name:
            known, rows = self._quarantine_rows
            # Counted with the entity whose rows they are, reported with its MERGE.
            with (
                self._jobs.step(self._staged_entity, "quarantine"),
                self._user_metadata(metadata),
            ):
                append_frame(
                    self._session,
                    table.uri,
                    frame,
                    audit.columns,
                    audit.unique_key,
                    rows=rows if frame is known else None,
                )
            return
        with self._jobs.step(audit.name, "append"), self._user_metadata(metadata):
            append_frame(self._session, table.uri, frame, audit.columns, audit.unique_key)
        self._jobs.report(audit.name, ("append",))

    def append_records(
        self,
        table: TableRef,
        audit: AuditTable,
        records: Sequence[Mapping[str, object]],
        *,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        """Append plain records (``audit``'s column names) to an audit table."""
        with self._jobs.step(audit.name, "append"), self._user_metadata(metadata):
            append_records(self._session, table.uri, records, audit.columns)
        self._jobs.report(audit.name, ("append",))

    def columns(self, table: TableRef) -> tuple[Column, ...]:
        """The stored columns of a table (empty when it does not exist)."""
        with self._jobs.step(table.name, "columns"):
            found = table_columns(self._session, table.uri)
        self._jobs.report(table.name, ("columns",), quiet=True)
        return found

    def history(self, table: TableRef, limit: int | None = None) -> list[CommitRecord]:
        """Commits of a table, newest first (empty when it does not exist)."""
        with self._jobs.step(table.name, "history"):
            found = table_history(self._session, table.uri, limit)
        self._jobs.report(table.name, ("history",), quiet=True)
        return found

    def file_statistics(self, table: TableRef) -> tuple[FileStatistics, ...] | None:
        """The Delta log's statistics of the table's data files (Delta Lake's snapshot)."""
        with self._jobs.step(table.name, "statistics"):
            found = file_statistics(self._session, table.uri)
        self._jobs.report(table.name, ("statistics",), quiet=True)
        return found

    def compact(
        self,
        table: TableRef,
        *,
        min_files: int,
        metadata: Mapping[str, str] | None = None,
        partitions: Sequence[str | None] | None = None,
    ) -> int:
        """OPTIMIZE-compact a table (or those ``partitions``) with ``min_files`` data files."""
        with self._jobs.step(table.name, "compact"), self._user_metadata(metadata):
            removed = compact_table(self._session, table.uri, min_files, partitions)
        self._jobs.report(table.name, ("compact",), quiet=True)
        return removed

    def vacuum(self, table: TableRef, *, retain_hours: int) -> int:
        """VACUUM a table, keeping ``retain_hours`` hours of versions; files deleted."""
        with self._jobs.step(table.name, "vacuum"):
            deleted = vacuum_table(self._session, table.uri, retain_hours)
        self._jobs.report(table.name, ("vacuum",), quiet=True)
        return deleted

    def restore(self, table: TableRef, version: int, *, metadata: Mapping[str, str]) -> int:
        """Delta RESTORE of a table to ``version``; returns the version committed."""
        stored = json.dumps(dict(metadata), sort_keys=True)
        with (
            self._jobs.step(table.name, "restore"),
            session_conf(self._session, USER_METADATA_CONF, stored),
        ):
            made = restore_table(self._session, table.uri, version)
        self._jobs.report(table.name, ("restore",), quiet=True)
        return made

    @contextmanager
    def _described_failures(self) -> Iterator[None]:
        """A failed Spark job leaves this block as one line naming its cause."""
        from py4j.protocol import Py4JJavaError

        try:
            yield
        except Py4JJavaError as error:
            built_here = self._session.conf.get(BUILT_HERE_CONF, "false") == "true"
            hint = (
                f"give it more ({env_name('spark_driver_memory')}, now "
                f"{self._session.conf.get('spark.driver.memory', 'unset')})"
                if built_here
                else "give the job larger or more workers"
            )
            raise spark_failure(error, hint) from error

    def _user_metadata(self, metadata: Mapping[str, str] | None) -> AbstractContextManager[None]:
        """Store ``metadata`` with the commits made in the block (none: the session's own).

        Spark stores one ``userMetadata`` string: the metadata as a JSON object, which
        ``commit_info.user_metadata`` reads back.
        """
        if not metadata:
            return nullcontext()
        stored = json.dumps(dict(metadata), sort_keys=True)
        return session_conf(self._session, USER_METADATA_CONF, stored)
