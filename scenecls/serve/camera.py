"""One camera of the service: reads its source on a thread into a newest-frame slot,
reopens it with exponential backoff when it fails, and paces video files in real time
(``loop`` replays them).

Frame timestamps are rewritten to the service clock (seconds since the service
started, ``time.monotonic()`` based), so segments of every camera share one timeline.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from ..redact import redact_url
from ..types import Frame
from ..video.sources import FrameSource, open_source, with_credentials

log = logging.getLogger("scenecls")

STATUSES = ("starting", "running", "retrying", "ended", "stopped")
BACKOFF_FIRST = 1.0
BACKOFF_MAX = 2.0  # a camera that comes back streams again within this (plus its open)


class Camera:
    """A named source read on its own thread.

    ``on_state(camera, status, error)`` is called from the reader thread whenever the
    status changes (``running``, ``retrying`` with the error, ``ended`` for a file
    without ``loop``). :meth:`take` returns the newest unread frame, or None.
    ``max_fps``: at most this many frames a second are offered (the others are skipped as
    they are read; None: every frame).

    ``credentials``: ``(user, password)`` put into ``spec`` (a stream URL) only when the
    source is opened (``--camera-credentials-file``). ``source`` is ``spec`` as it may be
    shown (status, recordings, logs): without any credentials, and so is ``error``.
    """

    def __init__(
        self,
        name: str,
        spec: str,
        *,
        clock: Callable[[], float],
        loop: bool = False,
        image_fps: float = 1.0,
        max_fps: float | None = None,
        on_state: Callable[[Camera, str, str | None], None] | None = None,
        open_source_fn: Callable[[str, float], FrameSource] | None = None,
        rtsp_transport: str | None = None,
        credentials: tuple[str, str] | None = None,
    ) -> None:
        self.name = name
        self.spec = spec
        self.source = redact_url(spec)
        self._credentials = credentials
        self.loop = loop
        self.image_fps = image_fps
        self.max_fps = max_fps
        self._next_due = 0.0
        self.clock = clock
        self.on_state = on_state
        # the camera does its own reconnecting (with a status), so sources never retry
        self._open_source = open_source_fn or (
            lambda spec, fps: open_source(
                spec, image_fps=fps, reconnect_timeout=0, rtsp_transport=rtsp_transport
            )
        )
        self.status = "starting"
        self.error: str | None = None
        self.started_at = clock()
        self.running_since: float | None = None
        self.frames_read = 0
        self.dropped = 0
        self.reconnects = 0
        self.size: tuple[int, int] | None = None
        self.fps: float | None = None  # the source's nominal rate, once opened
        self._slot: Frame | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"camera-{name}", daemon=True)

    def start(self) -> Camera:
        self._thread.start()
        return self

    def stop(self, timeout: float = 3.0) -> None:
        self._stop.set()
        self._thread.join(timeout)
        if self.status != "ended":
            self._set("stopped", None)

    def take(self) -> Frame | None:
        """The newest frame not taken yet (older unread ones were dropped), or None."""
        with self._lock:
            frame, self._slot = self._slot, None
        return frame

    def _set(self, status: str, error: str | None) -> None:
        changed = status != self.status or error != self.error
        self.status, self.error = status, error
        if status == "running":
            self.running_since = self.clock()
        if changed and self.on_state is not None:
            self.on_state(self, status, error)

    def _put(self, frame: Frame) -> None:
        with self._lock:
            if self._slot is not None:
                self.dropped += 1
            self._slot = frame
        self.frames_read += 1

    def _run(self) -> None:
        backoff = BACKOFF_FIRST
        while not self._stop.is_set():
            source: FrameSource | None = None
            try:
                spec = self.spec
                if self._credentials is not None:
                    spec = with_credentials(spec, *self._credentials)
                source = self._open_source(spec, self.image_fps)
                source.open()
                self.size = source.size
                self.fps = source.fps
                self._set("running", None)
                backoff = BACKOFF_FIRST
                finished = self._pump(source)
                if finished:
                    self._set("ended", None)
                    return
                if self._stop.is_set():
                    return
                raise ConnectionError("the source stopped sending frames")
            except Exception as e:  # any failure: retry with backoff, never crash
                message = redact_url(str(e) or type(e).__name__)
                if self.status == "running":
                    log.warning("camera %s lost: %s", self.name, message)
                self._set("retrying", message)
                self.reconnects += 1
                if self._stop.wait(backoff):
                    return
                backoff = min(backoff * 2, BACKOFF_MAX)
            finally:
                if source is not None:
                    source.close()

    def _pump(self, source: FrameSource) -> bool:
        """Read frames into the slot until the source ends or :meth:`stop`. Files are
        paced at their own rate and replayed with ``loop``. Returns True when a file
        ended (without ``loop``), False when a live source stopped or on stop."""
        paced = not source.live
        t0 = time.monotonic()
        base = 0.0  # file time at t0 (grows by each pass's length with loop)
        last_ts = 0.0
        while not self._stop.is_set():
            frame = source.read()
            if frame is None:
                if not paced:
                    return False
                if not self.loop:
                    return True
                source.close()
                source.open()
                base += last_ts + (1.0 / source.fps if source.fps else 0.04)
                continue
            if paced:
                last_ts = frame.timestamp
                due = t0 + base + frame.timestamp
                delay = due - time.monotonic()
                if delay > 0 and self._stop.wait(delay):
                    return False
            now = time.monotonic()
            if self.max_fps:  # at most max_fps frames a second reach the slot
                step = 1.0 / self.max_fps
                if now < self._next_due - step / 4:
                    continue
                self._next_due = (self._next_due if now - self._next_due < step else now) + step
            self._put(Frame(frame.image_bgr, frame.index, self.clock(), now))
        return False
