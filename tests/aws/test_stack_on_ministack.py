"""``infra/template.yaml`` deployed by ``infra/deploy.py`` into MiniStack's CloudFormation.

MiniStack (``constraints-ministack.txt``; ``make install`` puts it in ``build/ministack``, a
virtual environment of its own because it pins its own botocore) is a second AWS emulator.
Unlike moto (``test_stack_on_moto.py``) its CloudFormation has a model of every resource
type of the template. The module starts one server as a child process on a free port of
127.0.0.1 (``LAKEHOUSE_MINISTACK`` names its executable), deploys a fake ``dist/``
(``tests/infra/fake_dist.py``) through deploy.py with ``--endpoint-url``, and reads what it
created through the services' own APIs.

What MiniStack 1.5.33 makes of the template:

* created, with the template's properties: every resource, ``CREATE_COMPLETE`` - the Glue
  database, the Glue job (command, role, worker settings, every ``DefaultArguments`` entry),
  the crawler (``DeltaTargets``, schema change policy) when ``EnableCrawler`` is true, the
  Athena workgroup (enforced configuration, SSE-S3 result location, engine, cutoff), the
  bucket policy, the Lambda functions (code from the uploaded zips), their permission and
  event invoke configuration, the roles (trust and inline policies), the log groups
  (retention), the queue, the alarms and the state machine, whose ``DefinitionString`` gets
  its ``DefinitionSubstitutions`` applied; every output;
* of the bucket's properties it applies versioning, the public access block and the Lambda
  notification; ``BucketEncryption`` and ``OwnershipControls`` are not applied, the bucket has
  the defaults of every new bucket (SSE-S3 without a bucket key, ``BucketOwnerEnforced``, as
  on AWS), and the lifecycle rules are ignored;
* dropped: the Glue job's ``ExecutionProperty`` (``MaxConcurrentRuns``: MiniStack's Glue has
  no field for it), the trigger's ``ReservedConcurrentExecutions``, the roles'
  ``PermissionsBoundary`` and the state machine's ``LoggingConfiguration`` (the template's
  values are tested statically in ``tests/infra/test_template.py``; moto applies the
  reserved concurrency).

Where it differs from AWS otherwise:

* it reads ``TemplateURL`` as a path-style URL only (``https://<host>/<bucket>/<key>``);
  deploy.py gives the virtual-hosted form (``https://<bucket>.s3.<region>.amazonaws.com/``),
  which MiniStack misreads as bucket ``releases``, so this module replaces
  ``deploy.template_url`` with the path-style form; deploy.py itself is unchanged;
* the queue's URL (the ``TriggerFailureQueueUrl`` output) is ``http://localhost:<port>/...``;
* the Glue job's ``Timeout`` and ``NumberOfWorkers`` and the workgroup's
  ``BytesScannedCutoffPerQuery`` are returned as the parameter strings (AWS: numbers), and
  the workgroup's engine version has no ``EffectiveEngineVersion``.

As on AWS and unlike moto, an update re-evaluates ``Fn::Sub`` (a new release deploys the
functions' new code and points the Glue job at the new script and wheels), and the Glue
database's name belongs to the account: a second stack with the same ``GlueDatabaseName``
fails and rolls back, which deploy.py reports with the failing resource. Every further stack
here therefore gets a database of its own.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ecommerce_lakehouse_sfn import StateMachineSettings, definition_json
from infra import deploy

# The test_* names are checks that hold on both emulators, collected here again: they
# run against this module's `deployed` fixture (the stack in ministack).
from tests.aws.test_stack_on_moto import (  # noqa: F401
    Deployment,
    machine_arn,
    new_stack_name,
    run_deploy,
    test_each_source_may_invoke_the_trigger_only_for_its_own_events,
    test_failure_queue_is_encrypted_and_keeps_messages_two_weeks,
    test_log_groups_exist_with_retention,
    test_the_trigger_hears_every_runs_end_and_a_five_minute_schedule,
)
from tests.aws_support import (
    ACCESS_KEY_ID,
    ACCOUNT_ID,
    REGION,
    SECRET_ACCESS_KEY,
    MotoServer,
    _free_port,
    _stop,
)
from tests.infra import cfn
from tests.infra.fake_dist import make_dist, read_manifest

pytestmark = pytest.mark.aws

ROOT = Path(__file__).resolve().parents[2]
#: The parameters of the main deployment: the crawler and the error variant of the gate.
CRAWLER_AND_ERRORS = {"EnableCrawler": "true", "ForeignKeySeverity": "error"}


# ---------------------------------------------------------------------------- the server


def ministack_executable() -> Path:
    """The ``ministack`` command ``make install`` builds (``LAKEHOUSE_MINISTACK``)."""
    executable = Path(
        os.environ.get("LAKEHOUSE_MINISTACK") or ROOT / "build" / "ministack" / "bin" / "ministack"
    )
    if not executable.is_file():
        pytest.fail(f"ministack not found at {executable}: run make install")
    return executable


def server_environment(port: int, workdir: Path) -> dict[str, str]:
    """MiniStack's settings: this port on 127.0.0.1 only, the tests' region and account, no
    persistence, its PID file (``$TMPDIR/ministack-<port>.pid``) in ``workdir``."""
    return {
        **os.environ,
        "GATEWAY_PORT": str(port),
        "BIND_HOST": "127.0.0.1",
        "MINISTACK_REGION": REGION,
        "MINISTACK_ACCOUNT_ID": ACCOUNT_ID,  # the account of a non-numeric access key
        "PERSIST_STATE": "0",
        "S3_PERSIST": "0",
        "LOCALSTACK_PERSISTENCE": "0",
        "LOG_LEVEL": "WARNING",
        "TMPDIR": str(workdir),
    }


def _start(
    executable: Path, workdir: Path, attempts: int = 3
) -> tuple[MotoServer, subprocess.Popen[bytes]]:
    log = workdir / "ministack.log"
    for _ in range(attempts):
        port = _free_port()
        with log.open("wb") as output:
            process = subprocess.Popen(
                [str(executable)],
                stdout=output,
                stderr=subprocess.STDOUT,
                env=server_environment(port, workdir),
            )
        endpoint = f"http://127.0.0.1:{port}"
        if _ready(endpoint, process):
            return MotoServer(endpoint=endpoint, port=port), process
        _stop(process)  # the port was taken meanwhile: try another one
    tail = log.read_text(errors="replace")[-2000:]
    raise RuntimeError(f"ministack did not start after {attempts} attempts:\n{tail}")


def _ready(endpoint: str, process: subprocess.Popen[bytes], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(f"{endpoint}/_ministack/health", timeout=1):
                return True
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    return False


def path_style_template_url(bucket: str, key: str, region: str) -> str:
    """The template's URL in the path-style form, the only one MiniStack reads."""
    return f"https://s3.{region}.amazonaws.com/{bucket}/{key}"


