"""The image tower on OpenVINO's CPU plugin, in bf16 or with int8 weights.

Both reduced-precision paths read the bundle's fp32 ``visual.onnx``; nothing new is
stored on disk.

* ``bf16``: OpenVINO runs the matrix work in bfloat16 (AVX-512-BF16 or AMX) and
  accumulates in fp32. Rounding is relative to each value, so the error does not depend
  on the weights' scale. ``--precision auto`` takes it where it is the fastest path that
  agrees with fp32 (:mod:`.trial`): on CPUs with AVX-512-BF16 or AMX so far.
* ``int8``: the weights of every linear layer are quantised per output channel
  (symmetric, scale = max|w| / 127) when the model is loaded. OpenVINO quantises the
  activations at run time in groups of :data:`INT8_GROUP_SIZE` input channels and
  multiplies with VNNI/AMX int8 instructions. This path is opt-in: its error depends on
  the activations' outliers, and those vary from one checkpoint to another.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

import numpy as np

from ...errors import DeviceError
from ..bundle import Bundle
from .base import check_pixels, normalize_rows, usable_cpus

log = logging.getLogger("scenecls")

INT8_GROUP_SIZE = 256
"""Input channels per run-time activation scale on the int8 path (measured: 256 was the
fastest of 32/64/256/whole rows on the build machine, with fidelity 0.9998)."""


def openvino_unusable_reason() -> str | None:
    """Why OpenVINO cannot run here, or None when it can."""
    try:
        import openvino  # noqa: F401
    except ImportError:
        return "OpenVINO is not installed: pip install openvino"
    return None


@functools.lru_cache(maxsize=1)
def cpu_has_bf16() -> bool:
    """Whether OpenVINO's CPU plugin reports native bf16 support (AVX-512-BF16 or AMX).
    Asked once per process: the answer does not change."""
    import openvino as ov

    try:
        caps = ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    except Exception:  # pragma: no cover - a plugin that cannot answer
        return False
    return "BF16" in caps


def compress_linear_weights(model: Any) -> int:
    """Replace each 2-D constant weight of a MatMul in an ``openvino.Model`` by int8 values
    times a per-output-channel fp32 scale, in place. Returns how many were replaced.

    The (K, N) fp32 weight becomes ``convert(q) * s`` with q (K, N) int8 in [-127, 127]
    and s (1, N) float32 = max |w[:, n]| / 127: a pattern the CPU plugin runs as an
    int8 matrix product when dynamic quantisation is on.
    """
    import openvino as ov
    import openvino.opset13 as ops

    replaced = 0
    for node in model.get_ordered_ops():
        if node.get_type_name() != "MatMul" or node.get_attributes().get("transpose_b"):
            continue
        source = node.input(1).get_source_output().get_node()
        if source.get_type_name() != "Constant":
            continue
        if len(source.get_output_partial_shape(0)) != 2:
            continue
        weight = np.asarray(source.get_data(), dtype=np.float32)
        scale = np.abs(weight).max(axis=0, keepdims=True) / 127.0
        scale[scale == 0] = 1.0
        q = np.clip(np.rint(weight / scale), -127, 127).astype(np.int8)
        dequantised = ops.multiply(
            ops.convert(ops.constant(q), ov.Type.f32), ops.constant(scale.astype(np.float32))
        )
        node.input(1).replace_source_output(dequantised.output(0))
        replaced += 1
    return replaced


class OpenVinoImageEncoder:
    """The visual tower on OpenVINO (CPU): (N, 3, H, W) float32 RGB normalised ->
    (N, D) float32 unit rows. ``precision`` is ``bf16``, ``int8`` or ``fp32``."""

    runtime = "openvino"
    device = "cpu"

    def __init__(self, bundle: Bundle, precision: str, threads: int) -> None:
        import openvino as ov

        if precision not in ("bf16", "int8", "fp32"):
            raise ValueError(f"OpenVINO precision must be bf16, int8 or fp32, not {precision!r}")
        if bundle.precision != "fp32":
            raise DeviceError(
                f"--precision {precision} needs an fp32 bundle; {bundle.path} is "
                f"{bundle.precision}: pass an fp32 bundle or --precision fp16 on CUDA"
            )
        core = ov.Core()
        model = core.read_model(str(bundle.visual_path))
        compute = "bf16" if precision != "fp32" and cpu_has_bf16() else "f32"
        config: dict[str, Any] = {
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_NUM_THREADS": threads,
            "INFERENCE_PRECISION_HINT": compute,
            # pinned threads suit a process that has the CPUs to itself; processes that
            # share them (archive workers with a few threads each) would all pin to the
            # same first cores, so they leave placement to the OS
            "ENABLE_CPU_PINNING": threads >= usable_cpus(),
        }
        if precision == "int8":
            count = compress_linear_weights(model)
            log.debug("int8: %d linear layers quantised", count)
            config["DYNAMIC_QUANTIZATION_GROUP_SIZE"] = INT8_GROUP_SIZE
        self.compiled = core.compile_model(model, "CPU", config)
        self.request = self.compiled.create_infer_request()
        self.precision = precision
        self.compute_type = compute
        self.embed_dim = bundle.embed_dim

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        check_pixels(pixels)
        if pixels.shape[0] == 0:
            return np.zeros((0, self.embed_dim), np.float32)
        x = np.ascontiguousarray(pixels, dtype=np.float32)
        out = self.request.infer({0: x}, share_inputs=True)[0]
        return normalize_rows(out)
