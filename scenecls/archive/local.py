"""The local engine: a pool of worker processes on this machine.

Processes are started with ``spawn`` (no inherited threads or model state), load the
model once in their initializer, and ignore Ctrl-C: the driver asks them to stop through
a shared event. On Linux they die with the driver (``PR_SET_PDEATHSIG``), so killing
the driver never leaves workers writing behind it. Each worker's thread pools get
``cores // workers`` threads (by default a worker per two cores: :data:`CORES_PER_WORKER`).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing as mp
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from ..errors import SceneclsError
from ..interrupts import Interrupted
from ..model.runtimes.base import usable_cpus
from .job import VideoTask, failed_entry
from .worker import WorkerConfig, WorkerState

log = logging.getLogger("scenecls")

TICK = 0.2  # seconds between the None results that let the driver redraw
_MAX_RESTARTS = 3  # worker deaths in a row (no video finished in between) before giving up
_DIED = (
    "the worker process died while annotating it (out of memory, or killed); run again to retry it"
)

# --- in the worker processes ---------------------------------------------------------

_state: WorkerState | None = None
_progress: Any = None  # multiprocessing queue of (task index, fraction)
_last_report = 0.0


def _die_with_parent(parent: int) -> None:
    """Linux: be killed when the driver dies, however it dies."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # it died before prctl took effect
        os._exit(1)


def _watch(stop: Any, parent: int) -> None:
    """Sets the worker's stop flag when the driver asks, or when it is gone."""
    while not stop.wait(0.2):
        if os.getppid() != parent:
            break
    if _state is not None:
        _state.stop.set()


def _init(config: WorkerConfig, stop: Any, progress: Any, parent: int) -> None:
    global _state, _progress
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's business
    _die_with_parent(parent)
    progress.cancel_join_thread()  # never wait at exit for the driver to read
    _progress = progress
    _state = WorkerState(config)
    threading.Thread(target=_watch, args=(stop, parent), daemon=True).start()


def _describe() -> dict[str, Any]:
    assert _state is not None
    return _state.describe()


def _report(index: int, fraction: float) -> None:
    global _last_report
    now = time.monotonic()
    if now - _last_report >= 0.25 and _progress is not None:
        _last_report = now
        with contextlib.suppress(Exception):
            _progress.put_nowait((index, fraction))


def _annotate(task: VideoTask) -> dict[str, Any]:
    assert _state is not None
    return _state.annotate(task, _report)


# --- in the driver -------------------------------------------------------------------


