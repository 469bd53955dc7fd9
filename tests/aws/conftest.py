"""Fixtures of the AWS suites: the moto server of this test process."""

from __future__ import annotations

from tests.aws_support import moto

__all__ = ["moto"]
