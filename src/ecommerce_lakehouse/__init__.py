"""ecommerce-lakehouse: raw e-commerce CSV drops to validated, deduplicated Delta Lake tables.

Importing this package imports no engine and no cloud SDK: adapters load when a lake is
opened with them.

Example:
    >>> import ecommerce_lakehouse as lh
    >>> lake = lh.open_lake("/data/lake", engine="polars")  # doctest: +SKIP
    >>> result = lake.run()  # doctest: +SKIP
"""

from ecommerce_lakehouse.application.lake import Lake, open_lake
from ecommerce_lakehouse.application.run import RunOptions, RunResult
from ecommerce_lakehouse.application.tables import TableInfo
from ecommerce_lakehouse.domain.errors import ConfigurationError, LakehouseError
from ecommerce_lakehouse.domain.types import SchemaEvolution, Severity
from ecommerce_lakehouse.domain.validation import ValidationPolicy

__all__ = [
    "ConfigurationError",
    "Lake",
    "LakehouseError",
    "RunOptions",
    "RunResult",
    "SchemaEvolution",
    "Severity",
    "TableInfo",
    "ValidationPolicy",
    "open_lake",
]
