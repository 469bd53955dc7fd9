"""The Trino query service's view of the lake settings, checked for what the client needs.

Nothing here reads the environment: the settings were read once, by
:func:`ecommerce_lakehouse.settings.read_settings` (docs/settings.md).
"""

from __future__ import annotations

import getpass
import math
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from ecommerce_lakehouse.domain.errors import ConfigurationError
from ecommerce_lakehouse.settings import DEFAULT_TRINO_TIMEOUT_SECONDS, LakeSettings, env_name

#: The port a URL without one means, by scheme (the Trino client's own defaults).
_DEFAULT_PORTS = {"http": 8080, "https": 443}


@dataclass(frozen=True, slots=True, kw_only=True)
class TrinoSettings:
    """Where the Trino cluster is, which tables it reads, and as whom.

    Attributes:
        url: ``http(s)://host[:port]`` of the coordinator; no user, password, path or query.
        catalog: the catalog whose connector reads the lake's Delta tables.
        schema: the schema of ``catalog`` holding the lake's tables.
        user: the user queries run as.
        password: the basic-authentication password (``https://`` only); None for none.
        timeout_seconds: how long one query may run before the cluster stops it.
    """

    url: str
    catalog: str
    schema: str
    user: str
    # Kept out of reprs (error reports, logs).
    password: str | None = field(default=None, repr=False)
    timeout_seconds: float = DEFAULT_TRINO_TIMEOUT_SECONDS

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
            raise ConfigurationError(
                f"invalid {env_name('trino_url')} {self.url!r}: expected http(s)://host[:port]"
            )
        if parts.username is not None or parts.password is not None:
            # A URL is shown in messages: credentials never go in it.
            raise ConfigurationError(
                f"{env_name('trino_url')} must not hold a user or password: set "
                f"{env_name('trino_user')} and {env_name('trino_password')}"
            )
        if parts.path.strip("/") or parts.query or parts.fragment:
            raise ConfigurationError(
                f"invalid {env_name('trino_url')} {self.url!r}: expected http(s)://host[:port] "
                "with no path"
            )
        try:
            parts.port  # noqa: B018 - raises on a port that is not a number from 0 to 65535
        except ValueError:
            raise ConfigurationError(
                f"invalid {env_name('trino_url')} {self.url!r}: the port is not a number"
            ) from None
        if self.password is not None and parts.scheme != "https":
            raise ConfigurationError(
                f"{env_name('trino_password')} is sent only over https: make "
                f"{env_name('trino_url')} an https:// URL"
            )
        for name in ("catalog", "schema", "user"):
            if not getattr(self, name).strip():
                raise ConfigurationError(f"'trino_{name}' must not be blank")
        if not math.isfinite(self.timeout_seconds) or self.timeout_seconds <= 0:
            raise ConfigurationError("'trino_timeout_seconds' must be a positive number of seconds")

    @property
    def scheme(self) -> str:
        """``http`` or ``https``."""
        return urlsplit(self.url).scheme

    @property
    def host(self) -> str:
        """The coordinator's host name."""
        return urlsplit(self.url).hostname or ""

    @property
    def port(self) -> int:
        """The coordinator's port (8080 for http, 443 for https when the URL gives none)."""
        parts = urlsplit(self.url)
        return parts.port or _DEFAULT_PORTS[parts.scheme]

    @classmethod
    def of(cls, settings: LakeSettings) -> TrinoSettings:
        """The Trino part of a lake's settings.

        The schema is ``trino_schema``, else the lake's ``glue_database`` (a Trino catalog
        on the Glue Data Catalog sees each Glue database as a schema); the user is
        ``trino_user``, else the user running the process.

        Raises:
            ConfigurationError: no URL or schema, or a value the client cannot take.
        """
        if settings.trino_url is None:
            raise ConfigurationError(
                f"query trino needs the cluster's address: set {env_name('trino_url')} "
                "(http(s)://host[:port]) or the option 'trino_url'"
            )
        schema = settings.trino_schema or settings.glue_database
        if schema is None:
            raise ConfigurationError(
                f"query trino needs the schema of the lake's tables: set "
                f"{env_name('trino_schema')} (or {env_name('glue_database')} for a catalog on "
                "the Glue Data Catalog)"
            )
        return cls(
            url=settings.trino_url,
            catalog=settings.trino_catalog,
            schema=schema,
            user=settings.trino_user or _process_user(),
            password=settings.trino_password,
            timeout_seconds=settings.trino_timeout_seconds,
        )


def _process_user() -> str:
    # Trino's own CLI runs as the operating-system user when given none.
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "lakehouse"
