"""Instacart-shaped sample data for the raw zone, clean or deliberately dirty.

See docs/contract.md#zones and docs/contract.md#input-schemas.

:func:`generate` writes ``raw-data/products/products_0001.csv``, ``raw-data/orders/orders_0001.csv``
and ``raw-data/order_items/order_items_0001.csv`` (more numbered files per entity when the rows
exceed ``rows_per_file``; file-name order is ingestion order). At ``scale=1`` the volumes match the
Instacart data set: 49,688 products in 21 departments, about 206k users, 3.4M orders and 33M order
items. Orders are written in time order, so a higher file number holds later orders.

With ``dirty > 0`` that fraction of rows is damaged or re-sent so that every ingestion rule
(docs/contract.md#row-rules-and-quarantine, docs/contract.md#deduplication-and-merge) is
exercised: values that do not parse, blank keys, out-of-range numbers, bad booleans, dates that
contradict their timestamp, in-file and cross-file duplicates, late corrections in a later file
(some moving to another partition), orphan order items, valid but unusual timestamp spellings
and extra columns. Every damaged row breaks exactly one rule, so the expected quarantine count
is :attr:`FaultCounts.invalid_rows`.

Everything is vectorised with NumPy and written chunk by chunk with Polars, so memory stays bounded
by one chunk; the output is byte-identical for a given seed and set of arguments.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import date
from pathlib import Path
from typing import BinaryIO, Final

import numpy as np
import numpy.typing as npt
import polars as pl

from ecommerce_lakehouse.domain.errors import ConfigurationError
from ecommerce_lakehouse.domain.schemas import ORDER_ITEMS, ORDERS, PRODUCTS
from ecommerce_lakehouse.domain.types import Entity
from ecommerce_lakehouse.domain.zones import RAW

__all__ = [
    "DEPARTMENTS",
    "EntityOutput",
    "FaultCounts",
    "GenerateSummary",
    "MAX_SCALE",
    "ProgressCallback",
    "generate",
]

Int64Array = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

#: ``progress(entity, rows_written_so_far)``, called after every chunk written.
ProgressCallback = Callable[[str, int], None]

#: Instacart's departments; ``department_id`` is the 1-based position in this tuple.
DEPARTMENTS: Final[tuple[str, ...]] = (
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
)

#: The largest ``scale``: 100 times Instacart (~3.4 billion order items, ~220 GB of CSV).
#: Products and users stay in memory whole (~10 MB per unit of scale), so a far larger scale
#: would exhaust memory, or overflow the row counts, before writing a row.
MAX_SCALE: Final = 100.0
# Instacart volumes at scale 1.
_PRODUCTS_AT_SCALE_1: Final = 49_688
_USERS_AT_SCALE_1: Final = 206_209
_ORDERS_AT_SCALE_1: Final = 3_421_083
# Instacart's products and order items (thousands) per department: their ratio makes produce and
# dairy popular although they have few products.
_DEPARTMENT_VOLUMES: Final[dict[str, tuple[int, int]]] = {
    "frozen": (4007, 2237),
    "other": (548, 36),
    "bakery": (1516, 1176),
    "produce": (1684, 9479),
    "alcohol": (1054, 153),
    "international": (1139, 269),
    "beverages": (4365, 2690),
    "pets": (972, 97),
    "dry goods pasta": (1858, 867),
    "bulk": (38, 35),
    "personal care": (6563, 447),
    "meat seafood": (907, 709),
    "pantry": (5371, 1875),
    "breakfast": (1115, 709),
    "canned goods": (2092, 1068),
    "dairy eggs": (3449, 5414),
    "household": (3085, 738),
    "babies": (1081, 424),
    "snacks": (6264, 2888),
    "deli": (1322, 1051),
    "missing": (1258, 69),
}
_DEPARTMENT_PRODUCTS: Final = np.array([_DEPARTMENT_VOLUMES[d][0] for d in DEPARTMENTS], np.float64)
_DEPARTMENT_ITEMS: Final = np.array([_DEPARTMENT_VOLUMES[d][1] for d in DEPARTMENTS], np.float64)
# Orders (thousands) per hour of day, and per weekday with Monday first (Instacart's busiest day
# is taken as Sunday).
_HOUR_WEIGHTS: Final = np.concatenate(
    (
        [22, 12, 7, 5, 5, 9, 31, 91, 178, 258, 288, 284],  # 00:00-11:59
        [272, 277, 284, 283, 272, 228, 182, 140, 104, 78, 61, 40],  # 12:00-23:59
    )
).astype(np.float64)
_WEEKDAY_WEIGHTS: Final = np.array([587, 467, 436, 426, 453, 448, 600], dtype=np.float64)
# Items per order: 1 + negative binomial(2, p) has Instacart's mean (9.9) and long tail.
_ITEMS_NB_N: Final = 2
_ITEMS_NB_P: Final = 2 / 10.9
_MAX_ITEMS_PER_ORDER: Final = 145
# Items of a user's first order are never reorders; this rate for later orders gives ~59% overall.
_REORDER_RATE: Final = 0.59 * _ORDERS_AT_SCALE_1 / (_ORDERS_AT_SCALE_1 - _USERS_AT_SCALE_1)
_MAX_DAYS_SINCE_PRIOR: Final = 30

_SECONDS_PER_DAY: Final = 86_400
_EPOCH: Final = date(1970, 1, 1)
# Orders get a minute-resolution time grid; coarser cells keep the grid small for long windows.
_CELL_SECONDS: Final = (60, 120, 300, 600, 900, 1800, 3600)
_MAX_CELLS: Final = 1_000_000
# One chunk is ~25k orders (~250k items): the unit of memory (~200 MB peak) and of writing.
_ORDERS_PER_CHUNK = 25_000
_PRODUCTS_PER_CHUNK = 200_000
# Extra (non-schema) columns, present in files 1, 4, 7, ... of a dirty data set.
_EXTRA_COLUMNS: Final[dict[Entity, tuple[str, ...]]] = {
    Entity.PRODUCTS: ("aisle_id",),
    Entity.ORDERS: ("coupon_code",),
    Entity.ORDER_ITEMS: ("unit_price",),
}
_EXTRA_COLUMN_EVERY: Final = 3
_COUPONS: Final = ("SPRING10", "FREESHIP", "WELCOME5")

_ADJECTIVES: Final = (
    "Organic",
    "Classic",
    "Original",
    "Natural",
    "Family Size",
    "Lightly Salted",
    "Reduced Sodium",
    "Vanilla",
    "Honey Roasted",
    "Spicy",
    "Whole Grain",
    "Unsweetened",
    "Chef's",
    '"Extra" Fresh',
    "Premium",
    "Everyday",
)
_SIZES: Final = ("", "", "", "", ", 16 oz", ", 2 lb", ", 12 ct", ", 1 gal")
_NOUNS: Final[tuple[tuple[str, ...], ...]] = (
    ("Pizza", "Ice Cream", "Waffles", "Peas", "Burritos", "Berry Mix", "Fish Sticks"),
    ("Gift Card", "Batteries", "Candles", "Phone Charger"),
    ("Sourdough Bread", "Bagels", "Croissants", "Muffins", "Tortillas", "Baguette"),
    ("Bananas", "Avocado", "Spinach", "Strawberries", "Lemons", "Cucumber", "Apples"),
    ("Pale Ale", "Cabernet Sauvignon", "Hard Seltzer", "Vodka", "Lager"),
    ("Curry Paste", "Ramen Noodles", "Salsa Verde", "Kimchi", "Coconut Milk"),
    ("Sparkling Water", "Orange Juice", "Cold Brew Coffee", "Green Tea", "Cola"),
    ("Dry Dog Food", "Cat Litter", "Cat Treats", "Dog Chews"),
    ("Spaghetti", "Penne", "Brown Rice", "Couscous", "Macaroni & Cheese"),
    ("Granola", "Trail Mix", "Dried Mango", "Rolled Oats"),
    ("Shampoo", "Toothpaste", "Body Wash", "Deodorant", "Sunscreen"),
    ("Chicken Breast", "Ground Beef", "Salmon Fillet", "Bacon", "Shrimp"),
    ("Olive Oil", "Peanut Butter", "Honey", "Flour", "Marinara Sauce"),
    ("Cereal", "Pancake Mix", "Oatmeal", "Maple Syrup", "Granola Bars"),
    ("Black Beans", "Chickpeas", "Tomato Soup", "Tuna", "Diced Tomatoes"),
    ("Whole Milk", "Greek Yogurt", "Large Eggs", "Cheddar Cheese", "Butter"),
    ("Paper Towels", "Dish Soap", "Trash Bags", "Laundry Detergent"),
    ("Baby Wipes", "Diapers", "Baby Food Pouch", "Infant Formula"),
    ("Potato Chips", "Dark Chocolate", "Pretzels", "Popcorn", "Almonds", "Crackers"),
    ("Hummus", "Sliced Turkey", "Guacamole", "Salami", "Fresh Mozzarella"),
    ("Assorted Item", "Seasonal Item", "Mystery Box"),
)

# Fault kinds per entity; a damaged row gets exactly one. Sub-variants within a kind are taken
# round-robin so that every variant appears as soon as a kind has a few rows.
_PRODUCT_FAULTS: Final = (
    "blank_keys",
    "in_file_duplicates",
    "cross_file_duplicates",
    "corrections",
)
_ORDER_FAULTS: Final = (
    "bad_types",
    "bad_timestamps",
    "blank_keys",
    "out_of_range",
    "date_mismatches",
    "in_file_duplicates",
    "cross_file_duplicates",
    "corrections",
    "timestamp_variants",
)
_ITEM_FAULTS: Final = (
    "bad_types",
    "bad_timestamps",
    "blank_keys",
    "out_of_range",
    "bad_booleans",
    "date_mismatches",
    "in_file_duplicates",
    "cross_file_duplicates",
    "orphans",
    "timestamp_variants",
)
_BAD_TIMESTAMPS: Final = (
    ("order_timestamp", "2024-13-45T00:00:00"),
    ("order_timestamp", "yesterday"),
    ("order_timestamp", "2024-02-30T10:00:00"),
    ("order_timestamp", "15/01/2024 10:00"),
    ("order_timestamp", "2024-01-15T25:61:00"),
)
_ORDER_BAD_TYPES: Final = (
    ("total_amount", "abc"),
    ("total_amount", "12,50"),
    ("total_amount", "N/A"),
    ("date", "2024-02-30"),
    ("total_amount", "1e999"),
)
_ITEM_BAD_TYPES: Final = (
    ("add_to_cart_order", "x"),
    ("days_since_prior_order", "seven"),
    ("add_to_cart_order", "1.5"),
    ("date", "31/01/2024"),
    ("days_since_prior_order", "99999999999"),
)
_ORDER_BLANK_KEYS: Final = (
    ("order_id", ""),
    ("user_id", "  "),
    ("order_timestamp", ""),
    ("order_id", " "),
)
_ITEM_BLANK_KEYS: Final = (
    ("id", ""),
    ("order_id", " "),
    ("product_id", ""),
    ("user_id", "  "),
    ("order_timestamp", ""),
)
_ITEM_OUT_OF_RANGE: Final = (
    ("days_since_prior_order", "400"),
    ("days_since_prior_order", "-1"),
    ("add_to_cart_order", "0"),
    ("days_since_prior_order", "366"),
    ("add_to_cart_order", "-3"),
)
_BAD_BOOLEANS: Final = (("reordered", "yes"), ("reordered", "2"), ("reordered", "Y"))


@dataclass(frozen=True, slots=True, kw_only=True)
class FaultCounts:
    """How many rows (or files) of each fault kind were injected.

    The first six kinds each break exactly one row rule
    (docs/contract.md#row-rules-and-quarantine), so those rows are the ones ingestion must
    quarantine; the others are valid rows that dedup, MERGE or schema evolution must handle.

    Attributes:
        bad_types: values that do not parse as their column type (``parses_as_double``,
            ``parses_as_int``, ``parses_as_date``), e.g. ``total_amount='abc'``.
        bad_timestamps: unparseable ``order_timestamp`` (``parses_as_timestamp``).
        blank_keys: empty or blank required columns (``not_null``).
        out_of_range: negative ``total_amount``, ``days_since_prior_order`` outside 0-365,
            ``add_to_cart_order`` below 1 (``in_range``).
        bad_booleans: ``reordered`` tokens other than 0/1/true/false (``parses_as_boolean``).
        date_mismatches: ``date`` differing from the UTC date of the timestamp
            (``date_matches_timestamp``).
        in_file_duplicates: exact copies of a row in the same file.
        cross_file_duplicates: exact copies of a row in a later file.
        corrections: rows re-sent in a later file with a changed business column (orders with a
            later timestamp and another amount, products renamed or moved).
        partition_moves: the corrections whose partition value changed (another ``date`` or
            ``department``).
        orphans: order items whose ``order_id`` is in no orders file.
        timestamp_variants: valid timestamps spelled with an offset, ``Z`` or a space.
        extra_column_files: files carrying a column that is not in the schema.
    """

    bad_types: int = 0
    bad_timestamps: int = 0
    blank_keys: int = 0
    out_of_range: int = 0
    bad_booleans: int = 0
    date_mismatches: int = 0
    in_file_duplicates: int = 0
    cross_file_duplicates: int = 0
    corrections: int = 0
    partition_moves: int = 0
    orphans: int = 0
    timestamp_variants: int = 0
    extra_column_files: int = 0

    def __add__(self, other: FaultCounts) -> FaultCounts:
        """Field-wise sum."""
        return FaultCounts(
            **{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)}
        )

    @property
    def invalid_rows(self) -> int:
        """Rows that break a row rule, i.e. the rows ingestion must quarantine."""
        return (
            self.bad_types
            + self.bad_timestamps
            + self.blank_keys
            + self.out_of_range
            + self.bad_booleans
            + self.date_mismatches
        )

    @property
    def added_rows(self) -> int:
        """Rows written on top of the clean data set (duplicates, corrections, orphans)."""
        return (
            self.in_file_duplicates + self.cross_file_duplicates + self.corrections + self.orphans
        )

    def as_dict(self) -> dict[str, int]:
        """The counts keyed by fault kind."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True, slots=True, kw_only=True)
class EntityOutput:
    """What was written for one entity.

    Attributes:
        entity: the raw entity.
        rows: data rows written (headers excluded), dirty and re-sent rows included.
        files: the CSV files in ingestion order.
        faults: faults injected into this entity's files.
    """

    entity: Entity
    rows: int
    files: tuple[Path, ...]
    faults: FaultCounts


@dataclass(frozen=True, slots=True, kw_only=True)
class GenerateSummary:
    """The result of :func:`generate`.

    Attributes:
        out: the lake root the files were written under.
        scale: the scale factor (1 = Instacart volumes).
        seed: the random seed.
        dirty: the fraction of rows damaged or re-sent.
        start: first day of the order timestamps.
        end: last day of the order timestamps (corrections may land a day or two later).
        users: size of the user population orders are drawn from.
        products: the products output.
        orders: the orders output.
        order_items: the order items output.
    """

    out: Path
    scale: float
    seed: int
    dirty: float
    start: date
    end: date
    users: int
    products: EntityOutput
    orders: EntityOutput
    order_items: EntityOutput

    @property
    def entities(self) -> tuple[EntityOutput, ...]:
        """Per-entity outputs in ingestion order."""
        return (self.products, self.orders, self.order_items)

    @property
    def rows(self) -> int:
        """Data rows written over all entities."""
        return sum(e.rows for e in self.entities)

    @property
    def files(self) -> tuple[Path, ...]:
        """Every file written, products first."""
        return tuple(path for e in self.entities for path in e.files)

    @property
    def faults(self) -> FaultCounts:
        """Faults injected over all entities."""
        return self.products.faults + self.orders.faults + self.order_items.faults


def generate(
    out: Path,
    *,
    scale: float = 0.01,
    seed: int = 42,
    dirty: float = 0.0,
    start: date = date(2024, 1, 1),
    end: date = date(2024, 3, 31),
    rows_per_file: int = 1_000_000,
    progress: ProgressCallback | None = None,
) -> GenerateSummary:
    """Write Instacart-shaped products, orders and order items CSVs under ``out/raw-data/``.

    Files are written under hidden ``.part`` names and renamed only once every entity is
    complete, so a pipeline never picks up a half-written data set; on failure nothing is left.

    Args:
        out: the lake root (a local directory, created if needed).
        scale: volume factor; 1 is Instacart's size (~49.7k products, ~3.4M orders, ~33M items).
            Tiny scales still write every department and at least one order; at most
            ``MAX_SCALE``.
        seed: random seed; the same seed and arguments give byte-identical files.
        dirty: fraction of rows damaged or re-sent (0 = every row valid with unique keys).
        start: first day of the order timestamps.
        end: last day of the order timestamps (inclusive).
        rows_per_file: maximum data rows per CSV file (one more when an in-file duplicate
            pair would otherwise straddle two files).
        progress: called after every chunk with the entity name and its rows written so far.

    Returns:
        Per-entity row counts, files and injected fault counts.

    Raises:
        ConfigurationError: an argument is out of range, ``out`` cannot be written, or the raw
            zone already holds generated files.
    """
    _check_arguments(scale=scale, seed=seed, dirty=dirty, start=start, end=end)
    if rows_per_file < 1:
        raise ConfigurationError(f"rows_per_file must be at least 1, got {rows_per_file}")
    root = Path(out)
    sizes = _Sizes.at(scale)
    writers = {
        entity: _CsvWriter(
            directory=root / RAW / entity.value,
            entity=entity,
            columns=schema.column_names,
            extra_columns=_EXTRA_COLUMNS[entity] if dirty > 0 else (),
            rows_per_file=rows_per_file,
            digits=_file_number_digits(sizes, dirty, rows_per_file),
            progress=progress,
        )
        for entity, schema in (
            (Entity.PRODUCTS, PRODUCTS),
            (Entity.ORDERS, ORDERS),
            (Entity.ORDER_ITEMS, ORDER_ITEMS),
        )
    }
    for writer in writers.values():
        writer.prepare()
    kinds = [f.name for f in fields(FaultCounts)]
    counters = {entity: dict.fromkeys(kinds, 0) for entity in writers}
    try:
        catalogue = _write_products(
            writers[Entity.PRODUCTS], sizes, seed, dirty, counters[Entity.PRODUCTS]
        )
        _write_orders_and_items(
            writers[Entity.ORDERS],
            writers[Entity.ORDER_ITEMS],
            catalogue,
            sizes,
            _Window(start=start, end=end),
            seed,
            dirty,
            counters[Entity.ORDERS],
            counters[Entity.ORDER_ITEMS],
        )
        for writer in writers.values():
            writer.close()
        for writer in writers.values():
            writer.publish()
    except BaseException:
        for writer in writers.values():
            writer.abort()
        raise

    def output(entity: Entity) -> EntityOutput:
        writer = writers[entity]
        counters[entity]["extra_column_files"] = writer.extra_column_files
        return EntityOutput(
            entity=entity,
            rows=writer.rows,
            files=tuple(writer.files),
            faults=FaultCounts(**counters[entity]),
        )

    return GenerateSummary(
        out=root,
        scale=scale,
        seed=seed,
        dirty=dirty,
        start=start,
        end=end,
        users=sizes.users,
        products=output(Entity.PRODUCTS),
        orders=output(Entity.ORDERS),
        order_items=output(Entity.ORDER_ITEMS),
    )


def _check_arguments(*, scale: float, seed: int, dirty: float, start: date, end: date) -> None:
    if not (isinstance(scale, int | float) and math.isfinite(scale) and 0 < scale <= MAX_SCALE):
        raise ConfigurationError(
            f"scale must be a positive number up to {MAX_SCALE:g}, got {scale}"
        )
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigurationError(f"seed must be a non-negative integer, got {seed}")
    if not (isinstance(dirty, int | float) and 0 <= dirty <= 1):
        raise ConfigurationError(f"dirty must be between 0 and 1, got {dirty}")
    if start > end:
        raise ConfigurationError(f"start {start.isoformat()} is after end {end.isoformat()}")


# ----------------------------------------------------------------------------- sizes and time


@dataclass(frozen=True, slots=True)
class _Sizes:
    products: int
    users: int
    orders: int

    @classmethod
    def at(cls, scale: float) -> _Sizes:
        # Every department keeps a product and there is always a user and an order.
        return cls(
            products=max(len(DEPARTMENTS), round(_PRODUCTS_AT_SCALE_1 * scale)),
            users=max(1, round(_USERS_AT_SCALE_1 * scale)),
            orders=max(1, round(_ORDERS_AT_SCALE_1 * scale)),
        )


def _file_number_digits(sizes: _Sizes, dirty: float, rows_per_file: int) -> int:
    # File names must sort in ingestion order, so the zero padding must cover the last file;
    # the bound over-estimates rows (items tail, re-sent rows) and adds the trailing files.
    rows = sizes.orders * 11 * 1.5 * (1 + dirty) + 2 * sizes.products
    files = math.ceil(rows / rows_per_file) + 2
    return max(4, len(str(files)))


@dataclass(frozen=True, slots=True, kw_only=True)
class _Window:
    start: date
    end: date

    @property
    def first_day(self) -> int:
        return (self.start - _EPOCH).days

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1


def _rng(seed: int, *stream: int) -> np.random.Generator:
    # Independent streams per purpose and chunk: the clean data does not depend on `dirty`.
    return np.random.default_rng(np.random.SeedSequence([seed, *stream]))


_PRODUCT_STREAM, _USER_STREAM, _CELL_STREAM, _CHUNK_STREAM = 1, 2, 3, 4
_FAULT_STREAM: Final = {Entity.PRODUCTS: 11, Entity.ORDERS: 12, Entity.ORDER_ITEMS: 13}


# ----------------------------------------------------------------------------- products


@dataclass(frozen=True, slots=True)
class _Catalogue:
    department: Int64Array  # 0-based department per product (product_id - 1)
    price_cents: Int64Array
    price_text: pl.Series
    popularity_cdf: npt.NDArray[np.float64]


def _catalogue(count: int, seed: int) -> _Catalogue:
    rng = _rng(seed, _PRODUCT_STREAM)
    product_share = _DEPARTMENT_PRODUCTS / _DEPARTMENT_PRODUCTS.sum()
    department = rng.choice(len(DEPARTMENTS), size=count, p=product_share).astype(np.int64)
    # Force one product into each department so that tiny scales still see all 21.
    department[rng.choice(count, size=len(DEPARTMENTS), replace=False)] = np.arange(
        len(DEPARTMENTS)
    )
    price = rng.lognormal(mean=math.log(400), sigma=0.7, size=count)
    price_cents = np.clip(np.round(price / 10) * 10 - 1, 49, 4999).astype(np.int64)
    # Zipf-like popularity over a random ranking, boosted for departments that sell much more
    # than their product count suggests (produce, dairy eggs).
    boost = (_DEPARTMENT_ITEMS / _DEPARTMENT_ITEMS.sum()) / product_share
    weight = (rng.permutation(count) + 10.0) ** -0.9 * boost[department]
    cdf = np.cumsum(weight)
    return _Catalogue(
        department=department,
        price_cents=price_cents,
        price_text=_money(price_cents),
        popularity_cdf=cdf / cdf[-1],
    )


def _product_names(department: Int64Array, rng: np.random.Generator) -> pl.Series:
    offsets = np.cumsum([0, *(len(n) for n in _NOUNS)])[:-1]
    lengths = np.array([len(n) for n in _NOUNS])
    noun = offsets[department] + rng.integers(0, 1 << 30, department.size) % lengths[department]
    nouns = pl.Series([n for group in _NOUNS for n in group], dtype=pl.String)
    adjectives = pl.Series(_ADJECTIVES, dtype=pl.String)
    sizes = pl.Series(_SIZES, dtype=pl.String)
    parts = pl.DataFrame(
        {
            "adjective": adjectives.gather(rng.integers(0, len(_ADJECTIVES), department.size)),
            "noun": nouns.gather(noun),
            "size": sizes.gather(rng.integers(0, len(_SIZES), department.size)),
        }
    )
    return parts.select(
        pl.concat_str([pl.col("adjective"), pl.lit(" "), pl.col("noun"), pl.col("size")])
    ).to_series()


def _write_products(
    writer: _CsvWriter, sizes: _Sizes, seed: int, dirty: float, counter: dict[str, int]
) -> _Catalogue:
    catalogue = _catalogue(sizes.products, seed)
    names = _product_names(catalogue.department, _rng(seed, _PRODUCT_STREAM, 1))
    department_names = pl.Series(DEPARTMENTS, dtype=pl.String)
    for chunk, low in enumerate(range(0, sizes.products, _PRODUCTS_PER_CHUNK)):
        high = min(sizes.products, low + _PRODUCTS_PER_CHUNK)
        department = catalogue.department[low:high]
        frame = pl.DataFrame(
            [
                _strings(np.arange(low + 1, high + 1)).alias("product_id"),
                _strings(department + 1).alias("department_id"),
                department_names.gather(department).alias("department"),
                names.slice(low, high - low).alias("product_name"),
            ]
        )
        if dirty > 0:
            rng = _rng(seed, _FAULT_STREAM[Entity.PRODUCTS], chunk)
            frame = frame.with_columns(
                _strings(rng.integers(1, 135, frame.height)).alias("aisle_id")
            )
            _dirty_products(writer, frame, department, rng, dirty, counter)
        else:
            writer.write(frame)
        writer.report()
    return catalogue


def _dirty_products(
    writer: _CsvWriter,
    frame: pl.DataFrame,
    department: Int64Array,
    rng: np.random.Generator,
    dirty: float,
    counter: dict[str, int],
) -> None:
    picked = _pick(rng, frame.height, dirty, _PRODUCT_FAULTS)
    edits = _Edits()
    edits.tokens(picked["blank_keys"], (("product_id", ""), ("product_id", "  ")))
    frame = edits.apply(frame)
    # Corrections: even picks move to another department (a partition move), odd picks are
    # renamed in place; both are re-sent in a later file, where the last occurrence wins.
    rows = picked["corrections"]
    moved, renamed = rows[0::2], rows[1::2]
    new_department = (department[moved] + rng.integers(1, len(DEPARTMENTS), moved.size)) % len(
        DEPARTMENTS
    )
    moving = _Edits()
    moving.put("department_id", moved, _strings(new_department + 1))
    moving.put("department", moved, pl.Series(DEPARTMENTS, dtype=pl.String).gather(new_department))
    moves = moving.apply(frame)[moved]
    renames = frame[renamed].with_columns(
        pl.concat_str([pl.col("product_name"), pl.lit(", New Recipe")])
    )
    _emit_dirty(writer, frame, picked, [moves, renames])
    for kind, rows in picked.items():
        counter[kind] += rows.size
    counter["partition_moves"] += moved.size


# ----------------------------------------------------------------------------- orders and items


@dataclass(frozen=True, slots=True, kw_only=True)
class _Chunk:
    """One chunk of orders (in time order) and their items, as numbers."""

    order_id: Int64Array
    user_id: Int64Array
    order_num: Int64Array
    seconds: Int64Array  # order_timestamp as seconds since the epoch (UTC)
    days_since_prior: Int64Array  # -1 for a user's first order
    amount_cents: Int64Array
    item_order: Int64Array  # position of each item's order in this chunk
    add_to_cart: Int64Array
    product_id: Int64Array
    reordered: Int64Array


class _Timeline:
    """Order counts on a grid of time cells over the window, cut into chunks at cell edges.

    Orders are drawn cell by cell so that each chunk holds a contiguous, sorted time range;
    per-user state (orders so far, last timestamp) then gives order numbers and days since the
    prior order without ever holding all orders in memory.
    """

    def __init__(self, window: _Window, orders: int, seed: int) -> None:
        total_seconds = window.days * _SECONDS_PER_DAY
        self.cell_seconds = next(
            (s for s in _CELL_SECONDS if total_seconds // s <= _MAX_CELLS), _CELL_SECONDS[-1]
        )
        cells = total_seconds // self.cell_seconds
        self.base = window.first_day * _SECONDS_PER_DAY
        self.cell_start: Int64Array = np.arange(cells, dtype=np.int64) * self.cell_seconds
        hour = (self.cell_start % _SECONDS_PER_DAY) // 3600
        # 1970-01-01 was a Thursday (weekday 3 with Monday = 0).
        weekday = (window.first_day + self.cell_start // _SECONDS_PER_DAY + 3) % 7
        weight = _HOUR_WEIGHTS[hour] * _WEEKDAY_WEIGHTS[weekday]
        rng = _rng(seed, _CELL_STREAM)
        self.counts: Int64Array = rng.multinomial(orders, weight / weight.sum()).astype(np.int64)
        cumulative = np.cumsum(self.counts)
        targets = np.arange(_ORDERS_PER_CHUNK, orders, _ORDERS_PER_CHUNK)
        ends = np.unique(np.append(np.searchsorted(cumulative, targets) + 1, cells))
        self.chunks = list(zip(np.append(0, ends[:-1]).tolist(), ends.tolist(), strict=True))

    def seconds(self, low: int, high: int, rng: np.random.Generator) -> Int64Array:
        counts = self.counts[low:high]
        starts = np.repeat(self.cell_start[low:high], counts)
        offsets = rng.integers(0, self.cell_seconds, starts.size)
        return np.sort(self.base + starts + offsets)


class _Users:
    """The user population: activity weights and per-user running state."""

    def __init__(self, count: int, seed: int) -> None:
        rng = _rng(seed, _USER_STREAM)
        # Skewed activity with a floor: a few heavy users, and most users order several times.
        activity = rng.gamma(shape=1.2, scale=1.0, size=count) + 0.3
        cdf = np.cumsum(activity)
        self.cdf: npt.NDArray[np.float64] = cdf / cdf[-1]
        self.orders_so_far: Int64Array = np.zeros(count, dtype=np.int64)
        self.last_seconds: Int64Array = np.zeros(count, dtype=np.int64)

    def draw(self, count: int, rng: np.random.Generator) -> Int64Array:
        picked = np.searchsorted(self.cdf, rng.random(count), side="right")
        return np.minimum(picked, self.cdf.size - 1).astype(np.int64)

    def sequence(self, user: Int64Array, seconds: Int64Array) -> tuple[Int64Array, Int64Array]:
        """Order numbers and days since the prior order (-1 when first) for time-sorted orders."""
        by_user = np.argsort(user, kind="stable")  # stable: keeps time order within a user
        users, moments = user[by_user], seconds[by_user]
        first = np.ones(users.size, dtype=np.bool_)
        first[1:] = users[1:] != users[:-1]
        group_start = np.flatnonzero(first)
        group = np.cumsum(first) - 1
        rank = np.arange(users.size) - group_start[group]
        number = self.orders_so_far[users] + rank + 1
        previous = np.empty_like(moments)
        previous[1:] = moments[:-1]
        previous[first] = self.last_seconds[users[first]]
        days = np.minimum((moments - previous) // _SECONDS_PER_DAY, _MAX_DAYS_SINCE_PRIOR)
        days = np.where(number > 1, days, -1)
        group_users = users[group_start]
        group_end = np.append(group_start[1:], users.size) - 1
        self.orders_so_far[group_users] = number[group_end]
        self.last_seconds[group_users] = moments[group_end]
        order_num, days_since = np.empty_like(number), np.empty_like(days)
        order_num[by_user], days_since[by_user] = number, days
        return order_num, days_since


def _chunk(
    rng: np.random.Generator,
    seconds: Int64Array,
    first_order_id: int,
    users: _Users,
    catalogue: _Catalogue,
) -> _Chunk:
    count = seconds.size
    user = users.draw(count, rng)
    order_num, days_since = users.sequence(user, seconds)
    items = 1 + np.minimum(
        rng.negative_binomial(_ITEMS_NB_N, _ITEMS_NB_P, count), _MAX_ITEMS_PER_ORDER - 1
    ).astype(np.int64)
    item_order = np.repeat(np.arange(count, dtype=np.int64), items)
    order_start = np.cumsum(items) - items
    add_to_cart = np.arange(item_order.size, dtype=np.int64) - order_start[item_order] + 1
    product = np.searchsorted(catalogue.popularity_cdf, rng.random(item_order.size), side="right")
    product = np.minimum(product, catalogue.popularity_cdf.size - 1).astype(np.int64)
    price = catalogue.price_cents[product]
    reordered = (order_num[item_order] > 1) & (rng.random(item_order.size) < _REORDER_RATE)
    return _Chunk(
        order_id=np.arange(first_order_id, first_order_id + count, dtype=np.int64),
        user_id=user + 1,
        order_num=order_num,
        seconds=seconds,
        days_since_prior=days_since,
        amount_cents=np.add.reduceat(price, order_start),
        item_order=item_order,
        add_to_cart=add_to_cart,
        product_id=product + 1,
        reordered=reordered.astype(np.int64),
    )


def _write_orders_and_items(
    orders_writer: _CsvWriter,
    items_writer: _CsvWriter,
    catalogue: _Catalogue,
    sizes: _Sizes,
    window: _Window,
    seed: int,
    dirty: float,
    order_counter: dict[str, int],
    item_counter: dict[str, int],
) -> None:
    timeline = _Timeline(window, sizes.orders, seed)
    users = _Users(sizes.users, seed)
    next_order_id = 1
    for index, (low, high) in enumerate(timeline.chunks):
        rng = _rng(seed, _CHUNK_STREAM, index)
        seconds = timeline.seconds(low, high, rng)
        if seconds.size == 0:
            continue
        chunk = _chunk(rng, seconds, next_order_id, users, catalogue)
        next_order_id += seconds.size
        orders, items = _frames(chunk)
        if dirty > 0:
            order_rng = _rng(seed, _FAULT_STREAM[Entity.ORDERS], index)
            coupons = pl.Series([None, *_COUPONS], dtype=pl.String).gather(
                order_rng.choice(len(_COUPONS) + 1, orders.height, p=[0.85, 0.05, 0.05, 0.05])
            )
            _dirty_orders(
                orders_writer,
                orders.with_columns(coupons.alias("coupon_code")),
                chunk,
                order_rng,
                dirty,
                order_counter,
            )
            item_rng = _rng(seed, _FAULT_STREAM[Entity.ORDER_ITEMS], index)
            _dirty_items(
                items_writer,
                items.with_columns(
                    catalogue.price_text.gather(chunk.product_id - 1).alias("unit_price")
                ),
                chunk,
                item_rng,
                dirty,
                sizes.orders,
                item_counter,
            )
        else:
            orders_writer.write(orders)
            items_writer.write(items)
        orders_writer.report()
        items_writer.report()


def _frames(chunk: _Chunk) -> tuple[pl.DataFrame, pl.DataFrame]:
    order_id = _strings(chunk.order_id)
    user_id = _strings(chunk.user_id)
    timestamp = _timestamps(chunk.seconds)
    day = _dates(chunk.seconds // _SECONDS_PER_DAY)
    days_since = (
        pl.DataFrame({"d": chunk.days_since_prior})
        .select(pl.when(pl.col("d") >= 0).then(pl.col("d").cast(pl.String)))
        .to_series()
    )
    orders = pl.DataFrame(
        [
            _strings(chunk.order_num).alias("order_num"),
            order_id.alias("order_id"),
            user_id.alias("user_id"),
            timestamp.alias("order_timestamp"),
            _money(chunk.amount_cents).alias("total_amount"),
            day.alias("date"),
        ]
    )
    at = chunk.item_order
    items = pl.DataFrame(
        [
            order_id.gather(at).alias("order_id"),
            _strings(chunk.add_to_cart).alias("add_to_cart_order"),
        ]
    ).select(
        pl.concat_str([pl.col("order_id"), pl.lit("-"), pl.col("add_to_cart_order")]).alias("id"),
        pl.col("order_id"),
        user_id.gather(at).alias("user_id"),
        days_since.gather(at).alias("days_since_prior_order"),
        _strings(chunk.product_id).alias("product_id"),
        pl.col("add_to_cart_order"),
        _strings(chunk.reordered).alias("reordered"),
        timestamp.gather(at).alias("order_timestamp"),
        day.gather(at).alias("date"),
    )
    return orders, items


def _dirty_orders(
    writer: _CsvWriter,
    frame: pl.DataFrame,
    chunk: _Chunk,
    rng: np.random.Generator,
    dirty: float,
    counter: dict[str, int],
) -> None:
    picked = _pick(rng, frame.height, dirty, _ORDER_FAULTS)
    edits = _Edits()
    edits.tokens(picked["bad_types"], _ORDER_BAD_TYPES)
    edits.tokens(picked["bad_timestamps"], _BAD_TIMESTAMPS)
    edits.tokens(picked["blank_keys"], _ORDER_BLANK_KEYS)
    rows = picked["out_of_range"]
    edits.put("total_amount", rows, _money(-chunk.amount_cents[rows]))
    edits.shift_dates(picked["date_mismatches"], chunk.seconds)
    edits.respell_timestamps(picked["timestamp_variants"], chunk.seconds)
    frame = edits.apply(frame)
    corrections, moves = _order_corrections(frame, picked["corrections"], chunk, rng)
    _emit_dirty(writer, frame, picked, [corrections])
    for kind, rows in picked.items():
        counter[kind] += rows.size
    counter["partition_moves"] += moves


def _order_corrections(
    frame: pl.DataFrame, rows: Int64Array, chunk: _Chunk, rng: np.random.Generator
) -> tuple[pl.DataFrame, int]:
    """Later versions of orders: a later timestamp and another amount; every third moves date."""
    seconds = chunk.seconds[rows]
    to_midnight = _SECONDS_PER_DAY - seconds % _SECONDS_PER_DAY
    move = (np.arange(rows.size) % 3 == 0) | (to_midnight < 2)
    same_day = 1 + (rng.random(rows.size) * (to_midnight - 1)).astype(np.int64)
    next_days = to_midnight + rng.integers(0, 2 * _SECONDS_PER_DAY, rows.size)
    later = seconds + np.where(move, next_days, same_day)
    cents = chunk.amount_cents[rows]
    delta = rng.integers(1, 2000, rows.size)
    # Lower the amount when it stays positive, else raise it: the amount must differ and stay > 0.
    down = (rng.random(rows.size) < 0.5) & (cents > delta)
    amount = np.where(down, cents - delta, cents + delta)
    corrected = frame[rows].with_columns(
        _timestamps(later).alias("order_timestamp"),
        _money(amount).alias("total_amount"),
        _dates(later // _SECONDS_PER_DAY).alias("date"),
    )
    return corrected, int(move.sum())


def _dirty_items(
    writer: _CsvWriter,
    frame: pl.DataFrame,
    chunk: _Chunk,
    rng: np.random.Generator,
    dirty: float,
    total_orders: int,
    counter: dict[str, int],
) -> None:
    picked = _pick(rng, frame.height, dirty, _ITEM_FAULTS)
    seconds = chunk.seconds[chunk.item_order]
    edits = _Edits()
    edits.tokens(picked["bad_types"], _ITEM_BAD_TYPES)
    edits.tokens(picked["bad_timestamps"], _BAD_TIMESTAMPS)
    edits.tokens(picked["blank_keys"], _ITEM_BLANK_KEYS)
    edits.tokens(picked["out_of_range"], _ITEM_OUT_OF_RANGE)
    edits.tokens(picked["bad_booleans"], _BAD_BOOLEANS)
    edits.shift_dates(picked["date_mismatches"], seconds)
    edits.respell_timestamps(picked["timestamp_variants"], seconds)
    frame = edits.apply(frame)
    # Orphans are extra copies pointing at order ids past the last real one, so no orders file
    # ever holds them; the running count keeps their ids (and so their item ids) unique.
    rows = picked["orphans"]
    first = total_orders + 1 + counter["orphans"]
    orphan_order = _strings(np.arange(first, first + rows.size, dtype=np.int64))
    orphans = (
        frame[rows]
        .with_columns(orphan_order.alias("order_id"))
        .with_columns(
            pl.concat_str([pl.col("order_id"), pl.lit("-"), pl.col("add_to_cart_order")]).alias(
                "id"
            )
        )
    )
    _emit_dirty(writer, frame, picked, [], appended=orphans)
    for kind, rows in picked.items():
        counter[kind] += rows.size


# ----------------------------------------------------------------------------- fault helpers


def _pick(
    rng: np.random.Generator, rows: int, dirty: float, kinds: tuple[str, ...]
) -> dict[str, Int64Array]:
    """Sorted row positions per fault kind; each row is damaged at most once."""
    hit = np.flatnonzero(rng.random(rows) < dirty).astype(np.int64)
    kind = rng.integers(0, len(kinds), hit.size)
    return {name: hit[kind == i] for i, name in enumerate(kinds)}


def _emit_dirty(
    writer: _CsvWriter,
    frame: pl.DataFrame,
    picked: dict[str, Int64Array],
    later: list[pl.DataFrame],
    *,
    appended: pl.DataFrame | None = None,
) -> None:
    """Write a damaged chunk with its in-file duplicates; defer re-sent rows to a later file."""
    resent = frame[picked["cross_file_duplicates"]]
    duplicated = picked["in_file_duplicates"]
    repeats = np.ones(frame.height, dtype=np.int64)
    repeats[duplicated] = 2
    # The copy follows its original, and the writer never splits such a pair across files.
    keep_with_previous = np.zeros(frame.height + duplicated.size, dtype=np.bool_)
    keep_with_previous[np.cumsum(repeats)[duplicated] - 1] = True
    out = frame[np.repeat(np.arange(frame.height), repeats)]
    if appended is not None and appended.height:
        out = pl.concat([out, appended])
        keep_with_previous = np.append(keep_with_previous, np.zeros(appended.height, np.bool_))
    writer.write(out, keep_with_previous=keep_with_previous)
    for deferred in (resent, *later):
        writer.defer(deferred)


class _Edits:
    """Cell replacements gathered per column, then applied with one scatter per column."""

    def __init__(self) -> None:
        self._columns: dict[str, list[tuple[Int64Array, pl.Series]]] = {}

    def put(self, column: str, rows: Int64Array, values: pl.Series) -> None:
        if rows.size:
            self._columns.setdefault(column, []).append((rows, values))

    def tokens(self, rows: Int64Array, variants: tuple[tuple[str, str], ...]) -> None:
        """Overwrite ``rows`` with fixed tokens, the variants taken round-robin."""
        for offset, (column, token) in enumerate(variants):
            part = rows[offset :: len(variants)]
            self.put(column, part, pl.repeat(token, part.size, eager=True))

    def shift_dates(self, rows: Int64Array, seconds: Int64Array) -> None:
        """Make ``date`` the day after (even picks) or before (odd picks) the timestamp's date."""
        shift = np.where(np.arange(rows.size) % 2 == 0, 1, -1)
        self.put("date", rows, _dates(seconds[rows] // _SECONDS_PER_DAY + shift))

    def respell_timestamps(self, rows: Int64Array, seconds: Int64Array) -> None:
        """Write the same UTC instants with +02:00, -05:00, ``Z`` or a space separator."""
        spellings = (
            (2 * 3600, "%Y-%m-%dT%H:%M:%S+02:00"),
            (-5 * 3600, "%Y-%m-%dT%H:%M:%S-05:00"),
            (0, "%Y-%m-%dT%H:%M:%SZ"),
            (0, "%Y-%m-%d %H:%M:%S"),
        )
        for offset, (shift, pattern) in enumerate(spellings):
            part = rows[offset :: len(spellings)]
            self.put("order_timestamp", part, _timestamps(seconds[part] + shift, pattern))

    def apply(self, frame: pl.DataFrame) -> pl.DataFrame:
        changed = []
        for column, edits in self._columns.items():
            series = frame.get_column(column).clone()
            series.scatter(
                np.concatenate([rows for rows, _ in edits]),
                pl.concat([values for _, values in edits]),
            )
            changed.append(series)
        return frame.with_columns(changed) if changed else frame


# ----------------------------------------------------------------------------- formatting


def _strings(numbers: Int64Array) -> pl.Series:
    return pl.Series(numbers).cast(pl.String)


def _timestamps(seconds: Int64Array, pattern: str = "%Y-%m-%dT%H:%M:%S") -> pl.Series:
    return pl.from_epoch(pl.Series(seconds, dtype=pl.Int64), time_unit="s").dt.strftime(pattern)


def _dates(days: Int64Array) -> pl.Series:
    return pl.Series(days.astype(np.int32)).cast(pl.Date).cast(pl.String)


def _money(cents: Int64Array) -> pl.Series:
    """Exact 2-decimal text for amounts in cents (negative amounts keep their sign)."""
    frame = pl.DataFrame({"c": np.abs(cents), "negative": cents < 0})
    return frame.select(
        pl.concat_str(
            [
                pl.when(pl.col("negative")).then(pl.lit("-")).otherwise(pl.lit("")),
                (pl.col("c") // 100).cast(pl.String),
                pl.lit("."),
                (pl.col("c") % 100).cast(pl.String).str.zfill(2),
            ]
        )
    ).to_series()


# ----------------------------------------------------------------------------- file writer

_GENERATED_NAME = re.compile(r"^(products|orders|order_items)_[0-9]+\.csv$")


class _CsvWriter:
    """Streams frames into numbered CSV files of at most ``rows_per_file`` rows.

    Deferred frames (cross-file duplicates, corrections) are held back until a new file opens,
    so they always land in a file later than the rows they repeat. Files are written under a
    hidden ``.part`` name and renamed by :meth:`publish`.
    """

    def __init__(
        self,
        *,
        directory: Path,
        entity: Entity,
        columns: tuple[str, ...],
        extra_columns: tuple[str, ...],
        rows_per_file: int,
        digits: int,
        progress: ProgressCallback | None,
    ) -> None:
        self._directory = directory
        self._entity = entity
        self._columns = columns
        self._extra_columns = extra_columns
        self._rows_per_file = rows_per_file
        self._digits = digits
        self._progress = progress
        self._handle: BinaryIO | None = None
        self._file_columns = columns
        self._file_rows = 0
        self._pending: list[pl.DataFrame] = []
        self._parts: list[tuple[Path, Path]] = []
        self.rows = 0
        self.extra_column_files = 0

    @property
    def files(self) -> list[Path]:
        return [final for _, final in self._parts]

    def prepare(self) -> None:
        """Create the folder; refuse to mix with files of an earlier generation."""
        try:
            self._directory.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ConfigurationError(f"cannot create {self._directory}: {error}") from error
        existing = sorted(
            p.name for p in self._directory.iterdir() if _GENERATED_NAME.match(p.name)
        )
        if existing:
            raise ConfigurationError(
                f"{self._directory} already holds generated files ({existing[0]}, ...);"
                " move them away or choose another output directory"
            )

    def write(self, frame: pl.DataFrame, *, keep_with_previous: BoolArray | None = None) -> None:
        """Append rows; a row flagged in ``keep_with_previous`` stays in its predecessor's file."""
        position = 0
        while position < frame.height:
            if self._handle is None or self._file_rows >= self._rows_per_file:
                self._start_file()
                continue
            end = min(frame.height, position + self._rows_per_file - self._file_rows)
            if end < frame.height and keep_with_previous is not None and keep_with_previous[end]:
                # The pair would straddle two files: end this file early, or, when the pair
                # cannot fit in an empty file (rows_per_file == 1), let the file run one over.
                if end - 1 > position:
                    end -= 1
                elif self._file_rows:
                    self._start_file()
                    continue
                else:
                    end += 1
            self._emit(frame.slice(position, end - position))
            position = end

    def defer(self, frame: pl.DataFrame) -> None:
        if frame.height:
            self._pending.append(frame)

    def report(self) -> None:
        if self._progress is not None:
            self._progress(self._entity.value, self.rows)

    def close(self) -> None:
        if self._pending:
            self._start_file()
        self._close_handle()
        self.report()

    def publish(self) -> None:
        for part, final in self._parts:
            part.replace(final)
        self._parts = [(final, final) for _, final in self._parts]

    def abort(self) -> None:
        self._close_handle()
        for part, final in self._parts:
            if part != final:
                part.unlink(missing_ok=True)

    def _open_next(self) -> None:
        self._close_handle()
        number = len(self._parts) + 1
        name = f"{self._entity.value}_{number:0{self._digits}d}.csv"
        part = self._directory / f".{name}.part"
        self._parts.append((part, self._directory / name))
        self._handle = part.open("wb")
        self._file_rows = 0
        with_extras = bool(self._extra_columns) and number % _EXTRA_COLUMN_EVERY == 1
        self._file_columns = self._columns + (self._extra_columns if with_extras else ())
        self.extra_column_files += with_extras

    def _start_file(self) -> None:
        self._open_next()
        self._drain_pending()

    def _drain_pending(self) -> None:
        # Every pending row was deferred before this file opened, so any file from here is later.
        pending, self._pending = self._pending, []
        for frame in pending:
            position = 0
            while position < frame.height:
                if self._file_rows >= self._rows_per_file:
                    self._open_next()
                take = min(frame.height - position, self._rows_per_file - self._file_rows)
                self._emit(frame.slice(position, take))
                position += take

    def _emit(self, frame: pl.DataFrame) -> None:
        assert self._handle is not None
        frame.select(self._file_columns).write_csv(
            self._handle, include_header=self._file_rows == 0
        )
        self._file_rows += frame.height
        self.rows += frame.height

    def _close_handle(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
