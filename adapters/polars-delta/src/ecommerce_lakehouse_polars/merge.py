"""MERGE of a staged batch into its Delta table, touching only the partitions involved.

The rows are classified in Polars first (insert, update, unchanged), against the stored rows
of the batch's keys only; just the inserts and updates go to delta-rs. The MERGE predicate
names the touched partitions as literals so delta-rs prunes every other file, and the update
clause repeats the classification's condition so the commit metrics can be checked against it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

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
from ecommerce_lakehouse_delta.commit_info import (
    append_as_merge_metrics,
    operation_metrics,
    user_metadata,
)
from ecommerce_lakehouse_polars.delta import (
    create_table,
    delta_arrow_stream,
    local_root,
    write_data_files,
)
from ecommerce_lakehouse_polars.dtypes import arrow_schema, delta_columns

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

    stored = stored_rows(table, survivors, spec)
    classified = classify(survivors, stored, spec)
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
    columns = [*target_columns, *(Column(name=c, type=ColumnType.STRING) for c in evolved)]
    properties = CommitProperties(
        custom_metadata={**commit_metadata, MERGE_COUNTS_KEY: encode_merge_counts(counts)}
    )
    if stored.height == 0:
        # No stored row shares a key with the batch: every survivor is an insert, and a
        # plain append (no join against the table) writes exactly what the MERGE would.
        operation = "append"
        version, metrics = _append(table, changed, columns, spec, bool(evolved), properties)
    else:
        operation = "MERGE"
        version, metrics = _merge(
            table, changed, columns, spec, touched, partition_type, bool(evolved), properties
        )
    for metric, rows in expected.items():
        if metrics.get(metric) != rows:
            raise IntegrityError(
                f"{operation} into {schema.name} (version {version}) reported {metric}="
                f"{metrics.get(metric)} but {rows} row(s) were classified so"
            )
    return MergeOutcome(
        counts=counts,
        version=version,
        touched_partitions=tuple(partition_text(v) for v in touched),
        metrics=metrics,
    )


def _merge(
    table: Any,
    changed: pl.DataFrame,
    columns: Sequence[Column],
    spec: MergeSpec,
    touched: Sequence[Any],
    partition_type: ColumnType,
    evolve: bool,
    properties: Any,
) -> tuple[int, dict[str, int]]:
    """MERGE the changed rows on the key, pruned to the ``touched`` partitions."""
    # Streamed in slices: only one slice at a time is converted to Arrow.
    source = delta_arrow_stream(changed, columns)
    merger = table.merge(
        source,
        predicate=merge_predicate(
            spec, touched, quote=_quote, literal=lambda v: _sql_literal(v, partition_type)
        ),
        source_alias="source",
        target_alias="target",
        # Only add_new_columns yields evolved columns; they become nullable strings.
        merge_schema=evolve,
        commit_properties=properties,
    )
    raw_metrics = (
        merger.when_matched_update_all(predicate=update_condition(spec, quote=_quote))
        .when_not_matched_insert_all()
        .execute()
    )
    return int(table.version()), operation_metrics("MERGE", raw_metrics)


def _append(
    table: Any,
    rows: pl.DataFrame,
    columns: Sequence[Column],
    spec: MergeSpec,
    evolve: bool,
    properties: Any,
) -> tuple[int, dict[str, int]]:
    """Append ``rows`` (all inserts) in one commit; its version and write metrics.

    On a local table, Polars writes the Parquet files (:func:`write_data_files`: one per
    partition, with the statistics delta-rs would record) and delta-rs commits their
    ``add`` actions as one ``WRITE``. A batch that adds columns (``add_new_columns``), or a
    table in an object store, is written by ``write_deltalake`` instead, which evolves the
    schema and writes through the object store itself.

    The commit carries the same custom metadata as a MERGE commit would (reconciliation
    reads only the metadata, never the operation name) and the write metrics delta-rs
    records for a write (``num_added_files``, ``num_added_rows``, ``num_removed_files``).
    The returned metrics are read back from the committed log: the rows of the files the
    commit added (their ``numRecords``, taken from each file's Parquet footer), plus their
    MERGE names (``num_target_rows_inserted`` and so on), so callers read one set of names
    whichever way the rows were written.

    Raises:
        IntegrityError: no single WRITE commit carries the metadata, or the committed files
            are not the ones written.
    """
    root = local_root(str(table.table_uri))
    if evolve or root is None:
        return _append_with_delta_rs(table, rows, columns, spec, evolve, properties)
    from deltalake import CommitProperties

    before = int(table.version())
    files = write_data_files(root, rows, columns, spec.partition_column or None)
    written = {
        "num_added_files": len(files),
        "num_added_rows": sum(f.rows for f in files),
        "num_removed_files": 0,
    }
    table.create_write_transaction(
        [f.action for f in files],
        mode="append",
        schema=arrow_schema(columns),
        partition_by=[spec.partition_column] if spec.partition_column else None,
        commit_properties=CommitProperties(
            custom_metadata={**properties.custom_metadata, "operationMetrics": written},
            max_commit_retries=properties.max_commit_retries,
            app_transactions=properties.app_transactions,
        ),
    )
    commit = _own_commit(table, before, properties)
    logged_files, logged_rows = _logged_rows(table, {f.action.path for f in files})
    if logged_files != len(files):
        raise IntegrityError(
            f"the append (version {commit['version']}) wrote {len(files)} file(s) but the "
            f"table holds {logged_files} of them"
        )
    return int(commit["version"]), append_as_merge_metrics(
        {"num_added_files": logged_files, "num_added_rows": logged_rows, "num_removed_files": 0}
    )


def _logged_rows(table: Any, paths: set[str]) -> tuple[int, int]:
    """How many of the data files at ``paths`` the table holds, and their ``numRecords``.

    The log holds each path URI-encoded (``%`` of an escaped partition value as ``%25``).
    """
    if not paths:
        return 0, 0
    actions = pl.DataFrame(table.get_add_actions(flatten=True)).select("path", "num_records")
    mine = [
        int(rows or 0)
        for path, rows in actions.iter_rows()
        if path in paths or unquote(path) in paths
    ]
    return len(mine), sum(mine)


def _append_with_delta_rs(
    table: Any,
    rows: pl.DataFrame,
    columns: Sequence[Column],
    spec: MergeSpec,
    evolve: bool,
    properties: Any,
) -> tuple[int, dict[str, int]]:
    """:func:`_append` through ``write_deltalake`` (evolved columns, object stores)."""
    from deltalake import write_deltalake

    before = int(table.version())
    write_deltalake(
        table,
        delta_arrow_stream(rows, columns),
        mode="append",
        partition_by=[spec.partition_column] if spec.partition_column else None,
        # Only add_new_columns yields evolved columns; they become nullable strings.
        schema_mode="merge" if evolve else None,
        commit_properties=properties,
    )
    commit = _own_commit(table, before, properties)
    return int(commit["version"]), append_as_merge_metrics(
        operation_metrics("WRITE", commit.get("operationMetrics") or {})
    )


def _own_commit(table: Any, before: int, properties: Any) -> dict[str, Any]:
    """The one WRITE commit after version ``before`` that carries ``properties``' metadata."""
    table.update_incremental()
    version = int(table.version())
    expected = _as_text(properties.custom_metadata)
    mine = [
        entry
        for entry in table.history(max(1, version - before))
        if int(entry.get("version", -1)) > before
        and all(user_metadata(entry).get(k) == v for k, v in expected.items())
    ]
    if len(mine) != 1 or str(mine[0].get("operation")) != "WRITE":
        raise IntegrityError(
            f"the append made no single WRITE commit after version {before} "
            f"({len(mine)} commit(s) carry its metadata)"
        )
    return dict(mine[0])


def _as_text(metadata: Mapping[str, Any]) -> dict[str, str]:
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in metadata.items()}


