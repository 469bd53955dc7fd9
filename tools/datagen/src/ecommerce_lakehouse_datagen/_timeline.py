"""The order timeline: orders drawn in time order, chunk by chunk, with their items.

At scale 1 the volumes match Instacart: about 206k users, 3.4M orders and 33M order items,
drawn from the product :func:`~ecommerce_lakehouse_datagen.products.catalogue`. Orders are
written in time order, so a higher file number holds later orders. Every entity registered with
a :class:`TimelineSpec` writes its rows from each chunk in turn; memory stays bounded by one
chunk.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Final

import numpy as np
import numpy.typing as npt
import polars as pl

from ecommerce_lakehouse_datagen._format import (
    SECONDS_PER_DAY,
    Int64Array,
    dates,
    strings,
    timestamps,
)
from ecommerce_lakehouse_datagen._rng import CELL_STREAM, CHUNK_STREAM, USER_STREAM, stream
from ecommerce_lakehouse_datagen._spec import EntitySpec, Run, Target
from ecommerce_lakehouse_datagen.products import Catalogue, catalogue, product_count

# Instacart volumes at scale 1.
_USERS_AT_SCALE_1: Final = 206_209
_ORDERS_AT_SCALE_1: Final = 3_421_083
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

_EPOCH: Final = date(1970, 1, 1)
# Orders get a minute-resolution time grid; coarser cells keep the grid small for long windows.
_CELL_SECONDS: Final = (60, 120, 300, 600, 900, 1800, 3600)
_MAX_CELLS: Final = 1_000_000
# One chunk is ~25k orders (~250k items): the unit of memory (~200 MB peak) and of writing.
_ORDERS_PER_CHUNK = 25_000
# Margin of the rows bound over the specs' mean rows per order: the items' long tail, re-sent rows.
_ROWS_MARGIN: Final = 1.5


def user_count(scale: float) -> int:
    """Users at ``scale`` (at least one)."""
    return max(1, round(_USERS_AT_SCALE_1 * scale))


def order_count(scale: float) -> int:
    """Orders at ``scale`` (at least one), orphans and re-sent rows excluded."""
    return max(1, round(_ORDERS_AT_SCALE_1 * scale))


@dataclass(frozen=True, slots=True, kw_only=True)
class Chunk:
    """One chunk of orders (in time order) and their items.

    Attributes:
        index: the chunk's position in the timeline (it seeds the entities' fault streams).
        catalogue: the products the items were drawn from.
        order_id: per order, from 1 in time order over the whole timeline.
        user_id: per order.
        order_num: per order, the user's order count so far (1 for a first order).
        seconds: per order, ``order_timestamp`` as seconds since the epoch (UTC).
        days_since_prior: per order, whole days since the user's prior order (at most 30), -1
            for a user's first order.
        amount_cents: per order, the sum of its items' prices.
        item_order: per item, the position of its order in this chunk.
        add_to_cart: per item, its 1-based position in the order.
        product_id: per item.
        reordered: per item, 1 when a reorder, else 0.
        order_id_text: ``order_id`` as CSV text.
        user_id_text: ``user_id`` as CSV text.
        timestamp_text: ``seconds`` as an ISO timestamp.
        date_text: the UTC date of ``seconds``.
    """

    index: int
    catalogue: Catalogue
    order_id: Int64Array
    user_id: Int64Array
    order_num: Int64Array
    seconds: Int64Array
    days_since_prior: Int64Array
    amount_cents: Int64Array
    item_order: Int64Array
    add_to_cart: Int64Array
    product_id: Int64Array
    reordered: Int64Array
    # Formatted once here for every entity that writes them.
    order_id_text: pl.Series
    user_id_text: pl.Series
    timestamp_text: pl.Series
    date_text: pl.Series


@dataclass(frozen=True, slots=True, kw_only=True)
class TimelineSpec(EntitySpec):
    """An entity whose rows come from each chunk of the order timeline (orders, order items).

    Attributes:
        write_chunk: writes the entity's rows of one chunk into the target.
        rows_per_order: mean rows per order, rounded up; with a margin it sizes the zero
            padding of the file numbers.
    """

    write_chunk: Callable[[Target, Chunk], None]
    rows_per_order: int


def rows_bound(run: Run, specs: Sequence[TimelineSpec]) -> float:
    """An upper estimate of the rows the timeline writes over ``specs``, re-sent rows included."""
    if not specs:
        return 0
    per_order = sum(spec.rows_per_order for spec in specs)
    return order_count(run.scale) * per_order * _ROWS_MARGIN * (1 + run.dirty)


def write_timeline(run: Run, targets: Sequence[tuple[TimelineSpec, Target]]) -> None:
    """Draw the orders chunk by chunk and let every timeline entity write its rows.

    Args:
        run: the run's arguments.
        targets: the timeline entities, each with its target, in ingestion order.
    """
    if not targets:
        return
    # The catalogue is a pure function of the seed: the same products the products file holds.
    products = catalogue(product_count(run.scale), run.seed)
    timeline = _Timeline(_Window(start=run.start, end=run.end), order_count(run.scale), run.seed)
    users = _Users(user_count(run.scale), run.seed)
    next_order_id = 1
    for index, (low, high) in enumerate(timeline.chunks):
        rng = stream(run.seed, CHUNK_STREAM, index)
        seconds = timeline.seconds(low, high, rng)
        if seconds.size == 0:
            continue
        chunk = _draw_chunk(rng, index, seconds, next_order_id, users, products)
        next_order_id += seconds.size
        for spec, target in targets:
            spec.write_chunk(target, chunk)
        for _, target in targets:
            target.writer.report()


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


class _Timeline:
    """Order counts on a grid of time cells over the window, cut into chunks at cell edges.

    Orders are drawn cell by cell so that each chunk holds a contiguous, sorted time range;
    per-user state (orders so far, last timestamp) then gives order numbers and days since the
    prior order without ever holding all orders in memory.
    """

    def __init__(self, window: _Window, orders: int, seed: int) -> None:
        total_seconds = window.days * SECONDS_PER_DAY
        self.cell_seconds = next(
            (s for s in _CELL_SECONDS if total_seconds // s <= _MAX_CELLS), _CELL_SECONDS[-1]
        )
        cells = total_seconds // self.cell_seconds
        self.base = window.first_day * SECONDS_PER_DAY
        self.cell_start: Int64Array = np.arange(cells, dtype=np.int64) * self.cell_seconds
        hour = (self.cell_start % SECONDS_PER_DAY) // 3600
        # 1970-01-01 was a Thursday (weekday 3 with Monday = 0).
        weekday = (window.first_day + self.cell_start // SECONDS_PER_DAY + 3) % 7
        weight = _HOUR_WEIGHTS[hour] * _WEEKDAY_WEIGHTS[weekday]
        rng = stream(seed, CELL_STREAM)
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
        rng = stream(seed, USER_STREAM)
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
        days = np.minimum((moments - previous) // SECONDS_PER_DAY, _MAX_DAYS_SINCE_PRIOR)
        days = np.where(number > 1, days, -1)
        group_users = users[group_start]
        group_end = np.append(group_start[1:], users.size) - 1
        self.orders_so_far[group_users] = number[group_end]
        self.last_seconds[group_users] = moments[group_end]
        order_num, days_since = np.empty_like(number), np.empty_like(days)
        order_num[by_user], days_since[by_user] = number, days
        return order_num, days_since


def _draw_chunk(
    rng: np.random.Generator,
    index: int,
    seconds: Int64Array,
    first_order_id: int,
    users: _Users,
    products: Catalogue,
) -> Chunk:
    count = seconds.size
    user = users.draw(count, rng)
    order_num, days_since = users.sequence(user, seconds)
    items = 1 + np.minimum(
        rng.negative_binomial(_ITEMS_NB_N, _ITEMS_NB_P, count), _MAX_ITEMS_PER_ORDER - 1
    ).astype(np.int64)
    item_order = np.repeat(np.arange(count, dtype=np.int64), items)
    order_start = np.cumsum(items) - items
    add_to_cart = np.arange(item_order.size, dtype=np.int64) - order_start[item_order] + 1
    product = np.searchsorted(products.popularity_cdf, rng.random(item_order.size), side="right")
    product = np.minimum(product, products.popularity_cdf.size - 1).astype(np.int64)
    price = products.price_cents[product]
    reordered = (order_num[item_order] > 1) & (rng.random(item_order.size) < _REORDER_RATE)
    order_id = np.arange(first_order_id, first_order_id + count, dtype=np.int64)
    return Chunk(
        index=index,
        catalogue=products,
        order_id=order_id,
        user_id=user + 1,
        order_num=order_num,
        seconds=seconds,
        days_since_prior=days_since,
        amount_cents=np.add.reduceat(price, order_start),
        item_order=item_order,
        add_to_cart=add_to_cart,
        product_id=product + 1,
        reordered=reordered.astype(np.int64),
        order_id_text=strings(order_id),
        user_id_text=strings(user + 1),
        timestamp_text=timestamps(seconds),
        date_text=dates(seconds // SECONDS_PER_DAY),
    )
