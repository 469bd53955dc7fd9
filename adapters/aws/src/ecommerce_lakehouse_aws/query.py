"""SQL over the lake's tables with Amazon Athena (engine v3 reads the Glue tables as Delta)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pyarrow as pa
from botocore.exceptions import BotoCoreError, ClientError

from ecommerce_lakehouse.domain.errors import ConfigurationError, LakehouseError, first_line
from ecommerce_lakehouse.settings import DEFAULT_ATHENA_TIMEOUT_SECONDS
from ecommerce_lakehouse_aws.clients import AwsClient, one_line

_INTEGERS: Mapping[str, pa.DataType] = {
    "tinyint": pa.int8(),
    "smallint": pa.int16(),
    "integer": pa.int32(),
    "int": pa.int32(),
    "bigint": pa.int64(),
}
_FLOATS: Mapping[str, pa.DataType] = {
    "double": pa.float64(),
    "real": pa.float32(),
    "float": pa.float32(),
}
# "2024-03-01 10:00:00.123", optionally followed by a zone ("UTC", "+01:00", "Europe/Paris").
_TIMESTAMP = re.compile(r"(\d{4}-\d\d-\d\d[ T]\d\d:\d\d(?::\d\d)?)(?:\.(\d+))?(?:\s*(\S+))?")


class AthenaQueryService:
    """Runs SQL with Amazon Athena over the tables of one Glue database.

    A query is started in the configured workgroup, polled with exponential backoff until
    it finishes (and cancelled when it takes longer than the timeout), and its result pages
    are converted to one Arrow table typed from Athena's column metadata. A failed query
    raises its ``StateChangeReason`` as one line.

    Athena reads Delta tables natively but cannot time travel them, so ``as_of`` is refused.

    Args:
        client: a boto3 Athena client.
        database: the Glue database holding the lake's tables.
        workgroup: the Athena workgroup; the account's default (``primary``) when None.
        output_location: ``s3://`` location for result files; None when the workgroup sets one.
        timeout_seconds: how long a query may run before it is cancelled.
        first_poll_seconds: the first wait between two status checks; it doubles each time.
        max_poll_seconds: the longest wait between two status checks.
        sleep: waits between status checks (tests pass a fake).
        clock: a monotonic clock in seconds (tests pass a fake).
    """

    def __init__(
        self,
        client: AwsClient,
        *,
        database: str,
        workgroup: str | None = None,
        output_location: str | None = None,
        timeout_seconds: float = DEFAULT_ATHENA_TIMEOUT_SECONDS,
        first_poll_seconds: float = 0.25,
        max_poll_seconds: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._database = database
        self._workgroup = workgroup
        self._output = output_location
        self._timeout = timeout_seconds
        self._first_poll = first_poll_seconds
        self._max_poll = max_poll_seconds
        self._sleep = sleep
        self._clock = clock

    def sql(self, query: str, *, as_of: Mapping[str, int] | None = None) -> pa.Table:
        """Run one query and return its result.

        Args:
            query: Athena (Trino) SQL over the Glue database's tables.
            as_of: must be empty: Athena has no Delta time travel.

        Returns:
            The result as an Arrow table, typed from Athena's column metadata.

        Raises:
            ConfigurationError: ``as_of`` pins a table to a version.
            LakehouseError: Athena refused or failed the query (its reason, on one line),
                it was cancelled, or it ran longer than the timeout.
        """
        if as_of:
            raise ConfigurationError(
                "Athena cannot read Delta tables as of a version (it has no Delta time "
                "travel); drop the version pin or query with the local SQL engine"
            )
        execution_id = self._start(query)
        statement_type = self._wait(execution_id)
        return self._results(execution_id, statement_type)

    def _start(self, query: str) -> str:
        request: dict[str, Any] = {
            "QueryString": query,
            "QueryExecutionContext": {"Database": self._database},
        }
        if self._workgroup:
            request["WorkGroup"] = self._workgroup
        if self._output:
            request["ResultConfiguration"] = {"OutputLocation": self._output}
        try:
            return str(self._client.start_query_execution(**request)["QueryExecutionId"])
        except (ClientError, BotoCoreError) as error:
            raise LakehouseError(f"Athena did not start the query: {one_line(error)}") from None

    def _wait(self, execution_id: str) -> str:
        """Poll until the query finishes; its statement type (``DML``, ``DDL``, ...)."""
        deadline = self._clock() + self._timeout
        delay = self._first_poll
        while True:
            try:
                execution = self._client.get_query_execution(QueryExecutionId=execution_id)[
                    "QueryExecution"
                ]
            except (ClientError, BotoCoreError) as error:
                raise LakehouseError(
                    f"cannot follow Athena query {execution_id}: {one_line(error)}"
                ) from None
            status = execution.get("Status", {})
            state = status.get("State", "")
            if state == "SUCCEEDED":
                return str(execution.get("StatementType", "DML"))
            if state == "FAILED":
                reason = status.get("StateChangeReason") or status.get("AthenaError", {}).get(
                    "ErrorMessage", "no reason given"
                )
                raise LakehouseError(
                    f"Athena query failed: {first_line(str(reason), default='no reason given')}"
                )
            if state == "CANCELLED":
                raise LakehouseError(f"Athena query {execution_id} was cancelled")
            remaining = deadline - self._clock()
            if remaining <= 0:
                self._cancel(execution_id)
                raise LakehouseError(
                    f"Athena query {execution_id} did not finish within {self._timeout:g}s "
                    f"(still {state or 'unknown'}); it was cancelled"
                )
            self._sleep(min(delay, remaining))
            delay = min(delay * 2, self._max_poll)

    def _cancel(self, execution_id: str) -> None:
        # It may have finished meanwhile; the timeout is what gets reported either way.
        with suppress(ClientError, BotoCoreError):
            self._client.stop_query_execution(QueryExecutionId=execution_id)

    def _results(self, execution_id: str, statement_type: str) -> pa.Table:
        columns: list[Mapping[str, Any]] | None = None
        rows: list[list[str | None]] = []
        try:
            pages = self._client.get_paginator("get_query_results").paginate(
                QueryExecutionId=execution_id
            )
            for number, page in enumerate(pages):
                result = page["ResultSet"]
                if columns is None:
                    columns = list(result.get("ResultSetMetadata", {}).get("ColumnInfo", []))
                page_rows = result.get("Rows", [])
                if number == 0 and statement_type == "DML":
                    # Athena repeats the column labels as the first row of a SELECT result.
                    page_rows = page_rows[1:]
                rows.extend([d.get("VarCharValue") for d in r.get("Data", [])] for r in page_rows)
        except (ClientError, BotoCoreError) as error:
            raise LakehouseError(
                f"cannot read the results of Athena query {execution_id}: {one_line(error)}"
            ) from None
        return result_table(columns or [], rows)


def result_table(
    columns: Sequence[Mapping[str, Any]], rows: Sequence[Sequence[str | None]]
) -> pa.Table:
    """An Arrow table from Athena's column metadata and text values (None is NULL).

    Integer, floating-point, decimal, boolean, date and timestamp columns get their Arrow
    types (``timestamp with time zone`` as UTC microseconds); every other type (varchar,
    arrays, maps, rows, JSON, ...) stays text as Athena printed it.

    Raises:
        LakehouseError: a value does not parse as its column's type.
    """
    if not columns:
        return pa.table({})
    arrays = [
        _array(column, [row[i] if i < len(row) else None for row in rows])
        for i, column in enumerate(columns)
    ]
    return pa.Table.from_arrays(arrays, names=[str(c.get("Name", "")) for c in columns])


def _array(column: Mapping[str, Any], texts: list[str | None]) -> pa.Array:
    kind = str(column.get("Type", "varchar")).lower()
    arrow_type, parse = _converter(kind, column)
    values: list[object] = []
    for text in texts:
        if text is None:
            values.append(None)
            continue
        try:
            values.append(parse(text))
        except (ValueError, InvalidOperation, ZoneInfoNotFoundError):
            raise LakehouseError(
                f"Athena returned {text!r} for column '{column.get('Name')}' of type {kind}, "
                "which does not parse as that type"
            ) from None
    return pa.array(values, type=arrow_type)


def _converter(kind: str, column: Mapping[str, Any]) -> tuple[pa.DataType, Callable[[str], object]]:
    if kind in _INTEGERS:
        return _INTEGERS[kind], int
    if kind in _FLOATS:
        return _FLOATS[kind], float  # float() reads Athena's NaN, Infinity and -Infinity
    if kind == "boolean":
        return pa.bool_(), _boolean
    if kind == "decimal":
        precision, scale = int(column.get("Precision") or 38), int(column.get("Scale") or 0)
        return pa.decimal128(precision, scale), Decimal
    if kind == "date":
        return pa.date32(), date.fromisoformat
    if kind == "timestamp with time zone":
        return pa.timestamp("us", tz="UTC"), _utc_timestamp
    if kind == "timestamp":
        return pa.timestamp("us"), _naive_timestamp
    return pa.string(), str


def _boolean(text: str) -> bool:
    if text.lower() not in ("true", "false"):
        raise ValueError(text)
    return text.lower() == "true"


def _parts(text: str) -> tuple[datetime, str | None]:
    match = _TIMESTAMP.fullmatch(text.strip())
    if match is None:
        raise ValueError(text)
    moment, fraction, zone = match.groups()
    # Athena prints up to nanoseconds; Arrow and Python hold microseconds.
    micros = int((fraction or "0")[:6].ljust(6, "0"))
    return datetime.fromisoformat(moment.replace(" ", "T")).replace(microsecond=micros), zone


def _naive_timestamp(text: str) -> datetime:
    moment, zone = _parts(text)
    if zone is not None:
        raise ValueError(text)
    return moment


def _utc_timestamp(text: str) -> datetime:
    moment, zone = _parts(text)
    if zone is None or zone in ("UTC", "Z"):
        return moment.replace(tzinfo=UTC)
    if zone[0] in "+-":
        return datetime.fromisoformat(f"{moment.isoformat()}{zone}").astimezone(UTC)
    return moment.replace(tzinfo=ZoneInfo(zone)).astimezone(UTC)
