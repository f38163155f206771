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
from .region import Region
from .video.sinks import Sink

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


AGREEMENT_BARS = {
    "cosine_p1": 0.995,
    "cosine_min": 0.98,
    "labels_same": 0.995,
    "boundary_frames": 2,
}
"""What gated analysis must keep of every-frame analysis, on every source: the 1st
percentile and the minimum over frames of the cosine between the embedding a frame was
given and its own, the share of frames with the same smoothed label, and how many frames
away each segment boundary of the every-frame run may be found."""


class _Recorder(Sink):
    """A sink that keeps each analysed frame's index and smoothed label."""

    def __init__(self) -> None:
        self.labels: dict[int, str] = {}

    def on_frame(self, frame: Any, prediction: Any, analysed: bool, annotated: Any = None) -> None:
        if analysed and prediction is not None:
            self.labels[frame.index] = prediction.label


def annotate_file(
    model: SceneModel, video: Path, labelset: LabelSet, config: Any
) -> tuple[Any, dict[int, np.ndarray], dict[int, str]]:
    """Annotate ``video`` as a user would (JSONL and segment outputs, in a temporary
    folder) with ``config`` (a :class:`~.video.pipeline.PipelineConfig`). Returns the run
    statistics, each analysed frame's ``(D,)`` float32 embedding and smoothed label, by
    frame index."""
    from .video.pipeline import Pipeline
    from .video.sinks import JsonlSink, SegmentsSink
    from .video.sources import VideoFileSource

    embeddings: dict[int, np.ndarray] = {}

    def keep(frames: list[Any], embs: np.ndarray, encoded: np.ndarray) -> None:
        for frame, row in zip(frames, embs, strict=True):
            embeddings[frame.index] = row

    recorder = _Recorder()
    with tempfile.TemporaryDirectory() as tmp:
        sinks = [JsonlSink(Path(tmp) / "f.jsonl"), SegmentsSink(Path(tmp) / "s.json"), recorder]
        stats = Pipeline(
            model, labelset, VideoFileSource(video), sinks, config=config, on_embeddings=keep
        ).run()
    return stats, embeddings, recorder.labels


def _boundaries(labels: list[str]) -> list[tuple[int, str]]:
    """(position, new label) wherever the label changes."""
    return [(i, labels[i]) for i in range(1, len(labels)) if labels[i] != labels[i - 1]]


def agreement(
    reference: dict[int, np.ndarray],
    gated: dict[int, np.ndarray],
    reference_labels: dict[int, str],
    gated_labels: dict[int, str],
) -> dict[str, Any]:
    """How closely gated analysis follows every-frame analysis of the same frames.

    ``reference``/``gated``: each frame's ``(D,)`` unit embedding by frame index (every
    frame's own, and the one the gated run gave it); the labels likewise. Returns the
    cosine's 1st percentile, minimum and mean over frames, the share of frames with the
    same smoothed label, and the segment boundaries of the reference found in the gated
    run within ``AGREEMENT_BARS["boundary_frames"]`` frames (same new label).
    """
    frames = sorted(reference.keys() & gated.keys())
    if not frames:
        raise ValueError("the two runs have no analysed frame in common")
    a = np.stack([reference[i] for i in frames]).astype(np.float64)
    b = np.stack([gated[i] for i in frames]).astype(np.float64)
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-30)
    ref = [reference_labels[i] for i in frames]
    got = [gated_labels[i] for i in frames]
    tolerance = AGREEMENT_BARS["boundary_frames"]
    found = 0
    gated_bounds = _boundaries(got)
    missed = []
    for pos, label in _boundaries(ref):
        if any(abs(pos - q) <= tolerance and lb == label for q, lb in gated_bounds):
            found += 1
        else:
            missed.append(frames[pos])
    return {
        "frames": len(frames),
        "cosine_p1": float(np.percentile(cos, 1)),
        "cosine_min": float(cos.min()),
        "cosine_mean": float(cos.mean()),
        "labels_same": float(np.mean([x == y for x, y in zip(ref, got, strict=True)])),
        "boundaries": len(_boundaries(ref)),
        "boundaries_found": found,
        "boundaries_missed_at_frames": missed[:20],
    }


