"""The sample-data generator: layout, determinism, Instacart shape, and the dirt it injects.

Row checks go through the domain's reference rules (`first_violation`) on trimmed text, so the
generated data is judged by the same rules ingestion applies.
"""

from __future__ import annotations

import csv
import functools
import itertools
import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from ecommerce_lakehouse.domain import values
from ecommerce_lakehouse.domain.errors import ConfigurationError
from ecommerce_lakehouse.domain.rules import first_violation
from ecommerce_lakehouse.domain.schemas import ORDER_ITEMS, ORDERS, PRODUCTS, TableSchema
from ecommerce_lakehouse_datagen import (
    DEPARTMENTS,
    FaultCounts,
    GenerateSummary,
    _timeline,
    _writer,
    generate,
)

SCHEMAS = {"products": PRODUCTS, "orders": ORDERS, "order_items": ORDER_ITEMS}
INSTACART_DEPARTMENTS = {
    "frozen",
    "other",
    "bakery",
    "produce",
    "alcohol",
    "international",
    "beverages",
    "pets",
    "dry goods pasta",
    "bulk",
    "personal care",
    "meat seafood",
    "pantry",
    "breakfast",
    "canned goods",
    "dairy eggs",
    "household",
    "babies",
    "snacks",
    "deli",
    "missing",
}


@dataclass(frozen=True)
class Row:
    file: int  # 0-based position of the file in ingestion order
    line: int
    record: dict[str, str | None]  # schema columns only, trimmed, empty -> None


def headers(path: Path) -> list[str]:
    with path.open(newline="", encoding="utf-8") as handle:
        return next(csv.reader(handle))


@functools.cache
def rows(summary: GenerateSummary, entity: str) -> tuple[Row, ...]:
    output = {o.name: o for o in summary.entities}[entity]
    columns = SCHEMAS[entity].column_names
    found = []
    for position, path in enumerate(output.files):
        with path.open(newline="", encoding="utf-8") as handle:
            for line, raw in enumerate(csv.DictReader(handle), start=2):
                record = {c: values.normalize_text(raw[c]) for c in columns}
                found.append(Row(file=position, line=line, record=record))
    return tuple(found)


def violations(summary: GenerateSummary, entity: str) -> Counter[str]:
    schema: TableSchema = SCHEMAS[entity]
    found: Counter[str] = Counter()
    for row in rows(summary, entity):
        violation = first_violation(row.record, schema.rules, schema.types)
        if violation is not None:
            found[violation.rule] += 1
    return found


def moment(text: str | None) -> datetime:
    parsed = values.parse_timestamp(text or "")
    assert parsed is not None, text
    return parsed


DIRTY_SCALE = 0.0015  # 75 products: with dirty=0.4 each product fault kind gets ~7 rows
DIRTY_ROWS_PER_FILE = 5_000


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> GenerateSummary:
    return generate(tmp_path_factory.mktemp("clean"), scale=0.001, seed=7)


@pytest.fixture(scope="module")
def dirty(tmp_path_factory: pytest.TempPathFactory) -> GenerateSummary:
    # Small files so that every entity spans several files and deferred rows cross them.
    return generate(
        tmp_path_factory.mktemp("dirty"),
        scale=DIRTY_SCALE,
        seed=7,
        dirty=0.4,
        rows_per_file=DIRTY_ROWS_PER_FILE,
    )


# ----------------------------------------------------------------------------- layout


def test_writes_numbered_files_per_entity_with_the_schema_header(clean: GenerateSummary) -> None:
    raw = clean.out / "raw-data"
    for output in clean.entities:
        name = output.name
        assert output.files[0] == raw / name / f"{name}_0001.csv"
        assert headers(output.files[0]) == list(SCHEMAS[output.name].column_names)
    assert sorted(p.name for p in raw.rglob("*") if p.is_file()) == sorted(
        p.name for p in clean.files
    )


def test_splits_rows_into_files_in_name_order(dirty: GenerateSummary) -> None:
    for output in dirty.entities:
        names = [p.name for p in output.files]
        assert names == sorted(names)
        assert [int(re.findall(r"\d+", n)[-1]) for n in names] == list(range(1, len(names) + 1))
        counts = [sum(1 for _ in csv.reader(p.open(newline=""))) - 1 for p in output.files]
        assert sum(counts) == output.rows
        # One more than the limit only when an in-file duplicate pair would straddle two files.
        assert max(counts) <= DIRTY_ROWS_PER_FILE + 1
    assert len(dirty.order_items.files) > 5


