"""Expected-label checking for one camera: mismatch episodes and their alerts.

Pure logic with times in seconds (any monotonic clock), so it is tested without video.
An *episode* starts when an expectation is set and the smoothed label differs from it.
If the label still differs ``alert_after`` seconds later, one alert is raised for the
episode. The episode ends when the label matches again (the alert, if any, is resolved),
or when the expectation is cleared or replaced (resolved with that reason).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Expectation:
    """What should be at the pass: ``label``, an optional order id, and when it was set."""

    label: str
    order: str | None
    set_at: float

    def to_json(self) -> dict[str, Any]:
        return {"label": self.label, "order": self.order, "set_at": round(self.set_at, 3)}


@dataclass
class Alert:
    """One mismatch episode that lasted longer than ``alert_after``."""

    id: int
    camera: str
    expected: str
    seen: str
    confidence: float
    order: str | None
    started: float
    raised: float
    resolved: float | None = None
    resolution: str | None = None
    snapshot: str | None = None  # the JPEG's file name in --snapshots (never a path)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "camera": self.camera,
            "expected": self.expected,
            "seen": self.seen,
            "confidence": round(self.confidence, 4),
            "order": self.order,
            "started": round(self.started, 3),
            "raised": round(self.raised, 3),
            "resolved": None if self.resolved is None else round(self.resolved, 3),
            "resolution": self.resolution,
            "snapshot": self.snapshot,
        }


@dataclass
class MismatchMonitor:
    """Tracks one camera's expectation and raises/resolves alerts.

    Each method returns ``(kind, alert)`` pairs for what happened: ``alert`` when a
    mismatch outlasted ``alert_after`` seconds, ``resolved`` when it ended. ``ids``
    numbers the alerts (share one iterator between cameras for unique ids).
    """

    camera: str
    alert_after: float = 2.0
    expectation: Expectation | None = None
    mismatch_since: float | None = None
    active: Alert | None = None
    ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def expect(self, label: str, order: str | None, now: float) -> list[tuple[str, Alert]]:
        """Set (or replace) the expected label; ends the current episode."""
        done = self._end(now, "expectation changed")
        self.expectation = Expectation(label, order, now)
        return done

    def clear(self, now: float) -> list[tuple[str, Alert]]:
        """Remove the expectation; ends the current episode."""
        done = self._end(now, "expectation cleared")
        self.expectation = None
        return done

    def update(self, label: str, confidence: float, now: float) -> list[tuple[str, Alert]]:
        """Feed the smoothed ``label`` at time ``now``."""
        exp = self.expectation
        if exp is None:
            return []
        if label == exp.label:
            return self._end(now, "matched")
        if self.mismatch_since is None:
            self.mismatch_since = now
        if self.active is None and now - self.mismatch_since >= self.alert_after:
            self.active = Alert(
                id=next(self.ids),
                camera=self.camera,
                expected=exp.label,
                seen=label,
                confidence=confidence,
                order=exp.order,
                started=self.mismatch_since,
                raised=now,
            )
            return [("alert", self.active)]
        return []

    def _end(self, now: float, why: str) -> list[tuple[str, Alert]]:
        self.mismatch_since = None
        alert, self.active = self.active, None
        if alert is None:
            return []
        alert.resolved = now
        alert.resolution = why
        return [("resolved", alert)]
