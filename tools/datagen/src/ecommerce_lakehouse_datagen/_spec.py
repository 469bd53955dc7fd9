"""What an entity's generator spec module provides, and what its writer is given.

Each entity of the core catalogue has a module named after it (``products.py`` for
``products``) defining ``SPEC``; see :mod:`ecommerce_lakehouse_datagen._registry`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date

import numpy as np

from ecommerce_lakehouse.domain.schemas import TableSchema
from ecommerce_lakehouse_datagen._format import Int64Array
from ecommerce_lakehouse_datagen._rng import stream
from ecommerce_lakehouse_datagen._writer import CsvWriter


@dataclass(frozen=True, slots=True, kw_only=True)
class Run:
    """The arguments of one ``generate`` call that shape the data.

    Attributes:
        scale: volume factor (1 = Instacart's size).
        seed: the random seed.
        dirty: fraction of rows damaged or re-sent.
        start: first day of the order timestamps.
        end: last day of the order timestamps (inclusive).
    """

    scale: float
    seed: int
    dirty: float
    start: date
    end: date


@dataclass(frozen=True, slots=True, kw_only=True)
class Target:
    """Where one entity's rows go during one run.

    Attributes:
        run: the run's arguments.
        writer: the entity's CSV writer (header: the schema's columns).
        faults: injected faults so far, keyed by ``FaultCounts`` field.
        fault_stream: the entity's random stream id for its faults.
    """

    run: Run
    writer: CsvWriter
    faults: dict[str, int]
    fault_stream: int

    def fault_rng(self, chunk: int) -> np.random.Generator:
        """The entity's fault stream for one chunk, independent of the clean data's streams."""
        return stream(self.run.seed, self.fault_stream, chunk)

    def count(self, picked: Mapping[str, Int64Array]) -> None:
        """Add the rows picked per fault kind to the tally."""
        for kind, rows in picked.items():
            self.faults[kind] += rows.size


@dataclass(frozen=True, slots=True, kw_only=True)
class EntitySpec:
    """How one raw entity is generated: the part every kind of entity shares.

    Attributes:
        schema: the entity's table in the core catalogue; its columns are the CSV header.
        faults: the fault kinds injected into the entity (``FaultCounts`` field names); their
            order fixes which rows get which kind, so reordering changes the output.
        extra_columns: non-schema columns added to some files of a dirty data set.
        fault_stream: random stream id of the entity's faults, unique in the package.
    """

    schema: TableSchema
    faults: tuple[str, ...]
    extra_columns: tuple[str, ...]
    fault_stream: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ReferenceSpec(EntitySpec):
    """An entity written whole before the order timeline (reference data, e.g. products).

    Attributes:
        write: writes every row of the entity into the target (without closing it).
        rows_bound: an upper estimate of the rows written, re-sent rows included; it sizes the
            zero padding of the file numbers.
    """

    write: Callable[[Target], None]
    rows_bound: Callable[[Run], float]