def test_refuses_to_mix_with_an_earlier_generation(tmp_path: Path) -> None:
    generate(tmp_path, scale=0.0001)
    with pytest.raises(ConfigurationError, match="already holds generated files"):
        generate(tmp_path, scale=0.0001)


def test_a_failure_leaves_no_files_behind(tmp_path: Path) -> None:
    def explode(entity: str, written: int) -> None:
        if entity == "order_items":
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        generate(tmp_path, scale=0.0001, progress=explode)
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_reports_progress_per_entity(tmp_path: Path) -> None:
    seen: dict[str, list[int]] = defaultdict(list)
    summary = generate(tmp_path, scale=0.001, progress=lambda e, n: seen[e].append(n))
    for output in summary.entities:
        counts = seen[output.name]
        assert counts == sorted(counts)
        assert counts[-1] == output.rows


# ----------------------------------------------------------------------------- determinism


def snapshot(summary: GenerateSummary) -> dict[str, bytes]:
    return {str(p.relative_to(summary.out)): p.read_bytes() for p in summary.files}


def test_same_seed_gives_byte_identical_files(tmp_path: Path) -> None:
    kwargs = {"scale": 0.0005, "seed": 3, "dirty": 0.1, "rows_per_file": 1500}
    first = snapshot(generate(tmp_path / "a", **kwargs))  # type: ignore[arg-type]
    second = snapshot(generate(tmp_path / "b", **kwargs))  # type: ignore[arg-type]
    assert first == second


def test_another_seed_gives_other_data(tmp_path: Path) -> None:
    first = snapshot(generate(tmp_path / "a", scale=0.0005, seed=1))
    second = snapshot(generate(tmp_path / "b", scale=0.0005, seed=2))
    assert first.keys() == second.keys()
    assert all(first[name] != second[name] for name in first)


def test_dirt_does_not_change_the_underlying_data(tmp_path: Path) -> None:
    clean = generate(tmp_path / "clean", scale=0.0005, seed=5)
    damaged = generate(tmp_path / "dirty", scale=0.0005, seed=5, dirty=0.05)
    clean_ids = {r.record["id"] for r in rows(clean, "order_items")}
    dirty_ids = {r.record["id"] for r in rows(damaged, "order_items")}
    assert len(clean_ids & dirty_ids) > 0.9 * len(clean_ids)


# ----------------------------------------------------------------------------- shape


def test_sizes_follow_the_scale(clean: GenerateSummary) -> None:
    assert clean.products.rows == round(49_688 * 0.001)
    assert clean.orders.rows == round(3_421_083 * 0.001)
    assert clean.users == round(206_209 * 0.001)
    assert 9 <= clean.order_items.rows / clean.orders.rows <= 11


def test_has_all_instacart_departments_from_scale_0_01(tmp_path: Path) -> None:
    summary = generate(tmp_path, scale=0.01)
    departments = {
        (r.record["department_id"], r.record["department"]) for r in rows(summary, "products")
    }
    assert {name for _, name in departments} == INSTACART_DEPARTMENTS
    assert departments == {(str(i + 1), name) for i, name in enumerate(DEPARTMENTS)}
    assert summary.products.rows == 497


def test_tiny_scale_still_writes_a_few_rows_of_everything(tmp_path: Path) -> None:
    summary = generate(tmp_path, scale=0.0001)
    assert 21 <= summary.products.rows < 100
    assert 0 < summary.orders.rows < 1000
    assert 0 < summary.order_items.rows < 10_000
    assert {r.record["department"] for r in rows(summary, "products")} == INSTACART_DEPARTMENTS


def test_orders_are_instacart_shaped(clean: GenerateSummary) -> None:
    orders = [r.record for r in rows(clean, "orders")]
    start = datetime(2024, 1, 1, tzinfo=UTC)
    end = datetime(2024, 4, 1, tzinfo=UTC)
    by_user: dict[str | None, list[tuple[datetime, int]]] = defaultdict(list)
    for order in orders:
        at = moment(order["order_timestamp"])
        assert start <= at < end
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", order["order_timestamp"] or "")
        assert order["date"] == at.date().isoformat()
        assert re.fullmatch(r"\d+\.\d\d", order["total_amount"] or "")
        assert float(order["total_amount"] or 0) > 0
        by_user[order["user_id"]].append((at, int(order["order_num"] or 0)))
    for history in by_user.values():
        # order_num counts the user's orders in time order.
        assert [n for _, n in sorted(history)] == list(range(1, len(history) + 1))
    assert len(by_user) > 0.9 * clean.users
    # Order ids are an auto-increment in time order.
    assert [o["order_id"] for o in orders] == [str(i) for i in range(1, len(orders) + 1)]


