"""Recordings that rotate (serve --record, run --out --segment-minutes): files of a few
minutes, each complete and playable when the next starts, in real time, the old ones
deleted; WebM (VP8, which browsers play) for the service, with each file's times."""

from __future__ import annotations

import os
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import synthetic_shapes  # scripts/ is on the path (conftest)

import scenecls
from scenecls.cli import main
from scenecls.errors import UsageError
from scenecls.video.pipeline import Pipeline
from scenecls.video.sinks import RecordingSink
from scenecls.video.sources import SimulatedLiveSource

from .conftest import MEDIA
from .outputs import one_line_error
from .serving import ServeProcess, wait_for

MODEL = Path(__file__).parent / "fixtures" / "shapes-clip"
LABELS = ",".join(synthetic_shapes.CLASSES)


def frames_of(path: Path) -> tuple[int, float]:
    """(frames that decode, the file's frame rate)."""
    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.isOpened() and cap.grab():
        n += 1
    fps = cap.get(cv2.CAP_PROP_FPS)
    cap.release()
    return n, fps


def test_a_live_source_is_recorded_in_files_that_keep_real_time(tmp_path: Path) -> None:
    model = scenecls.load_model(MODEL)
    images = [
        synthetic_shapes.make_image("red circle", np.random.default_rng(i), size=(240, 320))
        for i in range(3)
    ]
    source = SimulatedLiveSource(images, fps=20, duration=7.0)
    recorder = RecordingSink(tmp_path, "cam", segment=2.0)
    stats = Pipeline(model, LABELS, source, [recorder]).run()
    assert stats.frames_analysed > 100
    files = sorted(tmp_path.glob("cam-*.mp4"))
    assert files == recorder.files and len(files) == 4  # 2 + 2 + 2 + 1 s
    counts = [frames_of(f) for f in files]
    assert all(fps == pytest.approx(20) for _, fps in counts)
    assert [n for n, _ in counts[:3]] == [40, 40, 40]  # 2 s at 20 fps each, every one
    assert sum(n for n, _ in counts) == pytest.approx(7 * 20, abs=6)  # the last frame ends it
    assert not [p for p in tmp_path.iterdir() if "partial" in p.name or "probe" in p.name]


def test_a_frame_dropped_before_a_file_ends_does_not_shorten_the_file(tmp_path: Path) -> None:
    from scenecls.types import Frame
    from scenecls.video.sinks import RunInfo

    recorder = RecordingSink(tmp_path, "cam", segment=2.0)
    recorder.start(RunInfo("cam", ("a",), (64, 48), 20.0, True))
    times = [i / 20 for i in range(80) if i not in (38, 39)]  # the last 0.1 s before 2 s lost
    for i, t in enumerate(times):
        image = np.full((48, 64, 3), i % 250, np.uint8)
        recorder.on_frame(Frame(image, i, t), None, True, image)
    recorder.finish([])
    assert [frames_of(f)[0] for f in recorder.files] == [40, 40]  # 2 s each, real time


def test_webm_files_know_their_wall_times_across_a_gap(tmp_path: Path) -> None:
    from scenecls.types import Frame
    from scenecls.video.sinks import RunInfo

    base = 1_800_000_000.0
    recorder = RecordingSink(tmp_path, "cam", segment=10.0, format="webm", wall_base=base)
    recorder.start(RunInfo("cam", ("a",), (64, 48), 10.0, True))
    # 0..1.5 s, the input lost until 5 s, then 5..5.9 s: one file of 2.5 s of video
    times = [i / 10 for i in range(15)] + [5 + i / 10 for i in range(10)]
    for i, t in enumerate(times):
        image = np.full((48, 64, 3), (i * 9) % 250, np.uint8)
        recorder.on_frame(Frame(image, i, t), None, True, image)
        if i == 3:
            name, span = recorder.current()  # type: ignore[misc]
            assert name == "cam-20270115-080000.webm" and span.start == base
            assert span.end == base + 10.0  # when it will close
    recorder.finish([])
    assert recorder.current() is None
    (path,) = recorder.files
    assert path.name == "cam-20270115-080000.webm"
    assert path.read_bytes()[:4] == b"\x1a\x45\xdf\xa3"  # WebM (EBML)
    assert frames_of(path) == (25, pytest.approx(10))
    span = recorder.spans[path.name]
    assert span.anchors == ((0.0, base), (1.5, base + 5.0))
    assert span.start == base and span.end == pytest.approx(base + 6.0)
    assert span.duration == pytest.approx(2.5)
    assert span.offset(base + 1.0) == pytest.approx(1.0)
    assert span.offset(base + 5.5) == pytest.approx(2.0)  # after the gap
    assert span.offset(base + 99) == pytest.approx(2.5)  # clamped to the file
    assert span.covers(base + 1.0) and span.covers(base + 5.5)
    assert not span.covers(base + 3.0)  # in the gap: not in the file
    assert not span.covers(base - 1) and span.covers(base - 0.4, slack=0.5)


