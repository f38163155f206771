"""The bundle plus our preprocessing reproduce transformers' CLIPModel + CLIPProcessor.

On the tiny random model; scripts/fidelity.py (and the slow test) does the same on
the full-size architecture.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import CLIPModel, CLIPProcessor

from scenecls.model.fidelity import cosine_rows

TEXTS = [
    "a photo of a cat.",
    "room",
    "a photo of a chicago deep dish pizza.",
    "Ünïcödé – 東京の公園",
    "word " * 120,
]


@pytest.fixture(scope="module")
def reference(tiny_hf):
    return CLIPModel.from_pretrained(tiny_hf).eval(), CLIPProcessor.from_pretrained(tiny_hf)


def test_onnx_matches_torch_on_identical_input(tiny_model, reference) -> None:
    model, _ = reference
    x = np.random.default_rng(1).standard_normal((4, 3, 224, 224)).astype(np.float32)
    with torch.inference_mode():
        ref = model.get_image_features(pixel_values=torch.from_numpy(x)).numpy()
    ours = tiny_model.image_encoder(x)
    assert cosine_rows(ours, ref).min() >= 0.99999


def test_encode_images_matches_reference_on_real_frames(tiny_model, reference, real_frames) -> None:
    model, proc = reference
    rgb = [np.ascontiguousarray(f[:, :, ::-1]) for f in real_frames]
    with torch.inference_mode():
        pix = proc(images=rgb, return_tensors="pt")["pixel_values"]
        ref = model.get_image_features(pixel_values=pix).numpy()
    cos = cosine_rows(tiny_model.encode_images(real_frames), ref)
    assert cos.mean() >= 0.9999 and cos.min() >= 0.9995


def test_encode_texts_matches_reference(tiny_model, reference) -> None:
    model, proc = reference
    with torch.inference_mode():
        tok = proc.tokenizer(
            TEXTS, padding=True, truncation=True, max_length=77, return_tensors="pt"
        )
        ref = model.get_text_features(**tok).numpy()
    ours = tiny_model.encode_texts(TEXTS)
    assert ours.shape == (len(TEXTS), 32)
    assert cosine_rows(ours, ref).min() >= 0.9999
