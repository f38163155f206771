"""Bad input through the command line: every case is one line and the right exit code
(2: the command line is wrong, 1: something failed at run time), or a recovery with a
warning; outputs written so far stay complete and valid. docs/reliability.md lists
each case with its test."""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from scenecls.cli import main

from .conftest import MEDIA
from .outputs import check_segments, one_line_error, read_jsonl, read_segments

SHORT = MEDIA / "car-detection.mp4"  # 377 frames, 12.6 s, moov atom at the start
FRAME_S = 0.08  # 12.5 frames/s
LONG = MEDIA / "one-by-one-person-detection.mp4"  # 1394 frames


def _run(tiny_bundle: Path, *args: str) -> int:
    return main(["run", *args, "--model", str(tiny_bundle), "--no-progress"])


def _other_stderr(err: str) -> list[str]:
    """stderr lines that are neither ours nor the run summary (decoder noise)."""
    summary = ("source ", "frames ", "encoded ", "speed ", "per frame ", "switches ", "latency ")
    summary += ("gaps ", "encoder ", "calls ")
    return [
        ln
        for ln in err.splitlines()
        if ln.strip() and not ln.startswith("scenecls:") and not ln.startswith(summary)
    ]


# --- inputs that are not videos -------------------------------------------------------


def _png_as_mp4(p: Path) -> None:
    cv2.imwrite(str(p.with_suffix(".png")), np.zeros((32, 32, 3), np.uint8))
    p.with_suffix(".png").rename(p)


def _jpeg_as_avi(p: Path) -> None:
    cv2.imwrite(str(p.with_suffix(".jpg")), np.zeros((32, 32, 3), np.uint8))
    p.with_suffix(".jpg").rename(p)


@pytest.mark.parametrize(
    "name, make, message",
    [
        ("empty.mp4", lambda p: p.write_bytes(b""), "is empty (0 bytes)"),
        ("notes.mp4", lambda p: p.write_text("hello\n" * 50), "not a video FFmpeg can read"),
        ("still.mp4", _png_as_mp4, "is a PNG image, not a video"),
        ("still.avi", _jpeg_as_avi, "is a JPEG image, not a video"),
    ],
)
def test_a_file_that_is_not_a_video_is_refused_before_the_model_loads(
    name, make, message, tmp_path: Path, capfd
) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / name
    make(bad)
    out = tmp_path / "out"
    out.mkdir()
    # the model does not exist either: the input is checked first, so that is not reported
    code = main(["run", str(bad), "--model", str(tmp_path / "no-model"),
                 "--jsonl", str(out / "o.jsonl")])  # fmt: skip
    err = capfd.readouterr().err
    assert code == 1
    assert message in one_line_error(err)
    assert _other_stderr(err) == []  # no FFmpeg or OpenCV chatter
    assert list(out.iterdir()) == []


