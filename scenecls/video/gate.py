"""The change gate: run the image encoder only on frames that differ from the last encoded one.

The image encoder is about 95% of the cost of a frame. :class:`ChangeGate` decides, per
frame, whether the encoder must run; a frame it lets through (``check()`` is False) reuses
the embedding of the last *encoded* frame.

The signal is a small grey :func:`thumbnail` (64 wide, 36 high for 16:9 frames) compared
with the thumbnail of the last encoded frame. A frame counts as changed when

- the mean absolute grey-level difference over the whole thumbnail exceeds
  ``change_threshold`` (0..255 scale; default 2), or
- any *block* (a window an eighth of the thumbnail wide and a quarter high, the cell
  size of an 8 x 4 grid) has a mean absolute difference over
  ``block_factor * change_threshold`` (default 8). The block signal is what catches a
  small region that changes a lot: an object of a few percent of the frame appearing, a
  digit changing on a small display. Blocks are taken at every position of the
  thumbnail, not only on the 8 x 4 grid, so a small region is caught wherever it sits;
  on the fixed grid a region straddling a grid corner is split four ways and needs about
  four times the area.

What that catches, with the defaults (measured by ``tests/test_gate.py``): a block window
is 1/32 of the frame, so a change that fits in one is caught when its area (as a share of
the frame) times its mean grey-level change is over 8 / 32 = 0.25 levels. A small panel
switching dark <-> bright (215 levels) is caught from 16 x 24 px in 640 x 360 (0.17% of
the frame); every digit change of a seven-segment display from 48 x 72 px (1.5%). On a
40 x 60 px display (1%) changes of two segments or more are caught, a single segment
(0.1% of the frame) is not and waits for ``max_reuse``. Changes with no effect on local
means (fine texture replaced by texture of the same brightness) are not seen either.

Because the comparison is with the last encoded thumbnail, not the previous frame, slow
drift (a brightness ramp, a slow pan) accumulates until it passes the threshold, and
``max_reuse`` re-encodes at least that often whatever happens.

Cost: the full-resolution frame is read once, straight into a small image, and the grey
conversion is done on the thumbnail. ``INTER_AREA`` straight to 64 x 36 costs 1.8-2.1 ms
on a 1920 x 1080 frame on this machine (AMD EPYC Zen 4, 2 cores, shared; a full-resolution
``cvtColor`` alone is 0.54 ms, and strided views ``[::k, ::k]`` before ``INTER_AREA`` cost
2.7 / 1.2 / 0.5 ms for k = 2 / 3 / 5, being non-contiguous). So frames wider than 768 pixels
are first sampled with ``INTER_LINEAR`` to at most 6 source pixels per sample (320 x 180
for 1080p; each sample averages 2 x 2 pixels, each thumbnail pixel about 100 of them) and
then area-averaged to the thumbnail; narrower frames go straight with ``INTER_AREA``.
Measured ``ChangeGate.check()`` on this machine, median of 1000 calls: 0.21 ms at
1920 x 1080 (0.19 ms of it the thumbnail), 0.19 ms at 640 x 360, 0.26 ms at 768 x 432,
0.39 ms at 480 x 270 (7.5 is not a whole ratio: ``INTER_AREA``'s slower general path) and
0.73 ms at 3840 x 2160. Differences and block means work on the float32 thumbnail only.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import cv2
import numpy as np

from ..errors import UsageError

THUMB_WIDTH = 64
"""Thumbnail width in pixels, whatever the frame's aspect."""
MIN_THUMB_HEIGHT = 16
"""The smallest thumbnail height (very wide frames)."""
GRID_COLUMNS = 8
GRID_ROWS = 4
"""The block size is the cell of a ``GRID_COLUMNS`` x ``GRID_ROWS`` grid on the thumbnail."""