@pytest.fixture(scope="module")
def ministack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    """A MiniStack server for this module, with fake credentials in the environment
    deploy.py's boto3 reads. ``MotoServer`` is only the endpoint and its boto3 clients."""
    server, process = _start(ministack_executable(), tmp_path_factory.mktemp("ministack"))
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID)
            patch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)
            patch.delenv("AWS_SESSION_TOKEN", raising=False)
            patch.delenv("AWS_PROFILE", raising=False)
            patch.setattr(deploy, "template_url", path_style_template_url)
            yield server
    finally:
        _stop(process)


# ---------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def deployed(ministack: MotoServer, tmp_path_factory: pytest.TempPathFactory) -> Deployment:
    dist = make_dist(tmp_path_factory.mktemp("release"))
    parameters = [f"--parameter={key}={value}" for key, value in CRAWLER_AND_ERRORS.items()]
    result = run_deploy(ministack, new_stack_name(), ministack.new_bucket(), dist, *parameters)
    assert result.code == 0, result.stderr
    return result


def python_modules(deployment: Deployment) -> str:
    """The Glue job's ``--additional-python-modules`` for the deployment's manifest."""
    manifest = read_manifest(deployment.dist)
    base = f"s3://{deployment.artefacts}/{deployment.prefix}"
    wheels = [f"{base}/{wheel}" for wheel in manifest["glue_wheels"]]
    return ",".join([*wheels, *manifest["glue_requirements"]])


def model(deployment: Deployment, **parameters: str) -> cfn.Stack:
    """The template evaluated for the deployment, with its computed modules."""
    return deployment.model(GlueAdditionalPythonModules=python_modules(deployment), **parameters)


def own_database(stack: str) -> str:
    """A Glue database for one more stack: the name is the account's, like on AWS, where a
    second stack with the first one's database fails."""
    return f"db_{stack}"


