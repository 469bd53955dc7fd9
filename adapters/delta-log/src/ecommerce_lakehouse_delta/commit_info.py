"""A Delta commit's ``commitInfo``, read the same whichever engine wrote it.

delta-rs stores custom metadata as top-level ``commitInfo`` keys and operation metrics as
snake_case integers; Spark stores one ``userMetadata`` string (the engines fill it with a
JSON object) and camelCase metrics as text. Both Delta engines read history through these
functions, so either reads the commits the other wrote.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

#: Keys of a Delta ``commitInfo`` that are not user metadata (Delta protocol, delta-rs, Spark).
COMMIT_INFO_KEYS = frozenset(
    {
        "version",
        "timestamp",
        "inCommitTimestamp",
        "operation",
        "operationParameters",
        "operationMetrics",
        "readVersion",
        "isolationLevel",
        "isBlindAppend",
        "engineInfo",
        "clientVersion",
        "userId",
        "userName",
        "job",
        "notebook",
        "clusterId",
        "txnId",
        "tags",
        "userMetadata",
    }
)


def user_metadata(commit_info: Mapping[str, Any]) -> dict[str, str]:
    """The custom metadata of a Delta commit, whichever engine wrote it.

    delta-rs stores custom metadata as top-level ``commitInfo`` keys; Spark can only store
    one ``userMetadata`` string, which engines fill with a JSON object of the same keys.
    Both forms are read here, so either engine reads the metadata the other wrote.

    Args:
        commit_info: the ``commitInfo`` action of a commit (or a history entry holding its
            keys).

    Returns:
        Every non-reserved key, with non-text values as JSON, plus the keys of a
        ``userMetadata`` JSON object; a ``userMetadata`` that is not a JSON object is kept
        under ``userMetadata``.
    """
    metadata = {
        key: value if isinstance(value, str) else json.dumps(value)
        for key, value in commit_info.items()
        if key not in COMMIT_INFO_KEYS
    }
    user = commit_info.get("userMetadata")
    if isinstance(user, str):
        try:
            parsed = json.loads(user)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            metadata.update(
                {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in parsed.items()}
            )
        else:
            metadata["userMetadata"] = user
    return metadata


_INTEGER = re.compile(r"-?[0-9]+")
_CAMEL_HUMP = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
#: Spark metric names whose delta-rs counterpart is not their plain snake_case form.
_METRIC_ALIASES: Mapping[str, Mapping[str, str]] = {
    "WRITE": {"numFiles": "num_added_files", "numOutputRows": "num_added_rows"},
    "OPTIMIZE": {"numAddedFiles": "num_files_added", "numRemovedFiles": "num_files_removed"},
}


def operation_metrics(operation: str, metrics: Mapping[str, Any]) -> dict[str, int]:
    """The integer operation metrics of a commit, named as delta-rs names them.

    delta-rs writes snake_case names and integers (``num_target_rows_inserted``); Spark
    writes camelCase names and text (``numTargetRowsInserted``: ``"3"``). Names are
    converted to snake_case, and the few Spark metrics delta-rs calls differently (a
    WRITE's ``numOutputRows`` is delta-rs's ``num_added_rows``) are renamed, so callers
    can read the metrics of a commit whichever engine made it.

    Args:
        operation: the commit's operation (``WRITE``, ``MERGE``, ``OPTIMIZE``, ...).
        metrics: the commit's ``operationMetrics``.

    Returns:
        The integer-valued metrics (text holding an integer counts); others are dropped.
    """
    aliases = _METRIC_ALIASES.get(operation, {})
    result: dict[str, int] = {}
    for key, value in metrics.items():
        if isinstance(value, bool):
            continue
        if isinstance(value, int):
            number = value
        elif isinstance(value, str) and _INTEGER.fullmatch(value):
            number = int(value)
        else:
            continue
        name = aliases.get(key) or _CAMEL_HUMP.sub("_", key).lower()
        result[name] = number
    return result


def append_as_merge_metrics(written: Mapping[str, int]) -> dict[str, int]:
    """A WRITE (append) commit's metrics plus the MERGE names they stand for.

    An engine that appends a batch of new keys instead of MERGEing it reports the rows and
    files added under the MERGE's names too (``num_target_rows_inserted``, nothing updated,
    copied or removed), so callers read one set of names whichever way the rows went.

    Args:
        written: the append's metrics as :func:`operation_metrics` names them.
    """
    metrics = {
        **written,
        "num_target_rows_updated": 0,
        "num_target_rows_copied": 0,
        "num_target_files_removed": 0,
    }
    if "num_added_rows" in written:
        metrics["num_target_rows_inserted"] = written["num_added_rows"]
    if "num_added_files" in written:
        metrics["num_target_files_added"] = written["num_added_files"]
    return metrics
