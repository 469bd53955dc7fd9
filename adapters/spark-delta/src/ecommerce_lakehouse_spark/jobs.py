"""Counting the Spark jobs each engine step runs, and logging them.

Every step of the engine (reading a file, staging a batch, appending to an audit table,
the MERGE, a query) runs under a Spark job group of its own; when the step ends, the
status tracker says how many jobs ran in that group. The counts are summed per entity and
step, and one INFO line per entity is logged on the ``ecommerce_lakehouse_spark`` logger
once its MERGE is done::

    spark jobs: order_items read=3 (3 files), stage=2, quarantine=0, merge=6, total=11

Audit appends and queries are logged as they finish (``spark jobs: ingest_log append=2``).
Every step is also logged at DEBUG with its wall time when it ends
(``spark jobs: order_items stage=2 in 31.6 s``): where a run's time goes, step by step.
Only jobs started from the calling thread (and the threads Spark hands its properties to:
broadcasts, subqueries) are counted.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

LOGGER = logging.getLogger("ecommerce_lakehouse_spark")

#: The local properties Spark keeps a job group in (``SparkContext.setJobGroup``).
_GROUP = "spark.jobGroup.id"
_DESCRIPTION = "spark.job.description"
_INTERRUPT = "spark.job.interruptOnCancel"

#: The order steps are reported in.
STEPS = ("read", "stage", "quarantine", "merge")


class SparkJobCounter:
    """Spark jobs run per entity and step, counted through job groups.

    Args:
        session: the Spark session the steps run on.
    """

    def __init__(self, session: SparkSession) -> None:
        self._session = session
        self._prefix = f"ecommerce-lakehouse-{uuid.uuid4().hex[:8]}"
        self._numbers = itertools.count()
        self._counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self._files: dict[str, int] = defaultdict(int)
        # Files are read from several threads at once (each with its own job group).
        self._lock = threading.Lock()

    @property
    def counts(self) -> dict[str, dict[str, int]]:
        """Jobs so far, by entity (or audit table, or ``sql``) and step."""
        with self._lock:
            return {entity: dict(steps) for entity, steps in self._counts.items()}

    @contextmanager
    def step(self, entity: str, step: str) -> Iterator[None]:
        """Count the jobs run inside the block as ``step`` of ``entity``.

        The thread's job group, if any, is restored afterwards. A step inside another is
        counted in the inner one only.
        """
        context = self._session.sparkContext
        keys = (_GROUP, _DESCRIPTION, _INTERRUPT)
        previous = {key: context.getLocalProperty(key) for key in keys}
        group = f"{self._prefix}-{next(self._numbers)}"
        context.setJobGroup(group, f"ecommerce-lakehouse: {entity} {step}")
        began = time.perf_counter()
        try:
            yield
        finally:
            jobs = len(context.statusTracker().getJobIdsForGroup(group))
            for key, value in previous.items():
                context.setLocalProperty(key, value)  # type: ignore[arg-type]
            with self._lock:
                self._counts[entity][step] += jobs
                if step == "read":
                    self._files[entity] += 1
            LOGGER.debug(
                "spark jobs: %s %s=%d in %.1f s", entity, step, jobs, time.perf_counter() - began
            )

    def report(
        self,
        entity: str,
        steps: tuple[str, ...] | None = None,
        *,
        quiet: bool = False,
        detail: str = "",
    ) -> str:
        """Log and return the line of ``entity``'s counts (``steps``, else all); forget them.

        Logged at INFO, or at DEBUG when ``quiet`` and no job ran.
        """
        with self._lock:
            pending = self._counts.get(entity, {})
            counted = {s: pending.pop(s) for s in (steps or tuple(pending)) if s in pending}
            if not pending:
                self._counts.pop(entity, None)
            files = self._files.pop(entity, 0) if "read" in counted else 0
        ordered = [s for s in STEPS if s in counted] + [s for s in counted if s not in STEPS]
        parts = [
            f"{s}={counted[s]}" + (f" ({files} file{'s' * (files != 1)})" if s == "read" else "")
            for s in ordered
        ]
        total = sum(counted.values())
        if len(parts) > 1:
            parts.append(f"total={total}")
        line = f"spark jobs: {entity} " + ", ".join(parts) + (f" ({detail})" if detail else "")
        LOGGER.log(logging.DEBUG if quiet and not total else logging.INFO, line)
        return line
