"""Full-size fidelity (slow): the real ViT-B/32 architecture with random weights, frames
from every sample video, against transformers' CLIPModel + CLIPProcessor."""

from __future__ import annotations

from pathlib import Path

import fidelity  # scripts/fidelity.py; scripts/ is on the path (conftest)
import pytest

pytestmark = pytest.mark.slow


def test_full_size_model_meets_the_fidelity_bars(full_hf: Path) -> None:
    report = fidelity.measure(full_hf, frames_per_video=3)
    assert report["frames"] >= 18
    assert fidelity.failures(report) == [], report
