"""The one place that picks the image encoder's runtime for a device and precision.

ONNX Runtime serves fp32 and fp16 bundles on the CPU and CUDA; OpenVINO serves bf16,
int8 and fp32 on the CPU. ``--precision auto`` on the CPU takes whichever agreeing
runtime :mod:`.trial` measured fastest on this machine. Each runtime module says whether
it can run here (:func:`~.onnx.cuda_unusable_reason`,
:func:`~.openvino.openvino_unusable_reason`); this module only decides.
"""

from __future__ import annotations

import logging

from ...errors import DeviceError, UsageError
from ..bundle import Bundle
from . import onnx, openvino, trial
from .base import DEVICES, PRECISIONS, ImageEncoder, cpu_threads

log = logging.getLogger("scenecls")


def bundle_precision_for(precision: str, device: str) -> str:
    """The bundle precision (fp32 or fp16) that run-time ``precision`` on ``device`` needs:
    fp16 for ``fp16``, and for ``auto`` where CUDA looks usable; else fp32."""
    _check_choices(device, precision)
    if precision == "fp16":
        return "fp16"
    if precision == "auto" and device != "cpu" and onnx.cuda_unusable_reason() is None:
        return "fp16"
    return "fp32"


def _check_choices(device: str, precision: str) -> None:
    if device not in DEVICES:
        raise UsageError(f"--device must be one of {', '.join(DEVICES)}, not {device!r}")
    if precision not in PRECISIONS:
        raise UsageError(f"--precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    if precision in ("bf16", "int8") and device == "cuda":
        raise UsageError(
            f"--precision {precision} runs on the CPU (OpenVINO); on CUDA use "
            "--precision fp16 or fp32"
        )


def create_image_encoder(
    bundle: Bundle, device: str = "auto", precision: str = "auto"
) -> ImageEncoder:
    """The image encoder for ``device`` and run-time ``precision`` (see :data:`PRECISIONS`):
    an :class:`~.onnx.OnnxImageEncoder` or an :class:`~.openvino.OpenVinoImageEncoder`. Both map
    (N, 3, H, W) float32 RGB normalised pixels to (N, D) float32 unit rows and have
    ``device``, ``precision`` and ``runtime`` attributes."""
    _check_choices(device, precision)
    if precision in ("bf16", "int8"):
        reason = openvino.openvino_unusable_reason()
        if reason is not None:
            raise DeviceError(f"--precision {precision} needs OpenVINO: {reason}")
        if not openvino.cpu_has_bf16() and precision == "bf16":
            log.warning("this CPU has no bf16 instructions: --precision bf16 runs in fp32")
        if precision == "int8":
            log.warning(
                "int8 (opt-in): int8 weights and activations; its agreement with fp32 "
                "depends on the checkpoint: check it with scenecls bench --precisions fp32,int8"
            )
        return openvino.OpenVinoImageEncoder(bundle, precision, cpu_threads())
    if precision in ("fp32", "fp16") and bundle.precision != precision:
        raise UsageError(
            f"--precision {precision} needs an {precision} bundle; {bundle.path} is "
            f"{bundle.precision}: export one with scenecls export --precision {precision}"
        )
    on_cpu = device == "cpu" or (device == "auto" and onnx.cuda_unusable_reason() is not None)
    if precision == "auto" and on_cpu and bundle.precision == "fp32":
        choice, encoder = trial.choose_cpu_runtime(bundle, cpu_threads())
        encoder.choice = choice  # type: ignore[attr-defined]
        return encoder
    return onnx.OnnxImageEncoder(bundle, "cpu" if on_cpu else device)


def describe_encoder(encoder: ImageEncoder) -> str:
    """One line: runtime, precision, device, and how it was chosen when ``auto`` measured
    it (e.g. ``OpenVINO bf16 on CPU, fastest on this CPU by trial (...)``)."""
    name = "OpenVINO" if encoder.runtime == "openvino" else "ONNX Runtime"
    line = f"{name} {encoder.precision} on {encoder.device.upper()}"
    choice = getattr(encoder, "choice", None)
    return f"{line}, {choice.describe()}" if choice is not None else line
