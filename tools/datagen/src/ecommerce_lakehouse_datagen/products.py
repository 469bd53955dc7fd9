"""Products: Instacart's catalogue (49,688 products in 21 departments at scale 1) and its faults.

Products are reference data, written whole before the order timeline, which draws its order
items from the same :func:`catalogue`. Dirty products get blank keys, duplicates and
corrections (renames, and moves to another department: a partition move).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
import polars as pl

from ecommerce_lakehouse.domain.schemas import PRODUCTS
from ecommerce_lakehouse_datagen._faults import Edits, emit_dirty, pick
from ecommerce_lakehouse_datagen._format import Int64Array, money, strings
from ecommerce_lakehouse_datagen._rng import PRODUCT_STREAM, stream
from ecommerce_lakehouse_datagen._spec import ReferenceSpec, Run, Target

__all__ = ["DEPARTMENTS", "SPEC", "Catalogue", "catalogue", "product_count"]

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
_PRODUCTS_AT_SCALE_1: Final = 49_688
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
# The unit of memory and of writing.
_PRODUCTS_PER_CHUNK = 200_000

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

_FAULTS: Final = ("blank_keys", "in_file_duplicates", "cross_file_duplicates", "corrections")
_BLANK_KEYS: Final = (("product_id", ""), ("product_id", "  "))
_EXTRA_COLUMN: Final = "aisle_id"


def product_count(scale: float) -> int:
    """Products at ``scale``; every department keeps at least one."""
    return max(len(DEPARTMENTS), round(_PRODUCTS_AT_SCALE_1 * scale))


@dataclass(frozen=True, slots=True)
class Catalogue:
    """The products as numbers, for drawing order items.

    Attributes:
        department: 0-based department per product (index: ``product_id - 1``).
        price_cents: unit price per product.
        price_text: the unit prices as CSV text.
        popularity_cdf: cumulative probability of drawing each product.
    """

    department: Int64Array
    price_cents: Int64Array
    price_text: pl.Series
    popularity_cdf: npt.NDArray[np.float64]


def catalogue(count: int, seed: int) -> Catalogue:
    """The product catalogue of ``count`` products; a pure function of its arguments.

    Args:
        count: number of products (at least ``len(DEPARTMENTS)``).
        seed: the random seed.

    Returns:
        Departments, prices and popularity of every product.
    """
    rng = stream(seed, PRODUCT_STREAM)
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
    return Catalogue(
        department=department,
        price_cents=price_cents,
        price_text=money(price_cents),
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


def _write(target: Target) -> None:
    run = target.run
    count = product_count(run.scale)
    products = catalogue(count, run.seed)
    names = _product_names(products.department, stream(run.seed, PRODUCT_STREAM, 1))
    department_names = pl.Series(DEPARTMENTS, dtype=pl.String)
    for chunk, low in enumerate(range(0, count, _PRODUCTS_PER_CHUNK)):
        high = min(count, low + _PRODUCTS_PER_CHUNK)
        department = products.department[low:high]
        frame = pl.DataFrame(
            [
                strings(np.arange(low + 1, high + 1)).alias("product_id"),
                strings(department + 1).alias("department_id"),
                department_names.gather(department).alias("department"),
                names.slice(low, high - low).alias("product_name"),
            ]
        )
        if run.dirty > 0:
            rng = target.fault_rng(chunk)
            frame = frame.with_columns(
                strings(rng.integers(1, 135, frame.height)).alias(_EXTRA_COLUMN)
            )
            _damage(target, frame, department, rng)
        else:
            target.writer.write(frame)
        target.writer.report()


def _damage(
    target: Target, frame: pl.DataFrame, department: Int64Array, rng: np.random.Generator
) -> None:
    picked = pick(rng, frame.height, target.run.dirty, _FAULTS)
    edits = Edits()
    edits.tokens(picked["blank_keys"], _BLANK_KEYS)
    frame = edits.apply(frame)
    # Corrections: even picks move to another department (a partition move), odd picks are
    # renamed in place; both are re-sent in a later file, where the last occurrence wins.
    rows = picked["corrections"]
    moved, renamed = rows[0::2], rows[1::2]
    new_department = (department[moved] + rng.integers(1, len(DEPARTMENTS), moved.size)) % len(
        DEPARTMENTS
    )
    moving = Edits()
    moving.put("department_id", moved, strings(new_department + 1))
    moving.put("department", moved, pl.Series(DEPARTMENTS, dtype=pl.String).gather(new_department))
    moves = moving.apply(frame)[moved]
    renames = frame[renamed].with_columns(
        pl.concat_str([pl.col("product_name"), pl.lit(", New Recipe")])
    )
    emit_dirty(target.writer, frame, picked, [moves, renames])
    target.count(picked)
    target.faults["partition_moves"] += moved.size


def _rows_bound(run: Run) -> float:
    # Re-sent rows (duplicates, corrections) at most double the catalogue.
    return 2 * product_count(run.scale)


SPEC: Final = ReferenceSpec(
    schema=PRODUCTS,
    faults=_FAULTS,
    extra_columns=(_EXTRA_COLUMN,),
    fault_stream=11,
    write=_write,
    rows_bound=_rows_bound,
)
