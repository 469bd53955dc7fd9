"""The ``engine`` fixture of the engine suites: one parameter per table engine.

Every engine suite (the rule-parity contract here, the integration suite under
``tests/integration/engines``) takes an :class:`EngineCase` from this fixture and speaks to
frames only through it, so the tests themselves do not change from engine to engine. Import
the fixture into a test module or conftest with
``from tests.contract.conftest_engines import engine``.

The Spark parameter is marked ``spark`` (``pytest -m "not spark"`` leaves it out). Its
session is process-wide (``spark_session()`` reuses the active one), so every Spark case of
a test session shares one JVM.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ecommerce_lakehouse.domain.types import Column, ColumnType
from ecommerce_lakehouse.ports.engine import TableEngine

#: What :meth:`EngineCase.types` reports per column: a logical type, or the engine's own name
#: for a type the domain does not store (e.g. ``"categorical"``, ``"timestamp_ntz"``).
TypeName = ColumnType | str

#: Types a frame may hold text in: the logical string type, or Polars' dictionary-encoded
#: categorical (``_source_file``: one key per file). Which one is an engine detail.
TEXT_TYPES: frozenset[TypeName] = frozenset({ColumnType.STRING, "categorical"})

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _sort_key(row: Any) -> tuple[Any, ...]:
    """A total order over rows (tuples or dicts) whose columns hold one type each."""
    values = [v for _, v in sorted(row.items())] if isinstance(row, Mapping) else list(row)
    return tuple((v is None, "" if v is None else v) for v in values)


@dataclass(frozen=True)
class EngineCase:
    """A TableEngine under test and the hooks that read and build its frames neutrally.

    Attributes:
        engine: the engine.
        records: a frame's rows as plain Python values, the same for every engine:
            ``str``, ``int``, ``float``, ``bool``, ``date`` and timezone-aware UTC
            ``datetime`` (never a naive one), in the frame's order.
        types: a frame's column types (:data:`TypeName`), in column order.
        columns: a frame's column names, in order.
        height: a frame's number of rows.
        frame: build a frame of ``columns`` (name, logical type) from plain records (missing
            keys are null), as the application would hand one to ``append_frame``.
        ordered: whether the engine's frames have a defined row order. Polars keeps rows in
            file and line order; Spark rows come out of shuffles (dedup, joins) in no
            particular order, so :meth:`rows` and :meth:`arranged` sort them.
        violation: the source-frame column holding the index (in ``schema.rules``) of the
            first rule a row breaks, when the engine evaluates rules in ``read_source``.
        metric_names: for a metric delta-rs has and this engine lacks, by its delta-rs name,
            the name of this engine's equivalent metric.
    """

    engine: TableEngine[Any]
    records: Callable[[Any], list[dict[str, Any]]]
    types: Callable[[Any], dict[str, TypeName]]
    columns: Callable[[Any], list[str]]
    height: Callable[[Any], int]
    frame: Callable[[Sequence[Mapping[str, object]], Sequence[Column]], Any]
    ordered: bool = True
    violation: str | None = None
    metric_names: Mapping[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """The engine's short name (``polars``, ``spark``)."""
        return self.engine.name

    def metric(self, metrics: Mapping[str, int], name: str) -> int | None:
        """The metric delta-rs calls ``name`` (else this engine's equivalent) in ``metrics``."""
        if name in metrics:
            return metrics[name]
        return metrics.get(self.metric_names.get(name, name))

    def rows(self, frame: Any, *columns: str) -> list[tuple[Any, ...]]:
        """The values of ``columns`` per row: in frame order, sorted when not :attr:`ordered`."""
        return self.arranged([tuple(r[c] for c in columns) for r in self.records(frame)])

    def column(self, frame: Any, name: str) -> list[Any]:
        """One column's values (in frame order, sorted when not :attr:`ordered`)."""
        return [row[0] for row in self.rows(frame, name)]

    def arranged(self, rows: Sequence[Any]) -> list[Any]:
        """Expected rows (tuples or dicts) arranged as :meth:`rows` arranges this engine's."""
        return list(rows) if self.ordered else sorted(rows, key=_sort_key)


# ---------------------------------------------------------------- polars


def _polars_type(dtype: Any) -> TypeName:
    import polars as pl

    logical: dict[Any, ColumnType] = {
        pl.String: ColumnType.STRING,
        pl.Int32: ColumnType.INT,
        pl.Int64: ColumnType.BIGINT,
        pl.Float64: ColumnType.DOUBLE,
        pl.Boolean: ColumnType.BOOLEAN,
        pl.Date: ColumnType.DATE,
    }
    if dtype == pl.Datetime("us", "UTC"):
        return ColumnType.TIMESTAMP
    if dtype == pl.Categorical:
        return "categorical"
    for polars_type, column_type in logical.items():
        if dtype == polars_type:
            return column_type
    return str(dtype)