def test_items_are_instacart_shaped(clean: GenerateSummary) -> None:
    orders = {r.record["order_id"]: r.record for r in rows(clean, "orders")}
    items = [r.record for r in rows(clean, "order_items")]
    carts: dict[str | None, list[int]] = defaultdict(list)
    for item in items:
        order = orders[item["order_id"]]
        assert item["id"] == f"{item['order_id']}-{item['add_to_cart_order']}"
        for column in ("user_id", "order_timestamp", "date"):
            assert item[column] == order[column]
        # Empty exactly for a user's first order, else whole days since the prior one (<= 30).
        days = item["days_since_prior_order"]
        assert (days is None) == (order["order_num"] == "1")
        assert days is None or 0 <= int(days) <= 30
        assert item["reordered"] in {"0", "1"}
        carts[item["order_id"]].append(int(item["add_to_cart_order"] or 0))
    assert all(sorted(c) == list(range(1, len(c) + 1)) for c in carts.values())
    assert carts.keys() == orders.keys()
    assert 9 <= len(items) / len(orders) <= 11
    assert 0.55 <= sum(i["reordered"] == "1" for i in items) / len(items) <= 0.63
    assert all(i["reordered"] == "0" for i in items if i["days_since_prior_order"] is None)


def test_days_since_prior_order_matches_the_user_history(clean: GenerateSummary) -> None:
    orders = sorted(
        (r.record for r in rows(clean, "orders")),
        key=lambda o: (int(o["user_id"] or 0), int(o["order_num"] or 0)),
    )
    first_item: dict[str | None, dict[str, str | None]] = {}
    for row in rows(clean, "order_items"):
        first_item.setdefault(row.record["order_id"], row.record)
    for previous, order in itertools.pairwise(orders):
        if order["user_id"] != previous["user_id"]:
            continue
        gap = moment(order["order_timestamp"]) - moment(previous["order_timestamp"])
        days = first_item[order["order_id"]]["days_since_prior_order"]
        assert days == str(min(gap.days, 30))


def test_state_carries_across_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_timeline, "_ORDERS_PER_CHUNK", 300)
    summary = generate(tmp_path, scale=0.001, seed=9)
    orders = [r.record for r in rows(summary, "orders")]
    assert [o["order_id"] for o in orders] == [str(i) for i in range(1, len(orders) + 1)]
    stamps = [moment(o["order_timestamp"]) for o in orders]
    assert stamps == sorted(stamps)
    numbers: dict[str | None, list[int]] = defaultdict(list)
    for order in orders:
        numbers[order["user_id"]].append(int(order["order_num"] or 0))
    assert all(n == list(range(1, len(n) + 1)) for n in numbers.values())


def test_products_have_names_and_quote_safely(clean: GenerateSummary) -> None:
    products = [r.record for r in rows(clean, "products")]
    assert [p["product_id"] for p in products] == [str(i) for i in range(1, len(products) + 1)]
    assert all(p["product_name"] for p in products)
    # polars reads the same file back (RFC 4180 quoting of commas and quotes).
    frame = pl.read_csv(clean.products.files[0], infer_schema=False)
    assert frame.get_column("product_name").to_list() == [p["product_name"] for p in products]


# ----------------------------------------------------------------------------- clean data


def test_clean_rows_all_pass_the_domain_rules(clean: GenerateSummary) -> None:
    for entity in SCHEMAS:
        assert violations(clean, entity) == Counter()


def test_clean_keys_are_unique_and_references_resolve(clean: GenerateSummary) -> None:
    keys = {}
    for entity, schema in SCHEMAS.items():
        found = [tuple(r.record[c] for c in schema.primary_key) for r in rows(clean, entity)]
        assert len(found) == len(set(found)), entity
        keys[entity] = {k[0] for k in found}
    for row in rows(clean, "order_items"):
        assert row.record["order_id"] in keys["orders"]
        assert row.record["product_id"] in keys["products"]
    assert clean.faults == FaultCounts()


# ----------------------------------------------------------------------------- dirty data

EXPECTED_RULES = {
    "products": {"not_null"},
    "orders": {
        "not_null",
        "parses_as_double",
        "parses_as_date",
        "parses_as_timestamp",
        "in_range",
        "date_matches_timestamp",
    },
    "order_items": {
        "not_null",
        "parses_as_int",
        "parses_as_date",
        "parses_as_timestamp",
        "parses_as_boolean",
        "in_range",
        "date_matches_timestamp",
    },
}


