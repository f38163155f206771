"""The window without a display: OpenCV's window calls replaced by a recorder whose
``waitKey`` moves a fake clock, so pacing, pauses and keys are checked exactly. The real
window, under Xvfb, is in test_window_x11.py."""

from __future__ import annotations

import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from scenecls.errors import UsageError
from scenecls.types import Frame
from scenecls.video.pipeline import Pipeline, PipelineConfig
from scenecls.video.playback import PlaybackClock, parse_speed
from scenecls.video.sinks import JsonlSink, RunInfo, WindowSink, run_with_window
from scenecls.video.sinks import window as window_module
from scenecls.video.sinks.window import (
    snapshot_path,
    window_title,
    with_hint_bar,
)
from scenecls.video.sources import VideoFileSource

from .conftest import VIDEOS
from .outputs import read_jsonl

LABELS = "room,park,warehouse,street"


class FakeScreen:
    """Stands in for OpenCV's window calls. ``waitKey(ms)`` advances the clock by ``ms``
    and returns the first key scheduled at or before the new time; ``shown`` records
    ``(time, image)`` per ``imshow``; ``closed_at``: from then on the window is gone."""

    def __init__(
        self, monkeypatch: pytest.MonkeyPatch, keys: dict[float, str] | None = None
    ) -> None:
        self.t = 100.0
        self.keys = sorted((100.0 + at, k) for at, k in (keys or {}).items())
        self.shown: list[tuple[float, np.ndarray]] = []
        self.props: list[tuple[int, float]] = []
        self.closed_at: float | None = None
        self.close_raises = False
        self.destroyed = False
        cv = window_module.cv2
        monkeypatch.setenv("DISPLAY", ":99")
        monkeypatch.setattr(cv, "namedWindow", lambda title, flags=0: None)
        monkeypatch.setattr(cv, "resizeWindow", lambda title, w, h: None)
        monkeypatch.setattr(cv, "imshow", lambda title, img: self.shown.append((self.t, img)))
        monkeypatch.setattr(cv, "waitKey", self.wait_key)
        monkeypatch.setattr(cv, "getWindowProperty", self.get_property)
        monkeypatch.setattr(
            cv, "setWindowProperty", lambda title, prop, value: self.props.append((prop, value))
        )
        monkeypatch.setattr(cv, "destroyWindow", lambda title: setattr(self, "destroyed", True))

    def clock(self) -> float:
        return self.t

    def wait_key(self, ms: int) -> int:
        self.t += ms / 1000
        if self.keys and self.keys[0][0] <= self.t + 1e-9:
            _, key = self.keys.pop(0)
            return 27 if key == "Esc" else ord(key)
        return -1

    def get_property(self, title: str, prop: int) -> float:
        if self.closed_at is not None and self.t >= self.closed_at:
            if self.close_raises:
                raise cv2.error("NULL guiReceiver (please create a window)")
            return 0.0
        return 1.0

    def frame_times(self, start: float = 0.0) -> list[float]:
        """Seconds from the first frame shown to each ``imshow``."""
        return [round(t - self.shown[0][0] - start, 6) for t, _ in self.shown]


def _frame(t: float, value: int = 0, size: tuple[int, int] = (48, 64)) -> Frame:
    return Frame(np.full((*size, 3), value % 256, np.uint8), int(t * 100), t)


def _window(screen: FakeScreen, speed: float | None = 1.0, live: bool = False, **kw) -> WindowSink:  # type: ignore[no-untyped-def]
    sink = WindowSink("scenecls: test", speed=speed, clock=screen.clock, **kw)
    sink.start(RunInfo("clip.mp4", ("a",), (64, 48), 25.0, live))
    return sink


def _feed(sink: WindowSink, times: list[float]) -> None:
    for i, t in enumerate(times):
        sink.on_frame(_frame(t, i), None, True)
        if sink.stop_requested:
            break
    sink.finish([])


def test_clock_paces_by_presentation_time_pause_and_late_frames() -> None:
    clock = PlaybackClock(speed=2.0, late=0.25)
    assert clock.due(5.0) is None  # nothing shown yet: at once
    clock.shown(5.0, now=100.0)
    assert clock.due(6.0) == pytest.approx(100.5)  # 1 s of video at 2x
    clock.shown(6.0, now=100.5)
    clock.shift(3.0)  # a 3 s pause
    assert clock.due(7.0) == pytest.approx(104.0)
    clock.shown(7.0, now=104.2)  # 0.2 s late: within the tolerance, the clock holds
    assert clock.due(8.0) == pytest.approx(104.5) and clock.stalls == 0
    clock.shown(8.0, now=106.0)  # 1.5 s late: analysis fell behind, restart from here
    assert clock.due(9.0) == pytest.approx(106.5) and clock.stalls == 1
    clock.shown(1.0, now=107.0)  # time went back (a restarted input): re-anchor
    assert clock.due(2.0) == pytest.approx(107.5) and clock.stalls == 1
    assert PlaybackClock(speed=None).due(3.0) is None


