"""`ecommerce_lakehouse_delta.commit_info`: Delta commit info written by either engine."""

from __future__ import annotations

import json

from ecommerce_lakehouse_delta.commit_info import (
    COMMIT_INFO_KEYS,
    append_as_merge_metrics,
    operation_metrics,
    user_metadata,
)


def test_delta_rs_metadata_is_read_from_top_level_keys() -> None:
    commit = {
        "timestamp": 1,
        "operation": "MERGE",
        "operationParameters": {"predicate": "x"},
        "clientVersion": "delta-rs.py-1.6.6",
        "lakehouse.run_id": "r1",
        "lakehouse.files": [{"key": "a.csv"}],
    }

    assert user_metadata(commit) == {
        "lakehouse.run_id": "r1",
        "lakehouse.files": json.dumps([{"key": "a.csv"}]),
    }


def test_spark_metadata_is_read_from_a_user_metadata_json_object() -> None:
    commit = {
        "timestamp": 1,
        "operation": "MERGE",
        "engineInfo": "Apache-Spark/3.5.6 Delta-Lake/3.3.2",
        "txnId": "t",
        "userMetadata": json.dumps({"lakehouse.run_id": "r2", "n": 3}),
    }

    assert user_metadata(commit) == {"lakehouse.run_id": "r2", "n": "3"}
    assert user_metadata({"userMetadata": "a note"}) == {"userMetadata": "a note"}


def test_metrics_take_delta_rs_names_whichever_engine_wrote_them() -> None:
    spark_merge = {
        "numTargetRowsInserted": "2",
        "numTargetFilesRemoved": "1",
        "executionTimeMs": "25",
        "p25FileSize": "10",
    }
    assert operation_metrics("MERGE", spark_merge) == {
        "num_target_rows_inserted": 2,
        "num_target_files_removed": 1,
        "execution_time_ms": 25,
        "p25_file_size": 10,
    }
    assert operation_metrics("WRITE", {"numFiles": "1", "numOutputRows": "3"}) == {
        "num_added_files": 1,
        "num_added_rows": 3,
    }
    spark_optimize = {"numRemovedFiles": "4", "numAddedFiles": "1"}
    delta_rs_optimize = {"numFilesRemoved": 4, "numFilesAdded": 1, "filesAdded": "{}"}
    assert operation_metrics("OPTIMIZE", spark_optimize) == operation_metrics(
        "OPTIMIZE", delta_rs_optimize
    )
    # delta-rs's own names, integers only.
    assert operation_metrics("WRITE", {"num_added_rows": 1, "flag": True, "x": "1.5"}) == {
        "num_added_rows": 1
    }


def test_reserved_commit_info_keys_are_not_metadata() -> None:
    commit = {key: "x" for key in COMMIT_INFO_KEYS - {"userMetadata"}}

    assert user_metadata(commit) == {}


def test_an_append_reports_its_rows_under_the_merge_names_too() -> None:
    written = {"num_added_files": 2, "num_added_rows": 5, "num_removed_files": 0}

    metrics = append_as_merge_metrics(written)

    assert metrics == {
        **written,
        "num_target_rows_inserted": 5,
        "num_target_rows_updated": 0,
        "num_target_rows_copied": 0,
        "num_target_files_added": 2,
        "num_target_files_removed": 0,
    }
