"""MERGE of a staged batch into its Delta table, touching only the partitions involved.

The rows are classified in Polars first (insert, update, unchanged), against the stored rows
of the batch's keys only; just the inserts and updates go to delta-rs. The MERGE predicate
names the touched partitions as literals so delta-rs prunes every other file, and the update
clause repeats the classification's condition so the commit metrics can be checked against it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

import polars as pl

from ecommerce_lakehouse.domain.audit import RowCounts
from ecommerce_lakehouse.domain.errors import IntegrityError
from ecommerce_lakehouse.domain.schemas import SOURCE_FILE, MergeSpec, TableSchema
from ecommerce_lakehouse.domain.types import Column, ColumnType
from ecommerce_lakehouse.ports.engine import (
    MERGE_COUNTS_KEY,
    MergeOutcome,
    StagedBatch,
    encode_merge_counts,
)
from ecommerce_lakehouse_polars.delta import create_table, integer_metrics, to_delta_arrow
from ecommerce_lakehouse_polars.dtypes import delta_columns

_STORED = "__stored"
_EXISTS = "__exists"
_ACTION = "__action"
INSERT, UPDATE, UNCHANGED = "insert", "update", "unchanged"


def merge_batch(
    uri: str,
    storage_options: Mapping[str, str],
    batch: StagedBatch[pl.DataFrame],
    schema: TableSchema,
    commit_metadata: Mapping[str, str],
) -> MergeOutcome:
    """MERGE ``batch.survivors`` into the table at ``uri`` (created when missing).

    Args:
        uri: the Delta table.
        storage_options: object-store options.
        batch: the staged batch.
        schema: the table's schema (key, business, ordering and partition columns).
        commit_metadata: stored as custom metadata of the Delta commit, with the per-file
            counts under ``MERGE_COUNTS_KEY``.

    Returns:
        Per-file inserted, updated and unchanged counts, the table version after the commit
        (the current one when nothing was written), the touched partition values and the
        MERGE's own metrics.

    Raises:
        IntegrityError: the table holds a key twice, or delta-rs reports other inserted or
            updated row counts than the classification.
    """
    from deltalake import CommitProperties

    spec = schema.merge
    table = create_table(
        uri, schema.stored_columns, spec.partition_column, storage_options, schema.name
    )
    survivors = batch.survivors
    if survivors.height == 0:
        return MergeOutcome(counts={}, version=table.version(), touched_partitions=(), metrics={})

    classified = classify(survivors, stored_rows(table, survivors, spec), spec)
    counts = _counts_by_file(classified)
    changed = classified.filter(pl.col(_ACTION) != UNCHANGED)
    if changed.height == 0:
        return MergeOutcome(
            counts=counts, version=table.version(), touched_partitions=(), metrics={}
        )

    partition_type = schema.types.get(spec.partition_column, ColumnType.STRING)
    touched = touched_partition_values(changed, spec.partition_column)
    target_columns = delta_columns(table.schema())
    known = {c.name for c in target_columns}
    evolved = [c for c in batch.extra_columns if c not in known]
    source = to_delta_arrow(
        changed,
        [*target_columns, *(Column(name=c, type=ColumnType.STRING) for c in evolved)],
    )
    merger = table.merge(
        source,
        predicate=merge_predicate(spec, touched, partition_type),
        source_alias="source",
        target_alias="target",
        # Only add_new_columns yields evolved columns; they become nullable strings.
        merge_schema=bool(evolved),
        commit_properties=CommitProperties(
            custom_metadata={**commit_metadata, MERGE_COUNTS_KEY: encode_merge_counts(counts)}
        ),
    )
    raw_metrics = (
        merger.when_matched_update_all(predicate=update_condition(spec))
        .when_not_matched_insert_all()
        .execute()
    )
    metrics = integer_metrics(raw_metrics)
    version = int(table.version())
    expected = {
        "num_target_rows_inserted": changed.filter(pl.col(_ACTION) == INSERT).height,
        "num_target_rows_updated": changed.filter(pl.col(_ACTION) == UPDATE).height,
    }
    for metric, rows in expected.items():
        if metrics.get(metric) != rows:
            raise IntegrityError(
                f"MERGE into {schema.name} (version {version}) reported {metric}="
                f"{metrics.get(metric)} but {rows} row(s) were classified so"
            )
    return MergeOutcome(
        counts=counts,
        version=version,
        touched_partitions=tuple(_partition_text(v) for v in touched),
        metrics=metrics,
    )


def stored_rows(table: Any, survivors: pl.DataFrame, spec: MergeSpec) -> pl.DataFrame:
    """The stored key, partition, ordering and business columns of the batch's keys.

    Raises:
        IntegrityError: a key is stored more than once.
    """
    wanted = list(
        dict.fromkeys(
            [
                *spec.key,
                spec.partition_column,
                *([spec.ordering_column] if spec.ordering_column else []),
                *spec.business_columns,
            ]
        )
    )
    # Polars' Delta scan prunes partitions and row groups with this filter and reads only
    # the wanted columns, whatever Arrow string flavour the Parquet files were written in.
    condition = pl.all_horizontal(
        pl.col(k).is_in(survivors.get_column(k).drop_nulls().unique().implode()) for k in spec.key
    )
    frame = pl.scan_delta(table).filter(condition).select(wanted).collect()
    # Compare like with like: the stored types may be wider than the batch's.
    stored = frame.with_columns(pl.col(c).cast(survivors.schema[c]) for c in wanted)
    if len(spec.key) > 1:
        stored = stored.join(survivors.select(spec.key).unique(), on=list(spec.key), how="semi")
    repeated = stored.filter(pl.struct(list(spec.key)).is_duplicated())
    if repeated.height:
        sample = ", ".join(str(k) for k in repeated.select(spec.key).unique().head(5).rows())
        raise IntegrityError(f"the table stores these keys more than once: {sample}")
    return stored


def classify(survivors: pl.DataFrame, stored: pl.DataFrame, spec: MergeSpec) -> pl.DataFrame:
    """``survivors`` with an action column and the stored partition value of their key.

    Inserted when the key is new; updated when some business column differs (null-safe)
    and, with an ordering column, the incoming value is greater or equal to the stored one;
    unchanged otherwise (``domain.decisions.merge_action``).
    """
    renamed = stored.rename({c: c + _STORED for c in stored.columns if c not in spec.key})
    joined = survivors.join(
        renamed.with_columns(pl.lit(True).alias(_EXISTS)),
        on=list(spec.key),
        how="left",
        maintain_order="left",
    )
    differs = pl.any_horizontal(
        [pl.col(c).ne_missing(pl.col(c + _STORED)) for c in spec.business_columns]
        or [pl.lit(False)]
    )
    newer = (
        pl.col(spec.ordering_column) >= pl.col(spec.ordering_column + _STORED)
        if spec.ordering_column
        else pl.lit(True)
    )
    action = (
        pl.when(pl.col(_EXISTS).is_null())
        .then(pl.lit(INSERT))
        .when((differs & newer).fill_null(False))
        .then(pl.lit(UPDATE))
        .otherwise(pl.lit(UNCHANGED))
    )
    return joined.with_columns(action.alias(_ACTION))


def touched_partition_values(changed: pl.DataFrame, partition_column: str) -> list[Any]:
    """Partition values of the changed rows plus those their keys are stored in.

    A row whose partition value changed must be matched (and so replaced) in its old
    partition, so that partition is read and rewritten too.
    """
    stored = changed.filter(pl.col(_ACTION) == UPDATE).get_column(partition_column + _STORED)
    values = set(changed.get_column(partition_column).to_list()) | set(stored.to_list())
    return sorted(values, key=lambda v: (v is not None, "" if v is None else _partition_text(v)))


def merge_predicate(spec: MergeSpec, touched: Sequence[Any], partition_type: ColumnType) -> str:
    """The MERGE condition: key equality, with the target limited to touched partitions."""
    keys = " AND ".join(f"target.{_quote(k)} = source.{_quote(k)}" for k in spec.key)
    column = f"target.{_quote(spec.partition_column)}"
    literals = [_sql_literal(v, partition_type) for v in touched if v is not None]
    allowed = [f"{column} IN ({', '.join(literals)})"] if literals else []
    if any(v is None for v in touched):
        allowed.append(f"{column} IS NULL")
    return f"{keys} AND ({' OR '.join(allowed)})"


def update_condition(spec: MergeSpec) -> str:
    """SQL twin of the classification's update condition."""
    differs = " OR ".join(
        f"(source.{_quote(c)} IS DISTINCT FROM target.{_quote(c)})" for c in spec.business_columns
    )
    clauses = [f"({differs or 'false'})"]
    if spec.ordering_column:
        column = _quote(spec.ordering_column)
        clauses.insert(0, f"(source.{column} >= target.{column})")
    return " AND ".join(clauses)


def _counts_by_file(classified: pl.DataFrame) -> dict[str, RowCounts]:
    tallies: dict[str, dict[str, int]] = {}
    grouped = classified.group_by(SOURCE_FILE, _ACTION).len()
    for file, action, rows in grouped.iter_rows():
        tallies.setdefault(str(file), {})[str(action)] = int(rows)
    return {
        file: RowCounts(
            inserted=t.get(INSERT, 0), updated=t.get(UPDATE, 0), unchanged=t.get(UNCHANGED, 0)
        )
        for file, t in tallies.items()
    }


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _partition_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, date | datetime):
        return value.isoformat()
    return str(value)


def _sql_literal(value: Any, column_type: ColumnType) -> str:
    match column_type:
        case ColumnType.INT | ColumnType.BIGINT:
            return str(int(value))
        case ColumnType.DOUBLE:
            return repr(float(value))
        case ColumnType.BOOLEAN:
            return "true" if value else "false"
        case ColumnType.STRING | ColumnType.DATE | ColumnType.TIMESTAMP:
            # delta-rs coerces a quoted literal to the column's type (e.g. '…'::date).
            text = _partition_text(value) or ""
            return "'" + text.replace("'", "''") + "'"
