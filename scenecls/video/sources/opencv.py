"""Video files, webcams and network streams through OpenCV's video I/O (FFmpeg)."""

from __future__ import annotations

import glob
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from ...errors import InputError, UsageError
from ...redact import redact_url
from ...types import Frame
from .base import FrameSource

log = logging.getLogger("scenecls")

# Decoder and capture-backend messages ("moov atom not found", camera probing warnings)
# would bury our one-line errors: silence OpenCV's and FFmpeg's own logs unless the user
# set them. FFmpeg's level is read when OpenCV first opens a file, so set it at import.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET
if "OPENCV_LOG_LEVEL" not in os.environ:
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)


class _CaptureSource(FrameSource):
    """Shared handling of a ``cv2.VideoCapture``: opening, properties, decoding."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self._cap: cv2.VideoCapture | None = None
        self._index = 0

    def _adopt(self, cap: cv2.VideoCapture, what: str, fix: str) -> None:
        """Keep an opened capture and read its nominal rate and size, or fail clearly."""
        if not cap.isOpened():
            cap.release()
            raise InputError(f"cannot open {what}: {fix}")
        self._cap = cap
        fps = cap.get(cv2.CAP_PROP_FPS)
        self.fps = fps if fps and 0 < fps < 1000 else None
        w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        self.size = (w, h) if w > 0 and h > 0 else None

    def _decode(self) -> np.ndarray | None:
        """The next image as HxWx3 uint8 BGR, or None at the end."""
        if self._cap is None:
            raise InputError(f"{self.name} is not open")
        ok, image = self._cap.read()
        if not ok or image is None:
            return None
        return _to_bgr(image)

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


# Leading bytes of still-image formats that FFmpeg would read as a one-frame "video".
_IMAGE_MAGIC = {
    b"\x89PNG\r\n\x1a\n": "PNG",
    b"\xff\xd8\xff": "JPEG",
    b"BM": "BMP",
    b"II*\x00": "TIFF",
    b"MM\x00*": "TIFF",
}


def still_image_format(path: Path) -> str | None:
    """The still-image format ``path`` holds by its leading bytes (PNG, JPEG, BMP, TIFF,
    WebP), whatever its name says; None for anything else (videos, GIFs)."""
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError:
        return None
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WebP"
    return next((fmt for magic, fmt in _IMAGE_MAGIC.items() if head.startswith(magic)), None)


class VideoFileSource(_CaptureSource):
    """A recorded video (anything FFmpeg reads, animated GIF included).

    Timestamps are the container's presentation times (seconds from the stream start),
    so variable frame rate files keep their real timing. Only when the container has no
    timestamps does the source fall back to index / fps.

    Damaged files are read as far as they go: a frame that fails to decode is skipped
    and counted in ``skipped`` (decoding resumes at the next good frame), and a file
    that ends before the frame count its header promises (a truncated recording) ends
    the run normally with ``ended_early`` set and a warning.
    """

    live = False
    # failed decodes in a row before the file counts as ended (each costs microseconds
    # at a real end of file; a damaged stretch longer than this ends the run early)
    max_failed_reads = 256

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__(str(path))
        self.path = Path(path)
        self._last_t = -1.0
        self.ended_early = False
        self.wanted: Callable[[float], bool] | None = None
        """Frames whose timestamp (s) this returns False for are passed over: decoded (the
        codec needs them) but never converted to an image or handed out; their indices
        stay counted. The pipeline sets it when it analyses at a lower rate and no sink
        needs every frame."""
        self.passed_over = 0

    def open(self) -> None:
        if not self.path.exists():
            raise InputError(f"video {self.path} does not exist: check the path")
        if self.path.is_dir():
            raise InputError(f"{self.path} is a folder, not a video")
        if self.path.stat().st_size == 0:
            raise InputError(f"video {self.path} is empty (0 bytes): it holds no frames")
        fmt = still_image_format(self.path)
        if fmt is not None:
            raise InputError(
                f"{self.path} is a {fmt} image, not a video: classify it with "
                "'scenecls classify', or put images in a folder and run that"
            )
        # (re)opening starts the file from its first frame: index and clock too
        self._index, self._last_t, self.ended_early = 0, -1.0, False
        cap = cv2.VideoCapture(str(self.path), cv2.CAP_FFMPEG)
        self._adopt(
            cap,
            f"{self.path} as a video",
            "it is not a video FFmpeg can read (damaged, or another kind of file)",
        )
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        self.frame_count = count if count > 0 else None

    def read(self) -> Frame | None:
        if self._cap is None:
            raise InputError(f"{self.name} is not open")
        failed = 0
        while failed <= self.max_failed_reads:  # a damaged frame, or the end: try the next
            if not self._cap.grab():
                failed += 1
                continue
            t = self._cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
            if self._index > 0 and t <= self._last_t:  # no usable timestamps in this container
                t = self._index / self.fps if self.fps else self._last_t + 1 / 30
            if self.wanted is not None and not self.wanted(t):
                self._last_t, self._index = t, self._index + 1
                self.passed_over += 1
                self.skipped, failed = self.skipped + failed, 0
                continue
            ok, image = self._cap.retrieve()
            if not ok or image is None:
                failed += 1
                continue
            if failed:
                self.skipped += failed
                log.debug("%s: %d frame(s) could not be decoded, skipped", self.path, failed)
            self._last_t = t
            frame = Frame(_to_bgr(image), self._index, t, time.monotonic())
            self._index += 1
            return frame
        self._check_end()
        return None

    def _check_end(self) -> None:
        """Warn once when the file ended well before its header's frame count."""
        if self.ended_early or not self.frame_count:
            return
        got = self._index + self.skipped
        if self.frame_count - got > max(2, 0.02 * self.frame_count):
            self.ended_early = True
            length = f" ({self._last_t:.1f} s)" if self._last_t >= 0 else ""
            log.warning(
                "%s ended after %d of its %d frames%s: the file looks truncated; the "
                "outputs cover what could be decoded",
                self.path,
                self._index,
                self.frame_count,
                length,
            )


