"""Build the deployable artefacts of ecommerce-lakehouse into one directory (``dist/``).

``make package`` runs ``python scripts/package.py --out dist``, which writes:

* ``wheels/``: one wheel per distribution of the repository (``pip wheel --no-deps``, built
  with the virtual environment's pinned hatchling, without build isolation: offline).
* ``glue/glue_job.py``: the Glue job's ScriptLocation.
* ``lambda/trigger.zip`` and ``lambda/archive.zip``: the Lambda deployment packages, i.e.
  the core, ``ecommerce-lakehouse-aws`` and ``ecommerce-lakehouse-lambdas`` installed with
  ``pip install --no-deps --target`` (boto3 comes with the Lambda runtime; pyarrow and
  dependency-injector, which the aws adapter declares, are never imported by the Lambdas).
  Entries are sorted and carry fixed timestamps and modes, so the same source gives
  byte-identical zips and CloudFormation updates a function only when its code changed.
* ``manifest.json``: what the deploy script (``infra/deploy.py``) uploads and wires up;
  every path in it is relative to the output directory.

Exit codes: 0 built, 1 a build step failed, 2 bad usage. Errors are one line on stderr.
See ``docs/packaging.md``.
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import json
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

#: The repository root (this script lives in ``scripts/``).
ROOT = Path(__file__).resolve().parent.parent

#: Every distribution of the repository and its project directory, relative to the root.
DISTRIBUTIONS: Mapping[str, str] = {
    "ecommerce-lakehouse": ".",
    "ecommerce-lakehouse-delta": "adapters/delta-log",
    "ecommerce-lakehouse-polars": "adapters/polars-delta",
    "ecommerce-lakehouse-local": "adapters/local",
    "ecommerce-lakehouse-spark": "adapters/spark-delta",
    "ecommerce-lakehouse-aws": "adapters/aws",
    "ecommerce-lakehouse-cli": "entrypoints/cli",
    "ecommerce-lakehouse-glue": "entrypoints/glue",
    "ecommerce-lakehouse-sfn": "entrypoints/stepfunctions",
    "ecommerce-lakehouse-lambdas": "entrypoints/lambdas",
    "ecommerce-lakehouse-datagen": "tools/datagen",
    "ecommerce-lakehouse-trino": "adapters/trino",
}

#: What both Lambda zips hold (installed without their dependencies).
LAMBDA_DISTRIBUTIONS: tuple[str, ...] = (
    "ecommerce-lakehouse",
    "ecommerce-lakehouse-aws",
    "ecommerce-lakehouse-lambdas",
)

#: The Lambda functions: zip name and handler (``module.function``).
HANDLERS: Mapping[str, str] = {
    "trigger": "ecommerce_lakehouse_lambdas.trigger.handler",
    "archive": "ecommerce_lakehouse_lambdas.archive.handler",
}

#: The wheels the Glue job installs, in install order: the job opens an ``s3://`` lake with
#: the Spark engine (the aws platform's container, the Spark engine's, Spark SQL).
GLUE_DISTRIBUTIONS: tuple[str, ...] = (
    "ecommerce-lakehouse",
    "ecommerce-lakehouse-aws",
    "ecommerce-lakehouse-delta",
    "ecommerce-lakehouse-spark",
    "ecommerce-lakehouse-glue",
)

#: Third-party distributions the Glue 5.1 runtime provides (``delta-spark`` with
#: ``--datalake-formats delta``): never installed by the job, whose modules are installed
#: with ``--no-deps`` so that pip cannot replace them.
GLUE_PROVIDED: frozenset[str] = frozenset(
    {"boto3", "botocore", "pyarrow", "pandas", "numpy", "pyspark", "delta-spark"}
)

#: Declared dependencies of the Glue wheels that the job never imports on Glue, and why.
GLUE_UNUSED: Mapping[str, str] = {
    "ecommerce-lakehouse-local": (
        "directory lakes (the job run locally) and DuckDB SQL only; on Glue the job runs "
        "on the aws platform with its checks in Spark SQL"
    ),
}

#: The Glue job script (its ScriptLocation) and where it goes in the output.
GLUE_SCRIPT = "entrypoints/glue/glue_job.py"
GLUE_SCRIPT_OUT = "glue/glue_job.py"

#: Timestamp of every zip entry (the earliest a zip can hold), for reproducible zips.
ZIP_TIMESTAMP = (1980, 1, 1, 0, 0, 0)
#: Mode of every zip entry: a regular file readable by all (Lambda runs as another user).
ZIP_FILE_MODE = 0o100644

_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


class PackagingError(Exception):
    """A build step failed; the message is one line for the user."""


def normalise(name: str) -> str:
    """A distribution name in its canonical form (PEP 503): ``Foo_Bar`` -> ``foo-bar``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_pins(constraints: Path) -> dict[str, str]:
    """The exact pins of a constraints file: canonical name -> ``name==version``.

    Raises:
        PackagingError: the file cannot be read.
    """
    try:
        lines = constraints.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise PackagingError(f"cannot read {constraints}: {error.strerror}") from None
    pins: dict[str, str] = {}
    for line in lines:
        text = line.split("#", 1)[0].strip()
        name, sep, version = text.partition("==")
        if sep and name.strip() and version.strip():
            pins[normalise(name.strip())] = f"{name.strip()}=={version.strip()}"
    return pins


