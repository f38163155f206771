"""Preprocessing reproduces the reference CLIPImageProcessor on real and odd frames."""

from __future__ import annotations

import numpy as np
import pytest
from transformers import CLIPImageProcessor

from scenecls.errors import InputError
from scenecls.model.bundle import Preprocessing
from scenecls.model.preprocess import Preprocessor, resized_size

CLIP = Preprocessing(
    shortest_edge=224,
    crop_size=(224, 224),
    resample="bicubic",
    mean=(0.48145466, 0.4578275, 0.40821073),
    std=(0.26862954, 0.26130258, 0.27577711),
    rescale_factor=1 / 255,
)


@pytest.fixture(scope="module")
def reference(tiny_hf):
    proc = CLIPImageProcessor.from_pretrained(tiny_hf)

    def run(image_bgr: np.ndarray) -> np.ndarray:
        rgb = np.ascontiguousarray(image_bgr[:, :, ::-1])
        return proc(images=rgb, return_tensors="np", input_data_format="channels_last")[
            "pixel_values"
        ][0]

    return run


def test_matches_reference_on_real_frames(real_frames, reference) -> None:
    pre = Preprocessor(CLIP)
    for frame in real_frames:
        ours, ref = pre(frame), reference(frame)
        assert ours.shape == ref.shape == (3, 224, 224)
        assert ours.dtype == np.float32
        assert np.abs(ours - ref).mean() <= 0.005
        # at most two grey levels apart anywhere (rounding ties in either pass)
        assert np.abs(ours - ref).max() <= 2.01 / 255 / min(CLIP.std)


@pytest.mark.parametrize(
    "hw",
    [(1080, 1920), (1920, 1080), (224, 224), (225, 300), (100, 150), (17, 30), (1, 5), (4000, 33)],
)
def test_matches_reference_on_odd_sizes(hw, reference) -> None:
    rng = np.random.default_rng(hw[0] * 7 + hw[1])
    base = rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
    import cv2

    image = cv2.resize(base, (hw[1], hw[0]), interpolation=cv2.INTER_LINEAR)
    image = np.clip(image.astype(int) + rng.integers(-20, 20, image.shape), 0, 255).astype(np.uint8)
    diff = np.abs(Preprocessor(CLIP)(image) - reference(image))
    assert diff.mean() <= 0.005


def test_channel_order_is_rgb(reference) -> None:
    blue_bgr = np.zeros((50, 80, 3), np.uint8)
    blue_bgr[:, :, 0] = 255  # pure blue in BGR
    out = Preprocessor(CLIP)(blue_bgr)
    # channel 2 of the output is blue (RGB order): at its maximum; red at its minimum
    assert np.allclose(out[2], (1 - CLIP.mean[2]) / CLIP.std[2], atol=1e-5)
    assert np.allclose(out[0], (0 - CLIP.mean[0]) / CLIP.std[0], atol=1e-5)


def test_grey_and_bgra_inputs() -> None:
    pre = Preprocessor(CLIP)
    grey = np.full((60, 90), 128, np.uint8)
    bgr = np.repeat(grey[:, :, None], 3, axis=2)
    bgra = np.concatenate([bgr, np.zeros((60, 90, 1), np.uint8)], axis=2)
    assert np.array_equal(pre(grey), pre(bgr))
    assert np.array_equal(pre(bgra), pre(bgr))


def test_batch_stacks_images_of_different_sizes() -> None:
    pre = Preprocessor(CLIP)
    a = np.zeros((100, 200, 3), np.uint8)
    b = np.full((300, 120, 3), 200, np.uint8)
    out = pre.batch([a, b])
    assert out.shape == (2, 3, 224, 224) and out.dtype == np.float32
    assert np.array_equal(out[1], pre(b))


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((10, 10, 3), np.float32),
        np.zeros((10, 10, 2), np.uint8),
        np.zeros((0, 5, 3), np.uint8),
        "x",
    ],
)
def test_rejects_bad_images_with_shape_in_message(bad) -> None:
    with pytest.raises(InputError, match=r"expected|no pixels"):
        Preprocessor(CLIP)(bad)


def test_resized_size_truncates_long_side() -> None:
    assert resized_size(1080, 1920, 224) == (224, 398)
    assert resized_size(1920, 1080, 224) == (398, 224)
    assert resized_size(224, 224, 224) == (224, 224)
