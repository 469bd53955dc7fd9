"""Deploy a release of ecommerce-lakehouse: upload ``dist/`` and create or update the stack.

Used by the GitHub deploy workflow after ``make package``::

    .venv/bin/python infra/deploy.py --stack-name "$LAKEHOUSE_STACK_NAME"
        --artefact-bucket "$ARTEFACT_BUCKET" --prefix "releases/$GITHUB_SHA"
        --region "$AWS_REGION"

1. reads ``<dist>/manifest.json`` (written by ``scripts/package.py``) and checks that every
   file it names exists with the size it records and that the Lambda zips, the Glue script
   and the handlers are where ``infra/template.yaml`` expects them;
2. uploads every artefact, the manifest and the template to
   ``s3://<artefact bucket>/<prefix>/<same relative path>``, skipping objects that already
   hold the same SHA-256 (a re-run uploads nothing);
3. computes the Glue job's ``--additional-python-modules`` (the wheels' ``s3://`` URIs and the
   pinned requirements) and creates the stack, or updates it - parameters not given keep
   their previous values, and "No updates are to be performed" is a success;
4. prints the stack's outputs.

Exit codes: 0 deployed (or nothing to change), 1 AWS refused or the stack failed (rolled
back), 2 bad usage or an unusable ``dist/``. Errors are one line on stderr.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import boto3
import yaml  # type: ignore[import-untyped,unused-ignore]
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, WaiterError

TEMPLATE = Path(__file__).resolve().parent / "template.yaml"
#: Where the template expects the artefacts, relative to the release prefix.
GLUE_SCRIPT = "glue/glue_job.py"
LAMBDAS: Mapping[str, str] = {"trigger": "lambda/trigger.zip", "archive": "lambda/archive.zip"}
HANDLERS: Mapping[str, str] = {
    "trigger": "ecommerce_lakehouse_lambdas.trigger.handler",
    "archive": "ecommerce_lakehouse_lambdas.archive.handler",
}
#: Key of the template, relative to the release prefix (CloudFormation reads it from there:
#: the template is larger than the 51,200 bytes a TemplateBody may hold).
TEMPLATE_KEY = "cloudformation/template.yaml"
MANIFEST = "manifest.json"
#: Parameters this script computes; ``--parameter`` cannot set them.
COMPUTED = ("ArtefactBucket", "ArtefactPrefix", "GlueAdditionalPythonModules")
#: The stack name becomes part of the lake bucket's name (<name>-lake-<account>-<region>).
STACK_NAME = re.compile(r"[a-z][a-z0-9-]{0,29}")
PREFIX = re.compile(r"[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*")
BUSY_SUFFIX = "_IN_PROGRESS"
#: Stacks in these states cannot be updated; an administrator deletes them (docs/runbook.md).
DEAD_STATES = ("ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "DELETE_FAILED", "UPDATE_ROLLBACK_FAILED")
NO_UPDATES = "No updates are to be performed"
CHUNK = 1024 * 1024


class DeployError(Exception):
    """An expected failure, reported as one line with its exit code."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class UsageError(DeployError):
    """Bad arguments or an unusable ``dist/`` (exit code 2)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, exit_code=2)


@dataclass(frozen=True, slots=True)
class Manifest:
    """What ``make package`` built (``dist/manifest.json``).

    Attributes:
        version: the project version of the wheels.
        glue_script: the Glue job's script, relative to ``dist/``.
        glue_wheels: the wheels the Glue job installs, relative to ``dist/``, in order.
        glue_requirements: pinned requirements the Glue job installs besides the wheels.
        lambdas: function name -> zip, relative to ``dist/``.
        files: every file to upload, relative to ``dist/`` (the manifest included).
    """

    version: str
    glue_script: str
    glue_wheels: tuple[str, ...]
    glue_requirements: tuple[str, ...]
    lambdas: Mapping[str, str]
    files: tuple[str, ...]


def _relative(value: object, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise UsageError(f"dist/{MANIFEST}: {what} must be a relative path")
    path = PurePosixPath(value)
    if path.is_absolute() or ".." in path.parts or "\\" in value:
        raise UsageError(f"dist/{MANIFEST}: {what} {value!r} is not a path inside dist/")
    return str(path)


def _strings(value: object, what: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise UsageError(f"dist/{MANIFEST}: {what} must be a list of strings")
    return list(value)


def read_manifest(dist: Path) -> Manifest:
    """Read and check ``<dist>/manifest.json`` against the files and the template's layout.

    Raises:
        UsageError: the manifest is missing or malformed, a file it names is missing or has
            another size than recorded, or the layout is not the one the template expects.
    """
    path = dist / MANIFEST
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"no {path}: run `make package` first") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UsageError(f"cannot read {path}: {error}") from None
    if not isinstance(document, dict):
        raise UsageError(f"{path} is not a JSON object")
    version = document.get("version")
    if not isinstance(version, str) or not version:
        raise UsageError(f"{path}: version must be a non-empty string")
    script = _relative(document.get("glue_script"), "glue_script")
    wheels = [
        _relative(w, "glue_wheels entry")
        for w in _strings(document.get("glue_wheels"), "glue_wheels")
    ]
    if not wheels or not all(w.endswith(".whl") for w in wheels):
        raise UsageError(f"{path}: glue_wheels must name the .whl files the Glue job installs")
    requirements = _strings(document.get("glue_requirements", []), "glue_requirements")
    lambdas = document.get("lambdas")
    if not isinstance(lambdas, dict):
        raise UsageError(f"{path}: lambdas must map function names to zips")
    zips = {str(name): _relative(zip_path, f"lambdas.{name}") for name, zip_path in lambdas.items()}
    # The template names these keys itself (Code.S3Key, ScriptLocation, Handler).
    expected = {"glue_script": {"glue": GLUE_SCRIPT}, "lambdas": dict(LAMBDAS)}
    found = {"glue_script": {"glue": script}, "lambdas": zips}
    handlers = document.get("handlers")
    if handlers is not None:
        expected["handlers"] = dict(HANDLERS)
        found["handlers"] = handlers if isinstance(handlers, dict) else {}
    for key, wanted in expected.items():
        if found[key] != wanted:
            raise UsageError(
                f"{path}: {key} is {found[key]}, but infra/template.yaml expects {wanted}"
            )
    sizes = document.get("sizes", {})
    if not isinstance(sizes, dict) or not all(isinstance(v, int) for v in sizes.values()):
        raise UsageError(f"{path}: sizes must map paths to byte counts")
    files = sorted({script, *wheels, *zips.values(), *(_relative(k, "sizes key") for k in sizes)})
    for name in files:
        file = dist / name
        if not file.is_file():
            raise UsageError(f"{file} is missing: run `make package` again")
        if name in sizes and file.stat().st_size != sizes[name]:
            raise UsageError(
                f"{file} has {file.stat().st_size} bytes, the manifest says {sizes[name]}: "
                "run `make package` again"
            )
    return Manifest(
        version=version,
        glue_script=script,
        glue_wheels=tuple(wheels),
        glue_requirements=tuple(requirements),
        lambdas=zips,
        files=(*files, MANIFEST),
    )


#: A safe YAML loader that reads a template's plain parts; short-form tags (!Ref, ...) are None.
_TOLERANT: Any = type("TolerantLoader", (yaml.SafeLoader,), {})
_TOLERANT.add_multi_constructor("!", lambda loader, suffix, node: None)


def declared_parameters(template: str) -> dict[str, str | None]:
    """The template's parameters and their defaults (None: the template gives none).

    Raises:
        UsageError: the template is not a YAML mapping with a Parameters section.
    """
    try:
        document = yaml.load(template, Loader=_TOLERANT)
    except yaml.YAMLError as error:
        raise UsageError(
            f"the template is not valid YAML: {' '.join(str(error).split())}"
        ) from None
    section = document.get("Parameters") if isinstance(document, dict) else None
    if not isinstance(section, dict):
        raise UsageError("the template declares no Parameters")
    return {
        str(name): None if "Default" not in spec else str(spec["Default"])
        for name, spec in section.items()
    }


def glue_python_modules(manifest: Manifest, bucket: str, prefix: str) -> str:
    """The Glue job's ``--additional-python-modules``: wheel URIs, then pinned requirements."""
    uris = [f"s3://{bucket}/{prefix}/{wheel}" for wheel in manifest.glue_wheels]
    return ",".join([*uris, *manifest.glue_requirements])


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _one_line(error: Exception) -> str:
    if isinstance(error, ClientError):
        message = error.response.get("Error", {}).get("Message") or str(error)
        return " ".join(f"{_error_code(error)}: {message}".split())
    return " ".join(str(error).split())


