"""The Spark engine's lean paths: the vectorised parse, append-only loads and job counts.

- A file without quotes is split by Arrow kernels; it must give exactly the records, line
  numbers and rejections of the ``csv`` module loop (``reader._parse_file``).
- A batch of new keys only is appended in one WRITE commit with the MERGE's metadata; a
  batch with an update is MERGEd.
- Each entity's steps run a bounded number of Spark jobs, logged on one INFO line.
"""

from __future__ import annotations

import logging
import random
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from ecommerce_lakehouse.domain.audit import RowCounts
from ecommerce_lakehouse.domain.headers import DEFAULT_READ_LIMITS, ReadLimits
from ecommerce_lakehouse.domain.schemas import ORDERS
from ecommerce_lakehouse.ports.engine import MERGE_COUNTS_KEY, decode_merge_counts
from tests.contract.conftest_engines import spark_case
from tests.integration.engines.harness import Lake, csv_text, source_writer

pytestmark = pytest.mark.spark

ORDERS_HEADER = "order_num,order_id,user_id,order_timestamp,total_amount,date"


def _records(content: bytes, limits: ReadLimits, *, vectorised: bool) -> list[tuple[Any, ...]]:
    from ecommerce_lakehouse_spark.reader import _parse_file

    found: list[tuple[Any, ...]] = []
    for batch in _parse_file(content, limits, vectorised=vectorised):
        assert batch.schema.field(1).type == pa.list_(pa.string())
        found.extend(zip(*(batch.column(i).to_pylist() for i in range(3)), strict=True))
    return found


@pytest.mark.parametrize("seed", range(4))
def test_the_vectorised_parse_reads_what_the_csv_module_reads(seed: int) -> None:
    rng = random.Random(seed)
    pieces = ["a", "", " ", ",", ",", "\n", "\n", "\r\n", "é", "xxxxx", "\t", "\x00", "1"]
    pieces += ["\r", '"'] if seed % 2 else []
    for _ in range(3000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 40)))
        if rng.random() < 0.2:
            text = "\ufeff" + text
        if rng.random() < 0.3:
            text = "h1,h2,h3\n" + text
        limits = ReadLimits(
            max_columns=rng.choice([3, 5, 1000]), max_field_bytes=rng.choice([3, 6, 1 << 20])
        )
        content = text.encode()
        expected = _records(content, limits, vectorised=False)
        assert _records(content, limits, vectorised=True) == expected, repr(text)


def test_the_vectorised_parse_aligns_ragged_records_across_batches() -> None:
    rng = random.Random(7)
    odd = ["", "1", "1,2", "1,2,3,", "1,2,3,,", "1,2,3,4", "1,2,3,,5,", ",,,,", "é,\x00,3"]
    lines = ["a,b,c", *(("1,2,3" if rng.random() < 0.9 else rng.choice(odd)) for _ in range(30000))]
    for eol in ("\n", "\r\n"):
        content = (eol.join(lines) + eol).encode()
        expected = _records(content, DEFAULT_READ_LIMITS, vectorised=False)
        assert _records(content, DEFAULT_READ_LIMITS, vectorised=True) == expected


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return Lake(case=spark_case(), write_source=source_writer(tmp_path), root=tmp_path)


def test_new_keys_are_appended_with_the_merge_metadata_and_updates_merged(
    lake: Lake, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="ecommerce_lakehouse_spark")
    first = lake.ingest(
        ORDERS,
        [
            ("a.csv", csv_text(ORDERS_HEADER, "1,A,u1,2024-01-01T10:00:00Z,5,", "x,,u,bad,1,")),
            ("b.csv", csv_text(ORDERS_HEADER, "2,B,u1,2024-01-02T10:00:00Z,6,")),
        ],
    )
    assert first.per_file == {
        "a.csv": RowCounts(rows_read=2, inserted=1, quarantined=1),
        "b.csv": RowCounts(rows_read=1, inserted=1),
    }
    [commit] = lake.engine.history(lake.ref(ORDERS), limit=1)
    assert (commit.version, commit.operation) == (first.outcome.version, "WRITE")
    assert commit.metadata["lakehouse.run_id"] == "run-1"
    assert decode_merge_counts(commit.metadata[MERGE_COUNTS_KEY]) == first.outcome.counts
    assert first.outcome.metrics["num_target_rows_inserted"] == 2
    assert first.outcome.touched_partitions == ("2024-01-01", "2024-01-02")
    # One file per partition value, as Delta's MERGE writes them.
    assert {k: len(v) for k, v in lake.files_by_partition(ORDERS).items()} == {
        "2024-01-01": 1,
        "2024-01-02": 1,
    }

    second = lake.ingest(
        ORDERS,
        [
            (
                "c.csv",
                csv_text(
                    ORDERS_HEADER, "1,A,u1,2024-01-03T10:00:00Z,9,", "3,C,u,2024-01-03T01:00:00Z,1,"
                ),
            )
        ],
    )
    assert second.per_file == {"c.csv": RowCounts(rows_read=2, inserted=1, updated=1)}
    [commit] = lake.engine.history(lake.ref(ORDERS), limit=1)
    assert (commit.version, commit.operation) == (second.outcome.version, "MERGE")
    # The moved order left its old partition.
    assert [(r["order_id"], str(r["date"])) for r in lake.rows(ORDERS)] == [
        ("A", "2024-01-03"),
        ("B", "2024-01-02"),
        ("C", "2024-01-03"),
    ]
    third = lake.ingest(
        ORDERS, [("d.csv", csv_text(ORDERS_HEADER, "2,B,u1,2024-01-02T10:00:00Z,6,"))]
    )
    assert third.per_file == {"d.csv": RowCounts(rows_read=1, unchanged=1)}
    assert third.outcome.version == second.outcome.version

    lines = [
        r.getMessage()
        for r in caplog.records
        if r.getMessage().startswith("spark jobs: orders read=")
    ]
    assert len(lines) == 3
    counts = [_counts(line) for line in lines]
    for count in counts:
        # One job per file read (or more, for Delta's snapshot of a new version), two to
        # stage: one counts the rows per file and per key, one counts the keys more than
        # one row holds (none here, so nothing is ranked).
        assert count["stage"] == 2
        assert count["total"] == sum(v for k, v in count.items() if k != "total")
    assert [c["read"] for c in counts] == [2, 1, 1]
    # A MERGE costs the most jobs. A batch that changes nothing costs fewer; a first load
    # into an empty table fewer still (no stored key is looked up).
    assert counts[0]["merge"] < counts[2]["merge"] < counts[1]["merge"]


