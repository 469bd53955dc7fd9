"""The Amazon States Language definition of the pipeline (``lakehouse state-machine``)."""

from ecommerce_lakehouse_sfn.definition import Integration, build_definition, definition_json
from ecommerce_lakehouse_sfn.settings import StateMachineSettings

__all__ = ["Integration", "StateMachineSettings", "build_definition", "definition_json"]
