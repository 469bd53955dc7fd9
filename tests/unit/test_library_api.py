"""The library surface: lazy adapters, entry points and configuration errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import ecommerce_lakehouse as lh
from ecommerce_lakehouse.application.pipeline import PIPELINE


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
    # In words, not the class's name; the value quoted as Python would.
    with pytest.raises(lh.ConfigurationError) as raised:
        lh.SchemaEvolution.from_str("merge")
    assert str(raised.value) == (
        "invalid schema evolution 'merge': expected one of rescue, add_new_columns, fail"
    )


def test_run_result_serialises_for_orchestrators(tmp_path: Path) -> None:
    result = lh.open_lake(str(tmp_path)).run(lh.RunOptions(run_id="r1"))
    data = result.as_dict()
    assert data["run_id"] == "r1" and data["ok"] is True and data["files"] == []
    assert {c["check_name"] for c in data["checks"]} >= {"primary_key_unique"}  # type: ignore[union-attr]


def test_every_run_leaves_its_record_with_options_and_step_timings(tmp_path: Path) -> None:
    (tmp_path / "raw-data" / "products").mkdir(parents=True)
    (tmp_path / "raw-data" / "products" / "p.csv").write_text(
        "product_id,department_id,department,product_name\np1,1,dairy,Milk\n"
    )
    options = lh.RunOptions(run_id="r1", settle_seconds=0, evolution=lh.SchemaEvolution.FAIL)
    result = lh.open_lake(str(tmp_path)).run(options)
    record = json.loads((tmp_path / "_runs" / "r1.json").read_text())
    assert record == json.loads(json.dumps(result.as_dict()))
    assert record["options"]["schema_evolution"] == "fail"
    assert record["options"]["settle_seconds"] == 0
    assert list(record["step_seconds"]) == [step.name for step in PIPELINE]
    assert all(s >= 0 for s in record["step_seconds"].values())
    # The record reads back as the run's result, timings and options included.
    again = lh.RunResult.from_dict(record)
    assert again.step_seconds == result.step_seconds and again.options == result.options


def test_a_record_that_cannot_be_written_does_not_fail_the_run(tmp_path: Path) -> None:
    (tmp_path / "_runs").write_text("a file where the folder should be")
    said: list[str] = []
    result = lh.open_lake(str(tmp_path)).run(
        lh.RunOptions(run_id="r1"), progress=lambda step, message: said.append(message)
    )
    assert result.ok
    assert any(m.startswith("could not write the run record _runs/r1.json") for m in said)
    # A warning of the result too: a terminal's progress line is gone once the run ends.
    [warning] = result.warnings
    assert warning.startswith("could not write the run record _runs/r1.json")


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


def test_user_code_type_checks_sql_results_as_arrow_tables(tmp_path: Path) -> None:
    # The README's use of a result, checked by mypy --strict as a user's project would run
    # it: outside this repository (no config of ours), on the installed packages.
    script = tmp_path / "report.py"
    script.write_text(
        "import ecommerce_lakehouse as lh\n"
        "\n"
        "lake = lh.open_lake('/tmp/lake')\n"
        "result = lake.sql('SELECT 1 AS one')\n"
        "frame = result.to_pandas()\n"
        "batches = result.to_batches()\n"
        "rows: list[dict[str, object]] = result.to_pylist()\n"
        "count: int = result.num_rows\n"
        "reveal_type(result)\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(script)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert 'Revealed type is "pyarrow' in done.stdout or 'Revealed type is "Any"' in done.stdout
