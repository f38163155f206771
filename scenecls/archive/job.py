"""Annotating one video of an archive: the function every engine's workers run.

The outputs are written by the same sinks and :class:`~scenecls.video.pipeline.Pipeline` as
``scenecls run``, into a private temporary folder inside the output folder; only when
the video is complete are they synced and renamed into place. The result is the video's
manifest entry: ``done``, ``failed`` (the video's own error, one line) or, when the
worker was asked to stop, ``interrupted`` (not recorded, nothing left behind).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any

from ..errors import InputError, OutputError, SceneclsError
from ..model.scene_model import SceneModel
from ..video.pipeline import Pipeline, PipelineConfig
from ..video.sinks import (
    CaptionSink,
    EmbeddingsSink,
    JsonlSink,
    SegmentsSink,
    Sink,
    VideoSink,
)
from ..video.smoothing import Smoother
from ..video.sources import VideoFileSource
from .options import ArchiveOptions, ModelIdentity, output_name

log = logging.getLogger("scenecls")

PARTIAL_DIR = ".scenecls-partial"
"""Folder inside the output folder where videos in progress are written (removed at the
start and end of every run, so an interrupted run leaves nothing behind for long)."""

FATAL = "_fatal"
"""Key the driver pops from a result: the failure was on the outputs' side."""

ProgressCallback = Callable[[int, float], None]


@dataclass(frozen=True)
class VideoTask:
    """One video to annotate: ``index`` (the driver's number for it), ``path`` (absolute),
    ``rel`` (where its outputs go under the output folder, POSIX), ``size`` in bytes."""

    index: int
    path: str
    rel: str
    size: int


