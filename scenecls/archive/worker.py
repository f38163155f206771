"""One archive worker: the model loaded once, then one video at a time.

Both engines wrap a :class:`WorkerState`: the local engine keeps one per pool process,
the Ray engine one per actor. Loading failures are kept and reported by
:meth:`WorkerState.describe` instead of raised, so the driver can say in one line why no
worker could start.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from dataclasses import asdict, dataclass, field
from typing import Any

from .job import ProgressCallback, VideoTask, annotate_video
from .options import ArchiveOptions, ModelIdentity

log = logging.getLogger("scenecls")

# numerical libraries that start their own thread pools: each worker gets its share
THREAD_VARIABLES = (
    "SCENECLS_THREADS",
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
)


def worker_environment(threads: int, forward: dict[str, str] | None = None) -> dict[str, str]:
    """Environment variables for a worker process: ``threads`` for every thread pool
    (ONNX Runtime, OpenVINO, BLAS) plus the ``forward``-ed settings of the driver."""
    env = dict(forward or {})
    env.update(dict.fromkeys(THREAD_VARIABLES, str(max(1, threads))))
    return env


def forwarded_settings() -> dict[str, str]:
    """The driver's scenecls and Hugging Face settings that workers must share: the cache
    folder and offline mode (only those set here)."""
    names = ("SCENECLS_HOME", "HF_HUB_OFFLINE", "HF_HOME", "HF_HUB_CACHE")
    return {n: os.environ[n] for n in names if n in os.environ}


@dataclass(frozen=True)
class WorkerConfig:
    """What a worker is started with (picklable): the run's ``options`` and the logging
    level of the ``scenecls`` logger in the worker (records go to the driver through the
    manifest entries; at DEBUG they are also printed on the worker's stderr)."""

    options: ArchiveOptions
    log_level: int = logging.WARNING
    env: dict[str, str] = field(default_factory=dict)


def configure_worker_logging(level: int) -> None:
    handler: logging.Handler
    if level <= logging.DEBUG:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter(f"scenecls[worker {os.getpid()}]: %(message)s"))
    else:
        handler = logging.NullHandler()
    log.handlers[:] = [handler]
    log.setLevel(level)
    log.propagate = False


class WorkerState:
    """Loads the model of ``config`` once; annotates videos one at a time.

    ``stop``: set it (from any thread) to end the current video early, with nothing
    written, and refuse further ones.
    """

    def __init__(self, config: WorkerConfig) -> None:
        from ..model.scene_model import load_model

        os.environ.update(config.env)
        configure_worker_logging(config.log_level)
        self.options = config.options
        self.stop = threading.Event()
        self.error: str | None = None
        self.identity: ModelIdentity | None = None
        self._current: tuple[int, float] | None = None
        self._lock = threading.Lock()
        opts = config.options
        try:
            self.model = load_model(opts.model, device=opts.device, precision=opts.precision)
            self.model.scorer(opts.labels)  # text embeddings (cached on disk); a taught set
            # from another model fails here, in one line
            self.model.release_text_encoder()  # not needed again: its memory back
            self.identity = ModelIdentity(
                model_id=self.model.bundle.model_id,
                fingerprint=self.model.bundle.fingerprint,
                precision=self.model.precision,
                device=self.model.device,
                runtime=self.model.runtime,
            )
        except Exception as e:  # reported by describe(), in one line
            self.error = " ".join(str(e).split()) or type(e).__name__

    def describe(self) -> dict[str, Any]:
        """``{"identity": {...}, "threads", "host", "pid"}``, or ``{"error": "..."}``."""
        if self.identity is None:
            return {"error": self.error or "the model did not load"}
        from ..model.runtimes.base import cpu_threads

        return {
            "identity": asdict(self.identity),
            "threads": cpu_threads(),
            "host": socket.gethostname(),
            "pid": os.getpid(),
        }

    def annotate(self, task: VideoTask, on_progress: ProgressCallback | None = None) -> dict:  # type: ignore[type-arg]
        """The manifest entry of ``task`` (see :func:`~scenecls.archive.job.annotate_video`)."""
        if self.identity is None:
            raise RuntimeError(f"this worker has no model: {self.error}")
        if self.stop.is_set():
            return {"input": task.path, "file": task.rel, "status": "interrupted"}

        def progress(index: int, fraction: float) -> None:
            with self._lock:
                self._current = (index, fraction)
            if on_progress is not None:
                on_progress(index, fraction)

        progress(task.index, 0.0)
        try:
            return annotate_video(
                self.model, self.options, self.identity, task, self.stop, progress
            )
        finally:
            with self._lock:
                self._current = None

    def progress(self) -> tuple[int, float] | None:
        """(task index, fraction done) of the video in progress, or None."""
        with self._lock:
            return self._current
