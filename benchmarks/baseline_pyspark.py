"""Baseline: the plain PySpark + delta-spark script a data engineer would write instead.

Usage: python benchmarks/baseline_pyspark.py --lake DIR

Same work as baseline_polars.py, in Spark: reads DIR/raw-data/<entity>/*.csv, writes
DIR/baseline-pyspark/<table>, checks with Spark SQL and prints one JSON line. The session is
the product's local one (local[2], 4g driver, Delta jars of build/spark-jars, UTC, 4 shuffle
partitions), so the comparison measures the work and not the settings.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from delta.tables import DeltaTable
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F  # noqa: N812 (PySpark's convention)
from pyspark.sql.types import StringType, StructField, StructType

from ecommerce_lakehouse.domain.schemas import SCHEMAS, TableSchema
from ecommerce_lakehouse.domain.types import ColumnType

OUTPUT = "baseline-pyspark"
JARS = Path(__file__).resolve().parent.parent / "build" / "spark-jars"

SPARK_TYPES: dict[ColumnType, str] = {
    ColumnType.STRING: "string",
    ColumnType.INT: "int",
    ColumnType.BIGINT: "bigint",
    ColumnType.DOUBLE: "double",
    ColumnType.BOOLEAN: "boolean",
    ColumnType.DATE: "date",
    ColumnType.TIMESTAMP: "timestamp",
}


def session() -> SparkSession:
    jars = os.environ.get("LAKEHOUSE_SPARK_JARS") or str(JARS)
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = (
        SparkSession.builder.appName("baseline-pyspark")
        .master("local[2]")
        .config("spark.driver.memory", "4g")
        .config("spark.jars", ",".join(sorted(str(p) for p in Path(jars).glob("*.jar"))))
        .config("spark.driver.extraJavaOptions", "-Duser.timezone=UTC")
        .config("spark.executor.extraJavaOptions", "-Duser.timezone=UTC")
        .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
        .config(
            "spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog"
        )
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.default.parallelism", "4")
        .config("spark.sql.adaptive.enabled", "true")
        .config("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
        .config("spark.databricks.delta.properties.defaults.enableDeletionVectors", "false")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
    )
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def cast(column: str, type_: ColumnType) -> Column:
    """Trimmed text, empty as null, Spark's own cast: what does not parse becomes null."""
    text = F.trim(F.col(column))
    text = F.when(text != "", text)
    return (text if type_ is ColumnType.STRING else text.cast(SPARK_TYPES[type_])).alias(column)


def read(spark: SparkSession, schema: TableSchema, files: list[Path]) -> DataFrame:
    derived = schema.derived_date[0] if schema.derived_date else None
    # All text, columns by position (Spark's CSV reader with a schema); an extra column
    # at the end of a file is dropped. escape='"': RFC 4180 doubles quotes, and Spark's
    # default escape (a backslash) silently mangles such values ("Extra" product names).
    text_schema = StructType([StructField(c, StringType()) for c in schema.column_names])
    text = spark.read.csv(
        [str(f) for f in sorted(files)], header=True, schema=text_schema, escape='"'
    )
    typed = text.select(
        *[cast(c, t) for c, t in schema.types.items() if c != derived],
        F.input_file_name().alias("_file"),
        F.monotonically_increasing_id().alias("_row"),
    )
    required = [*schema.primary_key]
    if schema.ordering_column:
        required.append(schema.ordering_column)
    typed = typed.dropna(subset=required)
    if schema.derived_date:
        date_column, ts_column = schema.derived_date
        typed = typed.withColumn(date_column, F.to_date(F.col(ts_column)))
    # Latest per key. Spark rows have no order: ties (equal timestamps, every products
    # duplicate) go to the last file by name, then the last row read from it.
    order = [F.col("_file").desc(), F.col("_row").desc()]
    if schema.ordering_column:
        order.insert(0, F.col(schema.ordering_column).desc())
    window = Window.partitionBy(*schema.primary_key).orderBy(*order)
    return (
        typed.withColumn("_rank", F.row_number().over(window))
        .filter(F.col("_rank") == 1)
        .select(*schema.column_names)
    )


