"""The Amazon States Language definition, generated from the pipeline's own step list.

``PIPELINE`` (the in-process runner's definition) is walked in order and every step is placed
once, by :func:`placement` - the one answer to "where does this step run":

* ``discover``, ``ingest`` - the Glue job (Spark engine), given exactly the steps placed in it
  (``--steps``);
* ``archive`` - the archive Lambda, given the run id, so it moves exactly the files the job's
  result lists as committed or rejected;
* ``catalogue`` - a Glue crawler when the deployment has one (started and polled in a bounded
  loop that checks the status of the crawl it started), else the Glue job, which registers
  the tables through the Data Catalog API;
* ``validate`` - the error-severity checks as one Athena query whose single value a Choice
  gates on: any failing check ends the execution in a ``Fail`` state;
* ``report`` - the ``Succeed`` state.

Every Task has a timeout, retries with backoff on throttling and concurrency errors, and a
Catch that ends in a ``Fail`` state; every loop is bounded by a counter. The run id is the
execution name (the trigger derives it from bucket, key and ETag).

Two integration forms exist. ``OPTIMIZED`` (production) uses ``glue:startJobRun.sync`` and
``athena:startQueryExecution.sync``. ``POLLING`` replaces them with ``aws-sdk`` calls and
bounded Wait/poll loops - the same control flow an emulator without ``.sync`` support (moto)
can execute.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from enum import Enum
from typing import Any

from ecommerce_lakehouse.application.pipeline import PIPELINE
from ecommerce_lakehouse.domain.validation import ValidationPolicy, gate_sql
from ecommerce_lakehouse_sfn.settings import StateMachineSettings

State = dict[str, Any]

#: Where each pipeline step runs in the state machine (every PIPELINE step must be here);
#: ``catalogue`` falls back to the Glue job when the deployment has no crawler.
PLACEMENT: dict[str, str] = {
    "discover": "glue_job",
    "ingest": "glue_job",
    "archive": "archive_lambda",
    "catalogue": "crawler",
    "validate": "athena_gate",
    "report": "succeed",
}


def placement(settings: StateMachineSettings) -> dict[str, str]:
    """Where each ``PIPELINE`` step runs in a deployment with these settings.

    Raises:
        ValueError: a pipeline step has no placement.
    """
    missing = [step.name for step in PIPELINE if step.name not in PLACEMENT]
    if missing:
        raise ValueError(f"pipeline step(s) without a state-machine placement: {missing}")
    places = {step.name: PLACEMENT[step.name] for step in PIPELINE}
    if settings.crawler is None:
        # The job registers the tables through the Data Catalog API.
        places["catalogue"] = "glue_job"
    return places


def job_steps(settings: StateMachineSettings) -> tuple[str, ...]:
    """The steps the Glue job runs (its ``--steps``), in pipeline order."""
    return tuple(name for name, place in placement(settings).items() if place == "glue_job")


RUN_ID = "$$.Execution.Name"
RESULT_KEY = "States.Format('_runs/{}.json', $$.Execution.Name)"

_GLUE_RETRYABLE = [
    "Glue.ConcurrentRunsExceededException",
    "Glue.ThrottlingException",
    "Glue.InternalServiceException",
    "Glue.OperationTimeoutException",
]
_LAMBDA_RETRYABLE = [
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
]
_ATHENA_RETRYABLE = ["Athena.TooManyRequestsException", "Athena.InternalServerException"]
#: Limit of one status read (a ``get*`` call).
_POLL_CALL_TIMEOUT = 60


class Integration(Enum):
    """How long-running services are awaited."""

    OPTIMIZED = "optimized"
    POLLING = "polling"


def _retry(errors: Sequence[str], interval: int, attempts: int) -> list[State]:
    return [
        {
            "ErrorEquals": list(errors),
            "IntervalSeconds": interval,
            "MaxAttempts": attempts,
            "BackoffRate": 2.0,
        }
    ]


def _catch(fail_state: str) -> list[State]:
    return [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": fail_state}]


def _task(
    resource: str,
    parameters: State,
    *,
    next_state: str,
    fail_state: str,
    retryable: Sequence[str],
    timeout: int,
    result_path: str | None,
    result_selector: State | None = None,
    comment: str | None = None,
    interval: int = 5,
    attempts: int = 4,
) -> State:
    state: State = {"Type": "Task", "Resource": resource}
    if comment:
        state["Comment"] = comment
    state["Parameters"] = parameters
    if result_selector is not None:
        state["ResultSelector"] = result_selector
    state["ResultPath"] = result_path
    state["TimeoutSeconds"] = timeout
    state["Retry"] = _retry(retryable, interval, attempts)
    state["Catch"] = _catch(fail_state)
    state["Next"] = next_state
    return state


def _fail(error: str, cause: str) -> State:
    return {"Type": "Fail", "Error": error, "Cause": cause}


class _Builder:
    def __init__(
        self, settings: StateMachineSettings, integration: Integration, policy: ValidationPolicy
    ) -> None:
        self.settings = settings
        self.integration = integration
        self.policy = policy
        self.states: dict[str, State] = {}

    def add(self, name: str, state: State) -> None:
        if name in self.states:
            raise ValueError(f"state {name} defined twice")
        self.states[name] = state

    def poll_loop(
        self,
        prefix: str,
        *,
        get_state: State,
        done: Sequence[State],
        fail_state: str,
        timed_out: str,
        wait_seconds: int,
        max_polls: int,
    ) -> str:
        """A bounded Wait/read/Choice loop; returns the name of its first state.

        ``get_state`` reads the status (its ``Next`` is filled in); ``done`` are the Choice
        rules that leave the loop (success or failure). Any other status waits again until
        ``max_polls`` reads were made, then goes to ``timed_out``.
        """
        counter = f"$.{prefix[0].lower()}{prefix[1:]}Polls"
        names = {
            "init": f"Init{prefix}Polls",
            "wait": f"WaitFor{prefix}",
            "get": f"Get{prefix}Status",
            "choice": f"{prefix}Status",
            "count": f"Count{prefix}Poll",
            "bound": f"{prefix}PollsLeft",
        }
        self.add(
            names["init"],
            {"Type": "Pass", "Result": {"count": 0}, "ResultPath": counter, "Next": names["wait"]},
        )
        self.add(names["wait"], {"Type": "Wait", "Seconds": wait_seconds, "Next": names["get"]})
        self.add(names["get"], {**get_state, "Next": names["choice"], "Catch": _catch(fail_state)})
        self.add(
            names["choice"], {"Type": "Choice", "Choices": list(done), "Default": names["count"]}
        )
        self.add(
            names["count"],
            {
                "Type": "Pass",
                "Parameters": {"count.$": f"States.MathAdd({counter}.count, 1)"},
                "ResultPath": counter,
                "Next": names["bound"],
            },
        )
        self.add(
            names["bound"],
            {
                "Type": "Choice",
                "Choices": [
                    {
                        "Variable": f"{counter}.count",
                        "NumericGreaterThanEquals": max_polls,
                        "Next": timed_out,
                    }
                ],
                "Default": names["wait"],
            },
        )
        return names["init"]

    # ------------------------------------------------------------------ placements

    def glue_job(self, next_state: str) -> str:
        s = self.settings
        steps = job_steps(s)
        # Job arguments are spelled with underscores: Glue's getResolvedOptions reads them
        # as written. The job validates nothing here (the Athena gate does), so the check
        # severities are the gate's alone.
        arguments = {
            "--lake": s.lake,
            "--run_id.$": RUN_ID,
            "--result_key.$": RESULT_KEY,
            "--steps": ",".join(steps),
        }
        parameters: State = {
            "JobName": s.glue_job,
            "Arguments": arguments,
            "Timeout": max(1, s.glue_timeout_seconds // 60),
        }
        summary = "; ".join(
            f"{step.name}: {step.summary}" for step in PIPELINE if step.name in steps
        )
        if self.integration is Integration.OPTIMIZED:
            self.add(
                "Ingest",
                _task(
                    "arn:aws:states:::glue:startJobRun.sync",
                    parameters,
                    next_state=next_state,
                    fail_state="IngestFailed",
                    retryable=_GLUE_RETRYABLE,
                    timeout=s.glue_timeout_seconds,
                    result_path="$.ingest",
                    result_selector={"JobRunId.$": "$.Id", "JobRunState.$": "$.JobRunState"},
                    comment=f"Glue job (Spark + Delta): {summary}",
                    interval=30,
                ),
            )
        else:
            loop = self.poll_loop(
                "IngestJob",
                get_state=_task(
                    "arn:aws:states:::aws-sdk:glue:getJobRun",
                    {"JobName": s.glue_job, "RunId.$": "$.ingest.JobRunId"},
                    next_state="",
                    fail_state="IngestFailed",
                    retryable=_GLUE_RETRYABLE,
                    timeout=_POLL_CALL_TIMEOUT,
                    result_path="$.ingest_status",
                    result_selector={"JobRunState.$": "$.JobRun.JobRunState"},
                ),
                done=[
                    {
                        "Variable": "$.ingest_status.JobRunState",
                        "StringEquals": "SUCCEEDED",
                        "Next": next_state,
                    },
                    {
                        "Or": [
                            {"Variable": "$.ingest_status.JobRunState", "StringEquals": value}
                            for value in ("FAILED", "ERROR", "TIMEOUT", "STOPPED", "EXPIRED")
                        ],
                        "Next": "IngestFailed",
                    },
                ],
                fail_state="IngestFailed",
                timed_out="IngestTimedOut",
                wait_seconds=s.glue_poll_seconds,
                max_polls=max(1, s.glue_timeout_seconds // s.glue_poll_seconds),
            )
            self.add(
                "Ingest",
                _task(
                    "arn:aws:states:::aws-sdk:glue:startJobRun",
                    {"JobName": s.glue_job, "Arguments": arguments},
                    next_state=loop,
                    fail_state="IngestFailed",
                    retryable=_GLUE_RETRYABLE,
                    timeout=_POLL_CALL_TIMEOUT,
                    result_path="$.ingest",
                    result_selector={"JobRunId.$": "$.JobRunId"},
                    comment=f"Glue job (Spark + Delta): {summary}",
                    interval=30,
                ),
            )
            self.add("IngestTimedOut", _fail("IngestTimedOut", "the Glue job run did not end"))
        self.add("IngestFailed", _fail("IngestFailed", "the Glue ingest job run failed"))
        return "Ingest"

    def archive_lambda(self, next_state: str) -> str:
        s = self.settings
        self.add(
            "Archive",
            _task(
                "arn:aws:states:::lambda:invoke",
                {
                    "FunctionName": s.archive_function,
                    "Payload": {
                        "lake_root": s.lake,
                        "run_id.$": RUN_ID,
                        "result_key.$": RESULT_KEY,
                    },
                },
                next_state=next_state,
                fail_state="ArchiveFailed",
                retryable=_LAMBDA_RETRYABLE,
                timeout=s.lambda_timeout_seconds,
                result_path="$.archive",
                result_selector={"Payload.$": "$.Payload"},
                comment="archive: move exactly the files the job committed (or rejected)",
                interval=2,
                attempts=6,
            ),
        )
        self.add("ArchiveFailed", _fail("ArchiveFailed", "archiving the run's files failed"))
        return "Archive"

    def crawler(self, next_state: str) -> str:
        s = self.settings
        assert s.crawler is not None, "placed in a crawler only when one is configured"
        status = "$.crawler_status.Crawler"
        loop = self.poll_loop(
            "Crawler",
            get_state=_task(
                "arn:aws:states:::aws-sdk:glue:getCrawler",
                {"Name": s.crawler},
                next_state="",
                fail_state="CatalogueFailed",
                retryable=["Glue.ThrottlingException", "Glue.OperationTimeoutException"],
                timeout=_POLL_CALL_TIMEOUT,
                result_path="$.crawler_status",
                result_selector={"Crawler.$": "$.Crawler"},
            ),
            done=[
                {
                    "And": [
                        {"Variable": f"{status}.State", "StringEquals": "READY"},
                        {"Variable": f"{status}.LastCrawl.Status", "IsPresent": True},
                        {"Variable": f"{status}.LastCrawl.Status", "StringEquals": "SUCCEEDED"},
                    ],
                    "Next": next_state,
                },
                {
                    "Variable": f"{status}.State",
                    "StringEquals": "READY",
                    "Next": "CatalogueFailed",
                },
            ],
            fail_state="CatalogueFailed",
            timed_out="CrawlerTimedOut",
            wait_seconds=s.crawler_poll_seconds,
            max_polls=s.crawler_max_polls,
        )
        self.add(
            "StartCrawler",
            _task(
                "arn:aws:states:::aws-sdk:glue:startCrawler",
                {"Name": s.crawler},
                next_state=loop,
                fail_state="CatalogueFailed",
                # A crawl still running from elsewhere: wait for it, then start ours.
                retryable=["Glue.CrawlerRunningException", "Glue.ThrottlingException"],
                timeout=_POLL_CALL_TIMEOUT,
                result_path=None,
                comment="catalogue: crawl the Delta tables (optional)",
                interval=30,
                attempts=6,
            ),
        )
        self.add("CatalogueFailed", _fail("CatalogueFailed", "the crawl did not succeed"))
        self.add("CrawlerTimedOut", _fail("CrawlerTimedOut", "the crawl did not finish in time"))
        return "StartCrawler"

    def athena_gate(self, next_state: str) -> str:
        s = self.settings
        query: State = {
            "QueryString": gate_sql(self.policy),
            "WorkGroup": s.athena_workgroup,
            "QueryExecutionContext": {"Database": s.glue_database},
            "ResultConfiguration": {"OutputLocation": s.athena_output},
        }
        read_results = "ReadValidation"
        self.add(
            read_results,
            _task(
                "arn:aws:states:::athena:getQueryResults"
                if self.integration is Integration.OPTIMIZED
                else "arn:aws:states:::aws-sdk:athena:getQueryResults",
                {"QueryExecutionId.$": "$.validation.QueryExecutionId", "MaxResults": 2},
                next_state="GateOnChecks",
                fail_state="ValidationQueryFailed",
                retryable=_ATHENA_RETRYABLE,
                timeout=_POLL_CALL_TIMEOUT,
                result_path="$.gate",
                # Row 0 is the header; row 1 holds failed_error_checks.
                result_selector={
                    "failed_error_checks.$": "$.ResultSet.Rows[1].Data[0].VarCharValue"
                },
            ),
        )
        self.add(
            "GateOnChecks",
            {
                "Type": "Choice",
                "Choices": [
                    {
                        "Variable": "$.gate.failed_error_checks",
                        "StringEquals": "0",
                        "Next": next_state,
                    }
                ],
                "Default": "ChecksFailed",
            },
        )
        self.add(
            "ChecksFailed",
            _fail("ValidationFailed", "an error-severity check failed (see validation_results)"),
        )
        self.add(
            "ValidationQueryFailed",
            _fail("ValidationQueryFailed", "the Athena validation query failed"),
        )
        comment = "validate: every error-severity check (docs/contract.md#validation) in one query"
        if self.integration is Integration.OPTIMIZED:
            self.add(
                "Validate",
                _task(
                    "arn:aws:states:::athena:startQueryExecution.sync",
                    query,
                    next_state=read_results,
                    fail_state="ValidationQueryFailed",
                    retryable=_ATHENA_RETRYABLE,
                    timeout=s.validation_timeout_seconds,
                    result_path="$.validation",
                    result_selector={"QueryExecutionId.$": "$.QueryExecution.QueryExecutionId"},
                    comment=comment,
                ),
            )
            return "Validate"
        state = "$.validation_status.State"
        loop = self.poll_loop(
            "Validation",
            get_state=_task(
                "arn:aws:states:::aws-sdk:athena:getQueryExecution",
                {"QueryExecutionId.$": "$.validation.QueryExecutionId"},
                next_state="",
                fail_state="ValidationQueryFailed",
                retryable=_ATHENA_RETRYABLE,
                timeout=_POLL_CALL_TIMEOUT,
                result_path="$.validation_status",
                result_selector={"State.$": "$.QueryExecution.Status.State"},
            ),
            done=[
                {"Variable": state, "StringEquals": "SUCCEEDED", "Next": read_results},
                {
                    "Or": [
                        {"Variable": state, "StringEquals": "FAILED"},
                        {"Variable": state, "StringEquals": "CANCELLED"},
                    ],
                    "Next": "ValidationQueryFailed",
                },
            ],
            fail_state="ValidationQueryFailed",
            timed_out="ValidationTimedOut",
            wait_seconds=s.athena_poll_seconds,
            max_polls=max(1, s.validation_timeout_seconds // s.athena_poll_seconds),
        )
        self.add(
            "Validate",
            _task(
                "arn:aws:states:::aws-sdk:athena:startQueryExecution",
                query,
                next_state=loop,
                fail_state="ValidationQueryFailed",
                retryable=_ATHENA_RETRYABLE,
                timeout=_POLL_CALL_TIMEOUT,
                result_path="$.validation",
                result_selector={"QueryExecutionId.$": "$.QueryExecutionId"},
                comment=comment,
            ),
        )
        self.add(
            "ValidationTimedOut", _fail("ValidationTimedOut", "the validation query ran too long")
        )
        return "Validate"

    def succeed(self, next_state: str) -> str:
        self.add("Report", {"Type": "Succeed", "Comment": "report: every check passed"})
        return "Report"


def build_definition(
    settings: StateMachineSettings | None = None,
    integration: Integration = Integration.OPTIMIZED,
) -> dict[str, Any]:
    """The state machine of ``PIPELINE`` as an ASL document.

    Places are built back to front (each needs the state that follows it); the steps sharing
    a place (``discover`` and ``ingest`` in the Glue job) yield one state.

    Raises:
        ValueError: a pipeline step has no placement.
    """
    settings = settings or StateMachineSettings()
    policy = ValidationPolicy(foreign_key_severity=settings.fk_severity)
    builder = _Builder(settings, integration, policy)
    # Each place once, where its first step stands: the job runs all the steps placed in it.
    places = list(dict.fromkeys(placement(settings).values()))
    next_state = ""
    for place in reversed(places):
        next_state = getattr(builder, place)(next_state)
    ordered = dict(sorted(builder.states.items()))
    return {
        "Comment": "ecommerce-lakehouse: "
        + " -> ".join(step.name for step in PIPELINE)
        + f" ({integration.value} integrations)",
        "StartAt": next_state,
        "TimeoutSeconds": settings.glue_timeout_seconds
        + settings.lambda_timeout_seconds
        + settings.validation_timeout_seconds
        + settings.crawler_poll_seconds * settings.crawler_max_polls,
        "States": ordered,
    }


def definition_json(
    settings: StateMachineSettings | None = None,
    integration: Integration = Integration.OPTIMIZED,
) -> str:
    """:func:`build_definition` as indented JSON (what ``lakehouse state-machine`` prints)."""
    return json.dumps(build_definition(settings, integration), indent=2, ensure_ascii=False) + "\n"
