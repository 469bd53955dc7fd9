"""AthenaQueryService: the client flow against moto, and what moto cannot emulate on a stub.

Moto runs no SQL: it answers each new query with the next result queued through
``/moto-api/static/athena/query-results`` (empty when none is queued), lets the state
manager hold a query QUEUED or RUNNING, and never fails a query nor splits results into
pages. Those two flows (a FAILED query's reason, paginated results) are driven through
botocore's Stubber on a real Athena client instead. Real SQL semantics are the query
contract's, run on DuckDB.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest
from botocore.stub import Stubber

from ecommerce_lakehouse.application.lake import open_lake
from ecommerce_lakehouse.domain.errors import ConfigurationError, LakehouseError
from ecommerce_lakehouse_aws import AthenaQueryService
from ecommerce_lakehouse_aws.clients import make_client
from ecommerce_lakehouse_aws.settings import AwsSettings
from tests.aws_support import REGION, MotoServer, athena_column, athena_row

pytestmark = pytest.mark.aws


@pytest.fixture
def athena(moto: MotoServer) -> AthenaQueryService:
    platform = open_lake(
        moto.new_lake(),
        options=moto.options(query="athena", athena_output=f"s3://{moto.new_bucket()}/athena/"),
    ).platform
    assert isinstance(platform.query, AthenaQueryService)
    return platform.query


@contextmanager
def queries_held(server: MotoServer, polls: int) -> Iterator[None]:
    """Move every Athena query to its next state only at every ``polls``-th status poll."""
    transition = {"progression": "manual", "times": polls}
    body = {"model_name": "athena::execution", "transition": transition}
    server.post("/moto-api/state-manager/set-transition", json.dumps(body).encode())
    try:
        yield
    finally:
        body = {"model_name": "athena::execution"}
        server.post("/moto-api/state-manager/unset-transition", json.dumps(body).encode())


def athena_service(server: MotoServer, **tuning: Any) -> AthenaQueryService:
    """An AthenaQueryService on the emulator with explicit timing parameters."""
    settings = AwsSettings.read(
        server.options(athena_output=f"s3://{server.new_bucket()}/athena/"), {}
    )
    return AthenaQueryService(
        make_client("athena", settings),
        database=settings.glue_database,
        output_location=settings.athena_output,
        **tuning,
    )


def test_a_result_is_typed_from_athenas_column_metadata(
    moto: MotoServer,
    athena: AthenaQueryService,
) -> None:
    moto.queue_athena_result(
        [
            athena_column("n", "bigint"),
            athena_column("small", "integer"),
            athena_column("total", "double"),
            athena_column("price", "decimal", Precision=10, Scale=2),
            athena_column("ok", "boolean"),
            athena_column("day", "date"),
            athena_column("at", "timestamp with time zone"),
            athena_column("naive", "timestamp"),
            athena_column("name", "varchar"),
            athena_column("tags", "array"),
        ],
        [
            athena_row(
                "3",
                "-7",
                "12.5",
                "9.99",
                "true",
                "2024-03-01",
                "2024-03-01 23:30:00.123 UTC",
                "2024-03-01 10:00:00.000",
                "x",
                "[a, b]",
            ),
            athena_row(
                None,
                None,
                "NaN",
                None,
                "false",
                None,
                "2024-03-01 23:30:00.000 +01:00",
                None,
                "",
                None,
            ),
        ],
    )

    result = athena.sql("SELECT ...")

    assert result.column_names == [
        "n", "small", "total", "price", "ok", "day", "at", "naive", "name", "tags"
    ]  # fmt: skip
    assert result.schema.field("n").type == pa.int64()
    assert result.schema.field("small").type == pa.int32()
    assert result.schema.field("at").type == pa.timestamp("us", tz="UTC")
    first, second = result.to_pylist()
    assert first == {
        "n": 3,
        "small": -7,
        "total": 12.5,
        "price": Decimal("9.99"),
        "ok": True,
        "day": date(2024, 3, 1),
        "at": datetime(2024, 3, 1, 23, 30, 0, 123000, tzinfo=UTC),
        "naive": datetime(2024, 3, 1, 10, 0),
        "name": "x",
        "tags": "[a, b]",
    }
    assert second["n"] is None and second["name"] == ""  # NULL and empty text stay apart
    assert second["total"] != second["total"]  # NaN
    assert second["at"] == datetime(2024, 3, 1, 22, 30, tzinfo=UTC)


def test_a_validation_check_reads_one_integer(
    moto: MotoServer,
    athena: AthenaQueryService,
) -> None:
    moto.queue_athena_result([athena_column("n", "bigint")], [athena_row("0")])

    result = athena.sql("SELECT COUNT(*) AS n FROM orders WHERE order_id IS NULL")

    assert result.to_pylist() == [{"n": 0}]


def test_a_query_without_result_rows_is_an_empty_table(athena: AthenaQueryService) -> None:
    # Nothing queued: moto answers with no columns and no rows (like a DDL statement).
    assert athena.sql("CREATE EXTERNAL TABLE x LOCATION 's3://b/x'").num_rows == 0


def test_status_is_polled_with_exponential_backoff(moto: MotoServer) -> None:
    waits: list[float] = []
    athena = athena_service(moto, first_poll_seconds=0.1, max_poll_seconds=0.3, sleep=waits.append)
    moto.queue_athena_result([athena_column("one", "integer")], [athena_row("1")])

    with queries_held(moto, polls=2):
        assert athena.sql("SELECT 1 AS one").to_pylist() == [{"one": 1}]
    # Moto moves the query on at every second poll: QUEUED, RUNNING, RUNNING, SUCCEEDED.
    assert waits == [0.1, 0.2, 0.3]


def test_a_query_running_past_the_timeout_is_cancelled(moto: MotoServer) -> None:
    athena = athena_service(moto, timeout_seconds=0.3, first_poll_seconds=0.05)

    with (
        queries_held(moto, polls=10_000),
        pytest.raises(
            LakehouseError, match=r"did not finish within 0\.3s \(still QUEUED\)"
        ) as raised,
    ):
        athena.sql("SELECT 1")

    execution_id = str(raised.value).split()[2]
    client = moto.client("athena")
    state = client.get_query_execution(QueryExecutionId=execution_id)["QueryExecution"]["Status"]
    assert state["State"] == "CANCELLED"


def test_an_unknown_workgroup_is_refused_in_one_line(moto: MotoServer) -> None:
    platform = open_lake(
        moto.new_lake(), options=moto.options(query="athena", athena_workgroup="no_such_workgroup")
    ).platform

    with pytest.raises(LakehouseError, match="Athena did not start the query: ") as raised:
        platform.query.sql("SELECT 1")

    assert "WorkGroup does not exist" in str(raised.value)
    assert "\n" not in str(raised.value)


def test_time_travel_is_refused(athena: AthenaQueryService) -> None:
    with pytest.raises(ConfigurationError, match="Athena cannot read Delta tables as of"):
        athena.sql("SELECT * FROM orders", as_of={"orders": 1})


# ------------------------------------------------- flows moto cannot emulate: a stubbed client
def stubbed() -> tuple[AthenaQueryService, Stubber]:
    settings = AwsSettings(region=REGION, glue_database="shop", athena_workgroup="lakehouse")
    client = make_client("athena", settings)
    service = AthenaQueryService(
        client, database="shop", workgroup="lakehouse", sleep=lambda _: None
    )
    stub = Stubber(client)
    stub.add_response(
        "start_query_execution",
        {"QueryExecutionId": "q-1"},
        {
            "QueryString": "SELECT order_id FROM orders",
            "QueryExecutionContext": {"Database": "shop"},
            "WorkGroup": "lakehouse",
        },
    )
    return service, stub


def execution(state: str, **status: Any) -> dict[str, Any]:
    return {
        "QueryExecution": {
            "QueryExecutionId": "q-1",
            "StatementType": "DML",
            "Status": {"State": state, **status},
        }
    }


def test_a_failed_query_raises_its_reason_in_one_line() -> None:
    service, stub = stubbed()
    stub.add_response("get_query_execution", execution("RUNNING"), {"QueryExecutionId": "q-1"})
    reason = "COLUMN_NOT_FOUND: line 1:8: Column 'order_idd' cannot be resolved\nmore detail"
    stub.add_response(
        "get_query_execution",
        execution("FAILED", StateChangeReason=reason),
        {"QueryExecutionId": "q-1"},
    )

    with stub, pytest.raises(LakehouseError) as raised:
        service.sql("SELECT order_id FROM orders")

    assert str(raised.value) == (
        "Athena query failed: COLUMN_NOT_FOUND: line 1:8: Column 'order_idd' cannot be resolved"
    )
    stub.assert_no_pending_responses()


def test_results_are_read_page_by_page() -> None:
    service, stub = stubbed()
    stub.add_response("get_query_execution", execution("SUCCEEDED"), {"QueryExecutionId": "q-1"})
    info = {"ColumnInfo": [{"Name": "order_id", "Type": "varchar"}]}
    stub.add_response(
        "get_query_results",
        {
            "ResultSet": {
                "Rows": [athena_row("order_id"), athena_row("o1"), athena_row("o2")],
                "ResultSetMetadata": info,
            },
            "NextToken": "page-2",
        },
        {"QueryExecutionId": "q-1"},
    )
    stub.add_response(
        "get_query_results",
        # Only the first page starts with the header row; "order_id" here is a value.
        {
            "ResultSet": {
                "Rows": [athena_row("order_id"), athena_row("o3")],
                "ResultSetMetadata": info,
            }
        },
        {"QueryExecutionId": "q-1", "NextToken": "page-2"},
    )

    with stub:
        result = service.sql("SELECT order_id FROM orders")

    assert result.column("order_id").to_pylist() == ["o1", "o2", "order_id", "o3"]
    stub.assert_no_pending_responses()
