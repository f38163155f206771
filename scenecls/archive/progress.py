"""One progress line across all the videos of an archive run."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from ..progress import _clock


class ArchiveProgress:
    """``videos 12/40  1 failed  37%  18.2 video-s/s  ETA 0:03:10``, redrawn at most five
    times a second on a terminal (never into a pipe or a log).

    Completion is measured in bytes of input (videos in progress count with the fraction
    their worker reported), which tracks the work better than video counts when sizes
    differ; the rate is seconds of finished video per second of wall time.
    """

    def __init__(
        self, videos: int, total_bytes: int, enabled: bool = True, stream: TextIO | None = None
    ) -> None:
        self.stream = stream or sys.stderr
        self.enabled = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.videos = videos
        self.total_bytes = max(1, total_bytes)
        self._t0 = time.monotonic()
        self._last = 0.0
        self._shown = False

    def update(
        self,
        finished: int,
        failed: int,
        bytes_done: float,
        video_seconds: float,
        force: bool = False,
    ) -> None:
        """``finished`` videos (``failed`` of them failed), ``bytes_done`` of input
        including the done part of videos in progress, ``video_seconds`` annotated."""
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._last < 0.2:
            return
        self._last = now
        elapsed = max(1e-9, now - self._t0)
        fraction = min(1.0, bytes_done / self.total_bytes)
        eta = elapsed * (1 - fraction) / fraction if fraction > 0.005 else None
        line = (
            f"videos {finished}/{self.videos}"
            + (f"  {failed} failed" if failed else "")
            + f"  {100 * fraction:3.0f}%  {video_seconds / elapsed:6.1f} video-s/s"
            + (f"  ETA {_clock(eta)}" if eta is not None else "")
        )
        self.stream.write("\r" + line + "\x1b[K")
        self.stream.flush()
        self._shown = True

    def clear(self) -> None:
        """Remove the line (before a log message; the next update draws it again)."""
        if self._shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._shown = False

    close = clear
