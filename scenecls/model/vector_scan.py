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
