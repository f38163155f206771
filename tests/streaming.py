"""A live MJPEG-over-HTTP stream on loopback, for tests of network sources.

``MjpegServer`` serves ``GET /stream.mjpg`` the way IP cameras do: one HTTP response of
type ``multipart/x-mixed-replace`` that never ends, one JPEG per part, paced in real
time. FFmpeg reads it with its ``mpjpeg`` demuxer, so ``cv2.VideoCapture(server.url,
cv2.CAP_FFMPEG)`` opens it like a camera. The server can be stopped abruptly (the
listening socket closes and every open stream is cut), stalled (connections stay open
but no bytes flow), told to turn the next requests away, and restarted on the same port,
which is what reconnection tests need.

Wire format of the body (what FFmpeg's ``mpjpeg`` demuxer accepts)::

    --<boundary>\\r\\n
    Content-Type: image/jpeg\\r\\n
    Content-Length: <n>\\r\\n
    \\r\\n
    <n bytes of JPEG>\\r\\n

repeated, with the response header ``Content-Type: multipart/x-mixed-replace;
boundary=<boundary>`` (the boundary without its leading ``--``).
"""

from __future__ import annotations

import contextlib
import io
import os
import socket
import struct
import threading
import time
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # as scenecls.video.sources.opencv does

import cv2
import numpy as np

if "OPENCV_LOG_LEVEL" not in os.environ:  # no "stream timeout" warnings in test output
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)

PATH = "/stream.mjpg"
BOUNDARY = "scenecls-frame"

FrameSpec = Sequence[np.ndarray] | Callable[[int], np.ndarray]


def encode_jpeg(image: np.ndarray, quality: int = 90) -> bytes:
    """JPEG bytes of one image.

    ``image``: HxWx3 uint8 in BGR order (OpenCV's), or HxW uint8 grey. The decoded
    stream gives the same BGR order back through ``cv2.VideoCapture``.
    """
    if (
        image.dtype != np.uint8
        or image.ndim not in (2, 3)
        or (image.ndim == 3 and image.shape[2] != 3)
    ):
        raise ValueError(f"expected HxWx3 or HxW uint8, got {image.shape} {image.dtype}")
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError(f"cannot encode a {image.shape} image as JPEG")
    return buf.tobytes()


class _Server(ThreadingHTTPServer):
    """The HTTP server of one ``MjpegServer`` start; knows its owner."""

    allow_reuse_address = True  # rebind the same port at once after a stop (TIME_WAIT)
    daemon_threads = True
    block_on_close = False  # MjpegServer joins its handler threads itself, with a bound

    def __init__(self, port: int, owner: MjpegServer) -> None:
        self.owner = owner
        super().__init__(("127.0.0.1", port), _Handler)

    def process_request(self, request: object, client_address: object) -> None:
        """One daemon thread per connection, tracked by the owner so stop() can join it."""
        t = threading.Thread(
            target=self.process_request_thread,
            args=(request, client_address),
            name=f"mjpeg-client-{self.server_address[1]}",
            daemon=True,
        )
        self.owner._track(t)
        t.start()


