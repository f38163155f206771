"""Soak test: a simulated 30 fps live camera through the full pipeline for a long run.

usage: python scripts/soak.py --model MODEL [--minutes 35] [--json docs/perf/soak-DATE.json]

A simulated live source (SimulatedLiveSource, cycling frames taken from the sample
videos in shared/media) runs through Pipeline with every output at once: JSONL,
segments (.json), captions (.srt and .vtt) and the annotated video (.mp4). Measures,
per window of ``--window`` seconds of wall time: the process's resident memory (VmRSS,
sampled every 5 s on its own thread), capture-to-label latency p50/p95/p99/max, frames
offered by the camera vs analysed (the rest were dropped) and analysed frames/s.

At the end it prints a table, checks that the output files are valid, and judges two
bars: RSS growth after warm-up (the first 5 minutes, or 1/6 of a shorter run) at most
50 MB, and no latency growth (p95 of the last third of the post-warm-up windows at most
1.2 x that of the first third + 5 ms). Exit status 1 when a bar fails or an output is
invalid. Ctrl-C stops the run cleanly and still reports what was measured.

Long run used for docs/reliability.md (2 cores, encoder on core 0 only):
    SCENECLS_THREADS=1 HF_HUB_OFFLINE=1 taskset -c 0 .venv/bin/python scripts/soak.py \\
        --model models/full --minutes 35 --json docs/perf/soak-YYYY-MM-DD.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from _common import REPO, videos

from scenecls.types import Frame, Prediction
from scenecls.video.sinks import Sink

RSS_BAR_MB = 50.0
LATENCY_BAR_RATIO = 1.2
LATENCY_BAR_SLACK_MS = 5.0
WARMUP_MAX_S = 300.0


def rss_mb() -> float:
    """This process's resident set size (VmRSS) in MB (2**20 bytes)."""
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status (Linux only)")


class RssSampler(threading.Thread):
    """Samples VmRSS every ``interval`` seconds: (time.monotonic(), MB) pairs. A run of
    hours at 5 s keeps a few thousand pairs, so the sampler itself does not grow."""

    def __init__(self, interval: float) -> None:
        super().__init__(name="soak-rss", daemon=True)
        self.interval = interval
        self.samples: list[tuple[float, float]] = []
        self._stop_event = threading.Event()

    def sample(self) -> None:
        self.samples.append((time.monotonic(), rss_mb()))

    def run(self) -> None:
        while not self._stop_event.wait(self.interval):
            self.sample()

    def stop(self) -> None:
        self._stop_event.set()
        self.join()
        self.sample()


@dataclass
class Window:
    """One window of wall time: ``start_s``/``end_s`` from the start of the run."""

    index: int
    start_s: float
    end_s: float
    analysed: int
    offered: int
    dropped: int
    fps: float
    first_frame: int | None
    last_frame: int | None
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    latency_p99_ms: float | None
    latency_max_ms: float | None
    rss_mb: float | None = None  # the largest sample in the window
    rss_end_mb: float | None = None  # the last sample in the window


