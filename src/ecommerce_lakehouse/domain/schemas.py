"""The entity catalogue: the curated table schemas and their row rules, dedup and MERGE specs.

See docs/contract.md#input-schemas.

An entity is a name a :class:`TableSchema` of ``SCHEMAS`` declares, nothing else: discovery,
ingestion, the checks, the query services, the state machine and the crawler targets all
follow ``SCHEMAS``, so a new entity is one more schema here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ecommerce_lakehouse.domain.audit import AUDIT_TABLES
from ecommerce_lakehouse.domain.errors import ConfigurationError
from ecommerce_lakehouse.domain.rules import (
    DateMatchesTimestamp,
    FieldCount,
    InRange,
    MaxBytes,
    NotNull,
    NotReserved,
    ParsesAs,
    RowRule,
)
from ecommerce_lakehouse.domain.types import Column, ColumnType
from ecommerce_lakehouse.domain.values import HIVE_DEFAULT_PARTITION, MAX_PARTITION_VALUE_BYTES

#: Lineage columns on every curated table.
SOURCE_FILE = "_source_file"
INGESTED_AT = "_ingested_at"
RUN_ID = "_run_id"
#: Extra CSV columns packed as a JSON object under schema-evolution mode ``rescue``.
RESCUED_DATA = "_rescued_data"

LINEAGE_COLUMNS: tuple[Column, ...] = (
    Column(name=SOURCE_FILE, type=ColumnType.STRING),
    Column(name=INGESTED_AT, type=ColumnType.TIMESTAMP),
    Column(name=RUN_ID, type=ColumnType.STRING),
)
RESCUED_COLUMN = Column(name=RESCUED_DATA, type=ColumnType.STRING)

#: An entity name is a table name, a raw-data/ and archive/ folder and an unquoted SQL
#: identifier in every engine: lower-case letters, digits and underscores.
_ENTITY_NAME = re.compile(r"[a-z][a-z0-9_]{0,62}")
#: What ``ingest_log.entity`` and the archive folder say for a file that names no entity.
NO_ENTITY = "unknown"

#: Engine-internal columns carried through staging (never stored in curated tables).
LINE_NUMBER = "_line_number"
FILE_ORDINAL = "_file_ordinal"
RAW_RECORD = "_raw_record"
#: The SHA-256 of the row's file, for ``quarantine.source_checksum``.
SOURCE_CHECKSUM = "_source_checksum"


@dataclass(frozen=True, slots=True, kw_only=True)
class DedupSpec:
    """How rows sharing a primary key within one run collapse to one.

    See docs/contract.md#deduplication-and-merge.

    The survivor has the greatest ``ordering_column`` (when set); ties, and tables without
    an ordering column, go to the last occurrence by (file ordinal, line number).
    """

    key: tuple[str, ...]
    ordering_column: str | None

    @property
    def ordering(self) -> tuple[str, ...]:
        """The ordering column, if any: what ranks a key's rows before their position."""
        return _optional(self.ordering_column)

    @property
    def ranked_columns(self) -> tuple[str, ...]:
        """The columns a ranking of a key's rows reads: key and ordering, each once.

        The ordering column may be part of the key.
        """
        return tuple(dict.fromkeys([*self.key, *self.ordering]))


@dataclass(frozen=True, slots=True, kw_only=True)
class MergeSpec:
    """How a survivor is MERGEd into the stored table (docs/contract.md#deduplication-and-merge).

    Inserted when its key is new. A stored row is replaced only when some business column
    differs and, when ``ordering_column`` is set, the incoming ordering value is greater or
    equal to the stored one. Nothing is ever deleted.
    """

    key: tuple[str, ...]
    business_columns: tuple[str, ...]
    ordering_column: str | None
    partition_column: str

    @property
    def compared_columns(self) -> list[str]:
        """The stored columns the MERGE classification reads, once each."""
        ordering = _optional(self.ordering_column)
        return list(
            dict.fromkeys([*self.key, self.partition_column, *ordering, *self.business_columns])
        )


def _optional(column: str | None) -> tuple[str, ...]:
    """An optional column as the columns it names: itself, or none."""
    return (column,) if column else ()


