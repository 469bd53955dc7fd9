"""Ports: the protocols the application layer depends on."""

from ecommerce_lakehouse.ports.catalogue import Catalogue, TableDefinition
from ecommerce_lakehouse.ports.engine import (
    CommitRecord,
    FrameT,
    MergeOutcome,
    RunContext,
    SourceFile,
    StagedBatch,
    TableEngine,
    TableRef,
)
from ecommerce_lakehouse.ports.lock import Lock
from ecommerce_lakehouse.ports.query import QueryService, TabularResult
from ecommerce_lakehouse.ports.storage import ObjectInfo, ObjectStorage

__all__ = [
    "Catalogue",
    "CommitRecord",
    "FrameT",
    "Lock",
    "MergeOutcome",
    "ObjectInfo",
    "ObjectStorage",
    "QueryService",
    "RunContext",
    "SourceFile",
    "StagedBatch",
    "TableDefinition",
    "TableEngine",
    "TableRef",
    "TabularResult",
]
