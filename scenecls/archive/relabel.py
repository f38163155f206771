"""Relabelling stored embeddings: new labels, new smoothing, the same outputs as a run,
without opening a video.

Each analysed frame's embedding is rebuilt from the stored rows exactly as the change
gate built it during the run (a copy of an encoded frame's row, or the same float64 mix
of two), scored against the new labels, and fed through the same smoother, segment
tracker and sinks as :class:`~scenecls.video.pipeline.Pipeline`. With float32 storage
the outputs therefore equal the run's bit for bit; with float16 storage the scores move
by about 1e-4 (docs/searching.md).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from itertools import pairwise
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from ..errors import SceneclsError, UsageError
from ..model.embeddings_store import EmbeddingsFile
from ..model.labels import UNKNOWN
from ..model.scene_model import LabelSource, TextModel
from ..model.taught import Scorer
from ..types import Segment
from ..video.sinks import JsonlSink, RunInfo, Sink
from ..video.smoothing import SegmentTracker, Smoother, SmoothingConfig
from .job import PARTIAL_DIR, make_sinks
from .manifest import Manifest
from .options import output_name, parse_outputs
from .stored import Problem, StoredVideo

RELABEL_KINDS: tuple[str, ...] = ("jsonl", "segments", "csv", "srt", "vtt")
"""``relabel --outputs`` choices (no annotated video: the frames are not decoded)."""
DEFAULT_RELABEL_OUTPUTS: tuple[str, ...] = ("jsonl", "segments", "srt")

_CHUNK = 8192  # frames rebuilt and scored at a time

log = logging.getLogger("scenecls")


def frame_scores(
    store: EmbeddingsFile, start: int, stop: int, scorer: Scorer
) -> tuple[np.ndarray, np.ndarray]:
    """``(n, K)`` float32 similarities and probabilities of analysed frames
    ``start:stop`` of ``store`` for ``scorer``'s labels, computed from the rows they were
    made of as the pipeline computes them (``scorer.score_blends``)."""
    frames = store.frames[start:stop]
    left, right = frames["left"].astype(np.int64), frames["right"].astype(np.int64)
    lo = int(min(left.min(), right.min())) if len(frames) else 0
    hi = int(max(left.max(), right.max())) + 1 if len(frames) else 0
    anchors = np.asarray(store.embeddings[lo:hi], np.float32)
    return scorer.score_blends(anchors, left - lo, right - lo, frames["weight"])


def parse_relabel_outputs(text: str) -> tuple[str, ...]:
    """``relabel --outputs``: some of :data:`RELABEL_KINDS`, comma separated, or ``all``."""
    return parse_outputs(text, RELABEL_KINDS)


@dataclass
class ReplayStats:
    """What one video's relabelling produced."""

    frames: int = 0
    encoded: int = 0
    segments: list[Segment] | None = None
    seconds: float = 0.0


def replay(
    store: EmbeddingsFile,
    scorer: Scorer,
    smoothing: SmoothingConfig,
    sinks: Sequence[Sink],
    stop: threading.Event | None = None,
) -> ReplayStats:
    """Score every stored frame of ``store`` with ``scorer`` (text labels or a taught
    set), smooth, and write ``sinks`` (JSON Lines, segments, captions) as a run would, a
    chunk of frames at a time with the same arithmetic as the pipeline. Every started
    sink is finished, also on errors and interrupts."""
    t0 = time.perf_counter()
    names = list(scorer.names)
    shown = [*names, UNKNOWN]  # index -1: unknown
    smoother, tracker = Smoother(smoothing), SegmentTracker()
    meta = store.meta
    size = meta.get("size")
    info = RunInfo(
        str(meta.get("source")),
        tuple(names),
        (int(size[0]), int(size[1])) if size else None,
        meta.get("fps"),
        bool(meta.get("live")),
        model={k: meta.get(k) for k in ("model", "model_fingerprint", "precision")},
    )
    frames = store.frames
    times_all = frames["time"]
    # a live source lost its input: the smoothing starts afresh at the frame it resumed
    cuts = {
        int(np.searchsorted(times_all, resumed, side="left")): float(lost)
        for lost, resumed in store.gaps.tolist()
    }
    bounds = sorted({0, len(frames), *range(0, len(frames), _CHUNK), *cuts})
    jsonl = [s for s in sinks if isinstance(s, JsonlSink)]
    stats = ReplayStats()
    started: list[Sink] = []
    error: BaseException | None = None
    try:
        for sink in sinks:
            sink.start(info)
            started.append(sink)
        for begin, end in pairwise(bounds):
            if stop is not None and stop.is_set():
                break
            if begin in cuts:
                tracker.close(cuts[begin])
                smoother.reset()
            chunk = frames[begin:end]
            times = chunk["time"]
            _, probs = frame_scores(store, begin, end, scorer)
            labels, confidences = smoother.run(probs, times)
            label_names = [shown[i] for i in labels.tolist()]
            conf_values = confidences.tolist()
            for t, name, c in zip(times.tolist(), label_names, conf_values, strict=True):
                tracker.update(t, name, c)
            if jsonl:
                best = np.argmax(probs, axis=1)
                sure = probs[np.arange(len(best)), best].astype(np.float64)
                rest = 1.0 - probs.astype(np.float64).sum(axis=1)
                raw = np.where((sure >= smoothing.min_confidence) & (sure >= rest), best, -1)
                raw_names = [shown[i] for i in raw.tolist()]
                rows = probs.tolist()
                for sink in jsonl:
                    sink.write_many(
                        chunk["index"].tolist(),
                        times.tolist(),
                        label_names,
                        conf_values,
                        raw_names,
                        chunk["encoded"].tolist(),
                        rows,
                    )
            stats.frames += len(chunk)
            stats.encoded += int(chunk["encoded"].sum())
    except BaseException as e:
        error = e
        raise
    finally:
        if stats.frames:
            tracker.close(max(store.end, float(times_all[stats.frames - 1])))
        stats.segments = list(tracker.segments)
        first: BaseException | None = None
        for sink in started:
            try:
                sink.finish(stats.segments)
            except BaseException as e:  # finish the others, report the first
                first = first or e
        if first is not None and error is None:
            raise first
    stats.seconds = time.perf_counter() - t0
    return stats