def project_version(root: Path) -> str:
    """The version of the root project (``[project].version`` of ``pyproject.toml``).

    Raises:
        PackagingError: the file is missing, not TOML, or has no version.
    """
    path = root / "pyproject.toml"
    try:
        version = tomllib.loads(path.read_text(encoding="utf-8"))["project"]["version"]
    except (OSError, tomllib.TOMLDecodeError, KeyError) as error:
        raise PackagingError(f"cannot read the project version from {path}: {error}") from None
    return str(version)


def _run(command: Sequence[str], what: str) -> None:
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        lines = [line for line in (done.stderr + done.stdout).splitlines() if line.strip()]
        detail = lines[-1].strip() if lines else f"exit code {done.returncode}"
        raise PackagingError(f"{what} failed: {detail}")


def build_wheels(target: Path) -> dict[str, Path]:
    """Build every distribution's wheel into ``target``; returns canonical name -> wheel.

    Raises:
        PackagingError: hatchling is missing, a build failed, or a wheel is missing.
    """
    if importlib.util.find_spec("hatchling") is None:
        raise PackagingError(f"hatchling is not installed in {sys.executable}: run make install")
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--wheel-dir",
            str(target),
            *DISTRIBUTIONS.values(),
        ],
        "pip wheel",
    )
    wheels = {normalise(path.name.split("-", 1)[0]): path for path in target.glob("*.whl")}
    missing = [name for name in DISTRIBUTIONS if name not in wheels]
    if missing:
        raise PackagingError(f"no wheel was built for {', '.join(missing)}")
    return wheels


def requirements(wheel: Path) -> list[str]:
    """The canonical names of a wheel's unconditional dependencies (extras left out).

    Raises:
        PackagingError: the wheel has no readable metadata.
    """
    try:
        with zipfile.ZipFile(wheel) as archive:
            name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
            metadata = archive.read(name).decode("utf-8")
    except (OSError, zipfile.BadZipFile, StopIteration) as error:
        raise PackagingError(f"cannot read the metadata of {wheel.name}: {error}") from None
    names: list[str] = []
    for line in metadata.splitlines():
        if not line.startswith("Requires-Dist:"):
            continue
        spec = line.removeprefix("Requires-Dist:")
        match = _NAME.match(spec)
        if match and "extra" not in spec.partition(";")[2]:
            names.append(normalise(match.group(1)))
    return names


def glue_requirements(wheels: Mapping[str, Path], pins: Mapping[str, str]) -> list[str]:
    """The pinned third-party requirements the Glue job installs beside its wheels.

    Every dependency of the Glue wheels that is neither one of them, nor provided by the
    Glue runtime, nor unused on Glue (:data:`GLUE_UNUSED`), pinned as in constraints.txt.

    Raises:
        PackagingError: such a dependency has no pin in constraints.txt.
    """
    ours = set(GLUE_DISTRIBUTIONS)
    needed: dict[str, None] = {}
    for distribution in GLUE_DISTRIBUTIONS:
        for name in requirements(wheels[distribution]):
            if name not in ours and name not in GLUE_PROVIDED and name not in GLUE_UNUSED:
                needed[name] = None
    unpinned = [name for name in needed if name not in pins]
    if unpinned:
        raise PackagingError(
            f"the Glue job needs {', '.join(unpinned)}, which constraints.txt does not pin"
        )
    return [pins[name] for name in sorted(needed)]


def _check_handlers(site: Path) -> None:
    for handler in HANDLERS.values():
        module, _, function = handler.rpartition(".")
        path = site / Path(*module.split(".")).with_suffix(".py")
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (OSError, SyntaxError) as error:
            raise PackagingError(f"cannot read the handler module {path.name}: {error}") from None
        if not any(isinstance(n, ast.FunctionDef) and n.name == function for n in tree.body):
            raise PackagingError(f"the Lambda package has no handler {handler}")


