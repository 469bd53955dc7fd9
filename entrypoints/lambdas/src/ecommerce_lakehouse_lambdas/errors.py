"""Errors the Lambdas raise; each message is one line (it becomes the invocation's error)."""

from __future__ import annotations

from ecommerce_lakehouse.domain.errors import LakehouseError


class InvalidEvent(LakehouseError):
    """The function was invoked with an event it cannot read."""


class RunResultMissing(LakehouseError):
    """The Glue job wrote no result for the run being archived."""


class InvalidRunResult(LakehouseError):
    """The run's result document cannot be read as a run result."""