class _Handler(BaseHTTPRequestHandler):
    """One client: 404 for anything but the stream, else JPEG parts until cut off."""

    server: _Server
    protocol_version = "HTTP/1.0"  # the body ends when the connection closes

    def log_message(self, format: str, *args: object) -> None:
        pass  # keep test output clean

    def handle(self) -> None:
        owner = self.server.owner
        if not owner._register(self.connection):
            return  # stop() has begun: the socket is closed right after this returns
        try:
            super().handle()
        except OSError:
            pass  # the client left, or stop() cut the connection
        finally:
            owner._unregister(self.connection)

    def do_GET(self) -> None:
        if self.path.split("?", 1)[0] != PATH:
            self.send_error(404, "no such stream")
            return
        owner = self.server.owner
        if owner._take_failure():
            self.send_error(503, "stream unavailable")
            return
        self.send_response(200)
        self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        self.send_header("Cache-Control", "no-cache, no-store")
        self.send_header("Pragma", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.flush()
        owner._stream_to(self.wfile)


class MjpegServer:
    """An MJPEG stream at ``http://127.0.0.1:PORT/stream.mjpg``, paced in real time.

    ``frames_bgr``: the pictures to send, each HxWx3 uint8 in BGR order (or HxW uint8
    grey), either a sequence (sent in order and cycled; encoded once) or a function of
    the frame number ``n`` (0, 1, 2, ... counted per connection, so every new client
    starts at 0) that returns one image, called and encoded for every frame sent.
    All frames of a stream should share one size: FFmpeg takes it from the first.
    ``fps``: frames per second of every connection, against the wall clock. A client
    that reads too slowly holds its connection back (the socket buffer fills) and is not
    sent a burst to catch up afterwards.
    ``port``: 0 picks a free port on the first ``start()``; every restart reuses it.

    ``stop()`` closes the listening socket (new connections are refused) and cuts every
    open stream at once; ``pause()`` stalls the streams with their connections open;
    ``fail_next(n)`` answers the next ``n`` stream requests with HTTP 503.
    Thread-safe; all threads are daemons and none survives ``stop()``.
    """

    def __init__(
        self,
        frames_bgr: FrameSpec,
        fps: float = 30.0,
        port: int = 0,
        quality: int = 90,
    ) -> None:
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        if callable(frames_bgr):
            self._make: Callable[[int], np.ndarray] | None = frames_bgr
            self._jpegs: list[bytes] = []
        else:
            if len(frames_bgr) == 0:
                raise ValueError("no frames to serve")
            self._make = None
            self._jpegs = [encode_jpeg(f, quality) for f in frames_bgr]
        self.fps = float(fps)
        self.quality = quality
        self._port = port
        self._lock = threading.Lock()  # guards everything below
        self._control = threading.Lock()  # serialises start/stop
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._running = threading.Event()  # set unless paused
        self._running.set()
        self._clients: set[socket.socket] = set()  # open connections
        self._threads: list[threading.Thread] = []  # connection threads, maybe ended
        self._fail = 0
        self._frames_sent = 0
        self._connections = 0

    # -- control -------------------------------------------------------------------

    def start(self) -> MjpegServer:
        """Listen on 127.0.0.1 (the port of the first start on every later one)."""
        with self._control:
            if self._httpd is not None:
                raise RuntimeError("MjpegServer is already running")
            httpd = _Server(self._port, self)
            self._port = httpd.server_address[1]
            self._stopping.clear()
            self._httpd = httpd
            self._thread = threading.Thread(
                target=httpd.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"mjpeg-server-{self._port}",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self, timeout: float = 2.0) -> None:
        """Stop listening and cut every open stream now (clients see the stream drop).

        Every open connection is shut down mid-stream (often mid-part) and reset when
        closed, the way a camera that loses power looks to the client: a client blocked
        in a read wakes at once, one with frames already buffered gets those and then an
        error. Returns once every server thread has ended (a few ms); raises RuntimeError
        if one outlives ``timeout`` seconds. Does nothing if the server is not running.
        """
        with self._control:
            httpd, thread = self._httpd, self._thread
            if httpd is None or thread is None:
                return
            self._stopping.set()  # handlers leave their pacing waits and pauses
            httpd.shutdown()  # the accept loop ends (within its 0.05 s poll)
            thread.join(timeout)
            httpd.server_close()  # the listening socket: new connections are refused
            with self._lock:
                clients, threads = list(self._clients), [thread, *self._threads]
            for conn in clients:
                _cut(conn)  # wakes a handler blocked in send; it closes the socket
            deadline = time.monotonic() + timeout
            for t in threads:
                t.join(max(0.0, deadline - time.monotonic()))
            alive = [t.name for t in threads if t.is_alive()]
            with self._lock:
                self._threads = [t for t in self._threads if t.is_alive()]
            self._httpd = self._thread = None
            if alive:
                raise RuntimeError(f"MjpegServer threads still running after stop: {alive}")

    def restart(self, downtime: float = 0.0) -> MjpegServer:
        """``stop()``, wait ``downtime`` seconds (connections refused), ``start()``."""
        self.stop()
        if downtime > 0:
            time.sleep(downtime)
        return self.start()

    def pause(self) -> None:
        """Stall every stream: connections stay open but no more bytes are sent.

        New clients get their response headers and then nothing, until ``resume()``.
        A pause outlasts ``stop()`` and ``restart()``.
        """
        self._running.clear()

    def resume(self) -> None:
        """End a ``pause()``: streams go on with the next frame."""
        self._running.set()

    def fail_next(self, n: int = 1) -> None:
        """Answer the next ``n`` requests for the stream with HTTP 503 instead."""
        with self._lock:
            self._fail = max(0, n)

    # -- state ---------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """Whether the server is listening."""
        return self._httpd is not None

    @property
    def port(self) -> int:
        """The TCP port; 0 until the first ``start()`` picked one."""
        return self._port

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT/stream.mjpg``; needs the port, so a first ``start()``."""
        if self._port == 0:
            raise RuntimeError("MjpegServer has no port yet: start() it first")
        return f"http://127.0.0.1:{self._port}{PATH}"

    @property
    def frames_sent(self) -> int:
        """JPEG parts written in full over all connections since creation.

        Counted when the send returns, so a client can have decoded one more.
        """
        with self._lock:
            return self._frames_sent

    @property
    def connections(self) -> int:
        """Stream requests accepted since creation (503 answers included)."""
        with self._lock:
            return self._connections

    @property
    def open_streams(self) -> int:
        """Client connections open right now."""
        with self._lock:
            return len(self._clients)

    def __enter__(self) -> MjpegServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- handler side --------------------------------------------------------------

    def _track(self, thread: threading.Thread) -> None:
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)

    def _register(self, conn: socket.socket) -> bool:
        """Track an open connection; False if stop() has begun (do not serve it)."""
        with self._lock:
            if self._stopping.is_set():
                return False
            self._clients.add(conn)
            return True

    def _unregister(self, conn: socket.socket) -> None:
        with self._lock:
            self._clients.discard(conn)

    def _take_failure(self) -> bool:
        """Count a stream request; True if it is one of those fail_next() turns away."""
        with self._lock:
            self._connections += 1
            if self._fail > 0:
                self._fail -= 1
                return True
            return False

    def _jpeg(self, n: int) -> bytes:
        if self._make is None:
            return self._jpegs[n % len(self._jpegs)]
        return encode_jpeg(self._make(n), self.quality)

    def _stream_to(self, out: io.BufferedIOBase) -> None:
        """Write parts to ``out`` (a handler's wfile) until stop() or a send error."""
        period = 1.0 / self.fps
        due = time.monotonic()
        n = 0
        while not self._stopping.is_set():
            if not self._running.is_set():  # paused: wait, then start the clock again
                while not self._running.wait(0.05):
                    if self._stopping.is_set():
                        return
                due = time.monotonic()
            jpeg = self._jpeg(n)
            head = (
                f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
            ).encode("ascii")
            out.write(head + jpeg + b"\r\n")
            out.flush()
            with self._lock:
                self._frames_sent += 1
            n += 1
            due += period
            wait = due - time.monotonic()
            if wait < -period:  # the client fell behind: skip, do not burst
                due = time.monotonic()
            elif wait > 0 and self._stopping.wait(wait):
                return


def _cut(conn: socket.socket) -> None:
    """Make ``conn`` reset on close and shut it down, waking any blocked send."""
    with contextlib.suppress(OSError):
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        conn.shutdown(socket.SHUT_RDWR)