def _counts(line: str) -> dict[str, int]:
    body = line.split(" ", 3)[3]
    return {
        part.split("=")[0].strip(): int(part.split("=")[1].split()[0]) for part in body.split(", ")
    }


def test_each_timestamp_is_matched_against_its_pattern_once_per_row(lake: Lake) -> None:
    # Spark inlines a value into every expression that reads it when it can (a struct's
    # fields always) and evaluates it again there: the timestamp parse used to run its
    # regex a dozen times per row. Steps of its own keep it to one match and one rewrite.
    from ecommerce_lakehouse.domain.types import SchemaEvolution
    from ecommerce_lakehouse.domain.values import TIMESTAMP_PATTERN
    from ecommerce_lakehouse_spark.reader import VIOLATION

    source = lake.write_source(
        "a.csv", csv_text(ORDERS_HEADER, "1,A,u1,2024-01-01T10:00:00Z,5,"), ORDERS
    )
    frame = lake.engine.read_source(source, ORDERS, SchemaEvolution.RESCUE)
    checked = frame.select(VIOLATION, "order_timestamp", "date")
    plan = checked._jdf.queryExecution().optimizedPlan().toString()
    assert plan.count(TIMESTAMP_PATTERN) == 2
    [row] = checked.collect()
    assert (row[VIOLATION], str(row["order_timestamp"]), str(row["date"])) == (
        None,
        "2024-01-01 10:00:00",
        "2024-01-01",
    )


def _trim_flag(content: bytes) -> bool:
    from ecommerce_lakehouse_spark.reader import _parse_file

    [*_, end] = _parse_file(content)
    return bool(end.column(3)[0].as_py())


@pytest.mark.parametrize("space", [" ", "\t", "\x0b", "\x1c", "\x85", "\xa0", "\u3000"])
def test_the_parse_says_whether_any_cell_needs_trimming(space: str) -> None:
    lines = ["a,b,c", *("1,2,3" for _ in range(20000))]
    assert _trim_flag(("\n".join(lines) + "\n").encode()) is False
    for row in (1, 20000):
        for cell in range(3):
            for edge in ("lead", "trail"):
                edited = list(lines)
                cells = edited[row].split(",")
                cells[cell] = space + cells[cell] if edge == "lead" else cells[cell] + space
                edited[row] = ",".join(cells)
                assert _trim_flag(("\n".join(edited) + "\n").encode()) is True, (row, cell, edge)
    # A space inside a value is no reason to trim; the csv module's path always trims.
    assert _trim_flag(b"a,b\n1 2,3\n") is False
    assert _trim_flag(b'a,b\n"1",2\n') is True


def test_one_padded_cell_deep_in_a_file_is_trimmed(lake: Lake) -> None:
    rows = [f"{i},O{i},u1,2024-01-01T10:00:00Z,5," for i in range(1, 3000)]
    rows.append("3000,O3000,u1,2024-01-01T10:00:00Z,5\u3000,")
    batch = lake.ingest(ORDERS, [("a.csv", csv_text(ORDERS_HEADER, *rows))])
    assert batch.per_file == {"a.csv": RowCounts(rows_read=3000, inserted=3000)}
    [last] = [r for r in lake.rows(ORDERS) if r["order_id"] == "O3000"]
    assert last["total_amount"] == 5.0