@pytest.mark.parametrize("entity", list(SCHEMAS))
def test_dirt_breaks_every_rule_and_only_the_counted_rows(
    dirty: GenerateSummary, entity: str
) -> None:
    found = violations(dirty, entity)
    assert set(found) == EXPECTED_RULES[entity]
    output = {o.name: o for o in dirty.entities}[entity]
    assert sum(found.values()) == output.faults.invalid_rows


def by_key(summary: GenerateSummary, entity: str) -> dict[str, list[Row]]:
    key = SCHEMAS[entity].primary_key[0]
    grouped: dict[str, list[Row]] = defaultdict(list)
    for row in rows(summary, entity):
        value = row.record[key]
        if value is not None:
            grouped[value].append(row)
    return grouped


@pytest.mark.parametrize("entity", list(SCHEMAS))
def test_dirt_duplicates_rows_within_and_across_files(dirty: GenerateSummary, entity: str) -> None:
    in_file = cross_file = 0
    for copies in by_key(dirty, entity).values():
        for earlier, later in itertools.pairwise(copies):
            if earlier.record == later.record:
                if earlier.file == later.file:
                    in_file += 1
                else:
                    cross_file += 1
    faults = {o.name: o for o in dirty.entities}[entity].faults
    assert in_file == faults.in_file_duplicates > 0
    assert cross_file == faults.cross_file_duplicates > 0


def test_orders_are_corrected_in_later_files(dirty: GenerateSummary) -> None:
    corrections = moved = 0
    for copies in by_key(dirty, "orders").values():
        distinct = {tuple(r.record.values()): r for r in copies}
        if len(distinct) < 2:
            continue
        original, correction = copies[0], copies[-1]
        assert correction.file > original.file
        assert moment(correction.record["order_timestamp"]) > moment(
            original.record["order_timestamp"]
        )
        assert correction.record["total_amount"] != original.record["total_amount"]
        corrections += 1
        moved += correction.record["date"] != original.record["date"]
    assert corrections == dirty.orders.faults.corrections > 0
    assert moved == dirty.orders.faults.partition_moves > 0
    assert moved < corrections


def test_products_are_corrected_in_later_files(dirty: GenerateSummary) -> None:
    corrections = moved = 0
    for copies in by_key(dirty, "products").values():
        if len({tuple(r.record.values()) for r in copies}) < 2:
            continue
        original, correction = copies[0], copies[-1]
        assert correction.file > original.file
        corrections += 1
        if correction.record["department"] != original.record["department"]:
            moved += 1
            index = DEPARTMENTS.index(correction.record["department"] or "")
            assert correction.record["department_id"] == str(index + 1)
    assert corrections == dirty.products.faults.corrections > 0
    assert moved == dirty.products.faults.partition_moves > 0


GENERATED_ORDERS = round(3_421_083 * DIRTY_SCALE)  # orders of the `dirty` fixture before dirt


def test_dirt_adds_orphan_items(dirty: GenerateSummary) -> None:
    order_ids = {r.record["order_id"] for r in rows(dirty, "orders")}
    orphans = [
        r.record
        for r in rows(dirty, "order_items")
        if r.record["order_id"] is not None and int(r.record["order_id"]) > GENERATED_ORDERS
    ]
    assert len(orphans) == dirty.order_items.faults.orphans > 0
    assert all(o["order_id"] not in order_ids for o in orphans)
    assert all(first_violation(o, ORDER_ITEMS.rules, ORDER_ITEMS.types) is None for o in orphans)


def spelling(timestamp: str | None) -> str | None:
    text = timestamp or ""
    if re.search(r"[+-]\d\d:\d\d$", text):
        return "offset"
    if text.endswith("Z"):
        return "z"
    if " " in text:
        return "space"
    return None


def test_dirt_spells_valid_timestamps_in_other_ways(dirty: GenerateSummary) -> None:
    spellings = Counter[str]()
    for entity in ("orders", "order_items"):
        schema = SCHEMAS[entity]
        for row in rows(dirty, entity):
            kind = spelling(row.record["order_timestamp"])
            if kind and first_violation(row.record, schema.rules, schema.types) is None:
                spellings[kind] += 1
    assert set(spellings) == {"offset", "z", "space"}
    assert spellings.total() == dirty.faults.timestamp_variants


