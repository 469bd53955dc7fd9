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
    """What native code wrote while set aside.

    Attributes:
        size_bytes: how much was written (known once the block ended).
        text: what was written, when anything was.
    """

    size_bytes: int = 0
    text: bytes = b""

    def keep(self) -> Path:
        """Write what was set aside to a new file (for a bug report) and return its path."""
        handle, name = tempfile.mkstemp(prefix="lakehouse-native-", suffix=".log")
        with os.fdopen(handle, "wb") as file:
            file.write(self.text)
        return Path(name)


@contextmanager
def native_output_set_aside() -> Iterator[NativeOutput]:
    """Send file descriptor 2 to a file for the block; Python's ``sys.stderr`` keeps the terminal.

    Every message of the CLI goes through ``sys.stderr`` (Rich reads it when it prints), so
    it still reaches the user; only writes to the descriptor itself, from native code or
    child processes started in the block, land in the file. The file has no name (it is
    gone with the process, even one killed with SIGKILL); afterwards ``text`` holds what it
    received, which :meth:`NativeOutput.keep` can save.
    """
    sys.stderr.flush()
    terminal = os.dup(2)
    capture = tempfile.TemporaryFile()  # noqa: SIM115 - closed below, after the block
    kept = NativeOutput()
    original = sys.stderr
    os.dup2(capture.fileno(), 2)
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
        capture.seek(0)
        kept.text = capture.read()
        kept.size_bytes = len(kept.text)
        capture.close()
