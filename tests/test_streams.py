"""Network streams: a real MJPEG server on loopback that goes away and comes back.

``scenecls run URL`` must retry a stream that cannot be opened (then fail in one line),
and reopen one that drops mid-run, recording the gap: no segment spans it.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest

from scenecls.types import Frame
from scenecls.video.pipeline import Pipeline
from scenecls.video.sinks import Sink
from scenecls.video.sources import FrameSource

from .outputs import one_line_error, read_jsonl, read_segments
from .streaming import MjpegServer


def _scenecls(*args: str) -> list[str]:
    return [sys.executable, "-m", "scenecls", *args]


def _wait_lines(path: Path, n: int, proc: subprocess.Popen, timeout: float = 60) -> int:
    """Wait until ``path`` holds at least ``n`` lines; returns how many it holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"scenecls ended early: {proc.communicate()[1]}")
        count = len(path.read_bytes().splitlines()) if path.exists() else 0
        if count >= n:
            return count
        time.sleep(0.05)
    proc.kill()
    pytest.fail(f"{path.name} never reached {n} lines")


def test_stream_that_never_opens_is_retried_then_fails_in_one_line(
    tiny_bundle: Path, tmp_path: Path, real_frames
) -> None:  # type: ignore[no-untyped-def]
    server = MjpegServer(real_frames[:3]).start()
    url = server.url
    server.stop()  # the port is known, and nothing listens on it
    jsonl = tmp_path / "out.jsonl"
    t0 = time.monotonic()
    proc = subprocess.run(
        _scenecls(
            "run",
            url,
            "--model",
            str(tiny_bundle),
            "--reconnect-timeout",
            "2",
            "--jsonl",
            str(jsonl),
            "--no-progress",
        ),
        capture_output=True,
        text=True,
        timeout=60,
    )
    took = time.monotonic() - t0
    assert proc.returncode == 1, proc.stderr
    line = one_line_error(proc.stderr)
    assert f"cannot open stream {url} (tried " in line and "times in 2 s)" in line
    assert "--reconnect-timeout S waits longer" in line
    assert "check the URL and that the server is up" in line
    assert "retrying for up to 2 s" in proc.stderr  # the user saw it waiting
    assert took < 30  # it gave up, bounded by --reconnect-timeout (plus model load)
    assert not jsonl.exists()  # nothing was started


