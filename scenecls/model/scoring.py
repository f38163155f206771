"""Zero-shot scoring: logits = logit_scale x cosine similarity, softmax, top-k, unknown."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import UsageError
from ..types import Classification, Scores
from .labels import UNKNOWN


def similarities(image_embs: np.ndarray, text_embs: np.ndarray) -> np.ndarray:
    """Cosine similarities (N, K) float32 of unit rows (N, D) and (K, D)."""
    if image_embs.ndim != 2 or text_embs.ndim != 2 or image_embs.shape[1] != text_embs.shape[1]:
        raise ValueError(
            f"embedding shapes do not match: images {image_embs.shape}, texts {text_embs.shape}"
        )
    # in float64, rounded once: a row's result does not depend on the batch it is in, so
    # relabelling stored embeddings reproduces the run's scores exactly
    wide = np.asarray(image_embs, np.float64) @ np.asarray(text_embs, np.float64).T
    return wide.astype(np.float32)


def mix_rows(left: np.ndarray, right: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """``(M, D)`` float32 unit rows ``weight`` of the way from ``left`` to ``right``
    (``(M, D)`` or ``(D,)`` unit rows of any float type; ``weight``: ``(M,)``).

    Computed in float64 row by row, so a row's result does not depend on how many rows
    are mixed at once: the pipeline and ``scenecls relabel`` give the same bits."""
    w = np.asarray(weight, np.float64).reshape(-1, 1)
    rows = (1.0 - w) * np.asarray(left, np.float64) + w * np.asarray(right, np.float64)
    norms = np.sqrt((rows * rows).sum(axis=1, keepdims=True))
    return (rows / np.maximum(norms, 1e-12)).astype(np.float32)


def blended_similarities(
    anchors: np.ndarray,
    text_embs: np.ndarray,
    left: np.ndarray,
    right: np.ndarray,
    weight: np.ndarray,
) -> np.ndarray:
    """Cosine similarities ``(N, K)`` float32 with the ``(K, D)`` unit text rows of N
    frames whose embeddings are made from ``(A, D)`` ``anchors`` (encoded frames):
    frame ``i``'s is ``anchors[left[i]]`` when ``left[i] == right[i]``, else the unit
    blend ``normalise((1 - w) * anchors[left[i]] + w * anchors[right[i]])`` with
    ``w = weight[i]`` (the change gate's reuse and interpolation).

    Only the anchors are multiplied with the texts (an hour of video has a few thousand
    anchors for a hundred thousand frames); a blend's similarities follow from its two
    anchors' and their dot product, in float64, rounded once. The pipeline and
    ``scenecls relabel`` both score through here, so they agree to the last bit."""
    a64 = np.asarray(anchors, np.float64)
    sims = a64 @ np.asarray(text_embs, np.float64).T
    out = sims[left]
    blend = np.flatnonzero(left != right)
    if len(blend):
        lo, hi = left[blend], right[blend]
        pairs, where = np.unique(np.stack([lo, hi], axis=1), axis=0, return_inverse=True)
        first, second = a64[pairs[:, 0]], a64[pairs[:, 1]]
        dots = np.stack(
            [
                (first * second).sum(axis=1),
                (first * first).sum(axis=1),
                (second * second).sum(axis=1),
            ],
            axis=1,
        )[where.reshape(-1)]
        w = np.asarray(weight, np.float64)[blend]
        v = 1.0 - w
        norms = np.sqrt(v * v * dots[:, 1] + w * w * dots[:, 2] + 2.0 * v * w * dots[:, 0])
        mixed = v[:, None] * sims[lo] + w[:, None] * sims[hi]
        out[blend] = mixed / np.maximum(norms, 1e-12)[:, None]
    return out.astype(np.float32)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of (N, K) logits, float32, numerically stable."""
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32, copy=False)


def score(
    image_embs: np.ndarray, text_embs: np.ndarray, labels: Sequence[str], logit_scale: float
) -> list[Scores]:
    """One :class:`Scores` per image: (N, D) and (K, D) unit rows, K labels."""
    if len(labels) != text_embs.shape[0]:
        raise ValueError(f"{len(labels)} labels but {text_embs.shape[0]} text embeddings")
    sims = similarities(image_embs, text_embs)
    probs = softmax(sims * np.float32(logit_scale))
    names = tuple(labels)
    return [Scores(names, sims[i], probs[i]) for i in range(sims.shape[0])]


def classify_scores(scores: Scores, top_k: int = 5, min_confidence: float = 0.0) -> Classification:
    """The best label, or ``unknown`` when its probability is below ``min_confidence``
    or below the probability of none of the labels (``1 - sum``: a taught set gives a
    frame far from every example all-zero probabilities)."""
    check_min_confidence(min_confidence)
    if top_k < 1:
        raise UsageError(f"--top-k must be at least 1, not {top_k}")
    top = scores.top(top_k)
    best = top[0]
    rest = 1.0 - float(scores.probabilities.sum(dtype=np.float64))
    sure = best.probability >= min_confidence and best.probability >= rest
    label = best.label if sure else UNKNOWN
    return Classification(label, best.probability, tuple(top), scores)


def check_min_confidence(value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise UsageError(f"--min-confidence is a probability between 0 and 1, not {value}")
