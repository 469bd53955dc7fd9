"""The Glue job started the way Glue starts it, then archived by the state machine's Lambda.

Everything the job is given comes from what would be deployed, never typed here:

* the Glue job is created in the emulator with the ``DefaultArguments`` of
  ``infra/template.yaml`` (evaluated for a stack whose lake bucket is the test's);
* the run's ``Arguments`` are the ones the deployed state machine passes: the template's
  embedded definition (``OPTIMIZED``, which moto cannot execute) has the same Ingest
  ``Arguments`` as the ``POLLING`` variant, which moto's Step Functions executes with a real
  execution name (the trigger's); moto's Glue records the rendered arguments of the run;
* the process is started as Glue starts a job script: ``spark-submit`` (so PySpark connects
  to a launcher-configured JVM, as on Glue) running ``entrypoints/glue/glue_job.py`` - the
  ScriptLocation file itself - with Glue's argv: script path, ``--JOB_ID``,
  ``--JOB_RUN_ID``, ``--job-bookmark-option``, ``--TempDir``, ``--JOB_NAME``, the default
  arguments, then the run's arguments (a run's argument replaces the default of that name).

The arguments are read by AWS's own ``awsglue.utils.getResolvedOptions`` (package
``awsgluedataplanepython`` 5.1.0, Glue 5.1's Python library; see
``tests/unit/test_glue_job_arguments.py``). Stand-ins, where Glue itself cannot run here:
the Delta jars of ``make install`` stand in for ``--datalake-formats delta``, S3A pointed at
the moto server (``spark.hadoop.fs.s3a.*``) for Glue's S3 file system, the emulator's
endpoint and keys in the environment for the job's IAM role. The archive Lambda's handler
runs in process with the exact payload the execution sent (moto runs no Lambda code).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import uuid
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from ecommerce_lakehouse.domain.schemas import SCHEMAS
from ecommerce_lakehouse_datagen import generate
from ecommerce_lakehouse_lambdas import archive
from ecommerce_lakehouse_lambdas.trigger import execution_name
from ecommerce_lakehouse_sfn import Integration, StateMachineSettings, build_definition
from ecommerce_lakehouse_spark.session import delta_jars
from tests.aws.sfn_support import create_state_machine, enable_execution, history, wait_for_end
from tests.aws.test_state_machine_on_moto import for_moto_jsonpath
from tests.aws_support import (
    ACCESS_KEY_ID,
    REGION,
    SECRET_ACCESS_KEY,
    MotoServer,
    athena_column,
    athena_row,
)
from tests.infra.cfn import TEMPLATE, Stack, load
from tests.infra.test_template import SAMPLE

pytestmark = [pytest.mark.aws, pytest.mark.spark]

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "entrypoints" / "glue" / "glue_job.py"
SPARK_SUBMIT = Path(sys.executable).with_name("spark-submit")


class Deployed:
    """The stack's pieces the Ingest and Archive states use, created in the emulator."""

    def __init__(self, moto: MotoServer) -> None:
        suffix = uuid.uuid4().hex[:8]
        self.stack = Stack(
            load(TEMPLATE),
            {**SAMPLE, "EnableCrawler": "false", "GlueDatabaseName": f"shop_{suffix}"},
            f"shop{suffix}",
        )
        self.moto = moto
        self.bucket = self.stack.name_of("LakeBucket")
        self.s3 = moto.client("s3")
        self.s3.create_bucket(
            Bucket=self.bucket, CreateBucketConfiguration={"LocationConstraint": REGION}
        )
        job = self.stack.properties("GlueJob")
        self.job_name = str(job["Name"])
        self.default_arguments: dict[str, str] = job["DefaultArguments"]
        self.lake_root = self.default_arguments["--lake"]
        assert self.lake_root == f"s3://{self.bucket}"
        self.database = self.default_arguments["--glue_database"]
        glue = moto.client("glue")
        glue.create_database(DatabaseInput={"Name": self.database})
        workgroup = self.stack.properties("AthenaWorkGroup")
        output = workgroup["WorkGroupConfiguration"]["ResultConfiguration"]["OutputLocation"]
        moto.client("athena").create_work_group(
            Name=workgroup["Name"],
            Configuration={"ResultConfiguration": {"OutputLocation": output}},
        )
        glue.create_job(
            Name=self.job_name,
            Role=job["Role"],
            Command=job["Command"],
            DefaultArguments=self.default_arguments,
        )

    def deployed_definition(self) -> dict[str, Any]:
        """The state machine as CloudFormation would create it (substitutions applied)."""
        machine = self.stack.properties("StateMachine")
        text = machine["DefinitionString"]
        for name, value in machine["DefinitionSubstitutions"].items():
            text = text.replace("${" + name + "}", str(value))
        definition: dict[str, Any] = json.loads(text)
        return definition

    def executable_definition(self) -> dict[str, Any]:
        """The POLLING form of the same machine, with the deployment's names."""
        substitutions = self.stack.properties("StateMachine")["DefinitionSubstitutions"]
        settings = StateMachineSettings(
            lake=substitutions["LakeRoot"],
            glue_job=substitutions["GlueJobName"],
            archive_function=substitutions["ArchiveFunctionArn"],
            glue_database=substitutions["GlueDatabase"],
            athena_workgroup=substitutions["AthenaWorkGroup"],
            athena_output=substitutions["AthenaOutputLocation"],
            glue_poll_seconds=1,
            athena_poll_seconds=1,
        )
        return for_moto_jsonpath(build_definition(settings, Integration.POLLING))

    def keys(self, zone: str) -> set[str]:
        pages = self.s3.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=f"{zone}/"
        )
        return {o["Key"] for page in pages for o in page.get("Contents", [])}


