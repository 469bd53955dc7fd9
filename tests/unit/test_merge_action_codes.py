"""The action codes each Delta engine tags survivors with before its MERGE.

The codes are engine-internal (neither engine reads the other's), so each engine owns its
own; both must give the per-file counts the domain's ``counts_by_file`` would.
"""

from __future__ import annotations

import importlib

import pytest

from ecommerce_lakehouse.domain.audit import RowCounts
from ecommerce_lakehouse.domain.decisions import MergeAction

#: The MERGE module of each engine (importing them loads neither PySpark nor a session).
ENGINE_MERGES = ("ecommerce_lakehouse_polars.merge", "ecommerce_lakehouse_spark.merge")


@pytest.mark.parametrize("module", ENGINE_MERGES)
def test_every_action_has_a_distinct_one_byte_code(module: str) -> None:
    codes = importlib.import_module(module).ACTION_CODES

    assert set(codes) == set(MergeAction)
    assert sorted(codes.values()) == [0, 1, 2]  # a UInt8 (Polars) or tinyint (Spark) column


@pytest.mark.parametrize("module", ENGINE_MERGES)
def test_coded_tallies_become_per_file_counts(module: str) -> None:
    merge = importlib.import_module(module)
    code = merge.ACTION_CODES
    tallies = [
        ("a.csv", code[MergeAction.INSERT], 3),
        ("a.csv", code[MergeAction.UNCHANGED], 1),
        ("b.csv", code[MergeAction.UPDATE], 2),
    ]

    assert merge.tally_counts(tallies) == {
        "a.csv": RowCounts(inserted=3, unchanged=1),
        "b.csv": RowCounts(updated=2),
    }
