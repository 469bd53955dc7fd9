"""Day-2 upkeep of a lake's tables: OPTIMIZE compaction and VACUUM, with a record of each.

Both run under the lake lock, like a run, and leave ``_maintenance/<run id>.json``: what was
done to which table, when and by whom (docs/contract.md#maintenance).
"""

from __future__ import annotations

import getpass
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from ecommerce_lakehouse.application.ingest_log import META_COMMAND, META_RUN_ID
from ecommerce_lakehouse.application.run import Clock, new_run_id, utc_now
from ecommerce_lakehouse.application.tables import TABLE_NAMES, naming_the_table, table_ref
from ecommerce_lakehouse.domain.errors import ConfigurationError, describe_error
from ecommerce_lakehouse.ports.engine import TableEngine, TableRef
from ecommerce_lakehouse.ports.platform import Platform
from ecommerce_lakehouse.ports.storage import ObjectStorage

#: The shortest VACUUM retention: Delta's own default check, a week. Readers and writers
#: still on an older version, and time travel, need the files of the versions they read.
MIN_RETAIN_HOURS = 168
#: The longest: a century, within what the engines' time arithmetic holds.
MAX_RETAIN_HOURS = 100 * 365 * 24
#: Where each maintenance command's record goes, relative to the lake root.
MAINTENANCE = "_maintenance"


def maintenance_record_key(run_id: str) -> str:
    """The key of a maintenance command's record, relative to the lake root."""
    return f"{MAINTENANCE}/{run_id}.json"


@dataclass(frozen=True, slots=True, kw_only=True)
class MaintenanceResult:
    """What one ``optimize`` or ``vacuum`` did.

    Attributes:
        run_id: the command's run id (in the OPTIMIZE commits' ``lakehouse.run_id``).
        command: ``optimize`` or ``vacuum``.
        files: files removed (optimize) or deleted (vacuum), by table.
        retain_hours: the retention of a vacuum (None for optimize).
        record_error: why its record could not be written (the work itself is done).
    """

    run_id: str
    command: str
    files: dict[str, int]
    retain_hours: int | None = None
    record_error: str | None = None


class MaintainTables:
    """OPTIMIZE or VACUUM some or all of the lake's tables, one record per command."""

    def __init__(
        self, engine: TableEngine[Any], platform: Platform, clock: Clock = utc_now
    ) -> None:
        self._engine = engine
        self._platform = platform
        self._clock = clock

    def optimize(self, tables: Sequence[str] | None, lock_timeout: float) -> MaintenanceResult:
        """Compact each table's small files (every table with two files or more)."""

        def compact(ref: TableRef, run_id: str) -> int:
            metadata = {META_RUN_ID: run_id, META_COMMAND: "optimize"}
            return self._engine.compact(ref, min_files=2, metadata=metadata)

        return self._maintain("optimize", tables, lock_timeout, compact)

    def vacuum(
        self, tables: Sequence[str] | None, retain_hours: int, lock_timeout: float
    ) -> MaintenanceResult:
        """Delete the files no version of the last ``retain_hours`` hours reads.

        Raises:
            ConfigurationError: ``retain_hours`` is below :data:`MIN_RETAIN_HOURS`.
        """
        if retain_hours < MIN_RETAIN_HOURS:
            raise ConfigurationError(
                f"invalid --retain {retain_hours}: at least {MIN_RETAIN_HOURS} hours (a week), "
                "so that time travel and readers of recent versions keep their files"
            )
        if retain_hours > MAX_RETAIN_HOURS:
            raise ConfigurationError(
                f"invalid --retain {retain_hours}: at most {MAX_RETAIN_HOURS} hours (100 years)"
            )

        def vacuum(ref: TableRef, run_id: str) -> int:
            return self._engine.vacuum(ref, retain_hours=retain_hours)

        return self._maintain("vacuum", tables, lock_timeout, vacuum, retain_hours)

    def _maintain(
        self,
        command: str,
        tables: Sequence[str] | None,
        lock_timeout: float,
        work: Callable[[TableRef, str], int],
        retain_hours: int | None = None,
    ) -> MaintenanceResult:
        # Like a run: under the lake lock, with a run id of its own and a record of it. The
        # tables are resolved first, so an unknown name is refused before the lock is taken.
        names = dict.fromkeys(tables) if tables else TABLE_NAMES
        refs = [table_ref(self._platform.storage, name) for name in names]
        run_id = new_run_id(self._clock())
        with self._platform.lock.acquire(owner=run_id, timeout_seconds=lock_timeout):
            started = self._clock()
            files: dict[str, int] = {}
            for ref in refs:
                with naming_the_table(ref):
                    files[ref.name] = work(ref, run_id)
            result = MaintenanceResult(
                run_id=run_id, command=command, files=files, retain_hours=retain_hours
            )
            try:
                self._record(result, started)
            except Exception as error:  # the tables are done: say it, do not fail on it
                result = replace(result, record_error=describe_error(error))
        return result

    def _record(self, result: MaintenanceResult, started: datetime) -> None:
        record_command(
            self._platform.storage,
            command=result.command,
            run_id=result.run_id,
            engine=self._engine.name,
            started=started,
            finished=self._clock(),
            facts={"retain_hours": result.retain_hours, "files": result.files},
        )


def record_command(
    storage: ObjectStorage,
    *,
    command: str,
    run_id: str,
    engine: str,
    started: datetime,
    finished: datetime,
    facts: Mapping[str, object],
) -> None:
    """Write a maintenance command's record, ``_maintenance/<run id>.json``.

    Args:
        storage: the lake's storage.
        command: the command (``optimize``, ``vacuum``, ``restore``, ``forget``, ...).
        run_id: its run id.
        engine: the engine that did the work.
        started: when it started.
        finished: when it finished.
        facts: what it did, by name (JSON values).
    """
    record = {
        "run_id": run_id,
        "command": command,
        "user": _user(),
        "engine": engine,
        "started_at": started.isoformat(),
        "finished_at": finished.isoformat(),
        **facts,
    }
    data = json.dumps(record, sort_keys=True).encode()
    storage.write_bytes(maintenance_record_key(run_id), data)


def _user() -> str:
    # Who ran the command, as the operating system says; a container may have no name.
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