def glue_argv(deployed: Deployed, run: dict[str, Any]) -> list[str]:
    """The job script's argv as Glue builds it for this run."""
    arguments = {**deployed.default_arguments, **run["Arguments"]}
    bookmark = arguments.pop("--job-bookmark-option")
    return [
        str(SCRIPT),
        "--JOB_ID", f"j_{uuid.uuid4().hex}",
        "--JOB_RUN_ID", str(run["Id"]),
        "--job-bookmark-option", bookmark,
        "--TempDir", f"s3://{deployed.bucket}/glue-temporary/",
        "--JOB_NAME", deployed.job_name,
        *(item for pair in arguments.items() for item in pair),
    ]  # fmt: skip


def spark_submit(deployed: Deployed, argv: list[str]) -> subprocess.CompletedProcess[str]:
    """Run the job script under spark-submit, as Glue's launcher does."""
    confs = shlex.split("--conf " + deployed.default_arguments["--conf"])
    assert confs[0::2] == ["--conf"] * (len(confs) // 2), confs
    s3a = {
        "spark.hadoop.fs.s3.impl": "org.apache.hadoop.fs.s3a.S3AFileSystem",
        "spark.hadoop.fs.s3a.endpoint": deployed.moto.endpoint,
        "spark.hadoop.fs.s3a.endpoint.region": REGION,
        "spark.hadoop.fs.s3a.path.style.access": "true",
        "spark.hadoop.fs.s3a.connection.ssl.enabled": "false",
        "spark.hadoop.fs.s3a.access.key": ACCESS_KEY_ID,
        "spark.hadoop.fs.s3a.secret.key": SECRET_ACCESS_KEY,
        "spark.hadoop.fs.s3a.aws.credentials.provider": (
            "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider"
        ),
        "spark.driver.extraJavaOptions": "-Duser.timezone=UTC",
        "spark.ui.enabled": "false",
    }
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "LAKEHOUSE_"))}
    environment = {
        **base,
        "PYSPARK_PYTHON": sys.executable,
        "AWS_REGION": REGION,
        "AWS_ENDPOINT_URL": deployed.moto.endpoint,
        "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
    }
    command = [
        str(SPARK_SUBMIT),
        "--master", "local[2]",
        "--driver-memory", "2g",
        "--jars", ",".join(delta_jars()),
        *confs,
        *(item for key, value in s3a.items() for item in ("--conf", f"{key}={value}")),
        *argv,
    ]  # fmt: skip
    return subprocess.run(
        command, capture_output=True, text=True, timeout=1200, check=False, env=environment
    )


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    local = tmp_path_factory.mktemp("raw")
    # Three days of orders: a Spark run costs per data file (one per date partition), not per
    # row.
    generate(local, scale=0.0003, seed=31, dirty=0.05, end=date(2024, 1, 3))
    return local


