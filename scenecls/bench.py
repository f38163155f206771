"""Benchmarks: end-to-end file annotation, encoder-only throughput, live latency, and the
usual Hugging Face CLIP loop as a baseline, all measured in one run.

Figures are wall-clock on the machine that runs them; compare ratios from one run.
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from .model.labels import LabelSet
from .model.scene_model import SceneModel

log = logging.getLogger("scenecls")


def _timeit(fn, repeat: int) -> float:  # type: ignore[no-untyped-def]
    """Median seconds of ``repeat`` calls after one warm-up call."""
    fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def bench_end_to_end(
    model: SceneModel, video: Path, labelset: LabelSet, batch: int
) -> dict[str, Any]:
    """Annotate ``video`` with JSONL and segment outputs, as a user would; per-stage ms."""
    from .video.pipeline import Pipeline, PipelineConfig
    from .video.sinks import JsonlSink, SegmentsSink
    from .video.sources import VideoFileSource

    with tempfile.TemporaryDirectory() as tmp:
        sinks = [JsonlSink(Path(tmp) / "f.jsonl"), SegmentsSink(Path(tmp) / "s.json")]
        stats = Pipeline(
            model, labelset, VideoFileSource(video), sinks, config=PipelineConfig(batch_size=batch)
        ).run()
    n = max(1, stats.frames_analysed)
    stages = {k: 1000 * v / n for k, v in stats.stage_seconds.items()}
    total_ms = 1000 * stats.wall_seconds / n
    return {
        "frames": stats.frames_analysed,
        "fps": stats.fps,
        "ms_per_frame": total_ms,
        "stage_ms": stages,
        "overhead_fraction": max(0.0, 1 - stages["encode"] / total_ms) if total_ms else 0.0,
    }


def bench_encoder(
    model: SceneModel, frame_bgr: np.ndarray, batch: int, repeat: int = 5
) -> dict[str, Any]:
    """Image-encoder throughput on preprocessed input: batch 1 and ``batch``."""
    one = model.preprocess([frame_bgr])
    many = np.repeat(one, batch, axis=0)
    t1 = _timeit(lambda: model.image_encoder(one), repeat * 4)
    tb = _timeit(lambda: model.image_encoder(many), repeat)
    return {
        "batch1_ms": 1000 * t1,
        "batch": batch,
        "batched_ms_per_image": 1000 * tb / batch,
        "batch1_fps": 1 / t1,
        "batched_fps": batch / tb,
    }


def bench_fidelity(encoder: Any, reference: Any, pixels: np.ndarray) -> dict[str, Any]:
    """Agreement of ``encoder`` with the fp32 ``reference`` on the same (N, 3, H, W)
    float32 pixels: cosine of the image embeddings, min and mean over the N frames."""
    from .model.fidelity import cosine_rows

    cos = cosine_rows(encoder(pixels), reference(pixels))
    return {"frames": len(cos), "cosine_min": float(cos.min()), "cosine_mean": float(cos.mean())}


def bench_precisions(
    model: SceneModel,
    reference: Any,
    pixels: np.ndarray,
    precisions: list[str],
    batch: int,
    repeat: int = 3,
) -> dict[str, Any]:
    """Encoder alone in each precision (same bundle, CPU unless fp16): batch-1 and batched
    ms per image, and agreement with the fp32 ``reference`` on ``pixels`` (N, 3, H, W)."""
    from .errors import SceneclsError
    from .model.runtimes.select import create_image_encoder

    out: dict[str, Any] = {}
    one, many = pixels[:1], np.repeat(pixels[:1], batch, axis=0)
    for precision in precisions:
        device = model.device if precision in ("fp16", "fp32") else "cpu"
        try:
            enc = create_image_encoder(model.bundle, device, precision)
        except SceneclsError as e:
            out[precision] = {"skipped": str(e)}
            continue
        t1 = _timeit(lambda enc=enc: enc(one), repeat * 4)
        tb = _timeit(lambda enc=enc: enc(many), repeat)
        out[precision] = {
            "runtime": enc.runtime,
            "device": enc.device,
            "batch1_ms": 1000 * t1,
            "batched_ms_per_image": 1000 * tb / batch,
            "fidelity": bench_fidelity(enc, reference, pixels) if reference is not None else None,
        }
        del enc
    return out


def bench_live(
    model: SceneModel,
    frames: list[np.ndarray],
    labelset: LabelSet,
    seconds: float,
    fps: float = 30.0,
) -> dict[str, Any]:
    """A simulated camera at ``fps``: capture-to-label latency percentiles and drops."""
    from .video.pipeline import Pipeline
    from .video.sources import SimulatedLiveSource

    stats = Pipeline(model, labelset, SimulatedLiveSource(frames, fps=fps, duration=seconds)).run()
    lat = np.asarray(stats.latencies)
    third = max(1, len(lat) // 3)
    return {
        "seconds": seconds,
        "camera_fps": fps,
        "frames": stats.frames_read,
        "analysed": stats.frames_analysed,
        "dropped": stats.frames_dropped,
        "latency_p50_ms": float(np.percentile(lat, 50) * 1000) if len(lat) else None,
        "latency_p95_ms": float(np.percentile(lat, 95) * 1000) if len(lat) else None,
        "latency_first_third_ms": float(lat[:third].mean() * 1000) if len(lat) else None,
        "latency_last_third_ms": float(lat[-third:].mean() * 1000) if len(lat) else None,
    }


def bench_baseline(hf_model: str, frames: list[np.ndarray], labels: list[str]) -> dict[str, Any]:
    """The loop most users write first, after the Hugging Face docs: per frame,
    ``CLIPProcessor(text=labels, images=frame)`` and ``CLIPModel(**inputs)`` in PyTorch
    fp32, softmax over ``logits_per_image``."""
    import torch
    import transformers
    from transformers import CLIPModel, CLIPProcessor

    transformers.logging.set_verbosity_error()  # its advice on fast processors is not ours

    model = CLIPModel.from_pretrained(hf_model).eval()
    processor = CLIPProcessor.from_pretrained(hf_model)
    prompts = [f"a photo of a {lb}." for lb in labels]

    def one(frame_bgr: np.ndarray) -> None:
        rgb = frame_bgr[:, :, ::-1]
        inputs = processor(text=prompts, images=rgb, return_tensors="pt", padding=True)
        with torch.no_grad():
            model(**inputs).logits_per_image.softmax(dim=1)

    one(frames[0])
    t = time.perf_counter()
    for f in frames:
        one(f)
    dt = time.perf_counter() - t
    return {"frames": len(frames), "fps": len(frames) / dt, "ms_per_frame": 1000 * dt / len(frames)}


def format_report(r: dict[str, Any]) -> str:
    e, enc, lines = r["end_to_end"], r["encoder"], []
    lines.append(
        f"model       {r['model']} ({r['device']}, {r['runtime']} {r['precision']})"
        + ("  [random weights: speed is real, accuracy is not]" if r.get("random_weights") else "")
    )
    lines.append(f"source      {r['source']}, {e['frames']} frames, batch {r['batch']}")
    lines.append(
        f"end to end  {e['fps']:.1f} frames/s ({e['ms_per_frame']:.1f} ms/frame), "
        f"pipeline overhead {e['overhead_fraction']:.1%} of the time"
    )
    lines.append("  per frame " + ", ".join(f"{k} {v:.1f} ms" for k, v in e["stage_ms"].items()))
    lines.append(
        f"encoder     batch 1: {enc['batch1_ms']:.1f} ms ({enc['batch1_fps']:.1f}/s); "
        f"batch {enc['batch']}: {enc['batched_ms_per_image']:.1f} ms/image "
        f"({enc['batched_fps']:.1f}/s)"
    )
    if r.get("fidelity"):
        f = r["fidelity"]
        lines.append(
            f"fidelity    cosine to fp32 on {f['frames']} frames of the source: "
            f"min {f['cosine_min']:.6f}, mean {f['cosine_mean']:.6f}"
        )
    for name, p in r.get("precisions", {}).items():
        if "skipped" in p:
            lines.append(f"  {name:5s}     skipped: {p['skipped']}")
            continue
        fid = p["fidelity"]
        lines.append(
            f"  {name:5s}     {p['runtime']} {p['device']}: batch 1 {p['batch1_ms']:.1f} ms, "
            f"batch {r['batch']} {p['batched_ms_per_image']:.1f} ms/image"
            + (f", cosine to fp32 min {fid['cosine_min']:.6f}" if fid else "")
        )
    if r.get("live"):
        lv = r["live"]
        lines.append(
            f"live        {lv['camera_fps']:g} fps camera for {lv['seconds']:g} s: "
            f"latency p50 {lv['latency_p50_ms']:.0f} ms, p95 {lv['latency_p95_ms']:.0f} ms "
            f"(= {lv['latency_p95_ms'] / enc['batch1_ms']:.2f} x encoder batch-1 time); "
            f"analysed {lv['analysed']}, dropped {lv['dropped']}"
        )
    if r.get("baseline"):
        b = r["baseline"]
        lines.append(
            f"baseline    HF CLIPProcessor + CLIPModel loop (PyTorch fp32): {b['fps']:.1f} "
            f"frames/s over {b['frames']} frames"
        )
        lines.append(f"ratio       scenecls / baseline = {e['fps'] / b['fps']:.2f}x")
    return "\n".join(lines)
