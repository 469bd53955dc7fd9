"""Delta table I/O with delta-spark: creating, appending, schema, history and compaction.

Tables keep the protocol the Polars engine (delta-rs) writes and Athena reads: reader 1 /
writer 2, no table features, UTC ``timestamp`` columns. Custom commit metadata goes into
Spark's one ``userMetadata`` string as a JSON object; history reads it, and delta-rs's
top-level keys, from each commit's own JSON through
:func:`ecommerce_lakehouse_delta.commit_info.user_metadata`.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import reduce
from typing import TYPE_CHECKING, Any

from ecommerce_lakehouse.domain.errors import (
    IntegrityError,
    LakehouseError,
    TableUnreadable,
    first_line,
)
from ecommerce_lakehouse.domain.merge_sql import partition_filter
from ecommerce_lakehouse.domain.types import Column, ColumnType
from ecommerce_lakehouse.ports.engine import CommitRecord, FileStatistics
from ecommerce_lakehouse_delta.commit_info import operation_metrics, user_metadata
from ecommerce_lakehouse_spark.dtypes import (
    column_type_of,
    domain_columns,
    local_frame,
    spark_schema,
    spark_type,
)

if TYPE_CHECKING:
    from delta.tables import DeltaTable
    from py4j.protocol import Py4JJavaError
    from pyspark.sql import DataFrame, SparkSession

#: Session setting whose value Delta stores as the next commits' ``userMetadata``.
USER_METADATA_CONF = "spark.databricks.delta.commitInfo.userMetadata"
#: Up to this many commits are read by the driver, one file at a time; more by a Spark job.
DRIVER_READ_VERSIONS = 32
#: Adaptive query execution: the engine turns it off for its small plumbing queries.
ADAPTIVE_CONF = "spark.sql.adaptive.enabled"
#: Whole-stage code generation: staging turns it off (see ``staging.stage_frames``).
WHOLE_STAGE_CONF = "spark.sql.codegen.wholeStage"
#: Shuffle partitions: the plumbing queries run in one wave of them (``plumbing``), and
#: staging raises them for a large batch (see ``staging.stage_frames``).
SHUFFLE_PARTITIONS_CONF = "spark.sql.shuffle.partitions"
#: Session default that Delta would copy into a new table's configuration.
_DELETION_VECTORS_DEFAULT = "spark.databricks.delta.properties.defaults.enableDeletionVectors"


@contextmanager
def session_conf(session: SparkSession, key: str, value: str | None) -> Iterator[None]:
    """Set (or, with None, unset) a session setting for a block, then restore it.

    Args:
        session: the Spark session.
        key: the setting.
        value: its value inside the block; None removes it.
    """
    previous = session.conf.get(key, None)
    if value is None:
        session.conf.unset(key)
    else:
        session.conf.set(key, value)
    try:
        yield
    finally:
        if previous is None:
            session.conf.unset(key)
        else:
            session.conf.set(key, previous)


def one_wave(session: SparkSession) -> int:
    """Shuffle partitions for a small query: the configured ones, at most one per core.

    A session this package builds configures one wave already. A launcher's session (Glue,
    ``spark-submit``) keeps Spark's default of 200 unless the job sets it: without adaptive
    execution, a batch of a few hundred rows then ran 200 tasks per shuffle.
    """
    configured = int(session.conf.get(SHUFFLE_PARTITIONS_CONF) or 1)
    return max(1, min(configured, session.sparkContext.defaultParallelism))


@contextmanager
def plumbing(session: SparkSession, partitions: int | None = None) -> Iterator[None]:
    """Run a block's small queries without adaptive execution, in few shuffle partitions.

    ``partitions`` defaults to :func:`one_wave`. Adaptive execution would run each shuffle
    as a job of its own, for groups a handful of rows long; without it, every shuffle runs
    as many tasks as it has partitions.
    """
    with (
        session_conf(session, ADAPTIVE_CONF, "false"),
        session_conf(session, SHUFFLE_PARTITIONS_CONF, str(partitions or one_wave(session))),
    ):
        yield


def open_table(session: SparkSession, uri: str) -> DeltaTable | None:
    """The Delta table at ``uri``, or None when there is none.

    Raises:
        TableUnreadable: there is a ``_delta_log`` but its commits cannot be read.
    """
    from delta.tables import DeltaTable
    from py4j.protocol import Py4JJavaError

    try:
        if not DeltaTable.isDeltaTable(session, uri):
            return None
        return DeltaTable.forPath(session, uri)
    except Py4JJavaError as error:
        raise TableUnreadable.of(uri, _root_cause(error)) from error


def spark_failure(error: Py4JJavaError, memory_hint: str) -> LakehouseError:
    """A failed Spark job as one line naming its cause.

    Py4J's own first line names only the JVM call (``An error occurred while calling
    o123.collectToPython.``); the cause is the innermost Java exception. A task that ran out
    of memory also says what gives it more (``memory_hint``).
    """
    cause = _root_cause(error)
    text = f"Spark failed: {cause}"
    if "OutOfMemory" in cause or "UNABLE_TO_ACQUIRE_MEMORY" in cause:
        text += f"; the Spark session ran out of memory: {memory_hint}"
    return LakehouseError(text)


def _root_cause(error: Py4JJavaError) -> str:
    """``Class: message`` of the innermost Java cause (the JSON parser's, for a bad commit)."""
    cause = error.java_exception
    for _ in range(32):  # a guard against a cycle of causes
        deeper = cause.getCause()
        if deeper is None:
            break
        cause = deeper
    name = str(cause.getClass().getSimpleName())
    return f"{name}: {first_line(str(cause.getMessage() or ''), default='no message')}"


def create_table(
    session: SparkSession,
    uri: str,
    columns: Sequence[Column],
    partition_by: str | None,
    name: str | None = None,
) -> bool:
    """Create an empty Delta table unless one exists at ``uri``; whether this call did.

    The table has the protocol Delta Lake 3.3, delta-rs and Athena read and write (reader 1,
    writer 2, no table features) and, like the Polars engine's, no table properties.

    Args:
        session: the Spark session.
        uri: where the table lives.
        columns: its columns, in order.
        partition_by: the partition column, if any.
        name: the table's name, for parity with the Polars engine; unlike delta-rs, Spark
            cannot store a name in a path-based table's metadata, so it is not stored.
    """
    from delta.tables import DeltaTable

    if DeltaTable.isDeltaTable(session, uri):
        return False
    builder = DeltaTable.createIfNotExists(session).location(uri).addColumns(spark_schema(columns))
    if partition_by:
        builder = builder.partitionedBy(partition_by)
    # The session keeps deletion vectors off by default, but Delta would also copy that
    # default into the table's configuration; the Polars engine's tables have none.
    with session_conf(session, _DELETION_VECTORS_DEFAULT, None):
        try:
            builder.execute()
        except Exception:
            # A concurrent creator won the race: keep its table, as delta-rs's "ignore" does.
            if not DeltaTable.isDeltaTable(session, uri):
                raise
            return False
    return True


def ensure_table(
    session: SparkSession,
    uri: str,
    columns: Sequence[Column],
    partition_by: str | None,
    name: str | None = None,
) -> bool:
    """Create the table at ``uri``, or add the columns it lacks; whether this call created it.

    A missing table is created (:func:`create_table`); an existing one gains the ``columns``
    it lacks (:func:`add_missing_columns`).
    """
    if create_table(session, uri, columns, partition_by, name):
        return True
    add_missing_columns(session, uri, columns)
    return False


def conform(frame: DataFrame, columns: Sequence[Column]) -> DataFrame:
    """``frame`` with exactly ``columns``, in order and type (absent columns are null)."""
    from pyspark.sql import functions as F

    present = set(frame.columns)
    return frame.select(
        *(
            (F.col(f"`{c.name}`") if c.name in present else F.lit(None))
            .cast(spark_type(c.type))
            .alias(c.name)
            for c in columns
        )
    )


def add_missing_columns(session: SparkSession, uri: str, columns: Sequence[Column]) -> None:
    """Append to the table's schema the ``columns`` it lacks, as nullable columns.

    How an audit table written by an older version gains a column the contract appended
    (``quarantine.source_checksum``); existing rows read it as null.
    """
    table = open_table(session, uri)
    if table is None:
        return
    present = {name.lower() for name in table.toDF().columns}
    missing = [c for c in columns if c.name.lower() not in present]
    if missing:
        added = ", ".join(f"`{c.name}` {spark_type(c.type).simpleString()}" for c in missing)
        escaped = uri.replace("`", "``")
        session.sql(f"ALTER TABLE delta.`{escaped}` ADD COLUMNS ({added})")


def append_frame(
    session: SparkSession,
    uri: str,
    frame: DataFrame,
    columns: Sequence[Column],
    unique_key: Sequence[str] = (),
    rows: int | None = None,
) -> None:
    """Append ``frame``, conformed to ``columns``, to the table at ``uri`` (created if missing).

    An empty frame only creates the table: Spark would otherwise commit an empty version.

    Args:
        session: the Spark session.
        uri: the table.
        frame: the rows.
        columns: the table's columns; those an existing table lacks are added first.
        unique_key: when given, rows whose key is already stored are skipped (an
            insert-only MERGE), so writing the same rows again adds nothing.
        rows: the number of rows of ``frame`` when known (no job then asks whether it has
            any).
    """
    ensure_table(session, uri, columns, None)
    if rows == 0 or (rows is None and frame.isEmpty()):
        return
    conformed = conform(frame, columns)
    if not unique_key:
        conformed.write.format("delta").mode("append").save(uri)
        return
    from pyspark.sql import functions as F

    table = open_table(session, uri)
    assert table is not None  # created above
    condition = reduce(
        lambda a, b: a & b, (F.col(f"t.`{k}`") == F.col(f"s.`{k}`") for k in unique_key)
    )
    table.alias("t").merge(conformed.alias("s"), condition).whenNotMatchedInsertAll().execute()


def records_frame(
    session: SparkSession, records: Sequence[Mapping[str, object]], columns: Sequence[Column]
) -> DataFrame:
    """A frame of plain records with exactly ``columns`` (missing keys are null).

    Naive datetimes are taken as UTC, as the Polars engine takes them, and integers in
    DOUBLE columns become floats (Spark's row check refuses them otherwise).
    """
    rows = [tuple(_value(record.get(c.name), c.type) for c in columns) for record in records]
    # A handful of audit rows: one partition, so an append writes one file, as delta-rs does.
    return local_frame(session, rows, spark_schema(columns))


def append_records(
    session: SparkSession,
    uri: str,
    records: Sequence[Mapping[str, object]],
    columns: Sequence[Column],
) -> None:
    """Append plain records to the table at ``uri`` (created if missing, even with none)."""
    ensure_table(session, uri, columns, None)
    if not records:
        return
    records_frame(session, records, columns).write.format("delta").mode("append").save(uri)


def table_columns(session: SparkSession, uri: str) -> tuple[Column, ...]:
    """The stored columns of a table (empty when it does not exist)."""
    table = open_table(session, uri)
    return () if table is None else domain_columns(table.toDF().schema)


def current_version(table: DeltaTable) -> int:
    """The latest version of a Delta table, as of its opening or its last commit here.

    Delta's snapshot knows it without a Spark job (``history()`` runs one); the snapshot is
    internal API, so any failure falls back to ``history()``.
    """
    from py4j.protocol import Py4JError

    try:
        version = table._jdt.deltaLog().unsafeVolatileSnapshot().version()
        if isinstance(version, int) and version >= 0:
            return version
    except (Py4JError, AttributeError):
        pass
    row = table.history(1).select("version").first()
    return 0 if row is None else int(row[0])


def last_commit(
    session: SparkSession, table: DeltaTable, uri: str, operation: str
) -> tuple[int, dict[str, int]]:
    """Version and metrics (delta-rs names) of the table's latest commit, an ``operation``.

    Read by the driver from the commit file (no Spark job).

    Raises:
        IntegrityError: the latest commit is not an ``operation``.
    """
    version = current_version(table)
    info = _commit_info(session, uri.rstrip("/") + "/_delta_log/", version) or {}
    if info.get("operation") != operation:
        raise IntegrityError(f"the {operation} left no commit in the table's history")
    return version, operation_metrics(operation, info.get("operationMetrics") or {})


def table_history(session: SparkSession, uri: str, limit: int | None) -> list[CommitRecord]:
    """Commits of a table, newest first (empty when it does not exist).

    Spark's ``history()`` lists the versions but keeps only the ``commitInfo`` keys it
    knows, so delta-rs's custom metadata (top-level keys) would be lost: each listed
    version's commit JSON is read as well, and its ``commitInfo`` is what the record holds.
    """
    from pyspark.sql import functions as F

    table = open_table(session, uri)
    if table is None:
        return []
    if limit is not None and limit <= DRIVER_READ_VERSIONS:
        # The latest versions, read by the driver (no Spark job); a version whose commit
        # file was cleaned up is left out, as Delta's history leaves it out.
        latest = current_version(table)
        versions = list(range(latest, max(latest - limit, -1), -1))
        infos = commit_infos(session, uri, versions)
        unlisted = {"millis": None, "operation": None}
        return [_commit_record(v, infos[v], unlisted) for v in versions if v in infos]
    listed = (
        table.history(limit)
        .select("version", F.unix_millis("timestamp").alias("millis"), "operation")
        .collect()
    )
    infos = commit_infos(session, uri, [int(row["version"]) for row in listed])
    records = [
        _commit_record(int(row["version"]), infos.get(int(row["version"]), {}), row)
        for row in listed
    ]
    return sorted(records, key=lambda r: r.version, reverse=True)


def file_statistics(session: SparkSession, uri: str) -> tuple[FileStatistics, ...] | None:
    """The log's statistics of every data file of the table's latest version.

    Delta Lake's snapshot of the table (its ``add`` actions, a small job over the log; no
    data file is read). None when there is no table, when a file has a deletion vector
    (its ``numRecords`` would count the rows the vector deletes), or when this Delta Lake
    has no such snapshot to read.
    """
    from py4j.protocol import Py4JError
    from pyspark.errors import PySparkException
    from pyspark.sql import functions as F

    table = open_table(session, uri)
    if table is None:
        return None
    try:
        actions = add_actions(session, uri).select(
            "partitionValues", "stats", F.col("deletionVector").isNotNull().alias("deleted")
        )
        rows = actions.collect()
    except (Py4JError, PySparkException):
        # Delta Lake's snapshot is an internal API: a runtime whose Delta Lake lacks it
        # (another Glue version) validates by SQL alone.
        return None
    if any(row["deleted"] for row in rows):
        return None
    columns = domain_columns(table.toDF().schema)
    timestamps = {c.name for c in columns if c.type is ColumnType.TIMESTAMP}
    return tuple(_file_statistics(row["partitionValues"], row["stats"], timestamps) for row in rows)


def snapshot_of(session: SparkSession, uri: str) -> Any:
    """Delta Lake's snapshot (a JVM object) of the latest version of the table at ``uri``.

    Its version is -1, and it has no files, when there is no table.
    """
    jvm: Any = session._jvm  # PySpark has no public API for a table's snapshot
    delta_log = jvm.org.apache.spark.sql.delta.DeltaLog
    return delta_log.forTableWithSnapshot(session._jsparkSession, uri)._2()


def add_actions(session: SparkSession, uri: str, snapshot: Any = None) -> DataFrame:
    """The ``add`` actions of the latest version of the table at ``uri``, as a frame.

    Delta Lake's snapshot of the log (``Snapshot.allFiles``; ``snapshot`` when the caller
    has it): its jobs read the log and its checkpoint, never a data file.
    """
    from pyspark.sql import DataFrame

    snapshot = snapshot_of(session, uri) if snapshot is None else snapshot
    return DataFrame(snapshot.allFiles().toDF(), session)


def _file_statistics(
    partition: Mapping[str, str | None] | None, stats: str | None, timestamps: set[str]
) -> FileStatistics:
    """One ``add`` action's statistics; its JSON's timestamps as aware datetimes."""
    try:
        parsed = json.loads(stats) if stats else {}
    except ValueError:
        parsed = {}
    parsed = parsed if isinstance(parsed, dict) else {}

    def bounds(key: str) -> dict[str, object]:
        values = parsed.get(key)
        if not isinstance(values, dict):
            return {}
        return {
            name: _timestamp(value) if name in timestamps else value
            for name, value in values.items()
            if value is not None and not isinstance(value, dict)
        }

    rows = parsed.get("numRecords")
    nulls = parsed.get("nullCount")
    return FileStatistics(
        rows=rows if isinstance(rows, int) else None,
        partition=dict(partition or {}),
        null_counts={
            name: count
            for name, count in (nulls.items() if isinstance(nulls, dict) else ())
            if isinstance(count, int)
        },
        minimum=bounds("minValues"),
        maximum=bounds("maxValues"),
    )


def _timestamp(value: object) -> object:
    """A timestamp statistic (ISO-8601 text) as an aware datetime; None if unreadable."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def commit_infos(session: SparkSession, uri: str, versions: Sequence[int]) -> dict[int, Any]:
    """The ``commitInfo`` action of each version's commit file, by version.

    Read through Spark, so every file system Spark reaches (``s3://`` on Glue) works; only
    the ``commitInfo`` lines leave the JVM, not the (possibly many) file actions.
    """
    from pyspark.sql import functions as F

    if not versions:
        return {}
    log = uri.rstrip("/") + "/_delta_log/"
    if len(versions) <= DRIVER_READ_VERSIONS:
        return {v: info for v in versions if (info := _commit_info(session, log, v)) is not None}
    lines = (
        session.read.text([f"{log}{version:020d}.json" for version in versions])
        .where(F.col("value").contains('"commitInfo"'))
        .select(F.input_file_name().alias("file"), "value")
        .collect()
    )
    infos: dict[int, Any] = {}
    for file, line in lines:
        action = json.loads(line)
        if isinstance(action, dict) and isinstance(action.get("commitInfo"), dict):
            version = int(str(file).rsplit("/", 1)[-1].split(".", 1)[0])
            infos[version] = action["commitInfo"]
    return infos


def _commit_info(session: SparkSession, log: str, version: int) -> Any:
    """The ``commitInfo`` of one commit file, read by the driver (None when it has none)."""
    text = read_text(session, f"{log}{version:020d}.json")
    for line in (text or "").splitlines():
        if '"commitInfo"' not in line:
            continue
        action = json.loads(line)
        if isinstance(action, dict) and isinstance(action.get("commitInfo"), dict):
            return action["commitInfo"]
    return None


def checksum_file_count(session: SparkSession, uri: str, version: int) -> int | None:
    """The data files of a table version as its checksum file (``_delta_log/<v>.crc``) counts.

    Read by the driver (no Spark job). None when the version has no readable checksum file
    (delta-rs writes none, and Delta may skip one).
    """
    from py4j.protocol import Py4JError

    try:
        text = read_text(session, f"{uri.rstrip('/')}/_delta_log/{version:020d}.crc")
        count = json.loads(text or "")["numFiles"]
    except (Py4JError, ValueError, TypeError, KeyError):
        # Unreadable (Hadoop's own checksum of the file fails), not JSON, no count.
        return None
    return count if isinstance(count, int) and not isinstance(count, bool) else None


def read_text(session: SparkSession, path: str) -> str | None:
    """A small file's text, read by the driver through Hadoop's file system (no Spark job).

    Spark's own file system settings apply (``s3://`` on Glue, S3A locally); None when the
    file does not exist.
    """
    jvm = session._jvm  # PySpark has no public API for Hadoop's file system
    assert jvm is not None
    hadoop_path = jvm.org.apache.hadoop.fs.Path(path)
    conf = session._jsparkSession.sessionState().newHadoopConf()
    file_system = hadoop_path.getFileSystem(conf)
    if not file_system.exists(hadoop_path):
        return None
    stream = file_system.open(hadoop_path)
    try:
        return str(jvm.org.apache.commons.io.IOUtils.toString(stream, "UTF-8"))
    finally:
        stream.close()


def _commit_record(version: int, info: Mapping[str, Any], listed: Any) -> CommitRecord:
    # The commit's own timestamp, as delta-rs reports it; Spark's history gives the log
    # file's modification time instead.
    millis = info.get("timestamp")
    if not isinstance(millis, int):
        millis = listed["millis"]
    operation = str(info.get("operation") or listed["operation"] or "")
    return CommitRecord(
        version=version,
        timestamp=datetime.fromtimestamp(millis / 1000, tz=UTC) if millis is not None else None,
        operation=operation,
        metadata=user_metadata(info),
        metrics=operation_metrics(operation, info.get("operationMetrics") or {}),
    )


def vacuum_table(session: SparkSession, uri: str, retain_hours: int) -> int:
    """VACUUM the table at ``uri``, keeping the files of the last ``retain_hours`` hours.

    Delta's own retention check (a week) is off for the call: the caller enforces the
    floor. The files are counted by a dry run first, as VACUUM itself returns none.

    Returns:
        The number of files deleted (0 when the table does not exist).
    """
    if open_table(session, uri) is None:
        return 0
    target = f"delta.`{uri.replace('`', '``')}`"
    vacuum = f"VACUUM {target} RETAIN {int(retain_hours)} HOURS"
    # VACUUM lists the table's directories in as many tasks as this says (10,000 by
    # default): on a few cores that alone takes minutes.
    tasks = str(session.sparkContext.defaultParallelism)
    with (
        session_conf(session, "spark.databricks.delta.retentionDurationCheck.enabled", "false"),
        session_conf(session, "spark.sql.sources.parallelPartitionDiscovery.parallelism", tasks),
    ):
        deleted = session.sql(f"{vacuum} DRY RUN").count()
        if deleted:
            with _console_muted(session):
                session.sql(vacuum).collect()
    return int(deleted)


def restore_table(session: SparkSession, uri: str, version: int) -> int:
    """Delta RESTORE of the table at ``uri`` to ``version``; returns the version committed.

    The caller sets the commit's ``userMetadata``.

    Raises:
        LakehouseError: there is no table, or Delta cannot restore that version (its files
            were vacuumed, say).
    """
    from py4j.protocol import Py4JJavaError
    from pyspark.errors import PySparkException

    table = open_table(session, uri)
    if table is None:
        raise LakehouseError(f"no Delta table at {uri}")
    try:
        table.restoreToVersion(version)
    except (PySparkException, Py4JJavaError) as error:
        # A Java error's text opens with "An error occurred while calling ...": its cause's
        # message is the line that says what went wrong.
        lines = [line.strip(" :") for line in str(error).splitlines() if line.strip(" :")]
        said = [line for line in lines if not line.startswith("An error occurred")]
        summary = (said or lines or [type(error).__name__])[0]
        raise LakehouseError(f"cannot restore {uri} to version {version}: {summary}") from error
    return current_version(table)


@contextmanager
def _console_muted(session: SparkSession) -> Iterator[None]:
    """Silence Scala's ``println`` on the calling thread (VACUUM prints a summary there).

    A local JVM shares the process's standard output, where ``--format json`` output goes.
    """
    jvm: Any = session._jvm  # PySpark has no public API for the JVM's console
    console = getattr(jvm.scala, "Console$").__getattr__("MODULE$")
    muted = jvm.java.io.PrintStream(jvm.java.io.OutputStream.nullOutputStream())
    previous = console.out()
    console.setOut(muted)
    try:
        yield
    finally:
        console.setOut(previous)


def compact_table(
    session: SparkSession,
    uri: str,
    min_files: int,
    partitions: Sequence[str | None] | None = None,
) -> int:
    """OPTIMIZE-compact the table at ``uri`` when it has at least ``min_files`` data files.

    With ``partitions`` (partition values as text, None for the null partition), only those
    of them holding ``min_files`` data files or more each are compacted, in one commit (the
    table is partitioned by one column).

    Returns:
        The number of files removed (0 when the table was left alone or does not exist).
    """
    crowded: tuple[str, list[str | None]] | None = None
    if partitions is not None:
        # Counted before the table is opened: a run that crowded no partition (every first
        # load) costs one job over the log, not the opening's.
        crowded = crowded_partitions(session, uri, partitions, min_files)
        if crowded is None:
            return 0
    table = open_table(session, uri)
    if table is None:
        return 0
    optimize = table.optimize()
    if crowded is not None:
        optimize = optimize.where(_partitions_predicate(table, *crowded))
    else:
        files = _checksum_files(session, uri, current_version(table))
        if files is None:
            row = table.detail().select("numFiles").first()
            files = 0 if row is None else int(row[0] or 0)
        if files < min_files:
            return 0
    result = optimize.executeCompaction().select("metrics.numFilesRemoved").first()
    return 0 if result is None else int(result[0] or 0)


def crowded_partitions(
    session: SparkSession, uri: str, partitions: Sequence[str | None], min_files: int
) -> tuple[str, list[str | None]] | None:
    """Those of ``partitions`` that hold ``min_files`` files or more, and their column.

    The files are counted from the log's ``add`` actions (:func:`add_actions`, one job; no
    data file is read), whose partition values are text as ``partitions`` are (a date as
    ``YYYY-MM-DD``). The column is the table's one partition column, from the snapshot's
    metadata. None when no partition is that crowded, or there is no table.
    """
    from pyspark.sql import functions as F

    snapshot = snapshot_of(session, uri)
    if snapshot.version() < 0:
        return None
    names = snapshot.metadata().partitionColumns()  # a Scala sequence
    (column,) = [str(names.apply(i)) for i in range(names.size())]
    values = add_actions(session, uri, snapshot).select(F.col("partitionValues").getItem(column))
    counts = Counter(row[0] for row in values.collect())
    wanted = set(partitions)
    crowded = [value for value, count in counts.items() if value in wanted and count >= min_files]
    return (column, crowded) if crowded else None


def _partitions_predicate(table: DeltaTable, column: str, values: Sequence[str | None]) -> str:
    """The predicate selecting the partitions of ``column`` whose text is ``values``.

    The values are compared as typed literals, never spliced into SQL unquoted.
    """
    # The MERGE module builds its predicates with this module's helpers: imported here.
    from ecommerce_lakehouse_spark.merge import sql_literal

    column_type = column_type_of(table.toDF().schema[column].dataType, column)

    def literal(text: str) -> str:
        # The log's text of a boolean is "true" or "false"; every other type's literal is
        # built from its text as it is.
        value = text == "true" if column_type is ColumnType.BOOLEAN else text
        return sql_literal(value, column_type)

    quoted = "`" + column.replace("`", "``") + "`"
    return partition_filter(quoted, values, literal)


def _checksum_files(session: SparkSession, uri: str, version: int) -> int | None:
    """The data files of a version as its checksum file (``.crc``) counts them.

    Delta Lake writes one with every commit; other writers (delta-rs) may not, and then
    this is None. Reading it takes no Spark job, unlike the table's ``detail()``.
    """
    text = read_text(session, f"{uri.rstrip('/')}/_delta_log/{version:020d}.crc")
    try:
        files = json.loads(text)["numFiles"] if text else None
    except (ValueError, KeyError, TypeError):
        return None
    return files if isinstance(files, int) else None


def _value(value: object, column_type: ColumnType) -> object:
    if value is None:
        return None
    if column_type is ColumnType.TIMESTAMP and isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    if column_type is ColumnType.DOUBLE and isinstance(value, int | float):
        return float(value)
    return value
