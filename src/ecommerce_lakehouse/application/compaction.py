"""A run's own compaction: the partitions its MERGEs touched, once they hold many files.

Every MERGE adds a file or so to each partition it touches; left alone, a daily run makes a
curated table read more, smaller files run after run. After the MERGEs, the run compacts the
partitions it touched that hold ``RunOptions.compact_min_files`` data files or more, and
only those, so that it never rewrites the rest of the table (docs/contract.md#maintenance).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ecommerce_lakehouse.application.ingest_log import META_COMMAND, META_RUN_ID
from ecommerce_lakehouse.application.tables import table_ref
from ecommerce_lakehouse.ports.engine import TableEngine
from ecommerce_lakehouse.ports.storage import ObjectStorage

#: ``lakehouse.command`` of a run's compaction commits.
COMPACT_COMMAND = "compact"


def compaction_metadata(run_id: str) -> dict[str, str]:
    """The commit metadata of a run's compaction: its run id and ``compact``."""
    return {META_RUN_ID: run_id, META_COMMAND: COMPACT_COMMAND}


class CompactTouchedPartitions:
    """Compact the crowded partitions a run's MERGEs touched, one OPTIMIZE commit per table.

    The commit keeps every row and every version (Delta OPTIMIZE: ``dataChange`` false),
    and carries the run's id and ``lakehouse.command: compact``. Reconciliation skips it
    (it lists no files) and scoped validation reads it as a commit that keeps the rows.
    """

    def __init__(self, engine: TableEngine[Any], storage: ObjectStorage) -> None:
        self._engine = engine
        self._storage = storage

    def __call__(
        self, touched: Mapping[str, Sequence[str | None]], min_files: int, run_id: str
    ) -> dict[str, int]:
        """Compact each table's touched partitions that hold ``min_files`` files or more.

        Args:
            touched: by curated table name, the partition values the run's MERGE touched.
            min_files: the policy's threshold; 0 compacts nothing.
            run_id: the run the commits are stamped with.

        Returns:
            The files removed, by table, for the tables that were compacted.
        """
        if min_files == 0:
            return {}
        metadata = compaction_metadata(run_id)
        removed = {
            name: self._engine.compact(
                table_ref(self._storage, name),
                min_files=min_files,
                metadata=metadata,
                partitions=tuple(partitions),
            )
            for name, partitions in touched.items()
            if partitions
        }
        return {name: count for name, count in removed.items() if count}
