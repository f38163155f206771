"""One contract for every source, plus the reader's threading rules."""

from __future__ import annotations

import threading
import time
from itertools import pairwise
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from scenecls.errors import InputError, UsageError
from scenecls.types import Frame
from scenecls.video.sources import (
    FrameReader,
    FrameSource,
    ImageFolderSource,
    LiveCaptureSource,
    SimulatedLiveSource,
    VideoFileSource,
    open_source,
)

from .conftest import MEDIA, VIDEOS


def container_times(path: Path) -> list[float]:
    """Presentation times (s, from the stream start) as PyAV reads them."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        start = float(s.start_time * s.time_base) if s.start_time is not None else 0.0
        return [float(f.pts * s.time_base) - start for f in c.decode(s)]


@pytest.fixture
def image_folder(tmp_path: Path, real_frames) -> Path:  # type: ignore[no-untyped-def]
    for i, f in enumerate(real_frames[:4]):
        cv2.imwrite(str(tmp_path / f"img{i:02d}.png"), f)
    (tmp_path / "img02b.jpg").write_text("not an image")  # unreadable: skipped
    (tmp_path / "notes.txt").write_text("ignored")
    return tmp_path


def _all_frames(source: FrameSource) -> list[Frame]:
    with FrameReader(source, queue_size=4) as reader:
        frames = []
        while (f := reader.get(timeout=10)) is not None:
            frames.append(f)
    return frames


def _sources(folder: Path, frames: list[np.ndarray]) -> list[FrameSource]:
    return [
        *(VideoFileSource(v) for v in VIDEOS),
        ImageFolderSource(folder, image_fps=4),
        SimulatedLiveSource(frames[:2], fps=50, duration=0.3),
    ]


def test_contract_every_source(image_folder: Path, real_frames) -> None:  # type: ignore[no-untyped-def]
    for source in _sources(image_folder, real_frames):
        frames = _all_frames(source)
        assert frames, source.name
        for f in frames:
            assert (
                f.image_bgr.dtype == np.uint8
                and f.image_bgr.ndim == 3
                and f.image_bgr.shape[2] == 3
            )
        idx = [f.index for f in frames]
        times = [f.timestamp for f in frames]
        assert idx == sorted(set(idx)), source.name
        assert times == sorted(times), source.name
        assert source.size == (frames[0].image_bgr.shape[1], frames[0].image_bgr.shape[0])


@pytest.mark.parametrize("video", VIDEOS, ids=lambda p: p.name)
def test_file_timestamps_are_presentation_times(video: Path) -> None:
    frames = _all_frames(VideoFileSource(video))
    truth = container_times(video)
    assert len(frames) == len(truth)
    assert np.abs(np.array([f.timestamp for f in frames]) - np.array(truth)).max() < 0.001


def test_gif_keeps_variable_frame_durations() -> None:
    gif = next(v for v in VIDEOS if v.suffix == ".gif")
    times = [f.timestamp for f in _all_frames(VideoFileSource(gif))]
    gaps = set(np.round(np.diff(times), 3))
    assert len(gaps) > 1  # 0.06 and 0.07 s alternate: not index / fps


def test_image_folder_sorted_timed_and_skips_unreadable(image_folder: Path) -> None:
    src = ImageFolderSource(image_folder, image_fps=4)
    frames = _all_frames(src)
    assert len(frames) == 4 and src.skipped == 1
    assert [f.timestamp for f in frames] == [0.0, 0.25, 0.5, 0.75]


@pytest.mark.parametrize(
    "spec, kind",
    [
        ("0", LiveCaptureSource),
        ("rtsp://127.0.0.1:1/x", LiveCaptureSource),
        ("http://127.0.0.1:1/v.mjpg", LiveCaptureSource),
        (str(VIDEOS[0]), VideoFileSource),
    ],
)
def test_open_source_dispatch(spec: str, kind: type, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import scenecls.video.sources.opencv as opencv

    monkeypatch.setattr(opencv.glob, "glob", lambda pattern: ["/dev/video0"])  # a camera
    assert isinstance(open_source(spec), kind)


def test_open_source_folder_and_bad_scheme(image_folder: Path) -> None:
    assert isinstance(open_source(str(image_folder)), ImageFolderSource)
    with pytest.raises(UsageError, match="unsupported URL scheme ftp://"):
        open_source("ftp://example/x.mp4")
    with pytest.raises(UsageError, match="does not exist"):
        open_source("no-such-clip.mp4")


@pytest.mark.parametrize("content", [None, b"", b"hello, not a video"])
def test_bad_video_files(tmp_path: Path, content: bytes | None) -> None:
    path = tmp_path / "x.mp4"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(InputError, match=r"does not exist|empty|cannot open"):
        VideoFileSource(path).open()


class _Exploding(FrameSource):
    def __init__(self) -> None:
        super().__init__("exploding")
        self.n = 0

    def open(self) -> None:
        pass

    def read(self) -> Frame | None:
        self.n += 1
        if self.n > 3:
            raise RuntimeError("decoder blew up")
        return Frame(np.zeros((4, 4, 3), np.uint8), self.n - 1, self.n / 10)


def test_decoder_error_is_raised_in_the_consumer() -> None:
    reader = FrameReader(_Exploding()).start()
    got = []
    with pytest.raises(RuntimeError, match="decoder blew up"):
        while (f := reader.get(timeout=5)) is not None:
            got.append(f)
    reader.close()
    assert len(got) == 3
    assert not reader._thread.is_alive()


def test_thread_does_not_outlive_an_early_close() -> None:
    video = next(v for v in VIDEOS if v.suffix == ".mp4")
    reader = FrameReader(VideoFileSource(video), queue_size=2).start()
    reader.get(timeout=5)
    time.sleep(0.2)  # the decoder is now blocked on the full queue
    reader.close(timeout=2)
    assert not reader._thread.is_alive()
    assert "scenecls-decode" not in [t.name for t in threading.enumerate()]


def test_live_reader_keeps_only_the_newest_frame(real_frames) -> None:  # type: ignore[no-untyped-def]
    src = SimulatedLiveSource(real_frames[:1], fps=100, duration=1.0)
    with FrameReader(src) as reader:
        got = []
        while (f := reader.get(timeout=5)) is not None:
            got.append(f)
            time.sleep(0.05)  # a slow consumer: 5 frames arrive per read
    assert reader.dropped > 50
    assert len(got) + reader.dropped == reader.frames_read
    assert all(b.index > a.index for a, b in pairwise(got))


def test_a_reopened_file_starts_again_at_frame_zero_and_time_zero() -> None:
    """``serve --loop`` reopens a file when it ends: the second pass must have the first
    pass's indices and timestamps, or its pacing waits a whole pass too long."""
    source = VideoFileSource(MEDIA / "classroom.gif")
    for _ in range(2):
        source.open()
        frames = []
        while (frame := source.read()) is not None:
            frames.append(frame)
        source.close()
        assert frames[0].index == 0 and frames[0].timestamp == 0.0
        assert len(frames) == 45 and frames[-1].timestamp < 3.0
