"""Video files, webcams and network streams through OpenCV's video I/O (FFmpeg)."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import cv2
import numpy as np

from ..errors import InputError
from ..types import Frame
from .base import FrameSource

log = logging.getLogger("scenecls")

# Decoder and capture-backend messages ("moov atom not found", camera probing warnings)
# would bury our one-line errors: silence OpenCV's and FFmpeg's own logs unless the user
# set them. FFmpeg's level is read when OpenCV first opens a file, so set it at import.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET
if "OPENCV_LOG_LEVEL" not in os.environ:
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)


class _CaptureSource(FrameSource):
    """Shared handling of a ``cv2.VideoCapture``: opening, properties, decoding."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self._cap: cv2.VideoCapture | None = None
        self._index = 0

    def _adopt(self, cap: cv2.VideoCapture, what: str, fix: str) -> None:
        """Keep an opened capture and read its nominal rate and size, or fail clearly."""
        if not cap.isOpened():
            cap.release()
            raise InputError(f"cannot open {what}: {fix}")
        self._cap = cap
        fps = cap.get(cv2.CAP_PROP_FPS)
        self.fps = fps if fps and 0 < fps < 1000 else None
        w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        self.size = (w, h) if w > 0 and h > 0 else None

    def _decode(self) -> np.ndarray | None:
        """The next image as HxWx3 uint8 BGR, or None at the end."""
        if self._cap is None:
            raise InputError(f"{self.name} is not open")
        ok, image = self._cap.read()
        if not ok or image is None:
            return None
        if image.ndim == 2:
            return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        if image.shape[2] == 4:
            return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
        return image

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class VideoFileSource(_CaptureSource):
    """A recorded video (anything FFmpeg reads, animated GIF included).

    Timestamps are the container's presentation times (seconds from the stream start),
    so variable frame rate files keep their real timing. Only when the container has no
    timestamps does the source fall back to index / fps.
    """

    live = False

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__(str(path))
        self.path = Path(path)
        self._last_t = -1.0

    def open(self) -> None:
        if not self.path.exists():
            raise InputError(f"video {self.path} does not exist: check the path")
        if self.path.is_file() and self.path.stat().st_size == 0:
            raise InputError(f"video {self.path} is empty (0 bytes)")
        cap = cv2.VideoCapture(str(self.path), cv2.CAP_FFMPEG)
        self._adopt(cap, f"{self.path} as a video", "it is not in a format FFmpeg can read")
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        self.frame_count = count if count > 0 else None

    def read(self) -> Frame | None:
        image = self._decode()
        if image is None:
            return None
        t = self._cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0  # type: ignore[union-attr]
        if self._index > 0 and t <= self._last_t:  # no usable timestamps in this container
            t = self._index / self.fps if self.fps else self._last_t + 1 / 30
        self._last_t = t
        frame = Frame(image, self._index, t, time.monotonic())
        self._index += 1
        return frame


class LiveCaptureSource(_CaptureSource):
    """A webcam (integer index) or a network stream URL (rtsp://, http(s)://...).

    Timestamps are the stream clock: seconds since the source was opened, taken when
    each frame arrives.
    """

    live = True

    def __init__(self, target: int | str) -> None:
        super().__init__(str(target))
        self.target = target
        self._t0 = 0.0

    def open(self) -> None:
        if isinstance(self.target, int):
            self._adopt(
                cv2.VideoCapture(self.target),
                f"webcam {self.target}",
                "check that a camera is connected (ls /dev/video*) and not in use",
            )
        else:
            self._adopt(
                cv2.VideoCapture(self.target, cv2.CAP_FFMPEG),
                f"stream {self.target}",
                "check the URL and that the server is up",
            )
        self._t0 = time.monotonic()

    def read(self) -> Frame | None:
        image = self._decode()
        if image is None:
            return None
        now = time.monotonic()
        frame = Frame(image, self._index, now - self._t0, now)
        self._index += 1
        return frame
