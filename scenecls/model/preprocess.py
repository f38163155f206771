"""CLIP preprocessing in numpy/OpenCV, reproducing the reference image processor.

The reference (Hugging Face ``CLIPImageProcessor``) converts to RGB, resizes with
Pillow's antialiased bicubic filter so the shortest side is 224, rounds to uint8,
centre-crops 224x224, rescales to [0, 1] and normalises per channel. Pillow resamples
separably (horizontal pass, round to uint8, vertical pass, round to uint8) with a
bicubic kernel (a = -0.5) stretched by the downscale factor.

We compute exactly that filter, but only for the output pixels the centre crop keeps,
as a few small banded matrix products on float32 planes; the result matches the
reference to within one grey level on rare ties and is several times faster on large
frames. Model facts (sizes, mean, std) come from the bundle's :class:`Preprocessing`.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from .bundle import Preprocessing

_CHUNK = 16  # output pixels per band block: small blocks skip most of the zero weights


def _bicubic(x: np.ndarray) -> np.ndarray:
    """Pillow's bicubic kernel (a = -0.5), support [-2, 2]."""
    a = -0.5
    x = np.abs(x)
    near = ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
    far = (((x - 5.0) * x + 8.0) * x - 4.0) * a
    return np.where(x < 1.0, near, np.where(x < 2.0, far, 0.0))


@dataclass(frozen=True)
class _Block:
    """Output pixels [out0, out1) are ``source[src0:src1] @ weights`` (src1-src0, out1-out0)."""

    out0: int
    out1: int
    src0: int
    src1: int
    weights: np.ndarray


def _band_blocks(in_size: int, out_size: int, first: int, count: int) -> list[_Block]:
    """Resampling weights of outputs [first, first+count) of an ``in_size -> out_size``
    resize, as Pillow computes them (``precompute_coeffs``), split into band blocks."""
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = 2.0 * filterscale
    ksize = math.ceil(support) * 2 + 1
    centers = (np.arange(first, first + count) + 0.5) * scale
    xmin = np.maximum((centers - support + 0.5).astype(np.int64), 0)
    xmax = np.minimum((centers + support + 0.5).astype(np.int64), in_size)
    taps = xmin[:, None] + np.arange(ksize)[None, :]
    w = _bicubic((taps - centers[:, None] + 0.5) / filterscale)
    w = np.where(taps < xmax[:, None], w, 0.0)
    w /= w.sum(axis=1, keepdims=True)
    blocks = []
    for o0 in range(0, count, _CHUNK):
        o1 = min(count, o0 + _CHUNK)
        s0, s1 = int(xmin[o0]), int(xmax[o1 - 1])
        mat = np.zeros((s1 - s0, o1 - o0), np.float32)
        for j in range(o0, o1):
            n = int(xmax[j] - xmin[j])
            mat[xmin[j] - s0 : xmin[j] - s0 + n, j - o0] = w[j, :n]
        blocks.append(_Block(o0, o1, s0, s1, mat))
    return blocks


@dataclass(frozen=True)
class _Plan:
    """Everything needed to preprocess frames of one input size."""

    rows: tuple[int, int]  # source rows the crop depends on
    cols: tuple[int, int]  # source columns the crop depends on
    horizontal: list[_Block]
    vertical: list[_Block]


def resized_size(height: int, width: int, shortest_edge: int) -> tuple[int, int]:
    """(height, width) after scaling the shortest side to ``shortest_edge``; the long side
    is truncated, as the reference does (1920x1080 -> 398x224)."""
    if width <= height:
        return int(shortest_edge * height / width), shortest_edge
    return shortest_edge, int(shortest_edge * width / height)


