"""The change gate (scenecls.video.gate) on synthetic frames.

Frames are H x W x 3 uint8 BGR: a textured still background from a seeded RNG plus
per-frame sensor noise (normal, sigma 1 grey level), at 30 frames a second unless said
otherwise. Every test asserts which frames the gate encodes, by index.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import cv2
import numpy as np
import pytest

from scenecls.errors import UsageError
from scenecls.video.gate import ChangeGate, GateConfig, thumbnail, thumbnail_size

FPS = 30.0
H, W = 360, 640

# seven-segment glyphs: segment -> (x0, y0, x1, y1) as fractions of the display box
SEGMENTS = {
    "a": (0.15, 0.0, 0.85, 0.12),
    "g": (0.15, 0.44, 0.85, 0.56),
    "d": (0.15, 0.88, 0.85, 1.0),
    "f": (0.0, 0.06, 0.2, 0.5),
    "b": (0.8, 0.06, 1.0, 0.5),
    "e": (0.0, 0.5, 0.2, 0.94),
    "c": (0.8, 0.5, 1.0, 0.94),
}
DIGITS = {
    "0": "abcdef",
    "1": "bc",
    "2": "abged",
    "3": "abgcd",
    "4": "fgbc",
    "5": "afgcd",
    "6": "afgedc",
    "7": "abc",
    "8": "abcdefg",
    "9": "abcdfg",
}

_NOISE: dict[tuple[int, int], list[tuple[np.ndarray, np.ndarray]]] = {}


def background(height: int = H, width: int = W, seed: int = 0) -> np.ndarray:
    """A still scene: coloured blobs (a 16 x 9 grid of random colours, cubic-upsampled)
    plus fine texture, grey levels kept within about 20..235 so a ramp does not clip.
    ``(height, width, 3)`` uint8 BGR."""
    rng = np.random.default_rng(seed)
    low = rng.uniform(50.0, 205.0, (9, 16, 3)).astype(np.float32)
    scene = cv2.resize(low, (width, height), interpolation=cv2.INTER_CUBIC)
    scene += rng.normal(0.0, 12.0, (height, width, 3)).astype(np.float32)
    return np.clip(scene, 20, 235).round().astype(np.uint8)


def noisy(scene: np.ndarray, index: int, offset: float = 0.0) -> np.ndarray:
    """``scene`` (uint8 BGR) brightened by ``offset`` grey levels, plus this frame's sensor
    noise (one of a few fixed fields of sigma 1, cycled), rounded to uint8 after the noise
    is added so that a fraction of a level (a slow ramp) comes through dithered."""
    key = scene.shape[:2]
    if key not in _NOISE:
        rng = np.random.default_rng(99)
        fields = [rng.normal(0.0, 1.0, (*key, 3)).astype(np.float32) for _ in range(5)]
        _NOISE[key] = [(field, field.round().astype(np.int16)) for field in fields]
    noise, rounded = _NOISE[key][index % 5]
    if offset:
        frame = np.round(scene + noise + np.float32(offset))
    else:
        frame = scene.astype(np.int16) + rounded
    return np.clip(frame, 0, 255).astype(np.uint8)


def encoded_frames(
    gate: ChangeGate, frames: Iterable[np.ndarray], fps: float = FPS, start: int = 0
) -> list[int]:
    """The indices of the frames ``gate.check()`` says to encode; frame i is at i / fps."""
    return [index for index, frame in enumerate(frames, start) if gate.check(frame, index / fps)]


def with_box(scene: np.ndarray, x: int, y: int, w: int, h: int, value: int) -> np.ndarray:
    out = scene.copy()
    out[y : y + h, x : x + w] = value
    return out


def with_display(scene: np.ndarray, x: int, y: int, w: int, h: int, digit: str) -> np.ndarray:
    """``scene`` with a dark display panel of ``w`` x ``h`` at (x, y) showing ``digit`` in
    bright seven-segment strokes."""
    out = with_box(scene, x, y, w, h, 20)
    for segment in DIGITS[digit]:
        x0, y0, x1, y1 = SEGMENTS[segment]
        out[y + round(y0 * h) : y + round(y1 * h), x + round(x0 * w) : x + round(x1 * w)] = 235
    return out


def sequence(count: int, make: Callable[[int], np.ndarray]) -> Iterable[np.ndarray]:
    return (make(index) for index in range(count))


# ---- still scenes and max_reuse -------------------------------------------------------------


def test_still_background_is_encoded_once_per_max_reuse() -> None:
    scene = background()
    gate = ChangeGate()
    encoded = encoded_frames(gate, sequence(95, lambda i: noisy(scene, i)))
    assert encoded == [0, 30, 60, 90]
    assert (gate.frames, gate.encoded) == (95, 4)
    assert gate.last_difference < 0.5
    assert gate.seconds > 0.0


def test_max_reuse_tolerates_rounding_of_timestamps() -> None:
    """0.7 - 0.2 is 0.49999999999999994 in floating point: still max_reuse=0.5 later."""
    scene = background()
    gate = ChangeGate(GateConfig(max_reuse=0.5))
    results = [gate.check(noisy(scene, i), t) for i, t in enumerate([0.2, 0.45, 0.7, 0.9])]
    assert results == [True, False, True, False]


def test_max_reuse_is_in_seconds_not_frames() -> None:
    scene = background()
    gate = ChangeGate(GateConfig(max_reuse=0.5))
    encoded = encoded_frames(gate, sequence(50, lambda i: noisy(scene, i)), fps=10.0)
    assert encoded == [0, 5, 10, 15, 20, 25, 30, 35, 40, 45]


# ---- small changes: objects and displays ----------------------------------------------------


@pytest.mark.parametrize("size", [(H, W), (1080, 1920)], ids=["360p", "1080p"])
@pytest.mark.parametrize("where", ["corner", "centre"])
def test_small_object_appearing_and_leaving_is_encoded(size: tuple[int, int], where: str) -> None:
    """An object of 5% of the frame (a dark rectangle, 0.3 x 0.1667 of the frame) appears at
    frame 10 and leaves at frame 20. 'centre' puts it across the middle grid corner."""
    height, width = size
    scene = background(height, width)
    w, h = round(0.3 * width), round(height / 6)
    x, y = (
        (width - w - 8, height - h - 8)
        if where == "corner"
        else ((width - w) // 2, (height - h) // 2)
    )
    with_object = with_box(scene, x, y, w, h, 10)

    def frame(index: int) -> np.ndarray:
        return noisy(with_object if 10 <= index < 20 else scene, index)

    assert encoded_frames(ChangeGate(), sequence(28, frame)) == [0, 10, 20]


@pytest.mark.parametrize(
    "where", [(85, 95), (315, 128), (548, 270)], ids=["cell", "grid-corner", "edge"]
)
def test_display_counter_every_change_is_caught_from_48x72(where: tuple[int, int]) -> None:
    """The smallest seven-segment display whose every digit change (a 0..9 counter) is
    encoded on the frame it happens: 48 x 72 px in a 640 x 360 frame (1.5% of it), wherever
    it is (the blocks are taken at every position, not on a fixed grid). The tightest change
    is 5 -> 6 or 8 -> 9: a single vertical segment, 0.14% of the frame ('grid-corner' puts
    that segment across the corner of the middle cells of an 8 x 4 grid, where a fixed grid
    would split it four ways)."""
    scene = background()
    x, y = where
    digits = "01234567890"

    def frame(index: int) -> np.ndarray:
        return noisy(with_display(scene, x, y, 48, 72, digits[index // 3]), index)

    assert encoded_frames(ChangeGate(), sequence(33, frame)) == list(range(0, 33, 3))


def test_display_of_one_percent_single_segment_changes_wait_for_max_reuse() -> None:
    """A 40 x 60 px display (1% of a 640 x 360 frame): every digit change that toggles two or
    more segments is encoded on its frame; a single vertical segment (5 -> 6, 8 -> 9; 0.1% of
    the frame) is under the block threshold and is picked up by max_reuse instead."""
    scene = background()
    digits = "0123456789"

    def frame(index: int) -> np.ndarray:
        return noisy(with_display(scene, 300, 150, 40, 60, digits[min(index // 3, 9)]), index)

    # changes at 3, 6, ..., 27; 5 -> 6 at 18 and 8 -> 9 at 27 are not seen; the 9 is
    # re-encoded 30 frames (max_reuse) after the 8, at 54
    encoded = encoded_frames(ChangeGate(), sequence(60, frame))
    assert encoded == [0, 3, 6, 9, 12, 15, 21, 24, 54]


def test_small_panel_switching_dark_to_bright_is_caught_from_16x24() -> None:
    """A whole-panel change (dark <-> bright, 215 grey levels) is caught down to 16 x 24 px
    in 640 x 360 (0.17% of the frame); 12 x 18 px is not."""
    scene = background()

    def run(w: int, h: int) -> list[int]:
        dark = with_box(scene, 301, 171, w, h, 20)
        bright = with_box(scene, 301, 171, w, h, 235)
        return encoded_frames(
            ChangeGate(), sequence(20, lambda i: noisy(bright if (i // 5) % 2 else dark, i))
        )

    assert run(16, 24) == [0, 5, 10, 15]
    assert run(12, 18) == [0]


# ---- drift, cuts and fades ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rate", "gaps"),
    [
        (0.05, {30}),  # 2 levels only after 40 frames: max_reuse (30 frames) comes first
        (0.2, {10, 11}),  # passes 2 levels after 10 frames
        (0.5, {4, 5}),  # passes 2 levels after 4 frames
    ],
)
def test_brightness_ramp_is_re_encoded_when_the_change_adds_up(rate: float, gaps: set[int]) -> None:
    scene = background()
    encoded = encoded_frames(ChangeGate(), sequence(90, lambda i: noisy(scene, i, rate * i)))
    assert encoded[0] == 0
    assert set(np.diff(encoded)) <= gaps
    assert encoded[-1] >= 90 - max(gaps)


def test_hard_cut_is_encoded_on_the_cut() -> None:
    first, second = background(seed=1), background(seed=2)
    frames = sequence(20, lambda i: noisy(first if i < 10 else second, i))
    assert encoded_frames(ChangeGate(), frames) == [0, 10]


def test_fade_to_black_is_followed_to_the_black_frame() -> None:
    """Frames 5..19 fade linearly to black (frame 19 is black), 20..29 stay black."""
    scene = background()

    def frame(index: int) -> np.ndarray:
        level = min(max(1.0 - (index - 4) / 15, 0.0), 1.0)
        return noisy((scene * level).round().astype(np.uint8), index)

    encoded = encoded_frames(ChangeGate(), sequence(30, frame))
    assert encoded == [0, *range(5, 20)]


# ---- switches, reset, time ------------------------------------------------------------------


@pytest.mark.parametrize(
    "config", [GateConfig(change_threshold=0), GateConfig(max_reuse=0)], ids=["threshold", "reuse"]
)
def test_gate_off_encodes_every_frame(config: GateConfig) -> None:
    assert not config.enabled
    scene = background()
    gate = ChangeGate(config)
    assert encoded_frames(gate, sequence(10, lambda i: noisy(scene, i))) == list(range(10))
    assert (gate.frames, gate.encoded) == (10, 10)


def test_enabled() -> None:
    assert GateConfig().enabled
    assert GateConfig(change_threshold=0.5, max_reuse=0.1).enabled


def test_reset_makes_the_next_frame_encoded() -> None:
    scene = background()
    gate = ChangeGate()
    assert encoded_frames(gate, sequence(5, lambda i: noisy(scene, i))) == [0]
    gate.reset()
    assert encoded_frames(gate, sequence(5, lambda i: noisy(scene, i)), start=5) == [5]
    assert (gate.frames, gate.encoded) == (10, 2)


def test_timestamp_going_back_is_encoded() -> None:
    scene = background()
    gate = ChangeGate()
    results = [gate.check(noisy(scene, i), t) for i, t in enumerate([10.0, 10.1, 10.2, 3.0, 3.1])]
    assert results == [True, False, False, True, False]


def test_frame_size_change_is_encoded() -> None:
    gate = ChangeGate()
    assert gate.check(noisy(background(), 0), 0.0)
    assert not gate.check(noisy(background(), 1), 0.1)
    assert gate.check(noisy(background(480, 640), 2), 0.2)


# ---- configuration --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"change_threshold": -1}, "--change-threshold must be 0 or more, not -1"),
        ({"change_threshold": -0.5}, "--change-threshold must be 0 or more, not -0.5"),
        ({"max_reuse": -1}, "--max-reuse must be 0 or more, not -1"),
        ({"change_threshold": float("nan")}, "--change-threshold must be 0 or more, not nan"),
    ],
)
def test_config_validation_messages(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(UsageError) as caught:
        GateConfig(**kwargs)
    assert str(caught.value) == message


def test_block_factor_validation() -> None:
    with pytest.raises(UsageError, match="block factor must be 0 or more"):
        GateConfig(block_factor=-1)


# ---- thumbnail ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("height", "width", "shape"),
    [
        (1080, 1920, (36, 64)),  # 16:9
        (360, 640, (36, 64)),
        (270, 480, (36, 64)),
        (480, 640, (48, 64)),  # 4:3
        (1920, 1080, (112, 64)),  # portrait 9:16
        (100, 1000, (16, 64)),  # very wide: at least 16 high
    ],
)
def test_thumbnail_shape_and_dtype(height: int, width: int, shape: tuple[int, int]) -> None:
    thumb = thumbnail(background(height, width))
    assert thumb.shape == shape
    assert thumb.dtype == np.float32
    assert thumbnail_size(width, height) == (shape[1], shape[0])
    assert float(thumb.min()) >= 20.0 and float(thumb.max()) <= 235.0


@pytest.mark.parametrize("size", [(360, 640), (1080, 1920)])
def test_thumbnail_is_grey_of_bgr(size: tuple[int, int]) -> None:
    """Pure blue, green and red frames give BT.601 luma of 255 in B, G, R order."""
    for channel, luma in enumerate([0.114 * 255, 0.587 * 255, 0.299 * 255]):
        frame = np.zeros((*size, 3), np.uint8)
        frame[..., channel] = 255
        np.testing.assert_allclose(thumbnail(frame), luma, rtol=1e-5)


def test_thumbnail_rejects_non_bgr() -> None:
    with pytest.raises(ValueError, match="H x W x 3 uint8"):
        thumbnail(np.zeros((360, 640), np.uint8))
    with pytest.raises(ValueError, match="H x W x 3 uint8"):
        thumbnail(np.zeros((360, 640, 3), np.float32))


def test_learning_raises_the_thresholds_after_wasted_encodes_and_resets_on_one_that_mattered() -> (
    None
):
    """An encode that did not move the embedding makes the gate less sensitive (up to
    MAX_SCALE); one that did, or a forced re-encode that finds a change, resets it."""
    from scenecls.video.gate import MAX_SCALE

    gate = ChangeGate(GateConfig())
    base = np.full((360, 640, 3), 100, np.uint8)
    brighter = np.full((360, 640, 3), 105, np.uint8)  # a 5-level change: over 2 x 2
    assert gate.check(base, 0.0)
    gate.learn(0.0)  # the first encode teaches nothing
    assert gate.scale == 1.0
    t = 0.0
    for _ in range(10):  # flicker between the two: each change is encoded, and wasted
        t += 0.1
        if gate.check(brighter if round(t * 10) % 2 else base, t):
            gate.learn(0.9999)
    assert gate.scale == MAX_SCALE
    # now a 3-level change is under the raised threshold (2 x 2 = 4 levels)
    reference = brighter if round(t * 10) % 2 else base
    slightly = np.clip(reference.astype(np.int16) + 3, 0, 255).astype(np.uint8)
    assert not gate.check(slightly, t + 0.1)
    # a change the model cared about resets the thresholds at once
    big = np.full((360, 640, 3), 160, np.uint8)
    assert gate.check(big, t + 0.2)
    gate.learn(0.9)
    assert gate.scale == 1.0
    # max_reuse re-encodes that find the picture moved on reset it too
    gate.scale = MAX_SCALE
    assert gate.check(big, t + 1.3)  # forced by max_reuse
    gate.learn(0.98)
    assert gate.scale == 1.0
