"""The driver loop: source -> change gate -> preprocess -> image encoder -> scorer ->
smoother -> sinks.

Only this module knows every stage. Decoding runs on the reader's thread and video
encoding on the video sink's; inference, smoothing and the other sinks run here, on
the caller's thread. Files are read a window ahead, planned by the
:class:`~.lookahead.LookaheadGate` and batched through the encoder, and lose no frame
(unless ``analysis_fps`` asks for fewer analysed frames); live sources are read one
newest frame at a time through the :class:`~.gate.ChangeGate`. Frames the gate lets pass
reuse (or, in files, interpolate) the embeddings of encoded frames.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from ..errors import RegionError
from ..model.labels import LabelSet
from ..model.scene_model import LabelSource, SceneModel, load_labels, model_meta
from ..model.taught import Scorer, TaughtSet
from ..region import Region
from ..types import Frame, Prediction, Scores, Segment
from .encoder_calls import EncoderCalls
from .gate import ChangeGate, GateConfig
from .lookahead import LookaheadGate, Provenance
from .sinks import EmbeddingBatch, RunInfo, Sink
from .smoothing import SegmentTracker, Smoother, SmoothingConfig
from .sources import FrameReader, FrameSource

log = logging.getLogger("scenecls")

MAX_WINDOW_FRAMES = 1024
"""Most frames in one look-ahead window of a file (besides its seconds and bytes)."""


@dataclass(frozen=True)
class PipelineConfig:
    """``batch_size``: most frames per encoder call for file sources. With the gate off,
    files go through the encoder ``batch_size`` frames at a time; with it, files are
    planned ``lookahead_seconds`` of video at a time (a window of at most
    ``lookahead_bytes`` of decoded frames), so that the frames the look-ahead encodes go
    to the encoder together (see :mod:`.lookahead`). Live sources are encoded one newest
    frame at a time. ``analysis_fps``: analyse at most this many frames per second of
    video time (None: every frame). ``gate``: the change gate
    (``GateConfig(change_threshold=0)`` encodes every frame). ``region``: the region of
    interest: only it reaches the change gate and the encoder (sinks get whole frames,
    the overlay draws its frame); None: the whole frame."""

    batch_size: int = 16
    analysis_fps: float | None = None
    queue_size: int = 64
    overlay_top_k: int = 3
    gate: GateConfig = field(default_factory=GateConfig)
    lookahead_seconds: float = 8.0
    lookahead_bytes: int = 512 << 20
    region: Region | None = None


class BoundedSamples(list):
    """A list of float samples that stays under ``cap`` items on runs of any length:
    when full, every other sample is dropped and from then on only every 2nd (4th...)
    new one is kept. Order is preserved, so early and late parts stay comparable, and
    percentiles stay representative of the whole run."""

    def __init__(self, cap: int = 65_536) -> None:
        super().__init__()
        self.cap = max(2, cap)
        self.stride = 1
        self._seen = 0

    def append(self, value: float) -> None:  # type: ignore[override]
        index, self._seen = self._seen, self._seen + 1
        if index % self.stride:
            return
        super().append(value)
        if len(self) >= self.cap:
            del self[1::2]
            self.stride *= 2


class _SwitchCounter:
    """Counts label changes in a stream of labels without keeping the stream."""

    def __init__(self) -> None:
        self.last: str | None = None
        self.switches = 0

    def add(self, label: str) -> None:
        if self.last is not None and label != self.last:
            self.switches += 1
        self.last = label


@dataclass
class RunStats:
    """What happened in a run; :meth:`summary` formats it for people."""

    source: str = ""
    live: bool = False
    frames_read: int = 0
    frames_analysed: int = 0
    # analysed frames whose embedding the encoder computed (the others reused one)
    frames_encoded: int = 0
    frames_dropped: int = 0
    wall_seconds: float = 0.0
    stage_seconds: dict[str, float] = field(
        default_factory=lambda: dict.fromkeys(
            ("decode", "gate", "preprocess", "encode", "smooth", "sinks"), 0.0
        )
    )
    raw_switches: int = 0
    smoothed_switches: int = 0
    # capture-to-label seconds of live frames, in order (thinned on very long runs)
    latencies: BoundedSamples = field(default_factory=BoundedSamples)
    segments: list[Segment] = field(default_factory=list)
    # frames (or image files) that could not be decoded and were skipped
    frames_skipped: int = 0
    # the file ended before its header's frame count (a truncated recording)
    ended_early: bool = False
    # (start, end) seconds of input lost while a live stream was reconnecting
    gaps: list[tuple[float, float]] = field(default_factory=list)
    interrupted: bool = False
    end_time: float = 0.0
    # a sink (a window playing a file) held the run to its playback speed
    paced: bool = False
    # the image encoder's calls, by batch size
    encoder_calls: EncoderCalls = field(default_factory=EncoderCalls)
    # the image encoder as run: runtime, precision, device, and how it was chosen
    encoder: str = ""

    @property
    def fps(self) -> float:
        return self.frames_analysed / self.wall_seconds if self.wall_seconds > 0 else 0.0

    @property
    def encoded_share(self) -> float:
        """Encoded frames as a share of analysed frames (0..1)."""
        return self.frames_encoded / self.frames_analysed if self.frames_analysed else 0.0

    def latency_ms(self, q: float) -> float | None:
        return float(np.percentile(self.latencies, q) * 1000) if self.latencies else None

    def summary(self) -> str:
        n = max(1, self.frames_analysed)
        lines = [
            f"source      {self.source}{' (live)' if self.live else ''}"
            f"{'  [stopped early]' if self.interrupted else ''}",
            f"frames      read {self.frames_read}, analysed {self.frames_analysed}, "
            f"dropped {self.frames_dropped}"
            + (f", undecodable (skipped) {self.frames_skipped}" if self.frames_skipped else "")
            + ("  [input ended early: truncated?]" if self.ended_early else ""),
            f"encoded     {self.frames_encoded} of {self.frames_analysed} analysed frames "
            f"({self.encoded_share:.0%}); the change gate skipped the others",
            f"speed       {self.fps:.1f} analysed frames/s over {self.wall_seconds:.1f} s"
            + ("  (held to the window's playback: sinks include the wait)" if self.paced else ""),
            *([f"encoder     {self.encoder}"] if self.encoder else []),
            f"calls       image encoder: {self.encoder_calls.summary()}",
            "per frame   "
            + ", ".join(f"{k} {1000 * v / n:.1f} ms" for k, v in self.stage_seconds.items())
            + ("  (live: decode includes waiting for the camera)" if self.live else ""),
            f"switches    raw {self.raw_switches}, "
            f"smoothed {self.smoothed_switches}; {len(self.segments)} segments",
        ]
        if self.gaps:
            lost = sum(b - a for a, b in self.gaps)
            lines.append(
                f"gaps        {len(self.gaps)} (source lost, {lost:.1f} s in all): "
                + ", ".join(f"{a:.1f}-{b:.1f} s" for a, b in self.gaps[:5])
                + (" ..." if len(self.gaps) > 5 else "")
            )
        if self.latencies:
            lines.append(
                f"latency     capture to label p50 {self.latency_ms(50):.0f} ms, "
                f"p95 {self.latency_ms(95):.0f} ms"
            )
        return "\n".join(lines)


class _Sampler:
    """Keeps frames spaced at least 1/fps seconds apart in video time (by timestamp)."""

    def __init__(self, fps: float | None) -> None:
        self.step = 1.0 / fps if fps else 0.0
        self.next_t: float | None = None

    def __call__(self, t: float) -> bool:
        if not self.step:
            return True
        if self.next_t is None or t >= self.next_t - 1e-6:
            base = t if self.next_t is None else self.next_t
            k = max(1, int((t - base) / self.step) + 1)
            self.next_t = base + k * self.step
            return True
        return False


def _frame_duration(dts: list[float], fallback: float = 0.0) -> float:
    """Typical seconds between frames: the median of the recent steps ``dts``."""
    return float(np.median(dts)) if dts else fallback


class Pipeline:
    """Runs ``model`` over ``source`` and feeds ``sinks``.

    ``smoother``: any object with ``update(scores, time) -> Prediction`` and ``reset()``
    (default: :class:`Smoother` with default settings). ``overlay``: any object with
    ``draw(image_bgr, prediction, segments, now) -> image_bgr``, used when a sink shows
    or writes frames. ``on_progress(frames_read, frame_count)`` is called after each batch.
    ``on_embeddings(frames, embeddings, encoded)`` is called after each batch with the
    analysed frames, their ``(N, D)`` float32 unit embeddings and an ``(N,)`` bool array
    saying which were encoded (the others reused or interpolated encoded ones).
    """

    def __init__(
        self,
        model: SceneModel,
        labels: LabelSource,
        source: FrameSource,
        sinks: Sequence[Sink] = (),
        *,
        smoother: Smoother | None = None,
        overlay: object | None = None,
        config: PipelineConfig | None = None,
        on_progress: Callable[[int, int | None], None] | None = None,
        on_embeddings: Callable[[list[Frame], np.ndarray, np.ndarray], None] | None = None,
    ) -> None:
        self.model = model
        self.labels: LabelSet | TaughtSet = load_labels(labels)
        self.names: list[str] = self.labels.names
        self.source = source
        self.sinks = list(sinks)
        self.smoother = smoother or Smoother(SmoothingConfig())
        self.config = config or PipelineConfig()
        taught_region = getattr(self.labels, "region", None)
        if self.config.region is None and taught_region is not None:
            # a taught set learned from one part of the frame looks there unless told
            self.config = replace(self.config, region=Region.from_json(taught_region))
        self.on_progress = on_progress
        self.on_embeddings = on_embeddings
        self.gate: ChangeGate | LookaheadGate = (
            ChangeGate(self.config.gate) if source.live else LookaheadGate(self.config.gate)
        )
        self._pending: Frame | None = None  # files: read, but the start of the next window
        self._carry: np.ndarray | None = None  # (D,) the last encoded frame's embedding
        self.encoder_calls = EncoderCalls()
        self.tracker = SegmentTracker()
        self._draw = any(s.needs_overlay for s in self.sinks)
        if overlay is None and self._draw:
            from .overlay import Overlay

            overlay = Overlay(
                self.names, top_k=self.config.overlay_top_k, region=self.config.region
            )
        self.overlay = overlay

    def run(self, stop: threading.Event | None = None) -> RunStats:
        """Process the whole source (or until ``stop`` is set or a sink asks to stop).

        Every started sink is finished, also on errors and interrupts, so outputs are
        complete and valid. Returns the run's statistics.
        """
        stop = stop or threading.Event()
        names = self.names
        scorer = self.model.scorer(self.labels)
        stats = RunStats(
            source=self.source.name,
            live=self.source.live,
            encoder=str(getattr(self.model, "encoder_description", "")),
        )
        self.encoder_calls = stats.encoder_calls
        reader = FrameReader(self.source, self.config.queue_size)
        sampler = _Sampler(None if self.source.live else self.config.analysis_fps)
        if (
            sampler.step
            and hasattr(self.source, "wanted")
            and not any(getattr(s, "needs_every_frame", False) for s in self.sinks)
        ):  # frames between the analysed ones are not even converted to images
            self.source.wanted = _Sampler(self.config.analysis_fps)
        t_start = time.perf_counter()
        reader.start()
        window = self._window()
        gate = self.config.gate
        window_seconds = self._window_seconds()
        self._pending = None
        self._carry = None
        info = RunInfo(
            self.source.name,
            tuple(names),
            self.source.size,
            self.source.fps,
            self.source.live,
            model=model_meta(self.model),
            settings={
                "gate": asdict(gate),
                "analysis_fps": None if self.source.live else self.config.analysis_fps,
                "region": None if self.config.region is None else self.config.region.to_json(),
            },
        )
        started: list[Sink] = []
        last_pred: Prediction | None = None
        last_frame: Frame | None = None
        dts: list[float] = []
        raw_switches, smoothed_switches = _SwitchCounter(), _SwitchCounter()
        stages = stats.stage_seconds
        error: BaseException | None = None
        try:
            self._check_region(reader, stop)  # before any sink writes anything
            for sink in self.sinks:
                sink.start(info)
                started.append(sink)
            while not stop.is_set() and not any(s.stop_requested for s in self.sinks):
                chunk = self._next_chunk(reader, stop, window, window_seconds)
                if not chunk:
                    break
                selected = [sampler(f.timestamp) for f in chunk]
                todo = [f for f, sel in zip(chunk, selected, strict=True) if sel]
                embs, encoded, provenance = self._embed(todo, stages)
                if todo:
                    batch = EmbeddingBatch(todo, embs, encoded, provenance)
                    for sink in self.sinks:
                        sink.on_embeddings(batch)
                    if self.on_embeddings is not None:
                        self.on_embeddings(todo, embs, encoded)
                all_scores = iter(self._score(embs, encoded, provenance, scorer))
                flags = iter(encoded)
                for frame, sel in zip(chunk, selected, strict=True):
                    t3 = time.perf_counter()
                    if frame.gap_before > 0 and last_frame is not None:
                        self._gap(stats, last_frame.timestamp + _frame_duration(dts), frame)
                    if sel:
                        pred = self.tracker.track(
                            self.smoother.update(next(all_scores), frame.timestamp)
                        )
                        pred = replace(pred, encoded=bool(next(flags)))
                        stats.frames_encoded += int(pred.encoded)
                        last_pred = pred
                        stats.frames_analysed += 1
                        raw_switches.add(pred.raw_label)
                        smoothed_switches.add(pred.label)
                        if self.source.live:
                            stats.latencies.append(time.monotonic() - frame.captured_at)
                    if (
                        last_frame is not None
                        and frame.timestamp > last_frame.timestamp
                        and not frame.gap_before
                    ):
                        dts.append(frame.timestamp - last_frame.timestamp)
                        del dts[:-32]
                    last_frame = frame
                    t4 = time.perf_counter()
                    self._emit(frame, last_pred, sel)
                    stages["smooth"] += t4 - t3
                    stages["sinks"] += time.perf_counter() - t4
                    if any(s.stop_requested for s in self.sinks):
                        break  # the rest of the window is not shown or written
                if self.on_progress is not None:
                    self.on_progress(
                        reader.frames_read + getattr(self.source, "passed_over", 0),
                        self.source.frame_count,
                    )
        except BaseException as e:
            error = e
            raise
        finally:
            stats.interrupted = (
                stop.is_set()
                or isinstance(error, KeyboardInterrupt)
                or any(s.stop_requested for s in started)
            )
            reader.close()
            stats.paced = any(s.paces for s in started)
            stats.raw_switches = raw_switches.switches
            stats.smoothed_switches = smoothed_switches.switches
            stats.frames_read = reader.frames_read + getattr(self.source, "passed_over", 0)
            stats.frames_dropped = reader.dropped
            stages["decode"] = reader.decode_seconds
            stages["gate"] = self.gate.seconds
            stats.frames_skipped = self.source.skipped
            stats.ended_early = bool(getattr(self.source, "ended_early", False))
            if last_frame is not None:
                fallback = 1.0 / self.source.fps if self.source.fps else 0.0
                stats.end_time = last_frame.timestamp + _frame_duration(dts, fallback)
                self.tracker.close(stats.end_time)
            stats.segments = list(self.tracker.segments)
            stats.wall_seconds = time.perf_counter() - t_start
            finish_error = self._finish(started, stats.segments)
            if finish_error is not None and error is None:
                raise finish_error
        return stats

    def _score(
        self, embs: np.ndarray, encoded: np.ndarray, provenance: Provenance, scorer: Scorer
    ) -> list[Scores]:
        """The :class:`Scores` of a batch's frames, from the encoded frames' embeddings
        (and the last one encoded before the batch) and ``provenance``: the same
        arithmetic as ``scenecls relabel`` on stored embeddings."""
        if not len(embs):
            return []
        mine = np.flatnonzero(encoded)
        carry = self._carry if self._carry is not None else np.zeros(embs.shape[1], np.float32)
        anchors = np.concatenate([carry[None], embs[mine]])
        index = np.zeros(len(embs) + 1, np.int64)  # position -1 (the last entry): the carry
        index[mine] = 1 + np.arange(len(mine))
        sims, probs = scorer.score_blends(
            anchors, index[provenance.left], index[provenance.right], provenance.weight
        )
        if len(mine):
            self._carry = embs[mine[-1]]
        labels = tuple(scorer.names)
        return [Scores(labels, sims[i], probs[i]) for i in range(len(embs))]

    def _check_region(self, reader: FrameReader, stop: threading.Event) -> None:
        """Raise :class:`RegionError` when the region does not fit the source's frames:
        by the size the opened source reports, or else by its first frame (read now and
        kept as the start of the first window)."""
        region = self.config.region
        if region is None:
            return
        size = self.source.size
        if size is None:
            while not stop.is_set():
                try:
                    first = reader.get(timeout=0.25)
                except TimeoutError:
                    continue
                if first is None:
                    return  # no frame at all: nothing to check
                self._pending = first
                size = (first.image_bgr.shape[1], first.image_bgr.shape[0])
                break
        if size is not None:
            try:
                region.box(*size)
            except RegionError as e:
                raise RegionError(f"{self.source.name}: {e}") from None

    def _look(self, frame: Frame) -> np.ndarray:
        """What the gate and the encoder see of ``frame``: the region of interest (a
        view, HxWx3 uint8 BGR) or the whole image."""
        region = self.config.region
        if region is None:
            return frame.image_bgr
        try:
            return region.crop(frame.image_bgr)
        except RegionError as e:  # a frame of another size than the first
            raise RegionError(f"{self.source.name}, frame {frame.index}: {e}") from None

    def _window(self) -> int:
        """Most frames per chunk: 1 for live sources; ``batch_size`` for files with the
        gate off; with the gate on, a window of ``lookahead_seconds`` (see
        :meth:`_window_seconds`), at most ``lookahead_bytes`` of frames (checked by
        :meth:`_next_chunk`) and at most :data:`MAX_WINDOW_FRAMES`."""
        if self.source.live:
            return 1
        if self.config.gate.enabled:
            return MAX_WINDOW_FRAMES
        return max(1, self.config.batch_size)

    def _window_seconds(self) -> float:
        """Seconds of video per window for files with the gate on (0: no limit by time):
        ``lookahead_seconds``, and at least two ``max_reuse`` periods, so that the encode
        that ends each window is one a still scene needs anyway."""
        gate = self.config.gate
        if self.source.live or not gate.enabled:
            return 0.0
        return max(self.config.lookahead_seconds, 2 * gate.max_reuse)

    def _embed(
        self, frames: list[Frame], stages: dict[str, float]
    ) -> tuple[np.ndarray, np.ndarray, Provenance]:
        """``(N, D)`` float32 unit embeddings of ``frames``, an ``(N,)`` bool array of
        the ones the encoder computed (the change gate decides which), and where the
        others' embeddings came from."""

        def encode(positions: list[int]) -> np.ndarray:
            parts = []
            step = max(1, self.config.batch_size)
            for i in range(0, len(positions), step):  # at most batch_size a call
                t0 = time.perf_counter()
                pixels = self.model.preprocess(
                    [self._look(frames[j]) for j in positions[i : i + step]]
                )
                t1 = time.perf_counter()
                parts.append(self.model.image_encoder(pixels))
                t2 = time.perf_counter()
                stages["preprocess"] += t1 - t0
                stages["encode"] += t2 - t1
                self.encoder_calls.add(len(pixels), t2 - t1)
            if not parts:
                return np.zeros((0, self.model.embed_dim), np.float32)
            return parts[0] if len(parts) == 1 else np.concatenate(parts)

        if not frames:
            empty = np.zeros((0, self.model.embed_dim), np.float32)
            return empty, np.zeros(0, bool), Provenance.own(0)
        if isinstance(self.gate, LookaheadGate):
            embs, encoded = self.gate.plan(
                [self._look(f) for f in frames], [f.timestamp for f in frames], encode
            )
            return embs, encoded, self.gate.provenance
        flags = []
        for frame in frames:
            if frame.gap_before:
                self.gate.reset()
            flags.append(self.gate.check(self._look(frame), frame.timestamp))
        fresh = iter(encode([i for i, f in enumerate(flags) if f]))
        rows = [self.gate.keep(next(fresh)) if f else self.gate.embedding for f in flags]
        provenance = Provenance.own(len(frames))
        last = -1  # reused frames copy the last encoded one (-1: before this batch)
        for i, flag in enumerate(flags):
            last = i if flag else last
            provenance.left[i] = provenance.right[i] = last
        return np.stack(rows), np.asarray(flags, bool), provenance  # type: ignore[arg-type]

    def _gap(self, stats: RunStats, lost_at: float, frame: Frame) -> None:
        """The source was lost before ``frame``: no segment spans the gap, and the
        smoothing starts afresh."""
        self.tracker.close(lost_at)
        self.smoother.reset()
        stats.gaps.append((lost_at, frame.timestamp))
        for sink in self.sinks:
            sink.on_gap(lost_at, frame.timestamp)
        log.warning(
            "%s: input lost from %.1f s to %.1f s (%.1f s); the open segment ends at %.1f s",
            self.source.name,
            lost_at,
            frame.timestamp,
            frame.timestamp - lost_at,
            lost_at,
        )

    def _next_chunk(
        self, reader: FrameReader, stop: threading.Event, size: int, seconds: float
    ) -> list[Frame]:
        """The next frames to process in order: one (the newest) for live sources; for
        files, ``size`` frames, or fewer when they span ``seconds`` of video (0: no limit),
        hold ``lookahead_bytes`` of images (when ``seconds`` is set), or the file ends."""
        chunk: list[Frame] = []
        max_bytes = self.config.lookahead_bytes if seconds else 0
        if self._pending is not None:
            chunk, self._pending = [self._pending], None
        while not chunk:
            try:
                first = reader.get(timeout=0.25)
            except TimeoutError:
                if stop.is_set():
                    return []
                continue
            if first is None:
                return []
            chunk = [first]
        held = chunk[0].image_bgr.nbytes
        while len(chunk) < size and not stop.is_set():
            ready = reader.get_ready(1)
            if ready:
                frame = ready[0]
            else:
                try:
                    got = reader.get(timeout=0.25)
                except TimeoutError:
                    continue
                if got is None:
                    break
                frame = got
            held += frame.image_bgr.nbytes
            if (seconds and frame.timestamp - chunk[0].timestamp >= seconds - 1e-6) or (
                max_bytes and held > max_bytes
            ):
                self._pending = frame  # the window is full: this frame starts the next
                break
            chunk.append(frame)
        return chunk

    def _emit(self, frame: Frame, prediction: Prediction | None, analysed: bool) -> None:
        annotated = None
        if self._draw and self.overlay is not None:
            recent = self.tracker.segments[-24:]
            current = self.tracker.open_segment(frame.timestamp)
            strip = [*recent, current] if current is not None else recent
            annotated = self.overlay.draw(frame.image_bgr, prediction, strip, frame.timestamp)  # type: ignore[attr-defined]
        for sink in self.sinks:
            sink.on_frame(frame, prediction, analysed, annotated)

    @staticmethod
    def _finish(sinks: list[Sink], segments: list[Segment]) -> BaseException | None:
        first: BaseException | None = None
        for sink in sinks:
            try:
                sink.finish(segments)
            except BaseException as e:  # finish the others, report the first failure
                log.error("finishing output failed: %s", e)
                first = first or e
        return first
