"""The annotated video output."""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from ...errors import OutputError, UsageError
from ...interrupts import track_partial, untrack_partial
from ...types import Frame, Prediction, Segment
from .base import DiskWatch, RunInfo, Sink, check_writable

log = logging.getLogger("scenecls")

# .webm: VP8, which browsers play in a <video> element (mp4v in .mp4 they do not); about
# 120 frames/s at 640x360 on one core. (OpenCV prints one line about the tag for each
# .webm it opens, and writes VP8 all the same.)
_FOURCC = {
    ".mp4": "mp4v",
    ".m4v": "mp4v",
    ".mov": "mp4v",
    ".avi": "MJPG",
    ".mkv": "mp4v",
    ".webm": "VP80",
}
_END = object()


class VideoSink(Sink):
    """Writes every input frame, annotated, at the input's size and frame rate.

    Encoding runs on its own thread behind a bounded queue. The file is written under a
    temporary name and renamed when finalised, so the output name only ever holds a
    complete, playable video (also after Ctrl-C).
    """

    needs_overlay = True
    needs_every_frame = True

    def __init__(self, path: str | Path, fps: float | None = None, queue_size: int = 32) -> None:
        self.path = check_writable(Path(path), "--out")
        if self.path.suffix.lower() not in _FOURCC:
            raise UsageError(f"--out {path}: use one of {', '.join(sorted(_FOURCC))}")
        self.fps = fps
        self._tmp = self.path.with_name(f".{self.path.stem}.partial{self.path.suffix}")
        self._queue: queue.Queue[object] = queue.Queue(maxsize=queue_size)
        self._thread: threading.Thread | None = None
        self._writer: cv2.VideoWriter | None = None
        self._error: BaseException | None = None
        self.frames_written = 0
        self._disk = DiskWatch(self.path)

    def start(self, info: RunInfo) -> None:
        self._fps = self.fps or info.fps or 25.0
        track_partial(self._tmp)  # removed if the process is forced to exit
        self._thread = threading.Thread(target=self._run, name="scenecls-video", daemon=True)
        self._thread.start()

    def _open(self, image: np.ndarray) -> cv2.VideoWriter:
        h, w = image.shape[:2]
        fourcc = cv2.VideoWriter_fourcc(*_FOURCC[self.path.suffix.lower()])
        writer = cv2.VideoWriter(str(self._tmp), fourcc, self._fps, (w, h))
        if not writer.isOpened():
            raise OutputError(f"cannot write video {self.path}: OpenCV has no encoder for it")
        return writer

    def _run(self) -> None:
        try:
            while True:
                item = self._queue.get()
                if item is _END:
                    break
                if self._error is not None:
                    continue  # keep draining so the producer never blocks
                image = item  # type: ignore[assignment]
                if self._writer is None:
                    self._writer = self._open(image)  # type: ignore[arg-type]
                self._writer.write(image)
                self.frames_written += 1
        except BaseException as e:
            self._error = e
            while self._queue.get() is not _END:
                pass

    def on_frame(
        self,
        frame: Frame,
        prediction: Prediction | None,
        analysed: bool,
        annotated_bgr: object | None = None,
    ) -> None:
        if self._error is not None:
            raise OutputError(f"writing {self.path} failed: {self._error}")
        self._disk.check()
        self._queue.put(annotated_bgr if annotated_bgr is not None else frame.image_bgr)

    def finish(self, segments: Sequence[Segment]) -> None:
        if self._thread is not None:
            self._queue.put(_END)
            self._thread.join()
            self._thread = None
        if self._writer is not None:
            self._writer.release()
            self._writer = None
            if self._error is None and not _plays(self._tmp, self.frames_written):
                # OpenCV does not report failed writes: check the finished file instead
                self._error = OSError(
                    "the video could not be completed (disk full, or a write error); it was removed"
                )
            if self._error is None:
                os.replace(self._tmp, self.path)
        self._tmp.unlink(missing_ok=True)
        untrack_partial(self._tmp)
        if self._error is not None:
            raise OutputError(f"writing {self.path} failed: {self._error}")


def _plays(path: Path, frames: int) -> bool:
    """Whether the video at ``path`` opens, decodes its first frame, and declares at
    least most of the ``frames`` written to it (when it declares a count at all)."""
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    try:
        if not cap.isOpened() or not cap.read()[0]:
            return False
        count = cap.get(cv2.CAP_PROP_FRAME_COUNT)
        return count <= 0 or count >= 0.95 * frames
    finally:
        cap.release()
