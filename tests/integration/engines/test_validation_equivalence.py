"""Scoped validation gives the full checks' results on every lake the pipeline builds.

Each scenario runs the pipeline batch after batch on real Delta tables (every engine, the
local platform with DuckDB) and, after every run, evaluates every check over whole tables
(today's full SQL, nothing recorded) and compares: the run's results, scoped to the rows
its runs wrote, must be the same, sample included. The scenarios: a fresh load, daily
batches, corrections, a partition move, late parents adopting earlier orphans, quarantined
rows, schema evolution, an empty run, a table written behind the pipeline's back (full
checks), and a catalogue with a fourth entity (a copied core package, as in
``tests/e2e/test_fourth_entity.py``).
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

import ecommerce_lakehouse as lh
from ecommerce_lakehouse.application.validate import VALIDATION_STATE_KEY, ValidateTables
from ecommerce_lakehouse.domain.types import SchemaEvolution
from ecommerce_lakehouse.domain.validation import CheckResult, all_checks
from tests.contract.conftest_engines import EngineCase
from tests.e2e.test_fourth_entity import catalogue, run_with

__all__ = ["catalogue"]

ROOT = Path(__file__).resolve().parents[3]

PRODUCTS = "product_id,department_id,department,product_name\n"
ORDERS = "order_num,order_id,user_id,order_timestamp,total_amount\n"
ITEMS = (
    "id,order_id,user_id,days_since_prior_order,product_id,add_to_cart_order,reordered,"
    "order_timestamp\n"
)

#: Batches in order: raw key -> text. Comments say what each batch exercises.
BATCHES: list[dict[str, str]] = [
    {  # a fresh load, with an item whose order comes later and one with an unknown product
        "products/products_1.csv": PRODUCTS + "p1,1,frozen,Peas\np2,2,dairy,Milk\n",
        "orders/orders_1.csv": ORDERS
        + "1,o1,u1,2024-01-01T10:00:00Z,10.0\n2,o2,u2,2024-01-02T10:00:00Z,4.5\n",
        "order_items/order_items_1.csv": ITEMS
        + "i1,o1,u1,0,p1,1,false,2024-01-01T10:00:00Z\n"
        + "i2,o9,u9,0,p1,1,false,2024-01-03T10:00:00Z\n"
        + "i3,o2,u2,0,p404,1,false,2024-01-02T10:00:00Z\n",
    },
    {  # a daily batch with one more orphan
        "orders/orders_2.csv": ORDERS + "3,o3,u1,2024-01-03T09:00:00Z,8.0\n",
        "order_items/order_items_2.csv": ITEMS
        + "i4,o3,u1,2,p2,1,true,2024-01-03T09:00:00Z\n"
        + "i5,o8,u8,0,p1,1,false,2024-01-03T11:00:00Z\n",
    },
    {  # late parents (o9 adopts i2), a correction moving o1 to another day, a child fixed
        "orders/orders_3.csv": ORDERS
        + "9,o9,u9,2024-01-03T10:00:00Z,1.0\n1,o1,u1,2024-01-05T10:00:00Z,11.0\n",
        "order_items/order_items_3.csv": ITEMS + "i3,o2,u2,0,p2,1,false,2024-01-02T10:00:00Z\n",
        "products/products_2.csv": PRODUCTS + "p3,3,bakery,Bread\n",
    },
    {  # quarantined rows, an exact re-send and a moved item
        "orders/orders_4.csv": ORDERS
        + "4,o4,u4,not-a-time,1.0\n5,,u5,2024-01-04T10:00:00Z,2.0\n"
        + "3,o3,u1,2024-01-03T09:00:00Z,8.0\n",
        "order_items/order_items_4.csv": ITEMS
        + "i6,o3,u1,0,,1,false,2024-01-03T09:00:00Z\n"
        + "i1,o1,u1,0,p1,1,false,2024-01-01T10:00:00Z\n"
        + "i4,o3,u1,2,p2,1,true,2024-01-04T09:00:00Z\n",
    },
    {  # schema evolution: a new column is added to orders
        "orders/orders_5.csv": "order_num,order_id,user_id,order_timestamp,total_amount,coupon\n"
        + "6,o6,u6,2024-01-06T10:00:00Z,6.0,XMAS\n",
        "order_items/order_items_5.csv": ITEMS + "i7,o6,u6,0,p3,1,false,2024-01-06T10:00:00Z\n",
    },
    {},  # nothing new
    {  # the late parent of i5, and an orphan among many children of one order
        "orders/orders_7.csv": ORDERS + "8,o8,u8,2024-01-03T11:00:00Z,3.0\n",
        "order_items/order_items_7.csv": ITEMS
        + "i8,o7,u7,0,p1,1,false,2024-01-07T10:00:00Z\n"
        + "i9,o6,u6,0,p1,2,false,2024-01-06T10:00:00Z\n",
    },
]


def _drop(root: Path, batch: Mapping[str, str]) -> None:
    for key, text in batch.items():
        path = root / "raw-data" / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def _row(result: CheckResult) -> tuple[Any, ...]:
    return (
        result.table_name,
        result.check_name,
        result.severity.value,
        result.passed,
        result.observed,
        result.expected,
        result.sample,
    )


def full_results(lake: lh.Lake) -> list[tuple[Any, ...]]:
    """Every check over whole tables, with today's full SQL, recording nothing."""
    validate = ValidateTables(lake.platform.query, lake.engine, lake.platform.storage)
    return [_row(validate.evaluate(check)) for check in all_checks(lake.run_options().policy)]


