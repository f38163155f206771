"""Export writes a complete, verified bundle atomically; corrupt bundles are refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from scenecls.errors import BundleError, UsageError
from scenecls.model import export as export_mod
from scenecls.model.bundle import load_bundle, sha256_file
from scenecls.model.export import export_bundle


def test_bundle_manifest_describes_the_model(tiny_bundle: Path) -> None:
    manifest = json.loads((tiny_bundle / "bundle.json").read_text())
    assert sorted(p.name for p in tiny_bundle.iterdir()) == [
        "bundle.json",
        "textual.onnx",
        "tokenizer.json",
        "visual.onnx",
    ]
    assert manifest["embed_dim"] == 32
    assert manifest["image_size"] == [224, 224]
    assert manifest["context_length"] == 77
    assert manifest["precision"] == "fp32"
    assert manifest["preprocessing"]["shortest_edge"] == 224
    assert manifest["preprocessing"]["resample"] == "bicubic"
    assert manifest["preprocessing"]["mean"] == [0.48145466, 0.4578275, 0.40821073]
    assert manifest["logit_scale"] == pytest.approx(np.exp(2.6592), rel=1e-4)
    assert manifest["tensors"]["visual"]["inputs"] == ["pixel_values"]
    assert {"torch", "transformers", "scenecls"} <= set(manifest["tools"])
    for name, digest in manifest["files"].items():
        assert sha256_file(tiny_bundle / name) == digest


@pytest.mark.parametrize("batch", [1, 5])
def test_visual_onnx_has_dynamic_batch(tiny_bundle: Path, batch: int) -> None:
    sess = ort.InferenceSession(
        str(tiny_bundle / "visual.onnx"), providers=["CPUExecutionProvider"]
    )
    out = sess.run(None, {"pixel_values": np.zeros((batch, 3, 224, 224), np.float32)})[0]
    assert out.shape == (batch, 32)


def test_crash_mid_export_leaves_nothing(tiny_hf: Path, tmp_path: Path, monkeypatch) -> None:
    real = export_mod._export_into

    def crash(model_dir, out, **kw):
        real(model_dir, out, **kw)
        (out / "bundle.json").unlink()  # as if killed before the manifest was written
        raise KeyboardInterrupt

    monkeypatch.setattr(export_mod, "_export_into", crash)
    target = tmp_path / "out" / "b"
    with pytest.raises(KeyboardInterrupt):
        export_bundle(str(tiny_hf), target)
    assert not target.exists()
    assert list((tmp_path / "out").iterdir()) == []  # no partial folder left behind


def test_existing_output_refused_without_force(tiny_hf: Path, tmp_path: Path) -> None:
    target = tmp_path / "b"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    with pytest.raises(UsageError, match="already exists"):
        export_bundle(str(tiny_hf), target)
    assert (target / "keep.txt").read_text() == "mine"
    export_bundle(str(tiny_hf), target, force=True)
    load_bundle(target)
    assert not (target / "keep.txt").exists()


def test_fp16_export_declares_half_inputs_and_agrees_with_fp32(
    tiny_hf: Path, tmp_path: Path, tiny_bundle: Path
) -> None:
    b16 = export_bundle(str(tiny_hf), tmp_path / "b16", precision="fp16")
    assert load_bundle(b16).precision == "fp16"
    s16 = ort.InferenceSession(str(b16 / "visual.onnx"), providers=["CPUExecutionProvider"])
    s32 = ort.InferenceSession(str(tiny_bundle / "visual.onnx"), providers=["CPUExecutionProvider"])
    assert s16.get_inputs()[0].type == "tensor(float16)"
    x = np.random.default_rng(0).standard_normal((2, 3, 224, 224)).astype(np.float32)
    a = s16.run(None, {"pixel_values": x.astype(np.float16)})[0].astype(np.float32)
    b = s32.run(None, {"pixel_values": x})[0]
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cos.min() > 0.99


def _copy(bundle: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "copy"
    shutil.copytree(bundle, dst)
    return dst


@pytest.mark.parametrize("name", ["visual.onnx", "textual.onnx", "tokenizer.json"])
def test_missing_file_is_refused(tiny_bundle: Path, tmp_path: Path, name: str) -> None:
    b = _copy(tiny_bundle, tmp_path)
    (b / name).unlink()
    with pytest.raises(BundleError, match=f"missing {name}.*export again"):
        load_bundle(b)


@pytest.mark.parametrize("name", ["visual.onnx", "textual.onnx", "tokenizer.json"])
def test_altered_file_is_refused(tiny_bundle: Path, tmp_path: Path, name: str) -> None:
    b = _copy(tiny_bundle, tmp_path)
    data = bytearray((b / name).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (b / name).write_bytes(bytes(data))
    with pytest.raises(BundleError, match="does not match the sha256"):
        load_bundle(b)
    load_bundle(b, verify=False)  # an explicit opt-out still loads


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda m: m.update(format=99), "format 99"),
        (lambda m: m.pop("embed_dim"), "embed_dim"),
        (lambda m: m["files"].pop("visual.onnx"), "does not list visual.onnx"),
        (lambda m: m.update(precision="int3"), "unknown precision"),
    ],
)
def test_incompatible_manifest_is_refused(
    tiny_bundle: Path, tmp_path: Path, edit, message: str
) -> None:
    b = _copy(tiny_bundle, tmp_path)
    manifest = json.loads((b / "bundle.json").read_text())
    edit(manifest)
    (b / "bundle.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match=message):
        load_bundle(b)


def test_garbled_manifest_is_refused(tiny_bundle: Path, tmp_path: Path) -> None:
    b = _copy(tiny_bundle, tmp_path)
    (b / "bundle.json").write_text("{not json")
    with pytest.raises(BundleError, match="unreadable") as info:
        load_bundle(b)
    assert "\n" not in str(info.value)
