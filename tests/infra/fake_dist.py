"""A small ``dist/`` in the layout ``make package`` writes (``scripts/package.py``).

The wheels and zips are real zip files with a few bytes of content: enough for S3, Lambda
(in moto) and the manifest checks, nothing installable.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

WHEELS = (
    "wheels/ecommerce_lakehouse-0.1.0-py3-none-any.whl",
    "wheels/ecommerce_lakehouse_glue-0.1.0-py3-none-any.whl",
)
REQUIREMENTS = ("dependency-injector==4.49.1",)


def _zip(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return buffer.getvalue()


def make_dist(root: Path, *, marker: str = "1") -> Path:
    """Write ``root/dist`` and return it; ``marker`` changes every file's content."""
    dist = root / "dist"
    contents: dict[str, bytes] = {
        "glue/glue_job.py": f"# glue job {marker}\n".encode(),
        "lambda/trigger.zip": _zip({"handler.py": f"# trigger {marker}\n"}),
        "lambda/archive.zip": _zip({"handler.py": f"# archive {marker}\n"}),
        **{wheel: _zip({"METADATA": f"{wheel} {marker}\n"}) for wheel in WHEELS},
        "wheels/ecommerce_lakehouse_cli-0.1.0-py3-none-any.whl": _zip({"cli": marker}),
    }
    for name, data in contents.items():
        (dist / name).parent.mkdir(parents=True, exist_ok=True)
        (dist / name).write_bytes(data)
    write_manifest(
        dist,
        {
            "version": "0.1.0",
            "glue_script": "glue/glue_job.py",
            "glue_wheels": list(WHEELS),
            "glue_requirements": list(REQUIREMENTS),
            "lambdas": {"trigger": "lambda/trigger.zip", "archive": "lambda/archive.zip"},
            "handlers": {
                "trigger": "ecommerce_lakehouse_lambdas.trigger.handler",
                "archive": "ecommerce_lakehouse_lambdas.archive.handler",
            },
            "sizes": {name: len(data) for name, data in sorted(contents.items())},
        },
    )
    return dist


def write_manifest(dist: Path, manifest: dict[str, Any]) -> None:
    """(Re)write ``dist/manifest.json``."""
    (dist / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")


def read_manifest(dist: Path) -> dict[str, Any]:
    """``dist/manifest.json`` as a dict."""
    manifest: dict[str, Any] = json.loads((dist / "manifest.json").read_text(encoding="utf-8"))
    return manifest