def upload(s3: Any, bucket: str, key: str, path: Path) -> bool:
    """Upload ``path`` to ``s3://bucket/key`` unless the object holds the same SHA-256.

    Returns:
        True when the file was uploaded, False when the object was already there.
    """
    digest = sha256_of(path)
    try:
        head = s3.head_object(Bucket=bucket, Key=key)
        if head.get("Metadata", {}).get("sha256") == digest:
            return False
    except ClientError as error:
        if _error_code(error) not in ("404", "NoSuchKey", "NotFound"):
            raise
    s3.upload_file(str(path), bucket, key, ExtraArgs={"Metadata": {"sha256": digest}})
    return True


def template_url(bucket: str, key: str, region: str) -> str:
    """The HTTPS URL CloudFormation reads a template in S3 from."""
    domain = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return f"https://{bucket}.s3.{region}.{domain}/{key}"


def parse_parameters(pairs: Sequence[str]) -> dict[str, str]:
    """``Key=Value`` options as a mapping (the last value of a key wins).

    Raises:
        UsageError: a pair has no ``=`` or names a parameter this script computes.
    """
    parameters: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--parameter {pair!r}: expected Key=Value")
        if key in COMPUTED:
            raise UsageError(f"--parameter {key} is computed by deploy.py and cannot be set")
        parameters[key] = value
    return parameters


