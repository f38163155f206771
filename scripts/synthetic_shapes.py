"""Synthetic coloured-shape images and videos for training and testing a tiny CLIP.

Every picture shows one saturated coloured shape (the class: a colour and a shape, e.g.
"red circle") on a varied, muted background: a gradient between two low-saturation
colours, pixel noise and a clutter of small grey distractor shapes. Canvases have random
sizes and aspect ratios (160-480 px a side); the class shape is always drawn inside the
centred square of the canvas, so CLIP's preprocessing (shortest side to 224, centre
crop) keeps it whole.

All images are HxWx3 uint8 in **BGR** channel order, as OpenCV reads and writes them
and as scenecls expects. Everything is deterministic given a seed (or a
``numpy.random.Generator``). Importing this module has no side effects.

Red and blue are both classes, so an image whose channels were swapped (BGR read as
RGB) shows the wrong class (red and blue trade places, yellow turns cyan, only green
survives): a colour-order mistake anywhere makes a classifier fail.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

COLOURS = ("red", "blue", "green", "yellow")
# "circle" is a filled disc, "ring" a thick circle outline (hollow: the background shows
# through). Filled versus hollow is visible in every patch of the shape, which a tiny ViT
# learns in minutes; circle versus square (a global outline cue) it does not.
SHAPES = ("circle", "ring")
CLASSES: tuple[str, ...] = tuple(f"{c} {s}" for s in SHAPES for c in COLOURS)

# OpenCV hue (0-179) of each class colour; saturation and value are drawn high.
_HUES = {"red": 0, "yellow": 28, "green": 60, "blue": 120}
_HUE_JITTER = 6
SIDE_RANGE = (160, 480)  # canvas side lengths in pixels (inclusive)

Segment = tuple[str, float, float]  # (label, start_s, end_s)


def _split(label: str) -> tuple[str, str]:
    colour, _, shape = label.partition(" ")
    if colour not in _HUES or shape not in SHAPES:
        raise ValueError(f"unknown class {label!r}: expected one of {', '.join(CLASSES)}")
    return colour, shape


def _hsv_to_bgr(h: float, s: float, v: float) -> tuple[int, int, int]:
    px = np.array([[[int(h) % 180, int(s), int(v)]]], np.uint8)
    b, g, r = cv2.cvtColor(px, cv2.COLOR_HSV2BGR)[0, 0]
    return int(b), int(g), int(r)


def class_colour(colour: str, rng: np.random.Generator) -> tuple[int, int, int]:
    """A saturated BGR colour near the named hue (small random jitter)."""
    hue = _HUES[colour] + rng.integers(-_HUE_JITTER, _HUE_JITTER + 1)
    return _hsv_to_bgr(hue, rng.integers(190, 256), rng.integers(180, 256))


def _muted(rng: np.random.Generator) -> np.ndarray:
    """A low-saturation BGR colour (float32 (3,))."""
    bgr = _hsv_to_bgr(rng.integers(0, 180), rng.integers(0, 70), rng.integers(40, 225))
    return np.array(bgr, np.float32)


def background(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """HxWx3 uint8 BGR: a linear gradient between two muted colours plus uniform pixel
    noise and a clutter of 0-6 small grey distractor shapes (discs, squares, triangles,
    lines)."""
    c0, c1 = _muted(rng), _muted(rng)
    angle = rng.uniform(0, 2 * math.pi)
    xs = np.arange(width, dtype=np.float32) * math.cos(angle)
    ys = np.arange(height, dtype=np.float32) * math.sin(angle)
    t = ys[:, None] + xs[None, :]
    t = (t - t.min()) / max(float(t.max() - t.min()), 1.0)
    amp = int(rng.integers(3, 21))
    img = rng.integers(-amp, amp + 1, (height, width, 3), dtype=np.int16).astype(np.float32)
    for c in range(3):  # + gradient, channel by channel (much faster than broadcasting)
        img[:, :, c] += c0[c] + (c1[c] - c0[c]) * t
    canvas = np.clip(img, 0, 255).astype(np.uint8)
    short = min(height, width)
    for _ in range(int(rng.integers(0, 7))):
        grey = int(rng.integers(30, 226))
        colour = (grey, grey, grey)
        cx, cy = int(rng.integers(0, width)), int(rng.integers(0, height))
        r = int(rng.uniform(0.03, 0.09) * short) + 1
        kind = int(rng.integers(0, 4))
        if kind == 0:
            cv2.circle(canvas, (cx, cy), r, colour, -1, cv2.LINE_AA)
        elif kind == 1:
            cv2.rectangle(canvas, (cx - r, cy - r), (cx + r, cy + r), colour, -1, cv2.LINE_AA)
        elif kind == 2:
            pts = np.array([[cx, cy - r], [cx - r, cy + r], [cx + r, cy + r]], np.int32)
            cv2.fillPoly(canvas, [pts], colour, cv2.LINE_AA)
        else:
            dx, dy = rng.integers(-3 * r, 3 * r + 1, 2)
            thick = int(rng.integers(1, 4))
            cv2.line(canvas, (cx, cy), (cx + int(dx), cy + int(dy)), colour, thick, cv2.LINE_AA)
    return canvas


def draw_shape(
    canvas: np.ndarray,
    shape: str,
    centre: tuple[float, float],
    radius: float,
    colour: tuple[int, int, int],
    thickness: float = 0.3,
) -> None:
    """Draw ``shape`` of outer ``radius`` (pixels) in BGR ``colour`` onto ``canvas``
    (HxWx3 uint8 BGR) in place: "circle" is a filled disc, "ring" an outline whose width
    is ``thickness`` times the radius."""
    centre_px = (round(centre[0]), round(centre[1]))
    if shape == "circle":
        cv2.circle(canvas, centre_px, max(1, round(radius)), colour, -1, cv2.LINE_AA)
    elif shape == "ring":
        width = max(2.0, thickness * radius)
        mid = max(1, round(radius - width / 2))
        cv2.circle(canvas, centre_px, mid, colour, max(2, round(width)), cv2.LINE_AA)
    else:
        raise ValueError(f"unknown shape {shape!r}: expected one of {', '.join(SHAPES)}")


def _random_size(rng: np.random.Generator) -> tuple[int, int]:
    lo, hi = SIDE_RANGE
    return int(rng.integers(lo, hi + 1)), int(rng.integers(lo, hi + 1))


def _placement(
    height: int, width: int, rng: np.random.Generator
) -> tuple[tuple[float, float], float]:
    """A centre and radius that keep a shape inside the canvas's centred square."""
    short = min(height, width)
    radius = rng.uniform(0.12, 0.3) * short
    x0, y0 = (width - short) / 2, (height - short) / 2
    lo = radius + 2
    hi = max(lo, short - radius - 2)
    return (x0 + rng.uniform(lo, hi), y0 + rng.uniform(lo, hi)), radius


