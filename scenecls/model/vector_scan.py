"""Exact similarity of one query with many stored embeddings, in bounded memory.

Stored embeddings are float16 (half the disk and page cache of float32). NumPy's own
float16 -> float32 conversion runs at about 2 ns a value on the build machine, which is
1 s for a million 512-d rows, more than the whole search may take. :func:`scan` instead
widens the float16 bits with two integer operations, a cache-sized block at a time:

    bits32 = (int32(bits16) << 13) & 0x8FFFE000

is the float32 whose value is the float16's times 2**-112 (sign kept, exponent and
mantissa moved into place, subnormals included), so the query is scaled by 2**112
instead. Every product is the one ``rows.astype(float32) @ query`` forms, exactly (the
scaling by a power of two is exact); the sums are BLAS's, within about 1e-6 of a
float64 sum. Infinities and NaNs (which unit embeddings never hold) are not preserved.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

BLOCK_ROWS = 512
"""Rows per block: 512 x 512 float16 values are 512 KiB, about an L2 cache."""

_SCALE = np.float32(2.0**112)
_KEEP = np.int32(-0x70002000)  # 0x8FFFE000: the sign and the 15 moved bits


PARALLEL_ROWS = 200_000
"""From this many rows on, :func:`scan` splits the rows between threads (NumPy releases
the GIL in each block's work): 1.4x faster on the 2-core build machine."""


def scan(
    rows: np.ndarray, query: np.ndarray, out: np.ndarray | None = None, threads: int = 1
) -> np.ndarray:
    """``(R,)`` float32 dot products of ``rows`` ``(R, D)`` float16 or float32 (in memory
    or memory-mapped) with ``query`` ``(D,)`` float32, computed a block at a time, on
    up to ``threads`` threads when there are many rows."""
    n, dim = rows.shape
    query = np.ascontiguousarray(query, np.float32).reshape(dim)
    result = np.empty(n, np.float32) if out is None else out
    if n == 0:
        return result
    parts = min(max(1, threads), n // (PARALLEL_ROWS // 2) or 1)
    if parts > 1:
        # cut on block boundaries: every row is computed in the same block as it would
        # be on one thread, so the result does not depend on the threads
        cuts = [min(n, (n * i // parts) // BLOCK_ROWS * BLOCK_ROWS) for i in range(parts)] + [n]
        with ThreadPoolExecutor(parts) as pool:
            list(pool.map(lambda a, b: scan(rows[a:b], query, result[a:b]), cuts[:-1], cuts[1:]))
        return result
    if rows.dtype == np.float16:
        scaled = query * _SCALE
        halves = rows.view(np.int16)
        wide = np.empty((min(BLOCK_ROWS, n), dim), np.int32)
        for start in range(0, n, BLOCK_ROWS):
            block = halves[start : start + BLOCK_ROWS]
            w = wide[: len(block)]
            np.left_shift(block, 13, out=w, dtype=np.int32)
            np.bitwise_and(w, _KEEP, out=w)
            np.matmul(w.view(np.float32), scaled, out=result[start : start + len(block)])
        return result
    for start in range(0, n, BLOCK_ROWS * 16):
        block = np.asarray(rows[start : start + BLOCK_ROWS * 16], np.float32)
        np.matmul(block, query, out=result[start : start + len(block)])
    return result


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` highest ``scores`` (1-D), highest first; ties: lower index
    first. Exact: the same as a full stable sort, without sorting everything."""
    n = len(scores)
    k = max(0, min(k, n))
    if k == 0:
        return np.zeros(0, np.int64)
    if k < n:
        cut = np.argpartition(-scores, k - 1)[:k]
        threshold = scores[cut].min()
        cut = np.flatnonzero(scores >= threshold)  # all ties at the threshold
    else:
        cut = np.arange(n)
    order = np.lexsort((cut, -scores[cut]))
    return cut[order][:k]


SUMMARY_GROUP = 16
"""Rows per summary row of a store (format 2): each summary row is the unit mean of
this many consecutive rows."""


def summary_scores(
    summary: np.ndarray, query: np.ndarray, group: int, lo: int, hi: int, threads: int = 1
) -> np.ndarray:
    """``(G,)`` float32 scores of the summary rows of the whole groups of rows that
    ``[lo, hi)`` touches: groups ``lo // group`` up to ``hi // group`` (at most the
    summary's length), for :func:`coarse_scan` and :func:`group_threshold`."""
    first, last = lo // group, min(len(summary), hi // group)
    return scan(summary[first : max(first, last)], query, threads=threads)


def group_threshold(scores: list[np.ndarray], keep: int) -> float:
    """The summary score of the ``keep``-th best group over all ``scores`` (of several
    stores): :func:`coarse_scan` scans the groups at or above it exactly. ``-inf`` when
    there are no more groups than ``keep``."""
    every = np.concatenate([s for s in scores if len(s)] or [np.zeros(0, np.float32)])
    if len(every) <= keep:
        return -np.inf
    return float(np.partition(every, len(every) - keep)[len(every) - keep])


def coarse_scan(
    rows: np.ndarray,
    query: np.ndarray,
    summary: np.ndarray | None,
    group: int = SUMMARY_GROUP,
    keep: int = 48,
    lo: int = 0,
    hi: int | None = None,
    threads: int = 1,
    threshold: float | None = None,
    coarse: np.ndarray | None = None,
) -> np.ndarray:
    """``(hi - lo,)`` float32 dot products of ``rows[lo:hi]`` with ``query`` where they
    may matter, ``-inf`` elsewhere: the ``summary`` rows (``(S, D)``: unit means of
    ``group`` consecutive rows each) are scanned first (``coarse``: their
    :func:`summary_scores`, when already known), and only the rows of the ``keep`` best
    groups (or, given a ``threshold`` of several stores' groups, of the groups scoring
    at least that), and the rows after the last whole group, are scanned exactly.
    Consecutive rows of a video are near one another, so the best rows lie in the best
    groups (how often they do is measured by ``scripts/bench_history.py``); without a
    summary every row is scanned (exact)."""
    hi = len(rows) if hi is None else hi
    n = hi - lo
    if summary is None or n <= 0:
        return scan(rows[lo:hi], query, threads=threads)
    first = lo // group
    last = max(first, min(len(summary), hi // group))  # whole groups only
    if threshold is None and last - first <= keep:
        return scan(rows[lo:hi], query, threads=threads)
    if coarse is None:
        coarse = summary_scores(summary, query, group, lo, hi, threads)
    if threshold is None:
        best = np.sort(top_k(coarse, keep)) + first
    else:
        best = np.flatnonzero(coarse >= threshold) + first
    idx = (best[:, None] * group + np.arange(group)).reshape(-1)
    idx = idx[(idx >= lo) & (idx < hi)]
    tail = np.arange(max(lo, last * group), hi)
    idx = np.concatenate([idx, tail])
    out = np.full(n, -np.inf, np.float32)
    if len(idx):
        out[idx - lo] = scan(np.asarray(rows[idx]), query, threads=threads)
    if threshold is not None and len(tail):  # rows after the last group: as good as one
        weak = tail[out[tail - lo] < threshold]
        out[weak - lo] = -np.inf
    return out
