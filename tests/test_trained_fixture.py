"""The trained fixture model tests/fixtures/shapes-clip really classifies, in RGB.

The bundle is a tiny CLIP trained by scripts/train_fixture_model.py on the synthetic
coloured shapes of scripts/synthetic_shapes.py. Through the public API it must
classify a held-out synthetic set (a seed the training never saw) almost perfectly, and
clearly worse when the colour channels are swapped: red and blue are both classes, so a
BGR/RGB mix-up anywhere between the image and the model fails here.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ["HF_HUB_OFFLINE"] = "1"

import scenecls
from scenecls.model.bundle import load_bundle

REPO = Path(__file__).resolve().parents[1]

import synthetic_shapes  # noqa: E402  (scripts/ is on the path: conftest)

BUNDLE = REPO / "tests" / "fixtures" / "shapes-clip"
HELD_OUT_SEED = 20250  # training uses seed 0
PER_CLASS = 40


def _accuracy(model: scenecls.SceneModel, images: list[np.ndarray], truth: list[str]) -> float:
    results = model.classify(images, list(synthetic_shapes.CLASSES), top_k=1)
    return float(np.mean([r.label == t for r, t in zip(results, truth, strict=True)]))


@pytest.fixture(scope="module")
def held_out(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[np.ndarray], list[str]]:
    """PER_CLASS images of every class, written as PNGs and read back (HxWx3 uint8 BGR)."""
    import cv2

    folder = tmp_path_factory.mktemp("held-out")
    paths = synthetic_shapes.make_dataset(folder, PER_CLASS, seed=HELD_OUT_SEED)
    images = [cv2.imread(str(p), cv2.IMREAD_COLOR) for p in paths]
    assert all(im is not None and im.ndim == 3 for im in images)
    return images, [p.parent.name for p in paths]


def test_bundle_verifies_and_is_small() -> None:
    bundle = load_bundle(BUNDLE, verify=True)  # checks every file's sha256
    assert set(bundle.files) == {"visual.onnx", "textual.onnx", "tokenizer.json"}
    total = sum(f.stat().st_size for f in BUNDLE.iterdir() if f.is_file())
    assert total < 10_000_000, f"fixture bundle is {total / 1e6:.1f} MB"


def test_classifies_held_out_set_and_fails_with_swapped_channels(
    held_out: tuple[list[np.ndarray], list[str]],
) -> None:
    images, truth = held_out
    assert sorted(set(truth)) == sorted(synthetic_shapes.CLASSES)
    model = scenecls.load_model(BUNDLE, device="cpu")
    normal = _accuracy(model, images, truth)
    swapped = _accuracy(model, [np.ascontiguousarray(im[:, :, ::-1]) for im in images], truth)
    assert normal >= 0.90, f"held-out accuracy {normal:.3f}"
    assert swapped <= normal - 0.25, f"swapped {swapped:.3f} vs normal {normal:.3f}"


@pytest.mark.parametrize("precision", ["fp32", "bf16", "int8"])
def test_every_cpu_precision_classifies_the_held_out_set_alike(
    held_out: tuple[list[np.ndarray], list[str]], precision: str
) -> None:
    images, truth = held_out
    exact = scenecls.load_model(BUNDLE, device="cpu", precision="fp32")
    model = scenecls.load_model(BUNDLE, device="cpu", precision=precision)
    assert model.precision == precision
    labels = list(synthetic_shapes.CLASSES)
    same = [
        a.label == b.label
        for a, b in zip(model.classify(images, labels), exact.classify(images, labels), strict=True)
    ]
    assert np.mean(same) >= 0.98
    assert _accuracy(model, images, truth) >= 0.90
