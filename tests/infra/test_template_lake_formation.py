"""Lake Formation grants of the stack (parameter ``LakeFormationGrants``).

Where Lake Formation governs the Data Catalog, every catalogue call needs a Lake Formation
permission on top of the IAM one. With ``LakeFormationGrants=true`` the stack grants each
role exactly the Lake Formation permissions that match its IAM catalogue statements - no
more (the IAM policy would refuse the call anyway), no less (the call would be denied) -
and nothing on data locations (the lake bucket is not a registered location). cfn-lint runs
on the whole template in ``tests/infra/test_template.py``; here it is shown to check these
resources' shapes too.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import pytest
from cfnlint.api import ManualArgs, lint

from tests.infra.cfn import ACCOUNT, REGION, TEMPLATE, Stack, load, statements

STACK = "shop"
SAMPLE = {
    "ArtefactBucket": "shop-artefacts",
    "ArtefactPrefix": "releases/0123456789abcdef0123456789abcdef01234567",
    "GlueAdditionalPythonModules": "s3://shop-artefacts/releases/x/wheels/a.whl",
}
GRANT = "AWS::LakeFormation::PrincipalPermissions"
DATABASE = "shop_lake"
#: What each role may do in Lake Formation: (database permissions, table permissions).
EXPECTED = {
    # GlueCatalogue: GetDatabase, GetTable(s), CreateTable, UpdateTable.
    "GlueJobRole": ({"CREATE_TABLE", "DESCRIBE"}, {"ALTER", "DESCRIBE"}),
    # The Athena gate reads the tables.
    "StateMachineRole": ({"DESCRIBE"}, {"SELECT", "DESCRIBE"}),
    # The crawler may create a table and add partitions; it never updates (UpdateBehavior LOG).
    "CrawlerRole": ({"CREATE_TABLE", "DESCRIBE"}, {"ALTER", "DESCRIBE"}),
}
#: The IAM actions each Lake Formation permission goes with, by resource kind.
COUNTERPARTS = {
    ("database", "DESCRIBE"): {"glue:GetDatabase"},
    ("database", "CREATE_TABLE"): {"glue:CreateTable"},
    ("table", "DESCRIBE"): {
        "glue:GetTable",
        "glue:GetTables",
        "glue:GetPartition",
        "glue:GetPartitions",
        "glue:BatchGetPartition",
    },
    ("table", "ALTER"): {"glue:UpdateTable", "glue:BatchCreatePartition"},
    ("table", "SELECT"): {"s3:GetObject"},
}
#: IAM catalogue actions without a Lake Formation grant here, and why.
NO_COUNTERPART = {
    "glue:CreateDatabase": "the stack creates the database; the job only would if it were gone",
}


@cache
def template() -> dict[str, Any]:
    return load(TEMPLATE)


def stack(**parameters: str) -> Stack:
    return Stack(template(), {**SAMPLE, "GlueDatabaseName": DATABASE, **parameters}, STACK)


def grants(s: Stack) -> dict[str, dict[str, Any]]:
    return {n: s.properties(n) for n, r in s.resources.items() if r["Type"] == GRANT}


def role_of(s: Stack, arn: str) -> str:
    (role,) = [
        r
        for r, res in s.resources.items()
        if res["Type"] == "AWS::IAM::Role" and s.arn_of(r) == arn
    ]
    return role


def lake_formation_permissions(s: Stack) -> dict[str, tuple[set[str], set[str]]]:
    """Per role: (permissions on the database, permissions on every table of it)."""
    found: dict[str, tuple[set[str], set[str]]] = {}
    for props in grants(s).values():
        role = role_of(s, props["Principal"]["DataLakePrincipalIdentifier"])
        database, tables = found.setdefault(role, (set(), set()))
        assert props["PermissionsWithGrantOption"] == []
        assert "ALL" not in props["Permissions"]
        resource = props["Resource"]
        if "Database" in resource:
            assert resource == {"Database": {"CatalogId": ACCOUNT, "Name": DATABASE}}
            assert not database, f"{role}: two database grants"
            database |= set(props["Permissions"])
        else:
            assert resource == {
                "Table": {"CatalogId": ACCOUNT, "DatabaseName": DATABASE, "TableWildcard": {}}
            }
            assert not tables, f"{role}: two table grants"
            tables |= set(props["Permissions"])
    return found


def iam_catalogue_actions(s: Stack, role: str) -> set[str]:
    """A role's IAM actions on the Glue catalogue, the database, its tables, and (for the
    Athena gate, which reads through Lake Formation's table permissions) the curated data."""
    glue = f"arn:aws:glue:{REGION}:{ACCOUNT}"
    catalogue = {f"{glue}:catalog", f"{glue}:database/{DATABASE}", f"{glue}:table/{DATABASE}/*"}
    data = f"arn:aws:s3:::{s.name_of('LakeBucket')}/lakehouse-dwh/*"
    found: set[str] = set()
    for policy in s.properties(role)["Policies"]:
        for statement in statements(policy["PolicyDocument"]):
            if catalogue & set(statement["Resource"]):
                found |= {a for a in statement["Action"] if a.startswith("glue:")}
            if data in statement["Resource"] and role == "StateMachineRole":
                found |= {a for a in statement["Action"] if a == "s3:GetObject"}
    return found


