"""Sampling a few frames from a video, for tests, benchmarks and fidelity checks."""

from __future__ import annotations

import os

import numpy as np

from .opencv import VideoFileSource


def sample_frames(path: str | os.PathLike[str], count: int) -> list[np.ndarray]:
    """``count`` frames spread evenly over a video or animated GIF (HxWx3 uint8 BGR)."""
    source = VideoFileSource(path)
    source.open()
    try:
        frames = []
        while (frame := source.read()) is not None:
            frames.append(frame.image_bgr)
    finally:
        source.close()
    step = max(1, len(frames) // max(1, count))
    return frames[::step][:count]
