"""``scenecls run --show`` in a real window: Xvfb as the display, keys sent with xdotool,
the screen read back with xwd. CI installs the tools and fails these tests without them;
elsewhere they skip (the window's logic is also tested without a display in
test_window.py)."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from .outputs import check_segments, read_jsonl, read_segments
from .xdisplay import Xvfb, need_x_tools

REPO = Path(__file__).resolve().parents[1]
SHAPES_MODEL = REPO / "tests" / "fixtures" / "shapes-clip"
sys.path.insert(0, str(REPO / "scripts"))
import synthetic_shapes  # noqa: E402

LABELS = ",".join(synthetic_shapes.CLASSES)
FPS = 25
W, H = 320, 240


@pytest.fixture(scope="module")
def x() -> Iterator[Xvfb]:
    need_x_tools()
    server = Xvfb()
    yield server
    server.close()


@pytest.fixture(scope="module")
def ten_seconds(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 10 s, 25 fps, 320x240 video: a red circle for 5 s, then a blue ring."""
    path = tmp_path_factory.mktemp("window") / "ten.mp4"
    synthetic_shapes.make_video(
        path, [("red circle", 0, 5), ("blue ring", 5, 10)], fps=FPS, size=(W, H)
    )
    return path


def _outputs(out: Path) -> list[str]:
    return ["--jsonl", str(out / "f.jsonl"), "--segments", str(out / "s.json"),
            "--out", str(out / "a.mp4")]  # fmt: skip


def _start(x: Xvfb, video: Path | str, *args: str) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "scenecls", "run", str(video), "--model", str(SHAPES_MODEL)]
    cmd += ["--labels", LABELS, "--no-progress", *args]
    return subprocess.Popen(
        cmd, env=x.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _finish(proc: subprocess.Popen[str], timeout: float = 30) -> tuple[int, str]:
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
        raise AssertionError(f"the run did not end:\n{err}") from None
    return proc.returncode, err


def _frame_at(video: Path, t: float) -> np.ndarray:
    """The decoded frame of ``video`` at ``t`` seconds (HxWx3 uint8 BGR)."""
    cap = cv2.VideoCapture(str(video))
    try:
        for _ in range(round(t * FPS)):
            cap.grab()
        ok, frame = cap.read()
        assert ok
        return frame
    finally:
        cap.release()


def _check_outputs(out: Path, most_frames: int) -> int:
    """The JSONL, segments and video of a run that was stopped are complete and valid;
    returns the number of analysed frames."""
    lines = read_jsonl(out / "f.jsonl")
    assert 0 < len(lines) < most_frames
    segments = read_segments(out / "s.json")
    check_segments(segments, first_time=0.0, end_time=segments[-1]["end"])
    cap = cv2.VideoCapture(str(out / "a.mp4"))
    assert cap.isOpened() and int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) >= len(lines)
    cap.release()
    assert not list(out.glob(".*"))  # no temporary file left behind
    return len(lines)