_AREA_MAX_WIDTH = 768
"""Frames up to this wide go straight to the thumbnail with ``INTER_AREA``."""
_MAX_STRIDE = 6
"""Wider frames are first sampled (``INTER_LINEAR``) at most this many source pixels apart."""
_GREY_BGR = np.array([0.114, 0.587, 0.299], dtype=np.float32)
"""ITU-R BT.601 luma weights in B, G, R order (the weights of ``cv2.COLOR_BGR2GRAY``)."""
MAX_SCALE = 2.0
"""How far :meth:`ChangeGate.learn` may raise the thresholds (times the configured ones).
At 2, a region of 1/32 of the frame still counts when its mean grey level changes by 16
(a plate set down on a counter, a lit display digit). Measured on the sample videos
sampled at 10 frames/s with the full-size random-weight model: 4 saved more encodes but
let a reused embedding fall to cosine 0.974 on car-detection.mp4; 2 keeps every frame
above 0.99 (1st percentile above 0.996) and still saves a fifth to a third of the
encodes of bottle-detection.mp4, one-by-one-person-detection.mp4 and
worker-zone-detection.gif."""
WASTED, MATTERED = 0.999, 0.995
""":meth:`ChangeGate.learn`: an encode whose embedding is at least ``WASTED`` (cosine) from
the one it replaces was not needed; one under ``MATTERED`` was."""
TIME_EPSILON = 1e-6
"""Seconds of slack on ``max_reuse``, so that 30 frames at 1/30 s add up to 1 s."""


@dataclass(frozen=True)
class GateConfig:
    """Change-gate settings.

    ``change_threshold``: mean absolute grey-level difference (0..255) of the thumbnail
    that counts as a change; 0 turns the gate off (every frame is encoded).
    ``max_reuse``: seconds; a frame is encoded at least this often; 0 turns the gate off.
    ``block_factor``: a block counts as changed when its mean absolute difference is over
    ``block_factor * change_threshold``.
    ``agreement``: files only (:mod:`.lookahead`): the cosine two encoded frames' embeddings
    must reach for the frames between them to be interpolated instead of encoded.
    ``probe_agreement``: files only: the cosine between a probed middle frame's embedding
    and the interpolation, for a span with movement to be interpolated.
    """

    change_threshold: float = 2.0
    max_reuse: float = 1.0
    block_factor: float = 4.0
    agreement: float = 0.99
    probe_agreement: float = 0.998

    def __post_init__(self) -> None:
        if not self.change_threshold >= 0:
            raise UsageError(f"--change-threshold must be 0 or more, not {self.change_threshold:g}")
        if not self.max_reuse >= 0:
            raise UsageError(f"--max-reuse must be 0 or more, not {self.max_reuse:g}")
        for name in ("agreement", "probe_agreement"):
            value = getattr(self, name)
            if not 0 <= value <= 1:
                raise UsageError(f"the {name} must be between 0 and 1, not {value:g}")
        if not self.block_factor >= 0:
            raise UsageError(f"the block factor must be 0 or more, not {self.block_factor:g}")

    @property
    def enabled(self) -> bool:
        """Whether the gate can skip frames at all (both ``change_threshold`` and
        ``max_reuse`` more than 0)."""
        return self.change_threshold > 0 and self.max_reuse > 0

    @classmethod
    def from_args(cls, args: object) -> GateConfig:
        """The settings of a parsed command line with the gate options."""
        return cls(
            change_threshold=args.change_threshold,  # type: ignore[attr-defined]
            max_reuse=args.max_reuse,  # type: ignore[attr-defined]
        )

    def is_change(self, mean: float, block: float) -> bool:
        """Whether a thumbnail difference (see :func:`thumbnail_difference`) counts as a
        change: ``mean`` over ``change_threshold`` or ``block`` over ``block_factor`` times
        it."""
        return mean > self.change_threshold or block > self.block_factor * self.change_threshold


def thumbnail_size(width: int, height: int) -> tuple[int, int]:
    """``(width, height)`` of the thumbnail of a ``width`` x ``height`` frame: 64 wide, the
    height scaled to the aspect and rounded to a multiple of :data:`GRID_ROWS`, at least
    :data:`MIN_THUMB_HEIGHT`. 16:9 gives 64 x 36, 4:3 64 x 48, 9:16 64 x 112."""
    if width <= 0 or height <= 0:
        raise ValueError(f"a frame must have a positive size, not {width} x {height}")
    rows = round(THUMB_WIDTH * height / width / GRID_ROWS) * GRID_ROWS
    return THUMB_WIDTH, max(MIN_THUMB_HEIGHT, rows)


