"""Suite-wide set-up: how the JVMs the tests start are tuned, and when Trino is stopped."""

from __future__ import annotations

import os
from collections.abc import Generator
from typing import Any

import pytest

from tests.trino_support import stop_shared_trino

#: For the Spark JVMs the tests start in child processes (``lakehouse --engine spark``,
#: ``spark-submit``): each lives for one short run, which spends less CPU at the JIT's
#: first tier than compiling for peak speed (the suite keeps both cores busy). Spark's
#: launcher adds ``SPARK_SUBMIT_OPTS`` to the driver's JVM options.
CHILD_SPARK_JVM_OPTIONS = "-XX:TieredStopAtLevel=1"


def pytest_configure(config: pytest.Config) -> None:
    # A user's own options apply to every JVM. (xdist's workers inherit the controller's.)
    os.environ.setdefault("SPARK_SUBMIT_OPTS", CHILD_SPARK_JVM_OPTIONS)
    if os.environ["SPARK_SUBMIT_OPTS"] == CHILD_SPARK_JVM_OPTIONS:
        _own_spark_jvm_without_child_options()


def _own_spark_jvm_without_child_options() -> None:
    """Start this process's own Spark JVM without :data:`CHILD_SPARK_JVM_OPTIONS`.

    A test process keeps its session for every Spark test it runs: it gains from the JIT's
    second tier. PySpark starts the JVM with a copy of ``os.environ``.
    """
    try:
        import pyspark.context as context
    except ImportError:  # the Spark extra is not installed
        return
    launch = context.launch_gateway

    def launch_gateway(conf: Any = None, popen_kwargs: Any = None) -> Any:
        options = os.environ.pop("SPARK_SUBMIT_OPTS", None)
        try:
            return launch(conf, popen_kwargs)
        finally:
            if options is not None:
                os.environ["SPARK_SUBMIT_OPTS"] = options

    context.launch_gateway = launch_gateway


def _module(item: pytest.Item | None) -> pytest.Module | None:
    return None if item is None else item.getparent(pytest.Module)


#: Markers of the slow tests (a JVM, the emulator, large data): their modules run before the
#: modules without any.
_SLOW_MARKERS = ("spark", "aws", "slow")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run the modules that use Trino first, then those with other slow tests, each whole
    (their module fixtures are built once).

    A worker takes whole files in collection order (``--dist loadfile``), so once it runs a
    test of another module it will not need Trino again: the server it started is stopped
    then (an idle Trino still spends ~6% of a core, for the rest of a 20-minute suite). The
    slowest files started first leave the short ones to even out the workers' finish.
    (Sent test by test in chunks, ``--dist load``, one worker finished 39 s after the other
    with the Spark modules of ``tests/integration`` last, and 187 s after with them first:
    the other worker's queue held them.)
    """
    trino = {_module(item) for item in items if item.get_closest_marker("trino")}
    slow = {
        _module(item)
        for item in items
        if any(item.get_closest_marker(name) for name in _SLOW_MARKERS)
    }

    def rank(item: pytest.Item) -> int:
        module = _module(item)
        return 0 if module in trino else 1 if module in slow else 2

    items.sort(key=rank)  # stable: each module's tests stay together, in their order
    config.stash[_TRINO_MODULES] = trino


_TRINO_MODULES = pytest.StashKey[set[pytest.Module | None]]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None]:
    try:
        return (yield)
    finally:
        modules = item.config.stash.get(_TRINO_MODULES, set())
        if _module(item) in modules and _module(nextitem) not in modules:
            stop_shared_trino()
