"""ONNX Runtime sessions for the image and text towers, and execution-provider choice.

``device="auto"`` uses CUDA only when it really works here (driver present, CUDA
provider compiled in, and a session actually placed on it); otherwise the CPU, quietly.
``device="cuda"`` fails with one clear line when CUDA is unusable.
"""

from __future__ import annotations

import ctypes
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import DeviceError, UsageError
from ..bundle import Bundle
from .base import DEVICES, check_pixels, cpu_threads, normalize_rows

log = logging.getLogger("scenecls")

_CUDA = "CUDAExecutionProvider"
_CPU = "CPUExecutionProvider"


def _nvidia_driver_present() -> bool:
    try:
        ctypes.CDLL("libcuda.so.1")
        return True
    except OSError:
        return False


def session_options(quiet: bool = False) -> Any:
    """ONNX Runtime session options: every optimisation, :func:`~.base.cpu_threads`
    intra-op threads that sleep instead of spinning when they wait (see :mod:`.cores`),
    and the log level (``quiet``: fatal errors only)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.intra_op_num_threads = cpu_threads()
    so.inter_op_num_threads = 1
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.add_session_config_entry("session.inter_op.allow_spinning", "0")
    so.log_severity_level = 4 if quiet else 2
    return so


def cuda_unusable_reason() -> str | None:
    """Why CUDA cannot be used here, or None when it may be (final proof: a session)."""
    import onnxruntime as ort

    if _CUDA not in ort.get_available_providers():
        return (
            "this onnxruntime build has no CUDA provider: pip install onnxruntime-gpu "
            "(and uninstall onnxruntime)"
        )
    if not _nvidia_driver_present():
        return "no NVIDIA driver found (libcuda.so.1): use --device cpu on this machine"
    return None


def create_session(path: Path, device: str) -> Any:
    """An ``onnxruntime.InferenceSession`` for ``path`` on ``device`` (auto, cpu, cuda)."""
    import onnxruntime as ort

    if device not in DEVICES:
        raise UsageError(f"--device must be one of {', '.join(DEVICES)}, not {device!r}")
    if device in ("auto", "cuda"):
        reason = cuda_unusable_reason()
        if reason is None:
            preload = getattr(ort, "preload_dlls", None)
            if preload is not None:
                try:
                    preload()
                except Exception:  # best effort: libraries may come from the system
                    log.debug("onnxruntime.preload_dlls failed", exc_info=True)
            previous = 2
            ort.set_default_logger_severity(4)  # the CUDA provider's load errors are a wall
            try:
                session = ort.InferenceSession(
                    str(path), session_options(quiet=True), providers=[_CUDA, _CPU]
                )
            finally:
                ort.set_default_logger_severity(previous)
            if _CUDA in session.get_providers():
                return session
            reason = (
                "the CUDA provider could not start (CUDA 12 runtime or cuDNN 9 libraries "
                "missing?): pip install 'onnxruntime-gpu[cuda,cudnn]', or use --device cpu"
            )
        if device == "cuda":
            raise DeviceError(f"--device cuda is not usable: {reason}")
        log.debug("CUDA not used: %s", reason)
    return ort.InferenceSession(str(path), session_options(quiet=False), providers=[_CPU])


def provider_name(session: Any) -> str:
    """'cuda' or 'cpu', from the session's first provider."""
    return "cuda" if session.get_providers()[0] == _CUDA else "cpu"


class OnnxImageEncoder:
    """The visual tower on ONNX Runtime: (N, 3, H, W) float32 RGB normalised -> (N, D)
    float32 unit rows.

    With ``io_binding`` (the default on CUDA) the input is copied once into a buffer on
    the device that is reused while the batch shape stays the same, and the output is
    bound on the device and copied back once: no per-call allocations.
    """

    runtime = "onnxruntime"

    def __init__(
        self, bundle: Bundle, device: str = "auto", *, io_binding: bool | None = None
    ) -> None:
        self.session = create_session(bundle.visual_path, device)
        self.device = provider_name(self.session)
        self.precision = bundle.precision
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.input_dtype = np.float16 if inp.type == "tensor(float16)" else np.float32
        self.output_name = self.session.get_outputs()[0].name
        self.embed_dim = bundle.embed_dim
        self.io_binding = self.device == "cuda" if io_binding is None else io_binding
        self._bound: Any = None  # (shape, OrtValue on the device, IOBinding)

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        check_pixels(pixels)
        if pixels.shape[0] == 0:
            return np.zeros((0, self.embed_dim), np.float32)
        x = np.ascontiguousarray(pixels, dtype=self.input_dtype)
        if self.io_binding:
            return normalize_rows(self._run_bound(x))
        emb = self.session.run([self.output_name], {self.input_name: x})[0]
        return normalize_rows(emb)

    def _run_bound(self, x: np.ndarray) -> np.ndarray:
        import onnxruntime as ort

        if self._bound is None or self._bound[0] != x.shape:
            value = ort.OrtValue.ortvalue_from_shape_and_type(x.shape, x.dtype, self.device, 0)
            binding = self.session.io_binding()
            binding.bind_ortvalue_input(self.input_name, value)
            binding.bind_output(self.output_name, self.device, 0)
            self._bound = (x.shape, value, binding)
        _, value, binding = self._bound
        value.update_inplace(x)
        self.session.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()[0]


class TextEncoder:
    """Tokenizer plus text tower: K strings (used verbatim) -> (K, D) float32 unit rows.

    Texts longer than the model's context (77 tokens for CLIP) are truncated with a
    warning; the end-of-text token is kept.
    """

    def __init__(self, bundle: Bundle, device: str = "auto", batch_size: int = 64) -> None:
        from tokenizers import Tokenizer

        self.session = create_session(bundle.textual_path, device)
        self.device = provider_name(self.session)
        self.context_length = bundle.context_length
        self.pad_id = int(bundle.manifest.get("pad_token_id", 0))
        self.batch_size = batch_size
        self.tokenizer = Tokenizer.from_file(str(bundle.tokenizer_path))
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()
        names = bundle.tensors.get("textual", {})
        self.input_names = list(names.get("inputs", ["input_ids", "attention_mask"]))
        self.output_name = self.session.get_outputs()[0].name
        self.embed_dim = bundle.embed_dim

    def tokenize(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Token ids and attention mask, both (K, L) int64, L = longest text (<= context)."""
        encodings = self.tokenizer.encode_batch(list(texts))
        rows = []
        for text, enc in zip(texts, encodings, strict=True):
            ids = enc.ids
            if len(ids) > self.context_length:
                log.warning(
                    "label text is %d tokens, longer than the model's %d: truncated: %.60r",
                    len(ids),
                    self.context_length,
                    text,
                )
                ids = ids[: self.context_length - 1] + ids[-1:]
            rows.append(ids)
        width = max((len(r) for r in rows), default=0)
        ids_arr = np.full((len(rows), width), self.pad_id, np.int64)
        mask = np.zeros((len(rows), width), np.int64)
        for i, r in enumerate(rows):
            ids_arr[i, : len(r)] = r
            mask[i, : len(r)] = 1
        return ids_arr, mask

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        if isinstance(texts, str):
            raise UsageError("encode_texts takes a list of strings, not one string")
        out = []
        for start in range(0, len(texts), self.batch_size):
            ids, mask = self.tokenize(texts[start : start + self.batch_size])
            feed = dict(zip(self.input_names, (ids, mask), strict=True))
            out.append(self.session.run([self.output_name], feed)[0])
        if not out:
            return np.zeros((0, self.embed_dim), np.float32)
        return normalize_rows(np.concatenate(out))
