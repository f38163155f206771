"""Smoothing: noisy per-frame scores in, stable labels and time segments out.

All parameters are in seconds, never frames, so results do not depend on the frame
rate (variable frame rate included):

- ``half_life``: EMA on the probabilities; a frame ``dt`` seconds after the previous one
  gets weight ``1 - 2 ** (-dt / half_life)``.
- ``min_dwell``: a new label must stay the best for this long before it replaces the
  current one (hysteresis); its segment starts when it is confirmed.
- ``switch_margin``: ... and lead the current label by at least this much probability.

A frame's probabilities may sum to less than 1: what is missing is the probability that
the frame is none of the labels (a taught set's frame far from every example), and
``unknown`` leads when it is more than the best label's.

Modes: ``none`` (raw per-frame labels), ``ema`` (EMA, switch as soon as another label
leads), ``hysteresis`` (min-dwell and margin on raw probabilities), ``ema+hysteresis``
(the default: both). A smoother's :meth:`Smoother.update` takes the frame's
:class:`~scenecls.types.Scores` and time and returns a :class:`~scenecls.types.Prediction`;
:class:`SegmentTracker` turns the sequence of predictions into :class:`Segment` s.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise
from math import fsum

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
    """Stateful: feed frames in time order with :meth:`update` (one frame, a
    :class:`Prediction`) or :meth:`run` (many frames at once, plain arrays: what
    ``scenecls relabel`` uses). Both take the same steps in float64, so they give the
    same labels and confidences to the last bit."""

    def __init__(self, config: SmoothingConfig | None = None) -> None:
        self.config = config or SmoothingConfig()
        self.reset()

    def reset(self) -> None:
        """Forget all history (for example after a gap in a live stream)."""
        self._probs: list[float] | np.ndarray | None = None
        self._last_time: float | None = None
        self._current: int | None = None  # label index, -1: unknown
        self._pending: int | None = None
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
        labels, confidences = self.run(scores.probabilities[None], np.array([time]))
        current = int(labels[0])
        label = scores.labels[current] if current >= 0 else UNKNOWN
        probs = np.asarray(self._probs, np.float32)
        return Prediction(time, label, float(confidences[0]), raw, probs)

    def run(self, probabilities: np.ndarray, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Smooth ``(N, K)`` float32 per-frame probabilities at ``(N,)`` times (s): the
        ``(N,)`` int64 smoothed label indices (-1: unknown) and ``(N,)`` float64
        confidences. :meth:`update` is this for one frame, so both give the same bits."""
        cfg = self.config
        ema, hysteresis = self._ema, self._hysteresis
        half_life, floor = cfg.half_life, cfg.min_confidence
        margin, dwell = cfg.switch_margin, cfg.min_dwell - 1e-9
        k = probabilities.shape[1]
        as_lists = k <= _LIST_LABELS  # few labels: Python floats beat NumPy per frame
        rows = probabilities.tolist() if as_lists else probabilities.astype(np.float64)
        indices = range(k)
        prev, last = self._probs, self._last_time
        current, pending, since = self._current, self._pending, self._pending_since
        out_labels: list[int] = []
        out_conf: list[float] = []
        for t, x in zip(times.tolist(), rows, strict=True):
            if prev is None or not ema:
                probs = x
            else:
                a = 1.0 - 2.0 ** (-max(0.0, t - last) / half_life)  # type: ignore[operator]
                if as_lists:
                    probs = [q + a * (v - q) for q, v in zip(prev, x, strict=True)]
                else:  # the same IEEE operations, element by element
                    probs = prev + a * (x - prev)
            prev, last = probs, t
            best = max(indices, key=probs.__getitem__) if as_lists else int(np.argmax(probs))
            top = float(probs[best])
            # what no label holds (a taught set's frame far from every example: all of
            # it) is the probability of unknown
            rest = 1.0 - (fsum(probs) if as_lists else float(probs.sum()))
            candidate = best if top >= floor and top >= rest else -1
            if current is None:
                current = candidate  # the first frame decides the first segment
            elif candidate != current:
                if not hysteresis:
                    current = candidate
                else:
                    ahead = float(probs[candidate]) if candidate >= 0 else 0.0
                    now = float(probs[current]) if current >= 0 else 0.0
                    if candidate < 0 or ahead - now >= margin:
                        if pending != candidate:
                            pending, since = candidate, t
                        if t - since >= dwell:
                            current = candidate
                    else:
                        pending = None
            if candidate == current:
                pending = None
            out_labels.append(current)
            out_conf.append(float(probs[current]) if current >= 0 else top)
        self._probs, self._last_time = prev, last
        self._current, self._pending, self._pending_since = current, pending, since
        return np.array(out_labels, np.int64), np.array(out_conf, np.float64)


_LIST_LABELS = 32  # up to this many labels, Python floats are faster than NumPy per frame


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
