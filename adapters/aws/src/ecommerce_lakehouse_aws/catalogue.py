"""The AWS Glue Data Catalog as the lake's catalogue, registering tables Athena reads as Delta."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ecommerce_lakehouse.domain.errors import LakehouseError
from ecommerce_lakehouse.domain.types import Column, ColumnType
from ecommerce_lakehouse.ports.catalogue import TableDefinition
from ecommerce_lakehouse_aws.clients import AwsClient, error_code, one_line

#: Glue (Hive) type of each logical column type.
GLUE_TYPES: Mapping[ColumnType, str] = {
    ColumnType.STRING: "string",
    ColumnType.INT: "int",
    ColumnType.BIGINT: "bigint",
    ColumnType.DOUBLE: "double",
    ColumnType.BOOLEAN: "boolean",
    ColumnType.DATE: "date",
    ColumnType.TIMESTAMP: "timestamp",
}
_LOGICAL_TYPES = {glue: logical for logical, glue in GLUE_TYPES.items()}

# Table parameters this adapter owns: which tables are the lake's, their kind and the
# column order (Glue keeps partition keys apart from the other columns).
KIND_PARAMETER = "lakehouse.kind"
COLUMN_ORDER_PARAMETER = "lakehouse.column_order"
NULLABLE_PARAMETER = "lakehouse.nullable"

# A Delta table is its transaction log: Athena engine v3 reads it natively when the Glue
# table says ``table_type=DELTA`` and gives the location (the schema comes from the log);
# Spark on Glue resolves it through the ``delta`` data-source provider and the ``path``
# SerDe parameter. The Parquet formats describe the data files to any Hive-style reader.
_INPUT_FORMAT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
_OUTPUT_FORMAT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"
_SERDE = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"


class GlueCatalogue:
    """Registers the lake's tables in one Glue database, creating it when missing.

    ``register`` creates the table or, when its registration differs, updates it in place
    (without archiving a Glue table version for every run); an unchanged registration is
    left alone. Tables of the database that this adapter did not register are ignored by
    ``get`` and ``list``.

    Args:
        client: a boto3 Glue client.
        database: the Glue database name.
    """

    def __init__(self, client: AwsClient, database: str) -> None:
        self._client = client
        self._database = database
        self._database_ready = False

    @property
    def database(self) -> str:
        """The Glue database the tables are registered in."""
        return self._database

    def register(self, table: TableDefinition) -> None:
        """Create or update a table's registration (idempotent)."""
        wanted = table_input(table)
        try:
            existing = self._get_raw(table.name)
            if existing is None:
                self._ensure_database()
                try:
                    self._client.create_table(DatabaseName=self._database, TableInput=wanted)
                    return
                except ClientError as error:
                    if error_code(error) != "AlreadyExistsException":
                        raise
                    existing = self._get_raw(table.name)  # registered concurrently
            if existing is not None and _same_registration(existing, wanted):
                return
            self._client.update_table(
                DatabaseName=self._database, TableInput=wanted, SkipArchive=True
            )
        except (ClientError, BotoCoreError) as error:
            raise LakehouseError(
                f"cannot register table '{table.name}' in Glue database "
                f"'{self._database}': {one_line(error)}"
            ) from None

    def get(self, name: str) -> TableDefinition | None:
        """A table this adapter registered, or None."""
        try:
            found = self._get_raw(name)
        except (ClientError, BotoCoreError) as error:
            raise self._failed(error) from None
        return None if found is None or not _is_ours(found) else table_definition(found)

    def list(self) -> list[TableDefinition]:
        """Every table this adapter registered in the database, sorted by name."""
        tables: list[TableDefinition] = []
        try:
            pages = self._client.get_paginator("get_tables").paginate(DatabaseName=self._database)
            for page in pages:
                tables.extend(table_definition(t) for t in page["TableList"] if _is_ours(t))
        except ClientError as error:
            if error_code(error) == "EntityNotFoundException":
                return []  # the database is created by the first registration
            raise self._failed(error) from None
        except BotoCoreError as error:
            raise self._failed(error) from None
        return sorted(tables, key=lambda t: t.name)

    def _get_raw(self, name: str) -> dict[str, Any] | None:
        try:
            table: dict[str, Any] = self._client.get_table(DatabaseName=self._database, Name=name)[
                "Table"
            ]
        except ClientError as error:
            if error_code(error) == "EntityNotFoundException":
                return None  # no such table, or no such database yet
            raise
        return table

    def _ensure_database(self) -> None:
        if self._database_ready:
            return
        try:
            self._client.create_database(
                DatabaseInput={
                    "Name": self._database,
                    "Description": "Delta tables of the e-commerce lakehouse",
                }
            )
        except ClientError as error:
            if error_code(error) != "AlreadyExistsException":
                raise
        self._database_ready = True

    def _failed(self, error: ClientError | BotoCoreError) -> LakehouseError:
        return LakehouseError(f"cannot read Glue database '{self._database}': {one_line(error)}")


