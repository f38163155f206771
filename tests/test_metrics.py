"""Metrics against hand-computed examples and against scikit-learn on random data."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import confusion_matrix as sk_confusion
from sklearn.metrics import precision_recall_fscore_support, top_k_accuracy_score

from scenecls.evaluation.metrics import (
    boundaries,
    classification_report,
    label_at,
    match_boundaries,
    runs_to_segments,
    switches_per_minute,
    video_report,
)
from scenecls.types import Segment

LABELS = ["cat", "dog", "bird"]


def test_hand_computed_example() -> None:
    truth = ["cat", "cat", "cat", "dog", "dog", "bird"]
    pred = ["cat", "cat", "dog", "dog", "unknown", "cat"]
    ranked = [
        ["cat", "dog", "bird"],
        ["cat", "bird", "dog"],
        ["dog", "cat", "bird"],
        ["dog", "cat", "bird"],
        ["dog", "bird", "cat"],
        ["cat", "dog", "bird"],
    ]
    r = classification_report(truth, pred, ranked, LABELS)
    assert r["n_images"] == 6
    assert r["accuracy"] == pytest.approx(3 / 6)
    # Recall@1 uses the ranking, not the unknown-thresholded label: 4 of 6 rank truth first
    assert r["recall_at_k"] == {"1": pytest.approx(4 / 6), "3": 1.0}
    cat = r["per_class"]["cat"]  # TP 2, predicted cat 3, true cat 3
    assert (cat["precision"], cat["recall"], cat["support"]) == (
        pytest.approx(2 / 3),
        pytest.approx(2 / 3),
        3,
    )
    dog = r["per_class"]["dog"]  # TP 1, predicted dog 2, true dog 2
    assert dog["precision"] == pytest.approx(0.5) and dog["recall"] == pytest.approx(0.5)
    bird = r["per_class"]["bird"]
    assert bird == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert r["micro"]["precision"] == pytest.approx(3 / 5)  # unknown is not a prediction of a label
    assert r["micro"]["recall"] == pytest.approx(3 / 6)
    assert r["confusion"]["columns"] == ["cat", "dog", "bird", "unknown"]
    assert r["confusion"]["matrix"] == [[2, 1, 0, 0], [0, 1, 0, 1], [1, 0, 0, 0]]
    assert r["unknown_rate"] == pytest.approx(1 / 6)
    top = r["worst_confusions"][0]
    assert top["count"] == 1 and {c["predicted"] for c in r["worst_confusions"]} == {
        "dog",
        "unknown",
        "cat",
    }


@pytest.mark.parametrize("seed", range(5))
def test_matches_scikit_learn_on_random_data(seed: int) -> None:
    rng = np.random.default_rng(seed)
    labels = [f"l{i}" for i in range(7)]
    n = 300
    truth = [labels[i] for i in rng.integers(0, 7, n)]
    logits = rng.standard_normal((n, 7))
    for i, t in enumerate(truth):
        logits[i, labels.index(t)] += 1.0  # better than chance
    order = np.argsort(-logits, axis=1)
    ranked = [[labels[j] for j in row] for row in order]
    pred = [r[0] if rng.random() > 0.1 else "unknown" for r in ranked]
    r = classification_report(truth, pred, ranked, labels)

    p, rec, f, s = precision_recall_fscore_support(truth, pred, labels=labels, zero_division=0)
    for i, lb in enumerate(labels):
        c = r["per_class"][lb]
        assert c["precision"] == pytest.approx(p[i]) and c["recall"] == pytest.approx(rec[i])
        assert c["f1"] == pytest.approx(f[i]) and c["support"] == s[i]
    for avg in ("macro", "micro"):
        p, rec, f, _ = precision_recall_fscore_support(
            truth, pred, labels=labels, average=avg, zero_division=0
        )
        assert (r[avg]["precision"], r[avg]["recall"], r[avg]["f1"]) == (
            pytest.approx(p),
            pytest.approx(rec),
            pytest.approx(f),
        )
    sk = sk_confusion(truth, pred, labels=[*labels, "unknown"])
    assert np.array_equal(np.array(r["confusion"]["matrix"]), sk[: len(labels)])
    y = [labels.index(t) for t in truth]
    for k in (1, 3, 5):
        assert r["recall_at_k"][str(k)] == pytest.approx(
            top_k_accuracy_score(y, logits, k=k, labels=range(7))
        )
    assert r["accuracy"] == pytest.approx(
        np.mean([t == q for t, q in zip(truth, pred, strict=True)])
    )


def test_boundary_matching_one_to_one_within_tolerance() -> None:
    b = match_boundaries([10.0, 20.0], [10.4, 10.6, 25.0], tolerance=1.0)
    assert (b.matched, b.predicted, b.true) == (1, 3, 2)
    assert b.precision == pytest.approx(1 / 3) and b.recall == pytest.approx(0.5)
    assert b.f1 == pytest.approx(2 * (1 / 3) * 0.5 / (1 / 3 + 0.5))
    assert b.mean_delay == pytest.approx(0.4)
    assert match_boundaries([], [], 1.0).f1 == 0.0


def test_segments_helpers() -> None:
    segs = [Segment("a", 0, 5, 1), Segment("b", 5, 9, 1), Segment("a", 9, 12, 1)]
    assert boundaries(segs) == [5, 9]
    assert label_at(segs, 4.99) == "a" and label_at(segs, 5) == "b" and label_at(segs, 12) is None
    assert switches_per_minute(["a", "a", "b", "a"], 30.0) == pytest.approx(4.0)
    got = runs_to_segments([0, 1, 2, 3], ["a", "a", "b", "b"], end=4)
    assert [(s.label, s.start, s.end) for s in got] == [("a", 0, 2), ("b", 2, 4)]


def test_video_report_hand_example() -> None:
    truth = [Segment("a", 0, 5, 1), Segment("b", 5, 10, 1)]
    times = [float(t) for t in range(10)]
    raw = ["a", "b", "a", "a", "a", "a", "b", "b", "b", "b"]
    smooth = ["a"] * 6 + ["b"] * 4
    r = video_report(times, raw, smooth, truth, end=10.0, tolerance=1.0)
    assert r["raw"]["frame_accuracy"] == pytest.approx(8 / 10)
    assert r["smoothed"]["frame_accuracy"] == pytest.approx(9 / 10)
    assert r["truth"]["switches_per_minute"] == pytest.approx(6.0)
    assert r["raw"]["switches_per_minute"] == pytest.approx(3 * 6.0)
    assert r["smoothed"]["boundary_f1"] == 1.0 and r["smoothed"]["mean_delay_s"] == pytest.approx(
        1.0
    )
    assert r["raw"]["boundary_recall"] == 1.0 and r["raw"]["boundary_precision"] == pytest.approx(
        1 / 3
    )


def test_video_frame_confusion_keeps_predictions_outside_the_truth() -> None:
    """A predicted label that never occurs in the truth is its own column, not 'unknown'."""
    from scenecls.evaluation.evaluate import VideoEvaluation, frame_confusion

    truth = [Segment("a", 0, 2, 1), Segment("b", 2, 4, 1)]
    ev = VideoEvaluation({}, [0.5, 1.5, 2.5, 3.5], [], ["a", "c", "b", "unknown"], truth, 4.0)
    rows, cols, m = frame_confusion(ev, ["a", "b", "c"])
    assert rows == ["a", "b"] and cols == ["a", "b", "c", "unknown"]
    assert m.tolist() == [[1, 0, 1, 0], [0, 1, 0, 1]]