RTSP_TRANSPORTS = ("tcp", "udp")
RTSP_PROBE_US = 500_000
RETRY_MAX_S = 2.0  # a camera that comes back is streaming again within this, plus its open
FFMPEG_OPTIONS = "OPENCV_FFMPEG_CAPTURE_OPTIONS"
_ENV_LOCK = threading.Lock()


class LiveCaptureSource(_CaptureSource):
    """A webcam (integer index) or a network stream URL (rtsp://, http(s)://...).

    Timestamps are the stream clock: seconds since the source was first opened, taken
    when each frame arrives. A source that cannot be opened, or that stops delivering
    frames mid-run, is reopened with exponential backoff (0.5 s doubling to 2 s) for up
    to ``reconnect_timeout`` seconds (0: never); then :class:`InputError` says so. The
    first frame after a reconnect carries the lost time in ``Frame.gap_before``, and
    ``gaps`` lists every (lost at, back at) pair in stream seconds.

    ``name`` (and every message and log line) shows a URL without its credentials
    (:func:`~scenecls.redact.redact_url`); only the capture sees ``target`` whole.
    """

    live = True
    # FFmpeg waits at most this long to connect or for the next packet of a stream
    io_timeout_s = 5.0

    def __init__(
        self, target: int | str, reconnect_timeout: float = 30.0, rtsp_transport: str | None = None
    ) -> None:
        super().__init__(redact_url(str(target)))
        if reconnect_timeout < 0:
            raise UsageError(f"--reconnect-timeout must be 0 or more, not {reconnect_timeout}")
        if rtsp_transport not in (None, *RTSP_TRANSPORTS):
            raise UsageError(f"--rtsp-transport must be tcp or udp, not {rtsp_transport!r}")
        self.rtsp_transport = rtsp_transport
        self.target = target
        if isinstance(target, int) and sys.platform.startswith("linux"):
            devices = sorted(glob.glob("/dev/video*"))
            if f"/dev/video{target}" not in devices:  # fail before the model is loaded
                have = ", ".join(devices) if devices else "none (no /dev/video*)"
                raise UsageError(f"webcam {target} does not exist: cameras here: {have}")
        self.reconnect_timeout = float(reconnect_timeout)
        self.gaps: list[tuple[float, float]] = []
        self._t0: float | None = None
        self._cancel = threading.Event()
        self._lost_at: float | None = None

    @property
    def _what(self) -> str:
        return f"webcam {self.target}" if isinstance(self.target, int) else f"stream {self.name}"

    def _capture(self) -> cv2.VideoCapture:
        if isinstance(self.target, int):
            return cv2.VideoCapture(self.target)
        ms = int(self.io_timeout_s * 1000)
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms]
        if not self.target.lower().startswith(("rtsp://", "rtsps://")):
            return cv2.VideoCapture(self.target, cv2.CAP_FFMPEG, params)
        # FFmpeg reads its options from the environment when a capture opens: set them for
        # this open only (the lock keeps two cameras' opens apart)
        ours = [f"analyzeduration;{RTSP_PROBE_US}"]  # probe 0.5 s, not 5 s: reopen fast
        if self.rtsp_transport:
            ours.insert(0, f"rtsp_transport;{self.rtsp_transport}")
        with _ENV_LOCK:
            before = os.environ.get(FFMPEG_OPTIONS)
            os.environ[FFMPEG_OPTIONS] = "|".join([*ours, *([before] if before else [])])
            try:
                return cv2.VideoCapture(self.target, cv2.CAP_FFMPEG, params)
            finally:
                if before is None:
                    os.environ.pop(FFMPEG_OPTIONS, None)
                else:
                    os.environ[FFMPEG_OPTIONS] = before

    def _fix(self) -> str:
        if isinstance(self.target, int):
            return "check that the camera is connected and not in use by another program"
        return "check the URL and that the server is up"

    def open(self) -> None:
        self._cancel.clear()
        self._connect(first=True)
        if self._t0 is None:
            self._t0 = time.monotonic()

    def _connect(self, first: bool) -> None:
        """Open the capture, retrying with backoff until ``reconnect_timeout`` is spent."""
        deadline = time.monotonic() + self.reconnect_timeout
        delay, tries = 0.5, 0
        while True:
            tries += 1
            cap = self._capture()
            if cap.isOpened():
                self._adopt(cap, self._what, self._fix())
                return
            cap.release()
            left = deadline - time.monotonic()
            if left <= 0 or self._cancel.is_set():
                waited = (
                    f" (tried {tries} times in {self.reconnect_timeout:g} s)" if tries > 1 else ""
                )
                if first:
                    raise InputError(
                        f"cannot open {self._what}{waited}: {self._fix()}"
                        + (" (--reconnect-timeout S waits longer)" if tries > 1 else "")
                    )
                raise InputError(
                    f"{self._what} was lost and could not be reopened{waited}: {self._fix()}"
                )
            if tries == 1:
                log.warning(
                    "%s %s: retrying for up to %g s",
                    "cannot open" if first else "reopening",
                    self._what,
                    self.reconnect_timeout,
                )
            if self._cancel.wait(min(delay, left)):
                raise InputError(f"gave up on {self._what}: stopped while reconnecting")
            delay = min(delay * 2, RETRY_MAX_S)

    def cancel(self) -> None:
        """Stop waiting for a reconnect (called from another thread when a run stops)."""
        self._cancel.set()

    def _decode(self) -> np.ndarray | None:
        """The next image, or None when the stream ended, broke, or stalled: a read that
        waited the whole I/O timeout (FFmpeg may then still hand over a stale frame) means
        the camera stopped sending."""
        started = time.monotonic()
        image = super()._decode()
        if not isinstance(self.target, int) and time.monotonic() - started >= self.io_timeout_s:
            log.warning("%s sent nothing for %.0f s: it stalled", self._what, self.io_timeout_s)
            return None
        return image

    def read(self) -> Frame | None:
        image = self._decode()
        if image is None:
            if self.reconnect_timeout <= 0 or self._cancel.is_set():
                return None
            self._reconnect()
            image = self._decode()
            if image is None:
                raise InputError(f"{self._what} reopened but sends no frames: {self._fix()}")
        now = time.monotonic()
        t = now - (self._t0 or now)
        gap = 0.0
        if self._lost_at is not None:
            gap = max(0.0, t - self._lost_at)
            self.gaps.append((self._lost_at, t))
            self._lost_at = None
        frame = Frame(image, self._index, t, now, gap_before=gap)
        self._index += 1
        return frame

    def _reconnect(self) -> None:
        """The stream ended or broke: release it and open it again (or raise)."""
        self._lost_at = time.monotonic() - (self._t0 or time.monotonic())
        log.warning("%s lost at %.1f s of the stream: reconnecting", self._what, self._lost_at)
        if self._cap is not None:
            self._cap.release()
            self._cap = None
        self._connect(first=False)
        log.warning(
            "%s is back after %.1f s",
            self._what,
            time.monotonic() - (self._t0 or 0.0) - self._lost_at,
        )


def _to_bgr(image: np.ndarray) -> np.ndarray:
    """A decoded image as HxWx3 uint8 BGR (grey and BGRA frames converted)."""
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return image
