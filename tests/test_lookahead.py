"""The file look-ahead of the change gate: which frames of a window are encoded, and the
embeddings the others get. The encoder is a stand-in that maps a frame to its coarse
colour layout (a 6 x 8 grid of mean B, G, R), so it sees what a thumbnail sees and also
colour, which a grey thumbnail does not."""

from __future__ import annotations

import numpy as np
import pytest

from scenecls.video.gate import GateConfig
from scenecls.video.lookahead import LookaheadGate

H, W, FPS = 180, 320, 30.0


def embed(image_bgr: np.ndarray) -> np.ndarray:
    """(D,) float32 unit: mean colour per cell of a 6 x 8 grid, centred."""
    cells = image_bgr.reshape(6, H // 6, 8, W // 8, 3).mean(axis=(1, 3)).ravel()
    v = cells.astype(np.float64) - 100.0
    return (v / np.linalg.norm(v)).astype(np.float32)


class Encoder:
    def __init__(self, frames: list[np.ndarray]) -> None:
        self.frames = frames
        self.calls: list[list[int]] = []

    def __call__(self, positions: list[int]) -> np.ndarray:
        self.calls.append(list(positions))
        return np.stack([embed(self.frames[i]) for i in positions])


def scene(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.integers(40, 200, (6, 8, 3)).astype(np.uint8)
    return np.kron(base, np.ones((H // 6, W // 8, 1), np.uint8))


def noisy(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return np.clip(image + rng.normal(0, 1.0, image.shape), 0, 255).astype(np.uint8)


def plan_all(frames: list[np.ndarray], window: int = 31, config: GateConfig | None = None):  # type: ignore[no-untyped-def]
    """Plan ``frames`` window by window as the pipeline does; returns (embeddings,
    encoded flags, the gate)."""
    gate = LookaheadGate(config)
    rows, flags = [], []
    for start in range(0, len(frames), window):
        part = frames[start : start + window]
        times = [(start + i) / FPS for i in range(len(part))]
        enc = Encoder(part)
        e, f = gate.plan(part, times, enc)
        rows.append(e)
        flags.append(f)
    return np.concatenate(rows), np.concatenate(flags), gate


def own(frames: list[np.ndarray]) -> np.ndarray:
    return np.stack([embed(f) for f in frames])


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1)


def test_a_still_scene_is_encoded_once_per_max_reuse() -> None:
    rng = np.random.default_rng(0)
    base = scene(1)
    frames = [noisy(base, rng) for _ in range(120)]
    embs, encoded, gate = plan_all(frames, window=60)  # 2 s windows, as the pipeline's
    # the first frame, then one a second: at max_reuse and at the end of each window
    assert np.flatnonzero(encoded).tolist() == [0, 30, 59, 89, 119]
    assert cosines(embs, own(frames)).min() > 0.9999
    assert gate.frames == 120 and gate.encoded == 5 and gate.seconds > 0


def test_a_hard_cut_is_followed_on_its_frame() -> None:
    rng = np.random.default_rng(0)
    a, b = scene(1), scene(2)
    frames = [noisy(a if i < 40 else b, rng) for i in range(93)]
    embs, encoded, _ = plan_all(frames)
    truth = own(frames)
    assert cosines(embs[:40], truth[:40]).min() > 0.999
    assert cosines(embs[40:], truth[40:]).min() > 0.999  # from the cut's own frame on
    assert encoded.sum() <= 12


def test_an_object_that_comes_and_goes_between_two_encodes_is_caught() -> None:
    rng = np.random.default_rng(0)
    base = scene(1)
    frames = []
    for i in range(62):
        image = noisy(base, rng)
        if 40 <= i < 46:  # a pizza set down and taken away again, 5 % of the frame
            image[10:50, 20:80] = (20, 60, 230)
        frames.append(image)
    embs, encoded, _ = plan_all(frames)
    c = cosines(embs, own(frames))
    assert c.min() > 0.999, np.argsort(c)[:5]
    assert encoded[40:46].any()


def test_a_colour_change_the_grey_thumbnail_cannot_see_is_caught_at_the_next_encode() -> None:
    """Two colours of the same grey level: the thumbnail stays the same, the embedding
    does not. The window ends with an encode, its ends disagree, and bisection finds it."""
    base = np.full((H, W, 3), 120, np.uint8)
    grey_of = np.array([0.114, 0.587, 0.299])
    red = np.array([60.0, 100.0, 0.0])
    red[2] = (120 - red[:2] @ grey_of[:2]) / grey_of[2]  # same luma as grey 120
    frames = []
    for i in range(31):
        image = base.copy()
        if i >= 12:
            image[:, : W // 2] = np.round(red).astype(np.uint8)
        frames.append(image)
    config = GateConfig()
    gate = LookaheadGate(config)
    enc = Encoder(frames)
    embs, _ = gate.plan(frames, [i / FPS for i in range(31)], enc)
    c = cosines(embs, own(frames))
    assert c.min() > 0.999, np.argsort(c)[:5]
    assert len(enc.calls) > 2  # the ends disagreed: split level by level


def test_a_fade_and_a_slow_ramp_stay_within_the_bars() -> None:
    rng = np.random.default_rng(0)
    base = scene(3).astype(np.float64)
    fade = [noisy((base * (1 - min(1.0, i / 15))).astype(np.uint8), rng) for i in range(31)]
    ramp = [noisy(np.clip(base + 0.2 * i, 0, 255).astype(np.uint8), rng) for i in range(93)]
    for frames in (fade, ramp):
        embs, encoded, _ = plan_all(frames)
        c = cosines(embs, own(frames))
        assert np.percentile(c, 1) >= 0.995 and c.min() >= 0.98
        assert np.diff(np.flatnonzero(encoded)).max() <= FPS  # within max_reuse
    # the last (black) frame of the fade has its own embedding
    embs, _, _ = plan_all(fade)
    assert cosines(embs[15:], own(fade)[15:]).min() > 0.999


def test_encoded_frames_are_never_more_than_max_reuse_apart() -> None:
    rng = np.random.default_rng(0)
    base = scene(1)
    frames = [noisy(base, rng) for _ in range(200)]
    for max_reuse in (0.5, 1.0):
        _, encoded, _ = plan_all(frames, window=int(max_reuse * FPS) + 1,
                                 config=GateConfig(max_reuse=max_reuse))  # fmt: skip
        times = np.flatnonzero(encoded) / FPS
        assert np.diff(times).max() <= max_reuse + 1e-6


@pytest.mark.parametrize("config", [GateConfig(change_threshold=0), GateConfig(max_reuse=0)])
def test_gate_off_encodes_every_frame(config: GateConfig) -> None:
    frames = [scene(1)] * 10
    embs, encoded, gate = plan_all(frames, window=4, config=config)
    assert encoded.all() and gate.encoded == 10 and embs.shape == (10, 144)


def test_reset_and_a_jump_back_in_time_start_with_an_encode() -> None:
    frames = [scene(1)] * 5
    gate = LookaheadGate()
    gate.plan(frames, [0.0, 0.1, 0.2, 0.3, 0.4], Encoder(frames))
    _, encoded = gate.plan(frames, [0.0, 0.1, 0.2, 0.3, 0.4], Encoder(frames))  # seek back
    assert encoded[0]
    gate.reset()
    _, encoded = gate.plan(frames, [0.5, 0.6, 0.7, 0.8, 0.9], Encoder(frames))
    assert encoded[0]
    _, encoded = gate.plan([], [], Encoder([]))
    assert len(encoded) == 0


def test_a_window_goes_to_the_encoder_in_a_few_batches_not_frame_by_frame() -> None:
    """8 s of a scene that keeps moving: every run's far end is encoded in one call, and
    the checks between them go level by level over the whole window, so the encoder is
    called a handful of times with several frames each, never once per encode."""
    rng = np.random.default_rng(5)
    frames = []
    for i in range(240):  # 8 s at 30 fps: a bright block crossing a still scene
        image = scene(4)
        x = int(i * (W - 40) / 240)
        image[60:120, x : x + 40] = 250
        frames.append(noisy(image, rng))
    gate = LookaheadGate(GateConfig())
    enc = Encoder(frames)
    embs, encoded = gate.plan(frames, [i / FPS for i in range(240)], enc)
    assert cosines(embs, own(frames)).min() > 0.99
    sizes = [len(c) for c in enc.calls]
    assert sum(sizes) == int(encoded.sum())
    assert sizes[0] >= 8  # the far ends of 8 s of runs (at least one a second), together
    assert len(sizes) <= 6, sizes  # the ends, then one call per level of checks
    assert sum(s == 1 for s in sizes) <= 1, sizes


def test_batched_planning_gives_the_same_frames_and_embeddings_whatever_the_window() -> None:
    """Planning 8 s at once or 2 s at a time finds the same changes: every frame keeps
    its own embedding's direction, and the longer window does not encode more."""
    rng = np.random.default_rng(6)
    frames = [noisy(scene(7 if i < 100 else 8), rng) for i in range(240)]
    e8, f8, _ = plan_all(frames, window=240)
    e2, f2, _ = plan_all(frames, window=60)
    assert cosines(e8, own(frames)).min() > 0.999 and cosines(e2, own(frames)).min() > 0.999
    assert f8.sum() <= f2.sum()
    assert f8[100] and f2[100]  # the cut is encoded either way
