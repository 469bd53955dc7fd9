"""The library surface: lazy adapters, entry points and configuration errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import ecommerce_lakehouse as lh


def test_importing_the_core_imports_no_engine_or_sdk() -> None:
    probe = (
        "import sys, ecommerce_lakehouse\n"
        "heavy = {'polars', 'deltalake', 'pyarrow', 'duckdb', 'pyspark', 'boto3',"
        " 'dependency_injector'} & set(sys.modules)\n"
        "print(sorted(heavy))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_open_lake_finds_the_local_platform_and_polars_engine(tmp_path: Path) -> None:
    lake = lh.open_lake(str(tmp_path))
    assert lake.engine.name == "polars"
    assert lake.root == str(tmp_path)


def test_unknown_adapters_are_configuration_errors(tmp_path: Path) -> None:
    with pytest.raises(lh.ConfigurationError, match=r"unknown engine 'nope' \(available: .*polars"):
        lh.open_lake(str(tmp_path), engine="nope")
    with pytest.raises(lh.ConfigurationError, match=r"unknown setting\(s\) 'mars' \(settings: "):
        lh.open_lake(str(tmp_path), options={"mars": "red"})
    with pytest.raises(lh.ConfigurationError, match="must not be empty"):
        lh.open_lake(" ")


def test_enums_parse_case_insensitively_and_list_valid_values() -> None:
    assert lh.SchemaEvolution.from_str(" Add_New_Columns ") is lh.SchemaEvolution.ADD_NEW_COLUMNS
    with pytest.raises(lh.ConfigurationError, match="expected one of error, warn"):
        lh.Severity.from_str("fatal")


def test_run_result_serialises_for_orchestrators(tmp_path: Path) -> None:
    result = lh.open_lake(str(tmp_path)).run(lh.RunOptions(run_id="r1"))
    data = result.as_dict()
    assert data["run_id"] == "r1" and data["ok"] is True and data["files"] == []
    assert {c["check_name"] for c in data["checks"]} >= {"primary_key_unique"}  # type: ignore[union-attr]


def test_a_closed_lake_refuses_work_in_one_line(tmp_path: Path) -> None:
    with lh.open_lake(str(tmp_path)) as lake:
        assert lake.sql("SELECT 1 AS one").num_rows == 1
    with pytest.raises(lh.LakehouseError, match="is closed: open it again"):
        lake.sql("SELECT 1")
    lake.close()  # twice is harmless


def test_typed_options_are_values_and_zero_is_not_missing(tmp_path: Path) -> None:
    lake = lh.open_lake(
        str(tmp_path), options={"lock_timeout": 0, "fk_severity": lh.Severity.ERROR}
    )  # type: ignore[dict-item]
    assert lake.settings.lock_timeout == 0.0
    assert lake.settings.fk_severity is lh.Severity.ERROR