@dataclass(frozen=True, slots=True, kw_only=True)
class TableSchema:
    """A curated table: columns, key, partitioning, ordering and rules.

    Attributes:
        entity: the raw entity feeding this table, also the table's name: lower-case
            letters, digits and underscores, starting with a letter, and neither an audit
            table's name nor ``unknown``.
        columns: business columns in table order.
        primary_key: key columns.
        partition_column: the Delta partition column.
        ordering_column: the column that decides which version of a row is newest.
        derived_date: ``(date_column, timestamp_column)`` when the date may be derived.
        value_rules: value rules (ranges) checked after the required columns.
        foreign_keys: columns that reference another entity's key; they are required.
        references: ``(column, parent table)`` for the foreign keys whose parent is a curated
            table of the lake (matched against its one-column primary key): each becomes a
            ``<column>_in_<parent>`` validation check.
        low_cardinality: text columns whose values repeat across many rows (a dimension's
            key in a fact table, such as a product id among order lines). A hint for the
            engines' memory, not a rule: the local engine holds them dictionary-encoded
            while it stages a batch (4 bytes a row instead of 16). Tables and results are
            the same with or without it. Not for a column with as many distinct values as
            rows (a key of its own table): its dictionary would cost more than it saves.
        rules: row rules in evaluation order (the first broken one is reported).
    """

    entity: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]
    partition_column: str
    ordering_column: str | None = None
    derived_date: tuple[str, str] | None = None
    value_rules: tuple[RowRule, ...] = ()
    foreign_keys: tuple[str, ...] = ()
    references: tuple[tuple[str, str], ...] = ()
    low_cardinality: tuple[str, ...] = ()
    rules: tuple[RowRule, ...] = field(init=False)

    def __post_init__(self) -> None:
        if not _ENTITY_NAME.fullmatch(self.entity):
            raise ValueError(
                f"entity name {self.entity!r} is not a lower-case identifier of at most 63 "
                "characters"
            )
        if self.entity == NO_ENTITY or self.entity in {a.name for a in AUDIT_TABLES}:
            raise ValueError(f"entity name {self.entity!r} is taken by the lake itself")
        names = self.column_names
        if len(set(names)) != len(names):
            raise ValueError(f"{self.entity}: duplicate column names")
        for name in (*self.primary_key, self.partition_column, *self.foreign_keys):
            if name not in names:
                raise ValueError(f"{self.entity}: unknown column {name}")
        for name, _ in self.references:
            if name not in self.foreign_keys:
                raise ValueError(f"{self.entity}: reference {name} is not a foreign key")
        if self.ordering_column is not None and self.ordering_column not in names:
            raise ValueError(f"{self.entity}: unknown ordering column")
        for name in self.low_cardinality:
            if self.types.get(name) is not ColumnType.STRING or name in self.primary_key:
                raise ValueError(
                    f"{self.entity}: low-cardinality column {name} is not a text column "
                    "outside the primary key"
                )
        object.__setattr__(self, "rules", self._build_rules())

    def _build_rules(self) -> tuple[RowRule, ...]:
        required = [*self.primary_key, *self.foreign_keys]
        if self.ordering_column is not None:
            required.append(self.ordering_column)
        rules: list[RowRule] = [FieldCount()]
        rules += [NotNull(column=c) for c in dict.fromkeys(required)]
        rules += [
            ParsesAs(column=c.name, type=c.type)
            for c in self.columns
            if c.type is not ColumnType.STRING
        ]
        rules += self.value_rules
        if self.types[self.partition_column] is ColumnType.STRING:
            # A text partition value names a directory: bounded, and never the null marker.
            partition = self.partition_column
            rules += [
                MaxBytes(column=partition, maximum=MAX_PARTITION_VALUE_BYTES),
                NotReserved(column=partition, reserved=(HIVE_DEFAULT_PARTITION,)),
            ]
        if self.derived_date is not None:
            date_column, ts_column = self.derived_date
            rules.append(DateMatchesTimestamp(date_column=date_column, timestamp_column=ts_column))
        return tuple(rules)

    @property
    def name(self) -> str:
        """The table name (same as the entity)."""
        return self.entity

    @property
    def column_names(self) -> tuple[str, ...]:
        """Business column names in table order."""
        return tuple(c.name for c in self.columns)

    @property
    def types(self) -> dict[str, ColumnType]:
        """Column name to logical type."""
        return {c.name: c.type for c in self.columns}

    @property
    def source_columns(self) -> tuple[str, ...]:
        """Columns a CSV must contain: every column except a derivable date."""
        derived = self.derived_date[0] if self.derived_date else None
        return tuple(n for n in self.column_names if n != derived)

    @property
    def stored_columns(self) -> tuple[Column, ...]:
        """Every column of the Delta table: business, rescued data, lineage."""
        return (*self.columns, RESCUED_COLUMN, *LINEAGE_COLUMNS)

    @property
    def dedup(self) -> DedupSpec:
        """The in-batch dedup spec."""
        return DedupSpec(key=self.primary_key, ordering_column=self.ordering_column)

    @property
    def merge(self) -> MergeSpec:
        """The MERGE spec."""
        business = tuple(n for n in self.column_names if n not in self.primary_key)
        return MergeSpec(
            key=self.primary_key,
            business_columns=business,
            ordering_column=self.ordering_column,
            partition_column=self.partition_column,
        )