def names(
    deployment: Deployment,
    *,
    crawler: bool,
    severity: str,
    database: str = "ecommerce_lakehouse",
) -> dict[str, str]:
    """The ``LAKEHOUSE_*`` names ``lakehouse state-machine`` takes for this stack."""
    stack, bucket = deployment.stack, deployment.bucket
    found = {
        "LAKEHOUSE_LAKE": f"s3://{bucket}",
        "LAKEHOUSE_GLUE_JOB": f"{stack}-ingest",
        "LAKEHOUSE_ARCHIVE_FUNCTION": (
            f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{stack}-archive"
        ),
        "LAKEHOUSE_GLUE_DATABASE": database,
        "LAKEHOUSE_ATHENA_WORKGROUP": f"{stack}-athena",
        "LAKEHOUSE_ATHENA_OUTPUT": f"s3://{bucket}/athena-results/",
        "LAKEHOUSE_FK_SEVERITY": severity,
    }
    if crawler:
        found["LAKEHOUSE_CRAWLER"] = f"{stack}-crawler"
    return found


def code_sha256(path: Path) -> str:
    """Lambda's ``CodeSha256`` of a zip."""
    return base64.b64encode(hashlib.sha256(path.read_bytes()).digest()).decode()


def created_resources(deployment: Deployment) -> dict[str, str]:
    """Logical id -> type of every resource of the stack (all must be complete)."""
    cloudformation = deployment.moto.client("cloudformation")
    listed = cloudformation.describe_stack_resources(StackName=deployment.stack)["StackResources"]
    assert {r["ResourceStatus"] for r in listed} == {"CREATE_COMPLETE"}, listed
    return {r["LogicalResourceId"]: r["ResourceType"] for r in listed}


def document(raw: Any) -> Any:
    """A policy document as a dict (IAM answers JSON text or, decoded, a dict)."""
    return json.loads(raw) if isinstance(raw, str) else raw


# ---------------------------------------------------------------------------- the stack


def test_ministack_creates_every_resource_of_the_template(deployed: Deployment) -> None:
    wanted = {
        name: r["Type"] for name, r in model(deployed, **CRAWLER_AND_ERRORS).resources.items()
    }
    assert created_resources(deployed) == wanted
    assert {"AWS::Glue::Database", "AWS::Glue::Job", "AWS::Glue::Crawler"} <= set(wanted.values())
    assert "AWS::Athena::WorkGroup" in wanted.values()


def test_deploy_prints_every_output(deployed: Deployment) -> None:
    assert f"deploy: stack {deployed.stack} created" in deployed.stdout
    printed = dict(
        line.split("=", 1)
        for line in deployed.stdout.splitlines()
        if not line.startswith("deploy:")
    )
    stack = deployed.stack
    assert printed == {
        "LakeBucketName": deployed.bucket,
        "LakeRoot": f"s3://{deployed.bucket}",
        "StateMachineArn": machine_arn(stack),
        "GlueJobName": f"{stack}-ingest",
        "GlueDatabaseName": "ecommerce_lakehouse",
        "CrawlerName": f"{stack}-crawler",
        "AthenaWorkGroupName": f"{stack}-athena",
        "TriggerFunctionName": f"{stack}-trigger",
        "ArchiveFunctionName": f"{stack}-archive",
        # AWS: https://sqs.<region>.amazonaws.com/<account>/<name>
        "TriggerFailureQueueUrl": (
            f"http://localhost:{deployed.moto.port}/{ACCOUNT_ID}/{stack}-trigger-failures"
        ),
    }


def test_glue_database_exists(deployed: Deployment) -> None:
    database = deployed.moto.client("glue").get_database(Name="ecommerce_lakehouse")["Database"]
    wanted = model(deployed, **CRAWLER_AND_ERRORS).properties("GlueDatabase")
    assert database["Name"] == wanted["DatabaseInput"]["Name"] == "ecommerce_lakehouse"
    assert database["Description"] == wanted["DatabaseInput"]["Description"]
    assert database["CatalogId"] == ACCOUNT_ID