@dataclass(frozen=True, slots=True)
class Clients:
    """The AWS clients of one deployment."""

    s3: Any
    cloudformation: Any


def make_clients(region: str | None, endpoint_url: str | None) -> tuple[Clients, str]:
    """Clients for ``region`` (else the environment's) and optional emulator endpoint.

    Raises:
        UsageError: no region is given or configured.
    """
    # boto3 reads AWS_DEFAULT_REGION and the profile; the CLI and the workflow set AWS_REGION.
    session = boto3.session.Session(region_name=region or os.environ.get("AWS_REGION") or None)
    if not session.region_name:
        raise UsageError("no AWS region: pass --region (or set AWS_REGION)")
    # Emulators serve every bucket under one host: path-style addressing.
    config = Config(s3={"addressing_style": "path"}) if endpoint_url else Config()
    clients = Clients(
        s3=session.client("s3", endpoint_url=endpoint_url, config=config),
        cloudformation=session.client("cloudformation", endpoint_url=endpoint_url),
    )
    return clients, str(session.region_name)


def describe(cloudformation: Any, stack_name: str) -> dict[str, Any] | None:
    """The stack's description, or None when it does not exist."""
    try:
        stacks = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as error:
        if _error_code(error) == "ValidationError" and "does not exist" in _one_line(error):
            return None
        raise
    return dict(stacks[0]) if stacks else None


