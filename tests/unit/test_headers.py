"""Header matching and evolved names, shared by every engine (docs/contract.md#reading-files)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ecommerce_lakehouse.domain.errors import FileRejected
from ecommerce_lakehouse.domain.headers import (
    DEFAULT_READ_LIMITS,
    ReadLimits,
    check_header,
    compressed_format,
    evolved_name,
    file_start_violation,
    limit_rejection,
)
from ecommerce_lakehouse.domain.rules import RAGGED_RECORD
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


# ---------------------------------------------------------------- issue 11: read limits
LIMITS = ReadLimits(max_columns=4, max_field_bytes=8)


def _chunked(data: bytes, size: int = 3) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"a,b,c,d\n1,2,3,4,5,6,7,8,9\n", None),  # only the header line is bounded here
        (b"a,b,c,d,e\n", "too_many_columns"),
        (b'a,"b,c,d",e,f\n', None),  # commas inside quotes do not separate
        (b"a,b,c,d,", "too_many_columns"),  # no newline: the end of the file ends it
        (b"a,123456789,c\n", "field_too_large"),
        (b'a,"12345\n6789",c\n', "field_too_large"),  # a quoted newline does not end it
        (b"a,b,123456789", "field_too_large"),
        (b'a,"never ending quote', "field_too_large"),
        (b"", None),
        (b"\x1f\x8b\x08\x00rest", "compressed"),
        (b"BZh91AY&SYrest", "compressed"),
        (b"BZh,b\n", None),  # text that merely starts like bzip2
    ],
)
def test_the_file_start_is_checked_against_the_limits(data: bytes, expected: str | None) -> None:
    assert file_start_violation(_chunked(data), LIMITS) == expected
    assert file_start_violation([data], LIMITS) == expected


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"a,b\rc,d\r", "bare_cr_line_endings"),  # old Mac OS: the file is one line
        (b"a,b\r", "bare_cr_line_endings"),  # the last byte of a one-line file
        (b"a,b\rc", "bare_cr_line_endings"),
        (b"a,b\r\nc,d\r\n", None),  # CRLF
        (b"a,b\n1,2\r3\n", None),  # only the header line is looked at
        (b'a,"b\rc",d\n', None),  # a CR inside quotes is text
        (b'a,"b\r\n\rc"\r\n', None),
        (b"a,123456789\rb", "field_too_large"),  # the first violation wins
        (b"a,b,c,d,e\r", "too_many_columns"),
        (b"\x1f\x8b\x08\x00\r\r", "compressed"),
    ],
)
def test_a_bare_carriage_return_in_the_header_line_rejects_the_file(
    data: bytes, expected: str | None
) -> None:
    # Chunks of every size put the CR (and the LF after it) on either side of a boundary.
    for size in range(1, len(data) + 1):
        assert file_start_violation(_chunked(data, size), LIMITS) == expected, size
    assert file_start_violation([b"", data, b""], LIMITS) == expected


def test_a_bare_cr_rejection_says_how_to_fix_it() -> None:
    rejected = limit_rejection(KEY, "bare_cr_line_endings", LIMITS)
    assert (rejected.reason, rejected.detail) == (
        "bare_cr_line_endings",
        f"{KEY} ends its lines with a bare carriage return (CR); "
        "save it with LF or CRLF line endings",
    )


def test_the_header_scan_stops_at_the_first_limit_it_exceeds() -> None:
    read: list[int] = []

    def chunks() -> Iterator[bytes]:
        for index in range(10_000):
            read.append(index)
            yield b"a," * 32

    assert file_start_violation(chunks(), DEFAULT_READ_LIMITS) == "too_many_columns"
    assert len(read) <= DEFAULT_READ_LIMITS.max_columns // 32 + 1


def test_limit_rejections_name_their_reason_and_bound() -> None:
    rejected = limit_rejection(KEY, "too_many_columns", LIMITS)
    assert (rejected.reason, "4" in rejected.detail) == ("too_many_columns", True)
    assert limit_rejection(KEY, "field_too_large", LIMITS).reason == "field_too_large"
    assert compressed_format(b"\x1f\x8b") == "gzip"
    assert compressed_format(b"product_id") is None
    with pytest.raises(ValueError, match="positive"):
        ReadLimits(max_columns=0)


def test_the_ragged_marker_is_a_reserved_column_name() -> None:
    with pytest.raises(FileRejected):
        check_header(KEY, PRODUCTS, SchemaEvolution.ADD_NEW_COLUMNS, [*HEADER, RAGGED_RECORD])