def test_glue_job_runs_the_release_with_the_templates_arguments(deployed: Deployment) -> None:
    job = deployed.moto.client("glue").get_job(JobName=f"{deployed.stack}-ingest")["Job"]
    stack = model(deployed, **CRAWLER_AND_ERRORS)
    wanted = stack.properties("GlueJob")
    assert job["DefaultArguments"] == wanted["DefaultArguments"]
    arguments = job["DefaultArguments"]
    assert arguments["--datalake-formats"] == "delta"
    assert arguments["--job-bookmark-option"] == "job-bookmark-disable"
    assert arguments["--additional-python-modules"] == (
        f"s3://{deployed.artefacts}/{deployed.prefix}/wheels/ecommerce_lakehouse-0.1.0-py3-none-any.whl,"
        f"s3://{deployed.artefacts}/{deployed.prefix}/wheels/ecommerce_lakehouse_glue-0.1.0-py3-none-any.whl,"
        "dependency-injector==4.49.1"
    )
    assert arguments["--python-modules-installer-option"] == "--no-deps"
    assert arguments["--glue_database"] == "ecommerce_lakehouse"
    assert arguments["--query"] == "spark"
    assert arguments["--lake"] == f"s3://{deployed.bucket}"
    assert arguments["--custom-logGroup-prefix"] == f"/aws-glue/jobs/{deployed.stack}"
    assert job["GlueVersion"] == "5.1"
    assert job["Command"] == {
        "Name": "glueetl",
        "PythonVersion": "3",
        "ScriptLocation": f"s3://{deployed.artefacts}/{deployed.prefix}/glue/glue_job.py",
    }
    assert job["Role"] == stack.arn_of("GlueJobRole")
    assert job["MaxRetries"] == 0
    assert job["WorkerType"] == "G.1X"
    # Returned as the parameters' strings (AWS returns numbers).
    assert (int(job["NumberOfWorkers"]), int(job["Timeout"])) == (2, 240)


def test_ministack_drops_the_jobs_max_concurrent_runs(deployed: Deployment) -> None:
    # Pinned (see the module docstring): the template asks for one run at a time, MiniStack's
    # Glue has no ExecutionProperty. When it learns it, assert MaxConcurrentRuns 1 here.
    wanted = model(deployed, **CRAWLER_AND_ERRORS).properties("GlueJob")
    assert wanted["ExecutionProperty"] == {"MaxConcurrentRuns": 1}
    job = deployed.moto.client("glue").get_job(JobName=f"{deployed.stack}-ingest")["Job"]
    assert "ExecutionProperty" not in job


def test_ministack_drops_the_triggers_reserved_concurrency(deployed: Deployment) -> None:
    # Pinned (see the module docstring): the template runs one trigger invocation at a time
    # (test_stack_on_moto checks moto applies it). When MiniStack learns it, assert 1 here.
    wanted = model(deployed, **CRAWLER_AND_ERRORS).properties("TriggerFunction")
    assert wanted["ReservedConcurrentExecutions"] == 1
    function = deployed.moto.client("lambda").get_function(FunctionName=f"{deployed.stack}-trigger")
    assert "Concurrency" not in function


def test_crawler_crawls_the_curated_delta_tables(deployed: Deployment) -> None:
    crawler = deployed.moto.client("glue").get_crawler(Name=f"{deployed.stack}-crawler")["Crawler"]
    stack = model(deployed, **CRAWLER_AND_ERRORS)
    wanted = stack.properties("Crawler")
    assert crawler["Role"] == stack.arn_of("CrawlerRole")
    assert crawler["DatabaseName"] == "ecommerce_lakehouse"
    assert crawler["Targets"] == wanted["Targets"]
    (target,) = crawler["Targets"]["DeltaTargets"]
    assert target["DeltaTables"] == [
        f"s3://{deployed.bucket}/lakehouse-dwh/{table}"
        for table in ("products", "orders", "order_items")
    ]
    assert (target["CreateNativeDeltaTable"], target["WriteManifest"]) == (True, False)
    assert crawler["SchemaChangePolicy"] == {"UpdateBehavior": "LOG", "DeleteBehavior": "LOG"}


