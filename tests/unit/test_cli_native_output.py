"""Native writes to file descriptor 2 are set aside; the CLI's own messages are not."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
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
    print(native.keep(), native.size_bytes)
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


def test_the_capture_has_no_name_and_leaves_nothing_behind(tmp_path: Path) -> None:
    script = (
        "import os, signal\n"
        "from ecommerce_lakehouse_cli.native import native_output_set_aside\n"
        "with native_output_set_aside() as native:\n"
        "    os.write(2, b'native')\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        timeout=60,
        check=False,
        env={**os.environ, "TMPDIR": str(tmp_path)},
    )
    assert done.returncode == -9
    assert list(tmp_path.iterdir()) == []  # killed: no file left in the temporary folder


def test_sigterm_ends_a_command_with_143_and_one_line(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    (lake / "raw-data").mkdir(parents=True)
    lakehouse = str(Path(sys.executable).parent / "lakehouse")
    # A lock held elsewhere keeps the run waiting until SIGTERM arrives.
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(lake)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        run = subprocess.Popen(
            [lakehouse, "run", "--lake", str(lake), "--lock-timeout", "60"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "TMPDIR": str(tmp_path)},
        )
        time.sleep(3)
        run.send_signal(signal.SIGTERM)
        out, err = run.communicate(timeout=60)
    finally:
        holder.kill()
    assert run.returncode == 143, (out, err)
    assert "Traceback" not in out + err
    assert "terminated (SIGTERM)" in err
    assert [p.name for p in tmp_path.iterdir()] == ["lake"]


HOLD_LOCK = """
import sys, time
from ecommerce_lakehouse_local.lock import FileLakeLock
lock = FileLakeLock(sys.argv[1] + "/_lakehouse.lock")
with lock.acquire(owner="holder", timeout_seconds=5):
    print("held", flush=True)
    time.sleep(120)
"""
