"""`scenecls annotate` and `scenecls find` on a small mixed archive, with both engines.

The archive: synthetic coloured-shape videos (mp4, avi, gif) in nested folders, a file
named .mp4 that is no video, a text file and a hidden folder. The model is the trained
fixture (tests/fixtures/shapes-clip) at fp32, so labels mean something and every run
computes the same numbers.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
import synthetic_shapes  # scripts/ is on the path (conftest)

from scenecls.archive.job import PARTIAL_DIR
from scenecls.cli import main
from scenecls.model.embeddings_store import open_embeddings

from .outputs import check_segments, one_line_error, parse_captions, read_jsonl, read_segments

REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / "tests" / "fixtures" / "shapes-clip"
LABELS = ",".join(synthetic_shapes.CLASSES)
# video -> (truth segments, length in seconds)
VIDEOS = {
    "cams/north/day1.mp4": [("red circle", 0, 2), ("blue ring", 2, 4)],
    "cams/south/day1.avi": [("green circle", 0, 3), ("yellow ring", 3, 5)],
    "phone/anim.gif": [("blue circle", 0, 2.5)],
}
BROKEN = "phone/broken.mp4"
LOCAL = ("--workers", "2", "--outputs", "all")


def _gif_from(mp4: Path, gif: Path) -> None:
    from PIL import Image

    cap = cv2.VideoCapture(str(mp4))
    frames = []
    while True:
        ok, image = cap.read()
        if not ok:
            break
        frames.append(Image.fromarray(cv2.cvtColor(image, cv2.COLOR_BGR2RGB)))
    cap.release()
    frames[0].save(gif, save_all=True, append_images=frames[1:], duration=100, loop=0)


def build_archive(root: Path) -> Path:
    for i, (rel, segments) in enumerate(VIDEOS.items()):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        target = path.with_suffix(".tmp.mp4") if path.suffix == ".gif" else path
        synthetic_shapes.make_video(target, segments, fps=10, size=(160, 120), seed=i + 1)
        if target != path:
            _gif_from(target, path)
            target.unlink()
    (root / BROKEN).write_text("this is not a video\n")
    (root / "phone" / "notes.txt").write_text("not a video either, and not named like one\n")
    hidden = root / ".trash" / "old.mp4"
    hidden.parent.mkdir()
    shutil.copy(root / "cams/north/day1.mp4", hidden)
    return root


def annotate_args(inputs: Path, out: Path, *extra: str) -> list[str]:
    return [
        "annotate",
        str(inputs),
        "--out",
        str(out),
        "--model",
        str(MODEL),
        "--labels",
        LABELS,
        "--precision",
        "fp32",
        "--no-progress",
        *extra,
    ]


def manifest_lines(out: Path) -> list[dict]:  # type: ignore[type-arg]
    return [json.loads(x) for x in (out / "manifest.jsonl").read_text().splitlines()]


def video_frames(path: Path) -> int:
    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n


def check_embeddings(path: Path, entry: dict) -> None:
    """A complete embeddings store (a folder) of the video of manifest ``entry``: a row
    per encoded frame, a record per analysed frame, spans that cover the video."""
    assert path.is_dir() and (path / "meta.json").is_file()
    store = open_embeddings(path)
    assert store.meta["version"] == 2 and store.meta["complete"] and not store.notes
    assert store.meta["input"] == entry["input"] and store.end == pytest.approx(entry["duration"])
    assert store.rows == entry["encoded"] and len(store.frames) == entry["analysed"]
    assert store.embeddings.dtype == np.float16
    assert store.spans[0, 0] == 0.0 and store.spans[:, 1].max() == pytest.approx(store.end)


def assert_complete(
    out: Path,
    kinds: tuple[str, ...] = ("jsonl", "segments", "csv", "srt", "vtt", "video", "embeddings"),
) -> None:
    """Every good video done once with valid outputs, the broken one failed, and nothing
    half-written anywhere."""
    lines = manifest_lines(out)
    assert sorted(e["file"] for e in lines) == sorted([*VIDEOS, BROKEN])  # no duplicates
    for e in lines:
        if e["file"] == BROKEN:
            assert e["status"] == "failed" and "as a video" in e["error"] and e["outputs"] == {}
            continue
        assert e["status"] == "done", e
        assert sorted(e["outputs"]) == sorted(kinds)
        length = VIDEOS[e["file"]][-1][2]
        assert e["duration"] == pytest.approx(length, abs=0.01)
        assert e["frames"] == e["analysed"] == round(10 * length)
        o = {k: out / v for k, v in e["outputs"].items()}
        assert o["jsonl"] == out / (e["file"] + ".jsonl")  # mirrored, named after the video
        frames = read_jsonl(o["jsonl"])
        assert len(frames) == e["frames"]
        assert 0 < e["encoded"] == sum(f["encoded"] for f in frames) <= e["analysed"]
        segments = read_segments(o["segments"])
        check_segments(segments, first_time=0.0, end_time=length)
        if "csv" in o:
            assert read_segments(o["csv"]) == segments
        for kind in ("srt", "vtt"):
            if kind in o:
                assert len(parse_captions(o[kind])) == len(segments)
        if "video" in o:
            assert video_frames(o["video"]) == e["frames"]
        if "embeddings" in o:
            check_embeddings(o["embeddings"], e)
    assert not (out / PARTIAL_DIR).exists()
    assert not [p for p in out.rglob("*") if "partial" in p.name]


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_archive(tmp_path_factory.mktemp("archive"))


@pytest.fixture(scope="module")
def local_run(archive: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int, str]:
    """The archive annotated once by the local engine with two workers: (out, code, stderr)."""
    out = tmp_path_factory.mktemp("local") / "out"
    home = tmp_path_factory.mktemp("home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SCENECLS_HOME", str(home))
        err = subprocess.run(
            [
                sys.executable,
                "-m",
                "scenecls",
                *annotate_args(archive, out, "--workers", "2", "--outputs", "all"),
            ],
            capture_output=True,
            text=True,
            timeout=300,
            env=os.environ.copy(),
        )
    return out, err.returncode, err.stderr


def test_local_engine_annotates_the_archive(local_run: tuple[Path, int, str]) -> None:
    out, code, err = local_run
    assert code == 1, err  # one video failed; the others are done
    assert_complete(out)
    assert "videos      4 found: 3 annotated, 0 skipped (already done), 1 failed" in err
    done = [e for e in manifest_lines(out) if e["status"] == "done"]
    encoded, analysed = sum(e["encoded"] for e in done), sum(e["analysed"] for e in done)
    assert f"encoded     {encoded} of {analysed} analysed frames" in err
    assert f"failed      {BROKEN}: cannot open" in err
    assert "Traceback" not in err
    lines = manifest_lines(out)
    assert len({e["options_hash"] for e in lines}) == 1
    assert {(e["precision"], e["device"]) for e in lines} == {("fp32", "cpu")}
    # the labels are right: the fixture model sees the shapes
    day1 = read_segments(out / "cams/north/day1.mp4.segments.json")
    assert [s["label"] for s in day1] == ["red circle", "blue ring"]
    assert 2.0 <= day1[1]["start"] <= 3.0
    assert [s["label"] for s in read_segments(out / "phone/anim.gif.segments.json")] == [
        "blue circle"
    ]


def test_rerun_skips_every_finished_video(
    local_run: tuple[Path, int, str],
    tmp_path: Path,
    archive: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "out"
    shutil.copytree(local_run[0], out)
    before = {
        p: p.stat().st_mtime_ns
        for p in out.rglob("*.*")
        if not p.name.startswith(".") and p.name != "manifest.jsonl"
    }
    t0 = time.monotonic()
    code = main(annotate_args(archive, out, "--workers", "2", "--outputs", "all"))
    took = time.monotonic() - t0
    err = capsys.readouterr().err
    assert code == 1  # the broken file is tried again, and fails again
    assert "3 skipped (already done)" in err and "0 annotated" in err
    assert {p: p.stat().st_mtime_ns for p in before} == before  # nothing rewritten
    assert_complete(out)
    assert took < 20, f"a rerun with nothing to do took {took:.1f} s"


def test_changed_labels_and_outputs_redo_every_video(
    local_run: tuple[Path, int, str], tmp_path: Path, archive: Path, capsys
) -> None:
    out = tmp_path / "out"
    shutil.copytree(local_run[0], out)
    old = {e["file"]: e for e in manifest_lines(out)}
    labels = "red circle,blue ring,green circle,yellow ring,blue circle"
    argv = annotate_args(archive, out, "--outputs", "jsonl,segments", "--workers", "1")
    argv[argv.index(LABELS)] = labels
    assert main(argv) == 1
    assert "3 annotated, 0 skipped" in capsys.readouterr().err
    assert_complete(out, ("jsonl", "segments"))
    for e in manifest_lines(out):
        assert e["labels_hash"] != old[e["file"]]["labels_hash"]
        assert e["options_hash"] != old[e["file"]]["options_hash"]
    doc = json.loads((out / "cams/north/day1.mp4.segments.json").read_text())
    assert doc["labels"] == labels.split(",")
    # outputs no longer asked for are removed with the old annotation
    assert not list(out.rglob("*.srt")) and not list(out.rglob("*.annotated.mp4"))
    assert not list(out.rglob("*.embeddings")) and not list(out.rglob("embeddings.npy"))


def _start(archive: Path, out: Path, *extra: str) -> subprocess.Popen:  # type: ignore[type-arg]
    return subprocess.Popen(
        [sys.executable, "-m", "scenecls", *annotate_args(archive, out, *extra)],
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    )


def _wait_for_done(proc: subprocess.Popen, out: Path, timeout: float = 120) -> None:  # type: ignore[type-arg]
    """Returns as soon as the manifest lists a finished video."""
    manifest = out / "manifest.jsonl"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if manifest.exists() and b'"status": "done"' in manifest.read_bytes():
            return
        if proc.poll() is not None:
            pytest.fail(f"the run ended before the test could stop it: {proc.stderr.read()}")  # type: ignore[union-attr]
        time.sleep(0.01)
    proc.kill()
    pytest.fail("no video finished in time")


@pytest.fixture
def bigger_archive(archive: Path, tmp_path: Path) -> Path:
    """The archive plus copies, so a run lasts long enough to be stopped mid-way."""
    root = tmp_path / "bigger"
    shutil.copytree(archive, root)
    for i in range(4):
        copy = root / "copies" / f"c{i}"
        copy.mkdir(parents=True)
        for rel in VIDEOS:
            shutil.copy(archive / rel, copy / Path(rel).name)
    return root


def _done_in(out: Path) -> set[str]:
    path = out / "manifest.jsonl"
    text = path.read_text() if path.exists() else ""
    return {
        json.loads(x)["file"]
        for x in text.splitlines()
        if '"status": "done"' in x and x.endswith("}")
    }


def test_killed_run_resumes_without_duplicates_or_half_files(
    bigger_archive: Path, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "out"
    proc = _start(bigger_archive, out, "--workers", "1", "--outputs", "all")
    _wait_for_done(proc, out)
    proc.send_signal(signal.SIGKILL)  # no chance to clean up
    proc.wait(timeout=30)
    finished = _done_in(out)
    total = 3 + 4 * 3
    assert 1 <= len(finished) < total, "the kill came too late to test anything"

    assert main(annotate_args(bigger_archive, out, "--workers", "2", "--outputs", "all")) == 1
    err = capsys.readouterr().err
    assert f"{total - len(finished)} annotated, {len(finished)} skipped" in err
    lines = manifest_lines(out)
    files = [e["file"] for e in lines]
    assert len(files) == len(set(files)) == total + 1  # every video once, the broken one too
    assert all(e["status"] == "done" for e in lines if e["file"] != BROKEN)
    assert not (out / PARTIAL_DIR).exists()
    assert not [p for p in out.rglob("*") if "partial" in p.name]
    for e in lines:
        for kind, rel in e["outputs"].items():
            path = out / rel
            if kind == "jsonl":
                assert len(read_jsonl(path)) == e["frames"]
            elif kind == "video":
                assert video_frames(path) == e["frames"]
            elif kind in ("segments", "csv"):
                check_segments(read_segments(path), first_time=0.0, end_time=e["duration"])
            elif kind == "embeddings":
                check_embeddings(path, e)
            else:
                parse_captions(path)


def _workers_of(pid: int) -> list[int]:
    """The pool processes started by ``pid`` (not multiprocessing's resource tracker)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(c) for c in children if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_worker_that_dies_costs_no_video(bigger_archive: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = _start(bigger_archive, out, "--workers", "1", "--outputs", "jsonl,segments,video")
    _wait_for_done(proc, out)
    workers = _workers_of(proc.pid)
    assert len(workers) == 1
    os.kill(workers[0], signal.SIGKILL)  # as the out-of-memory killer would
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err  # the broken file only
    assert "a worker process died" in err and "Traceback" not in err
    lines = manifest_lines(out)
    assert len(lines) == 3 + 4 * 3 + 1
    assert all(e["status"] == "done" for e in lines if e["file"] != BROKEN)
    assert not (out / PARTIAL_DIR).exists()


def test_ctrl_c_stops_the_hand_out_and_leaves_only_finished_videos(
    bigger_archive: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    proc = _start(bigger_archive, out, "--workers", "2", "--outputs", "jsonl,segments,video")
    _wait_for_done(proc, out)
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert time.monotonic() - sent < 5, "did not stop within 5 s"
    assert proc.returncode == 130, err
    assert "not done (stopped)" in err and "Traceback" not in err
    lines = manifest_lines(out)
    assert lines and all(e["status"] in ("done", "failed") for e in lines)
    for e in lines:
        if e["status"] == "done":
            assert video_frames(out / e["outputs"]["video"]) == e["frames"]
    assert not (out / PARTIAL_DIR).exists()
    assert not [p for p in out.rglob("*") if "partial" in p.name]
    # only finished videos have outputs
    written = {p.relative_to(out).as_posix() for p in out.rglob("*.jsonl")} - {"manifest.jsonl"}
    assert written == {e["outputs"]["jsonl"] for e in lines if e["status"] == "done"}


def test_find_lists_the_segments_with_a_label(
    local_run: tuple[Path, int, str], archive: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = local_run[0]
    assert main(["find", str(out), "Blue Ring"]) == 0
    captured = capsys.readouterr()
    rows = captured.out.splitlines()
    assert rows and all(r.startswith("cams/north/day1.mp4  0:00:0") for r in rows)
    assert rows[-1].split()[3] == "0:00:04.00"  # the last segment ends with the video
    assert "labelled 'Blue Ring' in 1 video" in captured.err

    assert main(["find", str(out), "blue circle", "--json", "--min-duration", "1"]) == 0
    hits = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [h["file"] for h in hits] == ["phone/anim.gif"]
    assert set(hits[0]) == {"file", "input", "label", "start", "end", "duration", "confidence"}
    assert hits[0]["input"] == str((archive / "phone/anim.gif").resolve())
    assert hits[0]["start"] == 0.0 and hits[0]["end"] == pytest.approx(2.5)
    assert hits[0]["duration"] >= 1 and 0 < hits[0]["confidence"] <= 1

    assert main(["find", str(out), "blue circle", "--min-duration", "100"]) == 0
    captured = capsys.readouterr()
    assert captured.out == "" and "0 segments" in captured.err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["find", "OUT", "pizza"], "was annotated with label 'pizza': labels there: blue circle"),
        (["find", "ARCHIVE", "red circle"], "has no manifest.jsonl"),
        (["find", "OUT", "red circle", "--min-duration", "-1"], "--min-duration must be"),
        (["annotate", "ARCHIVE/nothing-*.mp4", "--out", "TMP/o"], "matches nothing"),
        (["annotate", "ARCHIVE/missing.mp4", "--out", "TMP/o"], "does not exist"),
        (["annotate", "ARCHIVE", "--out", "TMP/o", "--outputs", "mp3"], "--outputs 'mp3'"),
        (["annotate", "ARCHIVE", "--out", "ARCHIVE/phone/notes.txt"], "is a file"),
        (["annotate", "ARCHIVE", "--out", "TMP/o", "--workers", "0"], "--workers must be"),
        (["annotate", "ARCHIVE", "--out", "TMP/o", "--fps", "0"], "--fps must be"),
        (["annotate", "ARCHIVE"], "--out"),
    ],
)
def test_bad_command_lines(
    argv: list[str],
    message: str,
    local_run: tuple[Path, int, str],
    archive: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    subs = {"OUT": str(local_run[0]), "ARCHIVE": str(archive), "TMP": str(tmp_path)}
    for k, v in subs.items():
        argv = [a.replace(k, v) for a in argv]
    assert main([*argv, "--model", str(MODEL)] if argv[0] == "annotate" else argv) == 2
    assert message in one_line_error(capsys.readouterr().err)
    assert not (tmp_path / "o").exists()


def test_ray_missing_is_one_line(
    archive: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails
    code = main(annotate_args(archive, tmp_path / "o", "--engine", "ray"))
    assert code == 2
    assert "pip install 'scenecls[ray]'" in one_line_error(capsys.readouterr().err)
    assert not (tmp_path / "o").exists()


# --- Ray -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ray_local() -> Iterator[None]:
    """A local Ray instance with 2 CPUs for this module, its files in a temporary folder
    that is removed afterwards."""
    import ray

    temp = tempfile.mkdtemp(prefix="scenecls-ray-", dir="/tmp")  # short: Ray's sockets live there
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        _temp_dir=temp,
        logging_level="ERROR",
        log_to_driver=False,
    )
    try:
        yield
    finally:
        ray.shutdown()
        shutil.rmtree(temp, ignore_errors=True)


def test_ray_engine_writes_what_the_local_engine_writes(
    ray_local: None, local_run: tuple[Path, int, str], archive: Path, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "ray"
    code = main(
        annotate_args(archive, out, "--engine", "ray", "--workers", "2", "--outputs", "all")
    )
    err = capsys.readouterr().err
    assert code == 1, err
    assert "3 annotated, 0 skipped (already done), 1 failed" in err and "2 ray workers" in err
    assert_complete(out)
    local = {e["file"]: e for e in manifest_lines(local_run[0])}
    for e in manifest_lines(out):
        ref = local[e["file"]]
        for key in ("status", "options_hash", "model_fingerprint", "frames", "duration", "outputs"):
            assert e[key] == ref[key], key
        for kind, rel in e["outputs"].items():
            mine, theirs = out / rel, local_run[0] / rel
            if kind == "jsonl":
                assert read_jsonl(mine) == read_jsonl(theirs)
            elif kind == "segments":
                assert json.loads(mine.read_text()) == json.loads(theirs.read_text())
            elif kind == "video":
                assert video_frames(mine) == video_frames(theirs) == e["frames"]
            elif kind == "embeddings":
                a, b = open_embeddings(mine), open_embeddings(theirs)
                assert np.array_equal(a.embeddings, b.embeddings)
                assert np.array_equal(a.frames, b.frames) and np.array_equal(a.spans, b.spans)
            else:
                assert mine.read_text() == theirs.read_text()


def test_ray_rerun_skips_what_the_local_engine_did(
    ray_local: None, local_run: tuple[Path, int, str], archive: Path, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "out"
    shutil.copytree(local_run[0], out)
    assert main(annotate_args(archive, out, "--engine", "ray", "--outputs", "all")) == 1
    assert "0 annotated, 3 skipped (already done), 1 failed" in capsys.readouterr().err
    assert_complete(out)
