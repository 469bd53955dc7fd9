"""The ``engine`` fixture of the engine contract suites: one parameter per table engine.

To hold another engine (e.g. Spark) to the same contract, add a parameter that builds it and
says how to turn its frames into records; the tests themselves do not change. Import the
fixture into a test module with ``from tests.contract.conftest_engines import engine``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from ecommerce_lakehouse.ports.engine import TableEngine


@dataclass(frozen=True)
class EngineCase:
    """A TableEngine under test and a way to read its frames back as plain records."""

    engine: TableEngine[Any]
    records: Callable[[Any], list[dict[str, Any]]]


def _polars() -> EngineCase:
    from ecommerce_lakehouse_polars.engine import PolarsDeltaTableEngine

    return EngineCase(engine=PolarsDeltaTableEngine({}), records=lambda frame: frame.to_dicts())


_ENGINES: dict[str, Callable[[], EngineCase]] = {"polars": _polars}


@pytest.fixture(params=sorted(_ENGINES))
def engine(request: pytest.FixtureRequest) -> EngineCase:
    return _ENGINES[request.param]()
