"""Errors the product raises; every one carries a one-line, user-facing message."""

from __future__ import annotations


class LakehouseError(Exception):
    """Base class of every error the product reports to a user as one line."""


class ConfigurationError(LakehouseError):
    """Bad usage or configuration (CLI exit code 2)."""


class FileRejected(LakehouseError):
    """A whole raw file cannot be read (not CSV, not UTF-8, missing column, unknown entity).

    Attributes:
        reason: a short machine-friendly reason code, e.g. ``missing_columns``.
        detail: the human-readable explanation.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class LockTimeout(LakehouseError):
    """Another run held the lake lock for longer than the configured timeout."""


class PathOutsideLake(LakehouseError):
    """A storage key escaped the lake root (``..``, absolute paths)."""


class IntegrityError(LakehouseError):
    """A copy could not be verified, or an engine's counts disagree with its commit metrics."""


class PipelineStepFailed(LakehouseError):
    """A pipeline step failed; raw files it had not committed stay in ``raw-data/``."""

    def __init__(self, step: str, cause: BaseException) -> None:
        super().__init__(f"step '{step}' failed: {cause}")
        self.step = step
        self.cause = cause
