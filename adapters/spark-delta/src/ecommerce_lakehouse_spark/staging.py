"""Staging one entity's batch: quarantine, in-batch dedup and per-file counts.

The rules and casts were compiled per file by :func:`reader.read_source_frame`; staging
splits the checked rows into quarantine and valid rows and keeps one valid row per key.

The batch is ranked once (one shuffle by key) into a local checkpoint, materialised by the
job that counts rows per file; the survivors and the quarantine are narrow projections of
that checkpoint, so the actions run on them later (the quarantine append, the MERGE and its
classification) neither re-read the source files nor re-evaluate the rules or the ranking.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from functools import reduce

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql.types import LongType

from ecommerce_lakehouse.domain.audit import RowCounts
from ecommerce_lakehouse.domain.schemas import (
    FILE_ORDINAL,
    INGESTED_AT,
    LINE_NUMBER,
    RAW_RECORD,
    RESCUED_DATA,
    RUN_ID,
    SOURCE_CHECKSUM,
    SOURCE_FILE,
    TableSchema,
)
from ecommerce_lakehouse.ports.engine import RunContext, StagedBatch
from ecommerce_lakehouse_spark.delta import WHOLE_STAGE_CONF, one_wave, plumbing, session_conf
from ecommerce_lakehouse_spark.dtypes import local_frame
from ecommerce_lakehouse_spark.expressions import violation_label
from ecommerce_lakehouse_spark.reader import VIOLATION, source_frame_schema

# Internal names hold "#", like the reader's, so no business or evolved column can clash.
_RANK = "#rank"
#: Each file's evolved columns (a JSON array), tagged on its frame for the counts job.
_EVOLVED = "#evolved"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def utc_literal(moment: datetime) -> Column:
    """A timestamp literal of an instant (a naive datetime is taken as UTC).

    Built from microseconds since the epoch, so neither the session nor the Python time
    zone can shift it.
    """
    aware = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    micros = (aware - _EPOCH) // timedelta(microseconds=1)
    return F.timestamp_micros(F.lit(micros).cast(LongType()))


#: CSV bytes of a batch per partition of its ranking's shuffle: one wave of partitions (4
#: locally) sorts a batch of up to 256 MiB; a larger one gets more, so that no task sorts
#: more than its share of the memory holds (one task sorting a quarter of 1.9 GiB of
#: order_items ran out of a 4 GiB driver's memory).
BYTES_PER_SHUFFLE_PARTITION = 64 * 2**20


def shuffle_partitions(session: SparkSession, input_bytes: int) -> int:
    """The ranking's shuffle partitions for a batch of ``input_bytes`` bytes of CSV."""
    return max(one_wave(session), math.ceil(input_bytes / BYTES_PER_SHUFFLE_PARTITION))


