"""The CPU runtime for ``--precision auto``, chosen by measurement on this machine.

Which runtime is fastest depends on the CPU more than on anything we can read from it:
on a Zen 4 (AVX-512-BF16, no AMX) OpenVINO bf16 was twice ONNX Runtime fp32; on a Xeon
with AMX, 3-4 times; on an AVX2-only CPU there is no bf16 at all, and ONNX Runtime and
OpenVINO fp32 are close, in an order that varies. So the first time a bundle is used
for ``auto`` on a machine, every candidate is built and tried on the same probe images:

1. ONNX Runtime fp32, the reference (the bundle as exported);
2. OpenVINO fp32;
3. OpenVINO bf16, where OpenVINO reports bf16 instructions;
4. OpenVINO int8 only when asked for (``SCENECLS_RUNTIMES``, below): it is opt-in.

A candidate that fails to build or run, or whose embeddings of the probe images fall
under :data:`AGREEMENT` (cosine to the reference, the minimum over the images), is
rejected with its reason. The others are timed in alternating rounds (batch 1, as a
live source calls it, and a batch of :data:`TRIAL_BATCH`, as files do), and the one
with the lowest sum of the two per-image costs wins. When the reference itself takes
under :data:`NOT_WORTH_MS` an image (a tiny test model), nothing is tried: there is no
time to save.

The choice is kept as JSON in ``$SCENECLS_HOME/runtimes/``, keyed by the bundle's
fingerprint, the CPU (model, instruction sets, usable CPUs and the variables that cap
the instruction sets, :mod:`.cpu`), the encoder's thread count and the runtimes'
versions: a machine, a container limited to other CPUs, or an upgrade measures again.
``SCENECLS_RUNTIMES`` (for example ``onnxruntime-fp32,openvino-fp32``) limits the
candidates; naming ``openvino-int8`` there opts int8 in.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ...atomic import write_bytes_atomic
from ...errors import UsageError
from ..bundle import Bundle
from ..cache import scenecls_home
from .base import ImageEncoder
from .cpu import cpu_info

log = logging.getLogger("scenecls")

CANDIDATES = ("onnxruntime-fp32", "openvino-fp32", "openvino-bf16", "openvino-int8")
"""Every runtime the trial knows, as ``runtime-precision``."""
DEFAULT_CANDIDATES = ("onnxruntime-fp32", "openvino-fp32", "openvino-bf16")
"""The candidates tried unless ``SCENECLS_RUNTIMES`` says otherwise (int8 is opt-in)."""
REFERENCE = "onnxruntime-fp32"
AGREEMENT = 0.999
"""The least cosine, over the probe images, between a candidate's embeddings and the
reference's (bf16 reaches about 0.99994 on real frames, int8 about 0.9998)."""
NOT_WORTH_MS = 3.0
"""A reference faster than this per image is kept without trying the others."""
TRIAL_BATCH = 8
"""The batched part of the trial: frames per call (files use up to 16; per-image cost is
flat from about 8 on)."""
ROUNDS = 3
"""Timing rounds; each times every candidate once at batch 1 (twice) and batched."""
CACHE_VERSION = 1


@dataclass
class RuntimeChoice:
    """What the trial chose and why. ``name``: ``runtime-precision`` of the winner;
    ``trials``: per candidate, ``batch1_ms`` and ``batched_ms`` (per image) and
    ``cosine_min`` to the reference, or ``rejected`` (the reason); ``cpu``: the machine
    as :meth:`.cpu.CpuInfo.describe` says it; ``cached``: read from an earlier trial;
    ``note``: why nothing else was tried, when so."""

    name: str
    trials: dict[str, dict[str, Any]] = field(default_factory=dict)
    cpu: str = ""
    threads: int = 1
    cached: bool = False
    note: str = ""

    @property
    def runtime(self) -> str:
        return self.name.split("-")[0]

    @property
    def precision(self) -> str:
        return self.name.split("-")[1]

    def describe(self) -> str:
        """One line for run summaries: the winner and what it beat."""
        if self.note:
            return self.note
        how = "cached trial" if self.cached else "trial"
        others = []
        for name, t in self.trials.items():
            if name == self.name:
                continue
            if "rejected" in t:
                others.append(f"{_pretty(name)} rejected ({t['rejected']})")
            else:
                others.append(f"{_pretty(name)} {t['batch1_ms']:.1f}/{t['batched_ms']:.1f}")
        me = self.trials.get(self.name, {})
        mine = f"{me['batch1_ms']:.1f}/{me['batched_ms']:.1f} ms" if "batch1_ms" in me else ""
        return (
            f"fastest on this CPU by {how} ({mine} an image at batch 1/{TRIAL_BATCH}"
            + (f"; {', '.join(others)}" if others else "")
            + ")"
        )


