"""The archive step of the state machine: move exactly the files a run finished with.

The state machine invokes the function after the Glue job with
``{"lake_root": "s3://bucket[/prefix]", "run_id": <execution name>, "result_key":
"_runs/<run id>.json"}``. The function reads the job's result from the lake and runs the
core's :class:`~ecommerce_lakehouse.application.archive.ArchiveFiles` on its outcomes. Each
file goes to the destination the job planned and logged in ``ingest_log``: files the run
committed (``loaded``) or found already loaded (``skipped``) to
``archive/<entity>/<YYYY>/<MM>/<DD>/<run id>/`` (a skipped file onto the copy of the run
that loaded it, when that run logged one), files it rejected whole to ``rejected/<run id>/``
with an ``.error.json`` report. A destination outside ``archive/`` and ``rejected/`` is
refused. Files that arrived after the run's
discovery are not in its result, so they stay in ``raw-data/`` for the next run; so do
``failed`` files and files uploaded again since the run read them (their checksum changed).

Moves are copy-verify-delete (same size and SHA-256 at the destination before the source is
deleted), so a retried invocation finishes the job: files already moved are reported as
moved, nothing is moved twice.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ecommerce_lakehouse.application.archive import ArchiveFiles
from ecommerce_lakehouse.application.run import RunResult
from ecommerce_lakehouse.domain.errors import PathOutsideLake
from ecommerce_lakehouse.domain.zones import ARCHIVE, REJECTED, ZonePaths, clean_key
from ecommerce_lakehouse.ports.storage import ObjectStorage
from ecommerce_lakehouse_aws.storage import S3Location, S3ObjectStorage
from ecommerce_lakehouse_lambdas.clients import aws_client
from ecommerce_lakehouse_lambdas.errors import InvalidEvent, InvalidRunResult, RunResultMissing
from ecommerce_lakehouse_lambdas.settings import ArchiveSettings

LOGGER = logging.getLogger(__name__)
LOGGER.setLevel(logging.INFO)


@dataclass(frozen=True, slots=True, kw_only=True)
class ArchiveRequest:
    """What the state machine asks the function to archive.

    Attributes:
        lake_root: ``s3://bucket[/prefix]``.
        run_id: the run (the execution name).
        result_key: the run's result JSON, relative to the lake root.
    """

    lake_root: str
    run_id: str
    result_key: str

    @classmethod
    def from_event(cls, event: object) -> ArchiveRequest:
        """Read the invocation's payload.

        Raises:
            InvalidEvent: a field is missing or not text, or the result key leaves the lake.
        """
        if not isinstance(event, Mapping):
            raise InvalidEvent("the archive function expects {lake_root, run_id, result_key}")
        values: dict[str, str] = {}
        for name in ("lake_root", "run_id", "result_key"):
            value = event.get(name)
            if not isinstance(value, str) or not value.strip():
                raise InvalidEvent(f"the archive event has no {name!r}")
            values[name] = value.strip()
        try:
            clean_key(values["result_key"])
        except PathOutsideLake as error:
            raise InvalidEvent(f"invalid result_key: {error}") from None
        return cls(**values)


def read_run_result(document: object, *, run_id: str, where: str) -> RunResult:
    """The Glue job's result document, read with the core's run contract.

    Args:
        document: the parsed JSON.
        run_id: the run being archived; the document must be its result.
        where: where the document was read from (for error messages).

    Raises:
        InvalidRunResult: the document is not a run result, or is another run's.
    """
    try:
        result = RunResult.from_dict(document)
    except ValueError as error:
        raise InvalidRunResult(f"invalid run result {where}: {error}") from None
    if result.run_id != run_id:
        raise InvalidRunResult(
            f"{where} is the result of run {result.run_id!r}, not of run {run_id!r}"
        )
    return result


def archive_run(storage: ObjectStorage, request: ArchiveRequest) -> dict[str, Any]:
    """Archive the files of one run in the lake ``storage`` holds.

    Returns:
        ``{"run_id", "lake_root", "result_key", "archived", "rejected", "left", "files"}``:
        how many files went to ``archive/`` and ``rejected/`` and how many stayed, and per
        file its source path, status and destination (None when it stayed).

    Raises:
        RunResultMissing: there is no object at the result key.
        InvalidRunResult: the result is not JSON, not a run result, or another run's.
        LakehouseError: a move failed (e.g. a copy could not be verified); files moved
            before stay moved and a retry finishes the others.
    """
    where = f"{request.lake_root.rstrip('/')}/{request.result_key}"
    try:
        text = storage.read_bytes(request.result_key)
    except FileNotFoundError:
        raise RunResultMissing(
            f"no result of run {request.run_id} at {where}: the Glue job did not write one"
        ) from None
    try:
        document = json.loads(text)
    except ValueError as error:
        raise InvalidRunResult(f"the run result at {where} is not JSON: {error}") from None
    run = read_run_result(document, run_id=request.run_id, where=where)
    paths = ZonePaths(run_id=run.run_id, started_at=run.started_at)
    outcomes = ArchiveFiles(storage, progress=_log)(run.files, paths)
    files = [
        {
            "source_path": outcome.file.key,
            "status": outcome.status.value,
            "destination": outcome.destination,
        }
        for outcome in outcomes
    ]
    destinations = [f["destination"] or "" for f in files]
    summary: dict[str, Any] = {
        "run_id": run.run_id,
        "lake_root": request.lake_root,
        "result_key": request.result_key,
        "archived": sum(1 for d in destinations if d.startswith(f"{ARCHIVE}/")),
        "rejected": sum(1 for d in destinations if d.startswith(f"{REJECTED}/")),
        "left": sum(1 for d in destinations if not d),
        "files": files,
    }
    LOGGER.info(
        "run %s: %d archived, %d rejected, %d left in raw-data",
        run.run_id,
        summary["archived"],
        summary["rejected"],
        summary["left"],
    )
    return summary


def _log(step: str, message: str) -> None:
    LOGGER.info("%s: %s", step, message)


def handler(event: dict[str, Any], context: object) -> dict[str, Any]:
    """Lambda entry point of the archive step (``ecommerce_lakehouse_lambdas.archive.handler``).

    Args:
        event: ``{"lake_root", "run_id", "result_key"}`` from the state machine.
        context: the Lambda context (unused).

    Returns:
        The summary of :func:`archive_run` (JSON-ready; the state machine keeps it).

    Raises:
        InvalidEvent: the payload is incomplete.
        ConfigurationError: the lake root is not ``s3://bucket[/prefix]`` or no region is set.
        RunResultMissing: the Glue job wrote no result for the run.
        InvalidRunResult: the result cannot be read.
        LakehouseError: S3 failed or a moved copy could not be verified.
    """
    request = ArchiveRequest.from_event(event)
    location = S3Location.parse(request.lake_root)
    settings = ArchiveSettings.from_env(os.environ)
    client = aws_client("s3", settings.region, settings.endpoint_url)
    # Only moves happen here: delta-rs' storage options are not needed.
    return archive_run(S3ObjectStorage(client, location, {}), request)