def test_dirt_adds_extra_columns_to_some_files(dirty: GenerateSummary) -> None:
    extra = {
        "products": "aisle_id",
        "orders": "coupon_code",
        "order_items": "unit_price",
    }
    for output in dirty.entities:
        with_extra = [p for p in output.files if extra[output.name] in headers(p)]
        assert 0 < len(with_extra) < len(output.files)
        assert len(with_extra) == output.faults.extra_column_files
        for path in output.files:
            assert headers(path)[: len(SCHEMAS[output.name].columns)] == list(
                SCHEMAS[output.name].column_names
            )


def test_fault_totals_add_up(dirty: GenerateSummary) -> None:
    totals = dirty.faults
    assert totals.as_dict() == {
        kind: sum(o.faults.as_dict()[kind] for o in dirty.entities) for kind in totals.as_dict()
    }
    added = sum(o.faults.added_rows for o in dirty.entities)
    assert added == totals.added_rows > 0
    assert dirty.rows == sum(o.rows for o in dirty.entities)


def test_dirty_one_damages_every_row(tmp_path: Path) -> None:
    summary = generate(tmp_path, scale=0.0002, dirty=1.0)
    faults = summary.orders.faults
    touched = faults.invalid_rows + faults.in_file_duplicates + faults.cross_file_duplicates
    touched += faults.corrections + faults.timestamp_variants
    assert touched == round(3_421_083 * 0.0002)


# ----------------------------------------------------------------------------- the file writer


def writer(directory: Path, rows_per_file: int) -> _writer.CsvWriter:
    created = _writer.CsvWriter(
        directory=directory,
        entity="products",
        columns=("product_id",),
        extra_columns=(),
        rows_per_file=rows_per_file,
        digits=4,
        progress=None,
    )
    created.prepare()
    return created


def written(files: list[Path]) -> list[list[str]]:
    return [[line for line in p.read_text().splitlines()[1:]] for p in files]


def test_writer_keeps_a_duplicate_pair_in_one_file(tmp_path: Path) -> None:
    out = writer(tmp_path, rows_per_file=3)
    frame = pl.DataFrame({"product_id": ["a", "b", "c", "c", "d"]})
    out.write(frame, keep_with_previous=np.array([False, False, False, True, False]))
    out.close()
    out.publish()
    assert written(out.files) == [["a", "b"], ["c", "c", "d"]]


def test_writer_puts_deferred_rows_in_a_later_file(tmp_path: Path) -> None:
    out = writer(tmp_path, rows_per_file=2)
    out.write(pl.DataFrame({"product_id": ["a"]}))
    out.defer(pl.DataFrame({"product_id": ["a2"]}))
    out.write(pl.DataFrame({"product_id": ["b", "c"]}))
    out.defer(pl.DataFrame({"product_id": ["c2"]}))
    out.close()
    out.publish()
    assert written(out.files) == [["a", "b"], ["a2", "c"], ["c2"]]


# ----------------------------------------------------------------------------- arguments


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"scale": 0}, "scale must be a positive number"),
        ({"scale": -1.0}, "scale must be a positive number"),
        ({"scale": float("nan")}, "scale must be a positive number"),
        ({"dirty": -0.1}, "dirty must be between 0 and 1"),
        ({"dirty": 1.5}, "dirty must be between 0 and 1"),
        ({"dirty": float("nan")}, "dirty must be between 0 and 1"),
        ({"start": date(2024, 3, 1), "end": date(2024, 2, 1)}, "start 2024-03-01 is after end"),
        ({"seed": -1}, "seed must be a non-negative integer"),
        ({"rows_per_file": 0}, "rows_per_file must be at least 1"),
    ],
)
def test_rejects_bad_arguments(tmp_path: Path, kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message) as raised:
        generate(tmp_path, **kwargs)  # type: ignore[arg-type]
    assert "\n" not in str(raised.value)
    assert not (tmp_path / "raw-data").exists()


def test_rejects_an_output_that_is_a_file(tmp_path: Path) -> None:
    target = tmp_path / "lake"
    target.write_text("not a directory")
    with pytest.raises(ConfigurationError, match="cannot create"):
        generate(target, scale=0.0001)


def test_a_single_day_window_works(tmp_path: Path) -> None:
    summary = generate(tmp_path, scale=0.0005, start=date(2024, 2, 29), end=date(2024, 2, 29))
    assert {r.record["date"] for r in rows(summary, "orders")} == {"2024-02-29"}
    assert violations(summary, "order_items") == Counter()
