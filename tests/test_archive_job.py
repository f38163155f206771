"""One video of an archive (the function both engines run), and the driver's handling of
results, in this process: no workers."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import synthetic_shapes  # scripts/ is on the path (conftest)

import scenecls
from scenecls.archive.driver import ArchiveSummary, _dispatch
from scenecls.archive.job import FATAL, PARTIAL_DIR, VideoTask, annotate_video
from scenecls.archive.manifest import Manifest
from scenecls.archive.options import ArchiveOptions, ModelIdentity
from scenecls.errors import OutputError
from scenecls.interrupts import SignalGuard
from scenecls.model.labels import resolve_labels
from scenecls.video.sinks import SegmentsSink
from scenecls.video.smoothing import SmoothingConfig

MODEL = Path(__file__).resolve().parent / "fixtures" / "shapes-clip"


@pytest.fixture(scope="module")
def model() -> scenecls.SceneModel:
    return scenecls.load_model(MODEL, device="cpu", precision="fp32")


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("v") / "clip.mp4"
    synthetic_shapes.make_video(path, [("red ring", 0, 1.5)], fps=10, size=(160, 120))
    return path


def _setup(model: scenecls.SceneModel, video: Path, out: Path) -> tuple[Any, ...]:
    options = ArchiveOptions(
        out_dir=out,
        model=str(MODEL),
        labels=resolve_labels(",".join(synthetic_shapes.CLASSES)),
        smoothing=SmoothingConfig(),
        outputs=("jsonl", "segments", "srt"),
    )
    ident = ModelIdentity(
        model.bundle.model_id, model.bundle.fingerprint, model.precision, model.device, "ort"
    )
    task = VideoTask(0, str(video), "sub/clip.mp4", video.stat().st_size)
    return options, ident, task


def test_a_video_is_written_into_place_with_its_entry(model, video: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    options, ident, task = _setup(model, video, tmp_path)
    seen: list[float] = []
    entry = annotate_video(
        model, options, ident, task, threading.Event(), lambda i, f: seen.append(f)
    )
    assert entry["status"] == "done" and entry["error"] is None
    assert entry["outputs"] == {
        "jsonl": "sub/clip.mp4.jsonl",
        "segments": "sub/clip.mp4.segments.json",
        "srt": "sub/clip.mp4.srt",
    }
    assert all((tmp_path / p).is_file() for p in entry["outputs"].values())
    assert entry["frames"] == 15 and entry["duration"] == pytest.approx(1.5)
    assert entry["options_hash"] == options.options_hash(ident)
    assert seen and seen[-1] == 1.0
    assert list((tmp_path / PARTIAL_DIR).iterdir()) == []  # its temporary folder is gone


def test_a_stopped_video_leaves_nothing(model, video: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    options, ident, task = _setup(model, video, tmp_path)
    stop = threading.Event()
    stop.set()
    assert annotate_video(model, options, ident, task, stop)["status"] == "interrupted"
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == []


def test_an_output_failure_fails_the_video_and_is_marked_fatal(  # type: ignore[no-untyped-def]
    model, video: Path, tmp_path: Path, monkeypatch
) -> None:
    options, ident, task = _setup(model, video, tmp_path)

    def full_disk(self, segments) -> None:  # type: ignore[no-untyped-def]
        raise OutputError("writing segments failed: No space left on device")

    monkeypatch.setattr(SegmentsSink, "finish", full_disk)
    entry = annotate_video(model, options, ident, task, threading.Event())
    assert entry["status"] == "failed" and "No space left" in entry["error"]
    assert entry[FATAL] is True and entry["outputs"] == {}
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == []


class FakeEngine:
    """Yields prepared results; records whether it was asked to stop."""

    name = "fake"
    workers = 1

    def __init__(self, results: list[dict[str, Any]]) -> None:
        self.results = results
        self.stopped = False

    def start(self) -> list[dict[str, Any]]:
        return []

    def run(self, tasks: Sequence[VideoTask]) -> Iterator[dict[str, Any] | None]:
        for r in self.results:
            yield None
            yield r
            if self.stopped:
                return

    def fractions(self) -> dict[int, float]:
        return {}

    def stop(self) -> None:
        self.stopped = True

    def close(self) -> None:
        pass


def _result(name: str, status: str = "done", **extra: Any) -> dict[str, Any]:
    outputs = {"jsonl": f"{name}.jsonl"} if status == "done" else {}
    return {"input": f"/v/{name}", "file": name, "size": 1, "status": status,
            "error": None if status == "done" else "bad", "outputs": outputs,
            "duration": 2.0, "warnings": [], **extra}  # fmt: skip


def test_an_output_failure_stops_the_run(tmp_path: Path) -> None:
    tasks = [VideoTask(i, f"/v/{i}.mp4", f"{i}.mp4", 1) for i in range(3)]
    engine = FakeEngine([_result("a.mp4"), _result("b.mp4", "failed", _fatal=True), _result("c")])
    summary = ArchiveSummary(out_dir=tmp_path, engine="fake", found=3)
    with Manifest(tmp_path) as manifest:
        _dispatch(engine, tasks, manifest, summary, SignalGuard(), False, tmp_path)  # type: ignore[arg-type]
        assert engine.stopped
        assert list(manifest.entries) == ["/v/a.mp4", "/v/b.mp4"]
        assert FATAL not in manifest.entries["/v/b.mp4"]  # never written to the manifest
    assert (summary.done, summary.failed, summary.not_done) == (1, 1, 1)
    assert summary.exit_code == 1 and not summary.interrupted
    assert "stopped     the outputs cannot be written: bad" in summary.lines()


def test_a_signal_stops_the_hand_out(tmp_path: Path) -> None:
    tasks = [VideoTask(i, f"/v/{i}.mp4", f"{i}.mp4", 1) for i in range(3)]
    engine = FakeEngine([_result("a.mp4"), {"input": "/v/b.mp4", "status": "interrupted"}])
    guard = SignalGuard()
    guard.stop.set()
    summary = ArchiveSummary(out_dir=tmp_path, engine="fake", found=3)
    with Manifest(tmp_path) as manifest:
        _dispatch(engine, tasks, manifest, summary, guard, False, tmp_path)  # type: ignore[arg-type]
        assert list(manifest.entries) == ["/v/a.mp4"]  # the interrupted one is not recorded
    assert engine.stopped and summary.interrupted and summary.exit_code == 130
    assert summary.not_done == 2