def tally_counts(tallies: Iterable[Sequence[Any]]) -> dict[str, RowCounts]:
    """Per-file MERGE counts from ``(source file, action code, rows)`` tallies."""
    return counts_by_file(
        (str(file), _ACTIONS_BY_CODE[int(code)], int(rows)) for file, code, rows in tallies
    )


def stored_rows(table: Any, survivors: pl.DataFrame, spec: MergeSpec) -> pl.DataFrame:
    """The stored key, partition, ordering and business columns of the batch's keys.

    Only the data files that may hold one of the keys are read: those whose statistics
    (minimum and maximum of the first key column, in the Delta log) bracket a key of the
    batch, or that have no usable statistics. A batch of new keys usually rules out every
    file, and then nothing is read at all.

    Raises:
        IntegrityError: a key is stored more than once.
    """
    wanted = spec.compared_columns
    partitions = candidate_partitions(table, survivors, spec)
    if partitions is not None and not partitions:
        # A new (or emptied) table, or no file can hold a key of the batch.
        frame = pl.DataFrame(schema={c: survivors.schema[c] for c in wanted})
    else:
        # Polars' Delta scan prunes partitions and row groups with this filter and reads
        # only the wanted columns, whatever Arrow string flavour the Parquet files hold.
        # The survivors hold each key once, so no ``unique`` is needed.
        condition = pl.all_horizontal(
            pl.col(k).is_in(survivors.get_column(k).drop_nulls().implode()) for k in spec.key
        )
        if partitions is not None:
            condition = _partition_filter(spec.partition_column, partitions) & condition
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


