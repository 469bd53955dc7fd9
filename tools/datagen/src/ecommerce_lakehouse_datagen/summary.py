"""What :func:`~ecommerce_lakehouse_datagen.generate` reports: progress, then a summary."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import date
from pathlib import Path

from ecommerce_lakehouse.domain.schemas import ORDER_ITEMS, ORDERS, PRODUCTS

__all__ = ["EntityOutput", "FaultCounts", "GenerateSummary", "ProgressCallback"]

#: ``progress(entity, rows_written_so_far)``, called after every chunk written.
ProgressCallback = Callable[[str, int], None]


@dataclass(frozen=True, slots=True, kw_only=True)
class FaultCounts:
    """How many rows (or files) of each fault kind were injected.

    The first six kinds each break exactly one row rule
    (docs/contract.md#row-rules-and-quarantine), so those rows are the ones ingestion must
    quarantine; the others are valid rows that dedup, MERGE or schema evolution must handle.
    Each entity's spec lists the kinds it injects.

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

    @classmethod
    def kinds(cls) -> tuple[str, ...]:
        """The fault kinds, in field order."""
        return tuple(f.name for f in fields(cls))

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
        name: the entity's name in the core catalogue (``SCHEMAS``).
        rows: data rows written (headers excluded), dirty and re-sent rows included.
        files: the CSV files in ingestion order.
        faults: faults injected into this entity's files.
    """

    name: str
    rows: int
    files: tuple[Path, ...]
    faults: FaultCounts


@dataclass(frozen=True, slots=True, kw_only=True)
class GenerateSummary:
    """The result of :func:`~ecommerce_lakehouse_datagen.generate`.

    Attributes:
        out: the lake root the files were written under.
        scale: the scale factor (1 = Instacart volumes).
        seed: the random seed.
        dirty: the fraction of rows damaged or re-sent.
        start: first day of the order timestamps.
        end: last day of the order timestamps (corrections may land a day or two later).
        users: size of the user population orders are drawn from.
        entities: per-entity outputs in ingestion order (the order of the core ``SCHEMAS``).
    """

    out: Path
    scale: float
    seed: int
    dirty: float
    start: date
    end: date
    users: int
    entities: tuple[EntityOutput, ...]

    def output(self, name: str) -> EntityOutput:
        """The output of one entity.

        Args:
            name: the entity's name in the core catalogue.

        Raises:
            KeyError: no entity of that name was generated.
        """
        for output in self.entities:
            if output.name == name:
                return output
        raise KeyError(name)

    # Shorthands for the entities every caller knows; any other is reached through `output`.
    @property
    def products(self) -> EntityOutput:
        """The products output."""
        return self.output(PRODUCTS.name)

    @property
    def orders(self) -> EntityOutput:
        """The orders output."""
        return self.output(ORDERS.name)

    @property
    def order_items(self) -> EntityOutput:
        """The order items output."""
        return self.output(ORDER_ITEMS.name)

    @property
    def rows(self) -> int:
        """Data rows written over all entities."""
        return sum(e.rows for e in self.entities)

    @property
    def files(self) -> tuple[Path, ...]:
        """Every file written, in ingestion order of the entities."""
        return tuple(path for e in self.entities for path in e.files)

    @property
    def faults(self) -> FaultCounts:
        """Faults injected over all entities."""
        return sum((e.faults for e in self.entities), FaultCounts())
