"""Suite-wide collection rules."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Send every Spark test to one xdist worker (``--dist loadgroup``, as ``make test`` runs).

    A Spark session is process-wide and costs a JVM start and most of a core: one worker
    starts it once and runs the Spark tests in it, while the other workers take the rest.
    """
    for item in items:
        if item.get_closest_marker("spark") is not None:
            item.add_marker(pytest.mark.xdist_group("spark"))
