"""Settings: one declaration per setting, one reader, one spelling everywhere.

Every runtime reads one typed settings object: the CLI and the library
:class:`LakeSettings`, the Glue job its subclass with the job's own arguments, the Lambdas and
the state-machine builder theirs. Each is a frozen dataclass whose fields are declared with
:func:`setting`, and every one of them is read by :func:`read_settings`. A setting has one
name (the field's) and every spelling derives from it:

* the command-line flag: ``--`` and the name with dashes (``--glue-database``);
* the Glue job argument: ``--`` and the name as it is (``--glue_database``; Glue's
  ``getResolvedOptions`` wants underscores);
* the environment variable: ``LAKEHOUSE_`` and the name in upper case
  (``LAKEHOUSE_GLUE_DATABASE``), then the AWS variables a few settings also honour
  (``AWS_REGION`` for ``region``);
* the library: ``open_lake(root, options={"glue_database": ...})``.

A value given explicitly (flag, job argument, option) wins over the environment, which wins
over the default. ``docs/settings.md`` holds the table of every setting, generated from these
declarations (:func:`settings_table`).
"""

from __future__ import annotations

import dataclasses
import enum
import math
import re
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from ecommerce_lakehouse.domain.errors import ConfigurationError
from ecommerce_lakehouse.domain.types import SchemaEvolution, Severity

#: The prefix of every setting's environment variable.
ENV_PREFIX = "LAKEHOUSE_"

_METADATA_KEY = "lakehouse.setting"

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class SettingInfo:
    """How one setting is given and what it means.

    Attributes:
        meaning: one line for ``--help`` and the settings table.
        flag: whether the ``lakehouse`` command takes it as a flag.
        job: whether the Glue job takes it as a job argument.
        env: whether it is read from ``LAKEHOUSE_<NAME>``.
        aws_env: AWS's own variables read after ``LAKEHOUSE_<NAME>`` (``AWS_REGION``).
        secret: kept out of reprs, error messages and help defaults.
        choices: the values a text setting may take (read case-insensitively); None: any.
    """

    meaning: str
    flag: bool = True
    job: bool = True
    env: bool = True
    aws_env: tuple[str, ...] = ()
    secret: bool = False
    choices: tuple[str, ...] | None = None


def setting(
    meaning: str,
    *,
    default: Any = dataclasses.MISSING,
    flag: bool = True,
    job: bool = True,
    env: bool = True,
    aws_env: tuple[str, ...] = (),
    secret: bool = False,
    choices: tuple[str, ...] | None = None,
) -> Any:
    """Declare a settings field (a :func:`dataclasses.field` with its :class:`SettingInfo`)."""
    info = SettingInfo(
        meaning, flag=flag, job=job, env=env, aws_env=aws_env, secret=secret, choices=choices
    )
    return dataclasses.field(default=default, repr=not secret, metadata={_METADATA_KEY: info})


def info_of(field: dataclasses.Field[Any]) -> SettingInfo:
    """The :class:`SettingInfo` of a settings field."""
    info: SettingInfo = field.metadata[_METADATA_KEY]
    return info


def flag_name(name: str) -> str:
    """The command-line flag of a setting: ``--glue-database``."""
    return "--" + name.replace("_", "-")


def job_argument(name: str) -> str:
    """The Glue job argument of a setting: ``--glue_database``."""
    return "--" + name


def env_name(name: str) -> str:
    """The environment variable of a setting: ``LAKEHOUSE_GLUE_DATABASE``."""
    return ENV_PREFIX + name.upper()


def settings_fields(cls: type[Any]) -> list[dataclasses.Field[Any]]:
    """The declared settings of a settings class, in declaration order."""
    return [f for f in dataclasses.fields(cls) if _METADATA_KEY in f.metadata]