def make_image(
    label: str, rng: np.random.Generator, size: tuple[int, int] | None = None
) -> np.ndarray:
    """One picture of class ``label`` as an HxWx3 uint8 **BGR** array.

    ``size`` is (height, width); None draws both sides at random from ``SIDE_RANGE``.
    The class shape lies inside the centred square of the canvas.
    """
    colour, shape = _split(label)
    height, width = size if size is not None else _random_size(rng)
    canvas = background(height, width, rng)
    centre, radius = _placement(height, width, rng)
    colour_bgr = class_colour(colour, rng)
    draw_shape(canvas, shape, centre, radius, colour_bgr, rng.uniform(0.2, 0.4))
    return canvas


def make_dataset(folder: str | Path, per_class: int, seed: int) -> list[Path]:
    """Write ``per_class`` PNGs of every class to ``folder/<label>/<n>.png`` (the folder
    name is the label text) and return their paths, class by class."""
    root = Path(folder)
    rng = np.random.default_rng(seed)
    paths = []
    for label in CLASSES:
        sub = root / label
        sub.mkdir(parents=True, exist_ok=True)
        for n in range(per_class):
            path = sub / f"{n}.png"
            if not cv2.imwrite(str(path), make_image(label, rng)):
                raise OSError(f"cannot write {path}")
            paths.append(path)
    return paths