#: String statistics of this many UTF-8 bytes or more may be cut prefixes, so they bound
#: nothing: delta-rs cuts them at 64 bytes (on a character boundary, so at least 61 are
#: left), Delta Lake on Spark at 32 UTF-16 code units (at least 32 bytes). Shorter ones are
#: exact.
_STATS_TEXT_LIMIT = 32


def candidate_partitions(table: Any, survivors: pl.DataFrame, spec: MergeSpec) -> list[Any] | None:
    """The partition values of the data files that may hold a key of ``survivors``.

    Returns:
        None when every file must be read (no usable statistics, or a partition value the
        log does not type); else the partition values of the files whose key range (the
        ``min``/``max`` statistics of the first key column) holds some batch key, or whose
        statistics are missing. Empty when no file can hold one.
    """
    if not table.file_uris():
        return []
    key = spec.key[0]
    actions = pl.DataFrame(table.get_add_actions(flatten=True))
    low, high, part = f"min.{key}", f"max.{key}", f"partition.{spec.partition_column}"
    if low not in actions.columns or high not in actions.columns or part not in actions.columns:
        return None
    keys = survivors.get_column(key).drop_nulls()
    stat_type = actions.schema[low]
    if stat_type != keys.dtype and not (
        stat_type == pl.String and keys.dtype in (pl.String, pl.Categorical)
    ):
        return None
    keys = keys.cast(stat_type).unique().sort()
    if keys.len() == 0:
        return []
    lows, highs = actions.get_column(low), actions.get_column(high)
    unknown = lows.is_null() | highs.is_null()
    if stat_type == pl.String:
        limit = _STATS_TEXT_LIMIT
        # A cut maximum may be below the real one.
        unknown = unknown | (lows.str.len_bytes() >= limit) | (highs.str.len_bytes() >= limit)
    # The first batch key not below each file's minimum; the file may hold a key when
    # that key is not above its maximum.
    first = keys.search_sorted(lows.fill_null(keys[0]), side="left")
    inside = (first < keys.len()) & (
        keys.gather(first.clip(0, keys.len() - 1)) <= highs.fill_null(keys[0])
    )
    candidates = actions.filter((unknown | inside).fill_null(True)).get_column(part)
    return candidates.unique().to_list()


def _partition_filter(column: str, values: Sequence[Any]) -> pl.Expr:
    known = [v for v in values if v is not None]
    condition = pl.col(column).is_in(known) if known else pl.lit(False)
    return condition | pl.col(column).is_null() if len(known) < len(values) else condition


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
