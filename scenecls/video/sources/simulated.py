"""A simulated live camera: plays frames in real time at a fixed rate, like a webcam.

Used by tests and benchmarks to measure what a live source does to latency and drops
without a camera.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np

from ...types import Frame
from .base import FrameSource


class SimulatedLiveSource(FrameSource):
    """Delivers ``images_bgr`` in a loop at ``fps`` frames per second of wall-clock time
    for ``duration`` seconds. Each frame waits for its capture time, as a camera does.
    ``image_at`` (optional) computes frame ``i`` instead of cycling ``images_bgr``."""

    live = True

    def __init__(
        self,
        images_bgr: Sequence[np.ndarray] = (),
        fps: float = 30.0,
        duration: float = 10.0,
        image_at: Callable[[int], np.ndarray] | None = None,
    ) -> None:
        super().__init__(f"simulated:{fps:g}fps")
        if not images_bgr and image_at is None:
            raise ValueError("give images_bgr or image_at")
        self.images = list(images_bgr)
        self.image_at = image_at
        self.fps = float(fps)
        self.duration = float(duration)
        self._index = 0
        self._t0 = 0.0

    def open(self) -> None:
        self._t0 = time.monotonic()
        first = self._image(0)
        self.size = (first.shape[1], first.shape[0])

    def _image(self, i: int) -> np.ndarray:
        return self.image_at(i) if self.image_at is not None else self.images[i % len(self.images)]

    def read(self) -> Frame | None:
        t = self._index / self.fps
        if t >= self.duration:
            return None
        delay = self._t0 + t - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        now = time.monotonic()
        frame = Frame(self._image(self._index), self._index, now - self._t0, now)
        self._index += 1
        return frame
