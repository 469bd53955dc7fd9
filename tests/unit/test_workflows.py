"""The GitHub Actions workflows: actionlint finds nothing, and they gate and deploy as agreed.

actionlint is built by ``make install`` (``go install``, into ``build/go/bin``) and named by
``LAKEHOUSE_ACTIONLINT``; it runs shellcheck on the ``run:`` scripts when shellcheck is on
``PATH`` (it is on GitHub's Ubuntu runners).
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"


def actionlint() -> Path:
    binary = Path(
        os.environ.get("LAKEHOUSE_ACTIONLINT") or ROOT / "build" / "go" / "bin" / "actionlint"
    )
    if not binary.is_file():
        pytest.fail(f"actionlint not found at {binary}: run make install")
    return binary


def run_actionlint(*files: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(actionlint()), "-no-color", "-oneline", *map(str, files)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )


def load(name: str) -> dict[Any, Any]:
    document: dict[Any, Any] = yaml.safe_load((WORKFLOWS / name).read_text())
    return document


def triggers(workflow: dict[Any, Any]) -> dict[str, Any]:
    # YAML 1.1 (PyYAML) reads the key `on` as the boolean True.
    found: dict[str, Any] = workflow.get("on", workflow.get(True))
    return found


def steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = job["steps"]
    return found


def runs(job: dict[str, Any]) -> list[str]:
    return [" ".join(str(step["run"]).split()) for step in steps(job) if "run" in step]


def test_actionlint_finds_nothing_in_the_workflows() -> None:
    files = sorted(WORKFLOWS.glob("*.yml"))
    assert [f.name for f in files] == ["ci.yml", "deploy.yml"]
    done = run_actionlint(*files)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


def test_actionlint_reports_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: push\n"
        "jobs:\n"
        "  deploy:\n"
        "    needs: tset\n"
        "    runs-on: ubuntu-latest\n"
        "    steps:\n"
        "      - run: echo ${{ github.no_such_property }}\n"
    )
    done = run_actionlint(broken)
    assert done.returncode == 1
    assert '"tset"' in done.stdout and "no_such_property" in done.stdout


def test_ci_runs_make_test_on_pull_requests_and_pushes_to_main() -> None:
    ci = load("ci.yml")
    on = triggers(ci)
    assert "pull_request" in on and on["push"]["branches"] == ["main"]
    assert "workflow_call" in on  # deploy.yml's gate
    (job,) = ci["jobs"].values()
    assert job["runs-on"] == "ubuntu-latest" and job["timeout-minutes"] == 90
    assert runs(job) == ["make test"]
    assert ci["concurrency"]["cancel-in-progress"] is True


def test_ci_sets_up_python_311_java_17_and_25_and_go() -> None:
    (job,) = load("ci.yml")["jobs"].values()
    setup = {str(s["uses"]).split("@")[0]: s.get("with", {}) for s in steps(job) if "uses" in s}
    assert setup["actions/setup-python"]["python-version"] == "3.11"
    java = setup["actions/setup-java"]
    assert java["distribution"] == "temurin"
    # Trino's Java first; Spark's Java 17 last, the default (JAVA_HOME, PATH).
    assert str(java["java-version"]).split() == ["25", "17"]
    assert str(setup["actions/setup-go"]["go-version"]).startswith("1.26")
    assert "constraints.txt" in setup["actions/setup-python"]["cache-dependency-path"]
    assert "build/m2" in setup["actions/cache"]["path"]


def test_deploy_passes_ci_then_packages_and_deploys_with_an_oidc_role() -> None:
    deploy = load("deploy.yml")
    on = triggers(deploy)
    assert on["push"]["branches"] == ["main"] and "workflow_dispatch" in on
    assert "pull_request" not in on
    jobs = deploy["jobs"]
    assert jobs["test"]["uses"] == "./.github/workflows/ci.yml"
    job = jobs["deploy"]
    assert job["needs"] == "test" and job["environment"] == "production"
    assert job["permissions"] == {"id-token": "write", "contents": "read"}
    (login,) = [
        s for s in steps(job) if str(s.get("uses", "")).startswith("aws-actions/configure-aws")
    ]
    assert login["uses"] == "aws-actions/configure-aws-credentials@v4"
    assert login["with"] == {
        "role-to-assume": "${{ vars.AWS_DEPLOY_ROLE_ARN }}",
        "aws-region": "${{ vars.AWS_REGION }}",
    }
    assert runs(job) == [
        "make package",
        '.venv/bin/python infra/deploy.py --stack-name "$LAKEHOUSE_STACK_NAME" '
        '--artefact-bucket "$ARTEFACT_BUCKET" --prefix "releases/$GITHUB_SHA" '
        '--region "$AWS_REGION"',
    ]
    assert steps(job).index(login) < [s.get("run") for s in steps(job)].index("make package")
    assert job["env"] == {
        "AWS_REGION": "${{ vars.AWS_REGION }}",
        "LAKEHOUSE_STACK_NAME": "${{ vars.LAKEHOUSE_STACK_NAME }}",
        "ARTEFACT_BUCKET": "${{ vars.ARTEFACT_BUCKET }}",
    }
    # Deployments queue; none is cancelled halfway.
    assert deploy["concurrency"]["cancel-in-progress"] is False


@pytest.mark.parametrize("name", ["ci.yml", "deploy.yml"])
def test_no_workflow_holds_aws_keys_and_every_action_is_pinned_to_a_major_version(
    name: str,
) -> None:
    text = (WORKFLOWS / name).read_text()
    for key in ("aws-access-key-id", "aws-secret-access-key", "AWS_ACCESS_KEY_ID", "secrets."):
        assert key not in text
    workflow = load(name)
    assert workflow["permissions"] == {"contents": "read"}
    uses = [
        str(s["uses"])
        for job in workflow["jobs"].values()
        for s in job.get("steps", [])
        if "uses" in s
    ]
    assert uses and all(re.fullmatch(r"[\w-]+/[\w-]+@v\d+", u) for u in uses), uses
