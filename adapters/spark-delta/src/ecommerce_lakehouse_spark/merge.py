"""MERGE of a staged batch into its Delta table, touching only the partitions involved.

The twin of the Polars engine's MERGE: the rows are classified first (insert, update,
unchanged) against the stored rows of the batch's keys only, and just the inserts and
updates go to Delta. The MERGE condition names the touched partitions as literals so Delta
prunes every other file, and the update clause repeats the classification's condition so
the commit metrics can be checked against it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from functools import reduce
from typing import TYPE_CHECKING, Any

from ecommerce_lakehouse.domain.audit import RowCounts
from ecommerce_lakehouse.domain.decisions import (
    MergeAction,
    counts_by_file,
    partition_order,
    partition_text,
)
from ecommerce_lakehouse.domain.errors import IntegrityError
from ecommerce_lakehouse.domain.merge_sql import merge_predicate, partition_filter, update_condition
from ecommerce_lakehouse.domain.schemas import SOURCE_FILE, MergeSpec, TableSchema
from ecommerce_lakehouse.domain.types import ColumnType
from ecommerce_lakehouse.ports.engine import (
    MERGE_COUNTS_KEY,
    MergeOutcome,
    StagedBatch,
    encode_merge_counts,
)
from ecommerce_lakehouse_delta.commit_info import operation_metrics
from ecommerce_lakehouse_spark.delta import (
    USER_METADATA_CONF,
    create_table,
    current_version,
    session_conf,
)

if TYPE_CHECKING:
    from delta.tables import DeltaTable
    from pyspark.sql import Column as SparkColumn
    from pyspark.sql import DataFrame, SparkSession

# Engine-internal column names hold a '#', which no stored or evolved column (always
# ``[a-z0-9_]``) can: Spark resolves names case-insensitively, so a capital letter (the
# Polars engine's marker) would not keep them apart.
_STORED = "#stored"
_ACTION = "#action"
_MATCHED = "#matched"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: The code each survivor is tagged with for its action, a ``tinyint``: a column of action
#: names would cost 16 bytes a row. The codes never leave this engine.
ACTION_CODES: Mapping[MergeAction, int] = {action: code for code, action in enumerate(MergeAction)}
_ACTIONS_BY_CODE = {code: action for action, code in ACTION_CODES.items()}
#: The metric (Delta's MERGE statistic ``numTargetFilesAfterSkipping``) with the number of
#: target files the MERGE could read after partition pruning; not in Delta's commit metrics.
FILES_AFTER_SKIPPING = "num_target_files_after_skipping"


def merge_batch(
    session: SparkSession,
    uri: str,
    batch: StagedBatch[DataFrame],
    schema: TableSchema,
    commit_metadata: Mapping[str, str],
) -> MergeOutcome:
    """MERGE ``batch.survivors`` into the table at ``uri`` (created when missing).

    Args:
        session: the Spark session.
        uri: the Delta table.
        batch: the staged batch.
        schema: the table's schema (key, business, ordering and partition columns).
        commit_metadata: stored as custom metadata of the Delta commit (a JSON object in
            its ``userMetadata``), with the per-file counts under ``MERGE_COUNTS_KEY``.

    Returns:
        Per-file inserted, updated and unchanged counts, the table version after the commit
        (the current one when nothing was written), the touched partition values and the
        MERGE's own metrics (under delta-rs's names).

    Raises:
        IntegrityError: the table holds a key twice, or Delta reports other inserted or
            updated row counts than the classification.
    """
    from delta.tables import DeltaTable
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    spec = schema.merge
    create_table(session, uri, schema.stored_columns, spec.partition_column, schema.name)
    table = DeltaTable.forPath(session, uri)
    survivors = batch.survivors
    # Each step below reads these frames again; persisting them keeps the staging plan
    # (CSV read, rules, dedup) and the lookup of stored rows from running several times.
    stored = stored_rows(table, survivors, spec).persist(StorageLevel.MEMORY_AND_DISK)
    classified = None
    try:
        check_unique(stored, spec)
        classified = classify(survivors, stored, spec).persist(StorageLevel.MEMORY_AND_DISK)
        counts = tally_counts(classified.groupBy(SOURCE_FILE, _ACTION).count().collect())
        expected = {
            "num_target_rows_inserted": sum(c.inserted for c in counts.values()),
            "num_target_rows_updated": sum(c.updated for c in counts.values()),
        }
        if not any(expected.values()):
            return MergeOutcome(
                counts=counts, version=current_version(table), touched_partitions=(), metrics={}
            )
        changed = classified.where(F.col(_ACTION) != ACTION_CODES[MergeAction.UNCHANGED])
        partition_type = schema.types.get(spec.partition_column, ColumnType.STRING)
        touched = touched_partition_values(classified, spec, partition_type)

        def literal(value: Any) -> str:
            return sql_literal(value, partition_type)

        target = table.toDF().schema
        known = {f.name for f in target.fields}
        evolved = [c for c in batch.extra_columns if c not in known]
        present = set(survivors.columns)
        # Every target column goes to the MERGE (nulls for stored columns the batch lacks),
        # in the target's types, then the evolved columns as nullable strings.
        source = changed.select(
            *(
                (F.col(_quote(f.name)) if f.name in present else F.lit(None))
                .cast(f.dataType)
                .alias(f.name)
                for f in target.fields
            ),
            *(F.col(_quote(c)).cast("string").alias(c) for c in evolved),
        )
        merger = (
            table.alias("target")
            .merge(
                source.alias("source"),
                merge_predicate(spec, touched, quote=_quote, literal=literal),
            )
            .whenMatchedUpdateAll(condition=update_condition(spec, quote=_quote))
            .whenNotMatchedInsertAll()
        )
        if evolved:
            # Only add_new_columns yields evolved columns; they become nullable strings.
            merger = merger.withSchemaEvolution()
        # Delta's MERGE metrics count no files scanned (delta-rs's num_target_files_scanned):
        # the files its scan reads are those left by the target-only (partition) condition,
        # which the same pruning gives for a plain read of the snapshot it merges into.
        after_skipping = len(
            table.toDF()
            .where(partition_filter(_quote(spec.partition_column), touched, literal))
            .inputFiles()
        )
        metadata = {**commit_metadata, MERGE_COUNTS_KEY: encode_merge_counts(counts)}
        with session_conf(session, USER_METADATA_CONF, json.dumps(metadata)):
            merger.execute()
        version, metrics = _last_merge(table)
        metrics[FILES_AFTER_SKIPPING] = after_skipping
    finally:
        if classified is not None:
            classified.unpersist()
        stored.unpersist()
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


def stored_rows(table: DeltaTable, survivors: DataFrame, spec: MergeSpec) -> DataFrame:
    """The stored key, partition, ordering and business columns of the batch's keys.

    The stored values are cast to the batch's types, so like is compared with like.
    """
    from pyspark.sql import functions as F

    wanted = spec.compared_columns
    types = {f.name: f.dataType for f in survivors.schema.fields}
    # The survivors hold each key once, so a semi join keeps every stored row of a key.
    keys = survivors.select(*(F.col(_quote(k)) for k in spec.key))
    return (
        table.toDF()
        .select(*(F.col(_quote(c)).cast(types[c]).alias(c) for c in wanted))
        .join(keys, on=list(spec.key), how="left_semi")
    )


def check_unique(stored: DataFrame, spec: MergeSpec) -> None:
    """Refuse to MERGE into a table that stores one of the batch's keys more than once.

    Raises:
        IntegrityError: a key is stored more than once.
    """
    from pyspark.sql import functions as F

    repeated = (
        stored.groupBy(*spec.key)
        .count()
        .where(F.col("count") > 1)
        .select(*spec.key)
        .orderBy(*spec.key)
        .limit(5)
        .collect()
    )
    if repeated:
        sample = ", ".join(str(tuple(row)) for row in repeated)
        raise IntegrityError(f"the table stores these keys more than once: {sample}")


def classify(survivors: DataFrame, stored: DataFrame, spec: MergeSpec) -> DataFrame:
    """The survivors with their action (a code of ``ACTION_CODES``) and stored partition value.

    Inserted when the key is new; updated when some business column differs (null-safe)
    and, with an ordering column, the incoming value is greater or equal to the stored one;
    unchanged otherwise (``domain.decisions.merge_action``).
    """
    from pyspark.sql import functions as F

    renamed = stored.select(
        *(F.col(_quote(k)) for k in spec.key),
        *(F.col(_quote(c)).alias(c + _STORED) for c in stored.columns if c not in spec.key),
        F.lit(True).alias(_MATCHED),
    )
    differs = reduce(
        lambda left, right: left | right,
        [~F.col(_quote(c)).eqNullSafe(F.col(_quote(c + _STORED))) for c in spec.business_columns],
        F.lit(False),
    )
    newer = (
        F.col(_quote(spec.ordering_column)) >= F.col(_quote(spec.ordering_column + _STORED))
        if spec.ordering_column
        else F.lit(True)
    )
    action = (
        F.when(F.col(_quote(_MATCHED)).isNull(), F.lit(ACTION_CODES[MergeAction.INSERT]))
        .when(F.coalesce(differs & newer, F.lit(False)), F.lit(ACTION_CODES[MergeAction.UPDATE]))
        .otherwise(F.lit(ACTION_CODES[MergeAction.UNCHANGED]))
        .cast("tinyint")
    )
    return survivors.join(renamed, on=list(spec.key), how="left").withColumn(_ACTION, action)


def touched_partition_values(
    classified: DataFrame, spec: MergeSpec, partition_type: ColumnType
) -> list[Any]:
    """Partition values of the changed rows plus those their keys are stored in.

    A row whose partition value changed must be matched (and so replaced) in its old
    partition, so that partition is read and rewritten too. Values come back as the Python
    values the Polars engine sees (timestamps as UTC datetimes).
    """
    from pyspark.sql import functions as F

    partition = spec.partition_column
    action = F.col(_ACTION)
    new = classified.where(action != ACTION_CODES[MergeAction.UNCHANGED]).select(
        _collectable(F.col(_quote(partition)), partition_type).alias("v")
    )
    moved_from = classified.where(action == ACTION_CODES[MergeAction.UPDATE]).select(
        _collectable(F.col(_quote(partition + _STORED)), partition_type).alias("v")
    )
    values = {
        _from_collected(row[0], partition_type)
        for row in new.union(moved_from).distinct().collect()
    }
    return partition_order(values)


def sql_literal(value: Any, column_type: ColumnType) -> str:
    """A Spark SQL literal of ``value`` in the type of the column it is compared with."""
    match column_type:
        case ColumnType.INT | ColumnType.BIGINT:
            return str(int(value))
        case ColumnType.DOUBLE:
            # A bare 1.5 is a DECIMAL in Spark SQL; the cast keeps the exact double.
            return f"CAST('{float(value)!r}' AS DOUBLE)"
        case ColumnType.BOOLEAN:
            return "true" if value else "false"
        case ColumnType.DATE:
            return f"DATE'{partition_text(value)}'"
        case ColumnType.TIMESTAMP:
            return f"TIMESTAMP'{partition_text(value)}'"
        case ColumnType.STRING:
            # Spark SQL unescapes backslashes in literals and reads 'a''b' as two adjacent
            # literals ('ab'), so quotes are escaped with a backslash, never doubled.
            text = str(value).replace("\\", "\\\\").replace("'", "\\'")
            return f"'{text}'"


def _last_merge(table: DeltaTable) -> tuple[int, dict[str, int]]:
    """Version and metrics (delta-rs names) of the table's latest commit, the MERGE."""
    row = table.history(1).select("version", "operation", "operationMetrics").first()
    if row is None or row["operation"] != "MERGE":
        raise IntegrityError("the MERGE left no commit in the table's history")
    return int(row["version"]), operation_metrics("MERGE", row["operationMetrics"] or {})


def _collectable(column: SparkColumn, column_type: ColumnType) -> SparkColumn:
    # PySpark turns collected timestamps into naive local-time datetimes; microseconds
    # since the epoch are exact whatever the machine's time zone.
    from pyspark.sql import functions as F

    return F.unix_micros(column) if column_type is ColumnType.TIMESTAMP else column


def _from_collected(value: Any, column_type: ColumnType) -> Any:
    if value is not None and column_type is ColumnType.TIMESTAMP:
        return _EPOCH + timedelta(microseconds=int(value))
    return value


def _quote(identifier: str) -> str:
    return "`" + identifier.replace("`", "``") + "`"