class Preprocessor:
    """Turns BGR uint8 frames of any size into CLIP input tensors.

    Call it on one image (HxWx3 uint8 BGR, as OpenCV delivers; HxW grey and HxWx4 BGRA
    are accepted too) to get a (3, H', W') float32 RGB normalised array, or use
    :meth:`batch` for (N, 3, H', W'). Plans per input size are cached.
    """

    def __init__(self, config: Preprocessing, cache_size: int = 8) -> None:
        self.config = config
        self.crop_hw = config.crop_size
        self._plans: OrderedDict[tuple[int, int], _Plan] = OrderedDict()
        self._cache_size = cache_size
        mean = np.asarray(config.mean, np.float64)
        std = np.asarray(config.std, np.float64)
        # normalised = level * gain + offset per RGB channel, (3,) float32 each
        self._gain = (config.rescale_factor / std).astype(np.float32)
        self._offset = (-mean / std).astype(np.float32)

    def _plan(self, height: int, width: int) -> _Plan:
        key = (height, width)
        plan = self._plans.get(key)
        if plan is not None:
            self._plans.move_to_end(key)
            return plan
        ch, cw = self.crop_hw
        nh, nw = resized_size(height, width, self.config.shortest_edge)
        if nh < ch or nw < cw:
            raise InputError(f"crop {ch}x{cw} is larger than the resized image {nh}x{nw}")
        top, left = (nh - ch) // 2, (nw - cw) // 2
        horizontal = _band_blocks(width, nw, left, cw)
        vertical = _band_blocks(height, nh, top, ch)
        plan = _Plan(
            rows=(vertical[0].src0, max(b.src1 for b in vertical)),
            cols=(horizontal[0].src0, max(b.src1 for b in horizontal)),
            horizontal=horizontal,
            vertical=vertical,
        )
        self._plans[key] = plan
        if len(self._plans) > self._cache_size:
            self._plans.popitem(last=False)
        return plan

    def __call__(self, image_bgr: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """One image (HxWx3 uint8 BGR) -> (3, crop_h, crop_w) float32, RGB, normalised."""
        image_bgr = _as_bgr(image_bgr)
        ch, cw = self.crop_hw
        plan = self._plan(*image_bgr.shape[:2])
        r0, r1 = plan.rows
        c0, c1 = plan.cols
        # (3, rows, cols) float32 planes, still in BGR order
        region = image_bgr[r0:r1, c0:c1]
        planes = np.empty((3, r1 - r0, c1 - c0), np.float32)
        for c in range(3):
            planes[c] = region[:, :, c]
        flat = planes.reshape(3 * (r1 - r0), c1 - c0)
        horiz = np.empty((3 * (r1 - r0), cw), np.float32)
        for b in plan.horizontal:
            np.matmul(flat[:, b.src0 - c0 : b.src1 - c0], b.weights, out=horiz[:, b.out0 : b.out1])
        _round_u8(horiz)
        horiz3 = horiz.reshape(3, r1 - r0, cw)
        vert = np.empty((3, ch, cw), np.float32)
        for b in plan.vertical:
            np.matmul(
                b.weights.T,
                horiz3[:, b.src0 - r0 : b.src1 - r0, :],
                out=vert[:, b.out0 : b.out1, :],
            )
        _round_u8(vert)  # grey levels 0..255, BGR planes
        if out is None:
            out = np.empty((3, ch, cw), np.float32)
        for rgb, bgr in ((0, 2), (1, 1), (2, 0)):
            np.multiply(vert[bgr], self._gain[rgb], out=out[rgb])
            out[rgb] += self._offset[rgb]
        return out

    def batch(self, images_bgr: Sequence[np.ndarray]) -> np.ndarray:
        """N images of any sizes (HxWx3 uint8 BGR) -> (N, 3, crop_h, crop_w) float32 RGB."""
        ch, cw = self.crop_hw
        out = np.empty((len(images_bgr), 3, ch, cw), np.float32)
        for i, image in enumerate(images_bgr):
            self(image, out=out[i])
        return out


def _round_u8(x: np.ndarray) -> None:
    """Round half up and clamp to [0, 255] in place, as Pillow's 8-bit resampler does."""
    x += 0.5
    np.floor(x, out=x)
    np.clip(x, 0.0, 255.0, out=x)


def _as_bgr(image: np.ndarray) -> np.ndarray:
    """Validate an input image and return it as HxWx3 uint8 BGR (grey and BGRA converted)."""
    if not isinstance(image, np.ndarray):
        raise InputError(f"expected a numpy image (HxWx3 uint8 BGR), got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise InputError(f"expected a uint8 image (HxWx3 BGR), got dtype {image.dtype}")
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim == 3 and image.shape[2] == 4:
        return image[:, :, :3]
    if image.ndim == 3 and image.shape[2] == 1:
        return np.repeat(image, 3, axis=2)
    if image.ndim != 3 or image.shape[2] != 3:
        raise InputError(f"expected an HxWx3 BGR image, got shape {image.shape}")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise InputError(f"image has no pixels: shape {image.shape}")
    return image
