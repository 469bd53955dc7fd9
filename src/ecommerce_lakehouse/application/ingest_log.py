"""The one writer of ``ingest_log``, and the MERGE commit keys that let a run finish it.

Ingest logs the files it settles; reconciliation logs the files an interrupted run committed
but did not log (docs/adr/0002-audit-write-order.md). Both append through
:func:`append_ingest_log`, and both agree on the commit metadata keys below, so neither
module imports the other for them. Every audit-table write of a run carries its
:func:`run_metadata`, so a table's history names the run that wrote each version.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ecommerce_lakehouse.application.tables import audit_ref
from ecommerce_lakehouse.domain.audit import INGEST_LOG, IngestLogEntry
from ecommerce_lakehouse.ports.engine import TableEngine
from ecommerce_lakehouse.ports.storage import ObjectStorage

#: Keys of the Delta commit metadata that let a later run reconcile an interrupted one.
META_RUN_ID = "lakehouse.run_id"
META_ENTITY = "lakehouse.entity"
META_FILES = "lakehouse.files"
#: Which command made an OPTIMIZE commit: ``optimize`` (``lakehouse optimize``) or ``compact``
#: (a run's own compaction, docs/contract.md#maintenance). Reconciliation skips such commits:
#: they carry no ``META_FILES``.
META_COMMAND = "lakehouse.command"


def run_metadata(run_id: str) -> dict[str, str]:
    """The commit metadata of a run's (or a command's) table writes: its run id."""
    return {META_RUN_ID: run_id}


def append_ingest_log(
    engine: TableEngine[Any],
    storage: ObjectStorage,
    entries: Sequence[IngestLogEntry],
    run_id: str | None = None,
) -> None:
    """Append ``entries`` to the ``ingest_log`` audit table, in one write.

    Args:
        engine: the engine that writes the lake's tables.
        storage: the lake's storage, which locates the table.
        entries: the rows, in the order they are logged; nothing is written when empty.
        run_id: the run (or command) that writes them, stored with the commit (a
            reconciled entry keeps the id of the run that loaded its file; the commit names
            the run that logged it).
    """
    if entries:
        engine.append_records(
            audit_ref(storage, INGEST_LOG),
            INGEST_LOG,
            [e.as_record() for e in entries],
            metadata=None if run_id is None else run_metadata(run_id),
        )
