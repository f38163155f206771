"""What every image-encoder runtime shares: the encoder protocol, the device and
precision choices, pixel checks and row normalisation, and the CPU thread count."""

from __future__ import annotations

import os
from typing import Protocol, runtime_checkable

import numpy as np

from ...errors import InputError, UsageError

DEVICES = ("auto", "cpu", "cuda")

PRECISIONS = ("auto", "fp32", "fp16", "bf16", "int8")
"""Run-time precision of the image tower: ``auto`` (fp16 bundle on CUDA; on a CPU the
runtime :mod:`.trial` measured fastest here among those that agree with fp32), ``fp32``
(exact reference, ONNX Runtime), ``fp16`` (fp16 bundle, for CUDA), ``bf16`` (OpenVINO,
CPU), ``int8`` (OpenVINO, CPU, opt-in: int8 weights and run-time activation
quantisation)."""


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask on Linux), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def cpu_threads() -> int:
    """Intra-op threads: ``$SCENECLS_THREADS`` if set, else the CPUs this process may use."""
    env = os.environ.get("SCENECLS_THREADS")
    if env:
        try:
            return max(1, int(env))
        except ValueError as e:
            raise UsageError(f"SCENECLS_THREADS must be a whole number, not {env!r}") from e
    return usable_cpus()


def check_pixels(pixels: np.ndarray) -> None:
    """Refuse anything but an (N, 3, H, W) array with one clear :class:`InputError`."""
    if getattr(pixels, "ndim", 0) != 4 or pixels.shape[1] != 3:
        shape = getattr(pixels, "shape", type(pixels).__name__)
        raise InputError(f"expected pixels of shape (N, 3, H, W), got {shape}")


def normalize_rows(x: np.ndarray) -> np.ndarray:
    """(N, D) -> (N, D) float32 with unit L2 rows (zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float32)
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norm, 1e-12)


@runtime_checkable
class ImageEncoder(Protocol):
    """What every runtime's image encoder is: a callable from (N, 3, H, W) float32 RGB
    normalised pixels to (N, D) float32 unit rows, with facts about where it runs."""

    runtime: str
    """``onnxruntime`` or ``openvino``."""
    device: str
    """``cpu`` or ``cuda``: where it really runs."""
    precision: str
    """``fp32``, ``fp16``, ``bf16`` or ``int8``."""
    embed_dim: int

    def __call__(self, pixels: np.ndarray) -> np.ndarray: ...