def _pretty(name: str) -> str:
    runtime, precision = name.split("-")
    return f"{'OpenVINO' if runtime == 'openvino' else 'ONNX Runtime'} {precision}"


def _reason(error: BaseException) -> str:
    """One short line for why a candidate failed: the error's last line that is not a
    source location (OpenVINO's messages start with a trace of ``Exception from
    file:line`` lines and end with the cause)."""
    lines = [ln.strip() for ln in str(error).splitlines() if ln.strip()]
    causes = [ln for ln in lines if not ln.startswith(("Exception from", "Check '"))]
    line = (causes or lines or [type(error).__name__])[-1]
    return line if len(line) <= 120 else line[:117] + "..."


def runtime_cache_dir() -> Path:
    return scenecls_home() / "runtimes"


def requested_candidates() -> tuple[str, ...]:
    """The candidates to try: ``$SCENECLS_RUNTIMES`` (comma-separated) or
    :data:`DEFAULT_CANDIDATES`."""
    env = os.environ.get("SCENECLS_RUNTIMES", "").strip()
    if not env:
        return DEFAULT_CANDIDATES
    names = tuple(dict.fromkeys(n.strip() for n in env.split(",") if n.strip()))
    unknown = [n for n in names if n not in CANDIDATES]
    if unknown or not names:
        raise UsageError(
            f"SCENECLS_RUNTIMES names {', '.join(unknown) or 'nothing'}: use a comma list "
            f"of {', '.join(CANDIDATES)}"
        )
    return names


