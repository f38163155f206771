"""Stored embeddings end to end, with the trained fixture model on synthetic videos of
its classes: ``run --embeddings`` (a store folder), ``annotate`` with the embeddings
output, ``relabel`` (equal to ``run``), text and image ``search``, the HTML page, ``.npz``
files of earlier versions, and refusals."""

from __future__ import annotations

import json
import shutil
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from scenecls.cli import main
from scenecls.model.embeddings_store import EmbeddingsFile, open_embeddings, write_embeddings
from scenecls.model.labels import resolve_labels
from scenecls.types import Frame
from scenecls.video.pipeline import Pipeline
from scenecls.video.sinks import EmbeddingsSink, JsonlSink, SegmentsSink, Sink
from scenecls.video.sources import VideoFileSource
from scenecls.video.sources.base import FrameSource

from .outputs import one_line_error, read_jsonl

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests" / "fixtures" / "shapes-clip"
sys.path.insert(0, str(REPO / "scripts"))
import synthetic_shapes  # noqa: E402

LABELS = ",".join(synthetic_shapes.CLASSES)
MODEL = ["--model", str(FIXTURE), "--labels", LABELS, "--templates", "{}"]
FIRST = [("red circle", 0, 3), ("blue ring", 3, 6), ("green circle", 6, 9), ("yellow ring", 9, 12)]
SECOND = [("green ring", 0, 4), ("yellow circle", 4, 8)]


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("stored-videos")
    out = {}
    for name, segments, seed in (("first.mp4", FIRST, 11), ("second.mp4", SECOND, 12)):
        out[name] = folder / name
        synthetic_shapes.make_video(out[name], segments, fps=10, size=(320, 240), seed=seed)
    return out