def stage_frames(
    session: SparkSession,
    frames: Sequence[DataFrame],
    schema: TableSchema,
    run: RunContext,
    input_bytes: int = 0,
) -> StagedBatch[DataFrame]:
    """Quarantine the rows that break a rule and deduplicate the batch.

    Runs one Spark job (the per-file counts, which also materialise the ranked batch).

    Args:
        session: the Spark session.
        frames: source frames as :func:`reader.read_source_frame` returns them, in any order.
        schema: the table the batch feeds.
        run: the run the batch belongs to.
        input_bytes: the size of the batch's files, which sizes the ranking's shuffle
            (:func:`shuffle_partitions`).

    Returns:
        The survivors (typed, one row per key, in no particular order), the quarantined rows
        in the ``quarantine`` audit table's columns (one partition, sorted by file and line)
        and the per-file counts of rows read, quarantined and dropped as in-batch
        duplicates (only files with rows have counts).
    """
    base = source_frame_schema(schema)
    # A frame holds the evolved columns of its own file's header only (known without a job).
    own = [[c for c in frame.columns if c not in base.names] for frame in frames]
    tagged = any(own)
    if tagged:
        frames = [
            f.withColumn(_EVOLVED, F.lit(json.dumps(o))) for f, o in zip(frames, own, strict=True)
        ]
    batch = (
        reduce(lambda a, b: a.unionByName(b, allowMissingColumns=True), frames)
        if frames
        else local_frame(session, [], base)
    )
    extras = tuple(c for c in batch.columns if c not in base.names and c != _EVOLVED)
    valid = F.col(VIOLATION).isNull()

    # The survivor of a key is the valid row with the greatest (ordering, file, line): rank
    # 1 in descending order. Broken rows get a window of their own (their position), so
    # they neither compete with valid rows nor crowd into one partition of null keys.
    ordering = [schema.ordering_column] if schema.ordering_column else []
    window = Window.partitionBy(
        valid,
        *(F.when(valid, F.col(k)) for k in schema.dedup.key),
        F.when(~valid, F.col(FILE_ORDINAL)),
        F.when(~valid, F.col(LINE_NUMBER)),
    ).orderBy(*(F.col(c).desc() for c in [*ordering, FILE_ORDINAL, LINE_NUMBER]))
    # Planned (when checkpointed) and counted as plumbing (no adaptive execution, which
    # would run each shuffle as a job of its own): the ranking and the counts are then one
    # job. And without whole-stage code generation: it fuses the reader's many projections
    # (rules, casts, the timestamp parse's steps) into one method too large for the JIT to
    # compile, which then runs interpreted, two to three times slower than Spark's
    # per-expression code.
    with (
        plumbing(session, shuffle_partitions(session, input_bytes)),
        session_conf(session, WHOLE_STAGE_CONF, "false"),
    ):
        ranked = batch.withColumn(_RANK, F.row_number().over(window)).localCheckpoint(eager=False)
        dropped = valid & (F.col(_RANK) > 1)
        tallies = (
            ranked.groupBy(SOURCE_FILE)
            .agg(
                F.count(F.lit(1)).alias("rows"),
                F.count_if(~valid).alias("quarantined"),
                F.count_if(dropped).alias("duplicates"),
                # In the same job: one row's columns not in the schema, for the report.
                F.first(RESCUED_DATA, ignorenulls=True).alias("rescued"),
                *([F.first(_EVOLVED).alias("evolved")] if tagged else []),
            )
            .collect()
        )
        counts = {
            str(row[SOURCE_FILE]): RowCounts(
                rows_read=int(row["rows"]),
                quarantined=int(row["quarantined"]),
                duplicates_in_batch=int(row["duplicates"]),
            )
            for row in tallies
        }
        rescued = {str(r[SOURCE_FILE]): str(r["rescued"]) for r in tallies if r["rescued"]}
        evolved = {
            str(r[SOURCE_FILE]): tuple(json.loads(r["evolved"]))
            for r in (tallies if tagged else [])
            if json.loads(r["evolved"])
        }

    violation = F.col(VIOLATION)
    quarantine = (
        ranked.where(~valid)
        .select(SOURCE_FILE, SOURCE_CHECKSUM, FILE_ORDINAL, LINE_NUMBER, VIOLATION, RAW_RECORD)
        # Few rows: one partition sorted in place, with no range-partitioning sample job.
        .coalesce(1)
        .sortWithinPartitions(FILE_ORDINAL, LINE_NUMBER)
        .select(
            F.lit(run.run_id).alias("run_id"),
            F.lit(schema.name).alias("entity"),
            F.col(SOURCE_FILE).alias("source_file"),
            F.col(LINE_NUMBER).alias("line_number"),
            violation_label(violation, schema.rules, "rule").alias("rule"),
            violation_label(violation, schema.rules, "column").alias("column_name"),
            violation_label(violation, schema.rules, "reason").alias("reason"),
            F.col(RAW_RECORD).alias("raw_record"),
            utc_literal(run.started_at).alias("quarantined_at"),
            F.col(SOURCE_CHECKSUM).alias("source_checksum"),
        )
    )
    survivors = ranked.where(valid & (F.col(_RANK) == 1)).select(
        *schema.column_names,
        RESCUED_DATA,
        *extras,
        SOURCE_FILE,
        utc_literal(run.started_at).alias(INGESTED_AT),
        F.lit(run.run_id).alias(RUN_ID),
    )
    return StagedBatch(
        survivors=survivors,
        quarantine=quarantine,
        counts=counts,
        extra_columns=extras,
        rescued=rescued,
        evolved=evolved,
    )