@pytest.mark.parametrize("checksum", ["missing", "garbled", "no count"])
def test_without_a_checksum_file_saying_no_file_the_stored_keys_are_looked_up(
    lake: Lake, checksum: str
) -> None:
    from ecommerce_lakehouse_spark.delta import checksum_file_count

    lake.ingest(ORDERS, [("a.csv", csv_text(ORDERS_HEADER, "1,A,u1,2024-01-01T10:00:00Z,5,"))])
    [latest] = lake.engine.history(lake.ref(ORDERS), limit=1)
    crc = Path(lake.ref(ORDERS).uri) / "_delta_log" / f"{latest.version:020d}.crc"
    assert checksum_file_count(lake.engine.session, lake.ref(ORDERS).uri, latest.version) == 1
    if checksum == "missing":
        crc.unlink()
    else:
        crc.write_text("{" if checksum == "garbled" else '{"numFiles": "0"}')
    assert checksum_file_count(lake.engine.session, lake.ref(ORDERS).uri, latest.version) is None
    again = lake.ingest(
        ORDERS, [("b.csv", csv_text(ORDERS_HEADER, "1,A,u1,2024-01-02T10:00:00Z,7,"))]
    )
    assert again.per_file == {"b.csv": RowCounts(rows_read=1, updated=1)}
    assert [(r["order_id"], r["total_amount"]) for r in lake.rows(ORDERS)] == [("A", 7.0)]


@pytest.mark.parametrize(("broadcast_rows", "stage_jobs"), [(1_000_000, 4), (0, None)])
def test_only_the_rows_of_keys_held_twice_are_ranked(
    lake: Lake,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    broadcast_rows: int,
    stage_jobs: int | None,
) -> None:
    from ecommerce_lakehouse_spark import staging

    # 0: as for a batch of more repeated keys and dropped rows than a broadcast takes.
    monkeypatch.setattr(staging, "BROADCAST_ROWS", broadcast_rows)
    caplog.set_level(logging.INFO, logger="ecommerce_lakehouse_spark")
    first = lake.ingest(
        ORDERS,
        [
            (
                "a.csv",
                csv_text(
                    ORDERS_HEADER,
                    "1,A,u1,2024-01-01T10:00:00Z,5,",
                    "2,A,u1,2024-01-01T11:00:00Z,6,",
                ),
            ),
            (
                "b.csv",
                csv_text(
                    ORDERS_HEADER,
                    "3,B,u1,2024-01-02T10:00:00Z,6,",
                    "4,A,u1,2024-01-01T09:00:00Z,7,",
                ),
            ),
        ],
    )
    # Key A: its latest row (a.csv line 3) survives, one row of each file is dropped.
    assert first.per_file == {
        "a.csv": RowCounts(rows_read=2, inserted=1, duplicates_in_batch=1),
        "b.csv": RowCounts(rows_read=2, inserted=1, duplicates_in_batch=1),
    }
    assert [(r["order_id"], str(r["order_num"])) for r in lake.rows(ORDERS)] == [
        ("A", "2"),
        ("B", "3"),
    ]
    [line] = [
        r.getMessage()
        for r in caplog.records
        if r.getMessage().startswith("spark jobs: orders read=")
    ]
    if stage_jobs is not None:
        # The counts, the count of keys held twice, their broadcast and the losers'
        # counts. (Past the limit, Spark's own size estimates may still broadcast the few
        # rows here.)
        assert _counts(line)["stage"] == stage_jobs


def test_a_first_load_writes_the_partitions_of_its_survivors_only(lake: Lake) -> None:
    # Staging counts the survivors per partition value; a first load takes its per-file
    # counts and the partitions it writes from there, without a pass of its own. A
    # partition only a dropped duplicate or a quarantined row holds is not written.
    first = lake.ingest(
        ORDERS,
        [
            (
                "a.csv",
                csv_text(
                    ORDERS_HEADER,
                    "1,A,u1,2024-01-01T10:00:00Z,5,",
                    "2,B,u1,2024-01-02T10:00:00Z,6,",
                    "3,C,u1,2024-01-05T10:00:00Z,-1,",
                ),
            ),
            ("b.csv", csv_text(ORDERS_HEADER, "4,A,u1,2024-01-03T10:00:00Z,7,")),
            ("c.csv", csv_text(ORDERS_HEADER, "5,B,u1,2024-01-02T09:00:00Z,8,")),
        ],
    )
    assert first.per_file == {
        "a.csv": RowCounts(rows_read=3, inserted=1, quarantined=1, duplicates_in_batch=1),
        "b.csv": RowCounts(rows_read=1, inserted=1),
        "c.csv": RowCounts(rows_read=1, duplicates_in_batch=1),
    }
    assert first.outcome.touched_partitions == ("2024-01-02", "2024-01-03")
    assert set(lake.files_by_partition(ORDERS)) == {"2024-01-02", "2024-01-03"}
    assert [(r["order_id"], str(r["order_num"])) for r in lake.rows(ORDERS, "order_id")] == [
        ("A", "4"),
        ("B", "2"),
    ]
    [commit] = lake.engine.history(lake.ref(ORDERS), limit=1)
    assert commit.operation == "WRITE"
    assert decode_merge_counts(commit.metadata[MERGE_COUNTS_KEY]) == first.outcome.counts
