"""The generator's own bound on ``scale``: library callers get the CLI's protection too."""

from __future__ import annotations

from pathlib import Path

import pytest

from ecommerce_lakehouse.domain.errors import ConfigurationError
from ecommerce_lakehouse_datagen import MAX_SCALE, generate


@pytest.mark.parametrize("scale", [1e308, 1e9, MAX_SCALE * 1.01, float("inf"), float("-inf")])
def test_rejects_a_scale_too_large_to_generate(tmp_path: Path, scale: float) -> None:
    # 1e308 used to overflow the row counts, 1e9 to ask numpy for hundreds of terabytes.
    with pytest.raises(ConfigurationError, match="scale must be a positive number up to 100"):
        generate(tmp_path, scale=scale)
    assert not (tmp_path / "raw-data").exists()
