"""What only the PySpark + Delta engine has: its factory, lazy imports, session, guards.

Everything an engine promises through the port is tested once for every engine under
``tests/integration/engines``; these tests hold Spark's own details.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ecommerce_lakehouse.domain.errors import IntegrityError
from ecommerce_lakehouse.domain.schemas import ORDERS
from tests.contract.conftest_engines import EngineCase, spark_case
from tests.integration.engines.harness import Lake, csv_text, source_writer

pytestmark = pytest.mark.spark

ORDERS_HEADER = "order_num,order_id,user_id,order_timestamp,total_amount,date"


@pytest.fixture
def case() -> EngineCase:
    return spark_case()


@pytest.fixture
def lake(case: EngineCase, tmp_path: Path) -> Lake:
    return Lake(case=case, write_source=source_writer(tmp_path), root=tmp_path)


class _Storage:
    """Just what ``engine_container`` reads of an ObjectStorage."""

    @property
    def root_uri(self) -> str:
        return "/tmp/lake"

    @property
    def storage_options(self) -> dict[str, str]:
        return {}


def test_importing_the_package_loads_no_engine_library() -> None:
    code = (
        "import sys, ecommerce_lakehouse_spark; "
        "print(sorted(m for m in ('pyspark', 'py4j', 'delta', 'polars', 'deltalake')"
        " if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_closing_a_lake_stops_the_session_it_started_and_the_process_ends(
    tmp_path: Path,
) -> None:
    # In a fresh interpreter: no session runs, so the lake's container starts one.
    code = (
        "import ecommerce_lakehouse as lh\n"
        "from pyspark.sql import SparkSession\n"
        f"with lh.open_lake({str(tmp_path)!r}, engine='spark') as lake:\n"
        f"    with lh.open_lake({str(tmp_path)!r}, engine='spark') as other:\n"
        "        assert other.sql('SELECT 1 AS one').num_rows == 1\n"
        # The other lake's close leaves the session to the lake still open.
        "    assert lake.sql('SELECT 1 AS one').num_rows == 1\n"
        "    assert SparkSession.getActiveSession() is not None\n"
        "print('stopped' if SparkSession.getActiveSession() is None else 'running')\n"
        # A lake left open must not hang the interpreter's exit either.
        f"lh.open_lake({str(tmp_path)!r}, engine='spark').sql('SELECT 1')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "stopped"


def test_the_container_reuses_the_running_session_and_leaves_it_running(
    case: EngineCase,
) -> None:
    from ecommerce_lakehouse.settings import LakeSettings
    from ecommerce_lakehouse_spark import engine_container
    from ecommerce_lakehouse_spark.engine import SparkDeltaTableEngine
    from ecommerce_lakehouse_spark.query import SparkSqlQueryService
    from ecommerce_lakehouse_spark.session import spark_session

    container = engine_container(LakeSettings(), _Storage())  # type: ignore[arg-type]
    engine = container.engine()
    assert isinstance(engine, SparkDeltaTableEngine)
    assert isinstance(container.spark(), SparkSqlQueryService)
    assert engine.name == "spark"
    # One session for the engine and Spark SQL: the one already running.
    assert engine.session is container.session() is spark_session() is case.engine.session
    container.shutdown_resources()
    # A session the container did not start is not the container's to stop.
    assert engine.session.sparkContext._jsc is not None
    assert engine.session.range(1).count() == 1
    # Instants are UTC whatever the machine's zone (docs/contract.md#input-schemas).
    assert engine.session.conf.get("spark.sql.session.timeZone") == "UTC"


def test_metrics_disagreeing_with_the_classification_raise(
    lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ecommerce_lakehouse_spark import merge as merge_module

    lake.ingest(ORDERS, [("a.csv", csv_text(ORDERS_HEADER, "1,A,u1,2024-01-01T10:00:00Z,5,"))])
    # A guard that never holds: Delta updates nothing the classification updated.
    monkeypatch.setattr(merge_module, "update_condition", lambda spec, **_: "false")
    with pytest.raises(IntegrityError, match="num_target_rows_updated"):
        lake.ingest(ORDERS, [("b.csv", csv_text(ORDERS_HEADER, "1,A,u1,2024-01-01T10:00:00Z,6,"))])