def probe_images(count: int = 6, seed: int = 7) -> list[np.ndarray]:
    """Deterministic synthetic 640x360 BGR uint8 images with what real frames have (smooth
    gradients, edges, flat regions, fine noise): the trial's inputs."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:360, 0:640].astype(np.float32)
    images = []
    for _ in range(count):
        base = np.empty((360, 640, 3), np.float32)
        for c in range(3):
            a, b, k = rng.uniform(-1, 1, 3)
            base[:, :, c] = 128 + 90 * np.sin(a * xx / 90 + b * yy / 70 + k * 3)
        for _ in range(6):
            x0, y0 = rng.integers(0, 560), rng.integers(0, 300)
            w, h = rng.integers(20, 200), rng.integers(20, 150)
            base[y0 : y0 + h, x0 : x0 + w] = rng.uniform(0, 255, 3)
        base += rng.normal(0, 6, base.shape)
        images.append(np.clip(base, 0, 255).astype(np.uint8))
    return images


def _trial_key(bundle: Bundle, threads: int, candidates: tuple[str, ...]) -> str:
    versions = []
    for module in ("onnxruntime", "openvino"):
        try:
            versions.append(__import__(module).__version__)
        except Exception:
            versions.append(None)
    text = json.dumps(
        [CACHE_VERSION, bundle.fingerprint, cpu_info().key, threads, versions, candidates]
    )
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _build(bundle: Bundle, name: str, threads: int) -> ImageEncoder:
    from . import onnx, openvino

    runtime, precision = name.split("-")
    if runtime == "onnxruntime":
        return onnx.OnnxImageEncoder(bundle, "cpu")
    reason = openvino.openvino_unusable_reason()
    if reason is not None:
        raise RuntimeError(reason)
    if precision == "bf16" and not openvino.cpu_has_bf16():
        raise RuntimeError("no bf16 instructions")
    return openvino.OpenVinoImageEncoder(bundle, precision, threads)


def _read_cache(path: Path) -> RuntimeChoice | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        choice = RuntimeChoice(**data["choice"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if choice.name not in CANDIDATES:
        return None
    choice.cached = True
    return choice


def choose_cpu_runtime(
    bundle: Bundle,
    threads: int,
    candidates: tuple[str, ...] | None = None,
    *,
    not_worth_ms: float | None = None,
) -> tuple[RuntimeChoice, ImageEncoder]:
    """The fastest agreeing CPU runtime for the fp32 ``bundle`` with ``threads`` threads
    (see the module docstring), and its encoder, ready to use. Reads the choice from the
    cache when this machine has tried before; else runs the trial (a few seconds with
    ViT-B/32: every candidate is loaded) and keeps it."""
    candidates = candidates or requested_candidates()
    not_worth_ms = NOT_WORTH_MS if not_worth_ms is None else not_worth_ms
    path = runtime_cache_dir() / f"{_trial_key(bundle, threads, candidates)}.json"
    cached = _read_cache(path) if path.is_file() else None
    if cached is not None:
        try:
            return cached, _build(bundle, cached.name, threads)
        except Exception as e:  # the cached winner cannot start now: try again
            log.warning("the runtime chosen earlier (%s) cannot start: %s", cached.name, e)
    choice, encoder = _run_trial(bundle, threads, candidates, not_worth_ms)
    try:
        payload = {"version": CACHE_VERSION, "choice": asdict(choice)}
        payload["choice"].pop("cached")
        path.parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(path, (json.dumps(payload, indent=1) + "\n").encode())
    except OSError as e:
        log.warning("cannot keep the runtime choice in %s: %s", path.parent, e)
    return choice, encoder


def _run_trial(
    bundle: Bundle, threads: int, candidates: tuple[str, ...], not_worth_ms: float
) -> tuple[RuntimeChoice, ImageEncoder]:
    from ..fidelity import cosine_rows
    from ..preprocess import Preprocessor

    cpu = cpu_info()
    pixels = Preprocessor(bundle.preprocessing).batch(probe_images())
    one = pixels[:1]
    many = np.ascontiguousarray(np.resize(pixels, (TRIAL_BATCH, *pixels.shape[1:])))
    choice = RuntimeChoice(REFERENCE, cpu=cpu.describe(), threads=threads)
    reference = _build(bundle, REFERENCE, threads)
    expected = reference(pixels)
    encoders: dict[str, ImageEncoder] = {REFERENCE: reference}
    choice.trials[REFERENCE] = {"cosine_min": 1.0}
    quick = []
    for _ in range(3):  # the first call warms up
        t0 = time.perf_counter()
        reference(one)
        quick.append(time.perf_counter() - t0)
    ms = 1000 * min(quick[1:])
    if ms < not_worth_ms and REFERENCE in candidates:
        choice.note = f"no trial: {ms:.1f} ms an image leaves nothing to save"
        choice.trials[REFERENCE].update(batch1_ms=round(ms, 2), batched_ms=round(ms, 2))
        return choice, reference
    log.info("choosing the fastest runtime for this CPU (once per model and machine)")
    for name in candidates:
        if name == REFERENCE:
            continue
        try:
            encoder = _build(bundle, name, threads)
            cos = float(cosine_rows(encoder(pixels), expected).min())
        except Exception as e:
            reason = _reason(e)
            choice.trials[name] = {"rejected": reason}
            log.debug("runtime %s rejected: %s", name, reason)
            continue
        if cos < AGREEMENT:
            choice.trials[name] = {"rejected": f"cosine to fp32 {cos:.5f} < {AGREEMENT}"}
            continue
        encoders[name] = encoder
        choice.trials[name] = {"cosine_min": cos}
    if REFERENCE not in candidates and len(encoders) > 1:
        del encoders[REFERENCE]
        choice.trials.pop(REFERENCE)
    ones: dict[str, list[float]] = {n: [] for n in encoders}
    batched: dict[str, list[float]] = {n: [] for n in encoders}
    for enc in encoders.values():  # warm-up at both shapes
        enc(one)
        enc(many)
    for _ in range(ROUNDS):
        for name, enc in encoders.items():
            for _ in range(2):
                t0 = time.perf_counter()
                enc(one)
                ones[name].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            enc(many)
            batched[name].append((time.perf_counter() - t0) / TRIAL_BATCH)
    for name in encoders:
        choice.trials[name]["batch1_ms"] = round(1000 * float(np.median(ones[name])), 2)
        choice.trials[name]["batched_ms"] = round(1000 * float(np.median(batched[name])), 2)
    choice.name = min(
        encoders, key=lambda n: choice.trials[n]["batch1_ms"] + choice.trials[n]["batched_ms"]
    )
    log.info("runtime: %s %s", _pretty(choice.name), choice.describe())
    return choice, encoders[choice.name]
