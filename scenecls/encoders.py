"""ONNX Runtime sessions for the image and text towers, and execution-provider choice.

``device="auto"`` uses CUDA only when it really works here (driver present, CUDA
provider compiled in, and a session actually placed on it); otherwise the CPU, quietly.
``device="cuda"`` fails with one clear line when CUDA is unusable.
"""

from __future__ import annotations

import ctypes
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .bundle import Bundle
from .errors import DeviceError, InputError, UsageError

log = logging.getLogger("scenecls")

DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "fp16", "bf16", "int8")
"""Run-time precision of the image tower: ``auto`` (fp16 bundle on CUDA, OpenVINO bf16 on
CPUs with bf16 instructions, else fp32), ``fp32`` (exact reference, ONNX Runtime),
``fp16`` (fp16 bundle, for CUDA), ``bf16`` (OpenVINO, CPU), ``int8`` (OpenVINO, CPU,
opt-in: int8 weights and run-time activation quantisation)."""
_CUDA = "CUDAExecutionProvider"
_CPU = "CPUExecutionProvider"


def cpu_threads() -> int:
    """Intra-op threads: ``$SCENECLS_THREADS`` if set, else the CPUs this process may use."""
    env = os.environ.get("SCENECLS_THREADS")
    if env:
        try:
            return max(1, int(env))
        except ValueError as e:
            raise UsageError(f"SCENECLS_THREADS must be a whole number, not {env!r}") from e
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _nvidia_driver_present() -> bool:
    try:
        ctypes.CDLL("libcuda.so.1")
        return True
    except OSError:
        return False


def _session_options(quiet: bool) -> Any:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.intra_op_num_threads = cpu_threads()
    so.inter_op_num_threads = 1
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
                    str(path), _session_options(quiet=True), providers=[_CUDA, _CPU]
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
    return ort.InferenceSession(str(path), _session_options(quiet=False), providers=[_CPU])


def provider_name(session: Any) -> str:
    """'cuda' or 'cpu', from the session's first provider."""
    return "cuda" if session.get_providers()[0] == _CUDA else "cpu"


class ImageEncoder:
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


def bundle_precision_for(precision: str, device: str) -> str:
    """The bundle precision (fp32 or fp16) that run-time ``precision`` on ``device`` needs:
    fp16 for ``fp16``, and for ``auto`` where CUDA looks usable; else fp32."""
    _check_choices(device, precision)
    if precision == "fp16":
        return "fp16"
    if precision == "auto" and device != "cpu" and cuda_unusable_reason() is None:
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


def create_image_encoder(bundle: Bundle, device: str = "auto", precision: str = "auto") -> Any:
    """The image encoder for ``device`` and run-time ``precision`` (see :data:`PRECISIONS`):
    an :class:`ImageEncoder` (ONNX Runtime) or an ``OpenVinoImageEncoder``. Both map
    (N, 3, H, W) float32 RGB normalised pixels to (N, D) float32 unit rows and have
    ``device``, ``precision`` and ``runtime`` attributes."""
    from .openvino_encoder import OpenVinoImageEncoder, cpu_has_bf16, openvino_unusable_reason

    _check_choices(device, precision)
    if precision in ("bf16", "int8"):
        reason = openvino_unusable_reason()
        if reason is not None:
            raise DeviceError(f"--precision {precision} needs OpenVINO: {reason}")
        if not cpu_has_bf16() and precision == "bf16":
            log.warning("this CPU has no bf16 instructions: --precision bf16 runs in fp32")
        if precision == "int8":
            log.warning(
                "int8 (opt-in): int8 weights and activations; its agreement with fp32 "
                "depends on the checkpoint: check it with scenecls bench --precisions fp32,int8"
            )
        return OpenVinoImageEncoder(bundle, precision, cpu_threads())
    if precision in ("fp32", "fp16") and bundle.precision != precision:
        raise UsageError(
            f"--precision {precision} needs an {precision} bundle; {bundle.path} is "
            f"{bundle.precision}: export one with scenecls export --precision {precision}"
        )
    on_cpu = device == "cpu" or (device == "auto" and cuda_unusable_reason() is not None)
    if precision == "auto" and on_cpu and bundle.precision == "fp32":
        reason = openvino_unusable_reason()
        if reason is None and cpu_has_bf16():
            return OpenVinoImageEncoder(bundle, "bf16", cpu_threads())
        log.debug("bf16 not used: %s", reason or "this CPU has no bf16 instructions")
    return ImageEncoder(bundle, "cpu" if on_cpu else device)


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
