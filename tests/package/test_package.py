"""`scripts/package.py`: the deployable artefacts, and that they run where they are deployed.

The script builds into a temporary directory once per module (twice for the
reproducibility check). The Lambda zips are then run the way Lambda runs them: extracted,
on ``PYTHONPATH`` (Lambda's ``/var/task``), in a fresh virtual environment that holds only
boto3 (the Lambda Python runtime provides boto3 and nothing else). The Glue wheels are
installed the way Glue installs them (``--no-deps``, with the manifest's requirements) in a
fresh environment with the Glue runtime's boto3 and pyarrow; PySpark and Delta, which Glue
also provides, are left out (too big for a unit of CI), so that check stops short of a
Spark session, and a static scan of the wheels' imports covers the rest.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import tomllib
import venv
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "package.py"
CONSTRAINTS = ROOT / "constraints.txt"

#: Modules a Lambda zip must neither hold nor import.
HEAVY = ("polars", "pyspark", "pyarrow", "dependency_injector", "deltalake", "duckdb")
#: Our packages in a Lambda zip: the core, the aws adapter and the Lambdas, nothing else.
LAMBDA_PACKAGES = {"ecommerce_lakehouse", "ecommerce_lakehouse_aws", "ecommerce_lakehouse_lambdas"}
#: Modules the Glue 5.1 runtime provides (Delta's Python API with ``--datalake-formats delta``).
GLUE_RUNTIME = {
    "pyspark",
    "py4j",
    "delta",
    "pandas",
    "numpy",
    "pyarrow",
    "boto3",
    "botocore",
    "awsglue",
}
#: Imported by the Glue wheels only for directory lakes and DuckDB SQL, never on Glue.
UNUSED_ON_GLUE = {"ecommerce_lakehouse_local"}

LAKE_ROOT = "s3://shop-lake/lake"
STATE_MACHINE_ARN = "arn:aws:states:eu-west-1:123456789012:stateMachine:lakehouse"
# Nothing listens on the discard port: an AWS call a test does not expect fails at once.
NO_AWS = "http://127.0.0.1:9"


@dataclass(frozen=True)
class Build:
    out: Path
    stdout: str
    manifest: dict[str, Any]


def pins() -> dict[str, str]:
    found: dict[str, str] = {}
    for line in CONSTRAINTS.read_text().splitlines():
        name, sep, version = line.split("#", 1)[0].strip().partition("==")
        if sep:
            found[name.lower()] = f"{name}=={version}"
    return found


def build(out: Path) -> Build:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return Build(out, done.stdout, json.loads((out / "manifest.json").read_text()))


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Build:
    return build(tmp_path_factory.mktemp("dist"))


@pytest.fixture(scope="module")
def rebuilt(tmp_path_factory: pytest.TempPathFactory) -> Build:
    return build(tmp_path_factory.mktemp("dist-again"))


def make_venv(path: Path, *pip_args: str) -> Path:
    """A fresh virtual environment with only what ``pip install *pip_args`` brings."""
    venv.EnvBuilder(with_pip=True, clear=True).create(path)
    python = path / "bin" / "python"
    env = {**os.environ, "PIP_CONSTRAINT": str(CONSTRAINTS), "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    env.pop("PYTHONPATH", None)
    done = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", *pip_args],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return python


def run_python(python: Path, code: str, *, path: Path, environ: Mapping[str, str]) -> Any:
    """Run ``code`` in ``python`` with only ``path`` added to its module path; its JSON."""
    env = {
        "PATH": os.environ["PATH"],
        "PYTHONPATH": str(path),
        "PYTHONNOUSERSITE": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        # Fake credentials, as Lambda and Glue put the role's in the environment: creating
        # a boto3 client then never looks for an instance profile.
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_ENDPOINT_URL": NO_AWS,
        **environ,
    }
    done = subprocess.run(
        [str(python), "-c", code],
        capture_output=True,
        text=True,
        cwd=path,
        env=env,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def loaded(modules: list[str], names: set[str] | tuple[str, ...]) -> list[str]:
    return [m for m in modules if m.split(".")[0] in names]


# ------------------------------------------------------------------ the manifest


def test_the_manifest_lists_every_artefact_with_its_size(built: Build) -> None:
    manifest, out = built.manifest, built.out
    assert list(manifest) == [
        "version",
        "glue_script",
        "glue_wheels",
        "glue_requirements",
        "lambdas",
        "handlers",
        "sizes",
    ]
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert manifest["version"] == project["version"]
    on_disk = {
        p.relative_to(out).as_posix(): p.stat().st_size
        for p in out.rglob("*")
        if p.is_file() and p.name != "manifest.json"
    }
    assert manifest["sizes"] == on_disk
    wheels = sorted(name for name in on_disk if name.startswith("wheels/"))
    assert len(wheels) == 12 and all(name.endswith("-py3-none-any.whl") for name in wheels)
    assert (out / manifest["glue_script"]).read_bytes() == (
        ROOT / "entrypoints" / "glue" / "glue_job.py"
    ).read_bytes()
    assert manifest["lambdas"] == {"trigger": "lambda/trigger.zip", "archive": "lambda/archive.zip"}
    assert manifest["handlers"] == {
        "trigger": "ecommerce_lakehouse_lambdas.trigger.handler",
        "archive": "ecommerce_lakehouse_lambdas.archive.handler",
    }
    for name in built.manifest["sizes"]:
        assert name in built.stdout  # the printed table


def test_the_glue_job_gets_core_aws_delta_spark_and_glue_wheels_and_dependency_injector(
    built: Build,
) -> None:
    version = built.manifest["version"]
    assert built.manifest["glue_wheels"] == [
        f"wheels/{name}-{version}-py3-none-any.whl"
        for name in (
            "ecommerce_lakehouse",
            "ecommerce_lakehouse_aws",
            "ecommerce_lakehouse_delta",
            "ecommerce_lakehouse_spark",
            "ecommerce_lakehouse_glue",
        )
    ]
    assert built.manifest["glue_requirements"] == [pins()["dependency-injector"]]


def test_the_cli_wheel_ships_the_report_page_template_and_needs_jinja2_and_matplotlib(
    built: Build,
) -> None:
    [wheel] = (built.out / "wheels").glob("ecommerce_lakehouse_cli-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        [metadata] = [n for n in names if n.endswith(".dist-info/METADATA")]
        requires = archive.read(metadata).decode()
    assert "ecommerce_lakehouse_cli/templates/report.html.j2" in names
    assert "Requires-Dist: jinja2" in requires and "Requires-Dist: matplotlib" in requires


def test_a_bad_output_directory_is_one_line_on_stderr_and_exit_code_1(tmp_path: Path) -> None:
    occupied = tmp_path / "occupied"
    occupied.write_text("a file, not a directory")
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(occupied)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1
    assert occupied.read_text() == "a file, not a directory"


# ------------------------------------------------------------------ the Lambda zips


@pytest.mark.parametrize("function", ["trigger", "archive"])
def test_a_lambda_zip_holds_our_three_packages_at_its_root_and_nothing_heavy(
    built: Build, function: str
) -> None:
    with zipfile.ZipFile(built.out / built.manifest["lambdas"][function]) as archive:
        entries = archive.infolist()
    names = [e.filename for e in entries]
    tops = {name.split("/")[0] for name in names}
    assert {t for t in tops if not t.endswith(".dist-info")} == LAMBDA_PACKAGES
    assert not [t for t in tops if t.split("-")[0].lower() in HEAVY]
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert not [n for n in names if n.endswith("direct_url.json")]  # the build machine's path
    assert names == sorted(names)
    assert {e.date_time for e in entries} == {(1980, 1, 1, 0, 0, 0)}
    assert {e.external_attr >> 16 for e in entries} == {0o100644}


def test_the_same_source_gives_byte_identical_artefacts(built: Build, rebuilt: Build) -> None:
    assert rebuilt.manifest == built.manifest
    for name in built.manifest["sizes"]:
        assert (rebuilt.out / name).read_bytes() == (built.out / name).read_bytes(), name


@pytest.fixture(scope="module")
def lambda_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Python with boto3 alone, as the Lambda runtime provides it."""
    return make_venv(tmp_path_factory.mktemp("lambda-venv"), pins()["boto3"])