def _failure_reason(cloudformation: Any, stack_name: str, since: float) -> str:
    """The first resource failure of the operation that started at ``since``."""
    try:
        pages = cloudformation.get_paginator("describe_stack_events").paginate(StackName=stack_name)
        events: Iterator[dict[str, Any]] = (e for page in pages for e in page["StackEvents"])
        failures = [
            e
            for e in events
            if str(e.get("ResourceStatus", "")).endswith("_FAILED")
            and e.get("Timestamp") is not None
            and e["Timestamp"].timestamp() >= since - 1
        ]
    except (ClientError, BotoCoreError):
        return ""
    if not failures:
        return ""
    first = min(failures, key=lambda e: e["Timestamp"])
    return (
        f": {first.get('LogicalResourceId')} {first.get('ResourceStatus')}: "
        f"{first.get('ResourceStatusReason', '')}"
    )


def stack_parameters(
    declared: Mapping[str, str | None],
    given: Mapping[str, str],
    existing: Sequence[Mapping[str, str]] | None,
) -> list[dict[str, Any]]:
    """Every declared parameter with the value it gets: given, else kept, else the default.

    On an update a parameter not given keeps the stack's current value (UsePreviousValue);
    a create passes every default explicitly, so that the stack records all of them (an
    emulator resolves UsePreviousValue only for recorded values).

    Raises:
        UsageError: a given parameter is not declared, or one without a default has no value.
    """
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise UsageError(f"the template has no parameter(s) {', '.join(unknown)}")
    current = {p["ParameterKey"] for p in existing or []}
    values: list[dict[str, Any]] = []
    for key, default in declared.items():
        if key in given:
            values.append({"ParameterKey": key, "ParameterValue": given[key]})
        elif key in current:
            values.append({"ParameterKey": key, "UsePreviousValue": True})
        elif default is not None:
            values.append({"ParameterKey": key, "ParameterValue": default})
        else:
            raise UsageError(f"the template needs --parameter {key}=...")
    return values


