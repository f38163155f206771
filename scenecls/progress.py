"""A one-line progress display on stderr that does not fight the logs."""

from __future__ import annotations

import sys
import time
from typing import TextIO


def _clock(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class ProgressLine:
    """One status line redrawn in place at most 5 times a second; shown only when
    ``enabled`` and the stream is a terminal, so logs and pipes stay clean. Subclasses
    build the text and call :meth:`_draw`."""

    def __init__(self, enabled: bool = True, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self._t0 = time.monotonic()
        self._last = 0.0
        self._shown = False

    def _due(self, force: bool) -> float | None:
        """Seconds since the start when a redraw is due now, else None."""
        if not self.enabled:
            return None
        now = time.monotonic()
        if not force and now - self._last < 0.2:
            return None
        self._last = now
        return max(1e-9, now - self._t0)

    def _draw(self, line: str) -> None:
        self.stream.write("\r" + line + "\x1b[K")
        self.stream.flush()
        self._shown = True

    def clear(self) -> None:
        """Remove the line (before a log message; the next update draws it again)."""
        if self._shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._shown = False

    def close(self) -> None:
        self.clear()


class Progress(ProgressLine):
    """``frames 120/377  32%  45.1 fps  ETA 0:00:05`` for one video."""

    def update(self, frames: int, total: int | None = None, force: bool = False) -> None:
        """Report ``frames`` done out of ``total`` (None: unknown)."""
        elapsed = self._due(force)
        if elapsed is None:
            return
        fps = frames / elapsed
        if total:
            pct = min(100.0, 100.0 * frames / total)
            eta = max(0, total - frames) / fps if fps > 0 else 0.0
            self._draw(f"frames {frames}/{total} {pct:3.0f}%  {fps:6.1f} fps  ETA {_clock(eta)}")
        else:
            self._draw(f"frames {frames}  {fps:6.1f} fps  {_clock(elapsed)}")
