"""Catalogue contract: registrations are upserted, listed by name and persist."""

from __future__ import annotations

import threading

from ecommerce_lakehouse.domain.types import Column, ColumnType
from ecommerce_lakehouse.ports.catalogue import TableDefinition
from tests.contract.conftest import CatalogueCase


def _orders(location: str = "/lake/lakehouse-dwh/orders", **extra: str) -> TableDefinition:
    return TableDefinition(
        name="orders",
        location=location,
        columns=(
            Column(name="order_id", type=ColumnType.STRING, nullable=False),
            Column(name="order_timestamp", type=ColumnType.TIMESTAMP, nullable=False),
            Column(name="total_amount", type=ColumnType.DOUBLE),
            Column(name="date", type=ColumnType.DATE, nullable=False),
            *(Column(name=name, type=ColumnType(kind)) for name, kind in extra.items()),
        ),
        partition_columns=("date",),
    )


def _table(name: str, kind: str = "curated") -> TableDefinition:
    return TableDefinition(
        name=name,
        location=f"/lake/{name}",
        columns=(Column(name="id", type=ColumnType.BIGINT),),
        kind=kind,
    )


def test_an_empty_catalogue_has_no_tables(catalogue_case: CatalogueCase) -> None:
    assert catalogue_case.catalogue.list() == []
    assert catalogue_case.catalogue.get("orders") is None


def test_get_returns_the_registered_definition(catalogue_case: CatalogueCase) -> None:
    every_type = TableDefinition(
        name="all_types",
        location="/lake/all_types",
        columns=tuple(Column(name=f"c_{t.value}", type=t) for t in ColumnType),
        kind="audit",
        table_format="delta",
    )
    catalogue_case.catalogue.register(_orders())
    catalogue_case.catalogue.register(every_type)

    assert catalogue_case.catalogue.get("orders") == _orders()
    assert catalogue_case.catalogue.get("all_types") == every_type


def test_register_again_replaces_the_registration(catalogue_case: CatalogueCase) -> None:
    catalogue = catalogue_case.catalogue
    catalogue.register(_orders())
    evolved = _orders(location="/moved/orders", coupon="string")

    catalogue.register(evolved)
    catalogue.register(evolved)

    assert catalogue.get("orders") == evolved
    assert catalogue.list() == [evolved]


def test_list_is_sorted_by_name(catalogue_case: CatalogueCase) -> None:
    for name in ("quarantine", "orders", "ingest_log", "products"):
        catalogue_case.catalogue.register(_table(name))

    names = [t.name for t in catalogue_case.catalogue.list()]

    assert names == ["ingest_log", "orders", "products", "quarantine"]


def test_registrations_survive_reopening(catalogue_case: CatalogueCase) -> None:
    catalogue_case.catalogue.register(_orders())
    catalogue_case.catalogue.register(_table("products"))

    reopened = catalogue_case.reopen()

    assert reopened.get("orders") == _orders()
    assert [t.name for t in reopened.list()] == ["orders", "products"]


def test_concurrent_registrations_are_all_kept(catalogue_case: CatalogueCase) -> None:
    names = [f"table_{i}" for i in range(8)]

    def register(name: str) -> None:
        # Each writer opens its own handle, as separate runs would.
        catalogue_case.reopen().register(_table(name))

    threads = [threading.Thread(target=register, args=(name,)) for name in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert [t.name for t in catalogue_case.catalogue.list()] == names
