"""A live source faster than the encoder: latency stays bounded, drops are counted."""

from __future__ import annotations

import time

import numpy as np
import pytest

import scenecls
from scenecls.video.pipeline import Pipeline
from scenecls.video.sources import SimulatedLiveSource

ENCODER_S = 0.05  # 20 frames/s: slower than the 30 frames/s camera


class _SlowEncoder:
    def __init__(self, real) -> None:  # type: ignore[no-untyped-def]
        self.real = real

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        time.sleep(ENCODER_S * len(pixels))
        return self.real(pixels)


def _run_live(bundle, frames, seconds: float):  # type: ignore[no-untyped-def]
    model = scenecls.load_model(bundle, device="cpu")
    model.image_encoder = _SlowEncoder(model.image_encoder)
    source = SimulatedLiveSource(frames[:3], fps=30, duration=seconds)
    return Pipeline(model, "room,park", source).run()


@pytest.mark.parametrize(
    "seconds", [pytest.param(4.0, id="4s"), pytest.param(60.0, id="60s", marks=pytest.mark.slow)]
)
def test_latency_bounded_without_backlog(tiny_bundle, real_frames, seconds: float) -> None:  # type: ignore[no-untyped-def]
    stats = _run_live(tiny_bundle, real_frames, seconds)
    lat = np.array(stats.latencies)
    # the encoder keeps up with about 20 of 30 frames/s: the rest are dropped, not queued
    assert stats.frames_read == pytest.approx(30 * seconds, rel=0.05)
    assert stats.frames_dropped > 0.2 * stats.frames_read
    assert stats.frames_analysed + stats.frames_dropped == stats.frames_read
    assert np.percentile(lat, 95) <= 2 * ENCODER_S + 0.03
    third = len(lat) // 3
    assert lat[-third:].mean() <= lat[:third].mean() + 0.01  # no backlog growth
    assert "dropped" in stats.summary() and "p95" in stats.summary()
