"""Seeded random streams: one independent stream per purpose and per chunk."""

from __future__ import annotations

from typing import Final

import numpy as np

# Streams shared across entities; each entity's fault stream is in its spec (11 and up), and
# the registry refuses a spec whose stream collides with these or with another spec's.
PRODUCT_STREAM: Final = 1
USER_STREAM: Final = 2
CELL_STREAM: Final = 3
CHUNK_STREAM: Final = 4
SHARED_STREAMS: Final = frozenset({PRODUCT_STREAM, USER_STREAM, CELL_STREAM, CHUNK_STREAM})


def stream(seed: int, *ids: int) -> np.random.Generator:
    """The random generator of one purpose (and chunk) under ``seed``.

    Independent streams keep the clean data independent of ``dirty``, and one entity's draws
    independent of the others'.

    Args:
        seed: the seed given to ``generate``.
        *ids: the stream id, then optional sub-stream numbers (usually the chunk index).

    Returns:
        A fresh generator; the same arguments always give the same draws.
    """
    return np.random.default_rng(np.random.SeedSequence([seed, *ids]))