def test_athena_workgroup_enforces_an_encrypted_result_location(deployed: Deployment) -> None:
    workgroup = deployed.moto.client("athena").get_work_group(WorkGroup=f"{deployed.stack}-athena")[
        "WorkGroup"
    ]
    assert workgroup["State"] == "ENABLED"
    configuration = workgroup["Configuration"]
    assert configuration["EnforceWorkGroupConfiguration"] is True
    assert configuration["ResultConfiguration"] == {
        "OutputLocation": f"s3://{deployed.bucket}/athena-results/",
        "EncryptionConfiguration": {"EncryptionOption": "SSE_S3"},
    }
    assert configuration["PublishCloudWatchMetricsEnabled"] is True
    assert configuration["EngineVersion"] == {"SelectedEngineVersion": "Athena engine version 3"}
    assert int(configuration["BytesScannedCutoffPerQuery"]) == 10 * 1024**3


# ---------------------------------------------------------------------------- the bucket


def test_bucket_policy_denies_every_request_without_tls(deployed: Deployment) -> None:
    s3 = deployed.moto.client("s3")
    policy = json.loads(s3.get_bucket_policy(Bucket=deployed.bucket)["Policy"])
    wanted = model(deployed, **CRAWLER_AND_ERRORS).properties("LakeBucketPolicy")
    assert policy == wanted["PolicyDocument"]
    (statement,) = policy["Statement"]
    assert (statement["Effect"], statement["Principal"], statement["Action"]) == (
        "Deny",
        "*",
        "s3:*",
    )
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert statement["Resource"] == [
        f"arn:aws:s3:::{deployed.bucket}",
        f"arn:aws:s3:::{deployed.bucket}/*",
    ]


def test_bucket_is_versioned_private_and_notifies_the_trigger(deployed: Deployment) -> None:
    s3 = deployed.moto.client("s3")
    assert s3.get_bucket_versioning(Bucket=deployed.bucket)["Status"] == "Enabled"
    block = s3.get_public_access_block(Bucket=deployed.bucket)["PublicAccessBlockConfiguration"]
    assert block == {
        "BlockPublicAcls": True,
        "IgnorePublicAcls": True,
        "BlockPublicPolicy": True,
        "RestrictPublicBuckets": True,
    }
    notification = s3.get_bucket_notification_configuration(Bucket=deployed.bucket)
    (configuration,) = notification["LambdaFunctionConfigurations"]
    assert configuration["LambdaFunctionArn"] == (
        f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{deployed.stack}-trigger"
    )
    assert configuration["Events"] == ["s3:ObjectCreated:*"]
    assert configuration["Filter"]["Key"]["FilterRules"] == [
        {"Name": "prefix", "Value": "raw-data/"},
        {"Name": "suffix", "Value": ".csv"},
    ]


def test_ministack_gives_the_bucket_default_encryption_and_no_lifecycle(
    deployed: Deployment,
) -> None:
    # Pinned (see the module docstring): the lake bucket has the encryption and ownership
    # settings of any new bucket - the artefact bucket, created without any - not the
    # template's bucket key, and no lifecycle rules.
    s3 = deployed.moto.client("s3")
    for call in ("get_bucket_encryption", "get_bucket_ownership_controls"):
        lake = getattr(s3, call)(Bucket=deployed.bucket)
        plain = getattr(s3, call)(Bucket=deployed.artefacts)
        lake.pop("ResponseMetadata")
        plain.pop("ResponseMetadata")
        assert lake == plain
    (rule,) = s3.get_bucket_encryption(Bucket=deployed.bucket)["ServerSideEncryptionConfiguration"][
        "Rules"
    ]
    assert rule["ApplyServerSideEncryptionByDefault"] == {"SSEAlgorithm": "AES256"}
    assert rule["BucketKeyEnabled"] is False  # the template enables it
    with pytest.raises(s3.exceptions.ClientError, match="NoSuchLifecycleConfiguration"):
        s3.get_bucket_lifecycle_configuration(Bucket=deployed.bucket)


# ---------------------------------------------------------------------------- functions, roles


def test_functions_run_the_uploaded_code_with_their_settings(deployed: Deployment) -> None:
    lam = deployed.moto.client("lambda")
    stack = model(deployed, **CRAWLER_AND_ERRORS)
    for name, logical_id in (("trigger", "TriggerFunction"), ("archive", "ArchiveFunction")):
        wanted = stack.properties(logical_id)
        config = lam.get_function(FunctionName=f"{deployed.stack}-{name}")["Configuration"]
        assert config["Runtime"] == "python3.11"
        assert config["Handler"] == deploy.HANDLERS[name] == wanted["Handler"]
        assert (config["Timeout"], config["MemorySize"]) == (
            wanted["Timeout"],
            wanted["MemorySize"],
        )
        assert config["Role"] == f"arn:aws:iam::{ACCOUNT_ID}:role/{deployed.stack}-{name}"
        variables = config.get("Environment", {}).get("Variables") or None
        assert variables == wanted.get("Environment", {}).get("Variables")
        assert config["CodeSha256"] == code_sha256(deployed.dist / deploy.LAMBDAS[name])


