"""Benchmark of the embeddings store on synthetic vectors: search and relabel at scale.

    python scripts/bench_embeddings.py [--rows 1000000] [--files 1] [--queries 5]
                                       [--hours 1] [--json docs/perf/embeddings.json]

Measures, on this machine:

- search: one query over ``--rows`` stored 512-d float16 embeddings (in ``--files``
  stores, memory mapped), the time of :func:`scenecls.archive.moments.search` (the query's text
  encoding is not part of it), median of ``--queries``; with one file, the top moments
  are checked against a brute-force float32 scan, and the first against the best row;
- relabel: ``--hours`` of 30 frames-per-second video stored as a gated run stores it
  (a row per encoded frame, 13.8 % of frames as measured by ``scenecls bench`` on the
  sample videos, the frames between interpolated), relabelled into segments, captions
  and per-frame JSON Lines with three labels; and the store's size on disk;
- float16 storage: the cosine between stored float16 rows and their float32 originals.

The vectors are random unit vectors (rows: independent; the hour: a slow random walk,
so labels change now and then); speed does not depend on what they mean. The stores are
written as a run writes them (:class:`~scenecls.model.store_writer.StoreWriter`, store
folders of format 2), a block of frames at a time.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from scenecls.archive.job import make_sinks
from scenecls.archive.moments import file_moments, search
from scenecls.archive.relabel import replay
from scenecls.archive.stored import StoredVideo
from scenecls.model.embeddings_store import FRAME_DTYPE, open_embeddings, read_meta
from scenecls.model.store_writer import StoreWriter
from scenecls.model.taught import TextScorer
from scenecls.video.smoothing import SmoothingConfig

DIM = 512
ENCODED_SHARE = 0.138  # gated share of frames encoded over ../shared/media (performance.md)


def unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def random_rows(n: int, rng: np.random.Generator, chunk: int = 65536):
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        yield unit(rng.standard_normal((m, DIM), dtype=np.float32))


def folder_mb(path: Path) -> float:
    """The size of the store folder at ``path`` (MiB)."""
    return sum(f.stat().st_size for f in path.iterdir() if f.is_file()) / 2**20


def write_store(
    path: Path, meta: dict, rows, frames: np.ndarray, end: float, chunk: int = 65536
) -> None:
    """Write ``rows`` (an ``(R, D)`` array, or blocks of it in order) and the analysed
    ``frames`` (FRAME_DTYPE, time order) into a store at ``path``, a block of frames at a
    time, each block with the rows it points at, as a run adds them."""
    writer = StoreWriter(path, meta, DIM, "float16", flush_seconds=10.0)
    blocks = iter([rows] if isinstance(rows, np.ndarray) else rows)
    pending = np.zeros((0, DIM), np.float32)
    added = 0
    row_times = frames["time"][frames["encoded"]]
    for start in range(0, len(frames), chunk):
        records = frames[start : start + chunk]
        need = int(max(records["left"].max(), records["right"].max())) + 1 - added
        while len(pending) < need:
            pending = np.concatenate([pending, next(blocks)])
        writer.add(pending[:need], records, row_times[added : added + need])
        pending, added = pending[need:], added + need
    writer.close(end)


def store_of_rows(path: Path, rows: int, seed: int = 0) -> None:
    """A store of ``rows`` encoded frames, 1 s apart, each its own frame."""
    rng = np.random.default_rng(seed)
    frames = np.zeros(rows, FRAME_DTYPE)
    frames["index"] = np.arange(rows)
    frames["time"] = np.arange(rows, dtype=np.float64)
    frames["left"] = frames["right"] = np.arange(rows)
    frames["encoded"] = True
    meta = {"model": "synthetic", "model_fingerprint": "synthetic", "source": path.name,
            "input": None}  # fmt: skip
    write_store(path, meta, random_rows(rows, rng), frames, float(rows))


def brute_force_moments(store, query: np.ndarray, top: int, spread: float, gap: float):
    scores = np.asarray(store.embeddings, np.float64) @ query  # everything in memory, float64
    order = np.argsort(-scores, kind="stable")
    assert scores[order[0]] == scores.max()
    return [(int(p), a, b) for p, a, b in file_moments(scores, store.times, store.spans,
            top, spread, gap)], int(order[0])  # fmt: skip


def bench_search(folder: Path, rows: int, files: int, queries: int, verify: bool) -> dict:
    paths = [folder / f"rows{i}.embeddings" for i in range(files)]
    t0 = time.perf_counter()
    for i, path in enumerate(paths):
        store_of_rows(path, rows // files, seed=i)
    written = time.perf_counter() - t0
    videos = [StoredVideo(p, read_meta(p), p.name, p.name, None) for p in paths]
    rng = np.random.default_rng(1)
    seconds = []
    exact = None
    for q in range(queries):
        query = unit(rng.standard_normal((1, DIM), dtype=np.float32))[0]
        t0 = time.perf_counter()
        result = search(videos, query, top=10)
        seconds.append(time.perf_counter() - t0)
        if verify and q == 0 and files == 1:
            store = open_embeddings(paths[0])
            expected, best = brute_force_moments(store, query, 10, 0.02, 2.0)
            got = [(int(np.searchsorted(store.times, m.best)), m.start, m.end)
                   for m in result.moments]  # fmt: skip
            exact = [g[0] for g in got] == [e[0] for e in expected] and got[0][0] == best
    return {
        "rows": rows,
        "files": files,
        "file_mb": round(sum(folder_mb(p) for p in paths), 1),
        "write_s": round(written, 2),
        "query_s_median": round(statistics.median(seconds), 4),
        "query_s_all": [round(s, 4) for s in seconds],
        "exact_top_k_vs_brute_force": exact,
    }


def hour_store(path: Path, hours: float, seed: int = 2) -> tuple[int, int]:
    """A gated run's store of ``hours`` of 30 fps video: encoded frames spaced so that
    13.8 % are encoded, the frames between interpolated as the look-ahead gate does."""
    rng = np.random.default_rng(seed)
    n = int(hours * 3600 * 30)
    step = round(1 / ENCODED_SHARE)  # about every 7th frame
    encoded_at = np.arange(0, n, step)
    if encoded_at[-1] != n - 1:
        encoded_at = np.append(encoded_at, n - 1)
    rows = len(encoded_at)
    walk = np.cumsum(rng.standard_normal((rows, DIM), dtype=np.float32) * 0.02, axis=0)
    base = unit(rng.standard_normal((1, DIM), dtype=np.float32))
    emb = unit(base + walk)
    frames = np.zeros(n, FRAME_DTYPE)
    frames["index"] = np.arange(n)
    frames["time"] = np.arange(n) / 30.0
    row_of = np.searchsorted(encoded_at, np.arange(n), side="right") - 1
    frames["left"] = row_of
    frames["right"] = np.minimum(row_of + 1, rows - 1)
    own = np.isin(np.arange(n), encoded_at)
    frames["encoded"] = own
    frames["right"][own] = frames["left"][own]
    k = np.arange(n) - encoded_at[row_of]
    frames["weight"] = np.where(own, 0.0, k / step)
    meta = {"model": "synthetic", "model_fingerprint": "synthetic", "source": "hour.mp4",
            "input": None, "fps": 30.0, "size": [1920, 1080], "live": False}  # fmt: skip
    write_store(path, meta, emb, frames, n / 30.0)
    return n, rows


def bench_relabel(folder: Path, hours: float) -> dict:
    path = folder / "hour.mp4.embeddings"
    frames, rows = hour_store(path, hours)
    store = open_embeddings(path)
    rng = np.random.default_rng(3)
    text = unit(rng.standard_normal((3, DIM), dtype=np.float32))
    scorer = TextScorer(["room", "park", "warehouse"], text, 100.0)
    out = {}
    for name, outputs in (("segments,srt", ("segments", "srt")),
                          ("jsonl,segments,srt", ("jsonl", "segments", "srt"))):  # fmt: skip
        work = Path(tempfile.mkdtemp(dir=folder))
        sinks = list(make_sinks(work, "hour.mp4", outputs).values())
        t0 = time.perf_counter()
        stats = replay(store, scorer, SmoothingConfig(), sinks)
        out[name] = {"seconds": round(time.perf_counter() - t0, 3),
                     "segments": len(stats.segments or [])}  # fmt: skip
    return {
        "hours": hours,
        "frames": frames,
        "rows": rows,
        "file_mb": round(folder_mb(path), 2),
        "relabel": out,
    }


def float16_agreement(n: int = 200_000) -> dict:
    rng = np.random.default_rng(4)
    rows = unit(rng.standard_normal((n, DIM), dtype=np.float32))
    back = rows.astype(np.float16).astype(np.float32)
    cos = np.sum(rows * back, axis=1) / np.linalg.norm(back, axis=1)
    return {"rows": n, "cosine_min": float(cos.min()), "cosine_mean": float(cos.mean())}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=int, default=1_000_000, help="stored rows to search")
    p.add_argument("--files", type=int, default=1, help="files the rows are split into")
    p.add_argument("--no-relabel", action="store_true", help="search only")
    p.add_argument("--queries", type=int, default=5, help="queries to time (median)")
    p.add_argument("--hours", type=float, default=1.0, help="hours of 30 fps video to relabel")
    p.add_argument("--no-verify", action="store_true", help="skip the brute-force check")
    p.add_argument(
        "--dir", type=Path, help="where to write the synthetic files (default: a temp folder)"
    )
    p.add_argument("--json", type=Path, help="also write the figures here")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        folder = Path(tmp)
        report = {
            "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, "
            f"{__import__('os').cpu_count()} logical cores",
            "search": bench_search(folder, args.rows, args.files, args.queries, not args.no_verify),
            "relabel": None if args.no_relabel else bench_relabel(folder, args.hours),
            "float16": float16_agreement(),
        }
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