def test_stream_that_drops_is_reopened_and_the_gap_is_recorded(
    tiny_bundle: Path, tmp_path: Path, real_frames
) -> None:  # type: ignore[no-untyped-def]
    jsonl, segs = tmp_path / "out.jsonl", tmp_path / "segments.json"
    with MjpegServer(real_frames[:8], fps=20) as server:
        proc = subprocess.Popen(
            _scenecls(
                "run",
                server.url,
                "--model",
                str(tiny_bundle),
                "--labels",
                "scenes",
                "--reconnect-timeout",
                "20",
                "--min-dwell",
                "0",
                "--jsonl",
                str(jsonl),
                "--segments",
                str(segs),
            ),
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            before = _wait_lines(jsonl, 20, proc)
            server.stop()  # the camera goes away mid-run...
            time.sleep(2.0)
            server.start()  # ... and comes back on the same address
            _wait_lines(jsonl, before + 20, proc)
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert f"stream {server.url} lost at" in err
    assert "is back after" in err
    assert "gaps        1 (source lost" in err

    times = [r["time"] for r in read_jsonl(jsonl)]
    steps = np.diff(times)
    assert (steps > 0).all()  # one clock across the reconnect
    k = int(np.argmax(steps))
    lost, back = times[k], times[k + 1]
    assert back - lost >= 2.0  # the server was down for 2 s
    assert np.sort(steps)[-2] < 1.0  # and that is the only hole
    logged = re.search(r"input lost from ([\d.]+) s to ([\d.]+) s", err)
    assert logged, err  # the gap is named, at the last frame seen (plus one frame interval)
    assert lost - 0.05 <= float(logged.group(1)) <= lost + 0.5
    assert float(logged.group(2)) == pytest.approx(back, abs=0.05)

    segments = read_segments(segs)
    for s in segments:  # no segment spans the gap
        assert s["end"] <= lost + 0.5 or s["start"] >= back - 1e-6, (s, lost, back)
    assert segments[0]["start"] == pytest.approx(times[0], abs=1e-6)
    assert any(s["start"] == pytest.approx(back, abs=1e-6) for s in segments)
    for a, b in pairwise(segments):
        assert b["start"] >= a["end"] - 1e-6


class _Gappy(FrameSource):
    """10 frames/s for 1 s, 3 s lost, 10 frames/s for 1 s; the 11th frame carries the gap."""

    live = True

    def __init__(self) -> None:
        super().__init__("gappy")
        self.times = [i / 10 for i in range(10)] + [4.0 + i / 10 for i in range(10)]
        self.i = 0

    def open(self) -> None:
        self.size = (32, 32)

    def read(self) -> Frame | None:
        if self.i >= len(self.times):
            return None
        t = self.times[self.i]
        gap = 3.1 if self.i == 10 else 0.0
        image = np.full((32, 32, 3), 40 if t < 2 else 200, np.uint8)
        frame = Frame(image, self.i, t, time.monotonic(), gap_before=gap)
        self.i += 1
        time.sleep(0.01)
        return frame


def test_pipeline_ends_the_open_segment_at_a_gap(tiny_model) -> None:  # type: ignore[no-untyped-def]
    seen: list[float] = []

    class Times(Sink):
        def on_frame(self, frame, prediction, analysed, annotated_bgr=None):  # type: ignore[no-untyped-def]
            seen.append(frame.timestamp)

    stats = Pipeline(tiny_model, "dark,bright", _Gappy(), [Times()]).run()
    assert stats.frames_analysed + stats.frames_dropped == 20
    last_before = max(t for t in seen if t < 2)  # the live reader may have dropped frames
    [(lost, back)] = stats.gaps
    assert back == pytest.approx(4.0)
    assert last_before < lost <= 1.0 + 1e-6  # one frame interval after the last one seen
    before = [s for s in stats.segments if s.start < 2]
    after = [s for s in stats.segments if s.start >= 4.0]
    assert before and after and len(before) + len(after) == len(stats.segments)
    assert before[-1].end == pytest.approx(lost)  # the open segment ends at the gap
    assert after[0].start == pytest.approx(4.0)
    assert f"gaps        1 (source lost, {4.0 - lost:.1f} s in all): {lost:.1f}-4.0 s" in (
        stats.summary()
    )


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/dev/video* is Linux")
def test_a_webcam_that_does_not_exist_is_one_line(capsys) -> None:  # type: ignore[no-untyped-def]
    from scenecls.cli import main

    index = next(i for i in range(90, 200) if not os.path.exists(f"/dev/video{i}"))
    # no model is loaded first (this one does not even exist): the index is checked at once
    assert main(["run", str(index), "--model", "/no/such/model"]) == 2
    line = one_line_error(capsys.readouterr().err)
    assert f"webcam {index} does not exist: cameras here:" in line


def test_stream_that_stays_down_ends_the_run_with_valid_outputs(
    tiny_bundle: Path, tmp_path: Path, real_frames
) -> None:  # type: ignore[no-untyped-def]
    jsonl, segs = tmp_path / "out.jsonl", tmp_path / "segments.json"
    with MjpegServer(real_frames[:8], fps=20) as server:
        cmd = _scenecls("run", server.url, "--model", str(tiny_bundle), "--reconnect-timeout",
                        "2", "--jsonl", str(jsonl), "--segments", str(segs))  # fmt: skip
        proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
        _wait_lines(jsonl, 20, proc)
        server.stop()  # and it never comes back
        t0 = time.monotonic()
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err
    assert time.monotonic() - t0 < 10  # about --reconnect-timeout, not forever
    line = one_line_error(err)
    assert f"stream {server.url} was lost and could not be reopened (tried " in line
    rows = read_jsonl(jsonl)
    segments = read_segments(segs)
    assert segments[-1]["end"] == pytest.approx(rows[-1]["time"], abs=0.5)