def _c(name: str, type_: ColumnType = ColumnType.STRING) -> Column:
    return Column(name=name, type=type_)


PRODUCTS = TableSchema(
    entity="products",
    columns=(_c("product_id"), _c("department_id"), _c("department"), _c("product_name")),
    primary_key=("product_id",),
    partition_column="department",
)

ORDERS = TableSchema(
    entity="orders",
    columns=(
        _c("order_num"),
        _c("order_id"),
        _c("user_id"),
        _c("order_timestamp", ColumnType.TIMESTAMP),
        _c("total_amount", ColumnType.DOUBLE),
        _c("date", ColumnType.DATE),
    ),
    primary_key=("order_id",),
    partition_column="date",
    ordering_column="order_timestamp",
    derived_date=("date", "order_timestamp"),
    foreign_keys=("user_id",),
    value_rules=(InRange(column="total_amount", minimum=0),),
    low_cardinality=("user_id",),
)

ORDER_ITEMS = TableSchema(
    entity="order_items",
    columns=(
        _c("id"),
        _c("order_id"),
        _c("user_id"),
        _c("days_since_prior_order", ColumnType.INT),
        _c("product_id"),
        _c("add_to_cart_order", ColumnType.INT),
        _c("reordered", ColumnType.BOOLEAN),
        _c("order_timestamp", ColumnType.TIMESTAMP),
        _c("date", ColumnType.DATE),
    ),
    primary_key=("id",),
    partition_column="date",
    ordering_column="order_timestamp",
    derived_date=("date", "order_timestamp"),
    foreign_keys=("order_id", "product_id", "user_id"),
    references=(("order_id", "orders"), ("product_id", "products")),
    value_rules=(
        InRange(column="days_since_prior_order", minimum=0, maximum=365),
        InRange(column="add_to_cart_order", minimum=1),
    ),
    # Not order_id: an order's lines are few, so its values are nearly as many as orders.
    low_cardinality=("user_id", "product_id"),
)

#: Schemas in ingestion order (products, then orders, then order_items).
SCHEMAS: tuple[TableSchema, ...] = (PRODUCTS, ORDERS, ORDER_ITEMS)


def entity_names() -> tuple[str, ...]:
    """The catalogue's entity names, in ingestion order."""
    return tuple(schema.name for schema in SCHEMAS)


def entity_named(value: str) -> str:
    """The catalogue's entity that ``value`` names, read case-insensitively.

    Args:
        value: an entity name as a document or a user spells it.

    Returns:
        The entity's name as the catalogue declares it.

    Raises:
        ConfigurationError: no schema of the catalogue has that name; the message lists them.
    """
    wanted = value.strip().lower()
    names = entity_names()
    if wanted in names:
        return wanted
    raise ConfigurationError(f"invalid entity '{value}': expected one of {', '.join(names)}")