def polars_case() -> EngineCase:
    """The Polars + delta-rs engine."""
    import polars as pl

    from ecommerce_lakehouse_polars.dtypes import polars_schema
    from ecommerce_lakehouse_polars.engine import PolarsDeltaTableEngine
    from ecommerce_lakehouse_polars.reader import VIOLATION

    def frame(records: Sequence[Mapping[str, object]], columns: Sequence[Column]) -> Any:
        rows = [tuple(r.get(c.name) for c in columns) for r in records]
        return pl.DataFrame(rows, schema=polars_schema(columns), orient="row")

    return EngineCase(
        engine=PolarsDeltaTableEngine({}),
        records=lambda frame: frame.to_dicts(),
        types=lambda frame: {name: _polars_type(t) for name, t in frame.schema.items()},
        columns=lambda frame: list(frame.columns),
        height=lambda frame: int(frame.height),
        frame=frame,
        ordered=True,
        violation=VIOLATION,
    )


# ---------------------------------------------------------------- spark

_SPARK_TYPES: dict[str, ColumnType] = {
    "string": ColumnType.STRING,
    "int": ColumnType.INT,
    "bigint": ColumnType.BIGINT,
    "double": ColumnType.DOUBLE,
    "boolean": ColumnType.BOOLEAN,
    "date": ColumnType.DATE,
    "timestamp": ColumnType.TIMESTAMP,
}

#: Metrics Spark's Delta has under another name. Engines report operation metrics under
#: delta-rs's names (``ecommerce_lakehouse_delta.commit_info.operation_metrics``), but Spark
#: counts no files scanned: the files left after data skipping are the files its MERGE reads.
SPARK_METRICS: Mapping[str, str] = {
    "num_target_files_scanned": "num_target_files_after_skipping",
}


def _spark_records(frame: Any) -> list[dict[str, Any]]:
    # collect() turns a timestamp into a naive datetime in the Python process's local zone
    # (and fails outside years 1..9999 of it): read instants as epoch microseconds instead.
    from pyspark.sql import functions

    instants = {f.name for f in frame.schema.fields if f.dataType.simpleString() == "timestamp"}
    if instants:
        frame = frame.select(
            *(
                functions.unix_micros(frame[name]).alias(name) if name in instants else frame[name]
                for name in frame.columns
            )
        )
    return [
        {
            name: (
                _EPOCH + timedelta(microseconds=value)
                if name in instants and value is not None
                else value
            )
            for name, value in row.asDict().items()
        }
        for row in frame.collect()
    ]


def spark_case() -> EngineCase:
    """The PySpark + Delta engine on the process-wide local Spark session."""
    import ecommerce_lakehouse_spark.reader as reader
    from ecommerce_lakehouse_spark.dtypes import spark_schema
    from ecommerce_lakehouse_spark.engine import SparkDeltaTableEngine
    from ecommerce_lakehouse_spark.session import spark_session

    engine = SparkDeltaTableEngine(spark_session())

    def frame(records: Sequence[Mapping[str, object]], columns: Sequence[Column]) -> Any:
        rows = [tuple(r.get(c.name) for c in columns) for r in records]
        return engine.session.createDataFrame(rows, spark_schema(columns))

    return EngineCase(
        engine=engine,
        records=_spark_records,
        types=lambda frame: {
            f.name: _SPARK_TYPES.get(f.dataType.simpleString(), f.dataType.simpleString())
            for f in frame.schema.fields
        },
        columns=lambda frame: list(frame.columns),
        height=lambda frame: int(frame.count()),
        frame=frame,
        ordered=False,
        violation=getattr(reader, "VIOLATION", None),
        metric_names=SPARK_METRICS,
    )


_ENGINES: dict[str, Callable[[], EngineCase]] = {"polars": polars_case, "spark": spark_case}

#: The ``engine`` fixture's parameters: every engine, Spark marked ``spark`` (slow, needs a JVM).
ENGINE_PARAMS = [
    pytest.param("polars", id="polars"),
    pytest.param("spark", id="spark", marks=pytest.mark.spark),
]


@pytest.fixture(params=ENGINE_PARAMS)
def engine(request: pytest.FixtureRequest) -> EngineCase:
    """Every table engine in turn."""
    return _ENGINES[request.param]()
