"""Smoothing, table-driven with hand-made score sequences; times in seconds."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest

from scenecls.errors import UsageError
from scenecls.types import Scores
from scenecls.video.smoothing import SegmentTracker, Smoother, SmoothingConfig, count_switches

LABELS = ("a", "b", "c")


def scores(p: list[float]) -> Scores:
    return Scores(LABELS, np.zeros(3, np.float32), np.asarray(p, np.float32))


A, B, C = [0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8]
AMBIG = [0.45, 0.42, 0.13]  # a barely ahead of b


def run(seq: list[list[float]], dt: float = 0.1, **cfg) -> list[str]:  # type: ignore[no-untyped-def]
    sm = Smoother(SmoothingConfig(**cfg))
    return [sm.update(scores(p), i * dt).label for i, p in enumerate(seq)]


@pytest.mark.parametrize(
    "name, seq, cfg, expected",
    [
        ("none follows every frame", [A, B, A, C], {"mode": "none"}, "abac"),
        (
            "hysteresis ignores a one-frame blip",
            [A, A, B, A, A],
            {"mode": "hysteresis", "min_dwell": 0.25},
            "aaaaa",
        ),
        (
            "hysteresis switches after min_dwell",
            [A, A, B, B, B, B, B],
            {"mode": "hysteresis", "min_dwell": 0.3},
            "aaaaabb",
        ),
        (
            "min_dwell 0 switches at once",
            [A, B, B],
            {"mode": "hysteresis", "min_dwell": 0.0},
            "abb",
        ),
        (
            "margin blocks a narrow lead",
            [B, AMBIG, AMBIG, AMBIG, AMBIG],
            {"mode": "hysteresis", "min_dwell": 0.0, "switch_margin": 0.5},
            "bbbbb",
        ),
        (
            "interrupted candidate restarts its dwell",
            [A, B, B, A, B, B, B],
            {"mode": "hysteresis", "min_dwell": 0.2},
            "aaaaaab",
        ),
        (
            "unknown below min_confidence",
            [A, [0.4, 0.3, 0.3], [0.4, 0.3, 0.3]],
            {"mode": "none", "min_confidence": 0.5},
            "a??",
        ),
    ],
)
def test_smoothing_table(name: str, seq, cfg, expected: str) -> None:  # type: ignore[no-untyped-def]
    got = "".join("?" if lb == "unknown" else lb for lb in run(seq, **cfg))
    assert got == expected, name


def test_ema_half_life_is_in_seconds() -> None:
    for dt in (0.01, 0.1, 0.5):  # same result whatever the frame rate
        sm = Smoother(SmoothingConfig(mode="ema", half_life=1.0))
        sm.update(scores([1.0, 0.0, 0.0]), 0.0)
        n = round(1.0 / dt)
        for i in range(1, n + 1):
            pred = sm.update(scores([0.0, 1.0, 0.0]), i * dt)
        assert pred.probabilities[0] == pytest.approx(0.5, abs=1e-4)
        assert pred.probabilities[1] == pytest.approx(0.5, abs=1e-4)


def test_variable_frame_rate_uses_real_gaps() -> None:
    sm = Smoother(SmoothingConfig(mode="ema", half_life=1.0))
    sm.update(scores([1.0, 0.0, 0.0]), 0.0)
    pred = sm.update(scores([0.0, 1.0, 0.0]), 2.0)  # one frame, two half-lives later
    assert pred.probabilities[0] == pytest.approx(0.25, abs=1e-5)


def noisy_sequence(
    rng: np.random.Generator, truth: list[str], flip: float = 0.25
) -> list[list[float]]:
    """Per frame, the true label wins most of the time; otherwise a random other label."""
    out = []
    for lb in truth:
        winner = LABELS.index(lb)
        if rng.random() < flip:
            winner = int(rng.choice([i for i in range(3) if i != winner]))
        p = rng.dirichlet([1, 1, 1]) * 0.3
        p[winner] += 0.7
        out.append(list(p))
    return out


def test_fewer_switches_on_noise_and_true_changes_found() -> None:
    mode = "ema+hysteresis"  # the default; raw hysteresis alone cannot ride out 25 % noise
    rng = np.random.default_rng(7)
    dt, dwell = 1 / 30, 0.5
    truth = ["a"] * 150 + ["b"] * 150 + ["c"] * 150  # changes at 5 s and 10 s
    seq = noisy_sequence(rng, truth)
    sm = Smoother(SmoothingConfig(mode=mode, min_dwell=dwell, half_life=0.1, switch_margin=0.0))
    tracker = SegmentTracker()
    raw, smooth = [], []
    for i, p in enumerate(seq):
        pred = tracker.track(sm.update(scores(p), i * dt))
        raw.append(pred.raw_label)
        smooth.append(pred.label)
    tracker.close(len(seq) * dt)
    assert count_switches(smooth) < count_switches(raw) / 10
    assert [s.label for s in tracker.segments] == ["a", "b", "c"]
    lag = 0.1  # the EMA's crossover delay on a clean step is at most one half-life
    for seg, true_start in zip(tracker.segments[1:], (5.0, 10.0), strict=True):
        assert true_start <= seg.start <= true_start + dwell + dt + lag + 1e-9


def test_hysteresis_exact_bound_on_clean_change() -> None:
    dt, dwell = 0.04, 0.3
    seq = [A] * 25 + [B] * 25
    sm = Smoother(SmoothingConfig(mode="hysteresis", min_dwell=dwell))
    labels = [sm.update(scores(p), i * dt).label for i, p in enumerate(seq)]
    first_b = labels.index("b") * dt
    assert 1.0 <= first_b <= 1.0 + dwell + dt


def test_segment_tracker_is_contiguous_and_closes_at_end() -> None:
    tr = SegmentTracker()
    for t, lb in [(0.0, "a"), (0.5, "a"), (1.0, "b"), (1.5, "a")]:
        tr.update(t, lb, 0.5)
    last = tr.close(2.0)
    segs = tr.segments
    assert [(s.label, s.start, s.end) for s in segs] == [
        ("a", 0.0, 1.0),
        ("b", 1.0, 1.5),
        ("a", 1.5, 2.0),
    ]
    assert last is segs[-1]
    assert all(x.end == y.start for x, y in pairwise(segs))


def test_segment_confidence_is_mean_of_its_frames() -> None:
    tr = SegmentTracker()
    tr.update(0.0, "a", 0.2)
    tr.update(1.0, "a", 0.6)
    (seg,) = [tr.close(2.0)]
    assert seg.confidence == pytest.approx(0.4)


@pytest.mark.parametrize(
    "cfg", [{"mode": "median"}, {"half_life": 0}, {"min_dwell": -1}, {"switch_margin": 1.5}]
)
def test_bad_parameters(cfg) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(UsageError):
        SmoothingConfig(**cfg)


@pytest.mark.parametrize("k", [3, 40])
@pytest.mark.parametrize("mode", ["ema+hysteresis", "ema", "hysteresis", "none"])
def test_run_on_arrays_equals_update_frame_by_frame(k: int, mode: str) -> None:
    """relabel smooths whole arrays; a run smooths frame by frame: the same bits."""
    rng = np.random.default_rng(k)
    logits = np.cumsum(rng.normal(0, 0.8, (400, k)), axis=0)
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs = (probs / probs.sum(1, keepdims=True)).astype(np.float32)
    times = np.cumsum(rng.uniform(0.01, 0.1, 400))
    cfg = SmoothingConfig(mode=mode, min_confidence=0.3, min_dwell=0.2)
    names = tuple(f"l{i}" for i in range(k))
    one = Smoother(cfg)
    preds = [
        one.update(Scores(names, np.zeros(k, np.float32), p), t)
        for p, t in zip(probs, times, strict=True)
    ]
    labels, confidences = Smoother(cfg).run(probs, times)
    assert [p.label for p in preds] == [names[i] if i >= 0 else "unknown" for i in labels]
    assert [p.confidence for p in preds] == confidences.tolist()
    assert len(set(labels.tolist())) > 2  # the sequence does switch
