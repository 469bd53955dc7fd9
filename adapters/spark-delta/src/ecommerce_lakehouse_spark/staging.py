"""Staging one entity's batch: quarantine, in-batch dedup and per-file counts.

The rules and casts were compiled per file by :func:`reader.read_source_frame`; staging
splits the checked rows into quarantine and valid rows and keeps one valid row per key.

The checked batch (rules and casts evaluated) goes into a local checkpoint, materialised by
the job that counts rows per file; the quarantine and the survivors are projections of that
checkpoint, so the actions run on them later (the quarantine append, the MERGE and its
classification) neither re-read the source files nor re-evaluate the rules. The checkpoint
holds each row's file ordinal, not its file's name and checksum (looked up by ordinal when
projected): with them, order_items' checkpoint held 1,105 MiB of rows at scale 0.1 against
691 MiB without, and at scale 1 it is ten times that, more than a 4 GiB driver keeps in
memory. The dedup shuffles keys, not rows: one aggregation finds the keys that more than
one valid row holds (none, in most batches), and only those keys' rows are ranked, on their
key, ordering, file and line. The survivors are the valid rows but the losers of that
ranking.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from contextlib import nullcontext
from datetime import UTC, datetime, timedelta
from functools import reduce
from typing import Any, Literal

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql.types import IntegerType, LongType, StringType

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
from ecommerce_lakehouse.ports.engine import RunContext, SourceFile, StagedBatch
from ecommerce_lakehouse_spark.delta import WHOLE_STAGE_CONF, one_wave, plumbing, session_conf
from ecommerce_lakehouse_spark.dtypes import collectable, from_collected, local_frame
from ecommerce_lakehouse_spark.expressions import violation_label
from ecommerce_lakehouse_spark.reader import VIOLATION, source_frame_schema
from ecommerce_lakehouse_spark.session import compiles_huge_methods

# Internal names hold "#", like the reader's, so no business or evolved column can clash.
_RANK = "#rank"
_VALID = "#valid"
#: Which count of the staging job a row is given to: 0 by file, 1 by key.
_SET = "#set"
_ROWS = "#rows"
_RESCUED_LINE = "#rescued_line"
_PARTITION = "#partition"
#: Each frame's position, tagged on it when some frame has evolved columns: the counts job
#: reads it back per file, and the frame's evolved columns are looked up by it.
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


#: CSV bytes of a batch per partition of its dedup's shuffles: one wave of partitions (4
#: locally) takes a batch of up to 256 MiB; a larger one gets more, so that no task holds
#: more than its share of the memory (when whole rows were ranked, one task sorting a
#: quarter of 1.9 GiB of order_items ran out of a 4 GiB driver's memory).
BYTES_PER_SHUFFLE_PARTITION = 64 * 2**20


#: Up to this many keys held twice, or rows dropped as duplicates, a join ships them to
#: every task (a broadcast) instead of shuffling the batch to meet them.
BROADCAST_ROWS = 1_000_000


def shuffle_partitions(session: SparkSession, input_bytes: int) -> int:
    """The dedup's shuffle partitions for a batch of ``input_bytes`` bytes of CSV."""
    return max(one_wave(session), math.ceil(input_bytes / BYTES_PER_SHUFFLE_PARTITION))


def by_ordinal(sources: Sequence[SourceFile], value: Literal["key", "checksum"]) -> Column:
    """A row's file's ``value`` (``key`` or ``checksum``), looked up by its file ordinal.

    One array literal indexed by ordinal (ordinals are positions in the entity's batch):
    constant time a row, and no job, unlike a join.
    """
    values: list[str | None] = [None] * (max((s.ordinal for s in sources), default=-1) + 1)
    for source in sources:
        values[source.ordinal] = getattr(source, value)
    array = F.array(*(F.lit(v).cast(StringType()) for v in values))
    # Typed even when the batch has no file (an empty array literal has no element type).
    return F.element_at(array, F.col(FILE_ORDINAL).cast(IntegerType()) + 1).cast(StringType())


