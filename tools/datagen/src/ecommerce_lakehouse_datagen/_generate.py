"""``generate``: every registered entity's CSVs, written together and published at once."""

from __future__ import annotations

import math
from datetime import date
from pathlib import Path

from ecommerce_lakehouse.domain.zones import RAW
from ecommerce_lakehouse_datagen import _registry, _timeline
from ecommerce_lakehouse_datagen._arguments import check_arguments
from ecommerce_lakehouse_datagen._spec import EntitySpec, ReferenceSpec, Run, Target
from ecommerce_lakehouse_datagen._timeline import TimelineSpec
from ecommerce_lakehouse_datagen._writer import CsvWriter
from ecommerce_lakehouse_datagen.summary import (
    EntityOutput,
    FaultCounts,
    GenerateSummary,
    ProgressCallback,
)


def generate(
    out: Path,
    *,
    scale: float = 0.01,
    seed: int = 42,
    dirty: float = 0.0,
    start: date = date(2024, 1, 1),
    end: date = date(2024, 3, 31),
    rows_per_file: int = 1_000_000,
    progress: ProgressCallback | None = None,
) -> GenerateSummary:
    """Write Instacart-shaped CSVs of every catalogue entity under ``out/raw-data/``.

    Files are written under hidden ``.part`` names and renamed only once every entity is
    complete, so a pipeline never picks up a half-written data set; on failure nothing is left.

    Args:
        out: the lake root (a local directory, created if needed).
        scale: volume factor; 1 is Instacart's size (~49.7k products, ~3.4M orders, ~33M items).
            Tiny scales still write every department and at least one order; at most
            ``MAX_SCALE``.
        seed: random seed; the same seed and arguments give byte-identical files.
        dirty: fraction of rows damaged or re-sent (0 = every row valid with unique keys).
        start: first day of the order timestamps.
        end: last day of the order timestamps (inclusive).
        rows_per_file: maximum data rows per CSV file (one more when an in-file duplicate
            pair would otherwise straddle two files).
        progress: called after every chunk with the entity name and its rows written so far.

    Returns:
        Per-entity row counts, files and injected fault counts.

    Raises:
        ConfigurationError: an argument is out of range, ``out`` cannot be written, or the raw
            zone already holds generated files.
    """
    check_arguments(
        scale=scale, seed=seed, dirty=dirty, start=start, end=end, rows_per_file=rows_per_file
    )
    root = Path(out)
    run = Run(scale=scale, seed=seed, dirty=dirty, start=start, end=end)
    specs = _registry.specs()
    digits = _file_number_digits(run, tuple(specs.values()), rows_per_file)
    targets = {
        name: Target(
            run=run,
            writer=CsvWriter(
                directory=root / RAW / name,
                entity=name,
                columns=spec.schema.column_names,
                extra_columns=spec.extra_columns if dirty > 0 else (),
                rows_per_file=rows_per_file,
                digits=digits,
                progress=progress,
            ),
            faults=dict.fromkeys(FaultCounts.kinds(), 0),
            fault_stream=spec.fault_stream,
        )
        for name, spec in specs.items()
    }
    writers = [target.writer for target in targets.values()]
    for writer in writers:
        writer.prepare()
    try:
        # Reference data first: the order timeline draws from it.
        for name, spec in specs.items():
            if isinstance(spec, ReferenceSpec):
                spec.write(targets[name])
        _timeline.write_timeline(
            run,
            [
                (spec, targets[name])
                for name, spec in specs.items()
                if isinstance(spec, TimelineSpec)
            ],
        )
        for writer in writers:
            writer.close()
        for writer in writers:
            writer.publish()
    except BaseException:
        for writer in writers:
            writer.abort()
        raise
    return GenerateSummary(
        out=root,
        scale=scale,
        seed=seed,
        dirty=dirty,
        start=start,
        end=end,
        users=_timeline.user_count(scale),
        entities=tuple(_output(name, target) for name, target in targets.items()),
    )


def _output(name: str, target: Target) -> EntityOutput:
    writer = target.writer
    return EntityOutput(
        name=name,
        rows=writer.rows,
        files=tuple(writer.files),
        faults=FaultCounts(**(target.faults | {"extra_column_files": writer.extra_column_files})),
    )


def _file_number_digits(run: Run, specs: tuple[EntitySpec, ...], rows_per_file: int) -> int:
    # File names must sort in ingestion order, so the zero padding must cover the last file;
    # the bounds over-estimate rows (items tail, re-sent rows), plus the trailing files.
    timeline = [spec for spec in specs if isinstance(spec, TimelineSpec)]
    reference = sum(spec.rows_bound(run) for spec in specs if isinstance(spec, ReferenceSpec))
    rows = _timeline.rows_bound(run, timeline) + reference
    files = math.ceil(rows / rows_per_file) + 2
    return max(4, len(str(files)))
