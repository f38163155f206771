"""The loopback MJPEG server of tests/streaming.py, read through OpenCV's FFmpeg backend.

These pin what the reconnection tests rely on: FFmpeg opens the stream, frames arrive at
their size in BGR order, stop() makes reads fail at once (not after a read timeout),
restart() serves on the same port again, and pause() stalls until the read timeout.
"""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request

import cv2
import numpy as np
import pytest

from .streaming import BOUNDARY, MjpegServer

H, W = 96, 128  # not square, so a swapped width and height shows
BLUE, RED = (255, 0, 0), (0, 0, 255)  # BGR
TOLERANCE = 12  # JPEG error on flat 16-pixel-aligned colour blocks (measured: 1 to 2)


def timeouts(open_ms: int = 3000, read_ms: int = 3000) -> list[int]:
    """VideoCapture parameters that bound open() and read() on a dead stream."""
    return [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, open_ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, read_ms]


def capture(url: str, open_ms: int = 3000, read_ms: int = 3000) -> cv2.VideoCapture:
    return cv2.VideoCapture(url, cv2.CAP_FFMPEG, timeouts(open_ms, read_ms))


def blue_red() -> np.ndarray:
    """HxWx3 uint8 BGR: the left half blue, the right half red."""
    image = np.empty((H, W, 3), np.uint8)
    image[:, : W // 2] = BLUE
    image[:, W // 2 :] = RED
    return image


def read_until_failure(cap: cv2.VideoCapture, limit_s: float) -> tuple[int, float]:
    """Read until read() fails: (frames still read, seconds it took)."""
    t0 = time.monotonic()
    n = 0
    while cap.read()[0]:
        n += 1
        assert time.monotonic() - t0 < limit_s, f"still reading after {limit_s} s"
    return n, time.monotonic() - t0


def server_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("mjpeg-")]


def test_frames_arrive_at_their_size_in_bgr_order() -> None:
    with MjpegServer([blue_red()], fps=30) as server:
        cap = capture(server.url)
        try:
            assert cap.isOpened()
            for _ in range(3):
                ok, image = cap.read()
                assert ok
                assert image.shape == (H, W, 3) and image.dtype == np.uint8
                left, right = image[H // 2, W // 4], image[H // 2, 3 * W // 4]
                assert np.abs(left.astype(int) - BLUE).max() <= TOLERANCE, left
                assert np.abs(right.astype(int) - RED).max() <= TOLERANCE, right
        finally:
            cap.release()
        assert server.frames_sent >= 2  # the counter may lag the client by the part in flight
        assert server.connections == 1


def test_wire_format_and_other_paths() -> None:
    with MjpegServer([blue_red()], fps=30) as server:
        with urllib.request.urlopen(server.url, timeout=5) as response:
            assert response.headers["Content-Type"] == (
                f"multipart/x-mixed-replace; boundary={BOUNDARY}"
            )
            assert response.readline() == f"--{BOUNDARY}\r\n".encode()
            assert response.readline() == b"Content-Type: image/jpeg\r\n"
            length = response.readline()
            assert length.startswith(b"Content-Length: ")
            assert response.readline() == b"\r\n"
            jpeg = response.read(int(length.split(b":")[1]))
            assert response.read(2) == b"\r\n"
        decoded = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        assert decoded.shape == (H, W, 3)
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(server.url.replace("stream.mjpg", "other"), timeout=5)
        assert err.value.code == 404


def test_stop_drops_the_stream_and_restart_serves_the_same_port() -> None:
    server = MjpegServer([blue_red()], fps=30).start()
    try:
        port = server.port
        cap = capture(server.url)  # a 3 s read timeout: failing sooner is the drop itself
        assert cap.read()[0]
        t0 = time.monotonic()
        server.stop()
        assert time.monotonic() - t0 < 0.5
        assert server_threads() == []
        _, took = read_until_failure(cap, limit_s=2.0)
        assert took < 1.0  # frames already received may still come, then the error
        assert not cap.read()[0]
        cap.release()

        t0 = time.monotonic()
        refused = capture(server.url)  # nothing listens: connection refused
        assert not refused.isOpened()
        assert time.monotonic() - t0 < 1.0

        server.restart()
        assert server.port == port
        cap = capture(server.url)
        try:
            assert cap.isOpened()
            ok, image = cap.read()
            assert ok and image.shape == (H, W, 3)
        finally:
            cap.release()
    finally:
        server.stop()
    assert server_threads() == []


def test_pause_stalls_reads_until_the_read_timeout() -> None:
    with MjpegServer([blue_red()], fps=30) as server:
        cap = capture(server.url, read_ms=1000)
        try:
            assert cap.read()[0]
            server.pause()
            _, took = read_until_failure(cap, limit_s=5.0)
            assert 0.8 < took < 2.5  # the connection is open: only the timeout ends it
            assert server.open_streams == 1
        finally:
            cap.release()
        server.resume()
        cap = capture(server.url)
        try:
            assert cap.read()[0]
        finally:
            cap.release()


def test_fail_next_and_frames_from_a_function() -> None:
    def grey(n: int) -> np.ndarray:
        """HxW uint8: frame n is a flat grey of level 40 * n (mod 256)."""
        return np.full((H, W), (40 * n) % 256, np.uint8)

    with MjpegServer(grey, fps=30) as server:
        server.fail_next(1)
        t0 = time.monotonic()
        failed = capture(server.url)
        assert not failed.isOpened()  # HTTP 503
        assert time.monotonic() - t0 < 1.0
        cap = capture(server.url)
        try:
            levels = []
            for _ in range(4):
                ok, image = cap.read()
                assert ok and image.shape == (H, W, 3)  # decoded to 3 channels
                levels.append(int(image[0, 0, 0]))
        finally:
            cap.release()
        assert np.abs(np.array(levels) - [0, 40, 80, 120]).max() <= 3, (
            levels
        )  # new client: n from 0
        assert server.connections == 2