def _sql_literal(value: object) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def load(spark: SparkSession, schema: TableSchema, batch: DataFrame, table: Path) -> str:
    partition = schema.partition_column
    if not DeltaTable.isDeltaTable(spark, str(table)):
        batch.write.format("delta").mode("overwrite").partitionBy(partition).save(str(table))
        return "write"
    # The batch is read twice (partition values, then the MERGE): cache it, not the CSVs.
    batch = batch.cache()
    values = sorted(r[0] for r in batch.select(partition).distinct().collect() if r[0] is not None)
    if not values:
        batch.unpersist()
        return "nothing"
    on = " AND ".join(f"t.{k} = s.{k}" for k in schema.primary_key)
    # Partition literals let Delta prune the target to the batch's partitions.
    pruning = f"t.{partition} IN ({', '.join(_sql_literal(v) for v in values)})"
    ordering = schema.ordering_column
    newer = f"s.{ordering} > t.{ordering}" if ordering else None
    (
        DeltaTable.forPath(spark, str(table))
        .alias("t")
        .merge(batch.alias("s"), f"{on} AND {pruning}")
        .whenMatchedUpdateAll(condition=newer)
        .whenNotMatchedInsertAll()
        .execute()
    )
    batch.unpersist()
    return "merge"


def checks(spark: SparkSession, out: Path) -> dict[str, int]:
    """Offending row counts (0 = passed) over the tables that exist, in Spark SQL."""
    present = {s.name for s in SCHEMAS if DeltaTable.isDeltaTable(spark, str(out / s.name))}

    def ref(name: str) -> str:
        return f"delta.`{out / name}`"

    def count(sql: str) -> int:
        return int(spark.sql(sql).collect()[0][0])

    found: dict[str, int] = {}
    for schema in SCHEMAS:
        if schema.name not in present:
            continue
        keys = ", ".join(schema.primary_key)
        nulls = " OR ".join(f"{k} IS NULL" for k in schema.primary_key)
        found[f"{schema.name}.primary_key_unique"] = count(
            f"SELECT count(*) FROM (SELECT {keys} FROM {ref(schema.name)} "
            f"GROUP BY {keys} HAVING count(*) > 1)"
        )
        found[f"{schema.name}.primary_key_not_null"] = count(
            f"SELECT count(*) FROM {ref(schema.name)} WHERE {nulls}"
        )
        for column, parent in schema.references:
            if parent not in present:
                continue
            (parent_key,) = next(s for s in SCHEMAS if s.name == parent).primary_key
            found[f"{schema.name}.{column}_in_{parent}"] = count(
                f"SELECT count(*) FROM {ref(schema.name)} c LEFT ANTI JOIN {ref(parent)} p "
                f"ON c.{column} = p.{parent_key}"
            )
    return found


@contextmanager
def timed(
    seconds: dict[str, float],
    step: str,
    spark: SparkSession | None = None,
    jobs: dict[str, int] | None = None,
) -> Iterator[None]:
    """Time a step; with ``spark``, count its Spark jobs (a job group per step) in ``jobs``."""
    if spark is not None:
        spark.sparkContext.setJobGroup(f"baseline:{step}", step)
    started = time.perf_counter()
    yield
    seconds[step] = round(time.perf_counter() - started, 3)
    if spark is not None and jobs is not None:
        tracker = spark.sparkContext.statusTracker()
        jobs[step] = len(tracker.getJobIdsForGroup(f"baseline:{step}"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lake", type=Path, required=True)
    args = parser.parse_args()
    lake = args.lake.resolve()
    raw, out = lake / "raw-data", lake / OUTPUT
    seconds: dict[str, float] = {}
    jobs: dict[str, int] = {}
    loads: dict[str, str] = {}
    began = time.perf_counter()
    with timed(seconds, "session"):
        spark = session()
    for schema in SCHEMAS:
        files = sorted((raw / schema.name).glob("*.csv"))
        if not files:
            continue
        kind = "merge" if DeltaTable.isDeltaTable(spark, str(out / schema.name)) else "write"
        # Spark is lazy: the read runs inside the write or MERGE, so they are one step.
        with timed(seconds, f"{schema.name}.{kind}", spark, jobs):
            loads[schema.name] = load(spark, schema, read(spark, schema, files), out / schema.name)
    with timed(seconds, "checks", spark, jobs):
        found = checks(spark, out)
        rows = {
            s.name: spark.read.format("delta").load(str(out / s.name)).count()
            for s in SCHEMAS
            if DeltaTable.isDeltaTable(spark, str(out / s.name))
        }
    seconds["total"] = round(time.perf_counter() - began, 3)
    spark.stop()
    summary = {
        "tool": OUTPUT,
        "loads": loads,
        "rows": rows,
        "checks": found,
        "seconds": seconds,
        "spark_jobs": jobs,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
