"""The checks on ``generate``'s arguments, before anything is written."""

from __future__ import annotations

import math
from datetime import date
from typing import Final

from ecommerce_lakehouse.domain.errors import ConfigurationError

#: The largest ``scale``: 100 times Instacart (~3.4 billion order items, ~220 GB of CSV).
#: Products and users stay in memory whole (~10 MB per unit of scale), so a far larger scale
#: would exhaust memory, or overflow the row counts, before writing a row.
MAX_SCALE: Final = 100.0


def check_arguments(
    *, scale: float, seed: int, dirty: float, start: date, end: date, rows_per_file: int
) -> None:
    """Refuse arguments ``generate`` cannot honour.

    Args:
        scale: volume factor, above 0 and at most :data:`MAX_SCALE`.
        seed: a non-negative integer.
        dirty: a fraction between 0 and 1.
        start: first day, not after ``end``.
        end: last day.
        rows_per_file: at least 1.

    Raises:
        ConfigurationError: the first argument out of range, in the order above.
    """
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
    if rows_per_file < 1:
        raise ConfigurationError(f"rows_per_file must be at least 1, got {rows_per_file}")
