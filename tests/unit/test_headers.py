"""Header matching and evolved names, shared by every engine (PRODUCT §4.1)."""

from __future__ import annotations

import pytest

from ecommerce_lakehouse.domain.errors import FileRejected
from ecommerce_lakehouse.domain.headers import check_header, evolved_name
from ecommerce_lakehouse.domain.schemas import PRODUCTS
from ecommerce_lakehouse.domain.types import SchemaEvolution

KEY = "raw-data/products/p.csv"
HEADER = ["product_id", "department_id", "department", "product_name"]


def test_headers_match_trimmed_and_case_insensitively() -> None:
    columns = check_header(KEY, PRODUCTS, SchemaEvolution.RESCUE, [" Product_ID ", *HEADER[1:]])
    assert [c.name for c in columns] == HEADER
    assert columns[0].original == " Product_ID "


@pytest.mark.parametrize(
    ("header", "evolution", "reason", "detail"),
    [
        ([*HEADER, "PRODUCT_ID "], SchemaEvolution.RESCUE, "duplicate_columns", "'product_id'"),
        (HEADER[:3], SchemaEvolution.RESCUE, "missing_columns", "'product_name'"),
        ([*HEADER, " Aisle "], SchemaEvolution.FAIL, "unexpected_columns", "'Aisle'"),
        ([*HEADER, "a-b", "a b"], SchemaEvolution.ADD_NEW_COLUMNS, "duplicate_columns", "'a_b'"),
        ([*HEADER, "_Violation"], SchemaEvolution.ADD_NEW_COLUMNS, "duplicate_columns", "_viol"),
        ([*HEADER, "_run_id"], SchemaEvolution.ADD_NEW_COLUMNS, "duplicate_columns", "_run_id"),
    ],
)
def test_headers_that_do_not_fit_reject_the_file(
    header: list[str], evolution: SchemaEvolution, reason: str, detail: str
) -> None:
    with pytest.raises(FileRejected) as caught:
        check_header(KEY, PRODUCTS, evolution, header)
    assert caught.value.reason == reason
    assert detail in caught.value.detail and KEY in caught.value.detail
    assert "\n" not in caught.value.detail


def test_extra_columns_are_kept_for_rescue_and_evolution() -> None:
    columns = check_header(KEY, PRODUCTS, SchemaEvolution.ADD_NEW_COLUMNS, [*HEADER, "Aisle Id"])
    assert [c.name for c in columns][-1] == "aisle id"
    assert evolved_name("Aisle Id", 5) == "aisle_id"
    assert evolved_name("  ", 7) == "column_7"
