"""query trino: its settings, its selection, and what it refuses before the cluster sees it.

No cluster here: ``http://127.0.0.1:<closed port>`` is a Trino that cannot be reached, so a
statement refused as not read-only was refused before any request; the contract suite
(tests/contract, ``-m trino``) runs the service against Trino 476.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pyarrow as pa
import pytest

from ecommerce_lakehouse.application.lake import open_lake
from ecommerce_lakehouse.domain.errors import ConfigurationError, LakehouseError
from ecommerce_lakehouse.settings import LakeSettings
from ecommerce_lakehouse_trino import TrinoQueryService, TrinoSettings
from ecommerce_lakehouse_trino.query import result_table


@pytest.fixture
def closed_url() -> str:
    """The URL of a port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def _service(tmp_path: Path, url: str, **options: str) -> TrinoQueryService:
    lake = open_lake(
        str(tmp_path / "lake"),
        options={"query": "trino", "trino_url": url, "trino_schema": "lake", **options},
    )
    assert isinstance(lake.platform.query, TrinoQueryService)
    return lake.platform.query


def test_the_schema_is_the_glue_database_unless_given() -> None:
    url = "https://trino.example.com"
    glue = TrinoSettings.of(LakeSettings(trino_url=url, glue_database="shop"))
    own = TrinoSettings.of(LakeSettings(trino_url=url, glue_database="shop", trino_schema="s"))

    assert (glue.schema, own.schema) == ("shop", "s")
    assert (glue.catalog, glue.host, glue.port, glue.scheme) == (
        "delta",
        "trino.example.com",
        443,
        "https",
    )


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (LakeSettings(trino_schema="s"), "set LAKEHOUSE_TRINO_URL"),
        (LakeSettings(trino_url="http://h:8080"), "set LAKEHOUSE_TRINO_SCHEMA"),
        (LakeSettings(trino_url="ftp://h", trino_schema="s"), "expected http"),
        (LakeSettings(trino_url="http://h:80/x", trino_schema="s"), "no path"),
        (LakeSettings(trino_url="http://h:port", trino_schema="s"), "port is not a number"),
        (
            LakeSettings(trino_url="http://h", trino_schema="s", trino_password="hunter2"),
            "only over https",
        ),
        (
            LakeSettings(trino_url="https://me:hunter2@h", trino_schema="s"),
            "must not hold a user or password",
        ),
    ],
)
def test_settings_the_client_cannot_take_are_one_line_errors(
    settings: LakeSettings, message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message) as raised:
        TrinoSettings.of(settings)

    assert "hunter2" not in str(raised.value)
    assert "\n" not in str(raised.value)


def test_the_password_stays_out_of_the_settings_repr() -> None:
    settings = TrinoSettings.of(
        LakeSettings(trino_url="https://h", trino_schema="s", trino_password="hunter2")
    )

    assert "hunter2" not in repr(settings)


def test_query_trino_without_a_url_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="LAKEHOUSE_TRINO_URL"):
        open_lake(str(tmp_path / "lake"), options={"query": "trino", "trino_schema": "s"})


def test_an_unreachable_cluster_is_named_in_one_line(tmp_path: Path, closed_url: str) -> None:
    service = _service(tmp_path, closed_url)

    with pytest.raises(LakehouseError, match=f"cannot reach Trino at {closed_url}") as raised:
        service.sql("SELECT 1")

    assert "\n" not in str(raised.value)
    assert not isinstance(raised.value, ConfigurationError)


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO orders SELECT * FROM orders",
        "CALL delta.system.vacuum('lake', 'orders', '0s')",
        "ALTER TABLE orders EXECUTE optimize",
        "SET SESSION query_max_run_time = '1d'",
        "EXPLAIN ANALYZE DELETE FROM orders",
        "SELECT 1; DROP TABLE orders",
    ],
)
def test_anything_but_one_query_is_refused_before_the_cluster_is_asked(
    tmp_path: Path, closed_url: str, sql: str
) -> None:
    service = _service(tmp_path, closed_url)

    with pytest.raises(LakehouseError) as raised:
        service.sql(sql)

    message = str(raised.value)
    assert "read-only" in message or "one statement at a time" in message
    assert "cannot reach" not in message


def test_a_query_sqlglot_cannot_parse_is_a_syntax_error(tmp_path: Path, closed_url: str) -> None:
    with pytest.raises(LakehouseError, match=r"^syntax error: line 1:"):
        _service(tmp_path, closed_url).sql("SELEC 1")


def test_trino_types_become_arrow_types() -> None:
    from datetime import UTC, date, datetime, timedelta, timezone
    from decimal import Decimal

    paris = timezone(timedelta(hours=1))
    description = [
        ("n", "bigint"),
        ("s", "varchar"),
        ("d", "date"),
        ("t", "timestamp(3) with time zone"),
        ("m", "decimal(10,2)"),
        ("a", "array(integer)"),
        ("j", "map(varchar, integer)"),
    ]
    rows = [
        (
            1,
            "x",
            date(2024, 3, 1),
            datetime(2024, 3, 1, 1, tzinfo=paris),
            Decimal("1.50"),
            [1],
            {"k": 2},
        )
    ]

    table = result_table(description, rows)

    assert table.schema == pa.schema(
        [
            ("n", pa.int64()),
            ("s", pa.string()),
            ("d", pa.date32()),
            ("t", pa.timestamp("ms", tz="UTC")),
            ("m", pa.decimal128(10, 2)),
            ("a", pa.list_(pa.int32())),
            ("j", pa.string()),
        ]
    )
    [row] = table.to_pylist()
    assert row["t"] == datetime(2024, 3, 1, 0, tzinfo=UTC)
    assert row["j"] == '{"k": 2}'


def test_a_query_refused_for_want_of_a_node_is_asked_again(
    tmp_path: Path, closed_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A cluster whose workers are joining answers NO_NODES_AVAILABLE to a query it never ran.
    import trino

    refusal = trino.exceptions.TrinoQueryError(
        {"errorName": "NO_NODES_AVAILABLE", "errorType": "INTERNAL_ERROR", "message": "No nodes"}
    )
    asked: list[str] = []

    class Cursor:
        description = (("n", "integer", None, None, None, None, None),)

        def execute(self, sql: str) -> None:
            asked.append(sql)
            if len(asked) < 3:
                raise refusal

        def fetchall(self) -> list[list[int]]:
            return [[1]]

    class Connection:
        def cursor(self) -> Cursor:
            return Cursor()

        def close(self) -> None:
            pass

    service = _service(tmp_path, closed_url)
    monkeypatch.setattr(service, "_open", Connection)
    monkeypatch.setattr("ecommerce_lakehouse_trino.query.NO_NODES_WAITS", (0.0, 0.0))

    assert service.sql("SELECT 1 AS n").to_pylist() == [{"n": 1}]
    assert len(asked) == 3

    asked.clear()
    monkeypatch.setattr("ecommerce_lakehouse_trino.query.NO_NODES_WAITS", (0.0,))
    with pytest.raises(LakehouseError, match="No nodes"):
        service.sql("SELECT 1 AS n")