def thumbnail(image_bgr: np.ndarray) -> np.ndarray:
    """The grey thumbnail the gate compares.

    ``image_bgr``: H x W x 3 uint8, B, G, R order (as OpenCV decodes). Returns a
    ``(h, 64)`` float32 array of grey levels on the 0..255 scale, ``h`` from
    :func:`thumbnail_size` (36 for 16:9). The colour frame is reduced once, straight to
    the thumbnail size (area average; frames wider than 768 pixels are first sampled
    with ``INTER_LINEAR`` at most 6 pixels apart), and the grey conversion (BT.601 luma)
    is done on the tiny image.
    """
    if image_bgr.ndim != 3 or image_bgr.shape[2] != 3 or image_bgr.dtype != np.uint8:
        raise ValueError(
            f"expected an H x W x 3 uint8 BGR image, not {image_bgr.dtype} {image_bgr.shape}"
        )
    height, width = image_bgr.shape[:2]
    size = thumbnail_size(width, height)
    small = image_bgr
    if width > _AREA_MAX_WIDTH:
        scale = math.ceil(width / (size[0] * _MAX_STRIDE))
        small = cv2.resize(
            image_bgr, (size[0] * scale, size[1] * scale), interpolation=cv2.INTER_LINEAR
        )
    small = cv2.resize(small, size, interpolation=cv2.INTER_AREA)
    return small.astype(np.float32) @ _GREY_BGR


def block_differences(difference: np.ndarray) -> np.ndarray:
    """Mean of ``difference`` (an ``(h, w)`` float32 array, ``h`` a multiple of
    :data:`GRID_ROWS` and ``w`` of :data:`GRID_COLUMNS`) over every block-sized window:
    a float64 array of shape ``(h - h / GRID_ROWS + 1, w - w / GRID_COLUMNS + 1)``, from an
    integral image (no loops)."""
    height, width = difference.shape
    block_h, block_w = height // GRID_ROWS, width // GRID_COLUMNS
    sums = cv2.integral(difference)
    windows = (
        sums[block_h:, block_w:]
        - sums[:-block_h, block_w:]
        - sums[block_h:, :-block_w]
        + sums[:-block_h, :-block_w]
    )
    return windows / (block_h * block_w)