@pytest.mark.parametrize("speed", [1.0, 2.0, 0.5])
def test_a_file_plays_at_its_presentation_times(speed: float, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    screen = FakeScreen(monkeypatch)
    sink = _window(screen, speed)
    times = [0.0, 0.04, 0.08, 0.12, 0.6, 0.64, 2.0]  # variable frame rate, a long gap
    _feed(sink, times)
    shown = screen.frame_times()
    assert len(shown) == len(times)
    assert shown == pytest.approx([t / speed for t in times], abs=0.002)
    # the last frame stays up for one frame time (1/25 s) before the window closes
    assert screen.t - screen.shown[0][0] == pytest.approx((2.0 + 0.04) / speed, abs=0.002)
    assert screen.destroyed
    assert sink.stats.frames == len(times)
    assert sink.stats.video_seconds == pytest.approx(2.04)
    assert sink.stats.wall_seconds == pytest.approx(2.04 / speed, abs=0.003)
    assert "at " in sink.summary() and f"asked {speed:g}x" in sink.summary()


def test_speed_max_shows_frames_without_waiting(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    screen = FakeScreen(monkeypatch)
    _feed(_window(screen, None), [0.0, 1.0, 2.0, 3.0])
    assert screen.frame_times()[-1] < 0.01


def test_pause_stops_the_picture_and_the_clock(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    screen = FakeScreen(monkeypatch, keys={0.1: " ", 1.6: " "})  # 1.5 s paused
    sink = _window(screen)
    _feed(sink, [0.0, 0.2, 0.4])
    times = screen.frame_times()
    # frame 0.0; at 0.1 the pause redraws frame 0 (hint says PAUSED); nothing new until
    # the resume at 1.6 redraws it again; then 0.2 s of video is due 1.5 s later
    assert times == pytest.approx([0.0, 0.1, 1.6, 1.7, 1.9], abs=0.002)
    paused = [img for _, img in screen.shown[1:3]]
    assert np.array_equal(paused[0][:48], screen.shown[0][1][:48])  # the same picture
    assert not np.array_equal(paused[0][48:], screen.shown[0][1][48:])  # the hint changed
    assert sink.stats.paused_seconds == pytest.approx(1.5, abs=0.002)


@pytest.mark.parametrize("key", ["q", "Q", "Esc"])
def test_q_or_esc_quits(key: str, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    screen = FakeScreen(monkeypatch, keys={0.1: key})
    sink = _window(screen)
    _feed(sink, [0.0, 0.04, 0.08, 0.12, 0.16, 0.2])
    assert sink.stop_requested
    assert len(screen.shown) == 3  # 0.0, 0.04, 0.08; the key came before 0.12 was due


@pytest.mark.parametrize("raises", [False, True], ids=["not-visible", "toolkit-gone"])
def test_closing_the_window_quits_like_q(raises: bool, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    screen = FakeScreen(monkeypatch)
    screen.closed_at, screen.close_raises = 100.1, raises
    sink = _window(screen)
    _feed(sink, [0.0, 0.04, 0.08, 0.12, 0.16, 0.2])
    assert sink.stop_requested and len(screen.shown) == 3


def test_s_saves_the_annotated_frame_as_png(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    screen = FakeScreen(monkeypatch, keys={0.05: "s", 0.06: "s"})
    sink = _window(screen, snapshot_dir=tmp_path)
    _feed(sink, [0.0, 0.1])
    saved = sorted(tmp_path.glob("*.png"))
    assert [p.name for p in saved] == ["clip-0.00s-2.png", "clip-0.00s.png"]
    image = cv2.imread(str(saved[1]))
    assert np.array_equal(image, screen.shown[0][1][:48])  # the frame, without the hint bar
    assert sink.stats.snapshots == 2
    assert not list(tmp_path.glob(".*"))  # no temporary file left


def test_a_snapshot_that_cannot_be_written_does_not_stop_the_run(
    tmp_path: Path, monkeypatch, caplog
) -> None:  # type: ignore[no-untyped-def]
    screen = FakeScreen(monkeypatch, keys={0.05: "s"})
    sink = _window(screen, snapshot_dir=tmp_path / "gone")
    _feed(sink, [0.0, 0.1])
    assert len(screen.shown) >= 2 and not sink.stop_requested
    assert "snapshot not saved" in caplog.text


def test_f_toggles_full_screen(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    screen = FakeScreen(monkeypatch, keys={0.05: "f", 0.1: "f"})
    _feed(_window(screen), [0.0, 0.2])
    assert screen.props == [
        (cv2.WND_PROP_FULLSCREEN, cv2.WINDOW_FULLSCREEN),
        (cv2.WND_PROP_FULLSCREEN, cv2.WINDOW_NORMAL),
    ]


def test_live_sources_keep_only_the_newest_frame_waiting(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    screen = FakeScreen(monkeypatch)
    sink = _window(screen, live=True)
    sink._playing = True  # as run_with_window sets it: frames wait for the window thread
    for i in range(10):
        sink.on_frame(_frame(i * 0.1, i), None, True)  # never blocks
    assert len(sink._frames) == 1 and sink._frames[0][0] == pytest.approx(0.9)


def test_a_file_runs_ahead_of_the_picture_but_not_without_bound(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    screen = FakeScreen(monkeypatch)
    sink = _window(screen)  # 25 fps: 3 s of lead is 75 frames
    sink._playing = True
    fed = threading.Event()

    def produce() -> None:
        for i in range(200):
            sink.on_frame(_frame(i / 25, i), None, True)
        fed.set()

    threading.Thread(target=produce, daemon=True).start()
    assert not fed.wait(0.5)
    assert len(sink._frames) == 75
    sink._closed = True  # the window went away: the producer is let go at once
    assert fed.wait(5)
    big = WindowSink("x", clock=screen.clock)
    big.start(RunInfo("4k.mp4", ("a",), (3840, 2160), 30.0, False))
    assert big._capacity == 512 * 2**20 // (3840 * 2160 * 3)  # 21 frames of 4K


def test_run_with_window_plays_a_pipeline_from_another_thread(
    tiny_model, tmp_path: Path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    video = next(v for v in VIDEOS if v.suffix == ".mp4")
    screen = FakeScreen(monkeypatch, keys={2.1: "q"})  # the placeholder takes 0.1 s
    window = WindowSink("scenecls: test", clock=screen.clock)
    main_thread = threading.current_thread()
    seen_on: set[threading.Thread] = set()
    real_imshow = window_module.cv2.imshow

    def imshow(title: str, img: np.ndarray) -> None:
        seen_on.add(threading.current_thread())
        real_imshow(title, img)

    monkeypatch.setattr(window_module.cv2, "imshow", imshow)
    jsonl = tmp_path / "f.jsonl"
    pipeline = Pipeline(
        tiny_model,
        LABELS,
        VideoFileSource(video),
        [JsonlSink(jsonl), window],
        config=PipelineConfig(),
    )
    stats = run_with_window(pipeline.run, window, threading.Event(), (320, 240))
    assert seen_on == {main_thread}  # the window lives on the calling thread
    placeholder = screen.shown.pop(0)[1]  # on screen before the run starts
    assert placeholder.shape[:2] > (240, 320) and placeholder[:240].max() == 16
    shown = screen.frame_times()
    assert shown[-1] == pytest.approx(2.0, abs=0.1)  # played in (fake) real time until q
    assert stats.interrupted and stats.paced
    assert "held to the window's playback" in stats.summary()
    lines = read_jsonl(jsonl)  # complete: every analysed frame, ahead of the picture
    assert len(lines) == stats.frames_analysed >= len(shown)


def test_run_with_window_raises_the_pipelines_error(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    screen = FakeScreen(monkeypatch)
    window = WindowSink("x", clock=screen.clock)

    def fails(stop: threading.Event) -> None:
        raise RuntimeError("decoder broke")

    with pytest.raises(RuntimeError, match="decoder broke"):
        run_with_window(fails, window, threading.Event())


def test_parse_speed_and_titles() -> None:
    assert parse_speed("max") is None and parse_speed("MAX") is None
    assert parse_speed("0.5") == 0.5 and parse_speed("4") == 4.0
    for bad in ("0", "-1", "nan", "inf", "fast", ""):
        with pytest.raises(UsageError, match="--speed"):
            parse_speed(bad)
    assert window_title("videos/kitchen pass.mp4") == "scenecls: kitchen pass.mp4"
    assert window_title("0") == "scenecls: webcam 0"
    title = window_title("rtsp://admin:secret@10.0.0.5:554/stream1")
    assert title == "scenecls: rtsp://10.0.0.5:554/stream1" and "secret" not in title
    assert window_title("frames/") == "scenecls: frames"


def test_snapshot_names(tmp_path: Path) -> None:
    assert snapshot_path(tmp_path, "/v/My Clip.mp4", 12.345, False).name == "My-Clip-12.35s.png"
    live = snapshot_path(tmp_path, "rtsp://cam/live", 3.0, True).name
    assert live.startswith("live-") and live.endswith(".png")
    assert snapshot_path(tmp_path, "0", 3.0, True).name.startswith("webcam0-2")


@pytest.mark.parametrize("width", [48, 320, 1920])
def test_the_hint_bar_fits_any_width(width: int) -> None:
    image = np.full((90, width, 3), 77, np.uint8)
    shown = with_hint_bar(image, "1x")
    assert shown.shape[1] == width and shown.shape[0] > 90
    assert np.array_equal(shown[:90], image)  # the picture itself is untouched
    assert shown[90:].max() > 150  # the status, at least, is written
