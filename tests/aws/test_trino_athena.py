"""Athena's engine on the lake: Trino reads what the pipeline registered in Glue (moto).

Athena engine v3 is Trino with the Glue Data Catalog as its metastore and S3 as its storage.
Each lake here is built by ``lakehouse run --lake s3://…`` (the Polars engine) on moto; Trino's
Delta Lake connector (tests/trino_support.py) then queries the lake's Glue database and
registers nothing of its own, so what it lists and reads is what ``GlueCatalogue``
registered. DuckDB (``Lake.sql``) reads the same Delta tables for comparison.

Trino, like Athena, reads a Delta ``timestamp`` as ``timestamp(3) with time zone``: DuckDB's
values are compared rounded to milliseconds, the one difference between the two reads.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from ecommerce_lakehouse.application.lake import Lake, open_lake
from ecommerce_lakehouse.domain.types import Severity
from ecommerce_lakehouse.domain.validation import ValidationPolicy, all_checks
from ecommerce_lakehouse_aws import GlueCatalogue
from ecommerce_lakehouse_datagen import generate
from tests.aws.test_cli_s3 import lakehouse
from tests.aws_support import WEEK_END, MotoServer
from tests.trino_support import TrinoServer

pytestmark = [pytest.mark.aws, pytest.mark.trino]


@dataclass(frozen=True)
class S3Lake:
    """A lake on moto that ``lakehouse run`` built, opened for DuckDB reads."""

    root: str
    environment: dict[str, str]
    lake: Lake

    @property
    def database(self) -> str:
        """The lake's Glue database (a schema of Trino's ``delta`` catalog)."""
        return self.environment["LAKEHOUSE_GLUE_DATABASE"]

    @property
    def catalogue(self) -> GlueCatalogue:
        """The lake's catalogue: its Glue registrations."""
        catalogue = self.lake.platform.catalogue
        assert isinstance(catalogue, GlueCatalogue)
        return catalogue

    def run(self, *args: str) -> None:
        """``lakehouse run`` on the lake with the Polars engine; it must succeed."""
        done = lakehouse(self.environment, "run", "--lake", self.root, "--engine", "polars", *args)
        assert done.returncode == 0, done.stdout + done.stderr

    def duckdb(self, sql: str) -> list[dict[str, Any]]:
        """The rows of ``sql`` as DuckDB reads the lake (``lakehouse sql``'s engine)."""
        rows: list[dict[str, Any]] = self.lake.sql(sql).to_pylist()
        return rows


def build_lake(moto: MotoServer, tmp: pytest.TempPathFactory, seed: int) -> S3Lake:
    """A small dirty data set loaded into a fresh S3 lake by one ``lakehouse run``."""
    local = tmp.mktemp("raw")
    generate(local, scale=0.0005, seed=seed, dirty=0.02, end=WEEK_END)
    root = moto.new_lake()
    moto.upload_raw(root, local)
    options = moto.options()
    lake = open_lake(root, engine="polars", options=options)
    built = S3Lake(root, moto.environment(options), lake)
    built.run()
    return built


def trino_rows(trino: TrinoServer, lake: S3Lake, sql: str) -> list[dict[str, Any]]:
    """The rows of ``sql`` as Trino reads the lake through its Glue database."""
    names, rows = trino.query_with_columns(sql, lake.database)
    return [dict(zip(names, row, strict=True)) for row in rows]


