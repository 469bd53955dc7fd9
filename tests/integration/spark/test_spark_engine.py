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
    """Just what ``create_engine`` reads of an ObjectStorage."""

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


def test_factory_reuses_the_process_wide_session(case: EngineCase) -> None:
    from ecommerce_lakehouse_spark import create_engine
    from ecommerce_lakehouse_spark.engine import SparkDeltaTableEngine
    from ecommerce_lakehouse_spark.session import spark_session

    engine = create_engine(_Storage(), {})  # type: ignore[arg-type]
    assert isinstance(engine, SparkDeltaTableEngine)
    assert engine.name == "spark"
    assert engine.session is spark_session() is case.engine.session
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