def stage_frames(
    session: SparkSession,
    frames: Sequence[DataFrame],
    schema: TableSchema,
    run: RunContext,
    sources: Sequence[SourceFile],
) -> tuple[StagedBatch[DataFrame], dict[Any, int]]:
    """Quarantine the rows that break a rule and deduplicate the batch.

    Runs two Spark jobs (one that materialises the checked batch and counts its rows per
    file and its valid rows per key, and a count of the keys held twice, which reads that
    job's small checkpoint), and two more when some key is (their broadcast to
    the ranking, up to :data:`BROADCAST_ROWS` keys, and the losers' counts), and one more
    when some file's header names columns the schema lacks (a rescued record's text, for
    the report). A read of the survivors then broadcasts the dropped rows' positions to
    drop them (one job).

    Args:
        session: the Spark session.
        frames: source frames as :func:`reader.read_source_frame` returns them, in any order.
        schema: the table the batch feeds.
        run: the run the batch belongs to.
        sources: the files the frames were read from (rejected ones may be among them):
            their size sizes the dedup's shuffles (:func:`shuffle_partitions`), and their
            name and checksum are looked up by each row's file ordinal.

    Returns:
        The survivors (typed, one row per key, in no particular order), the quarantined rows
        in the ``quarantine`` audit table's columns (one partition, sorted by file and line)
        and the per-file counts of rows read, quarantined and dropped as in-batch
        duplicates (only files with rows have counts); and the survivors per partition value
        (:func:`dtypes.from_collected`; values with survivors only).
    """
    base = source_frame_schema(schema)
    # A frame holds the evolved columns of its own file's header only (known without a job).
    own = [[c for c in frame.columns if c not in base.names] for frame in frames]
    tagged = any(own)
    if tagged:
        # Tagged with the frame's position in ``own``: the counts job reads it back per file.
        frames = [f.withColumn(_EVOLVED, F.lit(i)) for i, f in enumerate(frames)]
    batch = (
        reduce(lambda a, b: a.unionByName(b, allowMissingColumns=True), frames)
        if frames
        else local_frame(session, [], base)
    ).drop(SOURCE_FILE, SOURCE_CHECKSUM)
    names = {s.ordinal: s.key for s in sources}
    extras = tuple(c for c in batch.columns if c not in base.names and c != _EVOLVED)
    valid = F.col(VIOLATION).isNull()
    key = schema.dedup.key
    partition = schema.partition_column
    partition_type = schema.types[partition]

    # The batch is checked (rules, casts) once, into a checkpoint every later step reads;
    # only the rows of keys that more than one valid row holds are ranked. Keys, files and
    # lines are all a ranking needs: nothing wider than them is shuffled for it (the
    # survivors are, once, when more than BROADCAST_ROWS rows are dropped).
    # Planned (when checkpointed) as plumbing (no adaptive execution, which would run each
    # shuffle as a job of its own). Whole-stage code generation fuses the reader's many
    # projections (rules, casts, the timestamp parse's steps) into one method too large
    # for the JIT to compile by default: interpreted, it runs about twice as slow as
    # Spark's per-expression code. A JVM that compiles huge methods (sessions built
    # here) keeps it on; any other runs the stage without it.
    partitions = shuffle_partitions(session, sum(s.size_bytes for s in sources))
    with (
        plumbing(session, partitions),
        (
            nullcontext()
            if compiles_huge_methods(session)
            else session_conf(session, WHOLE_STAGE_CONF, "false")
        ),
    ):
        checked = batch.localCheckpoint(eager=False)
        # One job checks the batch into its checkpoint and counts it twice over, each row
        # given once to each count: every row by file, validity and partition value (a
        # first load then needs no pass of its own to find the partitions it writes), and
        # the valid rows by key, of which the keys more than one row holds are kept.
        # Every aggregate is a fixed-width number, which Spark aggregates in a hash map: an
        # aggregate of text (a file's first rescued record) made it sort every row first.
        # The per-file groups are few: the partition values each file's rows hold.
        per_file = F.col(_SET) == 0
        counted = (
            checked.select(
                FILE_ORDINAL,
                LINE_NUMBER,
                RESCUED_DATA,
                *([_EVOLVED] if tagged else []),
                valid.alias(_VALID),
                F.when(valid, collectable(F.col(partition), partition_type)).alias(_PARTITION),
                *key,
                F.explode(F.array(F.lit(0), F.lit(1))).alias(_SET),
            )
            .where(per_file | F.col(_VALID))
            .groupBy(
                _SET,
                *(F.when(per_file, F.col(c)).alias(c) for c in (FILE_ORDINAL, _VALID, _PARTITION)),
                *(F.when(~per_file, F.col(k)).alias(k) for k in key),
            )
            .agg(
                F.count(F.lit(1)).alias(_ROWS),
                # The line of the file's first rescued record (its columns not in the
                # schema), whose text the report shows.
                F.min(F.when(per_file & F.col(RESCUED_DATA).isNotNull(), F.col(LINE_NUMBER))).alias(
                    _RESCUED_LINE
                ),
                *([F.max(F.when(per_file, F.col(_EVOLVED))).alias(_EVOLVED)] if tagged else []),
            )
            .where(per_file | (F.col(_ROWS) > 1))
            .localCheckpoint(eager=False)
        )
        tallies = counted.where(per_file).collect()
        repeated = counted.where(~per_file).select(*key)
        losers, dropped = _losers(checked.where(valid), repeated, schema)
    rows_read: Counter[int] = Counter()
    quarantined: Counter[int] = Counter()
    survivors_by_partition: Counter[Any] = Counter()
    rescued_lines: dict[int, int] = {}
    evolved_by_file: dict[int, int] = {}
    for row in tallies:
        ordinal, rows = row[FILE_ORDINAL], int(row[_ROWS])
        rows_read[ordinal] += rows
        if row[_VALID]:
            survivors_by_partition[from_collected(row[_PARTITION], partition_type)] += rows
        else:
            quarantined[ordinal] += rows
        line = row[_RESCUED_LINE]
        if line is not None:
            rescued_lines[ordinal] = min(line, rescued_lines.get(ordinal, line))
        if tagged:
            evolved_by_file[ordinal] = row[_EVOLVED]
    duplicates: Counter[int] = Counter()
    for (ordinal, value), rows in dropped.items():
        duplicates[ordinal] += rows
        survivors_by_partition[value] -= rows
    counts = {
        names[ordinal]: RowCounts(
            rows_read=rows,
            quarantined=quarantined[ordinal],
            duplicates_in_batch=duplicates[ordinal],
        )
        for ordinal, rows in rows_read.items()
    }
    rescued = _rescued_records(checked, names, rescued_lines)
    evolved = {names[o]: tuple(own[i]) for o, i in evolved_by_file.items() if own[i]}

    violation = F.col(VIOLATION)
    source_file = by_ordinal(sources, "key")
    quarantine = (
        checked.where(~valid)
        .select(FILE_ORDINAL, LINE_NUMBER, VIOLATION, RAW_RECORD)
        # Few rows: one partition sorted in place, with no range-partitioning sample job.
        .coalesce(1)
        .sortWithinPartitions(FILE_ORDINAL, LINE_NUMBER)
        .select(
            F.lit(run.run_id).alias("run_id"),
            F.lit(schema.name).alias("entity"),
            source_file.alias("source_file"),
            F.col(LINE_NUMBER).alias("line_number"),
            violation_label(violation, schema.rules, "rule").alias("rule"),
            violation_label(violation, schema.rules, "column").alias("column_name"),
            violation_label(violation, schema.rules, "reason").alias("reason"),
            F.col(RAW_RECORD).alias("raw_record"),
            utc_literal(run.started_at).alias("quarantined_at"),
            by_ordinal(sources, "checksum").alias("source_checksum"),
        )
    )
    kept = checked.where(valid)
    if losers is not None:
        # A file's ordinal and a line identify a row of the batch. Few dropped rows are
        # broadcast to every read of the survivors; more would shuffle the whole batch on
        # each read, so the survivors are then shuffled once, in the staging's partitions.
        lines = losers.select(FILE_ORDINAL, LINE_NUMBER)
        on = [FILE_ORDINAL, LINE_NUMBER]
        if sum(duplicates.values()) <= BROADCAST_ROWS:
            kept = kept.join(F.broadcast(lines), on, "left_anti")
        else:
            with plumbing(session, partitions):
                kept = kept.join(lines, on, "left_anti").localCheckpoint(eager=False)
    survivors = kept.select(
        *schema.column_names,
        RESCUED_DATA,
        *extras,
        source_file.alias(SOURCE_FILE),
        utc_literal(run.started_at).alias(INGESTED_AT),
        F.lit(run.run_id).alias(RUN_ID),
    )
    staged = StagedBatch(
        survivors=survivors,
        quarantine=quarantine,
        counts=counts,
        extra_columns=extras,
        rescued=rescued,
        evolved=evolved,
    )
    return staged, {v: n for v, n in survivors_by_partition.items() if n > 0}