def _available_memory() -> int | None:
    """Bytes of memory available for new processes (Linux), or None."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


CORES_PER_WORKER = 2
"""CPU cores per default worker. Each worker's encoder gets its cores' threads and its
decoder and gate run beside it. Measured on 2-core machines over the sample videos
(``scripts/bench_efficiency.py``, docs/performance.md): one worker with two threads took
8.2 s where two with one thread took 9.8 s (Xeon with AMX, bf16), 21.7 s against 22.9 s
(the same CPU held to AVX2, fp32), and 85.7 s against 92.5 s (Zen 4, before batching):
a second worker costs a second model load and leaves a core idle while the other
finishes the last video, and batched encoders use two threads well."""


def default_workers(bundle: Path | None, videos: int, cuda: bool) -> int:
    """Workers for this machine: one per :data:`CORES_PER_WORKER` usable CPU cores (four
    sharing a GPU when CUDA is used), no more than memory allows for the model (about 2.5
    times its image tower plus 300 MB each) and no more than there are videos."""
    n = min(usable_cpus(), 4) if cuda else max(1, usable_cpus() // CORES_PER_WORKER)
    memory = _available_memory()
    visual = bundle / "visual.onnx" if bundle is not None else None
    if memory is not None and visual is not None and visual.is_file():
        per_worker = int(2.5 * visual.stat().st_size) + 300 * 2**20
        n = min(n, max(1, memory // per_worker))
    return max(1, min(n, videos))


class LocalEngine:
    """``workers`` processes on this machine, each with the model of ``config`` loaded
    once; ``threads`` per worker for its numerical thread pools."""

    name = "local"

    def __init__(
        self, config: WorkerConfig, workers: int, stop: threading.Event | None = None
    ) -> None:
        self.config = config
        self._interrupt = stop or threading.Event()
        self.workers = max(1, workers)
        self._ctx = mp.get_context("spawn")
        self._stop = self._ctx.Event()
        self._progress = self._ctx.Queue()
        self._pool: ProcessPoolExecutor | None = None
        self._fractions: dict[int, float] = {}
        self._stopping = False
        self._restarts = 0
        self._saved_env: dict[str, str | None] = {}

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=self._ctx,
            initializer=_init,
            initargs=(self.config, self._stop, self._progress, os.getpid()),
        )

    def start(self) -> list[dict[str, Any]]:
        """Start one worker and return what it reports (the others start as videos are
        handed out: on one machine they all run the model the same way)."""
        # spawned processes take their environment from ours when they start: give them
        # their thread counts (BLAS reads them at import, before any initializer runs)
        for k, v in self.config.env.items():
            self._saved_env.setdefault(k, os.environ.get(k))
            os.environ[k] = v
        self._pool = self._new_pool()
        future = self._pool.submit(_describe)
        while True:
            if self._interrupt.is_set():
                raise Interrupted("interrupted")
            try:
                return [future.result(timeout=TICK)]
            except TimeoutError:
                continue
            except BrokenProcessPool as e:
                raise SceneclsError(
                    "the worker process died while loading the model (out of memory?): "
                    "use fewer --workers"
                ) from e

    def run(self, tasks: Sequence[VideoTask]) -> Iterator[dict[str, Any] | None]:
        assert self._pool is not None, "start() first"
        pending = deque(tasks)
        running: dict[Future[dict[str, Any]], VideoTask] = {}
        lost: set[int] = set()  # tasks already in flight once when a worker died
        while pending or running:
            broken = False
            while pending and not self._stopping and len(running) < self.workers + 1:
                try:
                    future = self._pool.submit(_annotate, pending[0])
                except BrokenProcessPool:  # a worker died while the pool was idle
                    broken = True
                    break
                running[future] = pending.popleft()
            done, _ = wait(list(running), timeout=TICK, return_when=FIRST_COMPLETED)
            self._drain_progress()
            if self._stopping:
                pending.clear()
                for fut in list(running):
                    if fut.cancel():
                        running.pop(fut)
            if not done and not broken:
                yield None
                continue
            for fut in done:
                task = running.pop(fut)
                self._fractions.pop(task.index, None)
                try:
                    result = fut.result()
                except BrokenProcessPool:
                    broken = True
                    running[fut] = task  # handled with the others below
                    continue
                self._restarts = 0  # progress: the workers are not dying over and over
                yield result
            if broken:
                # the pool is gone, and with it every video in flight (which one killed
                # its worker is unknown): each goes round once more, then counts as failed
                for fut, task in running.items():
                    try:
                        yield fut.result(timeout=5)
                        continue
                    except Exception:
                        pass
                    if task.index in lost or self._stopping:
                        yield failed_entry(task, _DIED)
                    else:
                        lost.add(task.index)
                        pending.appendleft(task)
                running.clear()
                self._restart()

    def _restart(self) -> None:
        """A worker died and took the pool with it: start a new one for the rest."""
        self._restarts += 1
        if self._restarts > _MAX_RESTARTS:
            raise SceneclsError("worker processes keep dying (out of memory?): use fewer --workers")
        log.warning("a worker process died; its videos go round once more in new workers")
        assert self._pool is not None
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = self._new_pool()

    def _drain_progress(self) -> None:
        while True:
            try:
                index, fraction = self._progress.get_nowait()
            except Exception:  # queue.Empty, or a queue closed under us
                return
            self._fractions[index] = fraction

    def fractions(self) -> dict[int, float]:
        return dict(self._fractions)

    def stop(self) -> None:
        self._stopping = True
        self._stop.set()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        with contextlib.suppress(Exception):
            self._progress.close()
        for k, v in self._saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        self._saved_env.clear()
