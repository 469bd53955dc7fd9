"""Fixtures of the Polars + delta-rs engine tests: CSV files, runs and real Delta tables."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pytest
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
from ecommerce_lakehouse_polars.engine import PolarsDeltaTableEngine

Content = str | bytes


@pytest.fixture
def engine() -> PolarsDeltaTableEngine:
    return PolarsDeltaTableEngine({})


@pytest.fixture
def write_source(tmp_path: Path) -> Callable[..., SourceFile]:
    """Write a raw CSV (text is UTF-8 encoded as is) and describe it as a SourceFile."""

    def write(name: str, content: Content, schema: TableSchema, ordinal: int = 0) -> SourceFile:
        path = tmp_path / "raw-data" / schema.name / name
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


@dataclass
class Ingested:
    """What one simulated run did to one table."""

    staged: StagedBatch[pl.DataFrame]
    outcome: MergeOutcome
    per_file: dict[str, RowCounts] = field(default_factory=dict)


@dataclass
class Lake:
    """A curated table in ``tmp_path`` fed the way the application feeds it."""

    engine: PolarsDeltaTableEngine
    write_source: Callable[..., SourceFile]
    root: Path
    runs: int = 0

    def ref(self, schema: TableSchema) -> TableRef:
        return TableRef(name=schema.name, uri=str(self.root / "lakehouse-dwh" / schema.name))

    def ingest(
        self,
        schema: TableSchema,
        files: Sequence[tuple[str, Content]],
        evolution: SchemaEvolution = SchemaEvolution.RESCUE,
    ) -> Ingested:
        """Read, stage and MERGE files (in name order), like one run of the pipeline."""
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
        outcome = self.engine.merge(ref, staged, schema, run, {"lakehouse.run_id": run.run_id})
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
        frame = pl.DataFrame(pl.from_arrow(self.table(schema).to_pyarrow_table()))
        return frame.sort(sort or schema.primary_key[0]).to_dicts()

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


@pytest.fixture
def lake(
    engine: PolarsDeltaTableEngine, write_source: Callable[..., SourceFile], tmp_path: Path
) -> Lake:
    return Lake(engine=engine, write_source=write_source, root=tmp_path)


def csv_text(header: str, *rows: str, eol: str = "\n") -> str:
    """A CSV document from a header and rows (each already comma-joined)."""
    return eol.join([header, *rows]) + eol