def _check_segments(segments: Sequence[Segment]) -> None:
    if not segments:
        raise ValueError("no segments")
    t = 0.0
    for label, start, end in segments:
        _split(label)
        if abs(start - t) > 1e-9 or end <= start:
            raise ValueError(
                f"segments must be contiguous from 0 s with end > start, got {segments!r}"
            )
        t = end


def make_video(
    path: str | Path,
    segments: Sequence[Segment],
    fps: float = 10,
    size: tuple[int, int] = (320, 240),
    seed: int = 0,
    flicker: float = 0.0,
) -> None:
    """Write an .mp4 (mp4v) of ``size`` = (width, height) at ``fps`` whose frames show the
    class of the truth segment containing their time (frame i is at i / fps seconds).

    ``segments`` = [(label, start_s, end_s), ...], contiguous from 0 s. Each segment gets
    its own background and shape; the shape drifts and pulses from frame to frame, the
    background shakes slightly and fresh noise is added to every frame, so per-frame
    predictions are a little noisy. ``flicker`` is the fraction of frames that show a
    random other class instead (a glitch, a hand passing): wrong on purpose, for testing
    smoothing.
    """
    _check_segments(segments)
    width, height = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    if not writer.isOpened():
        raise OSError(f"cannot open a video writer for {path}")
    rng = np.random.default_rng(seed)
    short = min(width, height)
    x0, y0 = (width - short) / 2, (height - short) / 2
    try:
        n_frames = math.ceil(segments[-1][2] * fps - 1e-9)
        seg_i = -1
        for i in range(n_frames):
            t = i / fps
            while seg_i < 0 or t >= segments[seg_i][2]:
                seg_i += 1
                label, start, _ = segments[seg_i]
                colour_name, shape = _split(label)
                bg = background(height + 8, width + 8, rng)
                colour = class_colour(colour_name, rng)
                (cx, cy), radius = _placement(height, width, rng)
                vx, vy = rng.uniform(-0.08, 0.08, 2) * short  # pixels per second
                thickness = rng.uniform(0.2, 0.4)
            dt = t - start
            r = radius * (1 + 0.08 * math.sin(2 * math.pi * 0.7 * dt))
            reach = r + 2
            # bounce inside the centred square
            px = _bounce(cx - x0 + vx * dt, reach, short - reach) + x0
            py = _bounce(cy - y0 + vy * dt, reach, short - reach) + y0
            ox, oy = rng.integers(0, 9, 2)
            frame = bg[oy : oy + height, ox : ox + width].copy()
            if flicker and rng.random() < flicker:
                other = str(rng.choice([c for c in CLASSES if c != label]))
                other_colour, other_shape = _split(other)
                draw_shape(
                    frame, other_shape, (px, py), r, class_colour(other_colour, rng), thickness
                )
            else:
                draw_shape(frame, shape, (px, py), r, colour, thickness)
            noise = rng.integers(-10, 11, frame.shape, dtype=np.int16)
            frame = np.clip(frame + noise, 0, 255).astype(np.uint8)
            writer.write(frame)
    finally:
        writer.release()


def _bounce(x: float, lo: float, hi: float) -> float:
    """Reflect ``x`` into [lo, hi] (a point moving back and forth between two walls)."""
    if hi <= lo:
        return (lo + hi) / 2
    span = hi - lo
    u = (x - lo) % (2 * span)
    return lo + (u if u <= span else 2 * span - u)


def write_truth_csv(path: str | Path, segments: Sequence[Segment]) -> None:
    """Write the truth segments as CSV: a ``label,start,end`` header, one row each."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["label", "start", "end"])
        for label, start, end in segments:
            w.writerow([label, f"{start:g}", f"{end:g}"])
