"""Draw the classifier's verdict onto video frames with OpenCV.

An :class:`Overlay` annotates BGR frames (HxWx3 uint8, OpenCV channel order) with a
top-left panel (smoothed label, confidence, top-k bars), a bottom strip of recent
segments and, when a region of interest is set, the region's frame (a thin rectangle).
Sizes scale with the frame, so the overlay stays legible from 320x240 to 4K; only the panel
and strip regions are blended, keeping a 1080p frame to a few milliseconds.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from functools import lru_cache
from typing import NamedTuple

import cv2
import numpy as np

from ..errors import RegionError
from ..model.labels import UNKNOWN
from ..region import Region
from ..types import Prediction, Segment

Color = tuple[int, int, int]

_FONT = cv2.FONT_HERSHEY_SIMPLEX
_AA = cv2.LINE_AA
_WHITE: Color = (255, 255, 255)
_BLACK: Color = (0, 0, 0)
_GREY: Color = (140, 140, 140)
_TRACK: Color = (70, 70, 70)
# Well-separated BGR colours (Tableau 10 without its grey, plus gold); grey means unknown.
_PALETTE: tuple[Color, ...] = (
    (180, 119, 31), (14, 127, 255), (44, 160, 44), (40, 39, 214), (189, 103, 148),
    (75, 86, 140), (194, 119, 227), (34, 189, 188), (207, 190, 23), (0, 215, 255),
)  # fmt: skip
_PANEL_ALPHA = 0.6  # how dark the panels behind text are (0: invisible, 1: opaque)
_PANEL_SHADE = 15  # grey level the panels blend towards
_REGION: Color = (0, 215, 255)  # the region of interest's frame: amber, outlined in black


class _Font(NamedTuple):
    scale: float
    thick: int
    asc: int  # ascent in pixels
    h: int  # line height in pixels (ascent + descent)


class _Layout(NamedTuple):
    margin: int
    pad: int
    big: _Font  # the title
    small: _Font  # bar and strip text
    bar_w: int  # preferred width of the bars


def _width(text: str, f: _Font) -> int:
    return cv2.getTextSize(text, _FONT, f.scale, f.thick)[0][0]


def _font(scale: float, thick: int) -> _Font:
    (_, asc), descent = cv2.getTextSize("Ag", _FONT, scale, thick)
    return _Font(scale, thick, asc, asc + descent)


@lru_cache(maxsize=16)
def _layout(h: int, w: int) -> _Layout:
    """Pixel sizes for an HxW frame: scaled by min(h, w) / 720, with legible minimums."""
    s = min(max(min(h, w) / 720.0, 0.3), 4.0)
    big = _font(max(0.5, 1.1 * s), max(1, round(2.2 * s)))
    small = _font(max(0.38, 0.6 * s), max(1, round(1.4 * s)))
    return _Layout(
        max(4, round(14 * s)), max(3, round(9 * s)), big, small, max(110, round(360 * s))
    )


def _ascii(text: str) -> str:
    """``text`` with every character cv2.putText cannot draw replaced by '?'."""
    return "".join(c if " " <= c <= "~" else "?" for c in text)


def _fit(text: str, f: _Font, max_w: int) -> str:
    """ASCII ``text``, cut and ended with '...' so that it is at most ``max_w`` wide."""
    text = _ascii(text)
    if _width(text, f) <= max_w:
        return text
    lo, hi = 0, len(text) - 1  # longest prefix that fits with '...' appended
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if _width(text[:mid].rstrip() + "...", f) <= max_w:
            lo = mid
        else:
            hi = mid - 1
    return text[:lo].rstrip() + "..." if lo > 0 else ""


def _pct(p: float) -> str:
    return f"{round(float(np.clip(np.nan_to_num(p), 0.0, 1.0)) * 100)}%"


def _shade(img: np.ndarray, x0: int, y0: int, x1: int, y1: int) -> None:
    """Darken img[y0:y1, x0:x1] in place (clipped to the frame)."""
    h, w = img.shape[:2]
    x0, x1, y0, y1 = max(0, x0), min(w, x1), max(0, y0), min(h, y1)
    if x1 > x0 and y1 > y0:
        roi = img[y0:y1, x0:x1]
        a = _PANEL_ALPHA
        img[y0:y1, x0:x1] = cv2.convertScaleAbs(roi, alpha=1.0 - a, beta=a * _PANEL_SHADE)


def _text(img: np.ndarray, text: str, org: tuple[int, int], f: _Font) -> None:
    """White text with a dark outline (legible on any colour); ``org`` is the baseline-left."""
    if text:
        # Same-thickness offset copies: a thicker stroke would also advance glyphs further.
        x, y = org
        o = max(1, round(f.thick * 0.7))
        for dx, dy in ((-o, -o), (o, -o), (-o, o), (o, o)):
            cv2.putText(img, text, (x + dx, y + dy), _FONT, f.scale, _BLACK, f.thick, _AA)
        cv2.putText(img, text, org, _FONT, f.scale, _WHITE, f.thick, _AA)


class Overlay:
    """Annotates frames with the smoothed label, top-k bars and a strip of recent segments.

    ``labels``: the classifier's labels; each gets a stable colour from its index
    (``"unknown"`` is grey). ``top_k``: how many bars to show. ``strip_seconds``: the time
    span of the bottom strip, ending at ``now``. ``region``: the region of interest whose
    frame is drawn (None: none); an attribute that may be changed between frames.
    """

    def __init__(
        self,
        labels: Sequence[str],
        top_k: int = 3,
        strip_seconds: float = 60.0,
        *,
        region: Region | None = None,
    ):
        if top_k < 0:
            raise ValueError(f"top_k must be >= 0, got {top_k}")
        if not strip_seconds > 0:
            raise ValueError(f"strip_seconds must be > 0, got {strip_seconds}")
        self.labels = tuple(labels)
        self.top_k = top_k
        self.strip_seconds = float(strip_seconds)
        self.region = region
        self._colors = {n: _PALETTE[i % len(_PALETTE)] for i, n in enumerate(self.labels)}
        self._colors[UNKNOWN] = _GREY

    def color(self, label: str) -> Color:
        """The BGR colour of ``label``: by its index in ``labels`` (the 10-colour palette
        repeats after 10 labels); grey for unknown; other labels: a hash of the name."""
        c = self._colors.get(label)
        return c if c is not None else _PALETTE[zlib.crc32(label.encode()) % len(_PALETTE)]

    def draw(
        self,
        image_bgr: np.ndarray,
        prediction: Prediction | None,
        segments: Sequence[Segment],
        now: float,
    ) -> np.ndarray:
        """An annotated copy of ``image_bgr`` (HxWx3 uint8 BGR, same shape); the input is
        left unchanged. ``prediction`` None shows "waiting..."; ``segments`` may include
        the open segment ending at ``now`` (seconds, the same clock as the segments)."""
        _check(image_bgr)
        return self.draw_into(np.array(image_bgr, order="C", copy=True), prediction, segments, now)

    def draw_into(
        self,
        image_bgr: np.ndarray,
        prediction: Prediction | None,
        segments: Sequence[Segment],
        now: float,
    ) -> np.ndarray:
        """Like :meth:`draw` but in place: ``image_bgr`` (C-contiguous HxWx3 uint8 BGR) is
        modified and returned."""
        _check(image_bgr)
        if not image_bgr.flags.c_contiguous or not image_bgr.flags.writeable:
            raise ValueError("draw_into needs a writeable C-contiguous image: use draw")
        lay = _layout(*image_bgr.shape[:2])
        self._draw_region(image_bgr)
        strip_top = self._draw_strip(image_bgr, lay, segments, now)
        self._draw_panel(image_bgr, lay, prediction, strip_top - lay.margin)
        return image_bgr

    def _draw_region(self, img: np.ndarray) -> None:
        """The region of interest's frame: a thin amber rectangle with a black outline,
        along the region's edge (nothing when no region is set or it does not fit)."""
        region = self.region
        if region is None:
            return
        h, w = img.shape[:2]
        try:
            x0, y0, x1, y1 = region.box(w, h)
        except RegionError:
            return
        t = max(1, round(min(h, w) / 360))
        corners = (x0, y0), (x1 - 1, y1 - 1)
        cv2.rectangle(img, *corners, _BLACK, t + 2)
        cv2.rectangle(img, *corners, _REGION, t)

    def _draw_panel(
        self, img: np.ndarray, lay: _Layout, pred: Prediction | None, bottom: int
    ) -> None:
        w = img.shape[1]
        m, pad, gap = lay.margin, lay.pad, max(2, lay.pad // 2)
        # At most 3/5 of the width (or the bar width on narrow frames): long labels get cut.
        max_inner = min(w - 2 * m - 2 * pad, max(lay.bar_w, w * 3 // 5))
        if max_inner < 8:
            return
        swatch = lay.big.h if pred is not None else 0
        if pred is None:
            title, rows = _fit("waiting...", lay.big, max_inner), []
        else:
            pct = "  " + _pct(pred.confidence)
            room = max_inner - swatch - pad - lay.big.thick - _width(pct, lay.big)
            title = _fit(pred.label, lay.big, room) + pct
            names, probs = pred.raw.scores.labels, np.asarray(pred.probabilities, np.float32)
            k = min(len(names), probs.shape[0])
            order = np.argsort(-np.nan_to_num(probs[:k]), kind="stable")[: self.top_k]
            rows = [(names[i], float(probs[i])) for i in order]
        title_w = _width(title, lay.big) + lay.big.thick + (swatch + pad if swatch else 0)
        inner = min(max_inner, max(title_w, lay.bar_w if rows else 0))
        bar_h = lay.small.h + 2 * max(1, pad // 3)
        y_bars = m + pad + lay.big.h + gap
        rows = rows[: max(0, (bottom - pad - y_bars + gap) // (bar_h + gap))]
        y1 = y_bars - gap + len(rows) * (bar_h + gap) + pad
        _shade(img, m, m, m + inner + 2 * pad, y1)
        x = m + pad
        if swatch:
            cv2.rectangle(img, (x, m + pad), (x + swatch - 1, m + pad + swatch - 1),
                          self.color(pred.label), -1, _AA)  # fmt: skip
            x += swatch + pad
        _text(img, title, (x, m + pad + lay.big.asc), lay.big)
        for j, (name, p) in enumerate(rows):
            x0, y0 = m + pad, y_bars + j * (bar_h + gap)
            cv2.rectangle(img, (x0, y0), (x0 + inner - 1, y0 + bar_h - 1), _TRACK, -1)
            fill = round(float(np.clip(np.nan_to_num(p), 0.0, 1.0)) * inner)
            if fill > 0:
                cv2.rectangle(img, (x0, y0), (x0 + fill - 1, y0 + bar_h - 1), self.color(name), -1)
            ty, tp = y0 + (bar_h + lay.small.asc) // 2 - 1, max(2, pad // 2)
            pct = _pct(p)
            pw = _width(pct, lay.small)
            _text(img, _fit(name, lay.small, inner - 3 * tp - pw), (x0 + tp, ty), lay.small)
            _text(img, pct, (x0 + inner - tp - pw, ty), lay.small)

    def _draw_strip(
        self, img: np.ndarray, lay: _Layout, segments: Sequence[Segment], now: float
    ) -> int:
        """Draw the segment strip along the bottom; return its top row."""
        h, w = img.shape[:2]
        m, tp = lay.margin, max(2, lay.pad // 2)
        y1 = h - m
        y0 = max(0, y1 - (lay.small.h + 2 * tp))
        x0, x1 = m, w - m
        if x1 - x0 < 4 or y1 - y0 < 2:
            return h
        _shade(img, x0 - 1, y0 - 1, x1 + 1, y1 + 1)
        span, t0, width = self.strip_seconds, now - self.strip_seconds, x1 - x0
        for seg in segments:
            a, b = max(seg.start, t0), min(seg.end, now)
            if not b > a:
                continue
            xa = x0 + round((a - t0) / span * width)
            xb = max(xa + 1, x0 + round((b - t0) / span * width))
            cv2.rectangle(img, (xa, y0), (xb - 1, y1 - 1), self.color(seg.label), -1)
            if xb - xa > 2:
                cv2.line(img, (xa, y0), (xa, y1 - 1), _BLACK, 1)
            text = _fit(seg.label, lay.small, xb - xa - 2 * tp)
            if text and (len(text) >= 5 or not text.endswith("...")):  # >= 2 chars + "..."
                ty = y0 + (y1 - y0 + lay.small.asc) // 2 - 1
                _text(img, text, (xa + tp, ty), lay.small)
        return y0


def _check(img: np.ndarray) -> None:
    ok = isinstance(img, np.ndarray) and img.dtype == np.uint8
    if not (ok and img.ndim == 3 and img.shape[2] == 3):
        shape = getattr(img, "shape", type(img).__name__)
        raise ValueError(f"image must be HxWx3 uint8 BGR, got {shape}")
