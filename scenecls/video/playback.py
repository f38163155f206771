"""Playback timing for the window: when each frame of a file is due on screen, and
what the playback did. No GUI here (see :mod:`.sinks.window`)."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import UsageError

LATE = 0.25
"""A frame more than this many seconds late (the analysis fell behind) restarts the
playback clock from itself instead of rushing the frames after it."""


def parse_speed(text: str) -> float | None:
    """``--speed``: a factor over 0 (1: the video's own speed) or ``max`` (None: no
    waiting). Raises :class:`UsageError` otherwise."""
    if text.strip().lower() == "max":
        return None
    try:
        speed = float(text)
    except ValueError:
        speed = float("nan")
    if not 0 < speed <= 1000:
        raise UsageError(f"--speed {text}: give a factor such as 0.5, 1 or 4, or max")
    return speed


class PlaybackClock:
    """When each frame is due on screen, in ``time.monotonic()`` seconds.

    The first frame shown anchors the clock; frame ``t`` (presentation time, seconds) is
    then due ``(t - t0) / speed`` seconds after it. A frame shown more than ``late``
    seconds after it was due (the analysis fell behind), or one earlier than the frame
    before (the input restarted), re-anchors the clock at itself. A pause moves the
    anchor by its length. ``speed`` None: every frame is due at once.
    """

    def __init__(self, speed: float | None, late: float = LATE) -> None:
        self.speed = speed
        self.late = late
        self._anchor: tuple[float, float] | None = None  # (wall, t)
        self._last_t: float | None = None
        self.stalls = 0  # re-anchorings because a frame came late

    def due(self, t: float) -> float | None:
        """When frame ``t`` should be shown, or None: at once."""
        if self.speed is None or self._anchor is None:
            return None
        wall, t0 = self._anchor
        return wall + (t - t0) / self.speed

    def shown(self, t: float, now: float) -> None:
        """Frame ``t`` went on screen at ``now``."""
        due = self.due(t)
        if due is None or (self._last_t is not None and t < self._last_t):
            self._anchor = (now, t)
        elif now - due > self.late:
            self._anchor = (now, t)
            self.stalls += 1
        self._last_t = t

    def shift(self, seconds: float) -> None:
        """The picture stood still for ``seconds`` (a pause): move everything due later."""
        if self._anchor is not None:
            wall, t0 = self._anchor
            self._anchor = (wall + seconds, t0)


@dataclass
class PlaybackStats:
    """What the window showed: ``frames`` shown, spanning ``video_seconds`` of
    presentation time in ``wall_seconds`` (first frame on screen to the last frame's
    end, pauses excluded); ``stalls``: times the picture waited for the analysis."""

    frames: int = 0
    video_seconds: float = 0.0
    wall_seconds: float = 0.0
    paused_seconds: float = 0.0
    stalls: int = 0
    snapshots: int = 0

    def summary(self, speed: float | None, live: bool) -> str:
        played = self.wall_seconds
        rate = f"{self.video_seconds / played:.2f}x" if played > 0 else "-"
        pace = (
            "live"
            if live
            else "as fast as the analysis ran (--speed max)"
            if speed is None
            else f"at {rate} (asked {speed:g}x)"
        )
        return (
            f"window      showed {self.frames} frames ({self.video_seconds:.1f} s of video) "
            f"in {played:.1f} s {pace}; waited for the analysis {self.stalls} times"
            + (f"; paused {self.paused_seconds:.1f} s" if self.paused_seconds else "")
            + (f"; {self.snapshots} snapshot(s)" if self.snapshots else "")
        )
