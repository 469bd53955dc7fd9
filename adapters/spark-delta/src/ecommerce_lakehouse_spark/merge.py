"""MERGE of a staged batch into its Delta table, touching only the partitions involved.

The twin of the Polars engine's MERGE: the rows are classified first (insert, update,
unchanged) against the stored rows of the batch's keys only, and just the inserts and
updates go to Delta. One Spark job tallies the classification: per-file counts, touched
partitions and keys stored twice together. A batch none of whose keys is stored is
appended (one WRITE commit with the same metadata, as the Polars engine does); otherwise
the MERGE condition names the touched partitions as literals so Delta prunes every other
file, and the update clause repeats the classification's condition so the commit metrics
can be checked against it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
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
from ecommerce_lakehouse_delta.commit_info import append_as_merge_metrics
from ecommerce_lakehouse_spark.delta import (
    USER_METADATA_CONF,
    checksum_file_count,
    create_table,
    current_version,
    last_commit,
    one_wave,
    plumbing,
    session_conf,
)
from ecommerce_lakehouse_spark.dtypes import collectable, from_collected

#: Rows of a first-load append per task, about: each task sorts its rows by partition value
#: for Delta's writer, and sorts this size in memory (a scale-1 first load in four tasks of
#: 8M rows spilled 0.9 GiB to disk; in one task per date, about 355k rows each, nothing).
APPEND_TASK_ROWS = 250_000

if TYPE_CHECKING:
    from delta.tables import DeltaTable
    from pyspark.sql import DataFrame, SparkSession

# Engine-internal column names hold a '#', which no stored or evolved column (always
# ``[a-z0-9_]``) can: Spark resolves names case-insensitively, so a capital letter (the
# Polars engine's marker) would not keep them apart.
_STORED = "#stored"
_ACTION = "#action"
_MATCHED = "#matched"
_COPIES = "#copies"
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
    survivors_by_partition: Mapping[Any, int] | None = None,
) -> MergeOutcome:
    """MERGE ``batch.survivors`` into the table at ``uri`` (created when missing).

    Args:
        session: the Spark session.
        uri: the Delta table.
        batch: the staged batch.
        schema: the table's schema (key, business, ordering and partition columns).
        commit_metadata: stored as custom metadata of the Delta commit (a JSON object in
            its ``userMetadata``), with the per-file counts under ``MERGE_COUNTS_KEY``.
        survivors_by_partition: the survivors per partition value, when staging counted
            them: a first load then takes its counts from them and ``batch.counts`` instead
            of a pass over the survivors.

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
    partition_type = schema.types.get(spec.partition_column, ColumnType.STRING)
    # A table without data files (a first load) holds no key: nothing to look up. Its
    # checksum file says so without a Spark job; without one, the lookup runs.
    empty = checksum_file_count(session, uri, current_version(table)) == 0
    stored = None if empty else stored_rows(table, survivors, spec, copies=True)
    classified = classify(survivors, stored, spec)
    if stored is not None:
        # Read twice: by the one job that tallies it, then by the MERGE. Without a lookup it
        # is a projection of the staged checkpoint (less the in-batch duplicates), as cheap
        # to read again.
        classified = classified.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        tallies = (
            first_load_tallies(batch.counts, survivors_by_partition)
            if stored is None and survivors_by_partition is not None
            else tally_batch(session, classified, spec, partition_type)
        )
        if tallies.repeated:
            check_unique(stored_rows(table, survivors, spec), spec)
        counts = tallies.counts
        expected = {
            "num_target_rows_inserted": sum(c.inserted for c in counts.values()),
            "num_target_rows_updated": sum(c.updated for c in counts.values()),
        }
        if not any(expected.values()):
            return MergeOutcome(
                counts=counts, version=current_version(table), touched_partitions=(), metrics={}
            )
        changed = classified.where(F.col(_ACTION) != ACTION_CODES[MergeAction.UNCHANGED])
        touched = tallies.touched

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
        metadata = {**commit_metadata, MERGE_COUNTS_KEY: encode_merge_counts(counts)}
        if not any(c.updated or c.unchanged for c in counts.values()):
            # No key of the batch is stored (the lookup above read every partition, under
            # the lake's lock): the rows are appended, in one commit with the MERGE's
            # metadata, and nothing stored is read again; the Polars engine does the same.
            # The rows are grouped by partition value first, as Delta's MERGE does before it
            # writes (one file per partition value and task), in enough tasks that each
            # sorts its rows for the writer in memory (APPEND_TASK_ROWS).
            inserted = expected["num_target_rows_inserted"]
            tasks = min(len(touched), math.ceil(inserted / APPEND_TASK_ROWS))
            version, metrics = _append(
                session,
                table,
                uri,
                source.repartition(
                    max(one_wave(session), tasks), F.col(_quote(spec.partition_column))
                ),
                metadata,
                evolved=bool(evolved),
            )
            touched_partitions = tuple(partition_text(v) for v in touched)
            return _checked(schema, counts, version, touched_partitions, metrics, expected)
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
        with session_conf(session, USER_METADATA_CONF, json.dumps(metadata)):
            merger.execute()
        version, metrics = last_commit(session, table, uri, "MERGE")
        metrics[FILES_AFTER_SKIPPING] = after_skipping
    finally:
        if stored is not None:
            classified.unpersist()
    return _checked(
        schema, counts, version, tuple(partition_text(v) for v in touched), metrics, expected
    )


