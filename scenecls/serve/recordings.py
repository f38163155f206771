"""The recordings the history links to: each camera's closed files with the times they
show (across gaps in the input), the file and offset of a moment (or why there is
none), and thumbnails decoded from them."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ..model.history_layout import (
    CHUNK_SECONDS,
    RecordingFile,
    recording_files,
)
from ..video.sinks.recording import RecordedSpan, RecordingSink

log = logging.getLogger("scenecls")


@dataclass(frozen=True)
class Recording:
    """A closed recording of a camera: ``name``, ``camera``, ``span`` (its times)."""

    name: str
    camera: str
    path: Path
    span: RecordedSpan


class Recordings:
    """The recordings of the service's cameras (name -> (stem, recorder or None)) in
    ``folder``: listed with their times, found by time, and why one is missing."""

    def __init__(
        self,
        folder: Path | None,
        cameras: Mapping[str, tuple[str, RecordingSink | None]],
        keep_hours: float | None,
    ) -> None:
        self.folder = None if folder is None else Path(folder)
        self.cameras = dict(cameras)
        self.keep_hours = keep_hours or None
        self._durations: OrderedDict[tuple[str, int, int], float] = OrderedDict()
        self._lock = threading.Lock()

    def stem_camera(self, stem: str) -> str | None:
        return next((n for n, (s, _) in self.cameras.items() if s == stem), None)

    def _duration(self, f: RecordingFile) -> float | None:
        """A file's length (s), read from it once (cached by size and time)."""
        try:
            st = f.path.stat()
        except OSError:
            return None
        key = (f.name, st.st_size, st.st_mtime_ns)
        with self._lock:
            if key in self._durations:
                return self._durations[key]
        import cv2

        cap = cv2.VideoCapture(str(f.path))
        try:
            frames = cap.get(cv2.CAP_PROP_FRAME_COUNT)
            fps = cap.get(cv2.CAP_PROP_FPS)
        finally:
            cap.release()
        duration = frames / fps if frames > 0 and fps > 0 else None
        if duration is not None:
            with self._lock:
                self._durations[key] = duration
                while len(self._durations) > 4096:
                    self._durations.popitem(last=False)
        return duration

    def list(
        self, camera: str, since: float = -math.inf, until: float = math.inf
    ) -> list[Recording]:
        """``camera``'s closed recordings overlapping ``[since, until]``, oldest first."""
        if self.folder is None or camera not in self.cameras:
            return []
        stem, recorder = self.cameras[camera]
        spans = recorder.closed_spans() if recorder is not None else {}
        files = recording_files(self.folder, stem)
        found = []
        for i, f in enumerate(files):
            nxt = files[i + 1].start if i + 1 < len(files) else math.inf
            if f.start > until or nxt + 1.0 < since:
                continue
            span = spans.get(f.name)
            if span is None:
                duration = self._duration(f)
                end = nxt if math.isfinite(nxt) else f.start
                end = f.start + duration if duration is not None else end
                span = RecordedSpan(f.start, end, ((0.0, f.start),))
            if span.end >= since and span.start <= until:
                found.append(Recording(f.name, camera, f.path, span))
        return found

    def find(self, camera: str, t: float) -> tuple[Recording | None, str | None]:
        """The recording of ``camera`` that shows UNIX time ``t``, or None and one line
        saying why there is none."""
        from ..utc import utc_iso

        hhmm = utc_iso(t, 0)[11:16] + " UTC"
        if self.folder is None:
            return None, "no recordings are made: serve with --data DIR (or --record DIR)"
        near = self.list(camera, t - 1.0, t + 1.0)
        for slack in (0.0, 0.5):  # (times shown to the millisecond; names to the second)
            for rec in near:
                if rec.span.covers(t, slack):
                    return rec, None
        recorder = self.cameras.get(camera, (None, None))[1]
        current = recorder.current() if recorder is not None else None
        if current is not None and current[1].start - 1.0 <= t <= time.time() + 1.0:
            closes = utc_iso(current[1].end, 0)[11:16]
            return None, f"still being written: playable when the file closes at {closes} UTC"
        segment = recorder.segment if recorder is not None else CHUNK_SECONDS
        if self.keep_hours is not None and t < time.time() - self.keep_hours * 3600 + segment:
            return None, f"the recording of {hhmm} was deleted (kept {self.keep_hours:g} h)"
        if recorder is None:
            return None, f"no recording covers {hhmm}: recording has stopped (see the log)"
        return None, f"no recording covers {hhmm} (the camera was not recorded then)"

    def path_of(self, name: str) -> Path | None:
        """The file of the recording called ``name``: only a file of this folder whose
        name is a recording name of one of the service's cameras; else None."""
        from ..model.history_layout import parse_recording_name

        if self.folder is None or "/" in name or "\\" in name or name.startswith("."):
            return None
        parsed = parse_recording_name(name)
        if parsed is None or self.stem_camera(parsed[0]) is None:
            return None
        path = self.folder / name
        try:
            if path.is_symlink() or not path.is_file():
                return None
        except OSError:
            return None
        return path


class ThumbnailCache:
    """JPEG frames of recordings, decoded once (at most ``size`` kept)."""

    def __init__(self, size: int = 256) -> None:
        self.size = size
        self._items: OrderedDict[tuple[str, float], bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, path: Path, offset: float) -> bytes | None:
        """A JPEG (320 pixels wide) of ``path``'s frame at ``offset`` seconds."""
        from ..archive.moments import thumbnail_jpeg

        key = (str(path), round(offset, 1))
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        jpeg = thumbnail_jpeg(str(path), offset)
        if jpeg is not None:
            with self._lock:
                self._items[key] = jpeg
                while len(self._items) > self.size:
                    self._items.popitem(last=False)
        return jpeg
