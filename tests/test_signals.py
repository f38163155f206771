"""SIGINT/SIGTERM in every phase (export, model load, writing; running is in
test_run_cli.py) end the command within 2 s with exit 130, and leave no half-written
file; a second Ctrl-C forces the exit at once."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import MEDIA, REPO
from .outputs import read_jsonl

SHORT = MEDIA / "car-detection.mp4"


def _start(phase: str, marker: Path, *argv: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "tests.slow_phase", phase, str(marker), "--", *argv]
    return subprocess.Popen(cmd, cwd=REPO, stderr=subprocess.PIPE, text=True)


def _signal_when_started(proc: subprocess.Popen, marker: Path, sig: int) -> tuple[float, str]:
    """Send ``sig`` once the slow phase has begun; returns (seconds to exit, stderr)."""
    deadline = time.monotonic() + 120
    while not marker.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"the phase never started: {proc.communicate()[1]}")
        time.sleep(0.02)
    time.sleep(0.2)
    sent = time.monotonic()
    proc.send_signal(sig)
    try:
        _, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    return time.monotonic() - sent, err


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_during_export_leaves_no_half_bundle(sig, tiny_hf: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "bundle"
    proc = _start("export", tmp_path / "marker", "export", "--model", str(tiny_hf),
                  "--out", str(out))  # fmt: skip
    took, err = _signal_when_started(proc, tmp_path / "marker", sig)
    assert took <= 2.0, f"took {took:.1f} s"
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "scenecls: interrupted" in err
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["marker"]  # no .partial folder


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_during_model_load_ends_at_once(sig, tiny_bundle: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "out"
    out.mkdir()
    proc = _start("load", tmp_path / "marker", "run", str(SHORT), "--model", str(tiny_bundle),
                  "--jsonl", str(out / "o.jsonl"), "--out", str(out / "o.mp4"))  # fmt: skip
    took, err = _signal_when_started(proc, tmp_path / "marker", sig)
    assert took <= 2.0, f"took {took:.1f} s"
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "scenecls: interrupted" in err
    assert list(out.iterdir()) == []  # nothing had started


def test_signal_while_writing_leaves_complete_files_only(tiny_bundle: Path, tmp_path: Path) -> None:
    """The segment file is being written (slowly) when SIGTERM comes: the command still
    ends within 2 s; what was finished stays whole, the rest is absent, never half."""
    jsonl, segs, video = tmp_path / "o.jsonl", tmp_path / "o.json", tmp_path / "o.mp4"
    proc = _start("write", tmp_path / "marker", "run", str(SHORT), "--model", str(tiny_bundle),
                  "--no-progress", "--jsonl", str(jsonl), "--segments", str(segs),
                  "--out", str(video))  # fmt: skip
    took, err = _signal_when_started(proc, tmp_path / "marker", signal.SIGTERM)
    assert took <= 2.0, f"took {took:.1f} s"
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert len(read_jsonl(jsonl)) == 377  # complete: it was closed before the segments
    assert not segs.exists()  # never written half
    assert not list(tmp_path.glob(".*partial*"))  # the video's temporary file is gone too


def test_a_second_ctrl_c_forces_the_exit(tiny_bundle: Path, tmp_path: Path) -> None:
    jsonl, segs = tmp_path / "o.jsonl", tmp_path / "o.json"
    proc = _start("write", tmp_path / "marker", "run", str(SHORT), "--model", str(tiny_bundle),
                  "--no-progress", "--jsonl", str(jsonl), "--segments", str(segs))  # fmt: skip
    deadline = time.monotonic() + 120
    while not (tmp_path / "marker").exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1]
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.3)
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=10)
    assert time.monotonic() - sent < 0.5  # at once, not after the grace period
    assert proc.returncode == 128 + signal.SIGINT, err
    assert "press Ctrl-C again to quit at once" in err
    assert not segs.exists()
    assert len(read_jsonl(jsonl)) == 377
