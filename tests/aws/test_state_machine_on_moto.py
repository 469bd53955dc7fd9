"""The generated state machine, executed by moto's Step Functions against moto's services.

The definition under test is ``build_definition(..., Integration.POLLING)`` with the names
of resources created in the emulator (Glue job and database, Lambda function, Athena
workgroup, crawler). Its Wait states use the settings' poll intervals (1 s here; 30 s and
2 s by default). Production uses ``Integration.OPTIMIZED``, which moto cannot execute:
``glue:startJobRun.sync`` crashes inside moto and ``athena:*.sync`` is unsupported.

What moto executes (moto 5.2.5, execution enabled through ``/moto-api/config``):

* the ``aws-sdk:glue:startJobRun`` / ``getJobRun`` loop against a moto Glue job. Moto
  reports a job run ``SUCCEEDED`` at the first read by default; with manual transitions it
  reports ``STARTING``, ``RUNNING`` then ``SUCCEEDED``, one step per read, so the loop's
  wait-again branch and its bound run too. Moto never reports ``FAILED``, ``TIMEOUT`` or
  ``STOPPED``, so those Choice branches are checked only structurally.
* the ``lambda:invoke`` Task: with moto's Docker-free Lambda backend the invocation runs no
  code and answers with the request's payload; the archive handler is then run in-process
  with exactly that payload. With moto's default backend a missing function fails the Task
  (``Lambda.ResourceNotFoundException``), whose Catch ends the execution in
  ``ArchiveFailed``. Moto cannot run the function's code (no Docker here).
* the ``aws-sdk:athena`` start/poll/results loop, answered with canned results, and the
  gate's Choice: ``"0"`` failed error checks -> ``Report`` (SUCCEEDED), ``"2"`` ->
  ``ChecksFailed`` (FAILED, error ``ValidationFailed``).
* the crawler's start and its bounded poll loop (``aws-sdk:glue:startCrawler`` /
  ``getCrawler``).

Where moto differs from AWS:

* JSONPath: moto returns ``$.ResultSet.Rows[1].Data[0].VarCharValue`` as a one-element list
  (``["0"]``) where AWS returns the string, so the unchanged gate always fails on moto
  (pinned by ``test_moto_reads_the_gate_value_as_a_list``). The gate tests therefore run a
  variant whose ``ReadValidation`` selects ``Rows[1].Data[0]`` and whose ``GateOnChecks``
  compares its ``VarCharValue``: the same value and the same Choice on AWS.
* ``getCrawler`` never advances moto's crawl (only ``ListCrawls`` does), so a crawl stays
  RUNNING; and a finished moto crawl reports ``LastCrawl.Status`` ``COMPLETED`` where AWS
  reports ``SUCCEEDED``, so on moto a finished crawl takes the ``CatalogueFailed`` branch.
* Error names of ``aws-sdk`` Tasks keep the service's lower-case name (``glue.…``) where
  AWS says ``Glue.…``, so the Retry rules (``Glue.ThrottlingException``, ...) never match on
  moto: a failing call goes straight to its Catch.
* Moto never fails an Athena query, so ``ValidationQueryFailed`` via a FAILED query is
  checked only structurally.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import uuid
import zipfile
from typing import Any

import pytest

from ecommerce_lakehouse.domain.validation import ValidationPolicy, gate_sql
from ecommerce_lakehouse_lambdas import archive
from ecommerce_lakehouse_sfn import Integration, StateMachineSettings, build_definition
from tests.aws.sfn_support import (
    create_state_machine,
    enable_execution,
    entered,
    exited_output,
    history,
    transitions,
    wait_for_end,
)
from tests.aws_support import (
    ACCOUNT_ID,
    REGION,
    MotoServer,
    athena_column,
    athena_row,
)

pytestmark = pytest.mark.aws


class Deployment:
    """The pipeline's resources in the emulator, named as a deployment would name them."""

    def __init__(self, server: MotoServer, *, archive_function: bool = True) -> None:
        # Without the function, moto's default Lambda backend refuses the invocation.
        enable_execution(server, docker_free_lambda=archive_function)
        self.server = server
        suffix = uuid.uuid4().hex[:10]
        self.bucket = server.new_bucket()
        self.lake_root = f"s3://{self.bucket}/lake"
        self.athena_output = f"s3://{server.new_bucket()}/athena/"
        self.glue_job = f"lakehouse-ingest-{suffix}"
        self.glue_database = f"shop_lake_{suffix}"
        self.workgroup = f"lakehouse-{suffix}"
        self.crawler = f"lakehouse-crawler-{suffix}"
        glue = server.client("glue")
        glue.create_job(
            Name=self.glue_job,
            Role=f"arn:aws:iam::{ACCOUNT_ID}:role/lakehouse-glue",
            Command={"Name": "glueetl", "ScriptLocation": f"s3://{self.bucket}/glue_job.py"},
        )
        glue.create_database(DatabaseInput={"Name": self.glue_database})
        server.client("athena").create_work_group(
            Name=self.workgroup,
            Configuration={"ResultConfiguration": {"OutputLocation": self.athena_output}},
        )
        self.function_arn = (
            self._create_function(f"lakehouse-archive-{suffix}")
            if archive_function
            else f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:lakehouse-archive-{suffix}"
        )

    def _create_function(self, name: str) -> str:
        iam = self.server.client("iam")
        role = iam.create_role(
            RoleName=f"{name}-role",
            AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}),
        )["Role"]["Arn"]
        package = io.BytesIO()
        with zipfile.ZipFile(package, "w") as archive_zip:
            archive_zip.writestr("handler.py", "def handler(event, context):\n    return event\n")
        function = self.server.client("lambda").create_function(
            FunctionName=name,
            Runtime="python3.11",
            Role=role,
            Handler="ecommerce_lakehouse_lambdas.archive.handler",
            Code={"ZipFile": package.getvalue()},
        )
        return str(function["FunctionArn"])

    def create_crawler(self) -> None:
        self.server.client("glue").create_crawler(
            Name=self.crawler,
            Role=f"arn:aws:iam::{ACCOUNT_ID}:role/lakehouse-glue",
            DatabaseName=self.glue_database,
            Targets={"S3Targets": [{"Path": f"{self.lake_root}/lakehouse-dwh/"}]},
        )

    def settings(self, **overrides: Any) -> StateMachineSettings:
        values: dict[str, Any] = {
            "lake": self.lake_root,
            "glue_job": self.glue_job,
            "archive_function": self.function_arn,
            "glue_database": self.glue_database,
            "athena_workgroup": self.workgroup,
            "athena_output": self.athena_output,
            "glue_poll_seconds": 1,
            "athena_poll_seconds": 1,
            "crawler_poll_seconds": 1,
            **overrides,
        }
        return StateMachineSettings(**values)

    def execute(self, definition: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """Run the definition once; returns the execution name and its description."""
        machine = create_state_machine(self.server, definition)
        name = f"lakehouse-{uuid.uuid4().hex[:40]}"
        started = self.server.client("stepfunctions").start_execution(
            stateMachineArn=machine, name=name, input="{}"
        )
        return name, wait_for_end(self.server, started["executionArn"])

    def queue_gate_result(self, failed_error_checks: str) -> None:
        self.server.queue_athena_result(
            [athena_column("failed_error_checks", "bigint")], [athena_row(failed_error_checks)]
        )


def for_moto_jsonpath(definition: dict[str, Any]) -> dict[str, Any]:
    """The definition with the gate value read in a form moto's JSONPath returns unwrapped.

    AWS returns ``$.ResultSet.Rows[1].Data[0].VarCharValue`` as a string, moto as a list;
    both return ``$.ResultSet.Rows[1].Data[0]`` as the datum object, whose ``VarCharValue``
    the Choice then compares: the same gate, readable by both.
    """
    patched = copy.deepcopy(definition)
    states = patched["States"]
    states["ReadValidation"]["ResultSelector"] = {
        "failed_error_checks.$": "$.ResultSet.Rows[1].Data[0]"
    }
    states["GateOnChecks"]["Choices"][0]["Variable"] = "$.gate.failed_error_checks.VarCharValue"
    return patched


def task_failures(events: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(resource, error) of every failed Task."""
    return [
        (e["taskFailedEventDetails"]["resource"], e["taskFailedEventDetails"]["error"])
        for e in events
        if e["type"] == "TaskFailed"
    ]


def test_the_glue_loop_waits_for_the_run_and_a_failing_archive_fails_the_execution(
    moto: MotoServer,
) -> None:
    deployment = Deployment(moto, archive_function=False)  # the function does not exist
    definition = build_definition(deployment.settings(), Integration.POLLING)

    with transitions(moto, "glue::job_run", {"progression": "manual", "times": 1}):
        name, execution = deployment.execute(definition)

    assert execution["status"] == "FAILED", execution
    assert (execution["error"], execution["cause"]) == (
        "ArchiveFailed",
        "archiving the run's files failed",
    )
    events = history(moto, execution["executionArn"])
    assert entered(events) == [
        "Ingest",
        "InitIngestJobPolls",
        "WaitForIngestJob",
        "GetIngestJobStatus",
        "IngestJobStatus",
        "CountIngestJobPoll",
        "IngestJobPollsLeft",
        "WaitForIngestJob",
        "GetIngestJobStatus",
        "IngestJobStatus",
        "Archive",
        "ArchiveFailed",
    ]
    polled = [
        o["ingest_status"]["JobRunState"] for o in exited_output(events, "GetIngestJobStatus")
    ]
    assert polled == ["RUNNING", "SUCCEEDED"]
    # The Glue job run got the execution name as its run id and the job's steps.
    runs = moto.client("glue").get_job_runs(JobName=deployment.glue_job)["JobRuns"]
    assert len(runs) == 1
    assert runs[0]["Arguments"] == {
        "--lake": deployment.lake_root,
        "--run_id": name,
        "--result_key": f"_runs/{name}.json",
        "--steps": "discover,ingest,catalogue",
    }
    # The Lambda Task failed and its Catch put the error at $.error on the way to the Fail.
    assert task_failures(events) == [("invoke", "Lambda.ResourceNotFoundException")]
    (caught,) = [
        json.loads(e["stateEnteredEventDetails"]["input"])
        for e in events
        if e.get("stateEnteredEventDetails", {}).get("name") == "ArchiveFailed"
    ]
    assert caught["error"]["Error"] == "Lambda.ResourceNotFoundException"


def test_a_glue_run_that_never_ends_stops_at_the_poll_bound(moto: MotoServer) -> None:
    deployment = Deployment(moto)
    # At most glue_timeout_seconds // glue_poll_seconds = 2 status reads.
    settings = deployment.settings(glue_timeout_seconds=2, glue_poll_seconds=1)
    definition = build_definition(settings, Integration.POLLING)

    with transitions(moto, "glue::job_run", {"progression": "manual", "times": 1000}):
        _, execution = deployment.execute(definition)

    assert (execution["status"], execution["error"]) == ("FAILED", "IngestTimedOut")
    events = history(moto, execution["executionArn"])
    polled = [
        o["ingest_status"]["JobRunState"] for o in exited_output(events, "GetIngestJobStatus")
    ]
    assert polled == ["STARTING", "STARTING"]
    assert "Archive" not in entered(events)


def test_a_glue_job_that_cannot_start_fails_the_ingest(moto: MotoServer) -> None:
    deployment = Deployment(moto)
    settings = deployment.settings(glue_job="no-such-job")
    definition = build_definition(settings, Integration.POLLING)

    _, execution = deployment.execute(definition)

    assert (execution["status"], execution["error"]) == ("FAILED", "IngestFailed")
    events = history(moto, execution["executionArn"])
    ((resource, error),) = task_failures(events)
    assert resource == "startJobRun"
    # AWS names it Glue.EntityNotFoundException; moto keeps the service's lower case.
    assert error.lower() == "glue.entitynotfoundexception", error


def test_the_gate_passes_when_no_error_check_failed(
    moto: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    deployment = Deployment(moto)
    definition = for_moto_jsonpath(build_definition(deployment.settings(), Integration.POLLING))
    deployment.queue_gate_result("0")

    name, execution = deployment.execute(definition)

    assert execution["status"] == "SUCCEEDED", execution
    events = history(moto, execution["executionArn"])
    assert entered(events)[-4:] == ["ValidationStatus", "ReadValidation", "GateOnChecks", "Report"]
    output = json.loads(execution["output"])
    assert output["gate"] == {"failed_error_checks": {"VarCharValue": "0"}}
    query = next(
        json.loads(e["taskScheduledEventDetails"]["parameters"])
        for e in events
        if e.get("taskScheduledEventDetails", {}).get("resource") == "startQueryExecution"
    )
    assert query["QueryString"] == gate_sql(ValidationPolicy())
    assert query["WorkGroup"] == deployment.workgroup
    assert query["QueryExecutionContext"] == {"Database": deployment.glue_database}
    # Moto's Lambda ran no code and answered with the payload the state machine sent: the
    # archive handler accepts exactly that payload.
    payload = output["archive"]["Payload"]
    assert payload == {
        "lake_root": deployment.lake_root,
        "run_id": name,
        "result_key": f"_runs/{name}.json",
    }
    for variable, value in moto.lambda_environment().items():
        monkeypatch.setenv(variable, value)
    s3 = moto.client("s3")
    s3.put_object(Bucket=deployment.bucket, Key="lake/raw-data/products.csv", Body=b"p\n")
    result = {
        "run_id": name,
        "started_at": "2026-11-25T19:38:00+00:00",
        "finished_at": "2026-11-25T19:40:00+00:00",
        "files": [
            {
                "source_path": "raw-data/products.csv",
                "entity": "products",
                "status": "loaded",
                "checksum": hashlib.sha256(b"p\n").hexdigest(),
                "size_bytes": 2,
                "destination": None,
                "error": None,
            }
        ],
    }
    s3.put_object(
        Bucket=deployment.bucket,
        Key=f"lake/{payload['result_key']}",
        Body=json.dumps(result).encode(),
    )
    summary = archive.handler(payload, None)
    assert summary["files"][0]["destination"] == f"archive/products/2026/11/25/{name}/products.csv"


def test_the_gate_fails_the_execution_when_error_checks_failed(moto: MotoServer) -> None:
    deployment = Deployment(moto)
    definition = for_moto_jsonpath(build_definition(deployment.settings(), Integration.POLLING))
    deployment.queue_gate_result("2")

    _, execution = deployment.execute(definition)

    assert execution["status"] == "FAILED"
    assert (execution["error"], execution["cause"]) == (
        "ValidationFailed",
        "an error-severity check failed (see validation_results)",
    )
    assert entered(history(moto, execution["executionArn"]))[-2:] == [
        "GateOnChecks",
        "ChecksFailed",
    ]


def test_moto_reads_the_gate_value_as_a_list(moto: MotoServer) -> None:
    """Pins moto's JSONPath deviation; if this fails, moto reads the path as AWS does and
    the gate tests can run the unchanged definition."""
    deployment = Deployment(moto)
    definition = build_definition(deployment.settings(), Integration.POLLING)
    deployment.queue_gate_result("0")

    _, execution = deployment.execute(definition)

    events = history(moto, execution["executionArn"])
    assert exited_output(events, "ReadValidation")[0]["gate"] == {"failed_error_checks": ["0"]}
    assert (execution["status"], execution["error"]) == ("FAILED", "ValidationFailed")


def test_the_crawler_loop_is_bounded(moto: MotoServer) -> None:
    deployment = Deployment(moto)
    deployment.create_crawler()
    settings = deployment.settings(crawler=deployment.crawler, crawler_max_polls=2)
    definition = build_definition(settings, Integration.POLLING)

    _, execution = deployment.execute(definition)

    # getCrawler never advances moto's crawl: it stays RUNNING until the bound.
    assert (execution["status"], execution["error"]) == ("FAILED", "CrawlerTimedOut")
    events = history(moto, execution["executionArn"])
    states = [
        o["crawler_status"]["Crawler"]["State"] for o in exited_output(events, "GetCrawlerStatus")
    ]
    assert states == ["RUNNING", "RUNNING"]
    assert "Validate" not in entered(events)


def test_a_finished_crawl_that_did_not_succeed_fails_the_execution(moto: MotoServer) -> None:
    deployment = Deployment(moto)
    deployment.create_crawler()
    settings = deployment.settings(crawler=deployment.crawler)
    definition = build_definition(settings, Integration.POLLING)

    with transitions(moto, "glue::crawl", {"progression": "immediate"}):
        _, execution = deployment.execute(definition)

    events = history(moto, execution["executionArn"])
    crawler = exited_output(events, "GetCrawlerStatus")[-1]["crawler_status"]["Crawler"]
    # Moto's finished crawl: READY with LastCrawl.Status COMPLETED (AWS: SUCCEEDED, FAILED
    # or CANCELLED). Only SUCCEEDED passes the gate of the catalogue step.
    assert (crawler["State"], crawler["LastCrawl"]["Status"]) == ("READY", "COMPLETED")
    assert (execution["status"], execution["error"]) == ("FAILED", "CatalogueFailed")
