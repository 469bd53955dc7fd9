"""The CloudFormation templates of ``infra/``: lint-clean, secure, least privilege, consistent.

cfn-lint (errors, warnings and informational checks) runs on both templates and, because
cfn-lint 1.58 does not look inside the ``Fn::If`` branches of a ``DefinitionString``, on each
of the four embedded state machine definitions separately. The rest evaluates the templates
(``tests/infra/cfn.py``) for given parameters and checks what a deployment would get.
"""

from __future__ import annotations

import fnmatch
import importlib
import json
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from cfnlint.api import ManualArgs, lint

from ecommerce_lakehouse.domain.schemas import SCHEMAS
from ecommerce_lakehouse.domain.types import Severity
from ecommerce_lakehouse.domain.zones import ARCHIVE, PROCESSED, RAW, table_key
from ecommerce_lakehouse.settings import env_name
from ecommerce_lakehouse_glue import job
from ecommerce_lakehouse_sfn import StateMachineSettings, build_definition
from infra import deploy, render_definition
from tests.infra.cfn import BOOTSTRAP, TEMPLATE, Stack, load, policy_documents, statements

LINT_REGIONS = ["eu-west-1", "us-east-1"]
#: Actions that take no resource ARN, so their statements say Resource "*".
STAR_ACTIONS = {
    # Step Functions' log delivery to CloudWatch Logs (state machine role, deploy role).
    "logs:CreateLogDelivery",
    "logs:GetLogDelivery",
    "logs:UpdateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:DescribeResourcePolicies",
    "logs:DescribeLogGroups",
    # The log group handler's reads (deploy role).
    "logs:DescribeIndexPolicies",
    # The Glue database handler's Lake Formation reads and crawler creation (deploy role).
    "glue:CreateCrawler",
    "lakeformation:ListResources",
    "lakeformation:DescribeResource",
    "lakeformation:DescribeLakeFormationIdentityCenterConfiguration",
    # The Lake Formation grants' handler (deploy role, LakeFormationGrants=true).
    "lakeformation:GrantPermissions",
    "lakeformation:RevokePermissions",
    "lakeformation:ListPermissions",
}
VARIANTS = [
    pytest.param(crawler, severity, id=f"crawler={crawler}-fk={severity.value}")
    for crawler in (False, True)
    for severity in (Severity.WARN, Severity.ERROR)
]
STACK = "shop"
SAMPLE = {
    "ArtefactBucket": "shop-artefacts",
    "ArtefactPrefix": "releases/0123456789abcdef0123456789abcdef01234567",
    "GlueAdditionalPythonModules": "s3://shop-artefacts/releases/x/wheels/a.whl",
}
BOOTSTRAP_SAMPLE = {"GitHubOrg": "shop-org", "GitHubRepo": "lakehouse", "LakehouseStackName": STACK}


@cache
def template() -> dict[str, Any]:
    return load(TEMPLATE)


@cache
def bootstrap() -> dict[str, Any]:
    return load(BOOTSTRAP)


def stack(**parameters: str) -> Stack:
    return Stack(template(), {**SAMPLE, **parameters}, STACK)


def bootstrap_stack(**parameters: str) -> Stack:
    return Stack(bootstrap(), {**BOOTSTRAP_SAMPLE, **parameters}, "lakehouse-bootstrap")


def all_stacks() -> Iterator[Stack]:
    """The lakehouse stack with and without the crawler, and the bootstrap stack."""
    yield stack(EnableCrawler="false")
    yield stack(EnableCrawler="true")
    yield bootstrap_stack()


def of_type(s: Stack, kind: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in s.resources.items() if r["Type"] == kind}


def lint_findings(text: str, ignore: tuple[str, ...] = ()) -> list[str]:
    config = ManualArgs(include_checks=["I"], ignore_checks=list(ignore), regions=LINT_REGIONS)
    matches = lint(text, config=config)
    return [f"{m.rule.id} line {m.linenumber}: {m.message[:300]}" for m in matches]


# ---------------------------------------------------------------------------- cfn-lint


@pytest.mark.parametrize("path", [TEMPLATE, BOOTSTRAP], ids=lambda p: p.name)
def test_cfn_lint_finds_nothing(path: Path) -> None:
    assert lint_findings(path.read_text(encoding="utf-8")) == []


def single_variant_template(definition: str) -> str:
    """The template with one definition in place of the generated Fn::If block."""
    lines = TEMPLATE.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if render_definition.BEGIN in line)
    stop = next(i for i, line in enumerate(lines) if render_definition.END in line)
    indent = lines[start][: len(lines[start]) - len(lines[start].lstrip())]
    block = [f"{indent}DefinitionString: |"]
    block += [f"{indent}  {line}" for line in definition.splitlines()]
    return "\n".join([*lines[:start], *block, *lines[stop + 1 :]]) + "\n"


