"""Report figures drawn with OpenCV (no plotting library): a labelled confusion-matrix
heatmap and a truth / raw / smoothed timeline. Images are BGR uint8; files are PNG."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from ..atomic import write_bytes_atomic
from ..errors import OutputError
from ..types import Segment
from ..video.overlay import Overlay

_FONT = cv2.FONT_HERSHEY_SIMPLEX
_AA = cv2.LINE_AA
_INK = (30, 30, 30)


def _ascii(text: str) -> str:
    return "".join(c if 32 <= ord(c) < 127 else "?" for c in text)


def _put(
    img: np.ndarray,
    text: str,
    org: tuple[int, int],
    scale: float = 0.5,
    color: tuple[int, int, int] = _INK,
    thick: int = 1,
) -> None:
    cv2.putText(img, _ascii(text), org, _FONT, scale, color, thick, _AA)


def _text_w(text: str, scale: float = 0.5, thick: int = 1) -> int:
    return cv2.getTextSize(_ascii(text), _FONT, scale, thick)[0][0]


def _save(path: Path, img: np.ndarray) -> None:
    path = Path(path)
    ok, buf = cv2.imencode(".png", img)
    if not ok:
        raise OutputError(f"cannot encode {path} as PNG")
    try:
        write_bytes_atomic(path, buf.tobytes())
    except OSError as e:
        raise OutputError(f"writing {path} failed: {e}") from e


def confusion_image(
    rows: Sequence[str], columns: Sequence[str], matrix: np.ndarray, title: str = "confusion matrix"
) -> np.ndarray:
    """A heatmap (BGR uint8) of counts, rows = truth, columns = prediction; cell colour
    is the fraction of the row, the count is written in each non-empty cell."""
    m = np.asarray(matrix, np.float64)
    cell = int(np.clip(720 / max(len(columns), 1), 34, 64))
    left = 24 + max(_text_w(r) for r in rows)
    top = 60 + max(_text_w(c) for c in columns)
    w, h = left + cell * len(columns) + 24, top + cell * len(rows) + 60
    img = np.full((h, w, 3), 255, np.uint8)
    frac = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
    heat = cv2.applyColorMap((255 - frac * 255).astype(np.uint8), cv2.COLORMAP_BONE)
    for i in range(len(rows)):
        for j in range(len(columns)):
            x, y = left + j * cell, top + i * cell
            color = tuple(int(c) for c in heat[i, j])
            cv2.rectangle(img, (x, y), (x + cell - 1, y + cell - 1), color, -1)
            if m[i, j]:
                txt = str(int(m[i, j]))
                ink = (255, 255, 255) if frac[i, j] > 0.5 else _INK
                _put(img, txt, (x + (cell - _text_w(txt, 0.45)) // 2, y + cell // 2 + 5), 0.45, ink)
            if i == j:
                cv2.rectangle(img, (x, y), (x + cell - 1, y + cell - 1), (40, 160, 40), 2)
    for i, r in enumerate(rows):
        _put(img, r, (left - 12 - _text_w(r), top + i * cell + cell // 2 + 5))
    labels_img = np.full((cell * len(columns), top - 12, 3), 255, np.uint8)  # drawn sideways
    for j, c in enumerate(columns):
        _put(labels_img, c, (4, j * cell + cell // 2 + 5))
    rotated = cv2.rotate(labels_img, cv2.ROTATE_90_COUNTERCLOCKWISE)
    img[0 : rotated.shape[0], left : left + rotated.shape[1]] = np.minimum(
        img[0 : rotated.shape[0], left : left + rotated.shape[1]], rotated
    )
    _put(img, _ascii(title), (12, h - 34), 0.6, _INK, 2)
    _put(
        img, "rows: true label, columns: predicted; colour: fraction of the row", (12, h - 12), 0.45
    )
    return img


def save_confusion(
    path: Path,
    rows: Sequence[str],
    columns: Sequence[str],
    matrix: np.ndarray,
    title: str = "confusion matrix",
) -> None:
    _save(path, confusion_image(rows, columns, matrix, title))


def timeline_image(
    tracks: Sequence[tuple[str, Sequence[Segment]]],
    labels: Sequence[str],
    start: float,
    end: float,
    width: int = 1400,
) -> np.ndarray:
    """One horizontal band per track (e.g. truth, raw, smoothed), coloured by label, with a
    time axis in seconds and a legend. BGR uint8."""
    colors = Overlay(labels)
    left = 24 + max(_text_w(name, 0.6) for name, _ in tracks)
    band, gap = 44, 14
    plot_w = width - left - 24
    legend_rows = 1 + (sum(_text_w(lb) + 48 for lb in labels) // plot_w)
    h = 30 + len(tracks) * (band + gap) + 40 + 26 * legend_rows + 10
    img = np.full((h, width, 3), 255, np.uint8)
    span = max(end - start, 1e-9)

    def x_of(t: float) -> int:
        return left + round((t - start) / span * plot_w)

    for k, (name, segs) in enumerate(tracks):
        y = 30 + k * (band + gap)
        cv2.rectangle(img, (left, y), (left + plot_w, y + band), (235, 235, 235), -1)
        for s in segs:
            x0, x1 = x_of(max(s.start, start)), x_of(min(s.end, end))
            if x1 > x0:
                cv2.rectangle(img, (x0, y), (x1 - 1, y + band), colors.color(s.label), -1)
        _put(img, name, (left - 12 - _text_w(name, 0.6), y + band // 2 + 6), 0.6, _INK, 2)
    axis_y = 30 + len(tracks) * (band + gap)
    cv2.line(img, (left, axis_y), (left + plot_w, axis_y), _INK, 1, _AA)
    step = float(10 ** np.floor(np.log10(span / 4)))
    for mult in (1, 2, 5, 10):
        if span / (step * mult) <= 10:
            step *= mult
            break
    t = np.ceil(start / step) * step
    while t <= end + 1e-9:
        x = x_of(t)
        cv2.line(img, (x, axis_y), (x, axis_y + 6), _INK, 1)
        txt = f"{t:g}s"
        _put(img, txt, (x - _text_w(txt, 0.45) // 2, axis_y + 22), 0.45)
        t += step
    x, y = left, axis_y + 50
    for lb in labels:
        if x + _text_w(lb) + 48 > left + plot_w:
            x, y = left, y + 26
        cv2.rectangle(img, (x, y - 14), (x + 18, y + 2), colors.color(lb), -1)
        _put(img, lb, (x + 24, y))
        x += _text_w(lb) + 48
    return img


def save_timeline(
    path: Path,
    tracks: Sequence[tuple[str, Sequence[Segment]]],
    labels: Sequence[str],
    start: float,
    end: float,
) -> None:
    _save(path, timeline_image(tracks, labels, start, end))