def run_and_compare(
    lake: lh.Lake,
    run_id: str,
    evolution: SchemaEvolution = SchemaEvolution.RESCUE,
    **options: Any,
) -> str:
    """Run the pipeline, compare its checks with the full ones; how the checks ran."""
    messages: list[str] = []
    options = lh.RunOptions(run_id=run_id, settle_seconds=0, evolution=evolution, **options)
    result = lake.run(options, progress=lambda step, message: messages.append(message))
    assert result.failed_step is None, result.error
    assert [_row(c) for c in result.checks] == full_results(lake), run_id
    (scope,) = [m for m in messages if m.startswith(("checks scoped", "full checks"))]
    return scope


def validate_and_compare(lake: lh.Lake, *, full: bool = False) -> None:
    expected = full_results(lake)
    assert [_row(c) for c in lake.validate(full=full)] == expected


def _open(root: Path, engine: EngineCase) -> lh.Lake:
    return lh.open_lake(str(root), engine=engine.name, options={"query": "duckdb"})


def _every_batch(root: Path, engine: EngineCase, **options: Any) -> tuple[lh.Lake, list[str]]:
    """A lake that ran every batch, each run compared; how each run's checks ran."""
    lake = _open(root, engine)
    scopes = []
    for number, batch in enumerate(BATCHES, start=1):
        _drop(root, batch)
        evolution = SchemaEvolution.ADD_NEW_COLUMNS if "orders/orders_5.csv" in batch else None
        scopes.append(
            run_and_compare(lake, f"r{number}", evolution or SchemaEvolution.RESCUE, **options)
        )
    assert scopes[0].startswith("full checks (no earlier validation)")
    assert all(s.startswith("checks scoped") for s in scopes[1:]), scopes
    assert scopes[5].startswith("checks scoped to the rows of run(s) none")
    # lakehouse validate: scoped to nothing new, then in full; both as the full checks.
    validate_and_compare(lake)
    validate_and_compare(lake, full=True)
    return lake, scopes


def test_scoped_checks_equal_the_full_checks_batch_after_batch(
    tmp_path: Path, engine: EngineCase
) -> None:
    if engine.name == "spark":
        # A Spark run of this scenario costs ~10 s: Spark runs it once, compacting (below),
        # which leaves the partitions touched once as they were written.
        pytest.skip("the compacting scenario runs these batches on Spark")
    _every_batch(tmp_path, engine)


