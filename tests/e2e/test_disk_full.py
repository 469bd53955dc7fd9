"""`lakehouse run` on a lake whose disk fills up: the run fails plainly and loses no file.

A small tmpfs holds the lake; the raw CSVs leave too little room for the Delta tables, so a
write fails with ENOSPC inside delta-rs, which reports it as a DeltaError or as an OSError
whose first line is only "Generic LocalFileSystem error". Needs root (to mount a tmpfs); the
test is skipped elsewhere.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

LAKEHOUSE = str(Path(sys.executable).parent / "lakehouse")
#: ~6 MB of CSVs in a 7 MB tmpfs: they fit, their Delta tables and logs do not.
SCALE = "0.003"
TMPFS_SIZE = "7m"


def lakehouse(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [LAKEHOUSE, *args], capture_output=True, text=True, timeout=120, check=False
    )


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A fresh 7 MB tmpfs, unmounted afterwards."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs to fill up needs root")
    if shutil.which("mount") is None or shutil.which("umount") is None:
        pytest.skip("no mount/umount command")
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE}", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        # Lazy: a native thread of the killed run may still hold a file open.
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def _checksums(root: Path) -> dict[str, Path]:
    return {
        hashlib.sha256(path.read_bytes()).hexdigest(): path
        for path in root.rglob("*.csv")
        if path.is_file()
    }


def test_a_full_disk_fails_the_run_plainly_and_keeps_every_raw_file(
    small_disk: Path, tmp_path: Path
) -> None:
    # Generated on the roomy disk, then copied: the generator is not what is under test.
    source = tmp_path / "source"
    generated = lakehouse("generate", "--out", str(source), "--scale", SCALE)
    assert generated.returncode == 0, generated.stderr
    lake = small_disk / "lake"
    shutil.copytree(source / "raw-data", lake / "raw-data")
    before = _checksums(lake / "raw-data")
    assert len(before) == 3

    done = lakehouse("run", "--lake", str(lake), "--settle-seconds", "0")

    assert done.returncode == 1, (done.stdout, done.stderr[-2000:])
    assert "Traceback" not in done.stdout + done.stderr
    failed = [line for line in done.stdout.splitlines() if line.startswith("Run failed in step")]
    assert len(failed) == 1, done.stdout
    assert "disk full: no space left on device" in failed[0], failed[0]
    assert "free space and run again" in failed[0]
    assert "Generic LocalFileSystem error" not in failed[0]
    # delta-rs' worker threads panic on the full disk (apache/arrow-rs-object-store#810):
    # their messages are set aside in a file, named in one line, not shown.
    assert "panicked" not in done.stderr, done.stderr[-2000:]
    notes = [line for line in done.stderr.splitlines() if line.startswith("note: native")]
    assert len(notes) <= 1, done.stderr[-2000:]
    for note in notes:
        kept = Path(note.rsplit("kept in ", 1)[1])
        assert "panicked" in kept.read_text(errors="replace")
        kept.unlink()
    # Nothing lost: every raw file is still in raw-data/, or archived whole once its rows
    # were committed; whatever failed to load is still in raw-data/.
    still_raw = _checksums(lake / "raw-data")
    archived = _checksums(lake / "archive") if (lake / "archive").exists() else {}
    assert set(before) == set(still_raw) | set(archived)
    assert still_raw, "the file whose load hit the full disk must stay in raw-data/"
