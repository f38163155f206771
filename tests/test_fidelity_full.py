"""Full-size fidelity (slow): the real ViT-B/32 architecture with random weights, frames
from every sample video, against transformers' CLIPModel + CLIPProcessor."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from .conftest import REPO, build_ref_model

pytestmark = pytest.mark.slow


def _fidelity_script():
    import sys

    sys.path.insert(0, str(REPO / "scripts"))
    spec = importlib.util.spec_from_file_location("fidelity", REPO / "scripts" / "fidelity.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def test_full_size_model_meets_the_fidelity_bars(tmp_path_factory) -> None:
    hf: Path = build_ref_model(tmp_path_factory.mktemp("full") / "clip-b32", tiny=False)
    fidelity = _fidelity_script()
    report = fidelity.measure(hf, frames_per_video=3)
    assert report["frames"] >= 18
    assert fidelity.failures(report) == [], report