def test_runs_that_compact_what_they_touched_keep_the_checks_scoped_and_equal(
    tmp_path: Path, engine: EngineCase
) -> None:
    # Every partition touched twice is compacted: the scenario's runs leave OPTIMIZE
    # commits (stamped with their run id) between their MERGEs.
    lake, _ = _every_batch(tmp_path, engine, compact_min_files=2)
    compactions = [
        c.metadata["lakehouse.run_id"]
        for name in ("products", "orders", "order_items")
        for c in lake.history(name)
        if c.operation == "OPTIMIZE"
    ]
    assert compactions, "no run compacted anything"


def _first_batch_loaded(tmp_path: Path, engine: EngineCase) -> tuple[lh.Lake, Any]:
    """A lake holding the first batch, and its ``orders`` table to write behind its back."""
    import deltalake

    lake = _open(tmp_path, engine)
    _drop(tmp_path, BATCHES[0])
    run_and_compare(lake, "r1")
    return lake, deltalake.DeltaTable(str(tmp_path / "lakehouse-dwh" / "orders"))


def test_a_table_written_behind_the_pipelines_back_is_checked_in_full(
    tmp_path: Path, engine: EngineCase
) -> None:
    import deltalake
    import pyarrow as pa

    lake, table = _first_batch_loaded(tmp_path, engine)
    # A key stored twice, appended without a run id (as a restore or a hand edit would).
    one = table.to_pyarrow_table().slice(0, 1)
    deltalake.write_deltalake(table, pa.Table.from_batches(one.to_batches()), mode="append")
    _drop(tmp_path, BATCHES[1])
    assert run_and_compare(lake, "r2").startswith("full checks (orders changed")
    # The duplicate made primary_key_unique fail: that check stays full, the rest scoped.
    _drop(tmp_path, BATCHES[2])
    scope = run_and_compare(lake, "r3")
    assert scope.startswith("checks scoped") and "orders.primary_key_unique" in scope
    validate_and_compare(lake)


def test_rows_the_log_statistics_cannot_clear_are_counted_by_the_checks_sql(
    tmp_path: Path, engine: EngineCase
) -> None:
    import deltalake
    import polars as pl

    lake, table = _first_batch_loaded(tmp_path, engine)
    # Appended behind the pipeline's back: a null key, two rows without a user (one of
    # them also without a key), and a row filed under the day before its timestamp's.
    stored = table.to_pyarrow_table()
    one = pl.from_arrow(stored.slice(0, 1))
    assert isinstance(one, pl.DataFrame)
    rows = pl.concat(
        [
            one.with_columns(order_id=pl.lit(None, pl.String)),
            one.with_columns(order_id=pl.lit(None, pl.String), user_id=pl.lit(None, pl.String)),
            one.with_columns(order_id=pl.lit("o-x"), user_id=pl.lit(None, pl.String)),
            one.with_columns(order_id=pl.lit("o-y"), date=pl.col("date") - pl.duration(days=1)),
        ]
    )
    deltalake.write_deltalake(table, rows.to_arrow().cast(stored.schema), mode="append")
    expected = full_results(lake)
    failed = {(r[1], r[4]) for r in expected if r[0] == "orders" and not r[3]}
    assert failed == {
        ("primary_key_unique", 1),  # the two null keys, grouped
        ("primary_key_not_null", 2),
        ("required_columns_not_null", 3),
        ("partition_column_consistent", 1),
        ("row_count_matches_ingest_log", 4 + 2),
    }, expected
    validate = ValidateTables(lake.platform.query, lake.engine, lake.platform.storage)
    # orders changed behind the pipeline's back: every check runs over whole tables.
    assert [_row(r) for r in validate("v1")] == expected
    assert validate.scope.runs is None
    # One key column: its nulls are the log's null count. Two of three columns null in
    # some rows, or a file whose timestamps straddle two days: the check's SQL counts.
    decided = set(validate.scope.from_statistics)
    assert "orders.primary_key_not_null" in decided
    assert "orders.row_count_matches_ingest_log" in decided
    assert "orders.required_columns_not_null" not in decided
    assert "orders.partition_column_consistent" not in decided