def _rescued_records(
    checked: DataFrame, names: dict[int, str], lines: dict[int, int]
) -> dict[str, str]:
    """The rescued data (columns not in the schema) of each given file's line, by file key.

    One job, and only when some file has rescued records (its header named such columns).
    """
    if not lines:
        return {}
    wanted = reduce(
        lambda a, b: a | b,
        [
            (F.col(FILE_ORDINAL) == ordinal) & (F.col(LINE_NUMBER) == line)
            for ordinal, line in lines.items()
        ],
    )
    found = checked.where(wanted).select(FILE_ORDINAL, RESCUED_DATA).collect()
    return {names[r[FILE_ORDINAL]]: str(r[RESCUED_DATA]) for r in found}


def _losers(
    valid: DataFrame, repeated: DataFrame, schema: TableSchema
) -> tuple[DataFrame | None, dict[tuple[int, Any], int]]:
    """The valid rows the in-batch dedup drops, and how many per file and partition value.

    Only the rows of ``repeated`` keys (keys more than one valid row holds) are ranked:
    the survivor of a key is its row with the greatest (ordering, file, line), rank 1 in
    descending order. Counting ``repeated`` is one job; when some key repeats, broadcasting
    the keys (up to :data:`BROADCAST_ROWS`) and tallying the losers are two more.

    Args:
        valid: the batch's rows that break no rule.
        repeated: the keys more than one of them holds.
        schema: the table the batch feeds (its dedup key and ordering column).

    Returns:
        The losers' file ordinal and line number (None when no key repeats), and their
        count per file ordinal and partition value (:func:`dtypes.from_collected`; those
        with losers only).
    """
    held = repeated.count()
    if held == 0:
        return None, {}
    key = schema.dedup.key
    partition = schema.partition_column
    partition_type = schema.types[partition]
    window = Window.partitionBy(*key).orderBy(
        *(F.col(c).desc() for c in [*schema.dedup.ordering, FILE_ORDINAL, LINE_NUMBER])
    )
    losers = (
        valid.join(
            F.broadcast(repeated) if held <= BROADCAST_ROWS else repeated, list(key), "left_semi"
        )
        .select(
            *dict.fromkeys([*schema.dedup.ranked_columns, partition]), FILE_ORDINAL, LINE_NUMBER
        )
        .withColumn(_RANK, F.row_number().over(window))
        .where(F.col(_RANK) > 1)
        .select(
            FILE_ORDINAL,
            LINE_NUMBER,
            collectable(F.col(partition), partition_type).alias(_PARTITION),
        )
        .localCheckpoint(eager=False)
    )
    tallied = (
        losers.groupBy(FILE_ORDINAL, _PARTITION).agg(F.count(F.lit(1)).alias("rows")).collect()
    )
    return losers, {
        (row[FILE_ORDINAL], from_collected(row[_PARTITION], partition_type)): int(row["rows"])
        for row in tallied
    }
