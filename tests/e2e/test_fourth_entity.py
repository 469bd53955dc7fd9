"""A fourth entity declared in the catalogue alone reaches every part of the lake.

The catalogue (``ecommerce_lakehouse.domain.schemas.SCHEMAS``) is the only list of entities.
To prove it, the core package is copied into a temporary directory and ``customers`` is
declared in the copy's ``schemas.py``, exactly as a developer adding an entity would; nothing
else is changed. Processes started with the copy first on ``PYTHONPATH`` then run the real
adapters and entry points over it: the Polars and Spark pipelines, ``lakehouse
state-machine`` and the crawler targets of ``infra/render_definition.py``.

Why a copy, not a patch of ``SCHEMAS`` in a fresh interpreter: importing
``ecommerce_lakehouse.domain.schemas`` first runs ``ecommerce_lakehouse/__init__.py``, which
imports the whole application (the pipeline, the checks, the table list), so those modules
would take the three-entity tuple before any patch. The copy declares four from the start.

The drop holds all four entities: customers with an in-batch correction, an exact re-send
and two bad rows (an age out of range, a blank key), and an order whose customer does not
exist (the warn-severity ``user_id_in_customers`` check fails on it).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from deltalake import DeltaTable

from ecommerce_lakehouse.application.run import DiscoveredFile
from ecommerce_lakehouse.domain.errors import ConfigurationError
from ecommerce_lakehouse.domain.schemas import (
    ORDERS,
    PRODUCTS,
    TableSchema,
    entity_named,
    entity_names,
)
from ecommerce_lakehouse.domain.validation import ValidationPolicy, all_checks
from ecommerce_lakehouse.domain.zones import CATALOGUE_FILE, ZonePaths, audit_key, table_key
from tests.e2e.test_cli import LAKEHOUSE
from tests.e2e.test_spark_engine import table_rows
from tests.unit.test_state_machine import VALIDATOR

ROOT = Path(__file__).resolve().parents[2]
ENTITIES = ["products", "customers", "orders", "order_items"]

#: Appended to the copy's schemas.py: the whole of what the fourth entity takes.
CUSTOMERS_DECLARATION = """

# ---- tests/e2e/test_fourth_entity.py: a fourth entity, declared in the catalogue only ----
from dataclasses import replace as _replace  # noqa: E402

CUSTOMERS = TableSchema(
    entity="customers",
    columns=(
        _c("customer_id"),
        _c("name"),
        _c("age", ColumnType.INT),
        _c("signup_timestamp", ColumnType.TIMESTAMP),
        _c("signup_date", ColumnType.DATE),
    ),
    primary_key=("customer_id",),
    partition_column="signup_date",
    ordering_column="signup_timestamp",
    derived_date=("signup_date", "signup_timestamp"),
    value_rules=(InRange(column="age", minimum=0, maximum=150),),
)
ORDERS = _replace(ORDERS, references=(("user_id", "customers"),))
SCHEMAS = (PRODUCTS, CUSTOMERS, ORDERS, ORDER_ITEMS)
"""

#: The raw drop: a folder per entity, and one customers file named by its prefix only.
DROP = {
    "raw-data/products/products_1.csv": (
        "product_id,department_id,department,product_name\np1,1,frozen,Peas\np2,2,dairy,Milk\n"
    ),
    "raw-data/customers/customers_1.csv": (
        "customer_id,name,age,signup_timestamp\n"
        "c1,Ada,36,2024-01-01T09:00:00Z\n"
        "c2,Grace,45,2024-01-02T10:00:00Z\n"
        "c3,Linus,-4,2024-01-03T11:00:00Z\n"  # age out of range: quarantined
        "c2,Grace H.,45,2024-01-05T10:00:00Z\n"  # a later version of c2 wins
        ",Nobody,20,2024-01-04T00:00:00Z\n"  # blank key: quarantined
    ),
    "raw-data/customers_2.csv": (
        "customer_id,name,age,signup_timestamp\n"
        "c4,Edsger,50,2024-02-01T08:00:00Z\n"
        "c1,Ada,36,2024-01-01T09:00:00Z\n"  # sent again, same version
    ),
    "raw-data/orders/orders_1.csv": (
        "order_num,order_id,user_id,order_timestamp,total_amount\n"
        "1,o1,c1,2024-01-10T10:00:00Z,12.5\n"
        "2,o2,c2,2024-01-11T11:00:00Z,3.0\n"
        "3,o3,c9,2024-01-12T12:00:00Z,7.25\n"  # no customer c9
    ),
    "raw-data/order_items/order_items_1.csv": (
        "id,order_id,user_id,days_since_prior_order,product_id,add_to_cart_order,reordered,"
        "order_timestamp\n"
        "i1,o1,c1,0,p1,1,false,2024-01-10T10:00:00Z\n"
        "i2,o2,c2,3,p2,1,true,2024-01-11T11:00:00Z\n"
    ),
    "raw-data/visitors.csv": "visitor_id\nv1\n",  # names no entity: rejected
}

#: Runs the library's pipeline (``open_lake(root, engine=...).run()``) and prints its document.
RUN_PIPELINE = """
import json, sys
from ecommerce_lakehouse import RunOptions, open_lake
from ecommerce_lakehouse.domain import schemas
assert schemas.entity_names() == tuple(sys.argv[3].split(",")), schemas.__file__
# Closing the lake stops the Spark session it started (left to garbage collection at exit,
# pyspark's accumulator server can wait forever for its already stopped thread).
with open_lake(sys.argv[1], engine=sys.argv[2]) as lake:
    result = lake.run(RunOptions(settle_seconds=0))
