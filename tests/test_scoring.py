"""Scoring: logit scale x cosine, softmax, top-k and the unknown threshold."""

from __future__ import annotations

import numpy as np
import pytest

from scenecls.errors import UsageError
from scenecls.model.scoring import classify_scores, score, softmax
from scenecls.types import Scores


def _unit(v: list[float]) -> np.ndarray:
    a = np.asarray(v, np.float32)
    return a / np.linalg.norm(a)


def test_probabilities_are_softmax_of_scaled_cosines() -> None:
    img = np.stack([_unit([1, 0, 0])])
    txt = np.stack([_unit([1, 0, 0]), _unit([1, 1, 0]), _unit([0, 0, 1])])
    (s,) = score(img, txt, ["a", "b", "c"], logit_scale=100.0)
    assert np.allclose(s.similarities, [1.0, np.sqrt(0.5), 0.0], atol=1e-6)
    logits = 100 * s.similarities.astype(np.float64)
    expected = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    assert np.allclose(s.probabilities, expected, rtol=1e-5)
    assert s.probabilities.sum() == pytest.approx(1.0, abs=1e-6)


def test_softmax_is_stable_for_large_logits() -> None:
    p = softmax(np.array([[1000.0, 999.0, -1000.0]], np.float32))
    assert np.isfinite(p).all() and p[0, 0] > p[0, 1] > p[0, 2]


@pytest.mark.parametrize(
    "probs, min_conf, top_k, label, top_labels",
    [
        ([0.7, 0.2, 0.1], 0.0, 3, "a", ["a", "b", "c"]),
        ([0.7, 0.2, 0.1], 0.5, 2, "a", ["a", "b"]),
        ([0.4, 0.35, 0.25], 0.5, 1, "unknown", ["a"]),
        ([0.1, 0.3, 0.6], 0.6, 5, "c", ["c", "b", "a"]),  # threshold is inclusive
        ([0.5, 0.5, 0.0], 0.0, 2, "a", ["a", "b"]),  # ties keep label order
    ],
)
def test_classify_table(probs, min_conf, top_k, label, top_labels) -> None:
    s = Scores(("a", "b", "c"), np.zeros(3, np.float32), np.asarray(probs, np.float32))
    c = classify_scores(s, top_k=top_k, min_confidence=min_conf)
    assert c.label == label
    assert [t.label for t in c.top] == top_labels
    assert c.confidence == pytest.approx(max(probs))


@pytest.mark.parametrize("kw", [{"top_k": 0}, {"min_confidence": 1.5}, {"min_confidence": -0.1}])
def test_bad_parameters(kw) -> None:
    s = Scores(("a",), np.zeros(1, np.float32), np.ones(1, np.float32))
    with pytest.raises(UsageError):
        classify_scores(s, **kw)


def test_scores_validate_shapes() -> None:
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        Scores(("a", "b"), np.zeros(3, np.float32), np.zeros(2, np.float32))