def test_without_a_validation_state_the_checks_run_in_full(
    tmp_path: Path, engine: EngineCase
) -> None:
    lake = _open(tmp_path, engine)
    _drop(tmp_path, BATCHES[0])
    run_and_compare(lake, "r1")
    (tmp_path / VALIDATION_STATE_KEY).unlink()
    _drop(tmp_path, BATCHES[1])
    assert run_and_compare(lake, "r2").startswith("full checks (no earlier validation)")


class _Recording:
    """The lake's query service, keeping every SQL statement sent to it."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.statements: list[str] = []

    def sql(self, query: str, *, as_of: Mapping[str, int] | None = None) -> Any:
        self.statements.append(query)
        return self.inner.sql(query, as_of=as_of)


class _NoStatistics:
    """The lake's engine, as one whose Delta log cannot vouch for its files' statistics."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def file_statistics(self, table: Any) -> None:
        return None


def _validate_recording(
    lake: lh.Lake, *, full: bool = False, statistics: bool = True
) -> tuple[list[Any], list[str]]:
    query = _Recording(lake.platform.query)
    engine = lake.engine if statistics else _NoStatistics(lake.engine)
    validate = ValidateTables(query, engine, lake.platform.storage)
    results = [_row(r) for r in validate(f"v{len(query.statements)}", full=full)]
    return results, query.statements


def _read(statement: str) -> set[str]:
    """The tables a statement reads."""
    return set(re.findall(r"(?:FROM|JOIN)\s+(\w+)", statement))


def test_validation_statements_scan_each_table_once_and_nothing_new_reads_the_ledger(
    tmp_path: Path,
) -> None:
    lake = lh.open_lake(str(tmp_path), engine="polars", options={"query": "duckdb"})
    _drop(tmp_path, BATCHES[0])  # two orphans, one per foreign key
    run_and_compare(lake, "r1")
    expected = full_results(lake)

    # In full, without the Delta log's statistics: the row checks and counts in one
    # statement, each table scanned once; each key check alone (3 unique keys, 2 foreign
    # keys); then the orphans of each foreign key listed.
    results, statements = _validate_recording(lake, full=True, statistics=False)
    assert results == expected
    assert len(statements) == 1 + 5 + 2, statements
    scanned = re.findall(r"FROM (\w+)\) counts_", statements[0])
    assert sorted(scanned) == ["ingest_log", "order_items", "orders", "products"], statements[0]
    assert all("GROUP BY" in s for s in statements[1:4]), statements
    assert all(" JOIN " in s and "LIMIT" not in s for s in statements[4:6]), statements
    assert all(" JOIN " in s and "LIMIT" in s for s in statements[6:]), statements

    # Without a validation state the checks run over whole tables too, and the tables'
    # row counts, nulls and dates are decided from the log's statistics: the statement of
    # counts reads only the ledger; the key checks are the same. (--full never uses them.)
    state = (tmp_path / VALIDATION_STATE_KEY).read_bytes()
    (tmp_path / VALIDATION_STATE_KEY).unlink()
    results, with_statistics = _validate_recording(lake)
    assert results == expected
    assert _read(with_statistics[0]) == {"ingest_log"}, with_statistics[0]
    assert with_statistics[1:] == statements[1:]
    assert _validate_recording(lake, full=True)[1] == statements
    (tmp_path / VALIDATION_STATE_KEY).write_bytes(state)

    # Nothing written since: the tables are the versions just validated, so only the
    # ledger's side of the row counts is read, in one statement.
    results, statements = _validate_recording(lake)
    assert results == expected
    (statement,) = statements
    assert _read(statement) == {"ingest_log"}, statement

    # A batch loaded without validation: without statistics, its row checks read the
    # batch's rows only, behind a filter the scan can skip whole files by (DuckDB prunes by
    # the _run_id statistics).
    _drop(tmp_path, BATCHES[1])
    loaded = lake.run(
        lh.RunOptions(run_id="r2", settle_seconds=0, steps=("discover", "ingest", "archive"))
    )
    assert loaded.failed_step is None, loaded.error
    state = (tmp_path / VALIDATION_STATE_KEY).read_bytes()
    results, statements = _validate_recording(lake, statistics=False)
    assert results == full_results(lake)
    assert "FROM order_items WHERE _run_id IN ('r2'))" in statements[0], statements[0]
    # With them, the key checks read only the stored keys between the least and greatest
    # key of the files holding the batch's rows, and only the parents between the least
    # and greatest value of its foreign keys there (from the same validation state).
    (tmp_path / VALIDATION_STATE_KEY).write_bytes(state)
    results, statements = _validate_recording(lake)
    assert results == full_results(lake)
    assert _read(statements[0]) == {"ingest_log"}, statements[0]
    unique = next(s for s in statements if "FROM order_items t" in s)
    assert re.search(r"t\.id BETWEEN 'i\d' AND 'i\d' AND EXISTS", unique), unique
    orphans = next(s for s in statements if "LEFT JOIN (SELECT order_id FROM orders" in s)
    assert re.search(r"WHERE order_id BETWEEN 'o\d' AND 'o\d'\) p", orphans), orphans


