"""One progress line across all the videos of an archive run."""

from __future__ import annotations

from typing import TextIO

from ..progress import ProgressLine, _clock


class ArchiveProgress(ProgressLine):
    """``videos 12/40  1 failed  37%  18.2 video-s/s  ETA 0:03:10`` on a terminal (never
    into a pipe or a log).

    Completion is measured in bytes of input (videos in progress count with the fraction
    their worker reported), which tracks the work better than video counts when sizes
    differ; the rate is seconds of finished video per second of wall time.
    """

    def __init__(
        self, videos: int, total_bytes: int, enabled: bool = True, stream: TextIO | None = None
    ) -> None:
        super().__init__(enabled, stream)
        self.videos = videos
        self.total_bytes = max(1, total_bytes)

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
        elapsed = self._due(force)
        if elapsed is None:
            return
        fraction = min(1.0, bytes_done / self.total_bytes)
        eta = elapsed * (1 - fraction) / fraction if fraction > 0.005 else None
        self._draw(
            f"videos {finished}/{self.videos}"
            + (f"  {failed} failed" if failed else "")
            + f"  {100 * fraction:3.0f}%  {video_seconds / elapsed:6.1f} video-s/s"
            + (f"  ETA {_clock(eta)}" if eta is not None else "")
        )
