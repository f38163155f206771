"""Files look ahead: encode the ends of a run of changing frames, and the middle only
where the ends disagree.

A live source must decide frame by frame (:class:`~.gate.ChangeGate`). A file is read
ahead anyway, so its frames are planned a window at a time (the pipeline uses windows of
``2 * max_reuse`` seconds of video). Within a window:

1. Frames whose thumbnail has not changed from the last encoded frame's (the change
   gate's test) form a run that ends at ``max_reuse`` seconds or at the window's end;
   the frame ending it is encoded.
2. At the first frame that changed, the last frame of the window still within
   ``max_reuse`` seconds of the last encoded one is encoded instead.
3. Every frame between the last encoded frame and the new one, unchanged or not, is then
   checked against both. The two ends *agree* when their embeddings' cosine is at least
   ``agreement`` and no frame between them is further, in thumbnail terms, from the
   nearer end than the ends are from each other (an object that comes and goes between
   them is not missed). Ends that disagree are split: the middle frame is encoded and
   both halves are checked the same way, level by level (one encoder call per level).
4. Between agreeing ends, frames that all look like one end or the other get an
   embedding between the two, weighted by how close each frame's thumbnail is to either
   end (a cut falls to one side). Where there is movement between them, the middle
   frame is encoded as a probe: when its embedding is within ``probe_agreement`` of the
   interpolation, the span is interpolated through it; when not (the scene went
   somewhere and came back), both halves are checked again.

A continuous change (a person walking through the scene) thus costs a few encodes a
second instead of one per frame, while every frame's embedding stays within the
agreement of its own (measured by ``scenecls bench``), and a drift the thumbnails do not
show (a small, low-contrast movement) is caught when the encoded ends disagree. Unlike a
live source, a file never reuses an embedding without checking it against the next
encoded frame: each window ends with an encode.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..model.scoring import mix_rows
from .gate import TIME_EPSILON, GateConfig, mean_difference, thumbnail, thumbnail_difference

Encode = Callable[[list[int]], np.ndarray]
"""Encodes the frames at these window positions: ``(len(positions), D)`` float32 unit rows."""


@dataclass
class _Anchor:
    """An encoded frame: its time (s), ``(h, 64)`` float32 thumbnail, ``(D,)`` float32
    unit embedding, and its position in the window (-1: encoded in an earlier window)."""

    time: float
    thumb: np.ndarray
    embedding: np.ndarray
    position: int = -1


@dataclass(frozen=True)
class Provenance:
    """Where each frame's embedding of a window came from: frame ``i``'s is
    ``scoring.mix_rows(E[left[i]], E[right[i]], weight[i])`` of the encoded frames at those window
    positions (-1: the last frame encoded before the window), or, when ``mixed[i]`` is
    False, a copy of ``E[left[i]]`` (the frame itself when it was encoded). ``left``,
    ``right``: ``(N,)`` int64; ``weight``: ``(N,)`` float64; ``mixed``: ``(N,)`` bool."""

    left: np.ndarray
    right: np.ndarray
    weight: np.ndarray
    mixed: np.ndarray

    @classmethod
    def own(cls, n: int) -> Provenance:
        """Every frame of ``n`` encoded itself."""
        pos = np.arange(n, dtype=np.int64)
        return cls(pos, pos.copy(), np.zeros(n), np.zeros(n, bool))


class LookaheadGate:
    """Plans which frames of a window of file frames to encode (see the module docstring)
    and gives every frame an embedding.

    Counters as :class:`~.gate.ChangeGate`: ``frames``, ``encoded`` and ``seconds`` (time
    spent planning, thumbnails included, the encoder's time not).
    """

    def __init__(self, config: GateConfig | None = None) -> None:
        self.config = config or GateConfig()
        self.frames = 0
        self.encoded = 0
        self.seconds = 0.0
        self._anchor: _Anchor | None = None
        self.provenance = Provenance.own(0)
        """Where the embeddings of the last planned window came from."""

    def reset(self) -> None:
        """Forget the last encoded frame: the next window starts with an encode."""
        self._anchor = None

    def plan(
        self, images_bgr: Sequence[np.ndarray], times: Sequence[float], encode: Encode
    ) -> tuple[np.ndarray, np.ndarray]:
        """Embeddings for a window of consecutive frames.

        ``images_bgr``: N frames, H x W x 3 uint8 BGR, in time order; ``times``: their
        timestamps in seconds; ``encode(positions)`` runs the image encoder on the frames
        at those positions. Returns ``(N, D)`` float32 unit embeddings and an ``(N,)``
        bool array saying which frames were encoded.
        """
        n = len(images_bgr)
        self.frames += n
        self.provenance = Provenance.own(n)
        if n == 0:
            return np.zeros((0, 0), np.float32), np.zeros(0, bool)
        if not self.config.enabled:
            self.encoded += n
            return encode(list(range(n))), np.ones(n, bool)
        start = time.perf_counter()
        encoder_seconds = 0.0
        thumbs = [thumbnail(image) for image in images_bgr]
        rows: list[np.ndarray | None] = [None] * n
        encoded = np.zeros(n, bool)

        def run(positions: list[int]) -> None:
            nonlocal encoder_seconds
            t0 = time.perf_counter()
            embeddings = encode(positions)
            encoder_seconds += time.perf_counter() - t0
            for position, row in zip(positions, embeddings, strict=True):
                rows[position] = row
                encoded[position] = True

        anchor = self._anchor
        if anchor is not None:  # encoded in an earlier window
            anchor = _Anchor(anchor.time, anchor.thumb, anchor.embedding, -1)
        first: list[int] = []
        if anchor is None or anchor.thumb.shape != thumbs[0].shape or times[0] < anchor.time:
            first = [0]
        # 1. where each run of frames ends: from thumbnails and times alone, so every far
        #    end of the window is known before any is encoded, and all go in one batch
        runs = self._runs(None if first else anchor, thumbs, times, 1 if first else 0)
        run(first + [end for _, end in runs])
        if first:
            anchor = _Anchor(times[0], thumbs[0], rows[0], 0)  # type: ignore[arg-type]
        # 2. every frame between two encoded ends is checked against both, the runs of the
        #    whole window together, level by level (one batch a level)
        spans: list[tuple[_Anchor | int, int, list[int]]] = []
        left: _Anchor | int = anchor  # type: ignore[assignment]
        for position, end in runs:
            spans.append((left, end, list(range(position, end))))
            left = end
        self._fill(spans, thumbs, times, rows, run)
        last = runs[-1][1] if runs else 0
        self._anchor = _Anchor(times[last], thumbs[last], rows[last], last)  # type: ignore[arg-type]
        self.encoded += int(encoded.sum())
        self.seconds += time.perf_counter() - start - encoder_seconds
        return np.stack(rows).astype(np.float32, copy=False), encoded  # type: ignore[arg-type]

    def _runs(
        self,
        anchor: _Anchor | None,
        thumbs: list[np.ndarray],
        times: Sequence[float],
        position: int,
    ) -> list[tuple[int, int]]:
        """The runs of the window from ``position`` on, as ``(first, end)`` positions: the
        frames ``first..end-1`` lie between the previous encoded frame (``anchor`` for the
        first run, else the previous run's end) and ``end``, which is encoded.

        A run goes on while frames stay unchanged from the run's start (the gate's test)
        and within ``max_reuse`` of it; at a change, its end moves on to the last frame
        still within ``max_reuse`` (the frames between are then checked against both
        ends). Only thumbnails and times decide, never embeddings."""
        config = self.config
        n = len(thumbs)
        if anchor is None:  # the window's first frame is encoded and starts the runs
            base_thumb, base_time = thumbs[0], times[0]
        else:
            base_thumb, base_time = anchor.thumb, anchor.time
        runs = []
        while position < n:
            j = position
            while j < n and self._reusable(base_thumb, base_time, thumbs[j], times[j]):
                j += 1
            end = min(j, n - 1)
            if j < n and config.is_change(*thumbnail_difference(base_thumb, thumbs[j])):
                # a change: the far end is the last frame within max_reuse of the start
                while end + 1 < n and times[end + 1] - base_time <= config.max_reuse + TIME_EPSILON:
                    end += 1
            runs.append((position, end))
            base_thumb, base_time = thumbs[end], times[end]
            position = end + 1
        return runs

    def _reusable(self, base: np.ndarray, base_time: float, thumb: np.ndarray, t: float) -> bool:
        """Whether a frame (``thumb`` at ``t`` s) may reuse the encoded ``base`` thumbnail's
        embedding: unchanged (the gate's test) and less than ``max_reuse`` later."""
        if not 0.0 <= t - base_time < self.config.max_reuse - TIME_EPSILON:
            return False
        return not self.config.is_change(*thumbnail_difference(base, thumb))

    def _fill(
        self,
        spans: list[tuple[_Anchor | int, int, list[int]]],
        thumbs: list[np.ndarray],
        times: Sequence[float],
        rows: list[np.ndarray | None],
        run: Callable[[list[int]], None],
    ) -> None:
        """Give embeddings to the window positions of each span ``(a, b, between)``: the
        frames ``between`` (in order) lie between the encoded ends ``a`` (an anchor from an
        earlier window, or a window position) and ``b`` (a position). All spans go level
        by level together, one encoder call a level:

        - a span whose ends disagree is split at its middle frame;
        - a span whose ends agree and whose frames all look like one end or the other
          (the gate's test) is interpolated;
        - a span whose ends agree but that has movement in between is *probed*: its middle
          frame is encoded and compared with what interpolation would have given it. If
          they agree (cosine at least ``probe_agreement``, stricter than ``agreement``:
          one frame stands for the whole span), the span is interpolated through the
          middle; if not (the scene went somewhere and came back), both halves are checked
          the same way.
        """

        def at(end: _Anchor | int) -> _Anchor:
            if isinstance(end, _Anchor):
                return end
            return _Anchor(times[end], thumbs[end], rows[end], end)  # type: ignore[arg-type]

        while spans:
            halves: list[tuple[_Anchor | int, int, list[int]]] = []
            probes: list[tuple[_Anchor | int, int, int, list[int], np.ndarray]] = []
            middles: list[int] = []
            for a, b, inner in spans:
                if not inner:
                    continue
                start, end = at(a), at(b)
                verdict = self._judge(start, end, [thumbs[i] for i in inner])
                m = inner[len(inner) // 2]
                if verdict == "still" or (verdict == "moving" and len(inner) <= 2):
                    self._interpolate(start, end, inner, thumbs, rows)
                    continue
                middles.append(m)
                if verdict == "moving":
                    guess = self._weights(start, end, [thumbs[m]])[0]
                    mixed = mix_rows(start.embedding, end.embedding, np.array([guess]))[0]
                    probes.append((a, b, m, inner, mixed))
                else:
                    halves.append((a, m, [i for i in inner if i < m]))
                    halves.append((m, b, [i for i in inner if i > m]))
            if middles:
                run(middles)
            for a, b, m, inner, predicted in probes:
                middle = at(m)
                left, right = [i for i in inner if i < m], [i for i in inner if i > m]
                if float(predicted @ middle.embedding) >= self.config.probe_agreement:
                    self._interpolate(at(a), middle, left, thumbs, rows)
                    self._interpolate(middle, at(b), right, thumbs, rows)
                else:
                    halves.append((a, m, left))
                    halves.append((m, b, right))
            spans = halves

    def _judge(self, a: _Anchor, b: _Anchor, inner: list[np.ndarray]) -> str:
        """``split`` when two encoded frames disagree (cosine under ``agreement``, more than
        ``max_reuse`` apart, or a frame between them further from the nearer end than the
        ends are from each other); else ``still`` when every frame between looks like one
        end (the gate's test), ``moving`` when not."""
        config = self.config
        if b.time - a.time > config.max_reuse + TIME_EPSILON:
            return "split"
        if float(a.embedding @ b.embedding) < config.agreement:
            return "split"
        ends_mean, ends_block = thumbnail_difference(a.thumb, b.thumb)
        mean_limit = max(config.change_threshold, ends_mean)
        block_limit = max(config.block_factor * config.change_threshold, ends_block)
        still = True
        for thumb in inner:
            near = [thumbnail_difference(end.thumb, thumb) for end in (a, b)]
            if not any(m <= mean_limit and k <= block_limit for m, k in near):
                return "split"
            still = still and any(not config.is_change(m, k) for m, k in near)
        return "still" if still else "moving"

    @staticmethod
    def _weights(a: _Anchor, b: _Anchor, inner: list[np.ndarray]) -> list[float]:
        """Interpolation weights (0: ``a``, 1: ``b``) of thumbnails between two encoded
        frames: how far each is from ``a`` relative to its distance to both."""
        weights = []
        for thumb in inner:
            mean_a, mean_b = mean_difference(a.thumb, thumb), mean_difference(b.thumb, thumb)
            total = mean_a + mean_b
            weights.append(mean_a / total if total > 0 else 0.0)
        return weights

    def _interpolate(
        self,
        a: _Anchor,
        b: _Anchor,
        inner: list[int],
        thumbs: list[np.ndarray],
        rows: list[np.ndarray | None],
    ) -> None:
        if not inner:
            return
        weights = np.array(self._weights(a, b, [thumbs[i] for i in inner]), np.float64)
        mixed = mix_rows(a.embedding, b.embedding, weights)
        prov = self.provenance
        for i, w, row in zip(inner, weights, mixed, strict=True):
            rows[i] = row
            prov.left[i], prov.right[i], prov.weight[i], prov.mixed[i] = (
                a.position,
                b.position,
                w,
                True,
            )