def test_trigger_retries_twice_then_sends_the_event_to_the_queue(deployed: Deployment) -> None:
    config = deployed.moto.client("lambda").get_function_event_invoke_config(
        FunctionName=f"{deployed.stack}-trigger", Qualifier="$LATEST"
    )
    assert config["MaximumRetryAttempts"] == 2
    assert config["MaximumEventAgeInSeconds"] == 21600
    assert config["DestinationConfig"] == {
        "OnFailure": {
            "Destination": f"arn:aws:sqs:{REGION}:{ACCOUNT_ID}:{deployed.stack}-trigger-failures"
        }
    }


def test_roles_carry_the_templates_trust_and_inline_policies(deployed: Deployment) -> None:
    iam = deployed.moto.client("iam")
    stack = model(deployed, **CRAWLER_AND_ERRORS)
    roles = [n for n, r in stack.resources.items() if r["Type"] == "AWS::IAM::Role"]
    assert sorted(roles) == [
        "ArchiveRole",
        "CrawlerRole",
        "GlueJobRole",
        "StateMachineRole",
        "TriggerRole",
    ]
    for logical_id in roles:
        wanted = stack.properties(logical_id)
        role = iam.get_role(RoleName=wanted["RoleName"])["Role"]
        assert document(role["AssumeRolePolicyDocument"]) == wanted["AssumeRolePolicyDocument"]
        (policy,) = wanted["Policies"]
        stored = iam.get_role_policy(RoleName=wanted["RoleName"], PolicyName=policy["PolicyName"])
        # Exactly the template's document, log group ARNs with AWS's ":*" included.
        assert document(stored["PolicyDocument"]) == policy["PolicyDocument"]
        # Pinned (see the module docstring): MiniStack drops the permissions boundary.
        assert wanted["PermissionsBoundary"].endswith(
            f":policy/{deployed.stack}-permissions-boundary"
        )
        assert "PermissionsBoundary" not in role


def test_alarms_watch_the_queue_and_the_pipeline(deployed: Deployment) -> None:
    stack = model(deployed, **CRAWLER_AND_ERRORS)
    listed = deployed.moto.client("cloudwatch").describe_alarms(AlarmNamePrefix=deployed.stack)
    alarms = {a["AlarmName"]: a for a in listed["MetricAlarms"]}
    wanted = {
        stack.properties(n)["AlarmName"]: stack.properties(n)
        for n in (
            "TriggerFailureAlarm",
            "PipelineFailureAlarm",
            "PipelineTimeoutAlarm",
            "PipelineAbortAlarm",
        )
    }
    assert (
        set(alarms)
        == set(wanted)
        == {
            f"{deployed.stack}-trigger-failures",
            f"{deployed.stack}-pipeline-failed",
            f"{deployed.stack}-pipeline-timed-out",
            f"{deployed.stack}-pipeline-aborted",
        }
    )
    for name, alarm in alarms.items():
        props = wanted[name]
        for key in (
            "AlarmDescription",
            "Namespace",
            "MetricName",
            "Dimensions",
            "Statistic",
            "Period",
            "EvaluationPeriods",
            "ComparisonOperator",
            "TreatMissingData",
        ):
            assert alarm[key] == props[key], (name, key)
        assert alarm["Threshold"] == float(props["Threshold"])
        assert alarm["AlarmActions"] == []  # no AlarmTopicArn given


# ---------------------------------------------------------------------------- the state machine


def test_state_machine_gets_the_definition_generated_for_the_deployed_names(
    deployed: Deployment,
) -> None:
    machine = deployed.moto.client("stepfunctions").describe_state_machine(
        stateMachineArn=machine_arn(deployed.stack)
    )
    # DefinitionSubstitutions applied: what `lakehouse state-machine` prints for these names.
    settings = StateMachineSettings.from_env(names(deployed, crawler=True, severity="error"))
    assert machine["definition"] == definition_json(settings)
    assert "${" not in machine["definition"]
    assert machine["roleArn"] == f"arn:aws:iam::{ACCOUNT_ID}:role/{deployed.stack}-state-machine"
    assert machine["type"] == "STANDARD"
    # Pinned (see the module docstring): the template's LoggingConfiguration is dropped.
    assert machine["loggingConfiguration"] == {}


