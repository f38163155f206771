"""One progress bar across all the videos of an archive run."""

from __future__ import annotations

from typing import TextIO

from ..video.progress import ProgressBar

_STEPS = 1000  # the bar counts thousandths of the archive's bytes


class ArchiveProgress(ProgressBar):
    """``videos 12/40, 1 failed:  37%|███▋      | 18.2 video-s/s  ETA 0:03:10`` on a
    terminal (never into a pipe or a log).

    Completion is measured in bytes of input (videos in progress count with the fraction
    their worker reported), which tracks the work better than video counts when sizes
    differ; the rate is seconds of finished video per second of wall time.
    """

    def __init__(
        self, videos: int, total_bytes: int, enabled: bool = True, stream: TextIO | None = None
    ) -> None:
        super().__init__(
            enabled,
            stream,
            total=_STEPS,
            desc=f"videos 0/{videos}",
            bar_format="{desc}: {percentage:3.0f}%|{bar}| {postfix}ETA {remaining}",
        )
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
        if self.bar is None:
            return
        desc = f"videos {finished}/{self.videos}" + (f", {failed} failed" if failed else "")
        if desc != self.bar.desc:
            self.bar.set_description_str(desc, refresh=False)
        elapsed = max(1e-9, self.bar.format_dict["elapsed"])
        self.bar.set_postfix_str(f"{video_seconds / elapsed:.1f} video-s/s  ", refresh=False)
        steps = round(_STEPS * min(1.0, bytes_done / self.total_bytes))
        self.bar.update(steps - self.bar.n)
        if force:
            self.bar.refresh()
