"""The public API: load_model, encode_images, encode_texts, classify, the label cache."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

import scenecls
from scenecls.errors import DeviceError, InputError
from scenecls.model.runtimes import onnx as onnx_runtime


def test_encode_images_any_size_unit_rows(tiny_model, real_frames) -> None:
    embs = tiny_model.encode_images([*real_frames[:3], np.zeros((30, 500, 3), np.uint8)])
    assert embs.shape == (4, 32) and embs.dtype == np.float32
    assert np.allclose(np.linalg.norm(embs, axis=1), 1.0, atol=1e-5)
    single = tiny_model.encode_images(real_frames[0])
    assert np.allclose(single[0], embs[0], atol=1e-5)
    assert tiny_model.encode_images([]).shape == (0, 32)


def test_batching_does_not_change_results(tiny_bundle, real_frames) -> None:
    a = scenecls.load_model(tiny_bundle, device="cpu", batch_size=1).encode_images(real_frames[:5])
    b = scenecls.load_model(tiny_bundle, device="cpu", batch_size=4).encode_images(real_frames[:5])
    assert np.allclose(a, b, atol=1e-5)


def test_encode_texts_verbatim_unit_rows(tiny_model) -> None:
    t = tiny_model.encode_texts(["room", "park", "room"])
    assert t.shape == (3, 32) and t.dtype == np.float32
    assert np.allclose(np.linalg.norm(t, axis=1), 1.0, atol=1e-5)
    assert np.allclose(t[0], t[2], atol=1e-6)
    assert not np.allclose(t[0], t[1])


def test_long_text_is_truncated_with_a_warning(tiny_model, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="scenecls"):
        t = tiny_model.encode_texts(["pizza " * 200])
    assert t.shape == (1, 32)
    assert "truncated" in caplog.text


def test_classify_returns_sorted_probabilities(tiny_model, real_frames) -> None:
    results = tiny_model.classify(real_frames[:2], ["room", "park", "warehouse"], top_k=2)
    assert len(results) == 2
    for r in results:
        assert [c.probability for c in r.top] == sorted(
            (c.probability for c in r.top), reverse=True
        )
        assert len(r.top) == 2 and r.label == r.top[0].label
        assert r.scores.probabilities.sum() == pytest.approx(1.0, abs=1e-5)
    unknown = tiny_model.classify(real_frames[:1], "room,park,warehouse", min_confidence=0.99)
    assert unknown[0].label == "unknown"


def test_label_embeddings_are_ensembled_and_cached(
    tiny_model, _isolated_home: Path, monkeypatch
) -> None:
    ls = scenecls.resolve_labels(["room", "park"], "a photo of a {}.|a {}")
    first = tiny_model.embed_labels(ls)
    manual = tiny_model.encode_texts(["a photo of a room.", "a room"]).mean(0)
    assert np.allclose(first[0], manual / np.linalg.norm(manual), atol=1e-5)
    cached = list((_isolated_home / "text-embeddings").glob("*.npy"))
    assert len(cached) == 1

    def boom(texts):
        raise AssertionError("text encoder called despite cache")

    monkeypatch.setattr(tiny_model.text, "encode_texts", boom)
    assert np.array_equal(tiny_model.embed_labels(ls), first)
    with pytest.raises(AssertionError):  # other templates: another cache entry
        tiny_model.embed_labels(["room", "park"], "{}")


def test_corrupt_cache_file_is_recomputed(tiny_model, _isolated_home: Path) -> None:
    first = tiny_model.embed_labels("a,b")
    (f,) = (_isolated_home / "text-embeddings").glob("*.npy")
    f.write_bytes(b"garbage")
    assert np.allclose(tiny_model.embed_labels("a,b"), first)


def test_cuda_request_without_cuda_is_one_clear_error(tiny_bundle, monkeypatch) -> None:
    monkeypatch.setattr(onnx_runtime, "_nvidia_driver_present", lambda: False)
    with pytest.raises(DeviceError, match="--device cuda is not usable: no NVIDIA driver"):
        scenecls.load_model(tiny_bundle, device="cuda")


def test_auto_falls_back_to_cpu_quietly_and_names_it(
    tiny_bundle, monkeypatch, caplog, capfd
) -> None:
    monkeypatch.setattr(onnx_runtime, "_nvidia_driver_present", lambda: True)  # CUDA EP will fail
    with caplog.at_level(logging.INFO, logger="scenecls"):
        m = scenecls.load_model(tiny_bundle, device="auto")
    assert m.device == "cpu"
    assert [r.message for r in caplog.records if "on CPU" in r.message]
    _, err = capfd.readouterr()
    assert "CUDA" not in err and "cuda" not in err  # no wall of provider errors


def test_bad_image_type_is_an_input_error(tiny_model) -> None:
    with pytest.raises(InputError, match="uint8"):
        tiny_model.encode_images([np.zeros((10, 10, 3), np.float64)])