def test_recordings_older_than_the_kept_hours_are_deleted(tmp_path: Path) -> None:
    now = time.time()
    clock = [now]
    old = tmp_path / "cam-20200101-000000.mp4"
    old_webm = tmp_path / "cam-20200101-000001.webm"
    other = tmp_path / "other-20200101-000000.mp4"  # another camera's: not ours to delete
    for p in (old, old_webm, other):
        p.write_bytes(b"old")
    recorder = RecordingSink(tmp_path, "cam", segment=1.0, keep=3600, clock=lambda: clock[0])
    model = scenecls.load_model(MODEL)
    image = synthetic_shapes.make_image("blue ring", np.random.default_rng(0), size=(120, 160))
    Pipeline(model, LABELS, SimulatedLiveSource([image], fps=10, duration=2.5), [recorder]).run()
    assert not old.exists() and other.exists() and old in recorder.deleted
    assert not old_webm.exists()
    assert len(recorder.files) == 3 and all(p.exists() for p in recorder.files)


def test_run_cuts_out_into_segments(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    video = MEDIA / "car-detection.mp4"  # 30.2 s at 12.5 fps
    out = tmp_path / "car.mp4"
    code = main(["run", str(video), "--model", str(MODEL), "--labels", LABELS,
                 "--out", str(out), "--segment-minutes", "0.2", "--no-progress", "-q"])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    files = sorted(tmp_path.glob("car-*.mp4"))
    assert len(files) == 3 and not out.exists()  # 12 + 12 + 6.2 s
    counts = [frames_of(f)[0] for f in files]
    assert counts[:2] == [150, 150] and sum(counts) == pytest.approx(377, abs=2)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--keep-hours", "5"], "--keep-hours needs --segment-minutes"),
        (["--segment-minutes", "1"], "--segment-minutes needs --out"),
        (["--out", "TMP/x.avi", "--segment-minutes", "1"], "name an .mp4"),
        (["--out", "TMP/x.mp4", "--segment-minutes", "0"], "must be more than 0"),
    ],
)
def test_bad_recording_options_are_one_line(tmp_path: Path, capsys, argv, message) -> None:  # type: ignore[no-untyped-def]
    argv = [a.replace("TMP", str(tmp_path)) for a in argv]
    code = main(["run", str(MEDIA / "car-detection.mp4"), "--model", str(MODEL), *argv])
    assert code == 2 and message in one_line_error(capsys.readouterr().err)
    assert not list(tmp_path.iterdir())


def test_serve_records_every_camera_and_rotates(tmp_path: Path) -> None:
    video = tmp_path / "pass.mp4"
    synthetic_shapes.make_video(video, [("red circle", 0, 2), ("blue ring", 2, 4)], fps=10)
    record = tmp_path / "rec"
    record.mkdir()
    server = ServeProcess(
        [str(video), "--name", "pass", "--model", str(MODEL), "--labels", LABELS, "--loop",
         "--record", str(record), "--segment-minutes", "0.05", "--keep-hours", "0.003"],
        home=tmp_path / "home",
    )  # fmt: skip
    try:
        # 3 s files (WebM, which the page plays); those older than 10.8 s are deleted
        wait_for(lambda: len(list(record.glob("pass-*.webm"))) >= 3, timeout=30)
        time.sleep(12)
        files = sorted(record.glob("pass-*.webm"))
        assert 3 <= len(files) <= 5  # rotating, and the oldest ones gone
    finally:
        assert server.stop() == 0
    files = sorted(record.glob("pass-*.webm"))
    assert not list(record.glob("*.mp4"))
    played = [frames_of(f)[0] for f in files]
    assert all(n > 0 for n in played), played  # the last one too: finished on the way out
    assert all(n == pytest.approx(30, abs=2) for n in played[:-1]), played  # 3 s at 10 fps
    assert not [p for p in record.iterdir() if p.name.startswith(".")]
    assert os.path.getsize(files[0]) > 1000


def test_serve_records_mp4_when_asked(tmp_path: Path) -> None:
    import argparse

    from scenecls.cli.serve import add_serve_parser

    parser = argparse.ArgumentParser()
    add_serve_parser(parser.add_subparsers(), argparse.ArgumentParser(add_help=False))
    args = parser.parse_args(["serve", "x.mp4", "--record-format", "mp4"])
    assert args.record_format == "mp4" and args.flush_seconds == 10.0
    assert parser.parse_args(["serve", "x.mp4"]).record_format == "webm"
    with pytest.raises(SystemExit):
        parser.parse_args(["serve", "x.mp4", "--record-format", "avi"])
    with pytest.raises(UsageError, match="--record-format must be one of mp4, webm"):
        RecordingSink(tmp_path, "cam", format="avi")
