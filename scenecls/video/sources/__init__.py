"""Frame sources: video files, webcams, network streams, image folders, simulated live.

:func:`open_source` picks the backend from a CLI-style string; the classes can be used
(or subclassed) directly.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

from ...errors import UsageError
from ...redact import redact_url
from .base import FrameSource
from .images import IMAGE_EXTENSIONS, ImageFolderSource
from .opencv import LiveCaptureSource, VideoFileSource
from .reader import FrameReader
from .sample import sample_frames
from .simulated import SimulatedLiveSource

STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp", "srt")

__all__ = [
    "IMAGE_EXTENSIONS",
    "FrameReader",
    "FrameSource",
    "ImageFolderSource",
    "LiveCaptureSource",
    "SimulatedLiveSource",
    "VideoFileSource",
    "open_source",
    "sample_frames",
    "with_credentials",
]


def open_source(
    spec: str | int,
    image_fps: float = 1.0,
    reconnect_timeout: float = 30.0,
    rtsp_transport: str | None = None,
) -> FrameSource:
    """A source for ``spec``: a webcam index (``0``), a stream URL, a folder of images or
    a video file. The source is not opened yet. ``reconnect_timeout``: seconds a webcam
    or stream is retried when it cannot be opened or drops (0: never).
    ``rtsp_transport``: ``tcp`` or ``udp`` for ``rtsp://`` streams (None: FFmpeg's
    choice).

    Raises :class:`UsageError` when ``spec`` names nothing (a missing path, a URL scheme
    scenecls does not read)."""
    if isinstance(spec, int) or (isinstance(spec, str) and spec.isdigit()):
        return LiveCaptureSource(int(spec), reconnect_timeout)
    match = re.match(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://", spec)
    if match:
        scheme = match.group(1).lower()
        if scheme == "file":
            return open_source(spec[len("file://") :], image_fps)
        if scheme not in STREAM_SCHEMES:
            raise UsageError(
                f"unsupported URL scheme {scheme}:// in {redact_url(spec)}: use one of "
                f"{', '.join(s + '://' for s in STREAM_SCHEMES)}, "
                "a file, a folder or a webcam index"
            )
        return LiveCaptureSource(spec, reconnect_timeout, rtsp_transport)
    path = Path(spec)
    if path.is_dir():
        return ImageFolderSource(path, image_fps)
    if not path.exists():  # fail before the model is loaded
        raise UsageError(
            f"{spec} does not exist: give a video file, an image folder, a webcam "
            "index or a stream URL"
        )
    return VideoFileSource(path)


def with_credentials(url: str, user: str, password: str) -> str:
    """``url`` (a stream URL without a login) with ``user`` and ``password`` as its user
    information, percent-encoded (FFmpeg decodes them: a password may hold ``@``, ``/``
    or ``:``). Only the code that opens a camera calls it; the result is never shown."""
    parts = urlsplit(url)
    login = f"{quote(user, safe='')}:{quote(password, safe='')}"
    return urlunsplit(parts._replace(netloc=f"{login}@{parts.netloc}"))