print("RESULT " + json.dumps(result.as_dict()))
"""

#: Prints the crawler targets ``infra/render_definition.py`` writes into the template.
CRAWLER_TARGETS = """
import sys
sys.path.insert(0, sys.argv[1])
import render_definition
print("\\n".join(render_definition.render_crawler_targets("")))
"""


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the core package whose catalogue declares ``customers`` too."""
    site = tmp_path_factory.mktemp("four-entities")
    package = site / "ecommerce_lakehouse"
    shutil.copytree(
        ROOT / "src" / "ecommerce_lakehouse",
        package,
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    with (package / "domain" / "schemas.py").open("a", encoding="utf-8") as schemas:
        schemas.write(CUSTOMERS_DECLARATION)
    return site


def run_with(
    catalogue: Path, command: list[str], *, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run ``command`` with the four-entity core first on the import path."""
    environ = {**os.environ, **(env or {})}
    # PySpark's Python workers inherit PYTHONPATH too, so they import the same copy.
    environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(catalogue), environ.get("PYTHONPATH", "")) if p
    )
    return subprocess.run(
        command, capture_output=True, text=True, timeout=timeout, check=False, env=environ
    )


def write_drop(root: Path) -> None:
    for key, text in DROP.items():
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def run_pipeline(
    catalogue: Path, root: Path, engine: str, *, timeout: float = 300
) -> dict[str, Any]:
    """The run document of the library's pipeline over four entities."""
    done = run_with(
        catalogue,
        [sys.executable, "-c", RUN_PIPELINE, str(root), engine, ",".join(ENTITIES)],
        timeout=timeout,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (line,) = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")]
    document: dict[str, Any] = json.loads(line.removeprefix("RESULT "))
    return document


def delta_rows(root: Path, key: str) -> list[dict[str, Any]]:
    return pl.DataFrame(pl.from_arrow(DeltaTable(str(root / key)).to_pyarrow_table())).to_dicts()


@pytest.fixture(scope="module")
def polars_lake(catalogue: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("polars-lake")
    write_drop(root)
    document = run_pipeline(catalogue, root, "polars")
    (root / "result.json").write_text(json.dumps(document), encoding="utf-8")
    return root


def result_of(lake: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((lake / "result.json").read_text(encoding="utf-8"))
    return document


# ---------------------------------------------------------------- (a) the Polars pipeline
def test_the_polars_pipeline_loads_dedups_and_quarantines_the_fourth_entity(
    polars_lake: Path,
) -> None:
    result = result_of(polars_lake)
    assert result["ok"] is True
    assert list(result["tables"]) == ENTITIES
    customers = [f for f in result["files"] if f["entity"] == "customers"]
    assert sorted(f["source_path"] for f in customers) == [
        "raw-data/customers/customers_1.csv",
        "raw-data/customers_2.csv",
    ]
    assert {f["status"] for f in customers} == {"loaded"}
    assert all(f["destination"].startswith("archive/customers/") for f in customers)
    totals = {
        name: sum(f[name] for f in customers)
        for name in ("rows_read", "inserted", "duplicates_in_batch", "quarantined")
    }
    assert totals == {"rows_read": 7, "inserted": 3, "duplicates_in_batch": 2, "quarantined": 2}
    assert not list((polars_lake / "raw-data").rglob("*.csv"))

    stored = sorted(delta_rows(polars_lake, table_key("customers")), key=lambda r: r["customer_id"])
    assert [
        (r["customer_id"], r["name"], r["age"], r["signup_date"], r["_source_file"]) for r in stored
    ] == [
        ("c1", "Ada", 36, date(2024, 1, 1), "raw-data/customers_2.csv"),
        ("c2", "Grace H.", 45, date(2024, 1, 5), "raw-data/customers/customers_1.csv"),
        ("c4", "Edsger", 50, date(2024, 2, 1), "raw-data/customers_2.csv"),
    ]
    assert DeltaTable(str(polars_lake / table_key("customers"))).metadata().partition_columns == [
        "signup_date"
    ]
    quarantined = sorted(
        (r["line_number"], r["rule"], r["column_name"])
        for r in delta_rows(polars_lake, audit_key("quarantine"))
        if r["entity"] == "customers"
    )
    assert quarantined == [(4, "in_range", "age"), (6, "not_null", "customer_id")]
    (stranger,) = [f for f in result["files"] if f["source_path"] == "raw-data/visitors.csv"]
    assert (stranger["entity"], stranger["status"], stranger["error"]) == (
        None,
        "rejected",
        "unknown_entity: the folder or file name names no entity "
        "(products, customers, orders, order_items)",
    )


def test_the_fourth_entity_is_registered_and_queryable(catalogue: Path, polars_lake: Path) -> None:
    with sqlite3.connect(polars_lake / CATALOGUE_FILE) as connection:
        registered = dict(connection.execute("SELECT name, partition_columns FROM tables"))
    assert json.loads(registered["customers"]) == ["signup_date"]
    query = "SELECT customer_id FROM customers ORDER BY 1"
    done = run_with(
        catalogue, [LAKEHOUSE, "sql", "--lake", str(polars_lake), "--format", "csv", query]
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["customer_id", "c1", "c2", "c4"]
    done = run_with(catalogue, [LAKEHOUSE, "sql", "--help"])
    assert "customers" in done.stdout


def test_a_run_without_customer_files_still_creates_and_checks_its_table(
    catalogue: Path, tmp_path: Path
) -> None:
    (tmp_path / "raw-data").mkdir()
    result = run_pipeline(catalogue, tmp_path, "polars")
    assert result["ok"] is True and result["files"] == []
    assert DeltaTable(str(tmp_path / table_key("customers"))).version() == 0
    assert {c["check_name"] for c in result["checks"] if c["table_name"] == "customers"}


def test_validation_runs_the_fourth_entitys_key_checks_and_its_foreign_key(
    polars_lake: Path,
) -> None:
    checks = {(c["table_name"], c["check_name"]): c for c in result_of(polars_lake)["checks"]}
    customers = {name for table, name in checks if table == "customers"}
    assert customers == {
        "primary_key_unique",
        "primary_key_not_null",
        "required_columns_not_null",
        "row_count_matches_ingest_log",
        "partition_column_consistent",
    }
    assert all(checks["customers", name]["passed"] for name in customers)
    assert checks["customers", "row_count_matches_ingest_log"]["observed"] == 3
    orphan = checks["orders", "user_id_in_customers"]
    assert (orphan["passed"], orphan["severity"], orphan["sample"]) == (False, "warn", ["o3"])
    assert checks["order_items", "order_id_in_orders"]["passed"]
    recorded = {
        (r["table_name"], r["check_name"])
        for r in delta_rows(polars_lake, audit_key("validation_results"))
    }
    assert set(checks) == recorded


# ---------------------------------------------------------------- (b) the Spark pipeline
@pytest.mark.spark
def test_the_spark_pipeline_stores_the_same_four_tables_as_polars(
    catalogue: Path, polars_lake: Path, tmp_path: Path
) -> None:
    spark_lake = tmp_path / "spark-lake"
    write_drop(spark_lake)
    # A local Spark session takes minutes on a busy machine (a MERGE per entity, the checks).
    result = run_pipeline(catalogue, spark_lake, "spark", timeout=1200)
    assert result["engine"] == "spark" and result["ok"] is True
    assert list(result["tables"]) == ENTITIES
    for name, order in (
        ("products", ["product_id"]),
        ("customers", ["customer_id"]),
        ("orders", ["order_id"]),
        ("order_items", ["id"]),
    ):
        expected = table_rows(polars_lake, table_key(name), order)
        assert expected, name
        assert table_rows(spark_lake, table_key(name), order) == expected, name
    for audit, order in (
        ("quarantine", ["source_file", "line_number"]),
        ("ingest_log", ["source_path"]),
        ("validation_results", ["table_name", "check_name"]),
    ):
        expected = table_rows(polars_lake, audit_key(audit), order)
        assert table_rows(spark_lake, audit_key(audit), order) == expected, audit


# ---------------------------------------------------------------- (c) state machine, crawler
def test_the_state_machine_names_the_fourth_entity_and_stays_valid(
    catalogue: Path, tmp_path: Path
) -> None:
    paths = []
    for variant, flags in (("optimized", []), ("polling", ["--polling"])):
        done = run_with(
            catalogue,
            [LAKEHOUSE, "state-machine", *flags],
            env={"LAKEHOUSE_FK_SEVERITY": "error", "LAKEHOUSE_CRAWLER": "lake-crawler"},
        )
        assert done.returncode == 0, done.stderr
        states = json.loads(done.stdout)["States"]
        comments = [s.get("Comment", "") for s in states.values()]
        assert any("MERGE products, customers, orders, order_items" in c for c in comments)
        gate = [
            s["Parameters"]["QueryString"]
            for s in states.values()
            if "QueryString" in s.get("Parameters", {})
        ]
        assert len(gate) == 1
        assert "WHERE entity = 'customers' AND status IN ('loaded', 'rolled_back')" in gate[0]
        assert "LEFT JOIN customers p ON c.user_id = p.customer_id" in gate[0]
        path = tmp_path / f"{variant}.json"
        path.write_text(done.stdout, encoding="utf-8")
        paths += ["--json-path", str(path)]
    assert VALIDATOR.exists(), f"{VALIDATOR} missing: run `make install`"
    done = subprocess.run(
        [str(VALIDATOR), *paths], capture_output=True, text=True, check=False, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_crawler_targets_include_the_fourth_entity(catalogue: Path) -> None:
    done = run_with(catalogue, [sys.executable, "-c", CRAWLER_TARGETS, str(ROOT / "infra")])
    assert done.returncode == 0, done.stderr
    targets = [line for line in done.stdout.splitlines() if line.startswith("- !Sub")]
    assert [t.rsplit("/", 1)[1].rstrip('"') for t in targets] == ENTITIES


# ---------------------------------------------------------------- the names themselves
def test_the_shipped_catalogue_still_declares_three_entities() -> None:
    # The copy above changes nothing here: the fourth entity exists only in its processes.
    assert entity_names() == ("products", "orders", "order_items")


@pytest.mark.parametrize(
    "name", ["Customers", "2fa", "a-b", "a b", "", "unknown", "quarantine", "x" * 64]
)
def test_an_entity_name_is_a_free_lower_case_identifier(name: str) -> None:
    with pytest.raises(ValueError, match="entity name"):
        TableSchema(
            entity=name,
            columns=PRODUCTS.columns,
            primary_key=("product_id",),
            partition_column="department",
        )


def test_names_from_documents_are_read_against_the_catalogue() -> None:
    assert entity_named(" Order_Items ") == "order_items"
    with pytest.raises(
        ConfigurationError,
        match="invalid entity 'customers': expected one of products, orders, order_items",
    ):
        entity_named("customers")
    with pytest.raises(ValueError, match="unknown entity 'customers'"):
        DiscoveredFile(key="raw-data/c.csv", entity="customers", size_bytes=1, checksum="x")
    paths = ZonePaths(run_id="r1", started_at=datetime(2024, 3, 9, tzinfo=UTC))
    with pytest.raises(ValueError, match=re.escape("unknown entity '../x'")):
        paths.archive("../x", "raw-data/a.csv")


def visits(parent: str) -> TableSchema:
    """A child table whose ``user_id`` references ``parent``."""
    return TableSchema(
        entity="visits",
        columns=ORDERS.columns,
        primary_key=("order_id",),
        partition_column="date",
        foreign_keys=("user_id",),
        references=(("user_id", parent),),
    )


def test_a_foreign_key_meets_the_parents_key_whatever_its_name() -> None:
    people = TableSchema(
        entity="people",
        columns=PRODUCTS.columns,
        primary_key=("product_id",),
        partition_column="department",
    )
    checks = all_checks(ValidationPolicy(), (people, visits("people")))
    (check,) = [c for c in checks if c.check_name == "user_id_in_people"]
    assert "LEFT JOIN people p ON c.user_id = p.product_id" in check.observed_sql
    pairs = TableSchema(
        entity="pairs",
        columns=PRODUCTS.columns,
        primary_key=("product_id", "department_id"),
        partition_column="department",
    )
    with pytest.raises(
        ValueError, match=re.escape("visits.user_id references pairs: a composite key")
    ):
        all_checks(ValidationPolicy(), (pairs, visits("pairs")))
