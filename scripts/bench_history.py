"""Benchmark: search over a week of a kitchen's history, and what the history costs on disk.

usage: python scripts/bench_history.py [--days 7] [--cameras 4] [--data DIR]
                                       [--json docs/perf/history-search.json]

1. The encode share: the change gate (default settings) over every sample video of
   shared/media, as the service runs it (every frame analysed, at the video's rate):
   rows (encoded frames) and analysed frames per second of video.
2. A synthetic history in the service's layout (``DATA/history/<camera>/<hour>/``, one
   store per camera-hour, written by the service's own StoreWriter) of ``--days`` x
   ``--cameras`` at that rate: rows drift as a video's embeddings do (a random walk on
   the sphere, a new scene every minute or so), every analysed frame recorded. Twenty
   moments of a known "target" scene are planted at known times.
3. Search timing: ``collect(DATA)`` + ``search`` as ``scenecls search DATA QUERY`` runs
   it (summary rows first, then the best groups exactly), the first query after the
   files were written and the median of the next ones; the same with every row scanned
   exactly; and how many of the exact search's top-10 moments the fast search finds
   too, over 20 queries, and whether the planted moments are found.
4. The service's own search (``search_history``: the chunks stay open between queries),
   the same queries; and what a result's thumbnail costs: a frame decoded from a real
   WebM recording of a sample video (10-minute files, as the service writes them) at
   12 random times, as the page asks for a result page's thumbnails.
5. History size per camera-day on disk.

Every figure is printed with the CPU (lscpu model and flags) it was measured on.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from _common import videos

from scenecls.archive.moments import search
from scenecls.archive.stored import collect
from scenecls.model.embeddings_store import FRAME_DTYPE
from scenecls.model.history_layout import HISTORY_DIR, stamp_of
from scenecls.model.store_writer import StoreWriter
from scenecls.serve.history_search import search_history

D = 512
DAY = 86400.0


def cpu() -> dict[str, Any]:
    """lscpu's model name, the CPU flags that matter for the scan, and the cores."""
    facts: dict[str, Any] = {"cores": os.cpu_count()}
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return facts
    for line in out.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "Model name":
            facts["model"] = value.strip()
        elif key.strip() == "Flags":
            have = set(value.split())
            facts["flags"] = sorted(
                have & {"avx2", "f16c", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile"}
            )
    return facts


def encode_share() -> dict[str, Any]:
    """Rows and analysed frames per second of the sample videos under the default gate."""
    import cv2

    from scenecls.video.gate import ChangeGate, GateConfig

    rows = frames = 0
    seconds = 0.0
    per: dict[str, Any] = {}
    unit = np.ones(D, np.float32) / np.sqrt(D)
    for path in videos():
        cap = cv2.VideoCapture(str(path))
        fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
        gate = ChangeGate(GateConfig())
        n = e = 0
        while True:
            ok, image = cap.read()
            if not ok:
                break
            if gate.check(image, n / fps):
                gate.keep(unit)
                e += 1
            n += 1
        cap.release()
        per[path.name] = {"fps": round(fps, 3), "frames": n, "encoded": e, "share": round(e / n, 4)}
        rows, frames, seconds = rows + e, frames + n, seconds + n / fps
    return {
        "videos": per,
        "encode_share": round(rows / frames, 4),
        "rows_per_s": round(rows / seconds, 4),
        "frames_per_s": round(frames / seconds, 4),
    }


def build(data: Path, days: float, cameras: int, rows_s: float, frames_s: float, seed: int):
    """The synthetic history; returns the planted target and its moments (camera, time)."""
    rng = np.random.default_rng(seed)
    target = rng.normal(size=D).astype(np.float32)
    target /= np.linalg.norm(target)
    end = 1_767_225_600.0  # 2026-01-01T00:00:00Z
    start = end - days * DAY
    hours = round(days * 24)
    planted: list[tuple[str, float]] = []
    samples: list[np.ndarray] = []  # stored rows: "more like this" queries
    plant_at = set(
        rng.choice(cameras * hours, size=min(20, cameras * hours), replace=False).tolist()
    )
    meta = {"model": "bench/random", "model_fingerprint": "bench-fp", "clock": "unix"}
    for c in range(cameras):
        camera = f"cam{c + 1}"
        scene = rng.normal(size=D).astype(np.float32)
        for h in range(hours):
            t0 = start + h * 3600.0
            folder = data / HISTORY_DIR / camera / stamp_of(t0)
            folder.parent.mkdir(parents=True, exist_ok=True)
            writer = StoreWriter(folder, {**meta, "camera": camera}, D, flush_seconds=1e9)
            n_rows = int(rows_s * 3600)
            n_frames = int(frames_s * 3600)
            # consecutive rows ~0.98 apart in cosine; a new scene about once a minute
            steps = rng.normal(size=(n_rows, D)).astype(np.float32) * 0.009
            jumps = np.flatnonzero(rng.random(n_rows) < 1.0 / (60 * rows_s))
            rows = np.empty((n_rows, D), np.float32)
            here = scene / np.linalg.norm(scene)
            cuts = [0, *[j for j in jumps.tolist() if j > 0], n_rows]
            for a, b in itertools.pairwise(cuts):
                if a > 0:
                    here = rng.normal(size=D).astype(np.float32) * 0.045
                rows[a:b] = here + np.cumsum(steps[a:b], axis=0)
                here = rows[b - 1]
            scene = here
            samples.append(rows[int(rng.integers(0, n_rows))].copy())
            if c * hours + h in plant_at:  # a target moment: ~20 s of rows near it
                i = int(rng.integers(0, n_rows - 80))
                rows[i : i + 70] = target + rng.normal(size=(70, D)).astype(np.float32) * 0.01
                planted.append((camera, t0 + i / rows_s))
            rows /= np.linalg.norm(rows, axis=1, keepdims=True)
            row_times = t0 + np.arange(n_rows) / rows_s
            frame_times = t0 + np.arange(n_frames) / frames_s
            owner = np.clip(np.searchsorted(row_times, frame_times, side="right") - 1, 0, None)
            rec = np.zeros(n_frames, FRAME_DTYPE)
            rec["index"] = np.arange(n_frames)
            rec["time"] = frame_times
            rec["left"] = rec["right"] = owner
            rec["encoded"] = np.r_[True, owner[1:] != owner[:-1]]
            times = frame_times[rec["encoded"]]
            keep = np.unique(owner)
            writer.add(rows[keep], _renumber(rec, keep), times)
            writer.close(t0 + 3600.0)
    return target, planted, samples


def _renumber(rec: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Rows numbered by their place among the rows kept (every row owns a frame)."""
    new = np.searchsorted(keep, rec["left"])
    rec["left"] = rec["right"] = new
    return rec


def timed_search(
    data: Path, query: np.ndarray, top: int = 10, exact: bool | None = None
) -> tuple[float, list, int]:
    t0 = time.perf_counter()
    found, problems = collect([data])
    result = search(found, query, top=top, problems=problems, exact=exact)
    return time.perf_counter() - t0, result.moments, result.rows


def thumbnails(work: Path) -> dict[str, Any]:
    """Seconds to decode 12 thumbnails (one at a time, as one worker would) from a
    10-minute VP8 WebM recording of a sample video (640x360, 30 fps, looped)."""
    import cv2

    from scenecls.serve.recordings import ThumbnailCache

    source = next(p for p in videos() if p.name == "bottle-detection.mp4")
    cap = cv2.VideoCapture(str(source))
    frames = []
    while True:
        ok, image = cap.read()
        if not ok:
            break
        frames.append(image)
    cap.release()
    path = work / "cam1-20260101-000000.webm"
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"VP80"), 30.0, (w, h))
    for i in range(30 * 600):
        writer.write(frames[i % len(frames)])
    writer.release()
    size_mb = path.stat().st_size / 2**20
    cache = ThumbnailCache()
    times = np.random.default_rng(1).uniform(0, 599, 12)
    t0 = time.perf_counter()
    got = sum(cache.get(path, float(t)) is not None for t in times)
    took = time.perf_counter() - t0
    shutil.rmtree(work, ignore_errors=True)
    return {"recording_mb": round(size_mb, 1), "decoded": got, "twelve_s": round(took, 3)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=float, default=7.0)
    ap.add_argument("--cameras", type=int, default=4)
    ap.add_argument("--data", type=Path, help="where to build it (default: a temporary folder)")
    ap.add_argument("--queries", type=int, default=20)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    facts: dict[str, Any] = {"cpu": cpu(), "command": " ".join(sys.argv)}
    share = encode_share()
    facts["gate"] = share
    print(f"CPU: {facts['cpu']}")
    print(f"encode share {share['encode_share']:.3f}: {share['rows_per_s']:.2f} rows/s, "
          f"{share['frames_per_s']:.2f} analysed frames/s")  # fmt: skip
    data = args.data or Path(tempfile.mkdtemp(prefix="scenecls-history-bench-"))
    try:
        t0 = time.perf_counter()
        plan = data / "bench-plan.json"
        if args.data is not None and plan.is_file():  # built before: the same history
            saved = json.loads(plan.read_text())
            target = np.asarray(saved["target"], np.float32)
            planted = [(c, float(t)) for c, t in saved["planted"]]
            samples = [np.asarray(s, np.float32) for s in saved["samples"]]
        else:
            target, planted, samples = build(
                data, args.days, args.cameras, share["rows_per_s"], share["frames_per_s"], 7
            )
            plan.write_text(
                json.dumps({"target": target.tolist(), "planted": planted,
                            "samples": [s.tolist() for s in samples]})
            )  # fmt: skip
        built = time.perf_counter() - t0
        size = sum(f.stat().st_size for f in (data / HISTORY_DIR).rglob("*") if f.is_file())
        per_day = size / (args.cameras * args.days)
        rows_file = sum(f.stat().st_size for f in (data / HISTORY_DIR).rglob("embeddings.npy")) / (
            args.cameras * args.days
        )
        frames_file = sum(f.stat().st_size for f in (data / HISTORY_DIR).rglob("frames.npy")) / (
            args.cameras * args.days
        )
        mib = 2**20
        print(f"built {args.cameras} cameras x {args.days:g} days in {built:.0f} s: "
              f"{size / 2**30:.2f} GiB, {per_day / mib:.0f} MiB per camera-day "
              f"(rows {rows_file / mib:.0f}, frame records {frames_file / mib:.0f})")  # fmt: skip
        rng = np.random.default_rng(3)
        cold, moments, rows = timed_search(data, target, top=len(planted))
        found_planted = sum(
            any(m.video.startswith(cam) and m.start - 2 <= t <= m.end + 2 for m in moments)
            for cam, t in planted
        )
        fast: list[float] = []
        agree: list[float] = []
        for q in range(args.queries):
            query = target
            if q % 2:  # more like a stored moment
                query = samples[int(rng.integers(0, len(samples)))]
                query = query / np.linalg.norm(query)
            took, got, _ = timed_search(data, query)
            fast.append(took)
            if q < 6:  # exact for comparison: every row scanned
                took_exact, exact, _ = timed_search(data, query, exact=True)
                facts.setdefault("exact_s", []).append(round(took_exact, 4))
                best = {(m.video, round(m.best, 2)) for m in exact}
                agree.append(len(best & {(m.video, round(m.best, 2)) for m in got}) / len(best))
        cams = {f"cam{c + 1}": f"cam{c + 1}" for c in range(args.cameras)}
        service: list[float] = []
        for q in range(args.queries + 1):
            query = target if q % 2 == 0 else samples[q % len(samples)]
            query = query / np.linalg.norm(query)
            t1 = time.perf_counter()
            search_history(data, cams, query, 0.0, 4e9, top=12)
            service.append(time.perf_counter() - t1)
        facts["service_search"] = {
            "first_query_s": round(service[0], 4),
            "query_s_median": round(float(np.median(service[1:])), 4),
            "query_s_max": round(float(np.max(service[1:])), 4),
        }
        facts["thumbnails"] = thumbnails(Path(tempfile.mkdtemp(prefix="scenecls-thumbs-")))
        facts["search"] = {
            "cameras": args.cameras,
            "days": args.days,
            "rows": rows,
            "history_gib": round(size / 2**30, 3),
            "first_query_s": round(cold, 4),
            "query_s_median": round(float(np.median(fast)), 4),
            "query_s_max": round(float(np.max(fast)), 4),
            "exact_query_s_median": round(float(np.median(facts.get("exact_s", [0]))), 4),
            "top10_same_as_exact": round(float(np.mean(agree)), 4) if agree else None,
            "planted_moments_found": f"{found_planted}/{len(planted)}",
        }
        facts["size"] = {
            "mib_per_camera_day": round(per_day / 2**20, 1),
            "rows_mib_per_camera_day": round(rows_file / 2**20, 1),
            "frame_records_mib_per_camera_day": round(frames_file / 2**20, 1),
        }
        s = facts["search"]
        print(f"search over {rows} rows: first {s['first_query_s']:.3f} s, median "
              f"{s['query_s_median']:.3f} s, max {s['query_s_max']:.3f} s; every row exactly: "
              f"{s['exact_query_s_median']:.3f} s; top-10 moments as exact: "
              f"{s['top10_same_as_exact']:.0%}; planted found: "
              f"{s['planted_moments_found']}")  # fmt: skip
        v = facts["service_search"]
        print(f"service search (chunks kept open): first {v['first_query_s']:.3f} s, median "
              f"{v['query_s_median']:.3f} s, max {v['query_s_max']:.3f} s; 12 thumbnails "
              f"decoded in {facts['thumbnails']['twelve_s']:.2f} s")  # fmt: skip
    finally:
        if args.data is None:
            shutil.rmtree(data, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(facts, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
