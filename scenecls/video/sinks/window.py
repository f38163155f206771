"""The window: annotated frames at their presentation times, with the keys of a player.

A file shown in a window plays like a video player would play it: each frame goes on
screen at its presentation time (divided by ``speed``), while the analysis runs ahead,
at most a few seconds (see :class:`WindowSink`). Live sources show each frame as it
comes. The keys (hinted in a bar under the picture): space pauses and resumes, ``q`` or
Esc quits, ``s`` saves the annotated frame as a PNG, ``f`` toggles full screen; closing
the window quits like ``q``.

OpenCV's windows belong on the main thread (Cocoa on macOS insists), so
:func:`run_with_window` runs the pipeline on a worker thread and the window on the
caller's. A pipeline run without it (the Python API) still works: the window then plays
each frame as the pipeline hands it over, on the pipeline's thread.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

import cv2
import numpy as np

from ...atomic import write_bytes_atomic
from ...errors import UsageError
from ...types import Frame, Prediction, Segment
from ..playback import PlaybackClock, PlaybackStats
from .base import RunInfo, Sink

log = logging.getLogger("scenecls")

T = TypeVar("T")

HINT = "space pause   q quit   s snapshot   f full screen"
SHORT_HINT = "spc pause  q quit  s snap  f full"
LEAD_SECONDS = 3.0
"""How far (seconds of video) the analysis of a file may run ahead of the picture."""
LEAD_BYTES = 512 * 2**20
"""...and at most this many bytes of frames waiting to be shown."""
_WINDOW_FLAGS = cv2.WINDOW_NORMAL | cv2.WINDOW_KEEPRATIO | cv2.WINDOW_GUI_NORMAL
_END = object()


def window_title(source: str) -> str:
    """The window title for ``source`` as given on the command line: a file's or
    folder's name, a webcam's index, a URL without its user name and password."""
    if source.isdigit():
        return f"scenecls: webcam {source}"
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", source):
        parts = urlsplit(source)
        host = parts.hostname or ""
        if parts.port:
            host += f":{parts.port}"
        return f"scenecls: {parts.scheme}://{host}{parts.path}"
    return f"scenecls: {Path(source).name or source}"


class WindowSink(Sink):
    """Shows the annotated frames in a window, paced like a video player.

    ``speed``: play files at this factor of their own speed (None: as fast as they are
    analysed); live sources (``RunInfo.live``) always show frames as they come.
    ``snapshot_dir``: where ``s`` saves PNGs (default: the current folder).
    ``clock``: ``time.monotonic`` (tests pass their own, with a ``cv2.waitKey`` that
    moves it).

    Frames wait in a queue between the pipeline (:meth:`on_frame`, any thread) and the
    window (:meth:`play`, the main thread): at most ``LEAD_SECONDS`` of video and
    ``LEAD_BYTES`` of images for files, so analysis runs ahead of the picture but not
    without bound (a pause holds it there); only the newest frame for live sources.
    """

    needs_overlay = True
    needs_every_frame = True

    def __init__(
        self,
        title: str = "scenecls",
        *,
        speed: float | None = 1.0,
        snapshot_dir: Path | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if os.name == "posix" and not (
            os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
        ):
            raise UsageError(
                "--show needs a display (no DISPLAY set): drop --show or run it "
                "on a desktop session"
            )
        self.title = title
        self.speed = speed
        self.snapshot_dir = Path(snapshot_dir) if snapshot_dir is not None else Path(".")
        self.now = clock
        self.stats = PlaybackStats()
        self._live = False
        self._source = "scenecls"
        self._frame_seconds = 0.04
        self._capacity = 64
        self._frames: collections.deque[object] = collections.deque()
        self._cond = threading.Condition()
        self._closed = False  # the window is gone: frames are no longer wanted
        self._quit = False  # the user asked to stop (q, Esc, closing the window)
        self._playing = False  # play() runs the window on another thread
        self._paused_at: float | None = None
        self._full = False
        self._opened = False
        self._shape: tuple[int, ...] = ()  # of the image on screen, with its bar
        self._clock = PlaybackClock(speed)
        self._first_wall: float | None = None
        self._first_t = 0.0
        self._stats_done = False
        self._last: tuple[float, np.ndarray] | None = None  # (t, annotated image) on screen
        self._message: tuple[str, float] | None = None  # (text, until) in the hint bar

    # the pipeline's side

    def start(self, info: RunInfo) -> None:
        self._live = info.live
        self._source = info.source
        self.paces = self.speed is not None and not info.live
        if info.live:
            self._clock = PlaybackClock(None)
        fps = info.fps if info.fps and info.fps > 0 else 25.0
        self._frame_seconds = 1.0 / fps
        w, h = info.size or (1920, 1080)
        by_bytes = LEAD_BYTES // max(1, w * h * 3)
        self._capacity = int(max(4, min(round(LEAD_SECONDS * fps), by_bytes)))

    def on_frame(
        self,
        frame: Frame,
        prediction: Prediction | None,
        analysed: bool,
        annotated_bgr: object | None = None,
    ) -> None:
        image = annotated_bgr if annotated_bgr is not None else frame.image_bgr
        item = (frame.timestamp, image)
        if not self._playing:  # no window thread: show it here and now
            if not self._quit:
                self._present(item)  # type: ignore[arg-type]
            return
        with self._cond:
            if self._live:
                self._frames.clear()  # only the newest frame is worth showing
            while len(self._frames) >= self._capacity and not self._closed:
                self._cond.wait(0.1)
            if not self._closed:
                self._frames.append(item)
                self._cond.notify_all()

    def finish(self, segments: Sequence[Segment]) -> None:
        if self._playing:
            with self._cond:
                self._frames.append(_END)
                self._cond.notify_all()
        else:
            if not self._quit:
                self._hold_last()
            self.close()

    @property
    def stop_requested(self) -> bool:
        return self._quit

    # the window's side

    def play(self, running: Callable[[], bool], stop: threading.Event) -> None:
        """Run the window on this thread until the input ends, the user quits or closes
        the window, ``stop`` is set, or ``running()`` turns false (the pipeline died
        before it could say it ended)."""
        self._playing = True
        try:
            while not self._over(stop):
                item = self._take(0.01)
                if item is _END:
                    self._hold_last(stop)
                    break
                if item is None:
                    if not running():
                        break
                    if self._opened:
                        self._pump(0.001)
                    continue
                self._present(item, stop)  # type: ignore[arg-type]
        finally:
            with self._cond:
                self._closed = True
                self._frames.clear()
                self._cond.notify_all()
            self._finish_stats()
            self.close()

    def close(self) -> None:
        """Close the window (on the thread that showed it)."""
        self._closed = True
        if self._opened:
            self._opened = False
            with contextlib.suppress(cv2.error):
                cv2.destroyWindow(self.title)
                cv2.waitKey(1)  # let the toolkit take it off the screen

    def summary(self) -> str:
        return self.stats.summary(self.speed, self._live)

    def _take(self, timeout: float) -> object | None:
        with self._cond:
            if not self._frames:
                self._cond.wait(timeout)
            if not self._frames:
                return None
            item = self._frames.popleft()
            self._cond.notify_all()
            return item

    def _over(self, stop: threading.Event | None) -> bool:
        return self._quit or (stop is not None and stop.is_set())

    def _wait_for(self, t: float, stop: threading.Event | None) -> bool:
        """Answer keys until presentation time ``t`` is due and the picture is not
        paused; False when the window is to stop instead."""
        while not self._over(stop):
            if self._paused_at is not None:
                self._pump(0.03)
                continue
            due = self._clock.due(t)
            wait = 0.0 if due is None else due - self.now()
            if wait <= 0.0005:
                return True
            self._pump(min(wait, 0.02))
        return False

    def _present(self, item: tuple[float, np.ndarray], stop: threading.Event | None = None) -> None:
        """Show frame ``item`` ``(t, image)`` when it is due."""
        if self._wait_for(item[0], stop):
            self._show(*item)
            self._pump(0.001)

    def _hold_last(self, stop: threading.Event | None = None) -> None:
        """Keep the last frame on screen for its duration, as a player does."""
        if self._last is not None and self._clock.speed is not None:
            end = self._last[0] + self._frame_seconds
            if self._wait_for(end, stop):
                self.stats.video_seconds = end - self._first_t
        self._finish_stats()

    def _finish_stats(self) -> None:
        if self._stats_done:
            return
        self._stats_done = True
        now = self.now()
        if self._paused_at is not None:  # quit while paused
            self.stats.paused_seconds += now - self._paused_at
        if self._first_wall is not None:
            self.stats.wall_seconds = now - self._first_wall - self.stats.paused_seconds
        self.stats.stalls = self._clock.stalls

    def _show(self, t: float, image: np.ndarray) -> None:
        now = self.now()
        self._clock.shown(t, now)
        if self._first_wall is None:
            self._first_wall, self._first_t = now, t
        self.stats.frames += 1
        self.stats.video_seconds = t - self._first_t
        self._last = (t, image)
        self._draw(image)

    def open(self, size: tuple[int, int] | None = None) -> None:
        """Put the window on screen now, with a dark placeholder of ``size`` (width,
        height; default 640x360) until the first frame. :func:`run_with_window` calls it
        before the run's threads start: with another thread busy while a window is being
        mapped, Qt's X11 backend can miss the map event and leave the window blank for
        good (seen under Xvfb, about 1 run in 10)."""
        w, h = size or (640, 360)
        placeholder = np.full((h, w, 3), 16, np.uint8)
        self._draw(placeholder, "starting")
        for _ in range(10):  # let the toolkit map and paint it
            cv2.waitKey(10)

    def _draw(self, image: np.ndarray, status: str | None = None) -> None:
        """Put ``image`` (HxWx3 uint8 BGR) on screen with the hint bar under it."""
        shown = with_hint_bar(image, status or self._status())
        if not self._opened:
            cv2.namedWindow(self.title, _WINDOW_FLAGS)
            self._opened = True
        cv2.imshow(self.title, shown)
        if shown.shape != self._shape:  # new, or the frames changed size: fit the window
            self._shape = shown.shape
            cv2.resizeWindow(self.title, shown.shape[1], shown.shape[0])

    def _status(self) -> str:
        if self._message is not None and self.now() < self._message[1]:
            return self._message[0]
        if self._paused_at is not None:
            return "PAUSED"
        if self._live:
            return "live"
        return "max" if self.speed is None else f"{self.speed:g}x"

    def _pump(self, seconds: float) -> None:
        """Let the window toolkit run for ``seconds`` (at least 1 ms), answering keys and
        noticing a closed window."""
        key = cv2.waitKey(max(1, round(seconds * 1000)))
        if key != -1:
            self._on_key(key & 0xFF)
        if self._opened and not self._quit and self._window_gone():
            log.info("the window was closed: stopping")
            self._quit = True

    def _window_gone(self) -> bool:
        try:
            return cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) < 1
        except cv2.error:  # Qt: the window and its toolkit are gone
            return True

    def _on_key(self, key: int) -> None:
        if key in (ord("q"), ord("Q"), 27):
            self._quit = True
        elif key == ord(" "):
            self._toggle_pause()
        elif key in (ord("s"), ord("S")):
            self._snapshot()
        elif key in (ord("f"), ord("F")):
            self._full = not self._full
            with contextlib.suppress(cv2.error):
                cv2.setWindowProperty(
                    self.title,
                    cv2.WND_PROP_FULLSCREEN,
                    cv2.WINDOW_FULLSCREEN if self._full else cv2.WINDOW_NORMAL,
                )

    def _toggle_pause(self) -> None:
        now = self.now()
        if self._paused_at is None:
            self._paused_at = now
        else:
            held = now - self._paused_at
            self._paused_at = None
            self._clock.shift(held)
            self.stats.paused_seconds += held
        self._redraw()

    def _redraw(self) -> None:
        if self._last is not None and self._opened:
            self._draw(self._last[1])

    def _snapshot(self) -> None:
        if self._last is None:
            return
        t, image = self._last
        path = snapshot_path(self.snapshot_dir, self._source, t, self._live)
        ok, png = cv2.imencode(".png", image)
        try:
            if not ok:
                raise OSError("PNG encoding failed")
            write_bytes_atomic(path, png.tobytes())
        except OSError as e:
            log.error("snapshot not saved: %s: %s", path, e.strerror or e)
            self._message = ("snapshot failed: see the log", self.now() + 3.0)
        else:
            log.info("snapshot saved: %s", path)
            self.stats.snapshots += 1
            self._message = (f"saved {path.name}", self.now() + 2.0)
        self._redraw()


def snapshot_path(folder: Path, source: str, t: float, live: bool) -> Path:
    """A new PNG name in ``folder`` for the frame at ``t`` s of ``source``:
    ``NAME-12.34s.png`` for files, ``NAME-YYYYmmdd-HHMMSS.png`` for live sources
    (``webcam0-...`` for a webcam; ``-2``, ``-3``... when taken)."""
    base = source.rstrip("/").rsplit("/", 1)[-1]
    base = (f"webcam{base}" if base.isdigit() else base) if live else Path(base).stem
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", base).strip("-.")
    stem = (stem or "scenecls")[:60]
    when = time.strftime("%Y%m%d-%H%M%S") if live else f"{t:.2f}s"
    path = folder / f"{stem}-{when}.png"
    n = 2
    while path.exists():
        path = folder / f"{stem}-{when}-{n}.png"
        n += 1
    return path


def with_hint_bar(image: np.ndarray, status: str) -> np.ndarray:
    """``image`` (HxWx3 uint8 BGR) over a dark bar with the keys' hint on the left and
    ``status`` on the right: ``(H + bar, W, 3)`` uint8 BGR, a new array."""
    return np.vstack([image, _hint_bar(image.shape[1], status)])


@functools.lru_cache(maxsize=16)
def _hint_bar(width: int, status: str) -> np.ndarray:
    """The bar itself, ``(bar, width, 3)`` uint8 BGR, drawn once per width and status."""
    font = cv2.FONT_HERSHEY_SIMPLEX
    scale = float(np.clip(width / 1600, 0.35, 0.6))
    pad = max(4, round(scale * 12))
    (_, asc), desc = cv2.getTextSize("Ag", font, scale, 1)
    bar = np.full((asc + desc + 2 * pad, width, 3), 24, np.uint8)
    status_w = cv2.getTextSize(status, font, scale, 1)[0][0]
    room = width - status_w - 3 * pad
    hint = next(
        (s for s in (HINT, SHORT_HINT) if cv2.getTextSize(s, font, scale, 1)[0][0] <= room), ""
    )
    base = pad + asc
    cv2.putText(bar, hint, (pad, base), font, scale, (200, 200, 200), 1, cv2.LINE_AA)
    cv2.putText(
        bar, status, (width - pad - status_w, base), font, scale, (255, 255, 255), 1, cv2.LINE_AA
    )
    bar.flags.writeable = False  # shared between calls
    return bar


def run_with_window(
    run: Callable[[threading.Event], T],
    window: WindowSink,
    stop: threading.Event,
    size: tuple[int, int] | None = None,
) -> T:
    """``run(stop)`` (a pipeline's run) on a worker thread while ``window`` plays on this
    one; returns its result or raises its error. ``size``: the source's (width, height)
    if known, for the window's first size. Quitting the window stops the run through the
    sink; Ctrl-C (``stop``) stops both."""
    box: dict[str, object] = {}

    def work() -> None:
        try:
            box["result"] = run(stop)
        except BaseException as e:  # re-raised on this thread
            box["error"] = e

    worker = threading.Thread(target=work, name="scenecls-pipeline", daemon=True)
    window._playing = True
    window.open(size)  # on screen before any other thread of the run is busy
    worker.start()
    try:
        window.play(worker.is_alive, stop)
    except BaseException:
        stop.set()  # an interrupt on this thread stops the run too
        raise
    finally:
        worker.join()
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["result"]  # type: ignore[return-value]
