"""Fixtures of the engine integration suites: every engine on real Delta tables.

``engine`` is the shared engine fixture (Polars, and Spark marked ``spark``); every test
here runs once per engine with the same inputs and the same expectations.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.contract.conftest_engines import EngineCase, engine
from tests.integration.engines.harness import Lake, WriteSource, source_writer

__all__ = ["engine", "lake", "write_source"]


@pytest.fixture
def write_source(tmp_path: Path) -> WriteSource:
    """Write a raw CSV (text is UTF-8 encoded as is) and describe it as a SourceFile."""
    return source_writer(tmp_path)


@pytest.fixture
def lake(engine: EngineCase, write_source: WriteSource, tmp_path: Path) -> Lake:
    return Lake(case=engine, write_source=write_source, root=tmp_path)
