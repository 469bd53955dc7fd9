"""Native writes to file descriptor 2 are set aside; the CLI's own messages are not."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

SCRIPT = textwrap.dedent(
    """
    import os, sys
    from rich.console import Console
    from ecommerce_lakehouse_cli.native import native_output_set_aside

    err = Console(stderr=True)
    with native_output_set_aside() as native:
        os.write(2, b"thread 'tokio-rt-worker' panicked at buffered.rs: Already shut down\\n")
        err.print("error: the one line the user must see")
        print("python stderr", file=sys.stderr)
    print(native.path, native.size_bytes)
    print("after the block", file=sys.stderr)
    os.write(2, b"native after\\n")
    """
)


def test_native_output_goes_to_a_file_and_python_output_to_the_terminal() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60, check=True
    )

    assert done.stderr.splitlines() == [
        "error: the one line the user must see",
        "python stderr",
        "after the block",
        "native after",
    ]
    path, size = done.stdout.split()
    kept = Path(path)
    assert kept.read_text().startswith("thread 'tokio-rt-worker' panicked") and int(size) > 0
    kept.unlink()


def test_nothing_is_kept_when_native_code_wrote_nothing() -> None:
    script = (
        "from ecommerce_lakehouse_cli.native import native_output_set_aside\n"
        "with native_output_set_aside() as native: pass\n"
        "print(native.path.exists(), native.size_bytes)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.split() == ["False", "0"]
