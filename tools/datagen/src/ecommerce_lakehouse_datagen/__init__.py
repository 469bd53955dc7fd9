"""Seeded, Instacart-shaped raw CSV drops for demos, tests and benchmarks, clean or dirty.

See docs/contract.md#zones and docs/contract.md#input-schemas.

:func:`generate` writes, for every entity of the core catalogue
(``ecommerce_lakehouse.domain.schemas.SCHEMAS``), numbered files
``raw-data/<entity>/<entity>_0001.csv``, ``..._0002.csv`` and so on when the rows exceed
``rows_per_file``; file-name order is ingestion order. Each entity has a generator spec module
named after it (``products.py`` for ``products``) holding its writer, its fault kinds and its
extra columns; ``_registry`` finds them from the catalogue. At ``scale=1`` the volumes match
the Instacart data set: 49,688 products in 21 departments, about 206k users, 3.4M orders and
33M order items.

With ``dirty > 0`` that fraction of rows is damaged or re-sent so that every ingestion rule
(docs/contract.md#row-rules-and-quarantine, docs/contract.md#deduplication-and-merge) is
exercised: values that do not parse, blank keys, out-of-range numbers, bad booleans, dates that
contradict their timestamp, in-file and cross-file duplicates, late corrections in a later file
(some moving to another partition), orphan rows, valid but unusual timestamp spellings and
extra columns. Every damaged row breaks exactly one rule, so the expected quarantine count is
:attr:`FaultCounts.invalid_rows`.

Everything is vectorised with NumPy and written chunk by chunk with Polars, so memory stays bounded
by one chunk; the output is byte-identical for a given seed and set of arguments.
"""

from __future__ import annotations

from ecommerce_lakehouse_datagen._arguments import MAX_SCALE
from ecommerce_lakehouse_datagen._generate import generate
from ecommerce_lakehouse_datagen.products import DEPARTMENTS
from ecommerce_lakehouse_datagen.summary import (
    EntityOutput,
    FaultCounts,
    GenerateSummary,
    ProgressCallback,
)

__all__ = [
    "DEPARTMENTS",
    "EntityOutput",
    "FaultCounts",
    "GenerateSummary",
    "MAX_SCALE",
    "ProgressCallback",
    "generate",
]