@dataclass
class RelabelSummary:
    """What a relabel run did: ``done`` (rel paths), ``problems`` (files left out)."""

    out_dir: Path
    done: list[str]
    problems: list[Problem]
    frames: int = 0
    segments: int = 0
    seconds: float = 0.0
    interrupted: bool = False

    @property
    def exit_code(self) -> int:
        return 130 if self.interrupted else (1 if self.problems else 0)

    def lines(self) -> list[str]:
        out = [
            f"relabelled  {len(self.done)} video{'s' * (len(self.done) != 1)}, "
            f"{self.frames} frames, {self.segments} segments in {self.seconds:.2f} s "
            f"-> {self.out_dir}"
        ]
        if self.interrupted:
            out.append("stopped     early: the videos finished so far are complete")
        for p in self.problems:
            out.append(f"left out    {p.line}")
        return out


def relabel(
    videos: Sequence[StoredVideo],
    problems: Sequence[Problem],
    text_model: TextModel,
    labels: LabelSource,
    smoothing: SmoothingConfig,
    out_dir: Path,
    outputs: Sequence[str] = DEFAULT_RELABEL_OUTPUTS,
    stop: threading.Event | None = None,
) -> RelabelSummary:
    """Relabel every video of ``videos`` into ``out_dir``, named and laid out as
    ``scenecls annotate`` names its outputs, each video's files put in place only when
    all are complete, and recorded in ``out_dir/manifest.jsonl``."""
    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    rels = [v.rel for v in videos]
    twice = sorted({r for r in rels if rels.count(r) > 1})
    if twice:
        raise UsageError(
            f"two inputs would write the same outputs ({', '.join(twice[:3])}): relabel "
            "them into different --out folders"
        )
    for v in videos:
        if out_dir.resolve() == _archive_root(v).resolve():
            raise UsageError(
                f"--out {out_dir} is the folder the embeddings come from: the new outputs "
                "would replace the annotation's; choose another folder"
            )
    scorer = text_model.scorer(labels)
    summary = RelabelSummary(out_dir, [], list(problems))
    out_dir.mkdir(parents=True, exist_ok=True)
    partial = out_dir / PARTIAL_DIR
    with Manifest(out_dir) as manifest:
        for v in videos:
            if stop is not None and stop.is_set():
                summary.interrupted = True
                break
            try:
                entry = _relabel_one(v, scorer, smoothing, out_dir, partial, outputs, stop)
            except SceneclsError as e:
                summary.problems.append(Problem(str(v.path), str(e)))
                continue
            if entry is None:
                summary.interrupted = True
                break
            manifest.append(entry)
            summary.done.append(v.rel)
            summary.frames += int(entry["analysed"])
            summary.segments += int(entry["segments"])
    with contextlib.suppress(OSError):
        partial.rmdir()
    summary.seconds = time.perf_counter() - t0
    return summary


def _archive_root(v: StoredVideo) -> Path:
    """The folder ``v``'s outputs belong to: the annotate folder holding its file."""
    path = v.path.resolve()
    depth = len(PurePosixPath(v.rel).parts)
    return path.parents[depth - 1] if len(path.parents) >= depth else path.parent


def _relabel_one(
    v: StoredVideo,
    scorer: Scorer,
    smoothing: SmoothingConfig,
    out_dir: Path,
    partial: Path,
    outputs: Sequence[str],
    stop: threading.Event | None,
) -> dict[str, Any] | None:
    partial.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-", dir=partial))
    try:
        name = PurePosixPath(v.rel).name
        sinks = make_sinks(work, name, outputs)
        store = v.open()
        for note in store.notes:  # cut after a crash: relabelled up to the last flush
            log.warning("%s", note)
        stats = replay(store, scorer, smoothing, list(sinks.values()), stop)
        if stop is not None and stop.is_set():
            return None
        final = out_dir / PurePosixPath(v.rel).parent
        final.mkdir(parents=True, exist_ok=True)
        placed: dict[str, str] = {}
        for kind in outputs:
            fname = output_name(name, kind)
            os.replace(work / fname, final / fname)
            placed[kind] = (PurePosixPath(v.rel).parent / fname).as_posix()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    meta = v.meta
    unix = meta.get("clock") == "unix"
    return {
        "input": v.video or str(meta.get("source")),
        "file": v.rel,
        "status": "done",
        "error": None,
        "model": meta.get("model"),
        "model_fingerprint": meta.get("model_fingerprint"),
        "precision": meta.get("precision"),
        "device": meta.get("device"),
        "labels": list(scorer.names),
        "outputs": placed,
        "embeddings": str(v.path),
        "analysed": stats.frames,
        "encoded": stats.encoded,
        "segments": len(stats.segments or []),
        # a service's history is timed in UNIX seconds: its length, from its first row
        "duration": round(store.end - (float(store.times[0]) if unix and store.rows else 0.0), 3),
        "seconds": round(stats.seconds, 3),
        "finished": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