def meets_bars(a: dict[str, Any]) -> bool:
    """Whether one source's :func:`agreement` meets :data:`AGREEMENT_BARS`."""
    return (
        a["cosine_p1"] >= AGREEMENT_BARS["cosine_p1"]
        and a["cosine_min"] >= AGREEMENT_BARS["cosine_min"]
        and a["labels_same"] >= AGREEMENT_BARS["labels_same"]
        and a["boundaries_found"] == a["boundaries"]
    )


def bench_sources(
    model: SceneModel,
    sources: list[Path],
    labelset: LabelSet,
    batch: int,
    gate: Any,
    region: Region | None = None,
) -> dict[str, Any]:
    """Every-frame and gated (``gate``: a :class:`~.video.gate.GateConfig`) annotation of
    each file in ``sources``, with JSONL and segment outputs: frames per second of each,
    share of frames encoded, decode time per frame, and the gated run's
    :func:`agreement` with the every-frame run. Totals are total frames over total time.
    ``region``: the region of interest both runs analyse (None: the whole frame)."""
    from .video.gate import GateConfig
    from .video.pipeline import PipelineConfig

    every = PipelineConfig(batch_size=batch, gate=GateConfig(change_threshold=0), region=region)
    gated = PipelineConfig(batch_size=batch, gate=gate, region=region)
    rows = []
    for video in sources:
        ref_stats, ref_embs, ref_labels = annotate_file(model, video, labelset, every)
        stats, embs, labels = annotate_file(model, video, labelset, gated)
        rows.append(
            {
                "source": str(video),
                "frames": stats.frames_analysed,
                "every_frame_seconds": ref_stats.wall_seconds,
                "gated_seconds": stats.wall_seconds,
                "every_frame_fps": ref_stats.fps,
                "gated_fps": stats.fps,
                "encoded": stats.frames_encoded,
                "encoded_share": stats.encoded_share,
                "decode_ms": 1000 * stats.stage_seconds["decode"] / max(1, stats.frames_read),
                "gate_ms": 1000 * stats.stage_seconds["gate"] / max(1, stats.frames_analysed),
                "encoder_calls": stats.encoder_calls.to_dict(),
                "every_frame_encoder_calls": ref_stats.encoder_calls.to_dict(),
                "agreement": agreement(ref_embs, embs, ref_labels, labels),
            }
        )
    frames = sum(r["frames"] for r in rows)
    every_s = sum(r["every_frame_seconds"] for r in rows)
    gated_s = sum(r["gated_seconds"] for r in rows)
    return {
        "gate": {"change_threshold": gate.change_threshold, "max_reuse": gate.max_reuse},
        "sources": rows,
        "frames": frames,
        "every_frame_fps": frames / every_s if every_s else 0.0,
        "gated_fps": frames / gated_s if gated_s else 0.0,
        "speedup": every_s / gated_s if gated_s else 0.0,
        "encoded_share": sum(r["encoded"] for r in rows) / frames if frames else 0.0,
        "all_agree": all(meets_bars(r["agreement"]) for r in rows),
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
    region: Region | None = None,
) -> dict[str, Any]:
    """A simulated camera at ``fps``: capture-to-label latency percentiles and drops
    (``region``: the region of interest analysed, None: the whole frame)."""
    from .video.pipeline import Pipeline, PipelineConfig
    from .video.sources import SimulatedLiveSource

    stats = Pipeline(
        model,
        labelset,
        SimulatedLiveSource(frames, fps=fps, duration=seconds),
        config=PipelineConfig(region=region),
    ).run()
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
        "encoder_batch1_ms": stats.encoder_calls.ms_per_call(1),
        "encoder_calls": stats.encoder_calls.total,
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


