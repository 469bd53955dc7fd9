"""Keep what native libraries print to the process's stderr off the user's terminal.

delta-rs and object_store run Rust worker threads that print panic messages straight to
file descriptor 2, bypassing Python: when a disk fills, hundreds of lines such as
``thread 'tokio-rt-worker' panicked at object_store-…/src/buffered.rs: Already shut down``
(apache/arrow-rs-object-store#810) bury the one-line error. A local Spark JVM logs there too.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


@dataclass(slots=True)
class NativeOutput:
    """Where native output went while set aside.

    Attributes:
        path: the file that received it.
        size_bytes: how much was written (known once the block ended).
    """

    path: Path
    size_bytes: int = 0


@contextmanager
def native_output_set_aside() -> Iterator[NativeOutput]:
    """Send file descriptor 2 to a file for the block; Python's ``sys.stderr`` keeps the terminal.

    Every message of the CLI goes through ``sys.stderr`` (Rich reads it when it prints), so
    it still reaches the user; only writes to the descriptor itself, from native code or
    child processes started in the block, land in the file. Afterwards the file is deleted
    when empty; otherwise it stays and ``size_bytes`` says how much it holds.
    """
    sys.stderr.flush()
    terminal = os.dup(2)
    handle, name = tempfile.mkstemp(prefix="lakehouse-native-", suffix=".log")
    kept = NativeOutput(path=Path(name))
    original = sys.stderr
    os.dup2(handle, 2)
    os.close(handle)
    sys.stderr = open(  # noqa: SIM115 - closed below, after the descriptor is restored
        terminal,
        "w",
        encoding=original.encoding or "utf-8",
        errors=original.errors or "backslashreplace",
        buffering=1,
        closefd=False,
    )
    try:
        yield kept
    finally:
        sys.stderr.flush()
        sys.stderr.close()
        os.dup2(terminal, 2)
        os.close(terminal)
        sys.stderr = original
        kept.size_bytes = kept.path.stat().st_size if kept.path.exists() else 0
        if kept.size_bytes == 0:
            kept.path.unlink(missing_ok=True)
