"""Evaluation metrics: zero-shot classification (accuracy, Recall@K, per-class
precision/recall/F1, macro and micro averages, confusion matrix) and video segment
metrics (frame accuracy, switches per minute, boundary precision/recall/F1, delay).

Pure functions on plain lists; no model needed. ``unknown`` predictions count as a
prediction column of their own and are never correct.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import numpy as np

from ..model.labels import UNKNOWN
from ..types import Segment


def recall_at_k(truth: Sequence[str], ranked: Sequence[Sequence[str]], k: int) -> float:
    """Fraction of samples whose true label is among the first ``k`` ranked labels."""
    if not truth:
        return 0.0
    return sum(t in r[:k] for t, r in zip(truth, ranked, strict=True)) / len(truth)


def confusion_matrix(
    truth: Sequence[str],
    predicted: Sequence[str],
    labels: Sequence[str],
    predicted_labels: Sequence[str] | None = None,
) -> tuple[list[str], np.ndarray]:
    """Counts (K, C+1) int64: rows = true label (``labels`` order), columns = predicted
    label (``predicted_labels``, default ``labels``) plus a last column for ``unknown``.
    Returns (column labels, matrix)."""
    columns = [*(labels if predicted_labels is None else predicted_labels), UNKNOWN]
    col = {lb: i for i, lb in enumerate(columns)}
    row = {lb: i for i, lb in enumerate(labels)}
    m = np.zeros((len(labels), len(columns)), np.int64)
    for t, p in zip(truth, predicted, strict=True):
        if t not in row:
            raise ValueError(f"true label {t!r} is not in the label set")
        m[row[t], col.get(p, col[UNKNOWN])] += 1
    return columns, m


def _prf(tp: float, n_pred: float, n_true: float) -> tuple[float, float, float]:
    p = tp / n_pred if n_pred else 0.0
    r = tp / n_true if n_true else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f


def classification_report(
    truth: Sequence[str],
    predicted: Sequence[str],
    ranked: Sequence[Sequence[str]],
    labels: Sequence[str],
    worst: int = 10,
) -> dict[str, Any]:
    """Everything the JSON report holds for an image-folder evaluation.

    ``truth`` and ``predicted`` are one label per sample (``predicted`` may be
    ``unknown``); ``ranked`` is each sample's labels, best first (for Recall@K).
    """
    columns, m = confusion_matrix(truth, predicted, labels)
    k_labels = m[:, : len(labels)]
    tp = np.diag(k_labels).astype(float)
    n_true = m.sum(axis=1).astype(float)
    n_pred = k_labels.sum(axis=0).astype(float)
    per_class = {}
    for i, lb in enumerate(labels):
        p, r, f = _prf(tp[i], n_pred[i], n_true[i])
        per_class[lb] = {"precision": p, "recall": r, "f1": f, "support": int(n_true[i])}
    macro = {
        key: float(np.mean([c[key] for c in per_class.values()]))
        for key in ("precision", "recall", "f1")
    }
    mp, mr, mf = _prf(tp.sum(), n_pred.sum(), n_true.sum())
    ks = [k for k in (1, 3, 5) if k <= len(labels)]
    confusions = [
        {
            "truth": labels[i],
            "predicted": columns[j],
            "count": int(m[i, j]),
            "fraction_of_truth": float(m[i, j] / n_true[i]) if n_true[i] else 0.0,
        }
        for i in range(len(labels))
        for j in range(len(columns))
        if columns[j] != labels[i] and m[i, j] > 0
    ]
    confusions.sort(key=lambda c: (-c["count"], c["truth"], c["predicted"]))
    n = len(truth)
    return {
        "n_images": n,
        "accuracy": float(sum(t == p for t, p in zip(truth, predicted, strict=True)) / n)
        if n
        else 0.0,
        "recall_at_k": {str(k): recall_at_k(truth, ranked, k) for k in ks},
        "per_class": per_class,
        "macro": macro,
        "micro": {"precision": mp, "recall": mr, "f1": mf},
        "unknown_rate": float(m[:, -1].sum() / n) if n else 0.0,
        "confusion": {"labels": list(labels), "columns": columns, "matrix": m.tolist()},
        "worst_confusions": confusions[:worst],
    }


# ---- video -------------------------------------------------------------------------


def label_at(segments: Sequence[Segment], t: float) -> str | None:
    """The label of the segment containing time ``t`` ([start, end)), or None."""
    for s in segments:
        if s.start <= t < s.end:
            return s.label
    return None


def boundaries(segments: Sequence[Segment]) -> list[float]:
    """Times where the label changes (the start of every segment but the first whose
    label differs from the previous one)."""
    return [b.start for a, b in pairwise(segments) if a.label != b.label]


@dataclass(frozen=True)
class BoundaryScores:
    precision: float
    recall: float
    f1: float
    matched: int
    predicted: int
    true: int
    mean_delay: float | None  # seconds, predicted minus true, over matched boundaries


def match_boundaries(
    true: Sequence[float], predicted: Sequence[float], tolerance: float
) -> BoundaryScores:
    """One-to-one matching of predicted to true change times within ``tolerance``
    seconds, closest pairs first."""
    pairs = sorted(
        (abs(p - t), i, j)
        for i, t in enumerate(true)
        for j, p in enumerate(predicted)
        if abs(p - t) <= tolerance + 1e-9
    )
    used_t: set[int] = set()
    used_p: set[int] = set()
    delays = []
    for _, i, j in pairs:
        if i in used_t or j in used_p:
            continue
        used_t.add(i)
        used_p.add(j)
        delays.append(predicted[j] - true[i])
    p, r, f = _prf(len(delays), len(predicted), len(true))
    return BoundaryScores(
        p, r, f, len(delays), len(predicted), len(true), float(np.mean(delays)) if delays else None
    )


def switches_per_minute(labels: Sequence[str], duration_s: float) -> float:
    """Label changes between consecutive frames, per minute of video."""
    if duration_s <= 0:
        return 0.0
    return sum(1 for a, b in pairwise(labels) if a != b) * 60.0 / duration_s


def runs_to_segments(times: Sequence[float], labels: Sequence[str], end: float) -> list[Segment]:
    """Per-frame labels at ``times`` -> contiguous segments ending at ``end``."""
    segs: list[Segment] = []
    for i, (t, lb) in enumerate(zip(times, labels, strict=True)):
        if i == 0 or lb != labels[i - 1]:
            if segs:
                segs[-1] = Segment(segs[-1].label, segs[-1].start, t, 0.0)
            segs.append(Segment(lb, t, t, 0.0))
    if segs:
        segs[-1] = Segment(segs[-1].label, segs[-1].start, max(end, segs[-1].start), 0.0)
    return segs


def video_report(
    times: Sequence[float],
    raw: Sequence[str],
    smoothed: Sequence[str],
    truth: Sequence[Segment],
    end: float,
    tolerance: float = 1.0,
) -> dict[str, Any]:
    """Frame accuracy (raw, smoothed), switches per minute (raw, smoothed, truth),
    boundary precision/recall/F1 within ``tolerance`` s and mean delay, for raw and
    smoothed labels. Frames outside every truth segment are not scored."""
    scored = [(i, label_at(truth, t)) for i, t in enumerate(times)]
    scored = [(i, lb) for i, lb in scored if lb is not None]
    n = len(scored)
    duration = end - (times[0] if times else 0.0)
    true_b = boundaries(truth)
    out: dict[str, Any] = {
        "n_frames": len(times),
        "n_scored_frames": n,
        "duration_s": duration,
        "tolerance_s": tolerance,
        "truth": {
            "segments": len(truth),
            "switches_per_minute": len(true_b) * 60.0 / duration if duration > 0 else 0.0,
        },
    }
    for name, seq in (("raw", raw), ("smoothed", smoothed)):
        b = match_boundaries(true_b, boundaries(runs_to_segments(times, seq, end)), tolerance)
        out[name] = {
            "frame_accuracy": sum(seq[i] == lb for i, lb in scored) / n if n else 0.0,
            "switches_per_minute": switches_per_minute(seq, duration),
            "boundary_precision": b.precision,
            "boundary_recall": b.recall,
            "boundary_f1": b.f1,
            "boundaries_predicted": b.predicted,
            "boundaries_matched": b.matched,
            "mean_delay_s": b.mean_delay,
        }
    out["truth"]["boundaries"] = len(true_b)
    return out
