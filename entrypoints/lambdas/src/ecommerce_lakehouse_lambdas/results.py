"""Reading the Glue job's run result (``_runs/<run id>.json``) back into file outcomes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ecommerce_lakehouse.application.run import DiscoveredFile, FileOutcome
from ecommerce_lakehouse.domain.audit import COUNT_FIELDS, RowCounts
from ecommerce_lakehouse.domain.errors import ConfigurationError
from ecommerce_lakehouse.domain.types import Entity, FileStatus
from ecommerce_lakehouse_lambdas.errors import InvalidRunResult


@dataclass(frozen=True, slots=True, kw_only=True)
class RunFiles:
    """The files of one run as the Glue job reported them.

    Attributes:
        run_id: the run id (the state machine's execution name).
        started_at: when the run started (it dates the archive folders).
        outcomes: one outcome per raw file the run discovered.
    """

    run_id: str
    started_at: datetime
    outcomes: tuple[FileOutcome, ...]

    @classmethod
    def from_result(cls, document: object, *, run_id: str, where: str) -> RunFiles:
        """Rebuild the outcomes of a result document (``RunResult.as_dict()``).

        Args:
            document: the parsed JSON.
            run_id: the run being archived; the document must be its result.
            where: where the document was read from (for error messages).

        Raises:
            InvalidRunResult: the document is not a run result, or is another run's.
        """
        try:
            result = _mapping(document, "the document")
            found = result.get("run_id")
            if found != run_id:
                raise InvalidRunResult(
                    f"{where} is the result of run {found!r}, not of run {run_id!r}"
                )
            started_at = _timestamp(result.get("started_at"), "started_at")
            finished_text = result.get("finished_at")
            finished_at = (
                started_at if finished_text is None else _timestamp(finished_text, "finished_at")
            )
            files = result.get("files")
            if not isinstance(files, list):
                raise ValueError("'files' is not a list")
            outcomes = tuple(
                _outcome(_mapping(item, f"files[{index}]"), started_at, finished_at)
                for index, item in enumerate(files)
            )
        except (ValueError, TypeError, ConfigurationError) as error:
            raise InvalidRunResult(f"invalid run result {where}: {error}") from None
        return cls(run_id=run_id, started_at=started_at, outcomes=outcomes)


def _mapping(value: object, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ValueError(f"{what} is not a JSON object")
    return value


def _timestamp(value: object, name: str) -> datetime:
    if not isinstance(value, str):
        raise ValueError(f"'{name}' is not an ISO timestamp")
    return datetime.fromisoformat(value)


def _text(item: Mapping[str, Any], name: str, *, optional: bool = False) -> str | None:
    value = item.get(name)
    if value in (None, "") and optional:
        return None
    if not isinstance(value, str) or not value:
        raise ValueError(f"file field '{name}' is missing or not text")
    return value


def _outcome(item: Mapping[str, Any], started_at: datetime, finished_at: datetime) -> FileOutcome:
    key = _text(item, "source_path") or ""
    entity = _text(item, "entity", optional=True)
    size = item.get("size_bytes")
    if not isinstance(size, int) or isinstance(size, bool):
        raise ValueError(f"file {key!r}: 'size_bytes' is not an integer")
    counts = {name: item.get(name, 0) for name in COUNT_FIELDS}
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in counts.values()):
        raise ValueError(f"file {key!r}: row counts are not integers")
    status = FileStatus.from_str(_text(item, "status") or "")
    # A file set aside at discovery (waiting, ignored) was never read: it has no checksum.
    unread = status in (FileStatus.WAITING, FileStatus.IGNORED)
    return FileOutcome(
        file=DiscoveredFile(
            key=key,
            entity=Entity.from_str(entity) if entity else None,
            size_bytes=size,
            checksum=_text(item, "checksum", optional=unread) or "",
        ),
        status=status,
        counts=RowCounts(**counts),
        started_at=started_at,
        finished_at=finished_at,
        error=_text(item, "error", optional=True),
        destination=_text(item, "destination", optional=True),
    )