LAMBDA_CODE = """
import importlib, importlib.util, json, sys
heavy = {heavy!r}
importable = sorted(h for h in heavy if importlib.util.find_spec(h) is not None)
module_name, _, function = {handler!r}.rpartition(".")
module = importlib.import_module(module_name)
handler = getattr(module, function)
after_import = sorted(sys.modules)
try:
    outcome = {{"result": handler({event!r}, None)}}
except Exception as error:
    outcome = {{"error": type(error).__name__, "message": str(error)}}
print(json.dumps({{
    "importable": importable, "file": module.__file__, "callable": callable(handler),
    "after_import": after_import, "after_call": sorted(sys.modules), **outcome,
}}))
"""


def lambda_code(built: Build, function: str, event: object) -> str:
    """Import the function's handler, call it with ``event`` and report the modules."""
    handler = built.manifest["handlers"][function]
    return LAMBDA_CODE.format(heavy=HEAVY, handler=handler, event=event)


def extract(zip_path: Path, target: Path) -> Path:
    with zipfile.ZipFile(zip_path) as archive:
        archive.extractall(target)
    return target


def test_the_trigger_zip_runs_on_boto3_alone(
    built: Build, lambda_python: Path, tmp_path: Path
) -> None:
    task = extract(built.out / built.manifest["lambdas"]["trigger"], tmp_path / "task")
    event = {
        "Records": [
            {
                "eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": "other-bucket"}, "object": {"key": "raw-data/a.csv"}},
            },
            {
                "eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": "shop-lake"}, "object": {"key": "lake/raw-data/a.txt"}},
            },
        ]
    }
    report = run_python(
        lambda_python,
        lambda_code(built, "trigger", event),
        path=task,
        environ={
            "AWS_REGION": "eu-west-1",
            "LAKEHOUSE_LAKE": LAKE_ROOT,
            "LAKEHOUSE_STATE_MACHINE_ARN": STATE_MACHINE_ARN,
        },
    )
    assert report["importable"] == []  # nothing heavy anywhere: not in the zip, not in Python
    assert Path(report["file"]).is_relative_to(task) and report["callable"]
    assert loaded(report["after_import"], HEAVY) == []
    assert loaded(report["after_call"], HEAVY) == []
    assert "error" not in report, report.get("message")
    result = report["result"]
    # Both records are ignored without any AWS call (one would fail: nothing listens).
    assert (result["started"], result["duplicate"], result["ignored"]) == (0, 0, 2)
    assert [r["reason"] for r in result["records"]] == [
        "bucket other-bucket is not the lake's bucket shop-lake",
        "not a raw CSV (raw-data/<name>.csv or raw-data/<entity>/<name>.csv)",
    ]


