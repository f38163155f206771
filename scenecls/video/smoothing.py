"""Smoothing: noisy per-frame scores in, stable labels and time segments out.

All parameters are in seconds, never frames, so results do not depend on the frame
rate (variable frame rate included):

- ``half_life``: EMA on the probabilities; a frame ``dt`` seconds after the previous one
  gets weight ``1 - 2 ** (-dt / half_life)``.
- ``min_dwell``: a new label must stay the best for this long before it replaces the
  current one (hysteresis); its segment starts when it is confirmed.
- ``switch_margin``: ... and lead the current label by at least this much probability.

Modes: ``none`` (raw per-frame labels), ``ema`` (EMA, switch as soon as another label
leads), ``hysteresis`` (min-dwell and margin on raw probabilities), ``ema+hysteresis``
(the default: both). A smoother's :meth:`Smoother.update` takes the frame's
:class:`~scenecls.types.Scores` and time and returns a :class:`~scenecls.types.Prediction`;
:class:`SegmentTracker` turns the sequence of predictions into :class:`Segment` s.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import numpy as np

from ..errors import UsageError
from ..model.labels import UNKNOWN
from ..model.scoring import classify_scores
from ..types import Prediction, Scores, Segment

MODES = ("ema+hysteresis", "ema", "hysteresis", "none")


@dataclass(frozen=True)
class SmoothingConfig:
    """Smoothing parameters, all times in seconds."""

    mode: str = "ema+hysteresis"
    half_life: float = 0.25
    min_dwell: float = 0.5
    switch_margin: float = 0.05
    min_confidence: float = 0.0
    top_k: int = 3

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise UsageError(f"--smoothing must be one of {', '.join(MODES)}, not {self.mode!r}")
        if self.half_life <= 0 and "ema" in self.mode:
            raise UsageError(f"--half-life must be more than 0 seconds, not {self.half_life}")
        if self.min_dwell < 0:
            raise UsageError(f"--min-dwell must be 0 seconds or more, not {self.min_dwell}")
        if not 0 <= self.switch_margin < 1:
            raise UsageError(
                f"--switch-margin is a probability in [0, 1), not {self.switch_margin}"
            )
        if not 0 <= self.min_confidence <= 1:
            raise UsageError(f"--min-confidence is in [0, 1], not {self.min_confidence}")

    @classmethod
    def from_args(cls, args: object) -> SmoothingConfig:
        """The settings of a parsed command line with the smoothing options (``top_k``
        where the command has ``--top-k``)."""
        return cls(
            args.smoothing,  # type: ignore[attr-defined]
            args.half_life,  # type: ignore[attr-defined]
            args.min_dwell,  # type: ignore[attr-defined]
            args.switch_margin,  # type: ignore[attr-defined]
            args.min_confidence,  # type: ignore[attr-defined]
            getattr(args, "top_k", 3),
        )


class Smoother:
    """Stateful: feed frames in time order with :meth:`update`."""

    def __init__(self, config: SmoothingConfig | None = None) -> None:
        self.config = config or SmoothingConfig()
        self.reset()

    def reset(self) -> None:
        """Forget all history (for example after a gap in a live stream)."""
        self._probs: np.ndarray | None = None
        self._last_time: float | None = None
        self._current: str | None = None
        self._pending: str | None = None
        self._pending_since = 0.0

    @property
    def _ema(self) -> bool:
        return "ema" in self.config.mode

    @property
    def _hysteresis(self) -> bool:
        return "hysteresis" in self.config.mode

    def update(self, scores: Scores, time: float) -> Prediction:
        """Scores of the frame at ``time`` seconds -> its smoothed :class:`Prediction`."""
        cfg = self.config
        raw = classify_scores(scores, cfg.top_k, cfg.min_confidence)
        p = scores.probabilities.astype(np.float32)
        if self._probs is None or not self._ema:
            probs = p.copy()
        else:
            dt = max(0.0, time - (self._last_time if self._last_time is not None else time))
            alpha = 1.0 - 2.0 ** (-dt / cfg.half_life)
            probs = self._probs + np.float32(alpha) * (p - self._probs)
        self._probs = probs
        self._last_time = time
        labels = scores.labels
        best = int(np.argmax(probs))
        candidate = labels[best] if probs[best] >= cfg.min_confidence else UNKNOWN

        def prob(label: str | None) -> float:
            if label is None or label == UNKNOWN:
                return 0.0
            return float(probs[labels.index(label)])

        if self._current is None:
            self._current = candidate  # the first frame decides the first segment
        elif candidate != self._current:
            if not self._hysteresis:
                self._current = candidate
            else:
                leads = (
                    candidate == UNKNOWN
                    or prob(candidate) - prob(self._current) >= cfg.switch_margin
                )
                if not leads:
                    self._pending = None
                else:
                    if self._pending != candidate:
                        self._pending, self._pending_since = candidate, time
                    if time - self._pending_since >= cfg.min_dwell - 1e-9:
                        self._current = candidate
        if candidate == self._current:
            self._pending = None
        confidence = prob(self._current) if self._current != UNKNOWN else float(probs[best])
        return Prediction(time, self._current, confidence, raw, probs)


class SegmentTracker:
    """Turns time-ordered (time, label, confidence) into contiguous segments.

    A segment opens at the time of the first frame with its label and closes at the
    time of the first frame with another label; :meth:`close` ends the open segment at
    ``end`` (the end of the last frame). Segments are therefore sorted, and contiguous
    except where the caller closed one at a gap in the input.
    ``keep``: remember only the newest ``keep`` closed segments (a service that runs for
    days); None keeps all.
    """

    def __init__(self, keep: int | None = None) -> None:
        self.segments: list[Segment] = []
        self.keep = keep
        self._label: str | None = None
        self._start = 0.0
        self._conf_sum = 0.0
        self._count = 0
        self.last_time: float | None = None

    @property
    def open_label(self) -> str | None:
        return self._label

    def open_segment(self, now: float) -> Segment | None:
        """The segment in progress, as if it ended at ``now``."""
        if self._label is None:
            return None
        return Segment(self._label, self._start, max(now, self._start), self._mean())

    def _mean(self) -> float:
        return self._conf_sum / self._count if self._count else 0.0

    def update(self, time: float, label: str, confidence: float) -> tuple[bool, Segment | None]:
        """Add one analysed frame. Returns (a segment started here, the segment it closed)."""
        closed = None
        started = False
        if self._label is None:
            self._label, self._start, started = label, time, True
        elif label != self._label:
            closed = Segment(self._label, self._start, max(time, self._start), self._mean())
            self._remember(closed)
            self._label, self._start, self._conf_sum, self._count = label, time, 0.0, 0
            started = True
        self._conf_sum += confidence
        self._count += 1
        self.last_time = time
        return started, closed

    def close(self, end: float) -> Segment | None:
        """End the open segment at ``end`` seconds; returns it (None when nothing is open)."""
        if self._label is None:
            return None
        seg = Segment(self._label, self._start, max(end, self._start), self._mean())
        self._remember(seg)
        self._label, self._conf_sum, self._count = None, 0.0, 0
        return seg

    def _remember(self, segment: Segment) -> None:
        self.segments.append(segment)
        if self.keep is not None and len(self.segments) > self.keep:
            del self.segments[: len(self.segments) - self.keep]

    def track(self, prediction: Prediction) -> Prediction:
        """Record a smoothed prediction; returns it with segment_started/closed filled in."""
        started, closed = self.update(prediction.time, prediction.label, prediction.confidence)
        if not started and closed is None:
            return prediction
        return Prediction(
            prediction.time,
            prediction.label,
            prediction.confidence,
            prediction.raw,
            prediction.probabilities,
            started,
            closed,
        )


def count_switches(labels: list[str]) -> int:
    """How many times consecutive labels differ."""
    return sum(1 for a, b in pairwise(labels) if a != b)