def mean_difference(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute grey-level difference of two thumbnails (infinity when their shapes
    differ): the first half of :func:`thumbnail_difference`, without the block means."""
    return float(np.abs(a - b).mean()) if a.shape == b.shape else math.inf


def thumbnail_difference(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """How much two thumbnails (``(h, 64)`` float32, as from :func:`thumbnail`) differ:
    the mean absolute grey-level difference over the whole thumbnail, and the largest
    mean over a block-sized window (see :func:`block_differences`). Thumbnails of
    different shapes (the stream changed size) differ by infinity."""
    if a.shape != b.shape:
        return math.inf, math.inf
    difference = np.abs(a - b)
    return float(difference.mean()), float(block_differences(difference).max())


class ChangeGate:
    """Decides per frame whether the image encoder must run.

    Feed frames in time order to :meth:`check`: an H x W x 3 uint8 image in B, G, R order
    (any size; the gate works on its ``(h, 64)`` float32 grey :func:`thumbnail`) and its
    time in seconds. ``check()`` returns True when the frame must be encoded; that frame's
    thumbnail and time then become the reference the next frames are compared with. When
    it returns False the caller reuses the embedding of the last encoded frame.

    Counters: ``frames`` (frames checked), ``encoded`` (frames for which ``check()``
    returned True), ``seconds`` (total time spent in ``check()``, ``time.perf_counter``),
    ``last_difference`` (mean absolute grey-level difference of the last checked frame to
    the reference; 0.0 when there was nothing to compare with) and
    ``last_block_difference`` (the largest block mean, likewise).

    **Learning from the encoder.** A live source cannot check a reuse against a later
    frame, but it can learn which thumbnail changes matter to the model. After each
    encode the caller hands the new embedding to :meth:`keep`, which reports to
    :meth:`learn` the cosine between it and the one it replaces. An encode for a change
    that barely moved the embedding (cosine at least :data:`WASTED`) raises the
    thresholds by a quarter, up to :data:`MAX_SCALE` times the configured ones; a change
    that moved it (cosine under :data:`MATTERED`), or an encode forced by ``max_reuse``
    that finds the picture had moved on, sets them back to the configured values at once.
    Noise, dithering and motion the model does not care about thus cost fewer encodes,
    while a change that matters makes the gate sensitive again. ``scale`` is the current
    factor.
    """

    def __init__(self, config: GateConfig | None = None) -> None:
        self.config = config or GateConfig()
        self.frames = 0
        self.encoded = 0
        self.seconds = 0.0
        self.last_difference = 0.0
        self.last_block_difference = 0.0
        self._reference: np.ndarray | None = None
        self._reference_time = 0.0
        self.scale = 1.0
        self._reason = ""  # why the last encode was asked for: first, change or reuse
        self.embedding: np.ndarray | None = None
        """(D,) float32: the last encoded frame's embedding (see :meth:`keep`), which
        the frames that :meth:`check` lets pass reuse."""

    def keep(self, embedding: np.ndarray) -> np.ndarray:
        """Hand the gate the ``(D,)`` float32 unit embedding of the frame that :meth:`check`
        asked to encode: it learns from how far the embedding moved (:meth:`learn`) and
        keeps it for the frames that follow. Returns ``embedding``."""
        if self.embedding is not None:
            self.learn(float(embedding @ self.embedding))
        self.embedding = embedding
        return embedding

    def learn(self, similarity: float) -> None:
        """After an encode that :meth:`check` asked for: ``similarity`` is the cosine
        between the new embedding and the one it replaces (see the class docstring)."""
        if self._reason == "change" and similarity >= WASTED:
            self.scale = min(MAX_SCALE, self.scale * 1.25)
        elif self._reason in ("change", "reuse") and similarity < MATTERED:
            self.scale = 1.0
        self._reason = ""

    def reset(self) -> None:
        """Forget the reference and its embedding (after a gap in the stream): the next
        frame is encoded. The counters are kept."""
        self._reference = None
        self.embedding = None

    def check(self, image_bgr: np.ndarray, timestamp: float) -> bool:
        """True when this frame (H x W x 3 uint8, BGR) at ``timestamp`` seconds must be
        encoded: the first frame (also after :meth:`reset`), a frame that differs from the
        reference (see the module docstring), one ``max_reuse`` seconds or more after the
        reference, or one earlier than the reference (a seek back). Always True when the
        gate is off (:attr:`GateConfig.enabled`)."""
        start = time.perf_counter()
        self.frames += 1
        encode = self._decide(image_bgr, timestamp)
        if encode:
            self.encoded += 1
        self.seconds += time.perf_counter() - start
        return encode

    def _decide(self, image_bgr: np.ndarray, timestamp: float) -> bool:
        config = self.config
        self.last_difference = 0.0
        self.last_block_difference = 0.0
        if not config.enabled:
            return True
        thumb = thumbnail(image_bgr)
        reference = self._reference
        if reference is None or reference.shape != thumb.shape:
            return self._take(thumb, timestamp, "first")
        self.last_difference, self.last_block_difference = thumbnail_difference(thumb, reference)
        elapsed = timestamp - self._reference_time
        scale = self.scale
        if self.last_difference > scale * config.change_threshold or (
            self.last_block_difference > scale * config.block_factor * config.change_threshold
        ):
            return self._take(thumb, timestamp, "change")
        if not elapsed >= 0.0 or elapsed >= config.max_reuse - TIME_EPSILON:
            return self._take(thumb, timestamp, "reuse")
        return False

    def _take(self, thumb: np.ndarray, timestamp: float, reason: str) -> bool:
        self._reference = thumb
        self._reference_time = timestamp
        self._reason = reason
        return True
