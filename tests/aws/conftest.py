"""Fixtures of the AWS suites: the moto server of this test process, and Trino over it."""

from __future__ import annotations

from tests.aws_support import moto
from tests.trino_support import trino

__all__ = ["moto", "trino"]
