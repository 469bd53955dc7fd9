"""MERGE of a staged batch into its Delta table, touching only the partitions involved.

The rows are classified in Polars first (insert, update, unchanged), against the stored rows
of the batch's keys only; just the inserts and updates go to delta-rs. The MERGE predicate
names the touched partitions as literals so delta-rs prunes every other file, and the update
clause repeats the classification's condition so the commit metrics can be checked against it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from ecommerce_lakehouse.domain.audit import RowCounts
from ecommerce_lakehouse.domain.decisions import (
    MergeAction,
    counts_by_file,
    partition_order,
    partition_text,
)
from ecommerce_lakehouse.domain.errors import IntegrityError
from ecommerce_lakehouse.domain.merge_sql import merge_predicate, update_condition
from ecommerce_lakehouse.domain.schemas import SOURCE_FILE, MergeSpec, TableSchema
from ecommerce_lakehouse.domain.types import Column, ColumnType
from ecommerce_lakehouse.ports.engine import (
    MERGE_COUNTS_KEY,
    MergeOutcome,
    StagedBatch,
    encode_merge_counts,
)
from ecommerce_lakehouse_delta.commit_info import operation_metrics
from ecommerce_lakehouse_polars.delta import create_table, delta_arrow_stream
from ecommerce_lakehouse_polars.dtypes import delta_columns

# Suffix of the stored values' columns; engine-internal names hold a capital letter, so no
# evolved column (always ``[a-z0-9_]``) can take them.
_STORED = "_Stored"
_ACTION = "_Action"
_ROW = "_Row"
_ROW_INDEX = pl.int_range(pl.len(), dtype=pl.UInt32).alias(_ROW)
#: The code each survivor is tagged with for its action, a ``UInt8``: a column of action
#: names would cost 16 bytes a row. The codes never leave this engine.
ACTION_CODES: Mapping[MergeAction, int] = {action: code for code, action in enumerate(MergeAction)}
_ACTIONS_BY_CODE = {code: action for action, code in ACTION_CODES.items()}


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
    actions = classified.actions
    tagged = pl.DataFrame([survivors.get_column(SOURCE_FILE), actions.alias(_ACTION)])
    counts = tally_counts(tagged.group_by(SOURCE_FILE, _ACTION).len().iter_rows())
    expected = {
        "num_target_rows_inserted": int((actions == ACTION_CODES[MergeAction.INSERT]).sum()),
        "num_target_rows_updated": int((actions == ACTION_CODES[MergeAction.UPDATE]).sum()),
    }
    if not any(expected.values()):
        return MergeOutcome(
            counts=counts, version=table.version(), touched_partitions=(), metrics={}
        )
    unchanged = actions == ACTION_CODES[MergeAction.UNCHANGED]
    # The survivors themselves when every row changes (a first load): no copy.
    changed = survivors.filter(~unchanged) if unchanged.any() else survivors

    partition_type = schema.types.get(spec.partition_column, ColumnType.STRING)
    touched = touched_partition_values(
        changed.get_column(spec.partition_column), classified.moved_from
    )
    target_columns = delta_columns(table.schema())
    known = {c.name for c in target_columns}
    evolved = [c for c in batch.extra_columns if c not in known]
    # Streamed in slices: only one slice at a time is converted to Arrow.
    source = delta_arrow_stream(
        changed,
        [*target_columns, *(Column(name=c, type=ColumnType.STRING) for c in evolved)],
    )
    merger = table.merge(
        source,
        predicate=merge_predicate(
            spec, touched, quote=_quote, literal=lambda v: _sql_literal(v, partition_type)
        ),
        source_alias="source",
        target_alias="target",
        # Only add_new_columns yields evolved columns; they become nullable strings.
        merge_schema=bool(evolved),
        commit_properties=CommitProperties(
            custom_metadata={**commit_metadata, MERGE_COUNTS_KEY: encode_merge_counts(counts)}
        ),
    )
    raw_metrics = (
        merger.when_matched_update_all(predicate=update_condition(spec, quote=_quote))
        .when_not_matched_insert_all()
        .execute()
    )
    metrics = operation_metrics("MERGE", raw_metrics)
    version = int(table.version())
    for metric, rows in expected.items():
        if metrics.get(metric) != rows:
            raise IntegrityError(
                f"MERGE into {schema.name} (version {version}) reported {metric}="
                f"{metrics.get(metric)} but {rows} row(s) were classified so"
            )
    return MergeOutcome(
        counts=counts,
        version=version,
        touched_partitions=tuple(partition_text(v) for v in touched),
        metrics=metrics,
    )


def tally_counts(tallies: Iterable[Sequence[Any]]) -> dict[str, RowCounts]:
    """Per-file MERGE counts from ``(source file, action code, rows)`` tallies."""
    return counts_by_file(
        (str(file), _ACTIONS_BY_CODE[int(code)], int(rows)) for file, code, rows in tallies
    )


def stored_rows(table: Any, survivors: pl.DataFrame, spec: MergeSpec) -> pl.DataFrame:
    """The stored key, partition, ordering and business columns of the batch's keys.

    Raises:
        IntegrityError: a key is stored more than once.
    """
    wanted = spec.compared_columns
    if not table.file_uris():
        # A new (or emptied) table: nothing to look up.
        frame = pl.DataFrame(schema={c: survivors.schema[c] for c in wanted})
    else:
        # Polars' Delta scan prunes partitions and row groups with this filter and reads
        # only the wanted columns, whatever Arrow string flavour the Parquet files hold.
        # The survivors hold each key once, so no ``unique`` is needed.
        condition = pl.all_horizontal(
            pl.col(k).is_in(survivors.get_column(k).drop_nulls().implode()) for k in spec.key
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


@dataclass(frozen=True, slots=True)
class Classification:
    """What the MERGE will do with each survivor.

    Attributes:
        actions: one code of :data:`ACTION_CODES` per survivor, in the survivors' order.
        moved_from: the stored partition values of the keys to update.
    """

    actions: pl.Series
    moved_from: pl.Series


def classify(survivors: pl.DataFrame, stored: pl.DataFrame, spec: MergeSpec) -> Classification:
    """The action of every survivor and the stored partition values of updated keys.

    Inserted when the key is new; updated when some business column differs (null-safe)
    and, with an ordering column, the incoming value is greater or equal to the stored one;
    unchanged otherwise (``domain.decisions.merge_action``).
    """
    partition = spec.partition_column + _STORED
    actions = pl.repeat(
        ACTION_CODES[MergeAction.INSERT], survivors.height, dtype=pl.UInt8, eager=True
    )
    if stored.height == 0:
        return Classification(
            actions, pl.Series(partition, [], dtype=stored.schema[spec.partition_column])
        )
    renamed = stored.rename({c: c + _STORED for c in stored.columns if c not in spec.key})
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
        pl.when((differs & newer).fill_null(False))
        .then(pl.lit(ACTION_CODES[MergeAction.UPDATE], pl.UInt8))
        .otherwise(pl.lit(ACTION_CODES[MergeAction.UNCHANGED], pl.UInt8))
    )
    # Only the survivors whose key is stored are joined; the others stay inserts.
    matched = (
        survivors.lazy()
        .select(_ROW_INDEX, *spec.compared_columns)
        .join(renamed.lazy(), on=list(spec.key), how="inner")
        .select(_ROW, action.alias(_ACTION), partition)
        .collect()
    )
    actions = actions.scatter(matched.get_column(_ROW), matched.get_column(_ACTION))
    moved_from = matched.filter(pl.col(_ACTION) == ACTION_CODES[MergeAction.UPDATE]).get_column(
        partition
    )
    return Classification(actions, moved_from)


def touched_partition_values(changed: pl.Series, moved_from: pl.Series) -> list[Any]:
    """Partition values of the changed rows plus those their keys are stored in.

    A row whose partition value changed must be matched (and so replaced) in its old
    partition, so that partition is read and rewritten too.
    """
    values = set(changed.unique().to_list()) | set(moved_from.unique().to_list())
    return partition_order(values)


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


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
            text = partition_text(value) or ""
            return "'" + text.replace("'", "''") + "'"