class _Collect(logging.Handler):
    """Keeps the messages of warnings logged while a video is annotated."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(Exception):
            self.messages.append(_one_line(record.getMessage()))


def _one_line(text: str, limit: int = 400) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def make_sinks(
    folder: Path,
    name: str,
    outputs: Sequence[str],
    embeddings_dtype: str = "float16",
    flush_seconds: float = 10.0,
) -> dict[str, Sink]:
    """One sink per output kind, writing the outputs of the video named ``name`` into
    ``folder`` under the names :func:`~.options.output_name` gives."""
    made: dict[str, Sink] = {}
    for kind in outputs:
        path = folder / output_name(name, kind)
        if kind == "jsonl":
            made[kind] = JsonlSink(path)
        elif kind in ("segments", "csv"):
            made[kind] = SegmentsSink(path)
        elif kind in ("srt", "vtt"):
            made[kind] = CaptionSink(path, kind)
        elif kind == "embeddings":
            made[kind] = EmbeddingsSink(path, embeddings_dtype, flush_seconds=flush_seconds)
        else:
            made[kind] = VideoSink(path)
    return made


def _fsync(path: Path) -> None:
    """Sync the file at ``path`` (a folder: its files, then itself) to the disk."""
    if path.is_dir():
        for child in path.iterdir():
            if child.is_file():
                _fsync(child)
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def annotate_video(
    model: SceneModel,
    options: ArchiveOptions,
    identity: ModelIdentity,
    task: VideoTask,
    stop: threading.Event,
    on_progress: ProgressCallback | None = None,
) -> dict[str, Any]:
    """Annotate ``task``'s video with ``model`` and return its manifest entry.

    Never raises for a problem of the video or its outputs: those make a ``failed``
    entry with the error on one line (marked :data:`FATAL` when the outputs cannot be
    written at all). ``stop`` set: returns ``{"status":
    "interrupted"}`` with nothing written. ``on_progress(task.index, fraction)`` is
    called after each encoder batch.
    """
    t0 = time.perf_counter()
    entry: dict[str, Any] = {"input": task.path, "file": task.rel}
    fatal = False
    collect = _Collect()
    log.addHandler(collect)
    partial_root = Path(options.out_dir) / PARTIAL_DIR
    work: Path | None = None
    placed: list[Path] = []
    try:
        try:
            st = os.stat(task.path)
        except OSError as e:
            raise InputError(f"cannot read {task.path}: {e.strerror or e}") from e
        entry.update(size=st.st_size, mtime=st.st_mtime, mtime_ns=st.st_mtime_ns)
        partial_root.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-", dir=partial_root))
        name = PurePosixPath(task.rel).name
        sinks = make_sinks(
            work, name, options.outputs, options.embeddings_dtype, options.flush_seconds
        )

        def progress(frames: int, total: int | None) -> None:
            if on_progress is not None and total:
                on_progress(task.index, min(1.0, frames / total))

        pipeline = Pipeline(
            model,
            options.labels,
            VideoFileSource(task.path),
            list(sinks.values()),
            smoother=Smoother(options.smoothing),
            config=PipelineConfig(
                batch_size=options.batch,
                analysis_fps=options.fps,
                overlay_top_k=options.smoothing.top_k,
                gate=options.gate,
                region=options.region,
            ),
            on_progress=progress,
        )
        stats = pipeline.run(stop)
        if stop.is_set():
            return {"input": task.path, "file": task.rel, "status": "interrupted"}
        if stats.frames_read == 0:
            raise InputError(f"no frame could be decoded from {task.path}: is it a video?")
        after = os.stat(task.path)
        if (after.st_size, after.st_mtime_ns) != (st.st_size, st.st_mtime_ns):
            raise InputError(f"{task.path} changed while it was annotated: run again")
        final_dir = Path(options.out_dir) / PurePosixPath(task.rel).parent
        final_dir.mkdir(parents=True, exist_ok=True)
        outputs: dict[str, str] = {}
        for kind in options.outputs:
            fname = output_name(name, kind)
            _fsync(work / fname)
            if (final_dir / fname).is_dir():  # a store folder of an earlier annotation
                shutil.rmtree(final_dir / fname)
            os.replace(work / fname, final_dir / fname)
            placed.append(final_dir / fname)
            outputs[kind] = (PurePosixPath(task.rel).parent / fname).as_posix()
        entry.update(
            status="done",
            error=None,
            outputs=outputs,
            frames=stats.frames_read,
            analysed=stats.frames_analysed,
            encoded=stats.frames_encoded,
            duration=round(stats.end_time, 3),
        )
        if stats.frames_skipped:
            log.warning("%d undecodable frame(s) skipped", stats.frames_skipped)
    except Exception as e:  # the video's own failure: recorded, the archive goes on
        for p in placed:  # never a partial set of new outputs
            with contextlib.suppress(OSError):
                shutil.rmtree(p) if p.is_dir() else p.unlink()
        message = str(e) if isinstance(e, SceneclsError | OSError) else f"{type(e).__name__}: {e}"
        entry.update(status="failed", error=_one_line(message), outputs={})
        # the outputs' side failed (disk full, read-only, no encoder): every other video
        # would fail the same way, so the driver stops the run
        fatal = isinstance(e, OutputError) or (
            isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS)
        )
        entry.setdefault("size", None)
        entry.setdefault("mtime", None)
        entry.setdefault("mtime_ns", None)
    finally:
        log.removeHandler(collect)
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)
    entry.update(
        model=identity.model_id,
        model_fingerprint=identity.fingerprint,
        precision=identity.precision,
        device=identity.device,
        labels_hash=options.labels_hash(),
        options_hash=options.options_hash(identity),
        seconds=round(time.perf_counter() - t0, 3),
        finished=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        worker=f"{socket.gethostname()}:{os.getpid()}",
        warnings=collect.messages,
    )
    result = _ordered(entry)
    if fatal:
        result[FATAL] = True  # for the driver only; not part of the manifest entry
    return result


_ORDER = (
    "input",
    "file",
    "size",
    "mtime",
    "mtime_ns",
    "status",
    "error",
    "model",
    "model_fingerprint",
    "precision",
    "device",
    "labels_hash",
    "options_hash",
    "outputs",
    "frames",
    "analysed",
    "encoded",
    "duration",
    "seconds",
    "finished",
    "worker",
    "warnings",
)


def failed_entry(task: VideoTask, error: str) -> dict[str, Any]:
    """The manifest entry of a video whose worker failed before it could say (a worker
    process that died, a Ray node that went away)."""
    entry = {
        "input": task.path,
        "file": task.rel,
        "size": task.size,
        "status": "failed",
        "error": _one_line(error),
        "outputs": {},
        "finished": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "warnings": [],
    }
    return _ordered(entry)


def _ordered(entry: dict[str, Any]) -> dict[str, Any]:
    """``entry`` with its keys in the manifest's documented order (missing ones None)."""
    return {k: entry.get(k) for k in _ORDER}
