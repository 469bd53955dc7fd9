"""Lock port: one run per lake at a time (docs/contract.md#concurrency)."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Protocol


class Lock(Protocol):
    """A lake-wide mutual-exclusion lock."""

    def acquire(self, *, owner: str, timeout_seconds: float) -> AbstractContextManager[None]:
        """Hold the lock for the ``with`` block.

        The lock is not re-entrant; a negative ``timeout_seconds`` waits forever.

        Raises:
            LockTimeout: another owner held it for longer than ``timeout_seconds``.
        """
        ...