def _checked(
    schema: TableSchema,
    counts: dict[str, RowCounts],
    version: int,
    touched: tuple[str | None, ...],
    metrics: dict[str, int],
    expected: Mapping[str, int],
) -> MergeOutcome:
    """The outcome, once Delta's metrics agree with the classification.

    Raises:
        IntegrityError: they do not.
    """
    for metric, rows in expected.items():
        if metrics.get(metric, 0) != rows:
            raise IntegrityError(
                f"MERGE into {schema.name} (version {version}) reported {metric}="
                f"{metrics.get(metric)} but {rows} row(s) were classified so"
            )
    return MergeOutcome(counts=counts, version=version, touched_partitions=touched, metrics=metrics)


def _append(
    session: SparkSession,
    table: DeltaTable,
    uri: str,
    source: DataFrame,
    metadata: Mapping[str, str],
    *,
    evolved: bool,
) -> tuple[int, dict[str, int]]:
    """Append inserts-only ``source`` in one commit; its version and metrics.

    The metrics are the WRITE's under delta-rs's names, plus their MERGE names
    (``append_as_merge_metrics``) and no target file read.
    """
    writer = source.write.format("delta").mode("append").option("mergeSchema", str(evolved).lower())
    with session_conf(session, USER_METADATA_CONF, json.dumps(metadata)):
        writer.save(uri)
    version, written = last_commit(session, table, uri, "WRITE")
    metrics = append_as_merge_metrics(written)
    metrics.setdefault("num_target_rows_inserted", 0)
    metrics[FILES_AFTER_SKIPPING] = 0
    return version, metrics


@dataclass(frozen=True, slots=True)
class BatchTallies:
    """What one pass over a classified batch tells.

    Attributes:
        counts: inserted, updated and unchanged rows per source file.
        touched: the partition values the MERGE reads and rewrites, in ``partition_order``.
        repeated: whether some key of the batch is stored more than once.
    """

    counts: dict[str, RowCounts]
    touched: list[Any]
    repeated: bool


def tally_batch(
    session: SparkSession, classified: DataFrame, spec: MergeSpec, partition_type: ColumnType
) -> BatchTallies:
    """Per-file counts, touched partitions and repeated stored keys.

    The rows are grouped by file, action, new partition value (changed rows) and stored
    partition value (updated rows): few groups, whatever the batch's size, so the grouping
    shuffles in one wave (``plumbing``). A lookup of stored rows in ``classified`` is
    planned when it is persisted, with the session's own partitions and adaptive execution.
    """
    from pyspark.sql import functions as F

    action = F.col(_ACTION)
    partition = spec.partition_column
    changed = action != ACTION_CODES[MergeAction.UNCHANGED]
    updated = action == ACTION_CODES[MergeAction.UPDATE]
    grouped = classified.groupBy(
        F.col(_quote(SOURCE_FILE)).alias("file"),
        action.alias("action"),
        F.when(changed, collectable(F.col(_quote(partition)), partition_type)).alias("new"),
        F.when(updated, collectable(F.col(_quote(partition + _STORED)), partition_type)).alias(
            "old"
        ),
    ).agg(
        F.count(F.lit(1)).alias("rows"),
        F.coalesce(F.max(F.col(_quote(_COPIES))), F.lit(0)).alias("copies"),
    )
    with plumbing(session):
        rows = grouped.collect()
    rows_by_action: dict[tuple[str, int], int] = {}
    values: set[Any] = set()
    for row in rows:
        group = (str(row["file"]), int(row["action"]))
        rows_by_action[group] = rows_by_action.get(group, 0) + int(row["rows"])
        if int(row["action"]) != ACTION_CODES[MergeAction.UNCHANGED]:
            values.add(from_collected(row["new"], partition_type))
        if int(row["action"]) == ACTION_CODES[MergeAction.UPDATE]:
            values.add(from_collected(row["old"], partition_type))
    return BatchTallies(
        counts=tally_counts((f, a, n) for (f, a), n in rows_by_action.items()),
        touched=partition_order(values),
        repeated=any(int(row["copies"]) > 1 for row in rows),
    )


