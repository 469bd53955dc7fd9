"""Read the CloudFormation templates of ``infra/`` and evaluate their intrinsic functions.

PyYAML does not know CloudFormation's short-form tags (``!Ref``, ``!Sub``, ...); the loader
turns them into the long form (``{"Ref": ...}``, ``{"Fn::Sub": ...}``). :class:`Stack`
evaluates ``Ref``, ``Fn::Sub``, ``Fn::GetAtt``, ``Fn::If``, ``Fn::Equals``, ``Fn::Not``,
``Fn::And``, ``Fn::Or`` and ``Fn::Join`` for given parameter values, as CloudFormation would,
with the names and ARNs the stack's resources would get (``AWS::NoValue`` drops the key or
item).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "infra" / "template.yaml"
BOOTSTRAP = ROOT / "infra" / "bootstrap.yaml"

PARTITION = "aws"
ACCOUNT = "123456789012"
REGION = "eu-west-1"
NO_VALUE = object()


class _Loader(yaml.SafeLoader):
    pass


def _tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        assert isinstance(node, yaml.MappingNode)
        value = loader.construct_mapping(node, deep=True)
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "Condition":
        return {"Condition": value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


_Loader.add_multi_constructor("!", _tag)


def load(path: Path) -> dict[str, Any]:
    """A template as plain data, intrinsic functions in their long form."""
    document: dict[str, Any] = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)
    return document


#: Resource type -> (name property, what Ref answers: "name", "arn" or "url").
_NAMES: Mapping[str, tuple[str, str]] = {
    "AWS::S3::Bucket": ("BucketName", "name"),
    "AWS::IAM::Role": ("RoleName", "name"),
    "AWS::IAM::ManagedPolicy": ("ManagedPolicyName", "arn"),
    "AWS::Lambda::Function": ("FunctionName", "name"),
    "AWS::Logs::LogGroup": ("LogGroupName", "name"),
    "AWS::SQS::Queue": ("QueueName", "url"),
    "AWS::StepFunctions::StateMachine": ("StateMachineName", "arn"),
    "AWS::Glue::Job": ("Name", "name"),
    "AWS::Glue::Crawler": ("Name", "name"),
    "AWS::Athena::WorkGroup": ("Name", "name"),
    "AWS::CloudWatch::Alarm": ("AlarmName", "name"),
}


class Stack:
    """A template evaluated for one set of parameter values.

    Args:
        template: the loaded template.
        parameters: parameter values; parameters not given take their defaults.
        stack_name: the stack's name (``AWS::StackName``).
    """

    def __init__(
        self, template: Mapping[str, Any], parameters: Mapping[str, str], stack_name: str
    ) -> None:
        self.template = template
        self.stack_name = stack_name
        self.values: dict[str, Any] = {
            name: str(spec["Default"])
            for name, spec in template.get("Parameters", {}).items()
            if "Default" in spec
        }
        self.values.update(parameters)
        self.values.update(
            {
                "AWS::StackName": stack_name,
                "AWS::AccountId": ACCOUNT,
                "AWS::Region": REGION,
                "AWS::Partition": PARTITION,
                "AWS::URLSuffix": "amazonaws.com",
            }
        )
        missing = [p for p in template.get("Parameters", {}) if p not in self.values]
        assert not missing, f"parameters without a value: {missing}"
        self.conditions: dict[str, bool] = {}
        for name, expression in template.get("Conditions", {}).items():
            self.conditions[name] = bool(self.resolve(expression))

    @property
    def resources(self) -> dict[str, dict[str, Any]]:
        """The resources whose condition holds, by logical id."""
        return {
            name: resource
            for name, resource in self.template["Resources"].items()
            if "Condition" not in resource or self.conditions[resource["Condition"]]
        }

    def properties(self, logical_id: str) -> dict[str, Any]:
        """A resource's properties with every intrinsic function evaluated."""
        value = self.resolve(self.template["Resources"][logical_id].get("Properties", {}))
        assert isinstance(value, dict)
        return value

    def name_of(self, logical_id: str) -> str:
        """The physical name of a resource (its name property, else a generated one)."""
        resource = self.template["Resources"][logical_id]
        prop, _ = _NAMES.get(resource["Type"], ("Name", "name"))
        given = resource.get("Properties", {}).get(prop)
        if resource["Type"] == "AWS::Glue::Database":
            return str(self.resolve(resource["Properties"]["DatabaseInput"]["Name"]))
        if given is None:
            return f"{self.stack_name}-{logical_id.lower()}-generated"
        return str(self.resolve(given))

    def arn_of(self, logical_id: str) -> str:
        """The ARN of a resource, as ``Fn::GetAtt <id>.Arn`` (or ``Ref``) answers it."""
        kind = self.template["Resources"][logical_id]["Type"]
        name = self.name_of(logical_id)
        region = f"{PARTITION}:{{}}:{REGION}:{ACCOUNT}"
        arns = {
            "AWS::S3::Bucket": f"arn:{PARTITION}:s3:::{name}",
            "AWS::IAM::Role": f"arn:{PARTITION}:iam::{ACCOUNT}:role/{name}",
            "AWS::IAM::ManagedPolicy": f"arn:{PARTITION}:iam::{ACCOUNT}:policy/{name}",
            "AWS::IAM::OIDCProvider": (
                f"arn:{PARTITION}:iam::{ACCOUNT}:oidc-provider/token.actions.githubusercontent.com"
            ),
            "AWS::Lambda::Function": "arn:" + region.format("lambda") + f":function:{name}",
            "AWS::Logs::LogGroup": "arn:" + region.format("logs") + f":log-group:{name}:*",
            "AWS::SQS::Queue": "arn:" + region.format("sqs") + f":{name}",
            "AWS::StepFunctions::StateMachine": "arn:"
            + region.format("states")
            + f":stateMachine:{name}",
        }
        return arns[kind]

    def _ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in self.values:
            return self.values[name]
        kind = self.template["Resources"][name]["Type"]
        answer = _NAMES.get(kind, ("Name", "name"))[1]
        if kind in ("AWS::IAM::OIDCProvider",):
            answer = "arn"
        if answer == "arn":
            return self.arn_of(name)
        if answer == "url":
            return f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{self.name_of(name)}"
        return self.name_of(name)

    def _get_att(self, logical_id: str, attribute: str) -> str:
        if attribute == "Arn":
            return self.arn_of(logical_id)
        if attribute == "QueueName":
            return self.name_of(logical_id)
        raise AssertionError(f"unsupported attribute {logical_id}.{attribute}")

    def _sub(self, text: str, variables: Mapping[str, Any]) -> str:
        def replace(match: re.Match[str]) -> str:
            key = match.group(1)
            if key.startswith("!"):
                return "${" + key[1:] + "}"
            if key in variables:
                return str(variables[key])
            if "." in key:
                logical_id, attribute = key.split(".", 1)
                return self._get_att(logical_id, attribute)
            return str(self._ref(key))

        return re.sub(r"\$\{([^}]+)\}", replace, text)

    def resolve(self, node: Any) -> Any:
        """``node`` with every intrinsic function evaluated."""
        if isinstance(node, list):
            items = [self.resolve(item) for item in node]
            return [item for item in items if item is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            (key, value), *_ = node.items()
            if key == "Ref":
                return self._ref(value)
            if key == "Condition":
                return self.conditions[value]
            if key == "Fn::GetAtt":
                return self._get_att(value[0], value[1])
            if key == "Fn::Sub":
                if isinstance(value, list):
                    text, variables = value
                    return self._sub(text, {k: self.resolve(v) for k, v in variables.items()})
                return self._sub(value, {})
            if key == "Fn::If":
                condition, when_true, when_false = value
                return self.resolve(when_true if self.conditions[condition] else when_false)
            if key == "Fn::Equals":
                left, right = (self.resolve(v) for v in value)
                return str(left) == str(right)
            if key == "Fn::Not":
                return not self.resolve(value[0])
            if key == "Fn::And":
                return all(self.resolve(v) for v in value)
            if key == "Fn::Or":
                return any(self.resolve(v) for v in value)
            if key == "Fn::Join":
                separator, items = value
                return separator.join(str(i) for i in self.resolve(items))
            assert not key.startswith("Fn::"), f"unsupported intrinsic function {key}"
        resolved = {k: self.resolve(v) for k, v in node.items()}
        return {k: v for k, v in resolved.items() if v is not NO_VALUE}


def policy_documents(stack: Stack) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every IAM policy document of the stack's roles and managed policies, by owner."""
    for logical_id, resource in stack.resources.items():
        if resource["Type"] == "AWS::IAM::Role":
            for policy in stack.properties(logical_id).get("Policies", []):
                yield f"{logical_id}/{policy['PolicyName']}", policy["PolicyDocument"]
        elif resource["Type"] == "AWS::IAM::ManagedPolicy":
            yield logical_id, stack.properties(logical_id)["PolicyDocument"]


def statements(document: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A policy's statements, each with ``Action`` and ``Resource`` as lists."""
    found = document["Statement"]
    result = []
    for statement in found if isinstance(found, list) else [found]:
        normalised = dict(statement)
        for key in ("Action", "Resource"):
            value = statement.get(key, [])
            normalised[key] = value if isinstance(value, list) else [value]
        result.append(normalised)
    return result