def test_the_archive_zip_runs_on_boto3_alone(
    built: Build, lambda_python: Path, tmp_path: Path
) -> None:
    task = extract(built.out / built.manifest["lambdas"]["archive"], tmp_path / "task")
    event = {"lake_root": LAKE_ROOT, "run_id": "r1", "result_key": "../outside.json"}
    report = run_python(
        lambda_python,
        lambda_code(built, "archive", event),
        path=task,
        environ={"AWS_REGION": "eu-west-1"},
    )
    assert report["importable"] == []
    assert Path(report["file"]).is_relative_to(task) and report["callable"]
    assert loaded(report["after_import"], HEAVY) == []
    assert loaded(report["after_call"], HEAVY) == []
    # The handler ran as far as checking its payload (which needs no AWS call).
    assert report["error"] == "InvalidEvent"
    assert report["message"].startswith("invalid result_key")


# ------------------------------------------------------------------ the Glue job


@pytest.fixture(scope="module")
def glue_python(built: Build, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Glue's installation of the job's modules, beside the runtime's boto3 and pyarrow."""
    path = tmp_path_factory.mktemp("glue-venv")
    python = make_venv(path, pins()["boto3"], pins()["pyarrow"])
    modules = [
        *(str(built.out / wheel) for wheel in built.manifest["glue_wheels"]),
        *built.manifest["glue_requirements"],
    ]
    # What --python-modules-installer-option --no-deps makes Glue run.
    done = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--no-deps", *modules],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return python


GLUE_CODE = """
import importlib.util, json, sys
from ecommerce_lakehouse_glue import job
arguments = job.parse_arguments(["glue_job.py", "--lake", {root!r}, "--run_id", "r1",
                                 "--region", "eu-west-1", "--glue_database", "shop_lake"])
from ecommerce_lakehouse.application.lake import load_engine, load_platform
# What open_lake composes for the job: the aws platform's container, the spark engine's.
container = load_platform("aws")(arguments.lake, arguments.settings)
container.storage(), container.catalogue(), container.lock()
engine = load_engine(arguments.engine)
print(json.dumps({{
    "main": callable(job.main), "engine": engine.__module__, "modules": sorted(sys.modules),
    "pyspark": importlib.util.find_spec("pyspark") is not None,
}}))
"""


def test_the_glue_wheels_installed_without_dependencies_compose_the_aws_platform(
    glue_python: Path, tmp_path: Path
) -> None:
    report = run_python(glue_python, GLUE_CODE.format(root=LAKE_ROOT), path=tmp_path, environ={})
    assert report["main"]
    # The entry points of the installed wheels give S3, the Glue catalogue and Spark...
    assert report["engine"] == "ecommerce_lakehouse_spark"
    # ...whose AWS half is built with dependency-injector, the one requirement...
    assert "dependency_injector" in {m.split(".")[0] for m in report["modules"]}
    # ...and never needs the local adapters, DuckDB, delta-rs or Polars.
    assert loaded(report["modules"], {"ecommerce_lakehouse_local", "duckdb", "deltalake"}) == []
    assert loaded(report["modules"], {"polars", "ecommerce_lakehouse_polars"}) == []
    # PySpark is Glue's: not here, so the Spark session itself is not exercised.
    assert report["pyspark"] is False


def test_every_module_the_glue_wheels_import_is_installed_or_provided_by_glue(
    built: Build,
) -> None:
    ours: set[str] = set()
    imported: set[str] = set()
    for wheel in built.manifest["glue_wheels"]:
        with zipfile.ZipFile(built.out / wheel) as archive:
            sources = [n for n in archive.namelist() if n.endswith(".py")]
            ours |= {n.split("/")[0] for n in sources}
            for name in sources:
                for node in ast.walk(ast.parse(archive.read(name))):
                    if isinstance(node, ast.Import):
                        imported |= {alias.name.split(".")[0] for alias in node.names}
                    elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                        imported.add(node.module.split(".")[0])
    third_party = imported - set(sys.stdlib_module_names) - ours - {"__future__"}
    required = {r.split("==")[0].replace("-", "_") for r in built.manifest["glue_requirements"]}
    assert third_party - GLUE_RUNTIME - required - UNUSED_ON_GLUE == set()
    # Each requirement is imported by the wheels (none is shipped for nothing).
    assert required <= third_party
