"""The region of interest (``--region x,y,w,h``): the part of each frame the classifier
looks at. Shared by the model and video layers (and the applications above them).

A region is given either as fractions of the frame (``0.25,0,0.5,1``: the middle half of
the width, the full height) or in pixels (``320,0,640,720``). The spec text has four
comma-separated numbers; when all four are at most 1 they are fractions, otherwise
they are pixels and must be whole non-negative numbers. A region is never clipped: one
that reaches outside a frame is an error that names the region and the frame size.

Only the region reaches the change gate and the image encoder; outputs (annotated
video, live view) still show the whole frame, with the region's frame drawn on it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import InputError, RegionError, UsageError

UNITS = ("fraction", "pixel")
"""``Region.unit``: fractions of the frame (0..1), or pixels."""
SLACK = 1e-9
"""Fractions may pass 1 (``x + w``, ``y + h``) by this much (rounding of decimal text)."""
MAX_PIXELS = 1 << 20
"""No frame is wider or higher than this many pixels: larger pixel values are refused."""
FORM = "x,y,w,h as fractions of the frame (0.25,0,0.5,1) or pixels (320,0,640,720)"
"""How a region is written, for error messages."""

_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def _text(value: float) -> str:
    """A number as the spec text writes it: shortest round-trip form, no ``.0``."""
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


def _problem(x: float, y: float, w: float, h: float, unit: str) -> str | None:
    """What is wrong with a region, or None when it is valid (frame size aside)."""
    if unit not in UNITS:
        return f"unit must be {' or '.join(UNITS)}, not {unit!r}"
    values = {"x": x, "y": y, "w": w, "h": h}
    for name, v in values.items():
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            return f"{name} must be a finite number, not {v!r}"
    if w <= 0 or h <= 0:
        return "w and h must be more than 0"
    if x < 0 or y < 0:
        return "x and y must be 0 or more"
    if unit == "fraction":
        if x + w > 1 + SLACK or y + h > 1 + SLACK:
            return "as fractions, x + w and y + h must be at most 1 (inside the frame)"
        return None
    if any(float(v) != int(v) for v in values.values()):
        return "pixels must be whole numbers (or give all four as fractions, at most 1)"
    if any(v > MAX_PIXELS for v in values.values()):
        return f"pixel values must be at most {MAX_PIXELS}"
    return None


@dataclass(frozen=True)
class Region:
    """A rectangle of the frame: left ``x``, top ``y``, width ``w``, height ``h``, in
    fractions of the frame (``unit="fraction"``, 0..1) or pixels (``unit="pixel"``,
    whole numbers). Construction checks the numbers (:class:`InputError` when invalid);
    :meth:`box` checks them against a frame size."""

    x: float
    y: float
    w: float
    h: float
    unit: str = "fraction"

    def __post_init__(self) -> None:
        problem = _problem(self.x, self.y, self.w, self.h, self.unit)
        if problem is not None:
            raise InputError(f"region {self._raw()}: {problem}")

    def _raw(self) -> str:
        try:
            return ",".join(_text(v) for v in (self.x, self.y, self.w, self.h))
        except (TypeError, ValueError):
            return repr((self.x, self.y, self.w, self.h))

    def box(self, width: int, height: int) -> tuple[int, int, int, int]:
        """``(x0, y0, x1, y1)`` in pixels of a ``width`` x ``height`` frame (x1, y1
        exclusive). Never clipped: raises :class:`~scenecls.errors.RegionError` (an
        :class:`InputError`) when the region lies (partly) outside the frame or covers
        no pixel of it."""
        if width <= 0 or height <= 0:
            raise RegionError(f"region {self}: the frame has no pixels ({width}x{height})")
        if self.unit == "fraction":
            x0, y0 = round(self.x * width), round(self.y * height)
            x1 = min(width, round((self.x + self.w) * width))
            y1 = min(height, round((self.y + self.h) * height))
        else:
            x0, y0 = int(self.x), int(self.y)
            x1, y1 = x0 + int(self.w), y0 + int(self.h)
        if x1 > width or y1 > height:
            raise RegionError(
                f"region {self} ({self.unit}s) reaches outside the {width}x{height} frame "
                f"(to x={x1}, y={y1}): give a region inside it, or fractions of the frame "
                "such as 0.25,0,0.5,1"
            )
        if x1 <= x0 or y1 <= y0:
            raise RegionError(
                f"region {self} covers no whole pixel of the {width}x{height} frame: make it larger"
            )
        return x0, y0, x1, y1

    def crop(self, image_bgr: np.ndarray) -> np.ndarray:
        """The region of ``image_bgr`` (HxWx3 uint8 BGR) as a view (no copy), HxWx3 uint8
        BGR. Raises :class:`~scenecls.errors.RegionError` when it does not fit."""
        x0, y0, x1, y1 = self.box(image_bgr.shape[1], image_bgr.shape[0])
        return image_bgr[y0:y1, x0:x1]

    def to_json(self) -> dict[str, Any]:
        """``{"x", "y", "w", "h", "unit"}``; pixels as whole numbers."""
        conv: Any = int if self.unit == "pixel" else float
        return {
            "x": conv(self.x),
            "y": conv(self.y),
            "w": conv(self.w),
            "h": conv(self.h),
            "unit": self.unit,
        }

    @classmethod
    def from_json(cls, d: Any) -> Region:
        """A region from :meth:`to_json`'s form (``unit`` may be left out: fractions).
        Raises :class:`InputError` in one line on anything else."""
        if not isinstance(d, dict):
            raise InputError(
                'a region must be a JSON object {"x": .., "y": .., "w": .., "h": ..}, '
                f"not {type(d).__name__}"
            )
        missing = [k for k in ("x", "y", "w", "h") if k not in d]
        if missing:
            raise InputError(f"the region lacks {', '.join(missing)}: give x, y, w and h")
        extra = sorted(str(k)[:40] for k in d if k not in ("x", "y", "w", "h", "unit"))[:5]
        if extra:
            raise InputError(f"unknown region field(s) {', '.join(extra)}: give x, y, w, h, unit")
        unit = d.get("unit", "fraction")
        if not isinstance(unit, str):
            raise InputError(f"the region's unit must be {' or '.join(UNITS)}")
        values = [d[k] for k in ("x", "y", "w", "h")]
        for k, v in zip("xywh", values, strict=True):
            if isinstance(v, bool) or not isinstance(v, int | float):
                raise InputError(f"the region's {k} must be a number, not {type(v).__name__}")
            if isinstance(v, int) and abs(v) > MAX_PIXELS:
                raise InputError(f"the region's {k} is out of range (at most {MAX_PIXELS})")
        return cls(*(float(v) for v in values), unit=unit)  # type: ignore[arg-type]

    def __str__(self) -> str:
        """The spec text ``x,y,w,h`` that :func:`parse_region` reads back."""
        if self.unit == "pixel":
            return ",".join(str(int(v)) for v in (self.x, self.y, self.w, self.h))
        return ",".join(_text(v) for v in (self.x, self.y, self.w, self.h))


def parse_region(text: str) -> Region:
    """``--region x,y,w,h``: fractions of the frame when all four numbers are at most 1,
    else whole pixels. Raises :class:`UsageError` (one line, with the form) when
    malformed or outside the frame's fractions."""
    shown = " ".join(str(text).split())[:80]
    parts = [p.strip() for p in str(text).split(",")]
    if len(parts) != 4 or not all(_NUMBER.fullmatch(p) for p in parts):
        raise UsageError(f"--region {shown!r}: give four numbers, {FORM}")
    values = [float(p) for p in parts]
    if not all(math.isfinite(v) for v in values):
        raise UsageError(f"--region {shown!r}: give four finite numbers, {FORM}")
    unit = "fraction" if all(v <= 1 for v in values) else "pixel"
    try:
        return Region(*values, unit=unit)
    except InputError as e:
        raise UsageError(f"--{e}; {FORM}") from None


def region_crop(region: Region | None, image_bgr: np.ndarray, name: str = "") -> np.ndarray:
    """What the encoder sees of ``image_bgr`` (HxWx3 uint8 BGR): the region's view, or the
    whole image when ``region`` is None. A region that does not fit raises
    :class:`~scenecls.errors.RegionError` naming ``name`` (an image file, a frame)."""
    if region is None:
        return image_bgr
    try:
        return region.crop(image_bgr)
    except RegionError as e:
        if not name:
            raise
        raise RegionError(f"{name}: {e}") from None