# ---------------------------------------------------------------------------- the switch


def test_grants_are_off_by_default() -> None:
    spec = template()["Parameters"]["LakeFormationGrants"]
    assert (spec["Default"], sorted(spec["AllowedValues"])) == ("false", ["false", "true"])
    for crawler in ("false", "true"):
        s = stack(EnableCrawler=crawler)
        assert not [
            n for n, r in s.resources.items() if r["Type"].startswith("AWS::LakeFormation::")
        ]


@pytest.mark.parametrize("crawler", ["false", "true"])
def test_each_role_gets_exactly_its_expected_permissions(crawler: str) -> None:
    s = stack(LakeFormationGrants="true", EnableCrawler=crawler)
    roles = {"GlueJobRole", "StateMachineRole"} | ({"CrawlerRole"} if crawler == "true" else set())
    assert lake_formation_permissions(s) == {r: EXPECTED[r] for r in roles}
    # Trigger and archive never touch the catalogue.
    assert not {"TriggerRole", "ArchiveRole"} & set(lake_formation_permissions(s))


def test_grants_are_created_after_the_database_and_the_roles() -> None:
    # Ref and GetAtt make CloudFormation create the database and the role first (and
    # revoke the grant before deleting either).
    for name, resource in template()["Resources"].items():
        if resource["Type"] != GRANT:
            continue
        props = resource["Properties"]
        principal = props["Principal"]["DataLakePrincipalIdentifier"]
        assert principal["Fn::GetAtt"][1] == "Arn", name
        (kind,) = props["Resource"]
        database = props["Resource"][kind]["Name" if kind == "Database" else "DatabaseName"]
        assert database == {"Ref": "GlueDatabase"}, name


# ---------------------------------------------------------------------------- mirror of IAM


@pytest.mark.parametrize("role", sorted(EXPECTED))
def test_lake_formation_permissions_mirror_the_iam_catalogue_statements(role: str) -> None:
    s = stack(LakeFormationGrants="true", EnableCrawler="true")
    database, tables = lake_formation_permissions(s)[role]
    iam = iam_catalogue_actions(s, role)
    granted = {("database", p) for p in database} | {("table", p) for p in tables}
    # No Lake Formation permission without an IAM action that uses it ...
    for kind, permission in granted:
        assert COUNTERPARTS[kind, permission] & iam, f"{role}: {permission} on the {kind}"
    # ... and no IAM catalogue action that Lake Formation would deny.
    unknown = iam - set(NO_COUNTERPART) - set().union(*COUNTERPARTS.values())
    assert unknown == set(), f"{role}: map {sorted(unknown)} to a Lake Formation permission"
    for action in iam - set(NO_COUNTERPART):
        assert any(action in COUNTERPARTS[g] for g in granted), f"{role}: {action}"
    # The job's and the crawler's other S3 access needs no Lake Formation permission: the
    # lake bucket is not a registered location.


def test_no_data_location_or_catalog_wide_permission() -> None:
    for props in grants(stack(LakeFormationGrants="true", EnableCrawler="true")).values():
        assert set(props["Resource"]) <= {"Database", "Table"}
        assert "DATA_LOCATION_ACCESS" not in props["Permissions"]
        assert "CREATE_DATABASE" not in props["Permissions"]


# ---------------------------------------------------------------------------- cfn-lint


def lint_findings(text: str) -> list[str]:
    config = ManualArgs(include_checks=["I"], regions=["eu-west-1", "us-east-1"])
    return [
        f"{m.rule.id} line {m.linenumber}: {m.message[:200]}" for m in lint(text, config=config)
    ]


def test_cfn_lint_checks_the_grants_shapes() -> None:
    text = TEMPLATE.read_text(encoding="utf-8")
    assert "Permissions: [SELECT, DESCRIBE]" in text
    # A permission Lake Formation does not know is a lint error, as is a table grant
    # without its catalogue.
    unknown = text.replace("Permissions: [SELECT, DESCRIBE]", "Permissions: [READ, DESCRIBE]", 1)
    assert any(f.startswith("E3030") for f in lint_findings(unknown))
    incomplete = text.replace(
        "          DatabaseName: !Ref GlueDatabase\n          TableWildcard: {}",
        "          TableWildcard: {}",
        1,
    )
    assert incomplete != text
    assert any(f.startswith("E3003") for f in lint_findings(incomplete))
