"""Helpers of the engine integration suites: CSV files, runs and real Delta tables.

Everything here speaks to an engine through the ``TableEngine`` port and reads tables back
with delta-rs (through Polars), whichever engine wrote them, so every check on a stored
table also proves that delta-rs reads what the engine wrote.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
from deltalake import DeltaTable

from ecommerce_lakehouse.domain.audit import RowCounts
from ecommerce_lakehouse.domain.schemas import TableSchema
from ecommerce_lakehouse.domain.types import SchemaEvolution
from ecommerce_lakehouse.ports.engine import (
    MergeOutcome,
    RunContext,
    SourceFile,
    StagedBatch,
    TableRef,
)
from tests.contract.conftest_engines import EngineCase

Content = str | bytes
WriteSource = Callable[..., SourceFile]


def source_writer(directory: Path) -> WriteSource:
    """Write a raw CSV under ``directory`` (text is UTF-8 encoded as is), as a SourceFile."""

    def write(name: str, content: Content, schema: TableSchema, ordinal: int = 0) -> SourceFile:
        path = directory / "raw-data" / schema.name / name
        path.parent.mkdir(parents=True, exist_ok=True)
        data = content.encode() if isinstance(content, str) else content
        path.write_bytes(data)
        return SourceFile(
            key=f"raw-data/{schema.name}/{name}",
            uri=str(path),
            entity=schema.entity,
            size_bytes=len(data),
            checksum="0" * 64,
            ordinal=ordinal,
        )

    return write


def make_run(
    run_id: str = "run-1", evolution: SchemaEvolution = SchemaEvolution.RESCUE
) -> RunContext:
    return RunContext(
        run_id=run_id, started_at=datetime(2024, 6, 1, 12, tzinfo=UTC), evolution=evolution
    )


def csv_text(header: str, *rows: str, eol: str = "\n") -> str:
    """A CSV document from a header and rows (each already comma-joined)."""
    return eol.join([header, *rows]) + eol


def delta_rows(uri: str, sort: Sequence[str] | str | None = None) -> list[dict[str, Any]]:
    """A Delta table's current rows, read by delta-rs, as Polars gives them (sorted)."""
    frame = pl.DataFrame(pl.from_arrow(DeltaTable(uri).to_pyarrow_table()))
    if sort:
        frame = frame.sort(sort, nulls_last=True)
    return frame.to_dicts()


@dataclass
class Ingested:
    """What one simulated run did to one table."""

    staged: StagedBatch[Any]
    outcome: MergeOutcome
    per_file: dict[str, RowCounts] = field(default_factory=dict)


@dataclass
class Lake:
    """A curated table in ``root`` fed the way the application feeds it, by one engine.

    Two Lakes on the same ``root`` with different engines feed the same tables (interop;
    start the second one's ``runs`` where the first's stopped to keep run ids distinct).
    """

    case: EngineCase
    write_source: WriteSource
    root: Path
    runs: int = 0

    @property
    def engine(self) -> Any:
        return self.case.engine

    def ref(self, schema: TableSchema) -> TableRef:
        return TableRef(name=schema.name, uri=str(self.root / "lakehouse-dwh" / schema.name))

    def ingest(
        self,
        schema: TableSchema,
        files: Sequence[tuple[str, Content]],
        evolution: SchemaEvolution = SchemaEvolution.RESCUE,
    ) -> Ingested:
        """Read, stage and MERGE files (in name order), like one run of the pipeline.

        Run ``n`` of the lake is ``run-n`` and its files are written as ``r<n>_<name>``.
        """
        self.runs += 1
        run = make_run(f"run-{self.runs}", evolution)
        sources = [
            self.write_source(f"r{self.runs}_{name}", content, schema, ordinal)
            for ordinal, (name, content) in enumerate(files)
        ]
        frames = [self.engine.read_source(s, schema, evolution) for s in sources]
        staged = self.engine.stage(frames, schema, run)
        ref = self.ref(schema)
        self.engine.ensure_table(ref, schema.stored_columns, schema.partition_column)
        outcome = self.engine.merge(ref, staged, schema, {"lakehouse.run_id": run.run_id})
        per_file = {}
        for source in sources:
            before = staged.counts.get(source.key, RowCounts())
            after = outcome.counts.get(source.key, RowCounts())
            per_file[source.key.rsplit("/", 1)[1].split("_", 1)[1]] = RowCounts(
                rows_read=before.rows_read,
                quarantined=before.quarantined,
                duplicates_in_batch=before.duplicates_in_batch,
                inserted=after.inserted,
                updated=after.updated,
                unchanged=after.unchanged,
            ).verify(source.key)
        return Ingested(staged=staged, outcome=outcome, per_file=per_file)

    def table(self, schema: TableSchema) -> DeltaTable:
        return DeltaTable(self.ref(schema).uri)

    def rows(self, schema: TableSchema, sort: str | None = None) -> list[dict[str, Any]]:
        return delta_rows(self.ref(schema).uri, sort or schema.primary_key[0])

    def files_by_partition(self, schema: TableSchema) -> dict[str | None, set[str]]:
        """Data files of the current version, per partition value."""
        actions = pl.from_arrow(pa.table(self.table(schema).get_add_actions(flatten=True)))
        assert isinstance(actions, pl.DataFrame)
        result: dict[str | None, set[str]] = {}
        column = f"partition.{schema.partition_column}"
        for path, value in actions.select("path", column).iter_rows():
            key = None if value is None else str(value)
            result.setdefault(key, set()).add(path)
        return result
