"""Run-time precision: which runtime and precision each request gets, the reduced-precision
CPU paths' agreement with fp32, int8 weight quantisation, and ONNX Runtime I/O binding
(the CUDA path's code, run here on the CPU)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

import scenecls
from scenecls.cli import main
from scenecls.errors import DeviceError, UsageError
from scenecls.model.bundle import load_bundle
from scenecls.model.fidelity import cosine_rows
from scenecls.model.runtimes import onnx as onnx_runtime
from scenecls.model.runtimes import openvino as openvino_runtime
from scenecls.model.runtimes import trial
from scenecls.model.runtimes.onnx import OnnxImageEncoder
from scenecls.model.runtimes.select import bundle_precision_for, create_image_encoder

from .outputs import one_line_error


@pytest.fixture(scope="module")
def bundle(tiny_bundle: Path):  # type: ignore[no-untyped-def]
    return load_bundle(tiny_bundle)


@pytest.fixture(scope="module")
def pixels(tiny_model, real_frames) -> np.ndarray:  # type: ignore[no-untyped-def]
    return tiny_model.preprocess(real_frames)


def test_auto_on_a_cpu_tries_bf16_only_where_the_cpu_has_it(bundle, monkeypatch) -> None:
    """``auto`` on the CPU measures its candidates (``runtimes.trial``); OpenVINO bf16 is
    one only on a CPU with bf16 instructions, and whatever wins agrees with fp32."""
    monkeypatch.setattr(trial, "NOT_WORTH_MS", 0.0)  # the tiny model is worth a trial here
    monkeypatch.setattr(openvino_runtime, "cpu_has_bf16", lambda: True)
    enc = create_image_encoder(bundle, "cpu", "auto")
    tried = enc.choice.trials
    assert set(tried) == {"onnxruntime-fp32", "openvino-fp32", "openvino-bf16"}
    assert all(t["cosine_min"] >= trial.AGREEMENT for t in tried.values())
    assert (enc.runtime, enc.precision) == (enc.choice.runtime, enc.choice.precision)


def test_auto_without_bf16_or_openvino_never_runs_them(bundle, monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(trial, "NOT_WORTH_MS", 0.0)
    monkeypatch.setattr(openvino_runtime, "cpu_has_bf16", lambda: False)
    enc = create_image_encoder(bundle, "cpu", "auto")
    assert enc.choice.trials["openvino-bf16"] == {"rejected": "no bf16 instructions"}
    assert enc.precision == "fp32"
    monkeypatch.setenv("SCENECLS_HOME", str(tmp_path))  # a fresh trial
    monkeypatch.setattr(openvino_runtime, "openvino_unusable_reason", lambda: "not installed")
    enc = create_image_encoder(bundle, "auto", "auto")
    assert (enc.runtime, enc.precision) == ("onnxruntime", "fp32")
    assert enc.choice.trials["openvino-fp32"] == {"rejected": "not installed"}


def test_model_reports_what_it_runs(tiny_bundle, caplog) -> None:  # type: ignore[no-untyped-def]
    with caplog.at_level(logging.INFO, logger="scenecls"):
        m = scenecls.load_model(tiny_bundle, device="cpu", precision="int8")
    assert (m.device, m.runtime, m.precision) == ("cpu", "openvino", "int8")
    text = caplog.text
    assert "OpenVINO int8" in text
    assert "int8 (opt-in)" in text and "scenecls bench" in text  # labelled, with the check


@pytest.mark.parametrize("precision", ["bf16", "int8"])
def test_reduced_precision_agrees_with_fp32_on_real_frames(bundle, pixels, precision) -> None:
    exact = OnnxImageEncoder(bundle, "cpu")(pixels)
    fast = create_image_encoder(bundle, "cpu", precision)(pixels)
    assert fast.shape == exact.shape and fast.dtype == np.float32
    assert np.allclose(np.linalg.norm(fast, axis=1), 1, atol=1e-5)
    assert cosine_rows(fast, exact).min() >= 0.999


def test_int8_quantises_every_linear_layer_within_half_a_step() -> None:
    import openvino as ov
    import openvino.opset13 as ops

    rng = np.random.default_rng(0)
    w1 = rng.standard_normal((16, 8)).astype(np.float32)
    w1[:, 3] = 0  # an all-zero output channel must not divide by zero
    w2 = rng.standard_normal((8, 4)).astype(np.float32) * 10
    x = ops.parameter([2, 16], ov.Type.f32)
    y = ops.matmul(ops.matmul(x, ops.constant(w1), False, False), ops.constant(w2), False, False)
    model = ov.Model([y], [x])
    assert openvino_runtime.compress_linear_weights(model) == 2
    types = {n.get_type_name() for n in model.get_ordered_ops()}
    assert "Convert" in types
    data = rng.standard_normal((2, 16)).astype(np.float32)
    got = ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})(data)[0]
    ref = data @ w1 @ w2
    assert cosine_rows(got, ref).min() > 0.999


def test_io_binding_gives_the_plain_results_as_batch_shapes_change(bundle, pixels) -> None:
    plain = OnnxImageEncoder(bundle, "cpu", io_binding=False)
    bound = OnnxImageEncoder(bundle, "cpu", io_binding=True)
    for batch in (pixels[:1], pixels[:3], pixels[1:2], pixels[:3]):
        assert np.allclose(bound(batch), plain(batch), atol=1e-6)


def test_auto_wants_an_fp16_bundle_only_where_cuda_looks_usable(monkeypatch) -> None:
    monkeypatch.setattr(onnx_runtime, "cuda_unusable_reason", lambda: None)
    assert bundle_precision_for("auto", "auto") == "fp16"
    assert bundle_precision_for("auto", "cpu") == "fp32"
    assert bundle_precision_for("bf16", "auto") == "fp32"
    monkeypatch.setattr(onnx_runtime, "cuda_unusable_reason", lambda: "no driver")
    assert bundle_precision_for("auto", "auto") == "fp32"
    assert bundle_precision_for("fp16", "cpu") == "fp16"


def test_requests_that_cannot_be_met_are_one_clear_error(bundle, monkeypatch) -> None:
    with pytest.raises(UsageError, match="runs on the CPU"):
        create_image_encoder(bundle, "cuda", "bf16")
    with pytest.raises(UsageError, match=r"needs an fp16 bundle.*export --precision fp16"):
        create_image_encoder(bundle, "cpu", "fp16")
    with pytest.raises(UsageError, match="--precision must be one of"):
        create_image_encoder(bundle, "cpu", "fp8")
    monkeypatch.setattr(openvino_runtime, "openvino_unusable_reason", lambda: "pip install x")
    with pytest.raises(DeviceError, match="int8 needs OpenVINO: pip install x"):
        create_image_encoder(bundle, "cpu", "int8")


def test_cli_precision_on_cuda_is_a_usage_error(tiny_bundle, real_frames, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    import cv2

    image = tmp_path / "frame.png"
    cv2.imwrite(str(image), real_frames[0])
    code = main(["classify", str(image), "--model", str(tiny_bundle), "--device", "cuda",
                 "--precision", "int8"])  # fmt: skip
    assert code == 2
    assert "runs on the CPU" in one_line_error(capsys.readouterr().err)
