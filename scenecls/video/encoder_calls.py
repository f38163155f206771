"""Counting the image encoder's calls of a run by batch size: how a run really used it
(``scenecls run``'s summary, ``bench``, the kitchen service's status)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any


@dataclass
class EncoderCalls:
    """The image encoder's calls in a run, by batch size: ``calls[n]`` calls of ``n``
    frames took ``seconds[n]`` seconds in all (preprocessing not included)."""

    calls: dict[int, int] = field(default_factory=dict)
    seconds: dict[int, float] = field(default_factory=dict)

    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, frames: int, seconds: float) -> None:
        """One call of ``frames`` frames that took ``seconds``."""
        with self._lock:
            self.calls[frames] = self.calls.get(frames, 0) + 1
            self.seconds[frames] = self.seconds.get(frames, 0.0) + seconds

    @property
    def total(self) -> int:
        """Calls in all."""
        return sum(self.calls.values())

    def ms_per_call(self, frames: int) -> float | None:
        """Mean milliseconds of a call of ``frames`` frames (None: there was none)."""
        n = self.calls.get(frames, 0)
        return 1000 * self.seconds[frames] / n if n else None

    def summary(self) -> str:
        """One line: calls at batch 1 and batched, and their cost per frame."""
        if not self.calls:
            return "none"
        parts = []
        one = self.ms_per_call(1)
        if one is not None:
            parts.append(f"{self.calls[1]} of 1 frame ({one:.1f} ms each)")
        batched = {n: c for n, c in self.calls.items() if n > 1}
        if batched:
            frames = sum(n * c for n, c in batched.items())
            seconds = sum(self.seconds[n] for n in batched)
            parts.append(
                f"{sum(batched.values())} batched ({frames} frames, "
                f"{min(batched)}-{max(batched)} a call, {1000 * seconds / frames:.1f} ms a frame)"
            )
        return f"{self.total} calls: " + ", ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """For JSON: ``{"calls": {n: calls}, "seconds": {n: seconds}}`` (keys as text)."""
        with self._lock:
            return {
                "calls": {str(n): c for n, c in sorted(self.calls.items())},
                "seconds": {str(n): round(t, 6) for n, t in sorted(self.seconds.items())},
            }
