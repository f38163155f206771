"""The pipeline end to end on every sample video (tiny random model)."""

from __future__ import annotations

import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from scenecls.types import Prediction
from scenecls.video.pipeline import Pipeline, PipelineConfig
from scenecls.video.sinks import CaptionSink, JsonlSink, SegmentsSink, Sink, VideoSink
from scenecls.video.smoothing import Smoother, SmoothingConfig
from scenecls.video.sources import ImageFolderSource, VideoFileSource

from .conftest import VIDEOS
from .outputs import check_segments, parse_captions, read_jsonl, read_segments
from .test_sources import container_times

LABELS = "room,park,warehouse,street"


@pytest.mark.parametrize("video", VIDEOS, ids=lambda p: p.name)
def test_all_outputs_on_every_sample_video(video: Path, tiny_model, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = {k: tmp_path / f"o.{k}" for k in ("mp4", "jsonl", "json", "csv", "srt", "vtt")}
    sinks = [
        VideoSink(out["mp4"]),
        JsonlSink(out["jsonl"]),
        SegmentsSink(out["json"]),
        SegmentsSink(out["csv"]),
        CaptionSink(out["srt"], "srt"),
        CaptionSink(out["vtt"], "vtt"),
    ]
    stats = Pipeline(
        tiny_model, LABELS, VideoFileSource(video), sinks, config=PipelineConfig(batch_size=8)
    ).run()
    truth = container_times(video)

    src, dst = cv2.VideoCapture(str(video)), cv2.VideoCapture(str(out["mp4"]))
    n_out = 0
    while dst.read()[0]:
        n_out += 1
    assert n_out == len(truth) == stats.frames_read
    for prop in (cv2.CAP_PROP_FRAME_WIDTH, cv2.CAP_PROP_FRAME_HEIGHT):
        assert dst.get(prop) == src.get(prop)
    assert dst.get(cv2.CAP_PROP_FPS) == pytest.approx(src.get(cv2.CAP_PROP_FPS), rel=1e-3)

    lines = read_jsonl(out["jsonl"])
    assert [r["frame"] for r in lines] == list(range(len(truth)))
    assert np.abs(np.array([r["time"] for r in lines]) - np.array(truth)).max() < 0.001
    rec = lines[0]
    assert set(rec) == {"frame", "time", "label", "confidence", "raw_label", "encoded", "scores"}
    assert list(rec["scores"]) == LABELS.split(",")
    assert sum(rec["scores"].values()) == pytest.approx(1.0, abs=1e-4)

    end = truth[-1] + float(np.median(np.diff(truth)))
    segs = read_segments(out["json"])
    check_segments(segs, first_time=truth[0], end_time=end)
    assert read_segments(out["csv"]) == segs
    assert [s["label"] for s in segs] == [
        lb
        for i, lb in enumerate(r["label"] for r in lines)
        if i == 0 or lb != lines[i - 1]["label"]
    ]
    for fmt in ("srt", "vtt"):
        cues = parse_captions(out[fmt])
        assert [c[2].split(" (")[0] for c in cues] == [
            s["label"] for s in segs if s["end"] > s["start"]
        ]


def test_analysis_fps_samples_by_time_but_writes_every_frame(tiny_model, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    video = next(v for v in VIDEOS if v.name == "car-detection.mp4")  # 12.5 fps, 30 s
    jsonl, mp4 = tmp_path / "a.jsonl", tmp_path / "a.mp4"
    stats = Pipeline(
        tiny_model,
        LABELS,
        VideoFileSource(video),
        [JsonlSink(jsonl), VideoSink(mp4)],
        config=PipelineConfig(analysis_fps=2.0),
    ).run()
    times = [r["time"] for r in read_jsonl(jsonl)]
    assert stats.frames_analysed == len(times)
    assert 58 <= len(times) <= 62
    # on a 0.5 s grid by timestamp: the first frame at or after each grid point
    for k, t in enumerate(times):
        assert k * 0.5 - 1e-6 <= t < k * 0.5 + 0.08 - 1e-6
    assert stats.frames_read == 377
    assert int(cv2.VideoCapture(str(mp4)).get(cv2.CAP_PROP_FRAME_COUNT)) == 377


def test_without_a_video_output_skipped_frames_are_never_converted(
    tiny_model, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """With --fps and no sink that needs every frame, the frames in between are passed
    over by the decoder: the same analysed frames (indices, times, labels) as with a
    video output, every frame still counted, and fewer images made."""
    video = next(v for v in VIDEOS if v.name == "car-detection.mp4")
    runs = {}
    for with_video in (True, False):
        jsonl = tmp_path / f"{with_video}.jsonl"
        sinks = [JsonlSink(jsonl)] + ([VideoSink(tmp_path / "a.mp4")] if with_video else [])
        source = VideoFileSource(video)
        stats = Pipeline(
            tiny_model, LABELS, source, sinks, config=PipelineConfig(analysis_fps=2.0)
        ).run()
        runs[with_video] = (read_jsonl(jsonl), stats, source)
    (every, every_stats, every_source), (thin, thin_stats, thin_source) = runs[True], runs[False]
    assert [(r["frame"], r["time"], r["label"]) for r in thin] == [
        (r["frame"], r["time"], r["label"]) for r in every
    ]
    assert every_source.passed_over == 0 and every_stats.frames_read == 377
    assert thin_source.passed_over == 377 - len(thin) and thin_stats.frames_read == 377


class _Recorder(Sink):
    """A user-written sink: records what it is given."""

    def __init__(self) -> None:
        self.frames: list[tuple[int, str | None, bool]] = []
        self.finished = None

    def on_frame(self, frame, prediction, analysed, annotated_bgr=None):  # type: ignore[no-untyped-def]
        self.frames.append((frame.index, prediction.label if prediction else None, analysed))

    def finish(self, segments):  # type: ignore[no-untyped-def]
        self.finished = list(segments)


class _AlwaysPark(Smoother):
    """A user-written smoother that overrides every label."""

    def update(self, scores, time):  # type: ignore[no-untyped-def]
        p = super().update(scores, time)
        return Prediction(p.time, "park", 1.0, p.raw, p.probabilities)


def test_custom_sink_and_smoother(tiny_model, image_folder_frames: Path) -> None:  # type: ignore[no-untyped-def]
    rec = _Recorder()
    stats = Pipeline(
        tiny_model,
        ["room", "park"],
        ImageFolderSource(image_folder_frames, 2.0),
        [rec],
        smoother=_AlwaysPark(),
    ).run()
    assert [f[0] for f in rec.frames] == list(range(5))
    assert all(label == "park" and analysed for _, label, analysed in rec.frames)
    assert [(s.label, s.start, s.end) for s in rec.finished] == [("park", 0.0, 2.5)]
    assert stats.segments == rec.finished


@pytest.fixture
def image_folder_frames(tmp_path: Path, real_frames) -> Path:  # type: ignore[no-untyped-def]
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i, f in enumerate(real_frames[:5]):
        cv2.imwrite(str(folder / f"{i:03d}.jpg"), f)
    return folder


class _Failing(Sink):
    def on_frame(self, frame, prediction, analysed, annotated_bgr=None):  # type: ignore[no-untyped-def]
        if frame.index == 30:
            raise OSError(28, "No space left on device")


def test_failing_output_stops_cleanly_and_others_stay_valid(tiny_model, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    video = next(v for v in VIDEOS if v.suffix == ".mp4")
    seg, jsonl = tmp_path / "s.json", tmp_path / "f.jsonl"
    with pytest.raises(OSError, match="No space"):
        Pipeline(
            tiny_model,
            LABELS,
            VideoFileSource(video),
            [JsonlSink(jsonl), SegmentsSink(seg), _Failing()],
        ).run()
    lines = read_jsonl(jsonl)
    assert 30 <= len(lines) <= 31
    check_segments(read_segments(seg), first_time=0.0)
    assert "scenecls-decode" not in [t.name for t in threading.enumerate()]


def test_stop_event_ends_the_run_with_valid_outputs(tiny_model, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    video = next(v for v in VIDEOS if v.name.startswith("one-by-one"))
    stop = threading.Event()

    class StopAt(Sink):
        def on_frame(self, frame, prediction, analysed, annotated_bgr=None):  # type: ignore[no-untyped-def]
            if frame.index == 100:
                stop.set()

    seg = tmp_path / "s.csv"
    stats = Pipeline(
        tiny_model,
        LABELS,
        VideoFileSource(video),
        [StopAt(), SegmentsSink(seg)],
        config=PipelineConfig(batch_size=4),
        smoother=Smoother(SmoothingConfig()),
    ).run(stop)
    assert stats.interrupted and 100 <= stats.frames_analysed < 200
    segs = read_segments(seg)
    check_segments(segs, first_time=0.0, end_time=stats.end_time)
    assert stats.end_time == pytest.approx(stats.frames_analysed * 0.1, abs=1e-6)


def test_bounded_samples_stay_small_and_ordered() -> None:
    from scenecls.video.pipeline import BoundedSamples

    samples = BoundedSamples(cap=1000)
    for i in range(1_000_000):  # about 9 hours of a 30 fps camera
        samples.append(float(i))
    assert len(samples) < 1000
    assert samples == sorted(samples)  # order kept: early and late parts comparable
    assert samples[0] < 5_000 and samples[-1] > 995_000  # spans the whole run
    gaps = np.diff(samples)
    assert gaps.max() == gaps.min()  # evenly thinned, so percentiles stay fair
