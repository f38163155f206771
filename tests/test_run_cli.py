"""`scenecls run`: outputs, one-line errors, and Ctrl-C / SIGTERM leaving valid files."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import pytest

from scenecls.cli import main
from scenecls.model.embeddings_store import open_embeddings

from .conftest import MEDIA
from .outputs import (
    check_segments,
    one_line_error,
    parse_captions,
    read_jsonl,
    read_segments,
)

LONG = MEDIA / "one-by-one-person-detection.mp4"  # 139 s, 1394 frames
SHORT = MEDIA / "car-detection.mp4"


def test_run_writes_outputs_and_summary(tiny_bundle, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    seg, srt = tmp_path / "s.json", tmp_path / "s.srt"
    code = main(
        [
            "run",
            str(SHORT),
            "--model",
            str(tiny_bundle),
            "--labels",
            "scenes",
            "--segments",
            str(seg),
            "--srt",
            str(srt),
            "--no-progress",
        ]
    )
    err = capsys.readouterr().err
    assert code == 0
    assert "frames      read 377, analysed 377, dropped 0" in err
    assert "switches    raw" in err
    # what ran and how it was used: the runtime and why, the encoder's calls by batch
    assert "encoder     ONNX Runtime fp32 on CPU, no trial:" in err
    calls = re.search(
        r"calls       image encoder: (\d+) calls: .*?(\d+) batched \((\d+) frames", err
    )
    assert calls is not None, err
    encoded = int(re.search(r"encoded     (\d+) of 377", err).group(1))  # type: ignore[union-attr]
    assert int(calls.group(3)) <= encoded < 377 and int(calls.group(2)) < int(calls.group(3))
    check_segments(read_segments(seg), first_time=0.0, end_time=30.16)
    parse_captions(srt)


@pytest.mark.parametrize(
    "argv, code, message",
    [
        (["run", "missing.mp4"], 2, "does not exist"),
        (["run", "ftp://host/x.mp4"], 2, "unsupported URL scheme"),
        (["run", "SHORT", "--jsonl", "/no/such/folder/x.jsonl"], 2, "does not exist: create it"),
        (["run", "SHORT", "--segments", "OUT/x.txt"], 2, ".json or .csv"),
        (["run", "SHORT", "--out", "OUT/x.gif"], 2, "use one of"),
        (["run", "SHORT", "--fps", "0"], 2, "--fps must be more than 0"),
        (["run", "SHORT", "--half-life", "0"], 2, "--half-life"),
        (["run", "SHORT", "--smoothing", "median"], 2, "invalid choice"),
        (["run", "SHORT", "--show"], 2, "needs a display"),
        (["run", "SHORT", "--jsonl", "OUT/x.jsonl", "--speed", "2"], 2, "add --show"),
        (["run", "SHORT", "--show", "--speed", "0"], 2, "--speed 0: give a factor"),
        (["run", "SHORT", "--show", "--speed", "fast"], 2, "--speed fast: give a factor"),
        (["run", "rtsp://127.0.0.1:9/cam", "--show", "--speed", "2"], 2, "is live and shows"),
        (["run", "SHORT", "--embeddings", "OUT/x.npz"], 2, "give a name without .npz"),
        (["run", "SHORT", "--embeddings", "OUT/x", "--flush-seconds", "0"], 2, "more than 0"),
    ],
)
def test_bad_run_input(argv, code, message, tiny_bundle, tmp_path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    argv = [str(SHORT) if a == "SHORT" else a.replace("OUT", str(tmp_path)) for a in argv]
    assert main([*argv, "--model", str(tiny_bundle)]) == code
    assert message in one_line_error(capsys.readouterr().err)
    assert list(tmp_path.iterdir()) == []  # refused before any work: nothing written


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_mid_run_leaves_valid_outputs(sig, tiny_bundle, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = {k: tmp_path / f"o.{k}" for k in ("mp4", "jsonl", "json", "srt", "vtt", "embeddings")}
    cmd = [
        sys.executable,
        "-m",
        "scenecls",
        "run",
        str(LONG),
        "--model",
        str(tiny_bundle),
        "--labels",
        "scenes",
        "--no-progress",
        "--batch",
        "4",
        "--out",
        str(out["mp4"]),
        "--jsonl",
        str(out["jsonl"]),
        "--segments",
        str(out["json"]),
        "--srt",
        str(out["srt"]),
        "--vtt",
        str(out["vtt"]),
        "--embeddings",
        str(out["embeddings"]),
    ]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=os.environ.copy())
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if out["jsonl"].exists() and len(out["jsonl"].read_bytes().splitlines()) >= 100:
            break
        time.sleep(0.02)
    else:
        proc.kill()
        pytest.fail("the run never got going")
    sent = time.monotonic()
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)
    assert time.monotonic() - sent <= 2.0, "did not stop within 2 s"
    assert proc.returncode == 130, err
    assert "Traceback" not in err

    lines = read_jsonl(out["jsonl"])
    assert 100 <= len(lines) < 1394
    segs = read_segments(out["json"])
    check_segments(segs, first_time=0.0)
    assert segs[-1]["end"] == pytest.approx(lines[-1]["time"] + 0.1, abs=1e-6)
    parse_captions(out["srt"])
    parse_captions(out["vtt"])
    cap = cv2.VideoCapture(str(out["mp4"]))
    frames = 0
    while cap.read()[0]:
        frames += 1
    assert frames >= len(lines)  # every processed frame was written, and the file plays
    stored = open_embeddings(out["embeddings"])  # whole, with every frame analysed
    assert stored.meta["complete"] and not stored.notes and not stored.writing
    assert len(stored.frames) == len(lines) and stored.end == segs[-1]["end"]
    assert stored.rows == sum(line["encoded"] for line in lines)
    assert not list(tmp_path.glob(".*partial*"))


def test_decoder_log_spam_is_kept_out(tiny_bundle, tmp_path: Path, capfd) -> None:  # type: ignore[no-untyped-def]
    """FFmpeg's and OpenCV's own messages (written straight to fd 2) stay out of the way."""
    garbage = tmp_path / "fake.mp4"
    garbage.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"junk" * 100)
    code = main(
        [
            "run",
            str(garbage),
            "--model",
            str(tiny_bundle),
            "-q",
            "--jsonl",
            str(tmp_path / "out.jsonl"),
        ]
    )
    err = capfd.readouterr().err
    assert code == 1
    assert err.strip().splitlines() == [one_line_error(err)]
    assert "not a video FFmpeg can read" in err
