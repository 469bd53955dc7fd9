"""A Trino (or Starburst) cluster as the lake's query service (``query trino``).

It belongs to neither platform: the cluster reads whatever its catalog holds, an S3
lake's tables registered in the Glue Data Catalog or a directory another catalog reads.
``open_lake`` finds :func:`query_service` under the ``ecommerce_lakehouse.query_services``
entry point ``trino``.
"""

from __future__ import annotations

from ecommerce_lakehouse.ports.storage import ObjectStorage
from ecommerce_lakehouse.settings import LakeSettings
from ecommerce_lakehouse_trino.query import TrinoQueryService
from ecommerce_lakehouse_trino.settings import TrinoSettings

__all__ = ["TrinoQueryService", "TrinoSettings", "query_service"]


def query_service(settings: LakeSettings, storage: ObjectStorage) -> TrinoQueryService:
    """The Trino query service of a lake (entry point ``trino``).

    Args:
        settings: the lake's settings (``trino_url``, ``trino_catalog``, ``trino_schema``,
            ``trino_user``, ``trino_password``, ``trino_timeout_seconds``).
        storage: the lake's storage; unused: the cluster's catalog locates the tables.

    Raises:
        ConfigurationError: no URL or schema, or a setting the client cannot take.
    """
    return TrinoQueryService(TrinoSettings.of(settings))