def comparable(rows: Sequence[Mapping[str, Any]]) -> list[tuple[tuple[str, Any], ...]]:
    """Rows in a stable order, timestamps at Trino's millisecond precision (rounded half up,
    as Trino rounds the microseconds of the Parquet files)."""

    def value(v: Any) -> Any:
        if isinstance(v, dt.datetime):
            v += dt.timedelta(microseconds=500)
            return v.replace(microsecond=v.microsecond // 1000 * 1000)
        return v

    return sorted((tuple((k, value(v)) for k, v in row.items()) for row in rows), key=repr)


def scalar(rows: Sequence[Mapping[str, Any]]) -> int:
    """The one value of a one-row, one-column result, as an integer (DuckDB sums are
    decimals, Trino's bigints)."""
    [row] = rows
    [value] = row.values()
    return int(value)


def order_dates(order_id: str) -> str:
    """The dates (partitions) that hold an order, with its rows in each."""
    return f"SELECT date, COUNT(*) AS n FROM orders WHERE order_id = '{order_id}' GROUP BY date"


def gate_query(lake: S3Lake, **settings: str) -> tuple[str, str]:
    """The query and database of the Athena validation step, as ``lakehouse state-machine``
    writes it for the lake's Glue database (``settings``: more LAKEHOUSE_* variables)."""
    done = lakehouse(
        {"LAKEHOUSE_GLUE_DATABASE": lake.database, **settings}, "state-machine", timeout=60
    )
    assert done.returncode == 0, done.stderr
    parameters = json.loads(done.stdout)["States"]["Validate"]["Parameters"]
    return parameters["QueryString"], parameters["QueryExecutionContext"]["Database"]


def failed_error_checks(lake: S3Lake, policy: ValidationPolicy) -> set[tuple[str, str]]:
    """The error-severity checks that fail on the lake, as DuckDB evaluates them."""
    failed = set()
    for check in all_checks(policy):
        if check.severity is not Severity.ERROR:
            continue
        observed = scalar(lake.duckdb(check.observed_sql))
        expected = (
            scalar(lake.duckdb(check.expected_sql)) if check.expected_sql else check.expected_value
        )
        if observed != expected:
            failed.add((check.table_name, check.check_name))
    return failed


# ------------------------------------------------------------------------------ the lakes


@pytest.fixture(scope="module")
def clean_lake(moto: MotoServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Lake]:
    """A lake after one successful run: every error check passes."""
    clean = build_lake(moto, tmp_path_factory, seed=11)
    yield clean
    clean.lake.close()


@pytest.fixture(scope="module")
def broken_lake(moto: MotoServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Lake]:
    """A lake broken on purpose behind the pipeline's back (Delta appends its ledger does
    not know): an order stored twice and an order item whose product does not exist."""
    broken = build_lake(moto, tmp_path_factory, seed=12)
    options = dict(broken.lake.platform.storage.storage_options)

    def append(table: str, change: Mapping[str, Any]) -> None:
        definition = broken.catalogue.get(table)
        assert definition is not None
        stored = DeltaTable(definition.location, storage_options=options).to_pyarrow_table()
        row = {**stored.slice(0, 1).to_pylist()[0], **change}
        write_deltalake(
            definition.location,
            pa.Table.from_pylist([row], schema=stored.schema),
            mode="append",
            storage_options=options,
        )

    append("orders", {})  # a duplicate key, and one row the ledger does not count
    append("order_items", {"id": "orphan-1", "product_id": "no-such-product"})
    yield broken
    broken.lake.close()


@dataclass(frozen=True)
class Changes:
    """What a second run changed (an evolved column, an order moved to another day), and
    the columns and order as Trino read them before it."""

    lake: S3Lake
    columns_before: list[str]
    order_before: list[dict[str, Any]]
    product_id: str
    column: str
    value: str
    order_id: str
    old_date: dt.date
    new_date: dt.date


@pytest.fixture(scope="module")
def changed_lake(
    moto: MotoServer, tmp_path_factory: pytest.TempPathFactory, trino: TrinoServer
) -> Iterator[Changes]:
    """A lake whose second run adds a column to products (``add_new_columns``) and moves an
    order to another date partition (a correction of its timestamp), after Trino read both
    tables (so that what it keeps of them is of the first version)."""
    changed = build_lake(moto, tmp_path_factory, seed=13)
    storage = changed.lake.platform.storage
    storage.write_bytes(
        "raw-data/products/products_shelf.csv",
        b"product_id,department_id,department,product_name,Shelf Label\n"
        b"p-shelf,99,pets,Chew Toy,B7\n",
    )
    old = changed.duckdb(
        "SELECT order_num, order_id, user_id, order_timestamp, total_amount, date FROM orders "
        "ORDER BY order_id LIMIT 1"
    )[0]
    order_before = trino_rows(trino, changed, order_dates(old["order_id"]))
    columns_before = list(trino_rows(trino, changed, "SELECT * FROM products LIMIT 1")[0])
    later = old["order_timestamp"] + dt.timedelta(days=3)
    storage.write_bytes(
        "raw-data/orders/orders_moved.csv",
        (
            "order_num,order_id,user_id,order_timestamp,total_amount\n"
            f"{old['order_num']},{old['order_id']},{old['user_id']},{later.isoformat()},"
            f"{old['total_amount']}\n"
        ).encode(),
    )
    changed.run("--schema-evolution", "add_new_columns")
    yield Changes(
        lake=changed,
        columns_before=columns_before,
        order_before=order_before,
        product_id="p-shelf",
        column="shelf_label",
        value="B7",
        order_id=old["order_id"],
        old_date=old["date"],
        new_date=later.date(),
    )
    changed.lake.close()


# ------------------------------------------------------------------------------ the tests


def test_trino_lists_the_tables_the_lake_registered_in_glue(
    trino: TrinoServer, clean_lake: S3Lake
) -> None:
    registered = sorted(t.name for t in clean_lake.catalogue.list())

    listed = trino_rows(trino, clean_lake, "SHOW TABLES")

    assert [row["Table"] for row in listed] == registered
    assert set(registered) == {t.name for t in clean_lake.lake.tables()}  # curated and audit


def test_trino_reads_every_table_row_for_row_as_duckdb_does(
    trino: TrinoServer, clean_lake: S3Lake
) -> None:
    for table in clean_lake.lake.tables():
        sql = f"SELECT * FROM {table.name}"

        on_trino = trino_rows(trino, clean_lake, sql)

        on_duckdb = clean_lake.duckdb(sql)
        assert on_duckdb, f"{table.name} is empty: nothing compared"
        assert list(on_trino[0]) == list(on_duckdb[0]), table.name  # columns, in order
        assert comparable(on_trino) == comparable(on_duckdb), table.name


def test_the_state_machines_gate_query_returns_zero_on_a_clean_lake(
    trino: TrinoServer, clean_lake: S3Lake
) -> None:
    query, database = gate_query(clean_lake)
    assert database == clean_lake.database

    names, rows = trino.query_with_columns(query, database)

    assert (names, rows) == (["failed_error_checks"], [(0,)])


@pytest.mark.parametrize(
    ("settings", "policy"),
    [
        ({}, ValidationPolicy()),
        ({"LAKEHOUSE_FK_SEVERITY": "error"}, ValidationPolicy(foreign_key_severity=Severity.ERROR)),
    ],
    ids=["default", "foreign-keys-as-errors"],
)
def test_the_gate_query_counts_the_failed_checks_of_a_broken_lake(
    trino: TrinoServer,
    broken_lake: S3Lake,
    settings: dict[str, str],
    policy: ValidationPolicy,
) -> None:
    query, database = gate_query(broken_lake, **settings)

    [(failed,)] = trino.query(query, database)

    broken = {
        ("orders", "primary_key_unique"),
        ("orders", "row_count_matches_ingest_log"),
        ("order_items", "row_count_matches_ingest_log"),
    }
    if policy.foreign_key_severity is Severity.ERROR:
        broken.add(("order_items", "product_id_in_products"))
    expected = failed_error_checks(broken_lake, policy)
    assert broken <= expected
    assert failed == len(expected)


@pytest.mark.parametrize("name", ["clean_lake", "broken_lake"])
def test_every_check_observes_the_same_on_trino_as_on_duckdb(
    trino: TrinoServer, request: pytest.FixtureRequest, name: str
) -> None:
    lake: S3Lake = request.getfixturevalue(name)
    for check in all_checks(ValidationPolicy(foreign_key_severity=Severity.ERROR)):
        label = f"{check.table_name}.{check.check_name}"

        observed = scalar(trino_rows(trino, lake, check.observed_sql))

        assert observed == scalar(lake.duckdb(check.observed_sql)), label
        if check.expected_sql:
            expected = scalar(trino_rows(trino, lake, check.expected_sql))
            assert expected == scalar(lake.duckdb(check.expected_sql)), label
        if check.sample_sql:
            sample = trino_rows(trino, lake, check.sample_sql)
            assert sample == lake.duckdb(check.sample_sql), label


def test_schema_evolution_and_a_partition_move_stay_readable_through_the_catalogue(
    trino: TrinoServer, changed_lake: Changes
) -> None:
    lake = changed_lake.lake
    registered = lake.catalogue.get("products")
    assert registered is not None
    assert changed_lake.column in [c.name for c in registered.columns]

    evolved = trino_rows(
        trino,
        lake,
        f"SELECT {changed_lake.column} FROM products "
        f"WHERE product_id = '{changed_lake.product_id}'",
    )
    moved = trino_rows(trino, lake, order_dates(changed_lake.order_id))

    assert changed_lake.column not in changed_lake.columns_before
    assert evolved == [{changed_lake.column: changed_lake.value}]
    assert changed_lake.order_before == [{"date": changed_lake.old_date, "n": 1}]
    assert moved == [{"date": changed_lake.new_date, "n": 1}]
    assert changed_lake.new_date != changed_lake.old_date
    for table in ("products", "orders"):
        sql = f"SELECT * FROM {table}"
        assert comparable(trino_rows(trino, lake, sql)) == comparable(lake.duckdb(sql)), table
    query, database = gate_query(lake)
    assert trino.query(query, database) == [(0,)]
