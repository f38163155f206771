"""Result types shared between stages. Frozen; shapes validated at construction."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Candidate:
    """One label's score for one image: softmax probability and cosine similarity."""

    label: str
    probability: float
    similarity: float

    def to_json(self) -> dict[str, object]:
        return {"label": self.label, "probability": self.probability, "similarity": self.similarity}


@dataclass(frozen=True, eq=False)
class Scores:
    """Per-label scores of one image.

    ``similarities`` and ``probabilities`` are (K,) float32 in the order of ``labels``.
    """

    labels: tuple[str, ...]
    similarities: np.ndarray
    probabilities: np.ndarray

    def __post_init__(self) -> None:
        k = len(self.labels)
        for name in ("similarities", "probabilities"):
            arr = getattr(self, name)
            if not isinstance(arr, np.ndarray) or arr.shape != (k,):
                shape = getattr(arr, "shape", type(arr).__name__)
                raise ValueError(f"Scores.{name} must have shape ({k},), got {shape}")

    def top(self, k: int | None = None) -> list[Candidate]:
        """The ``k`` best labels (all when None), highest probability first."""
        order = np.argsort(-self.probabilities, kind="stable")
        if k is not None:
            order = order[: max(0, k)]
        return [
            Candidate(self.labels[i], float(self.probabilities[i]), float(self.similarities[i]))
            for i in order
        ]


@dataclass(frozen=True, eq=False)
class Classification:
    """The verdict for one image: ``label`` is the best label, or ``"unknown"`` when its
    probability is below the confidence threshold; ``top`` holds the top-k candidates."""

    label: str
    confidence: float
    top: tuple[Candidate, ...]
    scores: Scores

    def to_json(self) -> dict[str, object]:
        return {
            "label": self.label,
            "confidence": self.confidence,
            "predictions": [c.to_json() for c in self.top],
        }


@dataclass(frozen=True, eq=False)
class Frame:
    """One decoded frame travelling from a source to the pipeline.

    ``image_bgr``: HxWx3 uint8, BGR (OpenCV order). ``index``: 0-based position in the
    source (counting every decoded frame, dropped or not). ``timestamp``: seconds;
    presentation time for files (relative to the stream start), stream clock for live
    sources. ``captured_at``: ``time.monotonic()`` when the frame was read, for latency.
    ``gap_before``: seconds of input lost just before this frame (a live stream that
    dropped and was reopened); 0 normally.
    """

    image_bgr: np.ndarray
    index: int
    timestamp: float
    captured_at: float = 0.0
    gap_before: float = 0.0

    def __post_init__(self) -> None:
        img = self.image_bgr
        if (
            not isinstance(img, np.ndarray)
            or img.ndim != 3
            or img.shape[2] != 3
            or img.dtype != np.uint8
        ):
            shape = getattr(img, "shape", type(img).__name__)
            raise ValueError(f"Frame.image_bgr must be HxWx3 uint8 BGR, got {shape}")


@dataclass(frozen=True)
class Segment:
    """A stretch of time with one smoothed label: [start, end) in seconds and the mean
    smoothed probability of that label over the segment's analysed frames."""

    label: str
    start: float
    end: float
    confidence: float

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ValueError(f"Segment ends before it starts: {self.start} > {self.end}")

    @property
    def duration(self) -> float:
        return self.end - self.start

    def to_json(self) -> dict[str, object]:
        return {
            "label": self.label,
            "start": round(self.start, 6),
            "end": round(self.end, 6),
            "confidence": round(self.confidence, 6),
        }


@dataclass(frozen=True, eq=False)
class Prediction:
    """The smoothed verdict for one analysed frame.

    ``label``: smoothed label or ``"unknown"``; ``confidence``: its smoothed probability.
    ``raw``: the frame's own (unsmoothed) classification. ``probabilities``: smoothed,
    (K,) float32 in label order. ``segment_started``: this frame opened a new segment;
    ``closed``: the segment that this frame ended, if any. ``encoded``: the image encoder
    ran on this frame (False: the change gate found it unchanged and it reused, or
    interpolated, the embeddings of encoded frames).
    """

    time: float
    label: str
    confidence: float
    raw: Classification
    probabilities: np.ndarray
    segment_started: bool = False
    closed: Segment | None = None
    encoded: bool = True

    @property
    def raw_label(self) -> str:
        return self.raw.label
