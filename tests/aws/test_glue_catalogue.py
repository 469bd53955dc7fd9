"""GlueCatalogue beyond the catalogue contract: the Glue table Athena engine v3 reads as Delta."""

from __future__ import annotations

from typing import Any

import pytest

from ecommerce_lakehouse.domain.schemas import ORDERS, PRODUCTS
from ecommerce_lakehouse.ports.catalogue import TableDefinition
from ecommerce_lakehouse_aws import GlueCatalogue
from tests.aws_support import MotoServer

pytestmark = pytest.mark.aws


@pytest.fixture
def catalogue(moto: MotoServer) -> GlueCatalogue:
    return GlueCatalogue(moto.client("glue"), moto.options()["glue_database"])


def definition(
    schema: Any = ORDERS, location: str = "s3://shop-lake/lake/orders"
) -> TableDefinition:
    return TableDefinition(
        name=schema.name,
        location=location,
        columns=schema.stored_columns,
        partition_columns=(schema.partition_column,),
    )


def glue_table(server: MotoServer, catalogue: GlueCatalogue, name: str) -> dict[str, Any]:
    table: dict[str, Any] = server.client("glue").get_table(
        DatabaseName=catalogue.database, Name=name
    )["Table"]
    return table


def test_the_database_is_created_with_the_first_registration(
    moto: MotoServer,
    catalogue: GlueCatalogue,
) -> None:
    assert catalogue.list() == []

    catalogue.register(definition())

    glue = moto.client("glue")
    assert glue.get_database(Name=catalogue.database)["Database"]["Name"] == catalogue.database


def test_a_curated_table_is_registered_as_a_native_delta_table(
    moto: MotoServer,
    catalogue: GlueCatalogue,
) -> None:
    catalogue.register(definition())

    table = glue_table(moto, catalogue, "orders")
    assert table["TableType"] == "EXTERNAL_TABLE"
    assert {k: table["Parameters"][k] for k in ("table_type", "spark.sql.sources.provider")} == {
        "table_type": "DELTA",
        "spark.sql.sources.provider": "delta",
    }
    descriptor = table["StorageDescriptor"]
    assert descriptor["Location"] == "s3://shop-lake/lake/orders"
    assert descriptor["SerdeInfo"]["Parameters"]["path"] == "s3://shop-lake/lake/orders"
    assert [(k["Name"], k["Type"]) for k in table["PartitionKeys"]] == [("date", "date")]
    types = {c["Name"]: c["Type"] for c in descriptor["Columns"]}
    assert "date" not in types  # Hive keeps partition keys apart from the columns
    assert types["order_timestamp"] == "timestamp"
    assert types["total_amount"] == "double"
    assert types["_ingested_at"] == "timestamp"
    assert catalogue.get("orders") == definition()


def test_an_unchanged_registration_is_left_alone_and_a_change_updates_in_place(
    moto: MotoServer,
    catalogue: GlueCatalogue,
) -> None:
    catalogue.register(definition(PRODUCTS, "s3://shop-lake/lake/products"))
    catalogue.register(definition(PRODUCTS, "s3://shop-lake/lake/products"))
    assert glue_table(moto, catalogue, "products")["VersionId"] == "1"

    catalogue.register(definition(PRODUCTS, "s3://shop-lake/moved/products"))

    table = glue_table(moto, catalogue, "products")
    assert table["VersionId"] == "2"
    assert table["StorageDescriptor"]["Location"] == "s3://shop-lake/moved/products"


def test_tables_registered_by_others_are_not_the_lakes(
    moto: MotoServer,
    catalogue: GlueCatalogue,
) -> None:
    catalogue.register(definition())
    moto.client("glue").create_table(
        DatabaseName=catalogue.database,
        TableInput={
            "Name": "crawled",
            "StorageDescriptor": {"Columns": [{"Name": "m", "Type": "map<string,int>"}]},
        },
    )

    assert [t.name for t in catalogue.list()] == ["orders"]
    assert catalogue.get("crawled") is None