@pytest.fixture(scope="module")
def runs(videos: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``run`` on both videos: float32 and float16 embeddings, and every text output."""
    out = tmp_path_factory.mktemp("runs")
    for name, video in videos.items():
        for dtype in ("float32", "float16"):
            argv = ["run", str(video), *MODEL, "--no-progress", "-q", "--min-dwell", "0.3",
                    "--embeddings", str(out / f"{name}.{dtype}.embeddings"),
                    "--embeddings-dtype", dtype]  # fmt: skip
            if dtype == "float32":
                argv += ["--jsonl", str(out / f"{name}.jsonl"),
                         "--segments", str(out / f"{name}.segments.json"),
                         "--srt", str(out / f"{name}.srt"),
                         "--vtt", str(out / f"{name}.vtt")]  # fmt: skip
            assert main(argv) == 0
    return out


def segments_of(path: Path) -> list[tuple[str, float, float]]:
    return [(s["label"], s["start"], s["end"]) for s in json.loads(path.read_text())["segments"]]


def test_relabel_of_float32_embeddings_equals_the_run(runs: Path, tmp_path: Path) -> None:
    out = tmp_path / "relabelled"
    paths = [str(runs / f"{n}.float32.embeddings") for n in ("first.mp4", "second.mp4")]
    argv = ["relabel", *paths, "--out", str(out), "--outputs", "all", "--min-dwell", "0.3",
            "--labels", LABELS, "--templates", "{}"]  # fmt: skip
    assert main(argv) == 0
    for name in ("first.mp4", "second.mp4"):
        for kind in ("jsonl", "segments.json", "srt", "vtt"):
            assert (out / f"{name}.{kind}").read_bytes() == (runs / f"{name}.{kind}").read_bytes()
        csv_rows = (out / f"{name}.segments.csv").read_text().splitlines()
        assert len(csv_rows) == 1 + len(segments_of(out / f"{name}.segments.json"))
    # the fixture model does find the classes: the segments follow the video
    found = [label for label, _, _ in segments_of(out / "first.mp4.segments.json")]
    assert found == [label for label, _, _ in FIRST]
    entries = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert {e["file"] for e in entries} == {"first.mp4", "second.mp4"}
    assert not (out / ".scenecls-partial").exists()


def test_relabel_of_float16_embeddings_gives_the_same_labels(runs: Path, tmp_path: Path) -> None:
    out = tmp_path / "r16"
    argv = ["relabel", str(runs / "first.mp4.float16.embeddings"), "--out", str(out),
            "--min-dwell", "0.3", "--labels", LABELS, "--templates", "{}"]  # fmt: skip
    assert main(argv) == 0
    assert segments_of(out / "first.mp4.segments.json") == segments_of(
        runs / "first.mp4.segments.json"
    )
    mine, theirs = read_jsonl(out / "first.mp4.jsonl"), read_jsonl(runs / "first.mp4.jsonl")
    assert [r["label"] for r in mine] == [r["label"] for r in theirs]
    assert [r["encoded"] for r in mine] == [r["encoded"] for r in theirs]
    worst = max(
        abs(a - b) for x, y in zip(mine, theirs, strict=True)
        for a, b in zip(x["scores"].values(), y["scores"].values(), strict=True)
    )  # fmt: skip
    assert worst < 2e-3


def test_relabel_with_new_labels_and_options(runs: Path, tmp_path: Path) -> None:
    out = tmp_path / "new"
    argv = ["relabel", str(runs / "first.mp4.float16.embeddings"), "--out", str(out), "--outputs",
            "jsonl,segments", "--labels", "red circle,blue ring", "--templates", "{}",
            "--min-confidence", "0.9", "--smoothing", "none"]  # fmt: skip
    assert main(argv) == 0
    rows = read_jsonl(out / "first.mp4.jsonl")
    assert set(rows[0]["scores"]) == {"red circle", "blue ring"}
    labels = {r["label"] for r in rows}
    assert "unknown" in labels and "red circle" in labels  # green/yellow frames: unknown
    assert not (out / "first.mp4.srt").exists()


def search_json(argv: list[str], capsys) -> list[dict]:  # type: ignore[no-untyped-def]
    capsys.readouterr()
    assert main(["search", *argv, "--json"]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


SCENES = [(s[0], "first.mp4", s[1], s[2]) for s in FIRST] + [
    (s[0], "second.mp4", s[1], s[2]) for s in SECOND
]


@pytest.mark.parametrize("label, video, start, end", SCENES)
def test_a_text_query_finds_its_class_first(runs: Path, capsys, label, video, start, end) -> None:  # type: ignore[no-untyped-def]
    files = [str(runs / f"{n}.float16.embeddings") for n in ("first.mp4", "second.mp4")]
    hits = search_json([*files, label, "--templates", "{}", "--top", "3"], capsys)
    best = hits[0]
    assert best["video"] == video and start - 0.2 <= best["best"] <= end
    assert best["start"] >= start - 0.5 and best["end"] <= end + 0.5  # one moment, that scene


def test_an_image_query_finds_its_video_and_time(
    runs: Path, videos, tmp_path: Path, capsys
) -> None:  # type: ignore[no-untyped-def]
    cap = cv2.VideoCapture(str(videos["second.mp4"]))
    cap.set(cv2.CAP_PROP_POS_FRAMES, 55)  # 5.5 s: the yellow circle
    ok, image = cap.read()
    cap.release()
    assert ok
    picture = tmp_path / "query.png"
    cv2.imwrite(str(picture), image)
    files = [str(runs / f"{n}.float16.embeddings") for n in ("first.mp4", "second.mp4")]
    hits = search_json([*files, "--image", str(picture)], capsys)
    assert hits[0]["video"] == "second.mp4" and 4.0 <= hits[0]["best"] <= 8.0
    assert hits[0]["start"] <= 5.5 <= hits[0]["end"]


def test_the_html_page_shows_thumbnails_and_links(
    runs: Path, videos, tmp_path: Path, capsys
) -> None:  # type: ignore[no-untyped-def]
    page = tmp_path / "hits.html"
    file = str(runs / "first.mp4.float16.embeddings")
    assert main(["search", file, "blue ring", "--templates", "{}", "--html", str(page)]) == 0
    text = page.read_text()
    assert text.count('<img src="data:image/jpeg;base64,') >= 1
    assert videos["first.mp4"].resolve().as_uri() + "#t=" in text
    # the video moved away: a placeholder, no link
    moved = videos["first.mp4"].with_suffix(".moved")
    shutil.move(videos["first.mp4"], moved)
    try:
        assert main(["search", file, "blue ring", "--templates", "{}", "--html", str(page)]) == 0
    finally:
        shutil.move(moved, videos["first.mp4"])
    text = page.read_text()
    assert "video not found" in text and "data:image/jpeg" not in text and "#t=" not in text
    assert "moments for 'blue ring'" in capsys.readouterr().err


def test_embeddings_of_another_model_are_refused(runs: Path, tiny_bundle: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    file = str(runs / "first.mp4.float16.embeddings")
    fingerprint = open_embeddings(file).fingerprint
    code = main(["search", file, "a red circle", "--model", str(tiny_bundle)])
    err = one_line_error(capsys.readouterr().err)
    assert code == 2 and fingerprint in err and "--model" in err and "fingerprint" in err
    code = main(["relabel", file, "--out", str(runs / "x"), "--model", str(tiny_bundle)])
    assert code == 2 and fingerprint in one_line_error(capsys.readouterr().err)


def write_v1(store: EmbeddingsFile, path: Path) -> Path:
    """``store`` written again as an ``.npz`` file of format version 1 (earlier scenecls)."""
    meta = {k: v for k, v in store.meta.items() if k != "complete"} | {"version": 1}
    meta.update(frames=len(store.frames), rows=store.rows)
    write_embeddings(path, meta, np.asarray(store.embeddings), store.rows,
                     store.embeddings.shape[1], str(store.embeddings.dtype), store.times,
                     store.spans, store.frames, store.gaps)  # fmt: skip
    return path


def test_npz_files_of_earlier_versions_are_still_read(runs: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    store = open_embeddings(runs / "first.mp4.float32.embeddings")
    assert store.meta["version"] == 2 and store.meta["complete"] and not store.notes
    assert store.path.is_dir() and (store.path / "meta.json").is_file()
    old = write_v1(store, tmp_path / "first.mp4.npz")
    again = open_embeddings(old)
    assert again.meta["version"] == 1 and np.array_equal(again.embeddings, store.embeddings)
    assert np.array_equal(again.frames, store.frames) and again.end == store.end
    query = ["blue ring", "--templates", "{}", "--top", "3"]
    assert search_json([str(old), *query], capsys) == search_json([str(store.path), *query], capsys)
    out = tmp_path / "relabelled"
    argv = ["relabel", str(old), "--out", str(out), "--min-dwell", "0.3",
            "--labels", LABELS, "--templates", "{}"]  # fmt: skip
    assert main(argv) == 0
    assert (out / "first.mp4.segments.json").read_bytes() == (
        runs / "first.mp4.segments.json"
    ).read_bytes()


def test_a_damaged_store_is_reported_and_the_rest_searched(
    runs: Path, tmp_path: Path, capsys
) -> None:  # type: ignore[no-untyped-def]
    broken = tmp_path / "broken.embeddings"
    shutil.copytree(runs / "second.mp4.float16.embeddings", broken)
    rows = broken / "embeddings.npy"
    rows.write_bytes(rows.read_bytes()[:5000])  # ends inside the flushed rows
    code = main(["search", str(runs / "first.mp4.float16.embeddings"), str(broken), "red circle",
                 "--templates", "{}"])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 1 and "first.mp4" in captured.out
    assert f"left out: {broken}" in captured.err and "truncated" in captured.err
    code = main(["relabel", str(broken), str(runs / "first.mp4.float16.embeddings"), "--out",
                 str(tmp_path / "r"), *MODEL[2:]])  # fmt: skip
    assert code == 1 and (tmp_path / "r" / "first.mp4.segments.json").is_file()
    assert f"left out    {broken}" in capsys.readouterr().err


def test_annotate_stores_embeddings_that_search_and_relabel_use(
    videos, tmp_path: Path, capsys
) -> None:  # type: ignore[no-untyped-def]
    archive = tmp_path / "archive"
    (archive / "cams").mkdir(parents=True)
    for name, video in videos.items():
        shutil.copy(video, archive / "cams" / name)
    out = tmp_path / "annotated"
    argv = ["annotate", str(archive), "--out", str(out), "--outputs", "segments,embeddings",
            "--workers", "1", "--no-progress", *MODEL]  # fmt: skip
    assert main(argv) == 0
    assert (out / "cams" / "first.mp4.embeddings" / "meta.json").is_file()
    hits = search_json([str(out), "yellow ring", "--templates", "{}"], capsys)
    assert hits[0]["video"] == "cams/first.mp4" and 9.0 <= hits[0]["best"] <= 12.0
    relabelled = tmp_path / "relabelled"
    assert main(["relabel", str(out), "--out", str(relabelled), *MODEL[2:]]) == 0
    for name in videos:
        mine = relabelled / "cams" / f"{name}.segments.json"
        assert segments_of(mine) == segments_of(out / "cams" / f"{name}.segments.json")
    capsys.readouterr()
    assert main(["find", str(relabelled), "green ring", "--json"]) == 0
    (hit,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert hit["file"] == "cams/second.mp4" and hit["start"] == 0.0
    code = main(["relabel", str(out), "--out", str(out), *MODEL[2:]])
    assert code == 2 and "choose another folder" in capsys.readouterr().err


def test_several_models_in_one_search_are_refused(
    runs: Path, tmp_path: Path, tiny_bundle: Path, videos, capsys
) -> None:  # type: ignore[no-untyped-def]
    other = tmp_path / "other.embeddings"
    assert main(["run", str(videos["second.mp4"]), "--model", str(tiny_bundle), "--embeddings",
                 str(other), "--no-progress", "-q"]) == 0  # fmt: skip
    code = main(["search", str(runs / "first.mp4.float16.embeddings"), str(other), "a ring"])
    err = one_line_error(capsys.readouterr().err)
    assert code == 2 and "2 different models" in err and str(other) in err


def test_stored_frames_rebuild_the_embeddings_the_run_used(videos, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import scenecls

    seen: list[np.ndarray] = []
    path = tmp_path / "e.embeddings"
    Pipeline(
        scenecls.load_model(FIXTURE), resolve_labels(LABELS, "{}"),
        VideoFileSource(videos["second.mp4"]), [EmbeddingsSink(path, "float32")],
        on_embeddings=lambda frames, embs, encoded: seen.append(embs),
    ).run()  # fmt: skip
    store = open_embeddings(path)
    run = np.concatenate(seen)
    assert np.array_equal(store.frame_embeddings(), run)  # every frame, to the bit
    assert np.array_equal(store.frame_embeddings(10, 20), run[10:20])
    assert store.rows < len(run)  # most frames were not encoded, yet all rebuild exactly


class _StopAfter(Sink):
    def __init__(self, frames: int, stop: threading.Event) -> None:
        self.frames, self.stop, self.seen = frames, stop, 0

    def on_frame(self, frame, prediction, analysed, annotated_bgr=None) -> None:  # type: ignore[no-untyped-def]
        self.seen += 1
        if self.seen == self.frames:
            self.stop.set()


def test_a_stopped_run_leaves_a_complete_embeddings_store(videos, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import scenecls

    model = scenecls.load_model(FIXTURE)
    stop = threading.Event()
    path = tmp_path / "stopped.embeddings"
    jsonl = tmp_path / "stopped.jsonl"
    sinks = [EmbeddingsSink(path), JsonlSink(jsonl), _StopAfter(35, stop)]
    stats = Pipeline(model, resolve_labels(LABELS, "{}"), VideoFileSource(videos["first.mp4"]),
                     sinks).run(stop)  # fmt: skip
    assert stats.interrupted
    store = open_embeddings(path)
    assert len(store.frames) == stats.frames_analysed == len(read_jsonl(jsonl))
    assert 0 < store.rows == stats.frames_encoded < len(store.frames) < 120
    assert store.end == pytest.approx(stats.end_time)
    assert store.meta["complete"] and not store.notes and not store.writing
    assert not [p for p in tmp_path.iterdir() if "partial" in p.name]

    class Boom(Sink):
        def on_frame(self, frame, prediction, analysed, annotated_bgr=None) -> None:  # type: ignore[no-untyped-def]
            if frame.index == 50:
                raise OSError("the disk went away")

    shutil.rmtree(path)
    with pytest.raises(OSError, match="went away"):
        Pipeline(model, resolve_labels(LABELS, "{}"), VideoFileSource(videos["first.mp4"]),
                 [EmbeddingsSink(path), Boom()]).run()  # fmt: skip
    # the frames analysed so far: the window holding frame 50 (8 s of this 10 fps video)
    store = open_embeddings(path)
    assert 40 <= len(store.frames) <= 80 and store.meta["complete"]


class _LiveWithGap(FrameSource):
    """A live source: frames 25 fps, 40 ms apart in real time, input lost for 2 s after
    frame 30."""

    live = True

    def __init__(self, images: list[np.ndarray]) -> None:
        super().__init__("live-with-gap")
        self.images, self.i = images, 0

    def open(self) -> None:
        self.size = (self.images[0].shape[1], self.images[0].shape[0])

    def read(self) -> Frame | None:
        if self.i >= len(self.images):
            return None
        time.sleep(0.04)
        gap = 2.0 if self.i == 30 else 0.0
        t = self.i * 0.04 + (2.0 if self.i >= 30 else 0.0)
        frame = Frame(self.images[self.i], self.i, t, time.monotonic(), gap)
        self.i += 1
        return frame


def test_relabel_of_a_live_run_with_a_gap_equals_the_run(videos, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import scenecls

    cap = cv2.VideoCapture(str(videos["first.mp4"]))
    images = [cap.read()[1] for _ in range(80)]
    cap.release()
    model = scenecls.load_model(FIXTURE)
    labels = resolve_labels(LABELS, "{}")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    sinks = [EmbeddingsSink(run_dir / "live.embeddings", "float32"),
             JsonlSink(run_dir / "live.jsonl"), SegmentsSink(run_dir / "live.json")]  # fmt: skip
    stats = Pipeline(model, labels, _LiveWithGap(images), sinks).run()
    assert len(stats.gaps) == 1 and stats.frames_encoded < stats.frames_analysed
    store = open_embeddings(run_dir / "live.embeddings")
    assert store.gaps.shape == (1, 2)
    out = tmp_path / "relabelled"
    assert main(["relabel", str(run_dir / "live.embeddings"), "--out", str(out), *MODEL[2:]]) == 0
    assert (out / "live.jsonl").read_bytes() == (run_dir / "live.jsonl").read_bytes()
    mine = json.loads((out / "live.segments.json").read_text())["segments"]
    assert mine == json.loads((run_dir / "live.json").read_text())["segments"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["search", "F"], "give one or more PATHs and then the QUERY"),
        (["search", "F", " "], "the query text is empty"),
        (["search", "F", "--image", "TMP/none.png"], "no such file"),
        (["search", "F", "F"], "is a path: give the QUERY text after the PATHs"),
        (["search", "F", "a red ring", "--image", "F"], "not both"),
        (["search", "TMP/nothing.npz", "x"], "no such"),
        (["search", "TMP/nothing.embeddings", "x"], "no such file or folder"),
        (["search", "F", "x", "--top", "0"], "--top must be at least 1"),
        (["relabel", "F", "--out", "TMP/o", "--outputs", "video"], "choose from"),
        (["run", "V", "--embeddings", "TMP/e.npz"], "give a name without .npz"),
        (["run", "V", "--embeddings", "TMP/no/e.embeddings"], "does not exist"),
        (["run", "V", "--embeddings", "V"], "is not an embeddings store"),
        (["run", "V", "--embeddings", "TMP/e.embeddings", "--flush-seconds", "0"], "more than 0"),
    ],
)
def test_bad_input_is_one_line(runs: Path, videos, tmp_path: Path, capsys, argv, message) -> None:  # type: ignore[no-untyped-def]
    subst = {"F": str(runs / "first.mp4.float16.embeddings"), "V": str(videos["first.mp4"])}
    argv = [subst.get(a, a.replace("TMP", str(tmp_path))) for a in argv]
    code = main(argv)
    err = one_line_error(capsys.readouterr().err)
    assert code in (1, 2) and message in err
    assert not (tmp_path / "o").exists() and not (tmp_path / "e.npz").exists()
    assert videos["first.mp4"].is_file()