def test_the_window_shows_the_overlay_pauses_snapshots_and_quits_on_q(
    x: Xvfb, ten_seconds: Path, tmp_path: Path
) -> None:
    out = tmp_path
    proc = _start(x, ten_seconds, "--show", *_outputs(out))
    window = x.wait_window(r"^scenecls: ten\.mp4$", proc=proc)  # the title names the source
    _, _, width, height = x.geometry(window)
    assert width == W and height > H  # the picture at its own size, the hint bar below
    time.sleep(1.0)
    playing = [x.grab_window(window)]
    time.sleep(0.4)
    playing.append(x.grab_window(window))
    assert np.abs(playing[0].astype(int) - playing[1]).mean() > 1  # the picture moves

    x.key(window, "space")
    time.sleep(0.4)
    paused = [x.grab_window(window)]
    time.sleep(1.0)
    paused.append(x.grab_window(window))
    assert np.array_equal(paused[0], paused[1])  # paused: the picture stands still
    assert not np.array_equal(paused[0][H:], playing[1][H:])  # the hint bar says so

    x.key(window, "s")
    deadline = time.monotonic() + 10
    while not (pngs := list(out.glob("ten-*.png"))) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(pngs) == 1, "s saved no snapshot next to the outputs"
    snapshot = cv2.imread(str(pngs[0]))
    assert np.array_equal(snapshot, paused[0][:H])  # what is on screen, without the bar
    # it is the video's frame at that time with the overlay drawn on it: the top-left
    # panel differs from the plain frame, the middle right (no overlay there) does not
    t = float(re.fullmatch(r"ten-(\d+\.\d\d)s\.png", pngs[0].name).group(1))  # type: ignore[union-attr]
    assert 1.0 < t < 3.0
    plain = _frame_at(ten_seconds, t)
    panel = (slice(0, H // 4), slice(0, W // 3))
    clear = (slice(H // 3, 2 * H // 3), slice(2 * W // 3, W))
    assert np.abs(snapshot[panel].astype(int) - plain[panel]).mean() > 20
    assert np.abs(snapshot[clear].astype(int) - plain[clear]).mean() < 1

    x.key(window, "space")  # resumes
    time.sleep(0.5)
    assert np.abs(x.grab_window(window).astype(int) - paused[1]).mean() > 1
    x.key(window, "f")  # full screen and back (no window manager here to act on it)
    x.key(window, "f")
    x.key(window, "q")
    code, err = _finish(proc)
    assert code == 0, err
    assert "[stopped early]" in err and "1 snapshot(s)" in err
    analysed = _check_outputs(out, most_frames=10 * FPS)
    assert analysed < 9 * FPS  # q ended it well before the end of the video
    assert not x.windows(r"^scenecls: ten\.mp4$")


def test_a_10_second_file_plays_in_10_seconds_with_the_same_outputs(
    x: Xvfb, ten_seconds: Path, tmp_path: Path
) -> None:
    shown = tmp_path / "shown.jsonl"
    proc = _start(x, ten_seconds, "--show", "--speed", "1", "--jsonl", str(shown))
    window = x.wait_window(r"^scenecls: ten\.mp4$", proc=proc)
    started = x.wait_picture(window, H)  # the first frame, after the placeholder
    deadline = started + 30
    while x.windows(r"^scenecls: ten\.mp4$") and time.monotonic() < deadline:
        time.sleep(0.02)
    played = time.monotonic() - started
    code, err = _finish(proc)
    assert code == 0, err
    assert 9.0 <= played <= 11.0, f"10 s of video took {played:.2f} s on screen"
    assert re.search(r"window +showed 250 frames \(10\.0 s of video\)", err), err
    # the outputs do not depend on the window or its speed
    plain = tmp_path / "plain.jsonl"
    code, err = _finish(_start(x, ten_seconds, "--jsonl", str(plain)))
    assert code == 0, err
    assert shown.read_bytes() == plain.read_bytes()
    assert len(shown.read_text().splitlines()) == 10 * FPS


def test_ctrl_c_while_watching_finishes_the_outputs(
    x: Xvfb, ten_seconds: Path, tmp_path: Path
) -> None:
    proc = _start(x, ten_seconds, "--show", *_outputs(tmp_path))
    x.wait_window(r"^scenecls: ten\.mp4$", proc=proc)
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    stopped = time.monotonic()
    code, err = _finish(proc)
    assert code == 130, err
    assert time.monotonic() - stopped < 2.0
    assert "Traceback" not in err
    _check_outputs(tmp_path, most_frames=10 * FPS)
    assert not x.windows(r"^scenecls: ten\.mp4$")


def test_closing_the_window_quits_like_q(x: Xvfb, ten_seconds: Path, tmp_path: Path) -> None:
    out = tmp_path
    proc = _start(x, ten_seconds, "--show", "--speed", "2", *_outputs(out))
    window = x.wait_window(r"^scenecls: ten\.mp4$", proc=proc)
    time.sleep(1.0)
    # what a window manager sends when its close button is clicked; under a bare Xvfb
    # Qt misses about 1 in 20 of these messages, so it is sent again as a user would
    # click again (never while the run was still meant to go on: 1.5 s apart, at 2x)
    for _ in range(3):
        x.close_window(window)
        try:
            proc.wait(1.5)
            break
        except subprocess.TimeoutExpired:
            continue
    code, err = _finish(proc)
    assert code == 0, err
    assert "the window was closed" in err and "[stopped early]" in err
    _check_outputs(out, most_frames=10 * FPS)
    assert "Traceback" not in err


def test_a_live_camera_shows_the_newest_frame_and_pauses_only_the_picture(
    x: Xvfb, tmp_path: Path
) -> None:
    from .test_rtsp import RtspServer

    server = RtspServer().start()
    try:
        jsonl = tmp_path / "f.jsonl"
        proc = _start(x, server.url, "--jsonl", str(jsonl), "--show")
        window = x.wait_window(r"^scenecls: rtsp://127\.0\.0\.1:[0-9]+/pass$", proc=proc)
        x.wait_picture(window, x.geometry(window)[3] * 3 // 4)
        time.sleep(0.5)
        first = x.grab_window(window)
        time.sleep(0.5)
        assert np.abs(x.grab_window(window).astype(int) - first).mean() > 0.5  # it moves
        x.key(window, "space")
        time.sleep(0.4)
        lines = len(jsonl.read_text().splitlines())
        paused = x.grab_window(window)
        time.sleep(1.0)
        assert np.array_equal(x.grab_window(window), paused)  # the picture stands still
        assert len(jsonl.read_text().splitlines()) > lines + 5  # the camera is still labelled
        x.key(window, "s")
        x.key(window, "q")
        code, err = _finish(proc)
    finally:
        server.stop()
    assert code == 0, err
    assert "(live)" in err and "[stopped early]" in err
    assert re.search(r"window +showed \d+ frames .* live;", err), err
    (snapshot,) = tmp_path.glob("pass-*.png")  # named by the stream and the wall clock
    assert re.fullmatch(r"pass-\d{8}-\d{6}\.png", snapshot.name)
    image = cv2.imread(str(snapshot))
    assert np.array_equal(image, paused[: image.shape[0]])  # what was on screen, no bar