def read_settings(
    cls: type[T],
    given: Mapping[str, str | None],
    environ: Mapping[str, str],
    *,
    spelling: typing.Callable[[str], str] = lambda name: f"'{name}'",
) -> T:
    """Read a settings object: given values, then the environment, then the defaults.

    Args:
        cls: a frozen dataclass whose fields are declared with :func:`setting`.
        given: explicit values by setting name (flags, job arguments, library options),
            as text or already typed (``5``, ``True``, ``Severity.ERROR``); None or blank
            text means not given. A name that is not a setting is an error.
        environ: the environment (``os.environ``).
        spelling: how the caller's users spell a given setting in error messages
            (:func:`flag_name` for the CLI, :func:`job_argument` for the Glue job).

    Raises:
        ConfigurationError: an unknown name, a value that does not parse, or a required
            setting with no value; the message names the setting as it was given.
    """
    declared = {f.name: f for f in settings_fields(cls)}
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise ConfigurationError(
            f"unknown setting(s) {', '.join(spelling(n) for n in unknown)} "
            f"(settings: {', '.join(sorted(declared))})"
        )
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for name, field in declared.items():
        info = info_of(field)
        sources: list[tuple[str, str | None]] = [(spelling(name), _text(given.get(name)))]
        if info.env:
            sources.append((env_name(name), environ.get(env_name(name))))
        sources.extend((variable, environ.get(variable)) for variable in info.aws_env)
        found = next(
            ((where, text.strip()) for where, text in sources if text and text.strip()), None
        )
        if found is not None:
            where, text = found
            values[name] = _parse(hints[name], text, where, info)
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            # A setting given only through the environment (the Lambdas') names only that.
            named = sources if info.flag or info.job else sources[1:]
            where = " or ".join(w for w, _ in named)
            raise ConfigurationError(f"missing setting {name}: set {where}")
    return cls(**values)


def _text(value: object) -> str | None:
    # A library option may be given typed: 0 and False are values, not "not given".
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, enum.Enum):
        return str(value.value)
    return str(value)


#: A number as people write it, in ASCII digits (``int()`` and ``float()`` also take "٣").
_NUMBER = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?", re.ASCII)


def _parse(hint: Any, text: str, where: str, info: SettingInfo) -> Any:
    # The declared type of a field decides how its text reads: str, int, float, bool,
    # an enum, each optionally ``| None``; a text setting with choices takes one of them.
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        hint = next(a for a in args if a is not type(None))
    shown = "(hidden)" if info.secret else repr(text)
    if hint is str:
        if info.choices is None:
            return text
        if text.lower() not in info.choices:
            raise ConfigurationError(
                f"invalid {where} {shown}: expected one of {', '.join(info.choices)}"
            )
        return text.lower()
    if hint is bool:
        if text.lower() not in ("true", "false"):
            raise ConfigurationError(f"invalid {where} {shown}: expected true or false")
        return text.lower() == "true"
    if hint in (int, float):
        try:
            if not _NUMBER.fullmatch(text):
                raise ValueError(text)
            number = hint(text)
        except ValueError:
            kind = "a whole number" if hint is int else "a number"
            raise ConfigurationError(f"invalid {where} {shown}: expected {kind}") from None
        if not math.isfinite(number) or number < 0:
            raise ConfigurationError(f"invalid {where} {shown}: expected a number, 0 or more")
        return number
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        members = {str(m.value): m for m in hint}
        if text.lower() not in members:
            raise ConfigurationError(
                f"invalid {where} {shown}: expected one of {', '.join(members)}"
            )
        return members[text.lower()]
    raise TypeError(f"settings cannot read a {hint!r}")  # a declaration error, not a user's


def shown_default(field: dataclasses.Field[Any]) -> str:
    """A setting's default as a user would type it (``""`` when it has none)."""
    if field.default is dataclasses.MISSING or field.default is None:
        return ""
    value = field.default
    if isinstance(value, bool):
        return str(value).lower()
    return str(value.value if isinstance(value, enum.Enum) else value)


