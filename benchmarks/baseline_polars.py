"""Baseline: the plain Polars + delta-rs script a data engineer would write instead of the product.

Usage: python benchmarks/baseline_polars.py --lake DIR

Reads every CSV under DIR/raw-data/<entity>/ and writes DIR/baseline-polars/<table>. For each
entity in ingestion order: read as text, trim, cast (types from the core's ``SCHEMAS``; a value
that does not cast becomes null), drop rows with a null key or timestamp, derive the date,
keep the latest row per key, then write (first load) or MERGE into the Delta table, the MERGE
restricted to the partitions present in the batch. Then checks: key unique, key not null,
order_items' foreign keys. Prints one JSON line.

What it leaves out, on purpose (it is the comparison point, not a second product): no
quarantine, line numbers, audit tables, archive, idempotency by checksum, lock, or handling of
rows that move to another partition.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import polars as pl
from deltalake import DeltaTable, write_deltalake

from ecommerce_lakehouse.domain.schemas import SCHEMAS, TableSchema
from ecommerce_lakehouse.domain.types import ColumnType

OUTPUT = "baseline-polars"

POLARS_TYPES: dict[ColumnType, pl.DataType] = {
    ColumnType.STRING: pl.String(),
    ColumnType.INT: pl.Int32(),
    ColumnType.BIGINT: pl.Int64(),
    ColumnType.DOUBLE: pl.Float64(),
    ColumnType.BOOLEAN: pl.Boolean(),
    ColumnType.DATE: pl.Date(),
    ColumnType.TIMESTAMP: pl.Datetime("us", "UTC"),
}
_BOOLEANS = {"true": True, "1": True, "false": False, "0": False}


def cast(column: str, type_: ColumnType) -> pl.Expr:
    """Trimmed text, empty as null, cast leniently: what does not parse becomes null."""
    trimmed = pl.col(column).str.strip_chars()
    text: pl.Expr = pl.when(trimmed != "").then(trimmed)
    typed: pl.Expr
    match type_:
        case ColumnType.STRING:
            typed = text
        case ColumnType.BOOLEAN:
            typed = text.str.to_lowercase().replace_strict(
                _BOOLEANS, default=None, return_dtype=pl.Boolean
            )
        case ColumnType.DATE:
            typed = text.str.to_date("%Y-%m-%d", strict=False)
        case ColumnType.TIMESTAMP:
            # The format is inferred from the first value (ISO 8601 without offset in the
            # generated files); values are UTC. Others, offsets included, become null.
            typed = text.str.to_datetime(time_unit="us", time_zone="UTC", strict=False)
        case _:
            typed = text.cast(POLARS_TYPES[type_], strict=False)
    return typed.alias(column)


def read(schema: TableSchema, files: list[Path]) -> pl.DataFrame:
    derived = schema.derived_date[0] if schema.derived_date else None
    # One scan per file: a file may carry extra columns, which are dropped here.
    text = pl.concat(
        [pl.scan_csv(f, infer_schema=False).select(schema.source_columns) for f in sorted(files)],
        how="vertical",
    )
    typed = text.select(cast(c, t) for c, t in schema.types.items() if c != derived)
    required = [*schema.primary_key]
    if schema.ordering_column:
        required.append(schema.ordering_column)
    typed = typed.drop_nulls(required)
    if schema.derived_date:
        date_column, ts_column = schema.derived_date
        typed = typed.with_columns(pl.col(ts_column).dt.date().alias(date_column))
    typed = typed.select(schema.column_names)
    if schema.ordering_column:
        # Stable sort, so ties keep file order and the last occurrence wins below.
        typed = typed.sort(schema.ordering_column, maintain_order=True)
    return typed.unique(subset=list(schema.primary_key), keep="last").collect()


def _sql_literal(value: object) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def load(schema: TableSchema, batch: pl.DataFrame, table: Path) -> str:
    partition = schema.partition_column
    if batch.is_empty():
        return "nothing"
    if not DeltaTable.is_deltatable(str(table)):
        write_deltalake(str(table), batch, mode="overwrite", partition_by=[partition])
        return "write"
    values = batch.get_column(partition).unique().drop_nulls().sort().to_list()
    on = " AND ".join(f"t.{k} = s.{k}" for k in schema.primary_key)
    # Partition literals let delta-rs prune the target to the batch's partitions.
    pruning = f"t.{partition} IN ({', '.join(_sql_literal(v) for v in values)})"
    merger = DeltaTable(str(table)).merge(
        batch, predicate=f"{on} AND {pruning}", source_alias="s", target_alias="t"
    )
    ordering = schema.ordering_column
    newer = f"s.{ordering} > t.{ordering}" if ordering else None
    merger.when_matched_update_all(predicate=newer).when_not_matched_insert_all().execute()
    return "merge"


def checks(out: Path) -> dict[str, int]:
    """Offending row counts (0 = passed) over the tables that exist."""
    tables = {
        s.name: pl.scan_delta(str(out / s.name))
        for s in SCHEMAS
        if DeltaTable.is_deltatable(str(out / s.name))
    }
    found: dict[str, int] = {}
    for schema in SCHEMAS:
        if schema.name not in tables:
            continue
        frame, key = tables[schema.name], list(schema.primary_key)
        found[f"{schema.name}.primary_key_unique"] = _count(
            frame.group_by(key).len().filter(pl.col("len") > 1)
        )
        found[f"{schema.name}.primary_key_not_null"] = _count(
            frame.filter(pl.any_horizontal(pl.col(key).is_null()))
        )
        for column, parent in schema.references:
            if parent not in tables:
                continue
            (parent_key,) = next(s for s in SCHEMAS if s.name == parent).primary_key
            parents = tables[parent].select(pl.col(parent_key).alias(column))
            found[f"{schema.name}.{column}_in_{parent}"] = _count(
                frame.join(parents, on=column, how="anti")
            )
    return found


def _count(frame: pl.LazyFrame) -> int:
    return int(frame.select(pl.len()).collect().item())


@contextmanager
def timed(seconds: dict[str, float], step: str) -> Iterator[None]:
    started = time.perf_counter()
    yield
    seconds[step] = round(time.perf_counter() - started, 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lake", type=Path, required=True)
    args = parser.parse_args()
    raw, out = args.lake / "raw-data", args.lake / OUTPUT
    seconds: dict[str, float] = {}
    loads: dict[str, str] = {}
    began = time.perf_counter()
    for schema in SCHEMAS:
        files = sorted((raw / schema.name).glob("*.csv"))
        if not files:
            continue
        with timed(seconds, f"{schema.name}.read"):
            batch = read(schema, files)
        kind = "merge" if DeltaTable.is_deltatable(str(out / schema.name)) else "write"
        with timed(seconds, f"{schema.name}.{kind}"):
            loads[schema.name] = load(schema, batch, out / schema.name)
        del batch
    with timed(seconds, "checks"):
        found = checks(out)
        rows = {
            s.name: _count(pl.scan_delta(str(out / s.name)))
            for s in SCHEMAS
            if DeltaTable.is_deltatable(str(out / s.name))
        }
    seconds["total"] = round(time.perf_counter() - began, 3)
    summary = {
        "tool": OUTPUT,
        "loads": loads,
        "rows": rows,
        "checks": found,
        "seconds": seconds,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