# ---------------------------------------------------------------------------- other deployments


def test_a_second_stack_with_the_same_glue_database_rolls_back(
    deployed: Deployment, tmp_path: Path
) -> None:
    ministack = deployed.moto
    result = run_deploy(ministack, new_stack_name(), ministack.new_bucket(), make_dist(tmp_path))
    assert result.code == 1
    assert result.stderr.startswith(
        f"deploy: stack {result.stack} is ROLLBACK_COMPLETE: GlueDatabase CREATE_FAILED: "
    )
    assert "Database ecommerce_lakehouse already exists" in result.stderr


def test_the_defaults_give_no_crawler_and_the_warning_gate(
    ministack: MotoServer, tmp_path: Path
) -> None:
    name = new_stack_name()
    database = f"--parameter=GlueDatabaseName={own_database(name)}"
    result = run_deploy(ministack, name, ministack.new_bucket(), make_dist(tmp_path), database)
    assert result.code == 0, result.stderr
    stack = model(result, GlueDatabaseName=own_database(name))
    created = created_resources(result)
    assert created == {name: r["Type"] for name, r in stack.resources.items()}
    assert "Crawler" not in created and "CrawlerRole" not in created
    assert "CrawlerName=" not in result.stdout
    machine = ministack.client("stepfunctions").describe_state_machine(
        stateMachineArn=machine_arn(result.stack)
    )
    settings = StateMachineSettings.from_env(
        names(result, crawler=False, severity="warn", database=own_database(name))
    )
    assert machine["definition"] == definition_json(settings)
    # The role's crawler statement (an Fn::If with AWS::NoValue) is left out.
    (policy,) = stack.properties("StateMachineRole")["Policies"]
    stored = ministack.client("iam").get_role_policy(
        RoleName=f"{result.stack}-state-machine", PolicyName=policy["PolicyName"]
    )
    assert document(stored["PolicyDocument"]) == policy["PolicyDocument"]


def test_a_new_release_updates_code_script_and_modules_and_keeps_parameters(
    ministack: MotoServer, tmp_path: Path
) -> None:
    stack, artefacts = new_stack_name(), ministack.new_bucket()
    first = run_deploy(
        ministack,
        stack,
        artefacts,
        make_dist(tmp_path / "one"),
        f"--parameter=GlueDatabaseName={own_database(stack)}",
        "--parameter=LogRetentionDays=14",
    )
    assert first.code == 0, first.stderr
    again = run_deploy(ministack, stack, artefacts, first.dist)
    assert again.code == 0, again.stderr
    assert f"deploy: stack {stack} unchanged" in again.stdout
    second = run_deploy(
        ministack, stack, artefacts, make_dist(tmp_path / "two", marker="2"), prefix="releases/0002"
    )
    assert second.code == 0, second.stderr
    assert f"deploy: stack {stack} updated" in second.stdout
    described = ministack.client("cloudformation").describe_stacks(StackName=stack)["Stacks"][0]
    assert described["StackStatus"] == "UPDATE_COMPLETE"
    parameters = {p["ParameterKey"]: p["ParameterValue"] for p in described["Parameters"]}
    assert parameters["LogRetentionDays"] == "14"  # given once, kept by the next deployment
    groups = ministack.client("logs").describe_log_groups(logGroupNamePrefix=f"/aws/lambda/{stack}")
    assert {g["retentionInDays"] for g in groups["logGroups"]} == {14}
    # Fn::Sub is re-evaluated (moto keeps the first release): the new code, script and wheels.
    for name in deploy.LAMBDAS:
        config = ministack.client("lambda").get_function(FunctionName=f"{stack}-{name}")
        wanted = code_sha256(second.dist / deploy.LAMBDAS[name])
        assert config["Configuration"]["CodeSha256"] == wanted
    job = ministack.client("glue").get_job(JobName=f"{stack}-ingest")["Job"]
    assert job["Command"]["ScriptLocation"] == f"s3://{artefacts}/releases/0002/glue/glue_job.py"
    assert job["DefaultArguments"]["--additional-python-modules"] == python_modules(second)
