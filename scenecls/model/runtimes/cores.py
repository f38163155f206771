"""One budget of CPU threads for a run: the image encoder owns the cores, nothing spins.

A run has four kinds of CPU work: decoding (FFmpeg's threads, on the reader thread), the
change gate's thumbnails and preprocessing (NumPy and OpenCV, on the pipeline thread),
and the image encoder (the runtime's thread pool). They take turns more than they
overlap: the pipeline thread preprocesses, then waits for the encoder. What hurts on a
machine with few cores is a pool that *spins* while it waits for work, because it holds
a core the other stages need right then:

- ONNX Runtime's intra-op threads spin between calls by default. Measured by issue #22 on
  a 2-core Zen 3: turning spinning off alone took a gated run of bottle-detection.mp4
  from 17.9 s to 12.7 s, and its preprocessing from 2.9 s to 0.5 s. The encoder is
  created with spinning off (:func:`~.onnx.session_options`).
- OpenBLAS (NumPy's matrix products, used by preprocessing) keeps its worker threads
  busy-waiting for a while after each call, exactly while the encoder then runs; OpenCV's
  own pool (resizes of the gate's thumbnails, colour conversions, overlays) waits
  actively as well. Both are set to one thread by :func:`share_cores`: their work per
  frame is small (a 1080p frame's preprocessing is a few milliseconds on one thread)
  and runs between encoder calls, when the encoder's threads are asleep.

The encoder gets :func:`~.base.cpu_threads` threads (``$SCENECLS_THREADS``, or every CPU
this process may use); ``scenecls annotate`` gives each worker process its share, and
``serve`` runs all cameras through one encoder.
"""

from __future__ import annotations

import logging
import threading

log = logging.getLogger("scenecls")

_lock = threading.Lock()
_shared = False


def share_cores() -> None:
    """Set NumPy's BLAS and OpenCV's thread pools to one thread, once per process, so
    that no pool spins on a core the image encoder needs (see the module docstring).
    Called when a model is loaded for the CPU; safe to call again."""
    global _shared
    with _lock:
        if _shared:
            return
        _shared = True
    try:
        import cv2

        cv2.setNumThreads(1)
    except Exception:  # pragma: no cover - OpenCV always imports where scenecls runs
        log.debug("cannot set OpenCV's threads", exc_info=True)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=1, user_api="blas")
    except Exception:  # pragma: no cover - threadpoolctl is a dependency
        log.debug("cannot set the BLAS threads", exc_info=True)


def helper_threads() -> dict[str, int]:
    """The helper pools' thread counts as they are now: ``opencv`` and ``blas`` (the
    largest BLAS pool loaded, 0 when none is)."""
    import cv2
    from threadpoolctl import threadpool_info

    blas = [p["num_threads"] for p in threadpool_info() if p.get("user_api") == "blas"]
    return {"opencv": int(cv2.getNumThreads()), "blas": max(blas, default=0)}