@pytest.mark.parametrize(("crawler", "severity"), VARIANTS)
def test_cfn_lint_validates_each_embedded_definition(crawler: bool, severity: Severity) -> None:
    definition = render_definition.generated_definition(crawler=crawler, severity=severity)
    # W8001: ForeignKeysAreErrors only chose between the variants that were taken out.
    assert lint_findings(single_variant_template(definition), ignore=("W8001",)) == []


def test_cfn_lint_would_report_a_broken_definition() -> None:
    definition = render_definition.generated_definition(crawler=True, severity=Severity.WARN)
    broken = definition.replace('"Type": "Choice"', '"Type": "Chioce"', 1)
    assert broken != definition
    findings = lint_findings(single_variant_template(broken), ignore=("W8001",))
    assert any(f.startswith("E3601") for f in findings)


# ---------------------------------------------------------------------------- the definition


def test_embedded_definition_is_the_generated_one() -> None:
    text = TEMPLATE.read_text(encoding="utf-8")
    assert render_definition.render(text) == text, (
        "the state machine in infra/template.yaml differs from the generated definition: "
        f"run `{render_definition.COMMAND}`"
    )


def test_the_crawler_targets_every_curated_table_of_the_catalogue() -> None:
    s = stack(EnableCrawler="true")
    (target,) = s.properties("Crawler")["Targets"]["DeltaTargets"]
    bucket = s.properties("LakeBucket")["BucketName"]
    assert target["DeltaTables"] == [f"s3://{bucket}/lakehouse-dwh/{t.name}" for t in SCHEMAS]


def embedded_definition(s: Stack) -> str:
    definition = s.properties("StateMachine")["DefinitionString"]
    assert isinstance(definition, str)
    return definition


@pytest.mark.parametrize(("crawler", "severity"), VARIANTS)
def test_parameters_select_the_matching_definition(crawler: bool, severity: Severity) -> None:
    s = stack(EnableCrawler=str(crawler).lower(), ForeignKeySeverity=severity.value)
    settings = StateMachineSettings(
        crawler="${CrawlerName}" if crawler else None, fk_severity=severity
    )
    embedded = embedded_definition(s)
    assert json.loads(embedded) == build_definition(settings)
    # What `lakehouse state-machine` prints, byte for byte.
    assert embedded == render_definition.generated_definition(crawler=crawler, severity=severity)


@pytest.mark.parametrize(("crawler", "severity"), VARIANTS)
def test_substitutions_fill_exactly_the_placeholders(crawler: bool, severity: Severity) -> None:
    s = stack(EnableCrawler=str(crawler).lower(), ForeignKeySeverity=severity.value)
    placeholders = set(re.findall(r"\$\{([A-Za-z0-9_]+)\}", embedded_definition(s)))
    substitutions = s.properties("StateMachine")["DefinitionSubstitutions"]
    assert placeholders == set(substitutions)
    assert ("CrawlerName" in placeholders) is crawler


def test_substitutions_name_the_stacks_resources() -> None:
    s = stack(EnableCrawler="true")
    bucket = s.name_of("LakeBucket")
    assert s.properties("StateMachine")["DefinitionSubstitutions"] == {
        "LakeRoot": f"s3://{bucket}",
        "GlueJobName": s.name_of("GlueJob"),
        "ArchiveFunctionArn": s.arn_of("ArchiveFunction"),
        "GlueDatabase": s.name_of("GlueDatabase"),
        "AthenaWorkGroup": s.name_of("AthenaWorkGroup"),
        "AthenaOutputLocation": f"s3://{bucket}/athena-results/",
        "CrawlerName": s.name_of("Crawler"),
    }
    workgroup = s.properties("AthenaWorkGroup")["WorkGroupConfiguration"]
    assert workgroup["ResultConfiguration"]["OutputLocation"] == f"s3://{bucket}/athena-results/"