def deploy_stack(
    cloudformation: Any,
    stack_name: str,
    url: str,
    declared: Mapping[str, str | None],
    parameters: Mapping[str, str],
    poll_seconds: int,
) -> str:
    """Create the stack, or update it; wait until it is done.

    Parameters the stack has but ``parameters`` does not name keep their current values.

    Returns:
        ``created``, ``updated`` or ``unchanged``.

    Raises:
        DeployError: the stack is busy or unusable, CloudFormation refused the request, or
            the operation failed (the first failing resource is named).
    """
    existing = describe(cloudformation, stack_name)
    request: dict[str, Any] = {
        "StackName": stack_name,
        "TemplateURL": url,
        "Capabilities": ["CAPABILITY_NAMED_IAM"],
    }
    since = time.time()
    if existing is None:
        values = stack_parameters(declared, parameters, None)
        cloudformation.create_stack(**request, Parameters=values, EnableTerminationProtection=True)
        waiter, outcome = "stack_create_complete", "created"
    else:
        status = str(existing.get("StackStatus", ""))
        if status.endswith(BUSY_SUFFIX):
            raise DeployError(f"stack {stack_name} is busy ({status}): try again when it is done")
        if status in DEAD_STATES:
            raise DeployError(
                f"stack {stack_name} is {status} and cannot be updated: "
                "an administrator deletes it (docs/runbook.md), then deploy again"
            )
        values = stack_parameters(declared, parameters, existing.get("Parameters", []))
        try:
            cloudformation.update_stack(**request, Parameters=values)
        except ClientError as error:
            if NO_UPDATES in _one_line(error):
                return "unchanged"
            raise
        waiter, outcome = "stack_update_complete", "updated"
    try:
        cloudformation.get_waiter(waiter).wait(
            StackName=stack_name,
            WaiterConfig={"Delay": poll_seconds, "MaxAttempts": max(1, 3 * 3600 // poll_seconds)},
        )
    except WaiterError as error:
        state = describe(cloudformation, stack_name) or {}
        status = state.get("StackStatus", "unknown")
        reason = _failure_reason(cloudformation, stack_name, since)
        raise DeployError(f"stack {stack_name} is {status}{reason or ': ' + str(error)}") from None
    return outcome


def outputs(cloudformation: Any, stack_name: str) -> dict[str, str]:
    """The stack's outputs by key."""
    stack = describe(cloudformation, stack_name) or {}
    return {o["OutputKey"]: str(o["OutputValue"]) for o in stack.get("Outputs", [])}


def build_parser() -> argparse.ArgumentParser:
    """The command line of this script."""
    parser = argparse.ArgumentParser(
        prog="infra/deploy.py",
        description="Upload dist/ and create or update the ecommerce-lakehouse stack.",
    )
    parser.add_argument("--stack-name", required=True, help="lower case, at most 30 characters")
    parser.add_argument("--artefact-bucket", required=True, help="the bootstrap stack's bucket")
    parser.add_argument("--prefix", required=True, help="release key prefix: releases/<sha>")
    parser.add_argument("--dist", type=Path, default=Path("dist"), help="make package's output")
    parser.add_argument("--region", help="AWS region (default: the environment's)")
    parser.add_argument("--endpoint-url", help="an emulator's endpoint, for every service")
    parser.add_argument(
        "--parameter",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a stack parameter (repeatable); others keep their previous values",
    )
    parser.add_argument("--template", type=Path, default=TEMPLATE, help=argparse.SUPPRESS)
    parser.add_argument(
        "--poll-seconds", type=int, default=15, help="wait between stack status reads"
    )
    return parser


def run(args: argparse.Namespace) -> int:
    """Deploy as ``args`` say; print progress and the outputs.

    Raises:
        DeployError: an expected failure (see the module docstring for exit codes).
    """
    if not STACK_NAME.fullmatch(args.stack_name):
        raise UsageError(
            f"--stack-name {args.stack_name!r}: lower-case letters, digits and '-', starting "
            "with a letter, at most 30 characters (it names the lake bucket)"
        )
    prefix = args.prefix.strip("/")
    if not PREFIX.fullmatch(prefix):
        raise UsageError(f"--prefix {args.prefix!r}: letters, digits, '.', '_', '-' and '/'")
    if args.poll_seconds < 1:
        raise UsageError("--poll-seconds must be at least 1")
    parameters = parse_parameters(args.parameter)
    manifest = read_manifest(args.dist)
    try:
        template = args.template.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"cannot read the template: {error}") from None
    declared = declared_parameters(template)
    bucket = args.artefact_bucket
    parameters.update(
        ArtefactBucket=bucket,
        ArtefactPrefix=prefix,
        GlueAdditionalPythonModules=glue_python_modules(manifest, bucket, prefix),
    )
    stack_parameters(declared, parameters, None)  # refuse unknown or missing ones up front
    clients, region = make_clients(args.region, args.endpoint_url)
    uploaded = 0
    for name in manifest.files:
        uploaded += upload(clients.s3, bucket, f"{prefix}/{name}", args.dist / name)
    template_key = f"{prefix}/{TEMPLATE_KEY}"
    uploaded += upload(clients.s3, bucket, template_key, args.template)
    print(
        f"deploy: {uploaded} of {len(manifest.files) + 1} files uploaded to "
        f"s3://{bucket}/{prefix}/ (version {manifest.version})"
    )
    outcome = deploy_stack(
        clients.cloudformation,
        args.stack_name,
        template_url(bucket, template_key, region),
        declared,
        parameters,
        args.poll_seconds,
    )
    print(f"deploy: stack {args.stack_name} {outcome}")
    for key, value in sorted(outputs(clients.cloudformation, args.stack_name).items()):
        print(f"{key}={value}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; errors are one line on stderr.

    Returns:
        0 deployed or unchanged, 1 AWS or the stack failed, 2 bad usage or ``dist/``.
    """
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except DeployError as error:
        print(f"deploy: {error}", file=sys.stderr)
        return error.exit_code
    except (ClientError, BotoCoreError) as error:
        print(f"deploy: {_one_line(error)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