def _tidy(site: Path) -> None:
    # pip records the wheel's path on this machine (direct_url.json): it would make the
    # zips differ from one checkout to the next, and says nothing to Lambda.
    for record in site.glob("*.dist-info/RECORD"):
        direct_url = record.with_name("direct_url.json")
        if direct_url.exists():
            direct_url.unlink()
            prefix = f"{record.parent.name}/direct_url.json,"
            lines = record.read_text(encoding="utf-8").splitlines(keepends=True)
            record.write_text(
                "".join(line for line in lines if not line.startswith(prefix)), encoding="utf-8"
            )
    for cache in sorted(site.rglob("__pycache__"), reverse=True):
        shutil.rmtree(cache)


def write_zip(source: Path, target: Path) -> None:
    """Zip the files under ``source`` (at the zip's root) reproducibly.

    Entries are sorted by path and get a fixed timestamp and mode, so the same files give
    the same bytes whenever and wherever they are zipped.
    """
    files = sorted(
        (path.relative_to(source).as_posix(), path) for path in source.rglob("*") if path.is_file()
    )
    with zipfile.ZipFile(target, "w") as archive:
        for name, path in files:
            info = zipfile.ZipInfo(name, date_time=ZIP_TIMESTAMP)
            info.create_system = 3  # Unix, so the mode below is read as one
            info.external_attr = ZIP_FILE_MODE << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes(), compresslevel=9)


def build_lambda_zips(wheels: Mapping[str, Path], target: Path) -> dict[str, Path]:
    """Install the Lambda distributions into one directory and zip it once per function.

    Raises:
        PackagingError: pip failed or a handler is missing.
    """
    with tempfile.TemporaryDirectory(prefix="lambda-") as staging:
        site = Path(staging)
        _run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--no-deps",
                "--no-compile",
                "--target",
                str(site),
                *(str(wheels[name]) for name in LAMBDA_DISTRIBUTIONS),
            ],
            "pip install --target (Lambda package)",
        )
        _tidy(site)
        _check_handlers(site)
        zips: dict[str, Path] = {}
        for function in HANDLERS:
            zips[function] = target / f"{function}.zip"
            write_zip(site, zips[function])
    return zips


def _clear(out: Path) -> None:
    # Only what this script writes: other files in the output directory are left alone.
    for name in ("wheels", "glue", "lambda"):
        shutil.rmtree(out / name, ignore_errors=True)
    (out / "manifest.json").unlink(missing_ok=True)


def _relative(out: Path, paths: Iterable[Path]) -> list[str]:
    return [path.relative_to(out).as_posix() for path in paths]


def package(out: Path) -> dict[str, Any]:
    """Build every artefact into ``out`` and write ``out/manifest.json``; returns the manifest.

    Raises:
        PackagingError: a build step failed.
    """
    version = project_version(ROOT)
    pins = read_pins(ROOT / "constraints.txt")
    _clear(out)
    for name in ("wheels", "glue", "lambda"):
        (out / name).mkdir(parents=True, exist_ok=True)
    wheels = build_wheels(out / "wheels")
    shutil.copyfile(ROOT / GLUE_SCRIPT, out / GLUE_SCRIPT_OUT)
    zips = build_lambda_zips(wheels, out / "lambda")
    artefacts = sorted([*wheels.values(), out / GLUE_SCRIPT_OUT, *zips.values()])
    manifest: dict[str, Any] = {
        "version": version,
        "glue_script": GLUE_SCRIPT_OUT,
        "glue_wheels": _relative(out, (wheels[name] for name in GLUE_DISTRIBUTIONS)),
        "glue_requirements": glue_requirements(wheels, pins),
        "lambdas": dict(zip(zips, _relative(out, zips.values()), strict=True)),
        "handlers": dict(HANDLERS),
        "sizes": {path.relative_to(out).as_posix(): path.stat().st_size for path in artefacts},
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


def _table(out: Path, sizes: Mapping[str, int]) -> str:
    width = max(len(name) for name in sizes)
    rows = [f"{'artefact':<{width}}  {'bytes':>10}"]
    rows += [f"{name:<{width}}  {size:>10,}" for name, size in sizes.items()]
    rows.append(f"{'total':<{width}}  {sum(sizes.values()):>10,}")
    rows.append(f"manifest: {out / 'manifest.json'}")
    return "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> int:
    """Build the artefacts and print a table of them; returns the exit code (0, 1 or 2)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--out",
        type=Path,
        default=ROOT / "dist",
        help="output directory (default: dist/ of the repository)",
    )
    arguments = parser.parse_args(argv)
    out: Path = arguments.out.resolve()
    try:
        manifest = package(out)
    except PackagingError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except OSError as error:
        print(f"error: {error.filename or out}: {error.strerror}", file=sys.stderr)
        return 1
    print(_table(out, manifest["sizes"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
