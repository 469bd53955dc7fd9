"""What only the Polars + delta-rs engine has: its factory, lazy imports, frame dtypes, guards.

Everything an engine promises through the port is tested once for every engine under
``tests/integration/engines``; these tests hold Polars' own details.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest

from ecommerce_lakehouse.domain.errors import IntegrityError
from ecommerce_lakehouse.domain.schemas import ORDER_ITEMS, ORDERS, PRODUCTS, SOURCE_FILE
from ecommerce_lakehouse.domain.types import SchemaEvolution
from ecommerce_lakehouse_polars import merge as merge_module
from ecommerce_lakehouse_polars.engine import PolarsDeltaTableEngine
from ecommerce_lakehouse_polars.reader import VIOLATION
from tests.contract.conftest_engines import polars_case
from tests.integration.engines.harness import Lake, csv_text, make_run, source_writer

ORDERS_HEADER = "order_num,order_id,user_id,order_timestamp,total_amount,date"
PRODUCTS_HEADER = "product_id,department_id,department,product_name"
ITEMS_HEADER = (
    "id,order_id,user_id,days_since_prior_order,product_id,add_to_cart_order,reordered,"
    "order_timestamp,date"
)


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return Lake(case=polars_case(), write_source=source_writer(tmp_path), root=tmp_path)


class _Storage:
    """Just what ``engine_container`` reads of an ObjectStorage."""

    @property
    def storage_options(self) -> dict[str, str]:
        return {"aws_region": "eu-west-1"}


def test_factory_builds_the_engine_from_the_container() -> None:
    from ecommerce_lakehouse.settings import LakeSettings
    from ecommerce_lakehouse_polars import engine_container

    engine = engine_container(LakeSettings(), _Storage()).engine()  # type: ignore[arg-type]
    assert isinstance(engine, PolarsDeltaTableEngine)
    assert engine.name == "polars"
    assert engine.storage_options == {"aws_region": "eu-west-1"}

    from ecommerce_lakehouse_polars import PolarsEngineContainer

    container = PolarsEngineContainer(storage_options={})
    assert container.engine() is container.engine()  # one engine per container


def test_importing_the_package_loads_no_engine_library() -> None:
    code = (
        "import sys, ecommerce_lakehouse_polars; "
        "print(sorted(m for m in ('polars', 'deltalake', 'pyarrow') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_frames_hold_the_source_file_as_a_categorical(tmp_path: Path) -> None:
    # One key per file: categorical codes, not the key text on every row.
    engine = PolarsDeltaTableEngine({})
    write = source_writer(tmp_path)
    content = csv_text(PRODUCTS_HEADER, "1,2,dairy,milk", ",2,dairy,cream")
    frame = engine.read_source(write("f.csv", content, PRODUCTS), PRODUCTS, SchemaEvolution.RESCUE)
    assert frame.schema[SOURCE_FILE] == pl.Categorical
    assert frame.schema[VIOLATION] == pl.Int32
    staged = engine.stage([frame], PRODUCTS, make_run())
    assert staged.survivors.schema[SOURCE_FILE] == pl.Categorical
    assert staged.quarantine.schema["source_file"] == pl.String


def test_low_cardinality_columns_are_codes_in_the_batch_and_text_in_the_table(
    lake: Lake,
) -> None:
    assert ORDER_ITEMS.low_cardinality == ("user_id", "product_id")
    empty = ("a.csv", "")  # an empty file's frame meets the others' in one batch
    first = (
        "b.csv",
        csv_text(
            ITEMS_HEADER,
            "i1,o1,u1,3,p1,1,1,2024-01-01T10:00:00Z,2024-01-01",
            'i2,o1,u1,3,"p 2",2,0,2024-01-02T10:00:00Z,',
            "i3,o2,,3,p1,1,0,2024-01-01T11:00:00Z,",  # no user: quarantined
        ),
    )
    second = ("c.csv", csv_text(ITEMS_HEADER, "i1,o1,u9,3,p3,1,1,2024-01-01T12:00:00Z,"))
    sources = [lake.write_source(name, text, ORDER_ITEMS) for name, text in (empty, first)]
    frame = lake.engine.read_source(sources[1], ORDER_ITEMS, SchemaEvolution.RESCUE)
    assert frame.schema["user_id"] == frame.schema["product_id"] == pl.Categorical
    assert frame.schema["order_id"] == pl.String

    ingested = lake.ingest(ORDER_ITEMS, [empty, first, second])
    assert [r["rule"] for r in ingested.staged.quarantine.to_dicts()] == ["not_null"]
    assert lake.table(ORDER_ITEMS).schema().to_arrow().field("product_id").type in (
        pa.string(),
        pa.large_string(),
        pa.string_view(),
    )
    rows = lake.rows(ORDER_ITEMS)
    # i1 of c.csv is the later one; the values are the text as read.
    assert [(r["id"], r["user_id"], r["product_id"]) for r in rows] == [
        ("i1", "u9", "p3"),
        ("i2", "u1", "p 2"),
    ]
    # The same row again is matched on its key and found unchanged (codes compared as text).
    again = lake.ingest(ORDER_ITEMS, [second])
    assert again.per_file["c.csv"].unchanged == 1
    assert again.per_file["c.csv"].updated == 0
    assert len(lake.rows(ORDER_ITEMS)) == 2
    # A changed product id is an update.
    changed = ("d.csv", csv_text(ITEMS_HEADER, "i2,o1,u1,3,p4,2,0,2024-01-02T10:00:00Z,"))
    assert lake.ingest(ORDER_ITEMS, [changed]).per_file["d.csv"].updated == 1
    assert {r["id"]: r["product_id"] for r in lake.rows(ORDER_ITEMS)} == {"i1": "p3", "i2": "p4"}


def test_metrics_disagreeing_with_the_classification_raise(
    lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake.ingest(ORDERS, [("a.csv", csv_text(ORDERS_HEADER, "1,A,u1,2024-01-01T10:00:00Z,5,"))])
    # A guard that never holds: delta-rs updates nothing the classification updated.
    monkeypatch.setattr(merge_module, "update_condition", lambda spec, **_: "false")
    with pytest.raises(IntegrityError, match="num_target_rows_updated"):
        lake.ingest(ORDERS, [("b.csv", csv_text(ORDERS_HEADER, "1,A,u1,2024-01-01T10:00:00Z,6,"))])
