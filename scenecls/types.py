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
