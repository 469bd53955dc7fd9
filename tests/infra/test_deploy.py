"""``infra/deploy.py`` before it talks to AWS: arguments, ``dist/`` and what it computes.

Deployments themselves run against moto in ``tests/aws/test_stack_on_moto.py``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from infra import deploy
from tests.infra.fake_dist import REQUIREMENTS, WHEELS, make_dist, read_manifest, write_manifest

ROOT = Path(__file__).resolve().parents[2]
ARGS = ["--stack-name", "shop", "--artefact-bucket", "artefacts", "--prefix", "releases/abc"]


def run_main(capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str]:
    code = deploy.main([*ARGS, *extra])
    return code, capsys.readouterr().err


def assert_one_line(err: str, *fragments: str) -> None:
    assert err.count("\n") == 1 and err.startswith("deploy: "), err
    for fragment in fragments:
        assert fragment in err, err


def test_missing_manifest_is_a_one_line_usage_error_without_traceback(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "infra" / "deploy.py"), *ARGS, "--dist", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert_one_line(result.stderr, f"no {tmp_path}/manifest.json", "run `make package` first")


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (
            lambda m: m.update(
                lambdas={"trigger": "lambda/t.zip", "archive": "lambda/archive.zip"}
            ),
            "lambdas is",
        ),
        (lambda m: m.update(glue_script="glue/job.py"), "infra/template.yaml expects"),
        (lambda m: m["handlers"].update(trigger="x.handler"), "handlers is"),
        (lambda m: m.update(glue_wheels=["../outside.whl"]), "is not a path inside dist/"),
        (lambda m: m.update(glue_wheels=[]), "glue_wheels must name the .whl files"),
        (lambda m: m.update(glue_wheels="wheels/a.whl"), "glue_wheels must be a list"),
        (lambda m: m["sizes"].update({"glue/glue_job.py": 1}), "run `make package` again"),
        (lambda m: m.pop("version"), "version must be a non-empty string"),
    ],
)
def test_an_unusable_manifest_is_refused_before_any_upload(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], change: Any, fragment: str
) -> None:
    dist = make_dist(tmp_path)
    manifest = read_manifest(dist)
    change(manifest)
    write_manifest(dist, manifest)
    code, err = run_main(capsys, "--dist", str(dist))
    assert code == 2
    assert_one_line(err, fragment)


def test_a_file_the_manifest_names_must_exist(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dist = make_dist(tmp_path)
    (dist / WHEELS[1]).unlink()
    code, err = run_main(capsys, "--dist", str(dist))
    assert code == 2
    assert_one_line(err, f"{dist / WHEELS[1]} is missing")


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["--stack-name", "Shop"], "--stack-name 'Shop'"),
        (["--stack-name", "s" * 31], "at most 30 characters"),
        (["--prefix", "releases/a b"], "--prefix"),
        (["--parameter", "ArtefactPrefix=other"], "computed by deploy.py"),
        (["--parameter", "EnableCrawler"], "expected Key=Value"),
        (["--poll-seconds", "0"], "--poll-seconds"),
    ],
)
def test_bad_arguments_are_refused_before_any_aws_call(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], fragment: str
) -> None:
    dist = make_dist(tmp_path)
    code, err = run_main(capsys, "--dist", str(dist), *extra)
    assert code == 2
    assert_one_line(err, fragment)


def test_glue_modules_are_the_release_wheels_then_the_pinned_requirements(tmp_path: Path) -> None:
    manifest = deploy.read_manifest(make_dist(tmp_path))
    modules = deploy.glue_python_modules(manifest, "artefacts", "releases/abc")
    assert modules.split(",") == [
        *(f"s3://artefacts/releases/abc/{wheel}" for wheel in WHEELS),
        *REQUIREMENTS,
    ]


def test_every_built_file_and_the_manifest_are_uploaded(tmp_path: Path) -> None:
    dist = make_dist(tmp_path)
    manifest = deploy.read_manifest(dist)
    on_disk = sorted(str(p.relative_to(dist)) for p in dist.rglob("*") if p.is_file())
    assert sorted(manifest.files) == on_disk


def test_template_url_is_the_regional_s3_address() -> None:
    assert (
        deploy.template_url("artefacts", "releases/abc/cloudformation/template.yaml", "eu-west-1")
        == "https://artefacts.s3.eu-west-1.amazonaws.com/releases/abc/cloudformation/template.yaml"
    )
    assert (
        deploy.template_url("a", "k", "cn-north-1") == "https://a.s3.cn-north-1.amazonaws.com.cn/k"
    )


def test_the_template_is_too_large_to_send_inline() -> None:
    # Why deploy.py uploads the template and passes its URL (TemplateBody: 51,200 bytes).
    assert deploy.TEMPLATE.stat().st_size > 51_200