def first_load_tallies(
    staged: Mapping[str, RowCounts], survivors_by_partition: Mapping[Any, int]
) -> BatchTallies:
    """A first load's tallies from staging's counts: every survivor is inserted.

    Raises:
        IntegrityError: the partitions' survivors do not add up to the files'.
    """
    inserted = {
        file: c.rows_read - c.quarantined - c.duplicates_in_batch for file, c in staged.items()
    }
    if sum(inserted.values()) != sum(survivors_by_partition.values()):
        raise IntegrityError(
            f"staging counted {sum(inserted.values())} survivor(s) by file but "
            f"{sum(survivors_by_partition.values())} by partition value"
        )
    return BatchTallies(
        counts=counts_by_file((f, MergeAction.INSERT, n) for f, n in inserted.items() if n > 0),
        touched=partition_order(v for v, n in survivors_by_partition.items() if n > 0),
        repeated=False,
    )


def tally_counts(tallies: Iterable[Sequence[Any]]) -> dict[str, RowCounts]:
    """Per-file MERGE counts from ``(source file, action code, rows)`` tallies."""
    return counts_by_file(
        (str(file), _ACTIONS_BY_CODE[int(code)], int(rows)) for file, code, rows in tallies
    )


def stored_rows(
    table: DeltaTable, survivors: DataFrame, spec: MergeSpec, *, copies: bool = False
) -> DataFrame:
    """The stored key, partition, ordering and business columns of the batch's keys.

    The stored values are cast to the batch's types, so like is compared with like. With
    ``copies``, a column counts the stored rows of each key (more than 1: the table holds
    the key twice).
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    wanted = spec.compared_columns
    types = {f.name: f.dataType for f in survivors.schema.fields}
    # The survivors hold each key once, so a semi join keeps every stored row of a key.
    keys = survivors.select(*(F.col(_quote(k)) for k in spec.key))
    stored = (
        table.toDF()
        .select(*(F.col(_quote(c)).cast(types[c]).alias(c) for c in wanted))
        .join(keys, on=list(spec.key), how="left_semi")
    )
    if not copies:
        return stored
    by_key = Window.partitionBy(*(F.col(_quote(k)) for k in spec.key))
    return stored.withColumn(_COPIES, F.count(F.lit(1)).over(by_key))


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


def classify(survivors: DataFrame, stored: DataFrame | None, spec: MergeSpec) -> DataFrame:
    """The survivors with their action (a code of ``ACTION_CODES``) and stored partition value.

    Inserted when the key is new; updated when some business column differs (null-safe)
    and, with an ordering column, the incoming value is greater or equal to the stored one;
    unchanged otherwise (``domain.decisions.merge_action``). ``stored`` None: the table
    holds no row, every row is inserted.
    """
    from pyspark.sql import functions as F

    if stored is None:
        partition = spec.partition_column
        return survivors.select(
            "*",
            F.lit(None).cast(survivors.schema[partition].dataType).alias(partition + _STORED),
            F.lit(None).cast("long").alias(_COPIES),
            F.lit(ACTION_CODES[MergeAction.INSERT]).cast("tinyint").alias(_ACTION),
        )

    renamed = stored.select(
        *(F.col(_quote(k)) for k in spec.key),
        *(
            F.col(_quote(c)).alias(c if c == _COPIES else c + _STORED)
            for c in stored.columns
            if c not in spec.key
        ),
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


def _quote(identifier: str) -> str:
    return "`" + identifier.replace("`", "``") + "`"