class SoakObserver(Sink):
    """Records, per analysed frame, capture-to-label latency and frame index, and folds
    them into one :class:`Window` per ``window`` seconds of wall time. Only the open
    window's latencies are kept (at most window x fps floats)."""

    def __init__(self, window: float) -> None:
        self.window = window
        self.t0 = 0.0
        self.windows: list[Window] = []
        self._current = 0
        self._latencies: list[float] = []
        self._first: int | None = None
        self._last: int | None = None
        self._last_index = -1  # the newest frame index seen, over all windows

    def start(self, info: object) -> None:
        self.t0 = time.monotonic()

    def on_frame(
        self,
        frame: Frame,
        prediction: Prediction | None,
        analysed: bool,
        annotated_bgr: object | None = None,
    ) -> None:
        now = time.monotonic()
        if not analysed:
            return
        latency = now - frame.captured_at
        # the window is that of the capture, so frame indices split cleanly between windows
        k = int((frame.captured_at - self.t0) // self.window)
        while k > self._current:
            self._close(self.t0 + (self._current + 1) * self.window)
        self._latencies.append(latency)
        if self._first is None:
            self._first = frame.index
        self._last = frame.index

    def _close(self, end: float) -> None:
        """Fold the open window into a :class:`Window` and start the next one."""
        start_s = self._current * self.window
        end_s = max(start_s, end - self.t0)
        lat = np.asarray(self._latencies) * 1000
        # frames offered: every index the camera produced since the last window's newest
        newest = self._last if self._last is not None else self._last_index
        offered = newest - self._last_index
        pct = np.percentile(lat, [50, 95, 99]) if lat.size else [None] * 3
        self.windows.append(
            Window(
                index=self._current,
                start_s=round(start_s, 3),
                end_s=round(end_s, 3),
                analysed=int(lat.size),
                offered=int(offered),
                dropped=int(offered - lat.size),
                fps=round(lat.size / (end_s - start_s), 3) if end_s > start_s else 0.0,
                first_frame=self._first,
                last_frame=self._last,
                latency_p50_ms=_round(pct[0]),
                latency_p95_ms=_round(pct[1]),
                latency_p99_ms=_round(pct[2]),
                latency_max_ms=_round(lat.max()) if lat.size else None,
            )
        )
        self._last_index = newest
        self._current += 1
        self._latencies = []
        self._first = self._last = None

    def finish(self, segments: object) -> None:
        if self._latencies or not self.windows:
            self._close(time.monotonic())


def _round(x: float | None, digits: int = 2) -> float | None:
    return None if x is None else round(float(x), digits)


def load_frames(count: int, size: tuple[int, int]) -> list[np.ndarray]:
    """``count`` frames spread evenly over the sample videos, each resized to ``size``
    (width, height) as it is decoded: HxWx3 uint8 BGR."""
    import cv2

    from scenecls.video.sources import VideoFileSource

    paths = videos()
    per_video = [count // len(paths) + (i < count % len(paths)) for i in range(len(paths))]
    frames: list[np.ndarray] = []
    for path, want in zip(paths, per_video, strict=True):
        source = VideoFileSource(path)
        source.open()
        try:
            total = source.frame_count or want
            step = max(1, total // max(1, want))
            kept = 0
            while kept < want and (frame := source.read()) is not None:
                if frame.index % step == 0:
                    frames.append(cv2.resize(frame.image_bgr, size, interpolation=cv2.INTER_AREA))
                    kept += 1
        finally:
            source.close()
    return frames


def machine() -> dict[str, Any]:
    """CPU model and cores, as lscpu says, and the cores this process may use."""
    facts: dict[str, Any] = {"platform": platform.platform(), "python": platform.python_version()}
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("Model name", "CPU(s)", "Thread(s) per core", "Core(s) per socket"):
                facts[key.strip()] = value.strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    facts["cpus_allowed"] = sorted(os.sched_getaffinity(0))
    facts["scenecls_threads"] = os.environ.get("SCENECLS_THREADS")
    return facts


def git_state() -> dict[str, Any]:
    """The checkout's commit, and whether the package had uncommitted changes."""

    def git(*args: str) -> str:
        cmd = ["git", "-C", str(REPO), *args]
        return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()

    try:
        return {
            "commit": git("rev-parse", "HEAD"),
            "dirty": bool(git("status", "--porcelain", "--", "scenecls")),
        }
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "dirty": None}


def check_recordings(recorder: Any, seconds: float) -> tuple[dict[str, Any], list[str]]:
    """Every rotated file plays (all its frames decode), none is missing (one per
    segment of the run, each starting a segment after the one before), and together
    they hold the run's time at the files' frame rate."""
    import cv2

    problems: list[str] = []
    files = sorted(recorder.folder.glob(f"{recorder.prefix}-*.mp4"))
    frames, starts = [], []
    for path in files:
        cap = cv2.VideoCapture(str(path))
        n = 0
        while cap.isOpened() and cap.grab():
            n += 1
        fps = cap.get(cv2.CAP_PROP_FPS)
        cap.release()
        frames.append(n)
        if n == 0:
            problems.append(f"{path.name} does not play")
        stamp = "-".join(path.stem.split("-")[1:3])
        starts.append(time.mktime(time.strptime(stamp, "%Y%m%d-%H%M%S")))
    expected = math.ceil(seconds / recorder.segment - 1e-6)
    if len(files) != expected:
        problems.append(f"{len(files)} recordings for {seconds:.0f} s, {expected} expected")
    steps = [b - a for a, b in itertools.pairwise(starts)]
    if any(abs(s - recorder.segment) > 3 for s in steps):
        problems.append(f"recordings do not follow each other a segment apart: {steps}")
    held = sum(frames) / (fps or 1)
    if abs(held - seconds) > 0.05 * seconds + 2:
        problems.append(f"the recordings hold {held:.0f} s of a {seconds:.0f} s run")
    out = {"recordings": len(files), "recording_frames": frames, "recordings_seconds":
           round(held, 1), "recording_bytes": sum(p.stat().st_size for p in files)}  # fmt: skip
    return out, problems


def check_outputs(
    paths: dict[str, Path], analysed: int, recorder: Any = None, seconds: float = 0.0
) -> dict[str, Any]:
    """Validate every output: JSONL parses line by line (one line per analysed frame),
    the segments JSON parses, captions are well-formed and the mp4 opens and has frames
    (with a ``recorder``: every rotated file, see :func:`check_recordings`)."""
    import cv2

    out: dict[str, Any] = {}
    problems: list[str] = []
    lines = 0
    last = -1
    try:
        with open(paths["jsonl"], encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                record = json.loads(line)
                if record["frame"] <= last:
                    problems.append(f"jsonl line {n}: frame {record['frame']} out of order")
                    break
                last = record["frame"]
                lines += 1
    except (OSError, ValueError, KeyError) as e:
        problems.append(f"jsonl: {e}")
    if lines != analysed:
        problems.append(f"jsonl has {lines} lines for {analysed} analysed frames")
    out["jsonl_lines"] = lines
    try:
        doc = json.loads(paths["segments"].read_text(encoding="utf-8"))
        segs = doc["segments"]
        out["segments"] = len(segs)
        if any(a["end"] > b["start"] + 1e-6 for a, b in itertools.pairwise(segs)):
            problems.append("segments overlap or are out of order")
    except (OSError, ValueError, KeyError) as e:
        problems.append(f"segments: {e}")
    for fmt in ("srt", "vtt"):
        try:
            text = paths[fmt].read_text(encoding="utf-8")
            out[f"{fmt}_captions"] = text.count(" --> ")
            if fmt == "vtt" and not text.startswith("WEBVTT"):
                problems.append("vtt does not start with WEBVTT")
        except OSError as e:
            problems.append(f"{fmt}: {e}")
    if recorder is not None:
        found, trouble = check_recordings(recorder, seconds)
        out.update(found)
        problems.extend(trouble)
        out["problems"] = problems
        out["valid"] = not problems
        return out
    cap = cv2.VideoCapture(str(paths["video"]))
    frames = 0
    if cap.isOpened():
        while cap.grab():
            frames += 1
    cap.release()
    out["mp4_frames"] = frames
    out["mp4_bytes"] = paths["video"].stat().st_size if paths["video"].is_file() else 0
    if frames == 0:
        problems.append("mp4 does not open or has no frames")
    elif frames != analysed:
        problems.append(f"mp4 has {frames} frames for {analysed} analysed frames")
    out["problems"] = problems
    out["valid"] = not problems
    return out


def attach_rss(windows: list[Window], samples: list[tuple[float, float]], t0: float) -> None:
    """Per window, the largest and the last RSS sample taken in it."""
    for w in windows:
        inside = [mb for t, mb in samples if w.start_s <= t - t0 < w.end_s]
        if inside:
            w.rss_mb, w.rss_end_mb = round(max(inside), 1), round(inside[-1], 1)


def summarise(
    windows: list[Window],
    samples: list[tuple[float, float]],
    t0: float,
    duration: float,
    rss_bar: float = RSS_BAR_MB,
) -> dict[str, Any]:
    """The figures the bars judge (see the module docstring)."""
    warmup = min(WARMUP_MAX_S, duration / 6)
    rel = [(t - t0, mb) for t, mb in samples]
    before = [mb for t, mb in rel if t <= warmup]
    after = [mb for t, mb in rel if t > warmup]
    rss_warm = before[-1] if before else None
    rss_max = max(after) if after else None
    growth = rss_max - rss_warm if rss_warm is not None and rss_max is not None else None
    # latency trend over complete windows after warm-up (a last window under half its
    # length is left out); a third's figure is the median of its windows' p95
    post = [
        w
        for w in windows
        if w.start_s >= warmup - 1e-6
        and w.latency_p95_ms is not None
        and (w.end_s - w.start_s) >= 0.5 * (windows[0].end_s - windows[0].start_s)
    ]
    first = last = None
    if len(post) >= 2:
        k = max(1, len(post) // 3)
        first = float(np.median([w.latency_p95_ms for w in post[:k]]))
        last = float(np.median([w.latency_p95_ms for w in post[-k:]]))
    rss_ok = growth is None or growth <= rss_bar
    latency_ok = (
        first is None or last is None or last <= LATENCY_BAR_RATIO * first + LATENCY_BAR_SLACK_MS
    )
    return {
        "warmup_s": round(warmup, 1),
        "rss_start_mb": _round(rel[0][1], 1) if rel else None,
        "rss_end_of_warmup_mb": _round(rss_warm, 1),
        "rss_max_after_warmup_mb": _round(rss_max, 1),
        "rss_end_mb": _round(rel[-1][1], 1) if rel else None,
        "rss_growth_mb": _round(growth, 1),
        "post_warmup_windows": len(post),
        "latency_p95_first_third_ms": _round(first),
        "latency_p95_last_third_ms": _round(last),
        "latency_ratio": _round(last / first, 3) if first and last is not None else None,
        "offered": sum(w.offered for w in windows),
        "analysed": sum(w.analysed for w in windows),
        "dropped": sum(w.dropped for w in windows),
        "bars": {
            "rss_growth_mb_max": rss_bar,
            "latency_last_third_max": f"{LATENCY_BAR_RATIO} x first third + "
            f"{LATENCY_BAR_SLACK_MS:g} ms",
        },
        "rss_ok": rss_ok,
        "rss_judged": growth is not None,
        "latency_ok": latency_ok,
        "latency_judged": first is not None and last is not None,
    }


def table(windows: list[Window]) -> str:
    head = (
        f"{'window':>6} {'start s':>8} {'RSS MB':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} "
        f"{'max ms':>8} {'offered':>8} {'analysed':>8} {'dropped':>8} {'fps':>6}"
    )

    def f(x: float | None, spec: str = ".1f") -> str:
        return "-" if x is None else format(x, spec)

    rows = [
        f"{w.index:>6} {w.start_s:>8.0f} {f(w.rss_mb):>8} {f(w.latency_p50_ms):>8} "
        f"{f(w.latency_p95_ms):>8} {f(w.latency_p99_ms):>8} {f(w.latency_max_ms):>8} "
        f"{w.offered:>8} {w.analysed:>8} {w.dropped:>8} {w.fps:>6.1f}"
        for w in windows
    ]
    return "\n".join([head, *rows])


def main(argv: list[str] | None = None) -> int:
    from scenecls.model.scene_model import load_model
    from scenecls.video.pipeline import Pipeline
    from scenecls.video.sinks import (
        CaptionSink,
        JsonlSink,
        RecordingSink,
        SegmentsSink,
        VideoSink,
    )
    from scenecls.video.sources import SimulatedLiveSource

    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--model", required=True, help="bundle folder, HF folder or hub id")
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--labels", default="scenes", help="labels as `scenecls run` takes them")
    ap.add_argument("--minutes", type=float, default=35.0)
    ap.add_argument("--fps", type=float, default=30.0, help="simulated camera rate")
    ap.add_argument("--window", type=float, default=60.0, help="seconds per report window")
    ap.add_argument("--rss-interval", type=float, default=5.0, help="seconds between samples")
    ap.add_argument("--frames", type=int, default=300, help="distinct frames the camera cycles")
    ap.add_argument("--size", default="640x360", help="frame size WxH")
    ap.add_argument("--out-dir", type=Path, help="outputs go here (default: a temp folder)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary output folder")
    ap.add_argument("--json", type=Path, help="write the report here")
    ap.add_argument(
        "--segment-minutes",
        type=float,
        help="record the annotated video in rotating files of M minutes (RecordingSink, "
        "as serve --record and run --segment-minutes do) instead of one file",
    )
    ap.add_argument(
        "--rss-bar",
        type=float,
        default=RSS_BAR_MB,
        help=f"MB of RSS growth allowed after warm-up (default {RSS_BAR_MB:g})",
    )
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    width, height = (int(v) for v in args.size.lower().split("x"))
    checkout = git_state()  # now, while the code that runs is the code on disk

    sampler = RssSampler(args.rss_interval)
    sampler.sample()
    sampler.start()
    rss_start = rss_mb()
    model = load_model(args.model, precision=args.precision)
    rss_model = rss_mb()
    frames = load_frames(args.frames, (width, height))
    rss_frames = rss_mb()

    temp = args.out_dir is None
    out_dir = Path(tempfile.mkdtemp(prefix="scenecls-soak-")) if temp else args.out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "jsonl": out_dir / "soak.jsonl",
        "segments": out_dir / "segments.json",
        "srt": out_dir / "captions.srt",
        "vtt": out_dir / "captions.vtt",
        "video": out_dir / "annotated.mp4",
    }
    observer = SoakObserver(args.window)
    sinks: list[Sink] = [
        observer,  # first, so its latency is capture to label, not to the end of the outputs
        JsonlSink(paths["jsonl"]),
        SegmentsSink(paths["segments"]),
        CaptionSink(paths["srt"], "srt"),
        CaptionSink(paths["vtt"], "vtt"),
        VideoSink(paths["video"])
        if args.segment_minutes is None
        else RecordingSink(out_dir, "annotated", segment=args.segment_minutes * 60),
    ]
    duration = args.minutes * 60
    source = SimulatedLiveSource(frames, fps=args.fps, duration=duration)
    stop = threading.Event()

    def on_sigint(signum: int, frame: FrameType | None) -> None:
        stop.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)  # a second Ctrl-C is hard

    signal.signal(signal.SIGINT, on_sigint)
    print(
        f"soak: {args.minutes:g} min at {args.fps:g} fps, {len(frames)} frames {args.size}, "
        f"model {args.model} ({model.runtime} {model.precision}), outputs in {out_dir}",
        flush=True,
    )
    stats = Pipeline(model, args.labels, source, sinks).run(stop)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sampler.stop()
    ran = time.monotonic() - observer.t0
    attach_rss(observer.windows, sampler.samples, observer.t0)
    summary = summarise(
        observer.windows, sampler.samples, observer.t0, min(duration, ran), args.rss_bar
    )
    recorder = sinks[-1] if isinstance(sinks[-1], RecordingSink) else None
    outputs = check_outputs(paths, stats.frames_analysed, recorder, ran)
    passed = summary["rss_ok"] and summary["latency_ok"] and outputs["valid"]
    report = {
        "machine": machine(),
        "git": checkout,
        "model": {
            "model": str(args.model),
            "model_id": model.bundle.model_id,
            "precision": model.precision,
            "runtime": getattr(model, "runtime", None),
            "device": model.device,
        },
        "run": {
            "command": " ".join([Path(sys.executable).name, *sys.argv]),
            "minutes_requested": args.minutes,
            "seconds_run": round(ran, 1),
            "interrupted": stats.interrupted,
            "camera_fps": args.fps,
            "window_s": args.window,
            "rss_interval_s": args.rss_interval,
            "frames_cycled": len(frames),
            "frame_size": [width, height],
            "labels": args.labels,
        },
        "rss_before_model_mb": round(rss_start, 1),
        "rss_after_model_mb": round(rss_model, 1),
        "rss_after_frames_mb": round(rss_frames, 1),
        "pipeline": {
            "frames_read": stats.frames_read,
            "frames_analysed": stats.frames_analysed,
            "frames_dropped": stats.frames_dropped,
            "fps": round(stats.fps, 2),
            "latency_p50_ms": _round(stats.latency_ms(50)),
            "latency_p95_ms": _round(stats.latency_ms(95)),
            "segments": len(stats.segments),
        },
        "windows": [asdict(w) for w in observer.windows],
        "rss_samples": [[round(t - observer.t0, 1), round(mb, 1)] for t, mb in sampler.samples],
        "summary": summary,
        "outputs": outputs,
        "pass": passed,
    }

    print(table(observer.windows))
    s = summary
    print(
        f"RSS        start {s['rss_start_mb']} MB, end of warm-up ({s['warmup_s']:g} s) "
        f"{s['rss_end_of_warmup_mb']} MB, max after {s['rss_max_after_warmup_mb']} MB: "
        f"growth {s['rss_growth_mb']} MB (bar {args.rss_bar:g}) "
        f"{'ok' if s['rss_ok'] else 'FAIL'}{'' if s['rss_judged'] else ' (not judged)'}"
    )
    print(
        f"latency    p95 first third {s['latency_p95_first_third_ms']} ms, last third "
        f"{s['latency_p95_last_third_ms']} ms, ratio {s['latency_ratio']} "
        f"{'ok' if s['latency_ok'] else 'FAIL'}{'' if s['latency_judged'] else ' (not judged)'}"
    )
    print(
        f"frames     offered {s['offered']}, analysed {s['analysed']}, dropped {s['dropped']}"
        f"{'  [stopped early]' if stats.interrupted else ''}"
    )
    verdict = "valid" if outputs["valid"] else "INVALID: " + "; ".join(outputs["problems"])
    print(
        f"outputs    {verdict}"
        f" (jsonl {outputs['jsonl_lines']} lines, "
        + (
            f"mp4 {outputs['mp4_frames']} frames, "
            if "mp4_frames" in outputs
            else f"{outputs['recordings']} recordings of {outputs['recordings_seconds']} s, "
        )
        + f"{outputs.get('segments')} segments)"
    )
    print("PASS" if passed else "FAIL")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
        print(f"report     {args.json}")
    if temp and not args.keep:
        shutil.rmtree(out_dir, ignore_errors=True)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