# ---------------------------------------------------------------- a fourth entity

CUSTOMER_BATCHES: list[dict[str, str]] = [
    {
        "customers/customers_1.csv": "customer_id,name,age,signup_timestamp\n"
        "c1,Ada,36,2024-01-01T09:00:00Z\nc2,Grace,45,2024-01-02T10:00:00Z\n"
        "c3,Linus,-4,2024-01-03T11:00:00Z\n",
        "orders/orders_1.csv": ORDERS
        + "1,o1,c1,2024-01-10T10:00:00Z,12.5\n3,o3,c9,2024-01-12T12:00:00Z,7.25\n",
    },
    {
        "customers/customers_2.csv": "customer_id,name,age,signup_timestamp\n"
        "c9,Barbara,70,2024-01-11T09:00:00Z\nc1,Ada L.,36,2024-01-04T09:00:00Z\n",
        "orders/orders_2.csv": ORDERS + "4,o4,c7,2024-01-13T12:00:00Z,1.0\n",
    },
]


def four_entity_main(root: str) -> None:
    """Run the customer batches with the four-entity catalogue first on the import path."""
    from ecommerce_lakehouse.domain import schemas

    assert "customers" in schemas.entity_names(), schemas.__file__
    lake = lh.open_lake(root, engine="polars", options={"query": "duckdb"})
    scopes = []
    for number, batch in enumerate(CUSTOMER_BATCHES, start=1):
        _drop(Path(root), batch)
        scopes.append(run_and_compare(lake, f"r{number}"))
    validate_and_compare(lake)
    print("SCOPES " + json.dumps(scopes))


def test_a_fourth_entity_is_validated_alike_scoped_and_in_full(
    catalogue: Path, tmp_path: Path, engine: EngineCase
) -> None:
    if engine.name != "polars":
        pytest.skip("the copied catalogue runs the Polars engine in a subprocess")
    script = (
        "import sys; from tests.integration.engines.test_validation_equivalence "
        "import four_entity_main; four_entity_main(sys.argv[1])"
    )
    done = run_with(catalogue, [sys.executable, "-c", script, str(tmp_path)], timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    (line,) = [x for x in done.stdout.splitlines() if x.startswith("SCOPES ")]
    scopes = json.loads(line.removeprefix("SCOPES "))
    assert scopes[0].startswith("full checks (no earlier validation)")
    assert scopes[1].startswith("checks scoped"), scopes