def test_render_check_reports_a_stale_block(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stale = tmp_path / "template.yaml"
    stale.write_text(
        TEMPLATE.read_text(encoding="utf-8").replace('"StartAt": "Ingest"', '"StartAt": "X"'),
        encoding="utf-8",
    )
    assert render_definition.main(["--template", str(stale), "--check"]) == 1
    assert "run `.venv/bin/python infra/render_definition.py`" in capsys.readouterr().err
    assert render_definition.main(["--template", str(stale)]) == 0
    assert stale.read_text(encoding="utf-8") == TEMPLATE.read_text(encoding="utf-8")


# ---------------------------------------------------------------------------- buckets


def assert_secure_bucket(s: Stack, bucket_id: str) -> None:
    props = s.properties(bucket_id)
    rules = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rules[0]["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("AES256", "aws:kms")
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    assert props["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    lifecycle = props["LifecycleConfiguration"]["Rules"]
    every_object = [r for r in lifecycle if "Prefix" not in r]
    assert every_object and every_object[0]["AbortIncompleteMultipartUpload"]
    assert every_object[0]["NoncurrentVersionExpiration"]["NoncurrentDays"]
    assert s.template["Resources"][bucket_id]["DeletionPolicy"] == "Retain"
    policies = [
        p
        for p in of_type(s, "AWS::S3::BucketPolicy").values()
        if p["Properties"]["Bucket"] == {"Ref": bucket_id}
    ]
    assert len(policies) == 1
    bucket_arn = s.arn_of(bucket_id)
    (policy_id,) = [n for n, r in of_type(s, "AWS::S3::BucketPolicy").items() if r in policies]
    tls = [
        st
        for st in statements(s.properties(policy_id)["PolicyDocument"])
        if st["Effect"] == "Deny"
        and st.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
    ]
    assert len(tls) == 1
    assert tls[0]["Principal"] == "*" and tls[0]["Action"] == ["s3:*"]
    assert sorted(tls[0]["Resource"]) == [bucket_arn, f"{bucket_arn}/*"]


def test_lake_bucket_is_encrypted_private_tls_only_and_versioned() -> None:
    assert_secure_bucket(stack(), "LakeBucket")


def test_artefact_bucket_is_encrypted_private_tls_only_and_versioned() -> None:
    assert_secure_bucket(bootstrap_stack(), "ArtefactBucket")


def test_lake_bucket_name_is_what_every_name_string_assumes() -> None:
    s = stack()
    name = s.name_of("LakeBucket")
    assert name == f"{STACK}-lake-123456789012-eu-west-1"
    # The longest stack name deploy.py accepts still gives a valid bucket name.
    assert len(f"{'x' * 30}-lake-123456789012-ap-southeast-2") <= 63
    assert deploy.STACK_NAME.pattern == "[a-z][a-z0-9-]{0,29}"
    # The bootstrap's boundary and deploy role scope the same name.
    boundary = bootstrap_stack().properties("PermissionsBoundary")["PolicyDocument"]
    resources = {r for st in statements(boundary) for r in st["Resource"]}
    assert f"arn:aws:s3:::{name}" in resources


def test_lake_lifecycle_moves_the_archive_zone_and_expires_athena_results() -> None:
    rules = {
        r["Id"]: r for r in stack().properties("LakeBucket")["LifecycleConfiguration"]["Rules"]
    }
    archive = [r for r in rules.values() if r.get("Prefix") == f"{ARCHIVE}/"]
    assert len(archive) == 1
    assert archive[0]["Transitions"] == [{"StorageClass": "GLACIER_IR", "TransitionInDays": "30"}]
    results = [r for r in rules.values() if r.get("Prefix") == "athena-results/"]
    assert results[0]["ExpirationInDays"] == "30"
    # Nothing ever expires the data zones themselves.
    for rule in rules.values():
        if rule.get("Prefix") != "athena-results/":
            assert "ExpirationInDays" not in rule


def test_raw_csv_uploads_notify_the_trigger() -> None:
    s = stack()
    (config,) = s.properties("LakeBucket")["NotificationConfiguration"]["LambdaConfigurations"]
    assert config["Event"] == "s3:ObjectCreated:*"
    assert config["Filter"]["S3Key"]["Rules"] == [
        {"Name": "prefix", "Value": f"{RAW}/"},
        {"Name": "suffix", "Value": ".csv"},
    ]
    assert config["Function"] == s.arn_of("TriggerFunction")
    permission = s.properties("TriggerInvokePermission")
    assert permission == {
        "FunctionName": s.arn_of("TriggerFunction"),
        "Action": "lambda:InvokeFunction",
        "Principal": "s3.amazonaws.com",
        "SourceArn": s.arn_of("LakeBucket"),
        "SourceAccount": "123456789012",
    }
    # S3 tests the notification when it is configured: the permission must exist first.
    assert s.template["Resources"]["LakeBucket"]["DependsOn"] == "TriggerInvokePermission"


# ---------------------------------------------------------------------------- IAM


@cache
def iam_reference() -> dict[str, Any]:
    import cfnlint

    path = Path(cfnlint.__file__).parent / "data" / "AdditionalSpecs" / "Policies.json"
    reference: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return reference


def resource_types(action: str) -> list[str]:
    service, name = action.split(":")
    return list(iam_reference()[service]["Actions"][name.lower()].get("Resources", []))


def allow_statements() -> Iterator[tuple[str, dict[str, Any]]]:
    for s in all_stacks():
        for owner, document in policy_documents(s):
            for statement in statements(document):
                if statement["Effect"] == "Allow":
                    yield owner, statement


def test_no_allowed_action_is_a_wildcard() -> None:
    wild = [(o, a) for o, st in allow_statements() for a in st["Action"] if "*" in a]
    assert wild == []


def test_only_actions_without_resource_arns_are_granted_on_star() -> None:
    for owner, statement in allow_statements():
        if "*" in statement["Resource"]:
            assert statement["Resource"] == ["*"], owner
            assert set(statement["Action"]) <= STAR_ACTIONS, owner
            # The IAM reference agrees: these actions have no resource type.
            assert all(resource_types(a) == [] for a in statement["Action"]), owner
        else:
            # A scoped statement of an action without resource types would never apply.
            assert [a for a in statement["Action"] if not resource_types(a)] == [], owner


def test_stack_roles_stay_within_the_permissions_boundary() -> None:
    boundary = bootstrap_stack().properties("PermissionsBoundary")["PolicyDocument"]
    allowed = statements(boundary)
    artefacts = bootstrap_stack().name_of("ArtefactBucket")
    for crawler in ("true", "false"):
        s = stack(EnableCrawler=crawler, ArtefactBucket=artefacts)
        roles = of_type(s, "AWS::IAM::Role")
        expected = f"arn:aws:iam::123456789012:policy/{STACK}-permissions-boundary"
        assert all(s.properties(r)["PermissionsBoundary"] == expected for r in roles)
        assert bootstrap_stack().arn_of("PermissionsBoundary") == expected
        for owner, document in policy_documents(s):
            for statement in statements(document):
                for action in statement["Action"]:
                    for resource in statement["Resource"]:
                        assert any(
                            action in b["Action"]
                            and any(fnmatch.fnmatchcase(resource, p) for p in b["Resource"])
                            for b in allowed
                        ), f"{owner}: {action} on {resource} is outside the boundary"


def test_roles_can_be_deployed_without_the_bootstrap() -> None:
    s = stack(UsePermissionsBoundary="false")
    assert all("PermissionsBoundary" not in s.properties(r) for r in of_type(s, "AWS::IAM::Role"))


def granted(s: Stack, role: str) -> set[tuple[str, str]]:
    """(action, resource) pairs a role's inline policies allow."""
    pairs = set()
    for policy in s.properties(role)["Policies"]:
        for statement in statements(policy["PolicyDocument"]):
            pairs |= {(a, r) for a in statement["Action"] for r in statement["Resource"]}
    return pairs


def test_state_machine_role_covers_every_integration_of_the_definition() -> None:
    s = stack(EnableCrawler="true")
    pairs = granted(s, "StateMachineRole")
    job_arn = f"arn:aws:glue:eu-west-1:123456789012:job/{s.name_of('GlueJob')}"
    workgroup = f"arn:aws:athena:eu-west-1:123456789012:workgroup/{s.name_of('AthenaWorkGroup')}"
    crawler = f"arn:aws:glue:eu-west-1:123456789012:crawler/{s.name_of('Crawler')}"
    needed = {
        # glue:startJobRun.sync
        "arn:aws:states:::glue:startJobRun.sync": {
            (a, job_arn)
            for a in (
                "glue:StartJobRun",
                "glue:GetJobRun",
                "glue:GetJobRuns",
                "glue:BatchStopJobRun",
            )
        },
        "arn:aws:states:::lambda:invoke": {("lambda:InvokeFunction", s.arn_of("ArchiveFunction"))},
        "arn:aws:states:::athena:startQueryExecution.sync": {
            (a, workgroup)
            for a in (
                "athena:StartQueryExecution",
                "athena:GetQueryExecution",
                "athena:StopQueryExecution",
                "athena:GetWorkGroup",
            )
        },
        "arn:aws:states:::athena:getQueryResults": {("athena:GetQueryResults", workgroup)},
        "arn:aws:states:::aws-sdk:glue:startCrawler": {("glue:StartCrawler", crawler)},
        "arn:aws:states:::aws-sdk:glue:getCrawler": {("glue:GetCrawler", crawler)},
    }
    used = {
        state["Resource"]
        for state in json.loads(embedded_definition(s))["States"].values()
        if state["Type"] == "Task"
    }
    assert used == set(needed), "a new integration needs its permissions here and in the role"
    for resource in used:
        assert needed[resource] <= pairs, resource
    # Athena reads the catalogue and the tables, and writes its results, as the caller.
    bucket = s.arn_of("LakeBucket")
    assert ("s3:GetObject", f"{bucket}/{PROCESSED}/*") in pairs
    assert ("s3:PutObject", f"{bucket}/athena-results/*") in pairs
    assert (
        "glue:GetTable",
        "arn:aws:glue:eu-west-1:123456789012:table/ecommerce_lakehouse/*",
    ) in pairs
    # Without the crawler, no crawler permission.
    assert not any("Crawler" in a for a, _ in granted(stack(), "StateMachineRole"))


def test_trigger_and_archive_roles_reach_only_what_the_functions_touch() -> None:
    s = stack()
    bucket = s.arn_of("LakeBucket")
    assert granted(s, "TriggerRole") == {
        ("states:StartExecution", s.arn_of("StateMachine")),
        ("states:ListExecutions", s.arn_of("StateMachine")),
        (
            "states:DescribeExecution",
            f"arn:aws:states:eu-west-1:123456789012:execution:{s.name_of('StateMachine')}:*",
        ),
        ("s3:ListBucket", bucket),
        ("s3:GetObject", f"{bucket}/_trigger/*"),
        ("s3:PutObject", f"{bucket}/_trigger/*"),
        ("sqs:SendMessage", s.arn_of("TriggerFailureQueue")),
        ("logs:CreateLogStream", s.arn_of("TriggerLogGroup")),
        ("logs:PutLogEvents", s.arn_of("TriggerLogGroup")),
    }
    archive = granted(s, "ArchiveRole")
    writable = {r for a, r in archive if a == "s3:DeleteObject"}
    assert writable == {f"{bucket}/{zone}/*" for zone in (RAW, ARCHIVE, "rejected")}
    assert ("s3:GetObject", f"{bucket}/_runs/*") in archive
    assert not any(r.startswith(f"{bucket}/{PROCESSED}") for _, r in archive)


def test_glue_job_reads_only_its_own_release() -> None:
    s = stack()
    artefacts = {
        r for a, r in granted(s, "GlueJobRole") if r.startswith("arn:aws:s3:::shop-artefacts")
    }
    assert artefacts == {f"arn:aws:s3:::shop-artefacts/{SAMPLE['ArtefactPrefix']}/*"}


def test_deploy_role_is_assumable_only_from_main_or_production() -> None:
    s = bootstrap_stack()
    (trust,) = statements(s.properties("DeployRole")["AssumeRolePolicyDocument"])
    assert trust["Action"] == ["sts:AssumeRoleWithWebIdentity"]
    assert trust["Principal"] == {"Federated": s.arn_of("GitHubOidcProvider")}
    assert trust["Condition"] == {
        "StringEquals": {
            "token.actions.githubusercontent.com:aud": "sts.amazonaws.com",
            "token.actions.githubusercontent.com:sub": [
                "repo:shop-org/lakehouse:ref:refs/heads/main",
                "repo:shop-org/lakehouse:environment:production",
            ],
        }
    }
    reused = bootstrap_stack(ExistingOidcProviderArn="arn:aws:iam::123456789012:oidc-provider/x")
    assert "GitHubOidcProvider" not in reused.resources
    (trust,) = statements(reused.properties("DeployRole")["AssumeRolePolicyDocument"])
    assert trust["Principal"] == {"Federated": "arn:aws:iam::123456789012:oidc-provider/x"}


def deploy_role_statements() -> list[dict[str, Any]]:
    s = bootstrap_stack()
    found = []
    for policy in s.properties("DeployRole")["ManagedPolicyArns"]:
        (logical_id,) = [n for n in of_type(s, "AWS::IAM::ManagedPolicy") if s.arn_of(n) == policy]
        found += statements(s.properties(logical_id)["PolicyDocument"])
    return found


def test_deploy_role_creates_only_bounded_roles_and_passes_only_the_stacks() -> None:
    found = deploy_role_statements()
    boundary = bootstrap_stack().arn_of("PermissionsBoundary")
    roles = f"arn:aws:iam::123456789012:role/{STACK}-*"
    for statement in found:
        if statement["Effect"] != "Allow":
            continue
        if {"iam:CreateRole", "iam:PutRolePolicy"} & set(statement["Action"]):
            assert statement["Condition"] == {"StringEquals": {"iam:PermissionsBoundary": boundary}}
        if "iam:PassRole" in statement["Action"]:
            assert statement["Action"] == ["iam:PassRole"] and statement["Resource"] == [roles]
            services = statement["Condition"]["StringEquals"]["iam:PassedToService"]
            assert sorted(services) == [
                "glue.amazonaws.com",
                "lambda.amazonaws.com",
                "states.amazonaws.com",
            ]
        # Never the lake's data: bucket configuration only, objects only under athena-results/.
        for action in statement["Action"]:
            if action in ("s3:GetObject", "s3:PutObject"):
                lake = [r for r in statement["Resource"] if f"{STACK}-lake-" in r and "/" in r]
                assert all(r.endswith("/athena-results/*") for r in lake)
    (deny,) = [st for st in found if st["Effect"] == "Deny"]
    assert {"iam:DeleteRolePermissionsBoundary", "iam:PutRolePermissionsBoundary"} <= set(
        deny["Action"]
    )
    assert boundary in deny["Resource"]
    # The deploy role's own name is outside the role names it manages.
    assert not fnmatch.fnmatchcase(bootstrap_stack().arn_of("DeployRole"), roles)


@cache
def handler_permissions(resource_type: str) -> set[str]:
    import cfnlint

    schemas = Path(cfnlint.__file__).parent / "data" / "schemas"
    providers = json.loads((schemas / "providers" / "eu-west-1.json").read_text(encoding="utf-8"))
    schema = json.loads(
        (schemas / "resources" / f"{providers[resource_type]}.json").read_text(encoding="utf-8")
    )
    handlers = schema.get("handlers", {})
    return {
        p
        for kind in ("create", "read", "update", "delete")
        for p in handlers.get(kind, {}).get("permissions", [])
    }


#: Handler permissions the deploy role does not get, and why.
NOT_GRANTED_SERVICES = {
    "s3tables": "S3 table buckets: not used",
    "ec2": "Lambda VPC configuration: not used",
    "elasticfilesystem": "Lambda file systems: not used",
    "s3files": "Lambda file systems: not used",
    "kms": "no customer managed KMS key (SSE-S3, docs/adr/0004)",
    "firehose": "log delivery to Firehose: not used",
}
NOT_GRANTED = {
    # Bucket features the template does not configure.
    **dict.fromkeys(
        [
            "s3:PutAnalyticsConfiguration",
            "s3:PutBucketCORS",
            "s3:PutInventoryConfiguration",
            "s3:PutMetricsConfiguration",
            "s3:PutBucketReplication",
            "s3:PutReplicationConfiguration",
            "s3:PutBucketWebsite",
            "s3:PutAccelerateConfiguration",
            "s3:PutBucketObjectLockConfiguration",
            "s3:PutObjectLockConfiguration",
            "s3:PutBucketLogging",
            "s3:PutIntelligentTieringConfiguration",
            "s3:PutBucketAbac",
            "s3:CreateBucketMetadataTableConfiguration",
            "s3:DeleteBucketMetadataTableConfiguration",
            "s3:UpdateBucketMetadataJournalTableConfiguration",
            "s3:UpdateBucketMetadataInventoryTableConfiguration",
            "s3:UpdateBucketMetadataAnnotationTableConfiguration",
            "s3:DeleteBucketWebsite",
            "s3:DeleteBucketAnalyticsConfiguration",
            "s3:DeleteBucketCors",
            "s3:DeleteBucketMetricsConfiguration",
            "s3:DeleteBucketReplication",
            "s3:DeleteBucketEncryption",
            "s3:DeleteBucketLifecycle",
        ],
        "a bucket feature the template never sets or removes",
    ),
    "s3:PutBucketAcl": "ACLs are disabled (BucketOwnerEnforced)",
    "s3:PutObjectAcl": "ACLs are disabled (BucketOwnerEnforced)",
    "s3:DeleteObject": "the deploy role never deletes the lake's objects",
    "s3:REST.PUT.OBJECT": "not an IAM action",
    "iam:AttachRolePolicy": "the stack's roles have inline policies only",
    "iam:DetachRolePolicy": "the stack's roles have inline policies only",
    "iam:DeleteRolePermissionsBoundary": "denied: the boundary stays",
    "iam:PutRolePermissionsBoundary": "denied: the boundary stays (roles are created with it)",
    "iam:CreateServiceLinkedRole": "the workgroup needs no service-linked role",
    "lambda:GetLayerVersion": "no layers",
    "lambda:GetCodeSigningConfig": "no code signing configuration",
    "lambda:PassCapacityProvider": "no Lambda capacity provider",
    "lambda:AssociateRuntimeAlias": "unknown to the IAM reference (not a documented action)",
    "logs:PutDataProtectionPolicy": "no data protection policy",
    "logs:DeleteDataProtectionPolicy": "no data protection policy",
    "logs:PutIndexPolicy": "no field index policy",
    "logs:DeleteIndexPolicy": "no field index policy",
    "logs:AssociateKmsKey": "log groups use CloudWatch's own encryption",
    "logs:DisassociateKmsKey": "log groups use CloudWatch's own encryption",
    "logs:PutBearerTokenAuthentication": "not used",
    "logs:PutLogGroupDeletionProtection": "not used",
    "logs:DeleteResourcePolicy": "the stack removes no log resource policy",
    "glue:PassConnection": "no federated database connection",
    "glue:CreateConnection": "no federated database connection",
    "glue:GetConnection": "no federated database connection",
    "glue:UpdateConnection": "no federated database connection",
    "glue:DeleteConnection": "no federated database connection",
}


def test_deploy_role_holds_every_permission_cloudformation_needs_for_the_stack() -> None:
    granted_actions = {
        a for st in deploy_role_statements() if st["Effect"] == "Allow" for a in st["Action"]
    }
    types = {r["Type"] for r in template()["Resources"].values()}
    for resource_type in sorted(types):
        for permission in sorted(handler_permissions(resource_type)):
            service = permission.split(":")[0]
            if permission in granted_actions:
                continue
            assert service in NOT_GRANTED_SERVICES or permission in NOT_GRANTED, (
                f"{resource_type} needs {permission}: grant it in infra/bootstrap.yaml "
                "or say here why it is not needed"
            )
    # Nothing granted in vain: every granted action is a handler's (or deploy.py's own).
    own = {
        "s3:PutObject",
        "s3:GetObject",
        "s3:GetObjectVersion",
        "s3:ListBucket",
        "s3:GetBucketLocation",
        "cloudformation:CreateStack",
        "cloudformation:UpdateStack",
        "cloudformation:DescribeStacks",
        "cloudformation:DescribeStackEvents",
        "cloudformation:GetTemplate",
        "iam:PassRole",
        "s3:DeleteBucketPolicy",
        "logs:GetLogDelivery",
        "logs:UpdateLogDelivery",
        "logs:DeleteLogDelivery",
        "logs:ListLogDeliveries",
    }
    needed = set().union(*(handler_permissions(t) for t in types)) | own
    assert granted_actions - needed == set()


def test_policies_fit_iams_size_limits() -> None:
    # Longest names: a 30-character stack name and a long artefact bucket and database.
    long_stack = "x" * 30
    s = Stack(
        template(), {**SAMPLE, "ArtefactBucket": "a" * 63, "GlueDatabaseName": "d" * 64}, long_stack
    )
    for role in of_type(s, "AWS::IAM::Role"):
        inline = "".join(
            json.dumps(p["PolicyDocument"], separators=(",", ":"))
            for p in s.properties(role)["Policies"]
        )
        assert len(inline) < 10240, role  # inline policies of one role, whitespace excluded
    b = Stack(
        bootstrap(),
        {**BOOTSTRAP_SAMPLE, "LakehouseStackName": long_stack, "LakehouseGlueDatabase": "d" * 64},
        "b",
    )
    for policy in of_type(b, "AWS::IAM::ManagedPolicy"):
        size = len(json.dumps(b.properties(policy)["PolicyDocument"], separators=(",", ":")))
        assert size < 6144, policy  # one managed policy, whitespace excluded


# ---------------------------------------------------------------------------- functions, job, logs


def test_every_function_logs_to_its_own_group_with_retention() -> None:
    s = stack(LogRetentionDays="14")
    functions = of_type(s, "AWS::Lambda::Function")
    assert set(functions) == {"TriggerFunction", "ArchiveFunction"}
    for logical_id, resource in functions.items():
        name = s.name_of(logical_id)
        (group,) = [
            g for g in of_type(s, "AWS::Logs::LogGroup") if s.name_of(g) == f"/aws/lambda/{name}"
        ]
        assert s.properties(group)["RetentionInDays"] == "14"
        # Created before the function, so Lambda never creates it without retention.
        assert resource["DependsOn"] == group
        role = s.properties(logical_id)["Role"].rsplit("/", 1)[1]
        (role_id,) = [r for r in of_type(s, "AWS::IAM::Role") if s.name_of(r) == role]
        assert ("logs:PutLogEvents", s.arn_of(group)) in granted(s, role_id)


def test_functions_run_the_packaged_handlers_with_their_settings() -> None:
    s = stack()
    for name, logical_id in (("trigger", "TriggerFunction"), ("archive", "ArchiveFunction")):
        props = s.properties(logical_id)
        assert props["Runtime"] == "python3.11"
        assert props["Handler"] == deploy.HANDLERS[name]
        module, function = props["Handler"].rsplit(".", 1)
        assert callable(getattr(importlib.import_module(module), function))
        assert props["Code"] == {
            "S3Bucket": SAMPLE["ArtefactBucket"],
            "S3Key": f"{SAMPLE['ArtefactPrefix']}/{deploy.LAMBDAS[name]}",
        }
    trigger_env = s.properties("TriggerFunction")["Environment"]["Variables"]
    assert trigger_env == {
        env_name("lake"): f"s3://{s.name_of('LakeBucket')}",
        env_name("state_machine_arn"): s.arn_of("StateMachine"),
    }
    # The archive function reads the region Lambda sets; the state machine passes the root.
    assert "Environment" not in s.properties("ArchiveFunction")
    # The Archive task waits as long as the function may run.
    task = json.loads(embedded_definition(s))["States"]["Archive"]
    assert task["TimeoutSeconds"] >= int(s.properties("ArchiveFunction")["Timeout"])


def test_trigger_failures_are_retried_then_kept() -> None:
    s = stack()
    config = s.properties("TriggerInvokeConfig")
    assert config["FunctionName"] == s.name_of("TriggerFunction")
    assert config["MaximumRetryAttempts"] == 2
    assert config["DestinationConfig"]["OnFailure"]["Destination"] == s.arn_of(
        "TriggerFailureQueue"
    )
    # One invocation at a time (docs/adr/0005-no-file-waits.md; test_template_trigger.py).
    assert s.properties("TriggerFunction")["ReservedConcurrentExecutions"] == 1


def test_glue_job_runs_the_release_with_delta_and_one_run_at_a_time() -> None:
    s = stack()
    props = s.properties("GlueJob")
    assert props["GlueVersion"] == "5.1"
    assert props["Command"] == {
        "Name": "glueetl",
        "PythonVersion": "3",
        "ScriptLocation": f"s3://{SAMPLE['ArtefactBucket']}/{SAMPLE['ArtefactPrefix']}/{deploy.GLUE_SCRIPT}",
    }
    assert props["ExecutionProperty"] == {"MaxConcurrentRuns": 1}
    assert props["MaxRetries"] == 0
    arguments = props["DefaultArguments"]
    assert arguments["--datalake-formats"] == "delta"
    assert arguments["--job-bookmark-option"] == "job-bookmark-disable"
    assert arguments["--conf"] == (
        "spark.sql.extensions=io.delta.sql.DeltaSparkSessionExtension --conf "
        "spark.sql.catalog.spark_catalog=org.apache.spark.sql.delta.catalog.DeltaCatalog"
    )
    assert arguments["--additional-python-modules"] == SAMPLE["GlueAdditionalPythonModules"]
    assert arguments["--python-modules-installer-option"] == "--no-deps"
    assert arguments["--lake"] == f"s3://{s.name_of('LakeBucket')}"
    assert arguments["--glue_database"] == "ecommerce_lakehouse"
    assert arguments["--region"] == "eu-west-1"
    # Every argument of our own is one the job reads (Glue's own start with a known name).
    glue_own = {
        "datalake-formats",
        "conf",
        "job-bookmark-option",
        "additional-python-modules",
        "python-modules-installer-option",
        "enable-continuous-cloudwatch-log",
        "custom-logGroup-prefix",
    }
    known = set(job.ARGUMENTS)
    ours = {name.removeprefix("--") for name in arguments} - glue_own
    assert ours <= known, f"job arguments the Glue job does not read: {sorted(ours - known)}"
    # Its log groups exist, with retention, where the prefix sends the logs.
    prefix = arguments["--custom-logGroup-prefix"]
    groups = {s.name_of(g) for g in of_type(s, "AWS::Logs::LogGroup")}
    assert {f"{prefix}/error", f"{prefix}/output"} <= groups


def test_crawler_targets_the_curated_delta_tables() -> None:
    s = stack(EnableCrawler="true")
    (target,) = s.properties("Crawler")["Targets"]["DeltaTargets"]
    bucket = s.name_of("LakeBucket")
    assert target["DeltaTables"] == [f"s3://{bucket}/{table_key(s.name)}" for s in SCHEMAS]
    assert s.properties("Crawler")["DatabaseName"] == "ecommerce_lakehouse"
    assert "Crawler" not in stack().resources and "CrawlerRole" not in stack().resources


def test_state_machine_logs_errors_without_execution_data() -> None:
    s = stack()
    logging = s.properties("StateMachine")["LoggingConfiguration"]
    assert logging["Level"] == "ERROR"
    assert logging["IncludeExecutionData"] is False
    assert logging["Destinations"] == [
        {"CloudWatchLogsLogGroup": {"LogGroupArn": s.arn_of("StateMachineLogGroup")}}
    ]
    assert s.properties("StateMachineLogGroup")["RetentionInDays"] == "30"


def test_athena_workgroup_enforces_encrypted_results_and_a_scan_limit() -> None:
    config = stack(AthenaBytesScannedCutoff="1073741824").properties("AthenaWorkGroup")[
        "WorkGroupConfiguration"
    ]
    assert config["EnforceWorkGroupConfiguration"] is True
    assert config["BytesScannedCutoffPerQuery"] == "1073741824"
    assert config["ResultConfiguration"]["EncryptionConfiguration"] == {
        "EncryptionOption": "SSE_S3"
    }
    assert config["EngineVersion"] == {"SelectedEngineVersion": "Athena engine version 3"}


def test_outputs_name_what_operators_need() -> None:
    outputs = stack().resolve(template()["Outputs"])
    assert {
        "LakeBucketName",
        "LakeRoot",
        "StateMachineArn",
        "GlueJobName",
        "AthenaWorkGroupName",
        "TriggerFunctionName",
        "ArchiveFunctionName",
    } <= set(outputs)
    assert outputs["LakeRoot"]["Value"] == f"s3://{STACK}-lake-123456789012-eu-west-1"
    boot = bootstrap_stack().resolve(bootstrap()["Outputs"])
    assert {"DeployRoleArn", "ArtefactBucketName"} <= set(boot)


def test_database_name_parameter_allows_only_what_the_catalogue_accepts() -> None:
    pattern = template()["Parameters"]["GlueDatabaseName"]["AllowedPattern"]
    assert re.fullmatch(pattern, "ecommerce_lakehouse")
    for bad in ("Shop", "shop-lake", "shop lake", ""):
        assert not re.fullmatch(pattern, bad)
