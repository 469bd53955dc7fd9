"""Which loads a version of a curated table holds, as its Delta history tells.

Every MERGE or first write of a run names its files in its commit (``lakehouse.files``), and
a restore made by ``lakehouse restore`` names the version it returned to
(``lakehouse.restored_version``); a load whose rows changed nothing made no commit and
belongs to the version that was the latest when it was logged.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from ecommerce_lakehouse.application.ingest_log import META_ENTITY, META_FILES, META_RUN_ID
from ecommerce_lakehouse.domain.schemas import TableSchema
from ecommerce_lakehouse.ports.engine import CommitRecord

#: Commit-metadata key of a restore made here: the version the table returned to.
META_RESTORED_VERSION = "lakehouse.restored_version"


def utc(value: object) -> datetime | None:
    """A time as an aware UTC ``datetime`` (None when it is not a time)."""
    # Ledger times come back naive (DuckDB), aware, or as ISO text (some query services).
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True, kw_only=True)
class Lineage:
    """What one version of a table holds, as its Delta history tells.

    Attributes:
        loads: the loads (run id, file key) whose commits the version is built of.
        windows: the spans of time [from, until) in which the version's ancestors were the
            latest version (until None: still is). A load that made no commit (its rows
            changed nothing) belongs to the version it was logged in.
        complete: whether the walk reached the first commit the history has; False when it
            stopped at a restore made by another tool.
    """

    loads: frozenset[tuple[str, str]]
    windows: tuple[tuple[datetime, datetime | None], ...]
    complete: bool

    def holds(self, logged_at: datetime) -> bool:
        """Whether a load that made no commit, logged at ``logged_at``, is held."""
        return any(
            start <= logged_at and (until is None or logged_at < until)
            for start, until in self.windows
        )


def commit_loads(schema: TableSchema, commit: CommitRecord) -> set[tuple[str, str]]:
    """The loads (run id, file key) a commit of a run names; none for any other commit."""
    meta = commit.metadata
    run_id = meta.get(META_RUN_ID)
    if not run_id or meta.get(META_ENTITY) != schema.name or META_FILES not in meta:
        return set()
    return {(run_id, str(f["key"])) for f in json.loads(meta[META_FILES])}


def lineage(schema: TableSchema, history: Sequence[CommitRecord], version: int) -> Lineage:
    """The loads and time spans that make up ``version`` of ``schema``'s table.

    Walks back from ``version``: a commit of a run adds its files, a restore made here
    continues from the version it returned to. The walk stops where the history does (a
    cleaned-up log) or at a restore made by another tool.
    """
    commits = {commit.version: commit for commit in history}
    loads: set[tuple[str, str]] = set()
    windows: list[tuple[datetime, datetime | None]] = []
    seen: set[int] = set()
    complete = True
    while version in commits and version not in seen:
        seen.add(version)
        commit = commits[version]
        start = utc(commit.timestamp)
        if start is not None:
            following = commits.get(version + 1)
            windows.append((start, None if following is None else utc(following.timestamp)))
        meta = commit.metadata
        if META_RESTORED_VERSION in meta:
            version = int(meta[META_RESTORED_VERSION])
            continue
        if commit.operation == "RESTORE":
            complete = False
            break
        loads.update(commit_loads(schema, commit))
        version -= 1
    return Lineage(loads=frozenset(loads), windows=tuple(windows), complete=complete)
