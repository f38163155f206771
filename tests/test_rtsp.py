"""Real RTSP cameras: H.264 over RTSP from GStreamer's RTSP server on loopback (run by the
system Python, which has ``gi``), read by ``scenecls run`` and ``scenecls serve``: both
transports, a server that goes away and comes back, a stream that stalls, and a minute
of steady capture-to-label latency with the full-size model."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from scenecls.video.pipeline import Pipeline
from scenecls.video.sources import LiveCaptureSource

from .conftest import MEDIA
from .outputs import read_jsonl
from .serving import ServeProcess, wait_for

VIDEO = MEDIA / "car-detection.mp4"  # H.264, served as it is (no re-encoding)
SERVER = Path(__file__).with_name("rtsp_server.py")
SYSTEM_PYTHON = "/usr/bin/python3"
MODEL = Path(__file__).parent / "fixtures" / "shapes-clip"


def _gstreamer_ready() -> None:
    probe = ("import gi; gi.require_version('GstRtspServer', '1.0'); "
             "from gi.repository import GstRtspServer")  # fmt: skip
    ok = (
        Path(SYSTEM_PYTHON).is_file()
        and subprocess.run([SYSTEM_PYTHON, "-c", probe], capture_output=True).returncode == 0
    )
    if ok:
        return
    need = "apt-get install python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-good gstreamer1.0-plugins-bad"  # noqa: E501
    if os.environ.get("CI"):
        pytest.fail(f"CI must install GStreamer's RTSP server: {need}")
    pytest.skip(f"no GStreamer RTSP server here: {need}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RtspServer:
    """``tests/rtsp_server.py`` on ``port``; ``url`` is its stream."""

    def __init__(self, port: int | None = None, video: Path = VIDEO) -> None:
        _gstreamer_ready()
        self.port = port or free_port()
        self.video = video
        self.url = f"rtsp://127.0.0.1:{self.port}/pass"
        self.proc: subprocess.Popen | None = None

    def start(self) -> RtspServer:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
        self.proc = subprocess.Popen(
            [SYSTEM_PYTHON, str(SERVER), str(self.port), str(self.video)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
        )  # fmt: skip
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if line.strip() != "ready":
            self.stop()
            raise RuntimeError(f"the RTSP server did not start: {line!r}")
        return self

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


@pytest.fixture
def server():  # type: ignore[no-untyped-def]
    s = RtspServer().start()
    try:
        yield s
    finally:
        s.stop()


@pytest.mark.parametrize("transport", ["tcp", "udp"])
def test_run_reads_an_rtsp_camera(
    server: RtspServer, tiny_bundle: Path, tmp_path: Path, transport: str
) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "frames.jsonl"
    cmd = [sys.executable, "-m", "scenecls", "run", server.url, "--model", str(tiny_bundle),
           "--labels", "car,road", "--rtsp-transport", transport, "--jsonl", str(out)]  # fmt: skip
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: out.exists() and len(out.read_bytes().splitlines()) >= 40, timeout=60)
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    rows = read_jsonl(out)
    times = [r["time"] for r in rows]
    assert len(rows) >= 40 and times == sorted(times)
    # a live camera at its own rate: 12.5 frames a second of stream time
    assert (len(rows) - 1) / (times[-1] - times[0]) == pytest.approx(12.5, rel=0.25)
    assert "(live)" in err and "latency     capture to label" in err


def test_serve_streams_again_within_3_s_of_the_camera_coming_back(tmp_path: Path) -> None:
    server = RtspServer().start()
    serve = ServeProcess(
        [server.url, "--name", "pass", "--model", str(MODEL), "--labels", "car,road",
         "--rtsp-transport", "tcp"],
        home=tmp_path / "home",
    )  # fmt: skip
    try:
        wait_for(lambda: serve.camera("pass")["fps"] > 8, timeout=30)
        server.stop()
        wait_for(lambda: serve.camera("pass")["status"] == "retrying", timeout=15)
        time.sleep(4)  # the camera keeps retrying meanwhile
        server.start()
        back = time.monotonic()
        read = serve.camera("pass")["frames_read"]
        wait_for(lambda: serve.camera("pass")["frames_read"] > read + 2, timeout=15, every=0.05)
        assert time.monotonic() - back <= 3.0
        assert serve.camera("pass")["reconnects"] >= 1
    finally:
        serve.stop()
        server.stop()


def test_a_stalled_stream_is_reopened(server: RtspServer, tmp_path: Path) -> None:
    serve = ServeProcess(
        [server.url, "--name", "pass", "--model", str(MODEL), "--labels", "car,road"],
        home=tmp_path / "home",
    )  # fmt: skip
    try:
        wait_for(lambda: serve.camera("pass")["fps"] > 8, timeout=30)
        server.signal(signal.SIGUSR1)  # the server stops sending; the connection stays
        wait_for(lambda: serve.camera("pass")["status"] == "retrying", timeout=20)
        server.signal(signal.SIGUSR2)
        read = serve.camera("pass")["frames_read"]
        wait_for(lambda: serve.camera("pass")["frames_read"] > read + 10, timeout=20)
        assert serve.camera("pass")["status"] == "running"
    finally:
        serve.stop()


@pytest.mark.slow
def test_a_minute_of_rtsp_keeps_capture_to_label_latency_steady(
    server: RtspServer, full_bundle: Path
) -> None:
    import rtsp_latency  # scripts/rtsp_latency.py: the same measurement, by hand

    import scenecls

    model = scenecls.load_model(full_bundle, device="cpu")
    r = rtsp_latency.measure(model, server.url, 60.0)
    assert r["frames_analysed"] >= 0.9 * 12.5 * 60 * 0.9, r  # the encoder keeps up
    assert r["p95_ms"] <= r["bar_ms"], r  # 2x the encoder's batch-1 time + 50 ms
    assert r["steady"], r  # the last third within 10 % of the first: no lag builds up


def test_run_reopens_an_rtsp_camera_that_goes_away(tmp_path: Path) -> None:
    """``scenecls run`` on a camera whose server restarts: the gap is recorded, the open
    segment ends there, and frames come again within 3 s of the server's return."""
    import scenecls

    server = RtspServer().start()
    model = scenecls.load_model(MODEL)
    source = LiveCaptureSource(server.url, reconnect_timeout=30, rtsp_transport="tcp")
    stop = threading.Event()
    back: list[float] = []
    seen: list[float] = []

    class Watch(scenecls.Sink):
        def on_frame(self, frame, prediction, analysed, annotated_bgr=None) -> None:  # type: ignore[no-untyped-def]
            seen.append(time.monotonic())
            if back and seen[-1] > back[0] and len([t for t in seen if t > back[0]]) > 25:
                stop.set()

    def outage() -> None:
        time.sleep(4)
        server.stop()
        time.sleep(3)
        server.start()
        back.append(time.monotonic())

    threading.Thread(target=outage, daemon=True).start()
    threading.Timer(60, stop.set).start()
    try:
        stats = Pipeline(model, "car,road", source, [Watch()]).run(stop)
    finally:
        server.stop()
    assert back and len(stats.gaps) == 1
    first_after = min(t for t in seen if t > back[0])
    assert first_after - back[0] <= 3.0
    lost, resumed = stats.gaps[0]
    assert resumed - lost >= 2.5
    assert all(not (s.start < lost < s.end) for s in stats.segments)  # none spans the gap
