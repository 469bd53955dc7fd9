"""The Spark session the engine runs on: Glue's own, or a local one with local Delta jars.

On AWS Glue (``--datalake-formats delta``), as under any ``spark-submit``, the process was
started by a launcher that configured Spark (master, jars, Delta, the S3 file system): the
session is taken from it as configured and only the settings the engine relies on are
applied to it. Anywhere else a local session is built with the Delta jars of a directory
(``build/spark-jars``, filled by ``make`` through Maven), so starting a session never
touches the network.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from ecommerce_lakehouse.domain.errors import ConfigurationError
from ecommerce_lakehouse.settings import LakeSettings, env_name, read_settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

#: Set by ``spark-submit`` (and so on Glue) for a Python driver: the launcher's JVM, already
#: configured, waits on this Py4J port.
LAUNCHER_ENV = "PYSPARK_GATEWAY_PORT"

#: Lets the JIT compile methods over 8,000 bytes of bytecode, which HotSpot otherwise runs
#: interpreted. Whole-stage code generation fuses the reader's rules, casts and timestamp
#: parse into one such method; compiled, that stage runs in 0.6-0.7x the time of Spark's
#: per-expression code, interpreted in about 2x (see ``compiles_huge_methods``).
HUGE_METHODS_FLAG = "-XX:-DontCompileHugeMethods"

#: Settings the engine relies on, applied to every session (runtime-modifiable ones).
SESSION_SETTINGS: Mapping[str, str] = {
    # Timestamps are instants in UTC (docs/contract.md#input-schemas); dates derive from the
    # UTC timestamp.
    "spark.sql.session.timeZone": "UTC",
    # Parquet INT96 timestamps overflow outside 1677-2262 for readers using nanoseconds
    # (delta-rs, Arrow); microseconds cover years 1-9999 like the Polars engine's files.
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    # The CSV parser must see the text as written (no date/number guessing).
    "spark.sql.csv.parser.columnPruning.enabled": "false",
    # Schema evolution is asked for per MERGE, never by default.
    "spark.databricks.delta.schema.autoMerge.enabled": "false",
    # Stable, readable-by-all protocol (docs/contract.md#engines-and-platforms): no deletion
    # vectors by default.
    "spark.databricks.delta.properties.defaults.enableDeletionVectors": "false",
    # Delta Lake rebuilds a table's state from its log in 50 tasks by default, sized for
    # logs of millions of files; the lake's logs hold thousands at most, and the first
    # query of a run paid ~3 s for the tasks (a 4-commit ledger: 7.3 s -> 4.1 s).
    "spark.databricks.delta.snapshotPartitions": "1",
}

_STATIC_SETTINGS: Mapping[str, str] = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    # One machine: a handful of shuffle partitions, not the cluster default of 200.
    "spark.sql.shuffle.partitions": "4",
    "spark.default.parallelism": "4",
    "spark.sql.adaptive.enabled": "true",
    # The engine's local checkpoints live in the block manager, on the one JVM's heap here.
    # At Spark's default share (0.6) they filled the old generation, and full collections of
    # that live set took 68 s of a scale-1 load; with 0.2 the rest go to local disk as bytes
    # (19 s of full collections, the load 725 s -> 622 s; docs/benchmarks.md).
    "spark.memory.fraction": "0.2",
    "spark.executor.extraJavaOptions": f"-Duser.timezone=UTC {HUGE_METHODS_FLAG}",
}

#: Errors only, on stderr (a session's INFO/WARN chatter would bury the CLI's output).
LOG4J2_CONFIG = Path(__file__).with_name("log4j2.properties")

#: Set on the sessions this package builds: only their object-store configuration is ours to
#: set (Glue's session keeps its own S3 file system and role).
BUILT_HERE_CONF = "spark.ecommerce_lakehouse.built_here"

# Two containers starting a session at once must not build two.
_building = threading.Lock()


def s3a_settings(storage_options: Mapping[str, str]) -> dict[str, str]:
    """Hadoop S3A settings of a local session for a lake's object-store options.

    ``s3://`` URIs (the lake's, as on Glue) go through S3A, whose jars ``make`` fetches
    with the Delta ones. Delta commits to ``s3`` paths through its S3 single-driver log
    store: safe because the lake lock admits one writer at a time (docs/contract.md#concurrency).

    Args:
        storage_options: the storage's delta-rs style options (``AWS_REGION``,
            ``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ...). Without keys S3A's default
            chain finds credentials (environment, profile, instance role).
    """
    settings = {"fs.s3.impl": "org.apache.hadoop.fs.s3a.S3AFileSystem"}
    if region := storage_options.get("AWS_REGION"):
        settings["fs.s3a.endpoint.region"] = region
    if endpoint := storage_options.get("AWS_ENDPOINT_URL"):
        # An emulator or S3-compatible store: its address, path-style buckets.
        settings["fs.s3a.endpoint"] = endpoint
        settings["fs.s3a.path.style.access"] = "true"
        settings["fs.s3a.connection.ssl.enabled"] = str(endpoint.startswith("https://")).lower()
    key, secret = (
        storage_options.get("AWS_ACCESS_KEY_ID"),
        storage_options.get("AWS_SECRET_ACCESS_KEY"),
    )
    if key and secret:
        settings["fs.s3a.access.key"] = key
        settings["fs.s3a.secret.key"] = secret
        provider = "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider"
        if token := storage_options.get("AWS_SESSION_TOKEN"):
            settings["fs.s3a.session.token"] = token
            provider = "org.apache.hadoop.fs.s3a.TemporaryAWSCredentialsProvider"
        settings["fs.s3a.aws.credentials.provider"] = provider
    return settings


def configure_object_store(
    session: SparkSession, root_uri: str, options: Mapping[str, str]
) -> None:
    """Point a session this package built at an ``s3://`` lake's object store.

    A session someone else built (AWS Glue's, with its own S3 filesystem and role) is left
    as it is, and so is any session for a directory lake.
    """
    built_here = session.conf.get(BUILT_HERE_CONF, "false") == "true"
    if not (built_here and root_uri.startswith("s3://")):
        return
    hadoop = session.sparkContext._jsc.hadoopConfiguration()  # PySpark has no public API for it
    for key, value in s3a_settings(options).items():
        hadoop.set(key, value)


def delta_jars(directory: str | None = None) -> list[str]:
    """The jar files of the local Delta jars directory.

    Looked up in ``directory`` (the ``spark_jars`` setting), else ``build/spark-jars``
    beside the virtual environment running Python (the project's ignored build folder),
    else ``build/spark-jars`` under the working directory.

    Raises:
        ConfigurationError: no directory with ``delta-spark`` jars was found.
    """
    candidates = (
        [Path(directory)]
        if directory
        else [
            Path(sys.prefix).parent / "build" / "spark-jars",
            Path.cwd() / "build" / "spark-jars",
        ]
    )
    for candidate in candidates:
        jars = sorted(str(p) for p in candidate.glob("*.jar")) if candidate.is_dir() else []
        if any(Path(j).name.startswith("delta-spark_") for j in jars):
            return jars
    searched = ", ".join(str(c) for c in candidates)
    raise ConfigurationError(
        f"the Spark engine needs the Delta Lake jars and found none in {searched}; "
        f"run `make install` (it fetches them with Maven) or set {env_name('spark_jars')}"
    )


def spark_session(settings: LakeSettings | None = None) -> SparkSession:
    """The active Spark session with the engine's settings, built locally when none exists.

    Args:
        settings: the lake's settings; ``spark_master``, ``spark_driver_memory`` and
            ``spark_jars`` configure a session built here. None reads them from the
            environment (``LAKEHOUSE_SPARK_MASTER``, ...).

    Raises:
        ConfigurationError: no session exists and the Delta jars cannot be found.
    """
    from pyspark.sql import SparkSession

    settings = settings or read_settings(LakeSettings, {}, os.environ)
    with _building:
        session = SparkSession.getActiveSession()
        if session is None and os.environ.get(LAUNCHER_ENV):
            # Glue or spark-submit configured this application: take its session as it is.
            session = SparkSession.builder.getOrCreate()
        if session is None:
            jars = delta_jars(settings.spark_jars)
            # Python workers (the CSV parse runs in one) must import this package and
            # pyarrow: run them on this interpreter, not on whatever `python3` PATH holds.
            os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
            builder = (
                SparkSession.builder.appName("ecommerce-lakehouse")
                .master(settings.spark_master)
                .config("spark.jars", ",".join(jars))
                .config("spark.driver.memory", settings.spark_driver_memory)
                .config(
                    "spark.driver.extraJavaOptions",
                    # The throughput collector: a batch job on few cores loses less to it
                    # than to G1's concurrent work (a validation query ran in 17.6 s
                    # instead of 23.4 s on 2 cores).
                    f"-XX:+UseParallelGC -Duser.timezone=UTC {HUGE_METHODS_FLAG} "
                    f"-Dlog4j2.configurationFile={LOG4J2_CONFIG.as_uri()}",
                )
                .config(BUILT_HERE_CONF, "true")
            )
            for key, value in {**_STATIC_SETTINGS, **SESSION_SETTINGS}.items():
                builder = builder.config(key, value)
            session = builder.getOrCreate()
            session.sparkContext.setLogLevel("ERROR")
        for key, value in SESSION_SETTINGS.items():
            session.conf.set(key, value)
        return session


def compiles_huge_methods(session: SparkSession) -> bool:
    """Whether the JVMs running the session's tasks compile huge methods.

    True when the driver's JVM runs with :data:`HUGE_METHODS_FLAG` (asked of the JVM itself,
    whoever started it) and, unless the master is local (tasks in the driver's JVM), the
    executors are configured with it too. A launcher's session (Glue's) has it only when
    the job's configuration passes the flag.
    """
    from py4j.protocol import Py4JError

    jvm = session.sparkContext._jvm
    assert jvm is not None
    try:
        bean = jvm.java.lang.management.ManagementFactory.getPlatformMXBean(
            jvm.java.lang.Class.forName("com.sun.management.HotSpotDiagnosticMXBean")
        )
        compiled = bean is not None and (
            bean.getVMOption("DontCompileHugeMethods").getValue() == "false"
        )
    except Py4JError:
        # Not a HotSpot JVM (no such bean or option): assume the default.
        return False
    if not compiled:
        return False
    master = session.sparkContext.master or ""
    # local and local[n] run tasks in the driver's JVM; local-cluster[...] does not.
    if master == "local" or master.startswith("local["):
        return True
    executors = session.sparkContext.getConf().get("spark.executor.extraJavaOptions") or ""
    return HUGE_METHODS_FLAG in executors.split()