def settings_table(classes: Iterable[tuple[str, type[Any]]]) -> str:
    """The Markdown table of every setting of the given ``(runtime, class)`` pairs.

    One row per setting name, described by its first declaration; a setting several
    runtimes read lists them all, and a runtime whose default differs is named with it.
    """
    first: dict[str, dataclasses.Field[Any]] = {}
    readers: dict[str, list[tuple[str, dataclasses.Field[Any]]]] = {}
    for runtime, cls in classes:
        for field in settings_fields(cls):
            first.setdefault(field.name, field)
            readers.setdefault(field.name, []).append((runtime, field))
    lines = [
        "| setting | flag | Glue job argument | environment | default | read by | meaning |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, field in first.items():
        info = info_of(field)
        default = shown_default(field)
        others = [
            f"{runtime}: `{shown_default(other) or 'none'}`"
            for runtime, other in readers[name]
            if shown_default(other) != default
        ]
        env = [env_name(name)] if info.env else []
        cells = [
            f"`{name}`",
            f"`{flag_name(name)}`" if info.flag else "",
            f"`{job_argument(name)}`" if info.job else "",
            ", ".join(f"`{v}`" for v in (*env, *info.aws_env)),
            " ".join([f"`{default}`" if default else "", *(f"({o})" for o in others)]).strip(),
            ", ".join(dict.fromkeys(runtime for runtime, _ in readers[name])),
            info.meaning,
        ]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


#: How long one Athena query may run before it is cancelled, unless configured.
DEFAULT_ATHENA_TIMEOUT_SECONDS = 600.0
#: How long a lake lock lease lasts without renewal, unless configured.
DEFAULT_LOCK_LEASE_SECONDS = 300.0
#: How many data files a partition a run's MERGE touched may gather before the run compacts
#: it, unless configured (docs/contract.md#maintenance; measured in docs/benchmarks.md).
DEFAULT_COMPACT_MIN_FILES = 4


def check_compact_min_files(value: int) -> None:
    """Refuse a ``compact_min_files`` that is neither 0 (never) nor 2 or more.

    One file is no policy: a partition of one file has nothing to compact.

    Raises:
        ConfigurationError: the value is negative or 1.
    """
    if value < 0 or value == 1:
        raise ConfigurationError(
            f"invalid compact_min_files {value}: expected 0 (never compact) or at least 2"
        )


#: How long one Trino query may run before the cluster stops it, unless configured.
DEFAULT_TRINO_TIMEOUT_SECONDS = 600.0

#: Query services a lake can use (docs/settings.md): DuckDB on this machine, Amazon Athena,
#: the Spark engine's own session, or a Trino (Starburst) cluster.
QUERY_SERVICES: tuple[str, ...] = ("duckdb", "athena", "spark", "trino")


@dataclass(frozen=True, slots=True, kw_only=True)
class LakeSettings:
    """What the library and the ``lakehouse`` command read: engine, services and run options.

    The lake root itself is the command's ``--lake`` (or ``open_lake``'s first argument).
    """

    engine: str = setting("the table engine: polars (embedded) or spark", default="polars")
    query: str | None = setting(
        "the query service: duckdb, athena, spark or trino (default: spark with the Spark "
        "engine, else duckdb; `lakehouse sql --athena` is query athena)",
        default=None,
        flag=False,
        choices=QUERY_SERVICES,
    )
    schema_evolution: SchemaEvolution = setting(
        "CSV columns not in the schema: rescue, add_new_columns or fail",
        default=SchemaEvolution.RESCUE,
    )
    fk_severity: Severity = setting(
        "severity of the foreign-key checks: warn or error", default=Severity.WARN
    )
    lock_timeout: float = setting(
        "seconds to wait for another run to release the lake", default=60.0
    )
    compact_min_files: int = setting(
        "after its MERGE, a run compacts each partition it touched that holds this many data "
        "files or more (0: never; else at least 2)",
        default=DEFAULT_COMPACT_MIN_FILES,
    )
    lock_lease_seconds: float = setting(
        "how long a lake lock lease lasts without renewal (s3:// lakes)",
        default=DEFAULT_LOCK_LEASE_SECONDS,
        flag=False,
    )
    region: str | None = setting(
        "AWS region of an s3:// lake (and of Glue and Athena)",
        default=None,
        flag=False,
        aws_env=("AWS_REGION", "AWS_DEFAULT_REGION"),
    )
    endpoint_url: str | None = setting(
        "an S3-compatible endpoint for every AWS service (an emulator); unset for AWS's own",
        default=None,
        flag=False,
        aws_env=("AWS_ENDPOINT_URL",),
    )
    access_key_id: str | None = setting(
        "an explicit AWS access key (library only; unset: boto3's own credential chain)",
        default=None,
        flag=False,
        job=False,
        env=False,
    )
    secret_access_key: str | None = setting(
        "the secret of access_key_id (library only)",
        default=None,
        flag=False,
        job=False,
        env=False,
        secret=True,
    )
    session_token: str | None = setting(
        "the session token of temporary credentials (library only)",
        default=None,
        flag=False,
        job=False,
        env=False,
        secret=True,
    )
    glue_database: str | None = setting(
        "the Glue Data Catalog database of an s3:// lake's tables", default=None, flag=False
    )
    athena_workgroup: str | None = setting(
        "the Athena workgroup (query athena)", default=None, flag=False
    )
    athena_output: str | None = setting(
        "s3:// location of Athena's result files (query athena)", default=None, flag=False
    )
    athena_timeout_seconds: float = setting(
        "how long one Athena query may run before it is cancelled",
        default=DEFAULT_ATHENA_TIMEOUT_SECONDS,
        flag=False,
    )
    trino_url: str | None = setting(
        "http(s)://host[:port] of the Trino or Starburst cluster (query trino)",
        default=None,
        flag=False,
        job=False,
    )
    trino_catalog: str = setting(
        "the Trino catalog that reads the lake's Delta tables (query trino)",
        default="delta",
        flag=False,
        job=False,
    )
    trino_schema: str | None = setting(
        "the schema of that catalog holding the lake's tables (default: glue_database)",
        default=None,
        flag=False,
        job=False,
    )
    trino_user: str | None = setting(
        "the user Trino queries run as (default: the user running lakehouse)",
        default=None,
        flag=False,
        job=False,
    )
    trino_password: str | None = setting(
        "basic-auth password for an https:// trino_url (no flag; never shown)",
        default=None,
        flag=False,
        job=False,
        secret=True,
    )
    trino_timeout_seconds: float = setting(
        "how long one Trino query may run before the cluster stops it",
        default=DEFAULT_TRINO_TIMEOUT_SECONDS,
        flag=False,
        job=False,
    )
    spark_master: str = setting(
        "master of a local Spark session (not on Glue)", default="local[2]", flag=False, job=False
    )
    spark_driver_memory: str = setting(
        "driver memory of a local Spark session", default="4g", flag=False, job=False
    )
    spark_jars: str | None = setting(
        "directory of the Delta jars of a local Spark session (default: build/spark-jars)",
        default=None,
        flag=False,
        job=False,
    )

    def __post_init__(self) -> None:
        # What read_settings guarantees, checked again for settings built in code.
        if self.query is not None and self.query not in QUERY_SERVICES:
            raise ConfigurationError(
                f"invalid query service {self.query!r}: expected one of {', '.join(QUERY_SERVICES)}"
            )
        if not isinstance(self.schema_evolution, SchemaEvolution):
            raise ConfigurationError(f"invalid schema_evolution {self.schema_evolution!r}")
        if not isinstance(self.fk_severity, Severity):
            raise ConfigurationError(f"invalid fk_severity {self.fk_severity!r}")
        if not math.isfinite(self.lock_timeout) or self.lock_timeout < 0:
            raise ConfigurationError("lock_timeout must be a number of seconds, 0 or more")
        check_compact_min_files(self.compact_min_files)
