"""Recordings that rotate: the annotated video of a live source, in files of a few
minutes each, for weeks.

One mp4 that grows for days keeps its whole index in memory until it is closed (about
120 MB a day at 30 fps) and is unplayable until then. :class:`RecordingSink` writes
``PREFIX-YYYYmmdd-HHMMSS.mp4`` (or ``.webm``: VP8, which browsers play) files (UTC,
when the file starts: wall time for a live source; for a video file, the run's start
plus the file's time) of ``segment`` seconds each: when one is full it is finalised
(and checked to play) on a thread of its own while the next one is already being
written, so every closed file is complete and memory stays flat. Files of this prefix
older than ``keep`` seconds are deleted. Each file has a constant frame rate and keeps
real time: a live source's frames are repeated or skipped to fill the time they stand
for (a gap in the input is not filled: :attr:`RecordingSink.spans` maps a file's
offsets to wall time across such gaps).
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from ...errors import OutputError, UsageError
from ...types import Frame, Prediction, Segment
from .base import RunInfo, Sink, check_writable
from .video import VideoSink

log = logging.getLogger("scenecls")

_STAMP = "%Y%m%d-%H%M%S"
FORMATS = ("mp4", "webm")
"""The recording formats: ``mp4`` (MPEG-4 part 2: small, plays in desktop players, not
in browsers) and ``webm`` (VP8: plays in a browser's ``<video>``)."""


@dataclass(frozen=True)
class RecordedSpan:
    """When a recording's frames were seen: ``start`` and ``end`` (UNIX s; ``end`` is the
    planned close while the file is being written), ``anchors``: ``(offset in the file,
    UNIX s)`` pairs, the first at offset 0, one more after each gap in the input (the
    file does not fill gaps): the wall time at offset ``o`` is that of the last anchor
    at or before ``o`` plus the difference."""

    start: float
    end: float
    anchors: tuple[tuple[float, float], ...]

    @property
    def duration(self) -> float:
        """The file's length (s)."""
        offset, wall = self.anchors[-1]
        return offset + max(0.0, self.end - wall)

    def offset(self, unix: float) -> float:
        """The offset (s) in the file of wall time ``unix`` (clamped to the file)."""
        best = self.anchors[0]
        for offset, wall in self.anchors:
            if wall <= unix:
                best = (offset, wall)
        return min(max(0.0, best[0] + unix - best[1]), self.duration)

    def covers(self, unix: float, slack: float = 0.0) -> bool:
        """Whether the file shows wall time ``unix`` (not in a gap it skipped), give or
        take ``slack`` seconds."""
        pieces = len(self.anchors)
        for i, (offset, wall) in enumerate(self.anchors):
            length = self.anchors[i + 1][0] - offset if i + 1 < pieces else self.end - wall
            if wall - slack <= unix <= wall + length + slack:
                return True
        return False


class RecordingSink(Sink):
    """The annotated video in ``folder/PREFIX-STAMP.mp4`` (``format="webm"``: ``.webm``)
    files of ``segment`` seconds of the source's time; files older than ``keep`` seconds
    (by their start) are deleted (``None``: kept). ``clock``: wall time for the names
    (tests move it); ``wall_base``: the wall time (UNIX s) at source time 0 (default:
    ``clock()`` less the first frame's time).

    :attr:`spans` (file name -> :class:`RecordedSpan`) holds the files this sink closed,
    :meth:`current` the one being written (both read from any thread)."""

    needs_overlay = True
    needs_every_frame = True

    def __init__(
        self,
        folder: str | Path,
        prefix: str = "recording",
        *,
        segment: float = 600.0,
        keep: float | None = None,
        fps: float | None = None,
        clock: Callable[[], float] | None = None,
        format: str = "mp4",
        wall_base: float | None = None,
    ) -> None:
        self.folder = Path(folder)
        if format not in FORMATS:
            raise UsageError(f"--record-format must be one of {', '.join(FORMATS)}, not {format}")
        self.suffix = f".{format}"
        if not self.folder.is_dir():
            raise UsageError(f"recordings folder {folder} does not exist: create it first")
        check_writable(self.folder / f".{prefix}-probe{self.suffix}", "recordings folder")
        if not segment > 0:
            raise UsageError(f"--segment-minutes must be more than 0, not {segment / 60:g}")
        if keep is not None and not keep > 0:
            raise UsageError(f"--keep-hours must be more than 0, not {keep / 3600:g}")
        self.prefix = re.sub(r"[^A-Za-z0-9_.-]+", "_", prefix) or "recording"
        self.segment = float(segment)
        self.keep = keep
        self.fps = fps
        self.clock = clock or time.time
        self.files: list[Path] = []  # finished, in order
        self.deleted: list[Path] = []
        self._current: VideoSink | None = None
        self._started_at = 0.0  # source time the current file began
        self._written = 0  # frames in the current file
        self._last: tuple[Frame, Prediction | None, bool, object | None] | None = None
        self._fps = 25.0
        self._wall_base: float | None = wall_base  # wall time at source time 0
        self._names: set[Path] = set()
        self.spans: dict[str, RecordedSpan] = {}  # the files this sink closed
        self._anchors: list[tuple[float, float]] = []  # the current file's
        self._info: RunInfo | None = None
        self._closing: list[threading.Thread] = []
        self._errors: list[BaseException] = []
        self._lock = threading.Lock()

    def start(self, info: RunInfo) -> None:
        self._info = info
        self._fps = float(self.fps or info.fps or 25.0)
        self._drop_stale_partials()

    def _drop_stale_partials(self) -> None:
        """Delete this prefix's unfinished files that a killed process left behind (a
        file being written has a hidden ``.PREFIX-STAMP.partial.EXT`` name; a process
        killed with ``kill -9`` never renames or removes it)."""
        stale = re.compile(
            r"\." + re.escape(self.prefix) + r"-\d{8}-\d{6}(?:-\d+)?\.partial\.(?:webm|mp4)"
        )
        for path in self.folder.glob(f".{self.prefix}-*.partial.*"):
            if stale.fullmatch(path.name) and path not in self._names:
                with contextlib.suppress(OSError):
                    path.unlink()
                    log.info("unfinished recording %s of an earlier run deleted", path.name)

    def _name(self, t: float) -> Path:
        """The file for a segment starting at source time ``t``: named by the wall time
        the source was at ``t`` (a live source: now; a file: the run's start plus ``t``)."""
        if self._wall_base is None:
            self._wall_base = self.clock() - t
        stamp = datetime.fromtimestamp(self._wall_base + t, timezone.utc).strftime(_STAMP)
        path = self.folder / f"{self.prefix}-{stamp}{self.suffix}"
        n = 1
        while path.exists() or path in self._names:  # two in one second
            n += 1
            path = self.folder / f"{self.prefix}-{stamp}-{n}{self.suffix}"
        self._names.add(path)
        return path

    def _open(self, t: float) -> VideoSink:
        sink = VideoSink(self._name(t), fps=self._fps)
        assert self._info is not None
        sink.start(self._info)
        with self._lock:
            self._current, self._started_at, self._written = sink, t, 0
            assert self._wall_base is not None
            self._anchors = [(0.0, self._wall_base + t)]
        return sink

    def closed_spans(self) -> dict[str, RecordedSpan]:
        """A copy of :attr:`spans` (file name -> its times), safe from any thread."""
        with self._lock:
            return dict(self.spans)

    def current(self) -> tuple[str, RecordedSpan] | None:
        """The file being written (its name once closed) and its span so far (``end``:
        when it is planned to close); None when there is none."""
        with self._lock:
            sink = self._current
            if sink is None or not self._anchors:
                return None
            start = self._anchors[0][1]
            return sink.path.name, RecordedSpan(start, start + self.segment, tuple(self._anchors))

    def _close_in_background(self, sink: VideoSink) -> None:
        """Finalise ``sink`` (release, check that it plays, rename) off the video's way."""
        with self._lock:
            span = None
            if self._anchors:
                offset, wall = self._anchors[-1]
                end = wall + self._written / self._fps - offset
                span = RecordedSpan(self._anchors[0][1], end, tuple(self._anchors))
            self._anchors = []

        def close() -> None:
            try:
                sink.finish(())
                with self._lock:
                    self.files.append(sink.path)
                    if span is not None:
                        self.spans[sink.path.name] = span
            except BaseException as e:  # reported at the next frame or at the end
                with self._lock:
                    self._errors.append(e)

        thread = threading.Thread(target=close, name="scenecls-recording-close", daemon=True)
        thread.start()
        self._closing = [t for t in self._closing if t.is_alive()] + [thread]

    def on_frame(
        self,
        frame: Frame,
        prediction: Prediction | None,
        analysed: bool,
        annotated_bgr: object | None = None,
    ) -> None:
        with self._lock:
            if self._errors:
                raise OutputError(f"recording in {self.folder} failed: {self._errors[0]}")
        t = frame.timestamp
        sink = self._current
        if sink is not None and t - self._started_at >= self.segment:
            # the last frame stands for the time up to the file's end, even when the
            # frame that would have been written there was dropped (a live source)
            short = round(self.segment * self._fps) - self._written
            if self._last is not None and 0 < short <= 2 * self._fps:
                for _ in range(short):
                    sink.on_frame(*self._last)
            self._close_in_background(sink)
            sink = None
            self._expire()
        if sink is None:
            sink = self._open(t)
        # a constant-rate file that keeps real time: a frame is written as often as the
        # time it stands for needs (a live source delivers what the analysis keeps up
        # with), and not at all when frames come faster than the file's rate
        due = math.floor((t - self._started_at) * self._fps) + 1 - self._written
        if due > 2 * self._fps:  # the input was lost for a while: do not fill the gap
            self._started_at = t - self._written / self._fps
            due = 1
            with self._lock:
                assert self._wall_base is not None
                self._anchors.append((self._written / self._fps, self._wall_base + t))
        for _ in range(max(0, due)):
            sink.on_frame(frame, prediction, analysed, annotated_bgr)
        self._written += max(0, due)
        self._last = (frame, prediction, analysed, annotated_bgr)

    def _expire(self) -> None:
        """Delete this recorder's files that started more than ``keep`` seconds ago."""
        if self.keep is None:
            return
        limit = self.clock() - self.keep
        pattern = re.compile(re.escape(self.prefix) + r"-(\d{8}-\d{6})(?:-\d+)?\.(?:mp4|webm)$")
        for path in sorted(self.folder.glob(f"{self.prefix}-*")):
            m = pattern.match(path.name)
            if not m:
                continue
            started = datetime.strptime(m.group(1), _STAMP).replace(tzinfo=timezone.utc)
            if started.timestamp() < limit:
                with contextlib.suppress(OSError):
                    path.unlink()
                    self.deleted.append(path)
                    with self._lock:
                        self.spans.pop(path.name, None)
                    log.info("recording %s deleted (older than the kept hours)", path.name)

    def finish(self, segments: Sequence[Segment]) -> None:
        if self._current is not None:
            self._close_in_background(self._current)
            self._current = None
        for thread in self._closing:
            thread.join()
        self._closing = []
        self.files.sort()
        if self._errors:
            raise OutputError(f"recording in {self.folder} failed: {self._errors[0]}")