def test_a_truncated_recording_is_annotated_as_far_as_it_goes(
    tiny_bundle: Path, tmp_path: Path, capfd
) -> None:  # type: ignore[no-untyped-def]
    video = tmp_path / "cut.mp4"
    data = SHORT.read_bytes()
    video.write_bytes(data[: len(data) // 2])  # the recorder died half-way
    jsonl, segs = tmp_path / "o.jsonl", tmp_path / "o.json"
    code = _run(tiny_bundle, str(video), "--jsonl", str(jsonl), "--segments", str(segs))
    err = capfd.readouterr().err
    assert code == 0, err
    assert "ended after 170 of its 377 frames" in err and "looks truncated" in err
    assert "[input ended early: truncated?]" in err
    assert _other_stderr(err) == []
    lines = read_jsonl(jsonl)
    assert len(lines) == 170
    check_segments(read_segments(segs), first_time=0.0, end_time=lines[-1]["time"] + FRAME_S)


def test_a_video_damaged_mid_file_skips_the_broken_frames(
    tiny_bundle: Path, tmp_path: Path, capfd
) -> None:  # type: ignore[no-untyped-def]
    data = bytearray(SHORT.read_bytes())
    rng = np.random.default_rng(0)
    for off in range(len(data) // 3, len(data) // 3 + 200_000, 5000):
        data[off : off + 500] = rng.integers(0, 256, 500, dtype=np.uint8).tobytes()
    video = tmp_path / "damaged.mp4"
    video.write_bytes(bytes(data))
    jsonl, segs = tmp_path / "o.jsonl", tmp_path / "o.json"
    code = _run(tiny_bundle, str(video), "--jsonl", str(jsonl), "--segments", str(segs))
    err = capfd.readouterr().err
    assert code == 0, err
    assert "1 frame(s) of" in err and "could not be decoded and were skipped" in err
    assert "undecodable (skipped) 1" in err
    assert "truncated" not in err  # it went on to the end
    assert _other_stderr(err) == []  # FFmpeg's own error messages stay out
    lines = read_jsonl(jsonl)
    assert len(lines) == 376  # every frame but the broken one
    assert lines[-1]["time"] == pytest.approx(376 * FRAME_S, abs=1e-3)  # still the last frame
    check_segments(read_segments(segs), first_time=0.0)


def test_an_image_folder_with_unreadable_files(tiny_bundle: Path, tmp_path: Path, capfd) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "imgs"
    folder.mkdir()
    cap = cv2.VideoCapture(str(SHORT))
    for i in range(4):
        cv2.imwrite(str(folder / f"{i}.jpg"), cap.read()[1])
    (folder / "1b.jpg").write_text("not a jpeg")
    (folder / "2b.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)  # cut short
    jsonl = tmp_path / "o.jsonl"
    assert _run(tiny_bundle, str(folder), "--jsonl", str(jsonl)) == 0
    err = capfd.readouterr().err
    assert err.count("scenecls: skipping cannot decode") == 2
    assert "undecodable (skipped) 2" in err
    assert len(read_jsonl(jsonl)) == 4


# --- the region of interest ----------------------------------------------------------


def _image_folder(folder: Path) -> Path:
    """Two 320 x 240 images: their size is known only once the first is decoded."""
    folder.mkdir()
    for i in range(2):
        cv2.imwrite(str(folder / f"{i}.png"), np.full((240, 320, 3), 60 * i, np.uint8))
    return folder


@pytest.mark.parametrize(
    "source, region, words",
    [
        ("SHORT", "700,0,100,100", "car-detection.mp4: region 700,0,100,100 (pixels) reaches "
         "outside the 768x432 frame"),
        ("SHORT", "0,400,768,40", "reaches outside the 768x432 frame (to x=768, y=440)"),
        ("SHORT", "0.5,0.5,0.6,0.1", "--region 0.5,0.5,0.6,0.1: as fractions, x + w"),
        ("SHORT", "0.5,0.5", "--region '0.5,0.5': give four numbers"),
        ("SHORT", "0.5,0,320,240", "pixels must be whole numbers"),
        ("SHORT", "0,0,0.0001,0.5", "covers no whole pixel of the 768x432 frame"),
        ("IMAGES", "0,0,400,100", "region 0,0,400,100 (pixels) reaches outside the 320x240"),
    ],
)  # fmt: skip
def test_a_region_outside_the_frame_is_one_line_exit_2_and_nothing_written(
    source: str, region: str, words: str, tiny_bundle: Path, tmp_path: Path, capfd
) -> None:  # type: ignore[no-untyped-def]
    src = str(SHORT) if source == "SHORT" else str(_image_folder(tmp_path / "imgs"))
    out = tmp_path / "out"
    out.mkdir()
    code = _run(tiny_bundle, src, f"--region={region}", "--jsonl", str(out / "o.jsonl"),
                "--segments", str(out / "o.json"), "--embeddings", str(out / "o.embeddings"),
                "--out", str(out / "o.mp4"))  # fmt: skip
    err = capfd.readouterr().err
    assert code == 2, err
    assert words in one_line_error(err)
    assert list(out.iterdir()) == []


# --- labels --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "labels, message",
    [
        ("", "no labels given"),
        (" , ", "empty label"),
        ("room,,park", "empty label"),
        ("room,park,room", "appears twice"),
        ("BAD_TOML", "is not valid TOML"),
        ("WRONG_TOML", "has no labels"),
        ("no-such-labels.toml", "does not exist"),
    ],
)
def test_bad_labels_are_usage_errors(labels, message, tiny_bundle, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "bad.toml"
    bad.write_text('[labels]\nroom = "room"\npark = ["park", "garden"\nyard = "yard"\n')
    wrong = tmp_path / "wrong.toml"
    wrong.write_text('labels = "room, park"\n')
    labels = labels.replace("BAD_TOML", str(bad)).replace("WRONG_TOML", str(wrong))
    assert _run(tiny_bundle, str(SHORT), "--labels", labels) == 2
    line = one_line_error(capsys.readouterr().err)
    assert message in line
    if labels == str(bad):
        assert "line 4" in line  # where the unclosed list was noticed


def test_awkward_but_valid_labels_work(tiny_bundle: Path, tmp_path: Path, capfd) -> None:  # type: ignore[no-untyped-def]
    """A thousand labels, non-ASCII ones, and one far over CLIP's 77 tokens."""
    long_label = " ".join(["very long description of a kitchen scene"] * 20)
    names = [f"class {i}" for i in range(997)] + ["café crème", "東京の駅", long_label]
    toml = tmp_path / "many.toml"
    toml.write_text(
        "templates = ['{}']\n[labels]\n" + "".join(f'"{n}" = "{n}"\n' for n in names),
        encoding="utf-8",
    )
    jsonl = tmp_path / "o.jsonl"
    code = _run(tiny_bundle, str(SHORT), "--labels", str(toml), "--fps", "2", "--jsonl", str(jsonl))
    err = capfd.readouterr().err
    assert code == 0, err
    assert "longer than the model's 77: truncated" in err
    rows = read_jsonl(jsonl)
    assert list(rows[0]["scores"]) == names  # every label scored, in order, as UTF-8
    assert sum(rows[0]["scores"].values()) == pytest.approx(1.0, abs=1e-3)
    assert "東京の駅" in jsonl.read_text(encoding="utf-8")


# --- the model bundle --------------------------------------------------------------


@pytest.mark.parametrize(
    "damage, message",
    [
        ("remove visual.onnx", "missing"),
        ("alter visual.onnx", "altered"),
        ("format 99", "format"),
    ],
)
def test_a_damaged_or_foreign_bundle_is_one_line(
    damage, message, tiny_bundle: Path, tmp_path: Path, capsys
) -> None:  # type: ignore[no-untyped-def]
    import json

    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, bundle)
    if damage == "remove visual.onnx":
        (bundle / "visual.onnx").unlink()
    elif damage == "alter visual.onnx":
        with open(bundle / "visual.onnx", "r+b") as f:
            f.seek(200)
            f.write(b"\x00\x01\x02\x03")
    else:
        manifest = json.loads((bundle / "bundle.json").read_text())
        manifest["format"] = 99
        (bundle / "bundle.json").write_text(json.dumps(manifest))
    assert main(["run", str(SHORT), "--model", str(bundle)]) == 1
    assert message in one_line_error(capsys.readouterr().err).lower()


# --- outputs -----------------------------------------------------------------------


def test_an_output_folder_that_is_read_only_is_refused_before_any_work(
    tiny_bundle: Path, tmp_path: Path
) -> None:
    """Run as a user the folder is closed to (root writes anywhere, so as root the
    folder is made read-only with a read-only bind mount in a private mount namespace)."""
    locked = tmp_path / "locked"
    locked.mkdir()
    argv = [sys.executable, "-m", "scenecls", "run", str(SHORT), "--model", str(tiny_bundle),
            "--segments", str(locked / "s.json")]  # fmt: skip
    if os.geteuid() != 0:
        locked.chmod(0o555)
        cmd = argv
    else:
        assert shutil.which("unshare"), "util-linux's unshare is needed to test this as root"
        script = 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" "$0" && exec "$@"'
        cmd = ["unshare", "--mount", "sh", "-c", script, str(locked), *argv]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    line = one_line_error(proc.stderr)
    assert f"--segments {locked / 's.json'}: cannot write there" in line
    assert "Read-only file system" in line or "Permission denied" in line
    assert list(locked.iterdir()) == []


def _limited(limit: int) -> None:
    """Files this process writes may not grow past ``limit`` bytes (a full disk)."""
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


def test_a_disk_that_fills_up_mid_run_stops_cleanly_with_valid_outputs(
    tiny_bundle: Path, tmp_path: Path
) -> None:
    jsonl, segs, srt = tmp_path / "o.jsonl", tmp_path / "o.json", tmp_path / "o.srt"
    proc = subprocess.run(
        [sys.executable, "-m", "scenecls", "run", str(LONG), "--model", str(tiny_bundle),
         "--no-progress", "--jsonl", str(jsonl), "--segments", str(segs), "--srt", str(srt)],
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=lambda: _limited(40_000),
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    line = one_line_error(proc.stderr)
    assert f"writing {jsonl} failed: File too large" in line
    assert "Traceback" not in proc.stderr
    rows = read_jsonl(jsonl)  # cut back to whole lines: every line parses
    assert 50 < len(rows) < 1394
    assert jsonl.stat().st_size <= 40_000
    segments = read_segments(segs)  # written for the frames processed before the stop
    check_segments(segments, first_time=0.0)
    assert segments[-1]["end"] >= rows[-1]["time"]
    assert srt.read_text().startswith("1\n")
    assert not list(tmp_path.glob(".*partial*"))


def test_a_video_that_cannot_be_completed_is_removed_not_left_broken(
    tiny_bundle: Path, tmp_path: Path
) -> None:
    out, segs = tmp_path / "o.mp4", tmp_path / "o.json"
    proc = subprocess.run(
        [sys.executable, "-m", "scenecls", "run", str(SHORT), "--model", str(tiny_bundle),
         "--no-progress", "--out", str(out), "--segments", str(segs)],
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=lambda: _limited(300_000),
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert "the video could not be completed" in one_line_error(proc.stderr)
    assert "Failed to write frame" not in proc.stderr  # OpenCV's own warnings stay out
    assert not out.exists()
    assert not list(tmp_path.glob(".*partial*"))
    check_segments(read_segments(segs), first_time=0.0)  # the other outputs are complete


def test_a_nearly_full_disk_stops_the_run_before_outputs_break(
    tiny_bundle: Path, tmp_path: Path, capsys, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    import scenecls.video.sinks.base as base

    calls = {"n": 0}
    real = shutil.disk_usage

    def filling(path):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        usage = real(path)
        free = usage.free if calls["n"] < 3 else 10 * 2**20  # 10 MB left from the 3rd look
        return usage._replace(free=free)

    monkeypatch.setattr(base.shutil, "disk_usage", filling)
    out, jsonl, segs = tmp_path / "o.mp4", tmp_path / "o.jsonl", tmp_path / "o.json"
    original = base.DiskWatch.__init__

    def every_frame(self, path, min_free=base.MIN_FREE_BYTES, every=1.0):  # type: ignore[no-untyped-def]
        original(self, path, min_free, every=0.0)

    monkeypatch.setattr(base.DiskWatch, "__init__", every_frame)
    code = _run(tiny_bundle, str(LONG), "--out", str(out), "--jsonl", str(jsonl),
                "--segments", str(segs))  # fmt: skip
    assert code == 1
    assert "the disk is nearly full (10 MB left)" in one_line_error(capsys.readouterr().err)
    rows = read_jsonl(jsonl)
    assert 0 < len(rows) < 100  # stopped early
    check_segments(read_segments(segs), first_time=0.0)
    cap = cv2.VideoCapture(str(out))  # finished properly: it plays
    assert cap.isOpened() and cap.get(cv2.CAP_PROP_FRAME_COUNT) >= len(rows)


# --- anything else -----------------------------------------------------------------


def test_an_unexpected_failure_is_one_line_unless_debug(tiny_bundle, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import scenecls.video.pipeline

    def boom(*_a, **_k):  # type: ignore[no-untyped-def]
        raise RuntimeError("something nobody foresaw\non two lines")

    monkeypatch.setattr(scenecls.video.pipeline.Pipeline, "run", boom)
    assert _run(tiny_bundle, str(SHORT)) == 1
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1] == (
        "scenecls: internal error: RuntimeError: something nobody foresaw on two lines "
        "(run again with --debug for the traceback, and please report it)"
    )
    assert "Traceback" not in err
    with pytest.raises(RuntimeError, match="nobody foresaw"):
        _run(tiny_bundle, str(SHORT), "--debug")