def test_glue_job_started_as_glue_starts_it_then_archived_by_the_state_machine(
    moto: MotoServer, raw: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    deployed = Deployed(moto)
    uploaded = sorted(p.relative_to(raw).as_posix() for p in (raw / "raw-data").rglob("*.csv"))
    for key in uploaded:
        deployed.s3.upload_file(str(raw / key), deployed.bucket, key)
    first = deployed.s3.head_object(Bucket=deployed.bucket, Key=uploaded[0])
    # The execution name the trigger gives the upload of the first file.
    name = execution_name([(deployed.bucket, uploaded[0], first["ETag"])])

    # What the deployed state machine passes to the job is what the executed one passes.
    deployed_ingest = deployed.deployed_definition()["States"]["Ingest"]["Parameters"]
    definition = deployed.executable_definition()
    assert (
        definition["States"]["Ingest"]["Parameters"]["Arguments"] == (deployed_ingest["Arguments"])
    )
    enable_execution(moto)
    moto.queue_athena_result([athena_column("failed_error_checks", "bigint")], [athena_row("0")])
    started = moto.client("stepfunctions").start_execution(
        stateMachineArn=create_state_machine(moto, definition), name=name, input="{}"
    )
    execution = wait_for_end(moto, started["executionArn"])
    assert execution["status"] == "SUCCEEDED", (
        execution,
        history(moto, execution["executionArn"])[-3:],
    )
    [run] = moto.client("glue").get_job_runs(JobName=deployed.job_name)["JobRuns"]
    assert run["Arguments"]["--run_id"] == name

    done = spark_submit(deployed, glue_argv(deployed, run))

    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]
    assert "Traceback" not in done.stderr
    result_key = f"_runs/{name}.json"
    stored = deployed.s3.get_object(Bucket=deployed.bucket, Key=result_key)
    written = json.loads(stored["Body"].read())
    assert json.loads(done.stdout.strip().splitlines()[-1]) == written
    assert written["run_id"] == name and written["engine"] == "spark"
    assert written["result_key"] == result_key
    # The steps the state machine placed in the job, and no others: the tables are
    # registered (no crawler in this stack), validation is left to the Athena gate, and
    # archiving to the Lambda.
    assert written["checks"] == []
    loaded = [f for f in written["files"] if f["status"] == "loaded"]
    assert {f["entity"] for f in loaded} == {s.name for s in SCHEMAS}
    tables = moto.client("glue").get_tables(DatabaseName=deployed.database)["TableList"]
    assert {s.name for s in SCHEMAS} <= {t["Name"] for t in tables}
    assert deployed.keys("raw-data") == set(uploaded)

    # The Archive state's payload, exactly as the execution sent it.
    payload = json.loads(execution["output"])["archive"]["Payload"]
    assert payload == {"lake_root": deployed.lake_root, "run_id": name, "result_key": result_key}
    for variable, value in moto.lambda_environment().items():
        monkeypatch.setenv(variable, value)
    summary = archive.handler(payload, None)

    listed = {f["source_path"] for f in written["files"] if f["status"] != "failed"}
    assert listed == set(uploaded)
    assert {f["source_path"] for f in summary["files"]} == listed
    assert deployed.keys("raw-data") == set()
    for moved in summary["files"]:
        deployed.s3.head_object(Bucket=deployed.bucket, Key=moved["destination"])