def format_sources(g: dict[str, Any]) -> list[str]:
    """The gated vs every-frame table of :func:`bench_sources`, as text lines."""
    bars = AGREEMENT_BARS
    lines = [
        f"gate        --change-threshold {g['gate']['change_threshold']:g} "
        f"--max-reuse {g['gate']['max_reuse']:g}; agreement bars: cosine p1 >= "
        f"{bars['cosine_p1']}, min >= {bars['cosine_min']}, labels >= "
        f"{bars['labels_same']:.1%}, boundaries within {bars['boundary_frames']} frames",
        f"  {'source':34s} {'frames':>6s} {'every fps':>9s} {'gated fps':>9s} {'x':>5s} "
        f"{'encoded':>7s} {'decode':>7s} {'cos p1':>7s} {'cos min':>7s} {'labels':>7s} "
        f"{'bounds':>6s}",
    ]
    for r in g["sources"]:
        a = r["agreement"]
        lines.append(
            f"  {Path(r['source']).name[:34]:34s} {r['frames']:6d} {r['every_frame_fps']:9.1f} "
            f"{r['gated_fps']:9.1f} {r['every_frame_seconds'] / r['gated_seconds']:5.1f} "
            f"{r['encoded_share']:7.1%} {r['decode_ms']:5.2f}ms {a['cosine_p1']:7.4f} "
            f"{a['cosine_min']:7.4f} {a['labels_same']:7.1%} "
            f"{a['boundaries_found']:>3d}/{a['boundaries']:<2d}"
            + ("" if meets_bars(a) else "  below a bar")
        )
    lines.append(
        f"  {'all':34s} {g['frames']:6d} {g['every_frame_fps']:9.1f} {g['gated_fps']:9.1f} "
        f"{g['speedup']:5.1f} {g['encoded_share']:7.1%}"
        + ("   every source meets the agreement bars" if g["all_agree"] else "")
    )
    return lines


def format_report(r: dict[str, Any]) -> str:
    enc, lines = r["encoder"], []
    if r.get("cpu"):
        lines.append(f"machine     {r['cpu']['describe']}")
    encoder = r.get("encoder_description") or f"{r['device']}, {r['runtime']} {r['precision']}"
    lines.append(
        f"model       {r['model']} ({encoder})"
        + ("  [random weights: speed is real, accuracy is not]" if r.get("random_weights") else "")
    )
    if r.get("region"):
        region = r["region"]
        spec = ",".join(str(region[k]) for k in ("x", "y", "w", "h"))
        lines.append(f"region      {spec} ({region['unit']}s): only it is gated and encoded")
    g = r["sources"]
    lines.append(
        f"end to end  {len(g['sources'])} file(s), {g['frames']} frames, JSONL + segments, "
        f"batch {r['batch']}: every frame {g['every_frame_fps']:.1f} frames/s, gated "
        f"{g['gated_fps']:.1f} frames/s ({g['speedup']:.2f}x), {g['encoded_share']:.1%} encoded"
    )
    lines.extend(format_sources(g))
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
        if lv.get("encoder_batch1_ms"):
            lines.append(
                f"            encoder calls in the live run: {lv['encoder_batch1_ms']:.1f} ms "
                f"each (= {lv['encoder_batch1_ms'] / enc['batch1_ms']:.2f} x alone)"
            )
    if r.get("baseline"):
        b = r["baseline"]
        lines.append(
            f"baseline    HF CLIPProcessor + CLIPModel loop (PyTorch fp32): {b['fps']:.1f} "
            f"frames/s over {b['frames']} frames"
        )
        lines.append(
            f"ratio       scenecls / baseline = {g['every_frame_fps'] / b['fps']:.2f}x every "
            f"frame, {g['gated_fps'] / b['fps']:.2f}x gated"
        )
    return "\n".join(lines)
