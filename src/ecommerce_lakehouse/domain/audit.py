"""Audit tables and the row accounting identity (docs/contract.md#row-accounting).

Column names here are part of the product's contract (docs/contract.md#audit-tables).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from datetime import datetime

from ecommerce_lakehouse.domain.errors import IntegrityError
from ecommerce_lakehouse.domain.types import Column, ColumnType, FileStatus


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditTable:
    """An append-only audit table under ``lakehouse-dwh/_audit/``.

    Attributes:
        name: the table name.
        columns: its columns; new ones are only ever appended (nullable), and engines add
            those an existing table lacks before writing to it.
        unique_key: when set, an append skips rows whose key is already stored, so a batch
            written again after a crash adds nothing (rows whose key holds a null always
            go in).
    """

    name: str
    columns: tuple[Column, ...]
    unique_key: tuple[str, ...] = ()

    @property
    def column_names(self) -> tuple[str, ...]:
        """Column names in table order."""
        return tuple(c.name for c in self.columns)


def _c(name: str, type_: ColumnType = ColumnType.STRING) -> Column:
    return Column(name=name, type=type_)


INGEST_LOG = AuditTable(
    name="ingest_log",
    columns=(
        _c("run_id"),
        _c("entity"),
        _c("source_path"),
        _c("size_bytes", ColumnType.BIGINT),
        _c("checksum"),
        _c("status"),
        _c("rows_read", ColumnType.BIGINT),
        _c("inserted", ColumnType.BIGINT),
        _c("updated", ColumnType.BIGINT),
        _c("unchanged", ColumnType.BIGINT),
        _c("duplicates_in_batch", ColumnType.BIGINT),
        _c("quarantined", ColumnType.BIGINT),
        _c("started_at", ColumnType.TIMESTAMP),
        _c("finished_at", ColumnType.TIMESTAMP),
        _c("error"),
        # Appended by the contract: where the run moves the file (archive or rejected key).
        _c("destination"),
    ),
)

QUARANTINE = AuditTable(
    name="quarantine",
    columns=(
        _c("run_id"),
        _c("entity"),
        _c("source_file"),
        _c("line_number", ColumnType.BIGINT),
        _c("rule"),
        _c("column_name"),
        _c("reason"),
        _c("raw_record"),
        _c("quarantined_at", ColumnType.TIMESTAMP),
        _c("source_checksum"),
    ),
    # Exactly once per (file content, line) whatever crashes when (ADR 0002).
    unique_key=("source_checksum", "line_number"),
)

VALIDATION_RESULTS = AuditTable(
    name="validation_results",
    columns=(
        _c("run_id"),
        _c("table_name"),
        _c("check_name"),
        _c("severity"),
        _c("passed", ColumnType.BOOLEAN),
        _c("observed", ColumnType.BIGINT),
        _c("expected", ColumnType.BIGINT),
        _c("sample"),
        _c("checked_at", ColumnType.TIMESTAMP),
    ),
)

AUDIT_TABLES: tuple[AuditTable, ...] = (INGEST_LOG, QUARANTINE, VALIDATION_RESULTS)


@dataclass(frozen=True, slots=True, kw_only=True)
class RowCounts:
    """Per-file row accounting (docs/contract.md#row-accounting).

    ``rows_read = inserted + updated + unchanged + duplicates_in_batch + quarantined``.
    """

    rows_read: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    duplicates_in_batch: int = 0
    quarantined: int = 0

    def __post_init__(self) -> None:
        for name in COUNT_FIELDS:
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")

    @property
    def accounted(self) -> int:
        """Rows accounted for by an outcome."""
        return (
            self.inserted
            + self.updated
            + self.unchanged
            + self.duplicates_in_batch
            + self.quarantined
        )

    def verify(self, source: str) -> RowCounts:
        """Raise :class:`IntegrityError` when the accounting identity does not hold."""
        if self.accounted != self.rows_read:
            raise IntegrityError(
                f"row accounting broken for {source}: read {self.rows_read}, "
                f"accounted {self.accounted} ({self})"
            )
        return self


#: The accounting columns, in ``ingest_log`` order.
COUNT_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(RowCounts))


@dataclass(frozen=True, slots=True, kw_only=True)
class IngestLogEntry:
    """One row of ``ingest_log``: one raw file in one run.

    A ``rolled_back`` row is a reversal entry: its ``counts`` are those of the load it undoes
    and are stored negated, so the ledger's sums stay equal to the table's rows.
    """

    run_id: str
    entity: str
    source_path: str
    size_bytes: int
    checksum: str
    status: FileStatus
    counts: RowCounts
    started_at: datetime
    finished_at: datetime
    error: str | None = None
    destination: str | None = None

    def as_record(self) -> dict[str, object]:
        """The row as a mapping of ``INGEST_LOG`` column names to values."""
        sign = -1 if self.status is FileStatus.ROLLED_BACK else 1
        return {
            "run_id": self.run_id,
            "entity": self.entity,
            "source_path": self.source_path,
            "size_bytes": self.size_bytes,
            "checksum": self.checksum,
            "status": self.status.value,
            **{name: sign * count for name, count in asdict(self.counts).items()},
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "error": self.error,
            "destination": self.destination,
        }