def table_input(table: TableDefinition) -> dict[str, Any]:
    """The Glue ``TableInput`` of a table definition.

    Partition columns become ``PartitionKeys`` (Hive keeps them apart from the columns);
    nullability and the original column order are kept in parameters so that
    :func:`table_definition` gives back the same definition.
    """
    by_name = {c.name: c for c in table.columns}
    table_format = table.table_format.lower()
    return {
        "Name": table.name,
        "TableType": "EXTERNAL_TABLE",
        "Parameters": {
            "EXTERNAL": "TRUE",
            "table_type": table_format.upper(),
            "classification": table_format,
            "spark.sql.sources.provider": table_format,
            KIND_PARAMETER: table.kind,
            COLUMN_ORDER_PARAMETER: ",".join(c.name for c in table.columns),
        },
        "StorageDescriptor": {
            "Columns": [
                _glue_column(c) for c in table.columns if c.name not in table.partition_columns
            ],
            "Location": table.location,
            "InputFormat": _INPUT_FORMAT,
            "OutputFormat": _OUTPUT_FORMAT,
            "SerdeInfo": {
                "SerializationLibrary": _SERDE,
                "Parameters": {"serialization.format": "1", "path": table.location},
            },
        },
        "PartitionKeys": [_glue_column(by_name[p]) for p in table.partition_columns],
    }


def table_definition(table: Mapping[str, Any]) -> TableDefinition:
    """The table definition of a Glue table this adapter registered.

    Raises:
        LakehouseError: a column has a Glue type that is not one of the lake's types.
    """
    name = str(table["Name"])
    parameters: Mapping[str, str] = table.get("Parameters", {})
    descriptor: Mapping[str, Any] = table.get("StorageDescriptor", {})
    partitions = [_column(name, c) for c in table.get("PartitionKeys", [])]
    columns = {c.name: c for c in [_column(name, c) for c in descriptor.get("Columns", [])]}
    columns.update((c.name, c) for c in partitions)
    order = [n for n in parameters.get(COLUMN_ORDER_PARAMETER, "").split(",") if n in columns]
    ordered = order + [n for n in columns if n not in order]
    return TableDefinition(
        name=name,
        location=str(descriptor.get("Location", "")),
        columns=tuple(columns[n] for n in ordered),
        partition_columns=tuple(c.name for c in partitions),
        kind=parameters.get(KIND_PARAMETER, "curated"),
        table_format=parameters.get("table_type", "delta").lower(),
    )


def _glue_column(column: Column) -> dict[str, Any]:
    return {
        "Name": column.name,
        "Type": GLUE_TYPES[column.type],
        "Parameters": {NULLABLE_PARAMETER: "true" if column.nullable else "false"},
    }


def _column(table: str, glue: Mapping[str, Any]) -> Column:
    glue_type = str(glue.get("Type", "")).lower()
    if glue_type not in _LOGICAL_TYPES:
        raise LakehouseError(
            f"Glue table '{table}' has column '{glue.get('Name')}' of type '{glue_type}', "
            f"which is not a lake type ({', '.join(sorted(_LOGICAL_TYPES))})"
        )
    nullable = glue.get("Parameters", {}).get(NULLABLE_PARAMETER, "true") != "false"
    return Column(name=str(glue["Name"]), type=_LOGICAL_TYPES[glue_type], nullable=nullable)


def _is_ours(table: Mapping[str, Any]) -> bool:
    return KIND_PARAMETER in table.get("Parameters", {})


def _same_registration(existing: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    # Glue and Athena add fields and parameters of their own (CreateTime, VersionId,
    # transient_lastDdlTime, ...); only what this adapter sets is compared.
    descriptor = existing.get("StorageDescriptor", {})
    parameters = existing.get("Parameters", {})
    return (
        existing.get("TableType") == wanted["TableType"]
        and all(parameters.get(k) == v for k, v in wanted["Parameters"].items())
        and existing.get("PartitionKeys", []) == wanted["PartitionKeys"]
        and all(descriptor.get(k) == v for k, v in wanted["StorageDescriptor"].items())
    )
