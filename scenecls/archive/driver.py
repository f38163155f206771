"""The archive driver: plan, skip what is done, hand out the rest, record what finishes.

One driver owns an output folder at a time (a lock file). It removes what an
interrupted run left in the temporary folder, expands the inputs, reads the manifest,
starts the engine (whose workers report the model as they really run it: weights,
precision, device), skips every video whose newest entry matches (same input size and
modification time, same options hash, outputs still there), and appends an entry for
each video as it finishes. Failed videos are retried on every run. A signal stops the
hand-out; videos in progress are dropped with nothing written, so the manifest only ever
lists finished videos.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..interrupts import SignalGuard, track_partial, untrack_partial
from ..video.sinks import check_writable
from .engine import Engine, identities
from .inputs import VideoInput, expand_inputs
from .job import FATAL, PARTIAL_DIR, VideoTask
from .manifest import MANIFEST_NAME, Manifest
from .options import ArchiveOptions, ModelIdentity
from .progress import ArchiveProgress
from .worker import WorkerConfig, forwarded_settings, worker_environment

log = logging.getLogger("scenecls")

LOCK_NAME = ".scenecls.lock"
ENGINES = ("local", "ray")


@dataclass
class ArchiveSummary:
    """What an archive run did. ``video_seconds``: seconds of video annotated in this
    run; ``archive_seconds``: of every done video among the inputs (skipped included)."""

    out_dir: Path
    found: int = 0
    done: int = 0
    skipped: int = 0
    failed: int = 0
    not_done: int = 0  # left when the run was stopped
    interrupted: bool = False
    stopped_by: str | None = None  # the output error that stopped the run
    video_seconds: float = 0.0
    archive_seconds: float = 0.0
    frames_analysed: int = 0  # by this run
    frames_encoded: int = 0
    wall_seconds: float = 0.0
    engine: str = ""
    workers: int = 0
    model: str = ""
    failures: list[tuple[str, str]] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """130 when stopped by a signal, 1 when a video failed or the outputs could not be
        written, else 0."""
        return 130 if self.interrupted else 1 if self.failed or self.stopped_by else 0

    @property
    def throughput(self) -> float:
        """Seconds of video annotated per second of wall time (this run)."""
        return self.video_seconds / self.wall_seconds if self.wall_seconds > 0 else 0.0

    def lines(self, max_failures: int = 10) -> list[str]:
        counts = (
            f"videos      {self.found} found: {self.done} annotated, {self.skipped} skipped "
            f"(already done), {self.failed} failed"
        )
        if self.interrupted or self.stopped_by:
            counts += f", {self.not_done} not done (stopped)"
        out = [
            counts,
            f"video time  {_span(self.video_seconds)} annotated now, "
            f"{_span(self.archive_seconds)} done in all",
            f"encoded     {self.frames_encoded} of {self.frames_analysed} analysed frames "
            f"({self.frames_encoded / max(1, self.frames_analysed):.0%}); the change gate "
            "skipped the others",
            f"speed       {self.throughput:.1f} video-s/s over {self.wall_seconds:.1f} s with "
            f"{self.workers} {self.engine} worker{'s' * (self.workers != 1)}",
        ]
        if self.model:
            out.append(f"model       {self.model}")
        for rel, error in self.failures[:max_failures]:
            out.append(f"failed      {rel}: {error}")
        if len(self.failures) > max_failures:
            out.append(
                f"failed      ... and {len(self.failures) - max_failures} more "
                '("status": "failed" in the manifest)'
            )
        if self.stopped_by:
            out.append(f"stopped     the outputs cannot be written: {self.stopped_by}")
        out.append(f"manifest    {self.out_dir / MANIFEST_NAME}")
        return out


def _span(seconds: float) -> str:
    """Seconds of video for people: ``42.0 s``, ``12.5 min`` or ``3.42 h``."""
    if seconds < 600:
        return f"{seconds:.1f} s"
    if seconds < 36_000:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


@contextlib.contextmanager
def _lock(out_dir: Path) -> Iterator[None]:
    """Hold ``out_dir``'s lock file for the run: a second annotate into the same folder
    is refused instead of mixing its outputs in."""
    path = out_dir / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise UsageError(f"--out {out_dir}: cannot write there ({e.strerror or e})") from e
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as e:
            raise UsageError(
                f"another scenecls annotate is writing to {out_dir}: wait for it to end, "
                "or choose another --out"
            ) from e
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        os.close(fd)  # releases the lock


def _prepare_out_dir(out_dir: Path) -> Path:
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"--out {out_dir}: cannot create it ({e.strerror or e})") from e
    check_writable(out_dir / MANIFEST_NAME, "--out")
    return out_dir.resolve()


def _clear_partials(out_dir: Path) -> None:
    partial = out_dir / PARTIAL_DIR
    if partial.exists():
        left = sum(1 for _ in partial.iterdir()) if partial.is_dir() else 1
        shutil.rmtree(partial, ignore_errors=True)
        if left:
            log.info("removed %d unfinished video output(s) of an interrupted run", left)


def _mirror_paths(videos: list[VideoInput], manifest: Manifest, out_dir: Path) -> list[VideoInput]:
    """Each video's output path: the one it already has in the manifest (so outputs stay
    put when the same video comes again through other inputs), else its mirrored path.
    Refuses two videos writing the same outputs."""
    owners = {
        str(e.get("file")): key
        for key, e in manifest.entries.items()
        if e.get("status") == "done" and e.get("file")
    }
    result: list[VideoInput] = []
    taken: dict[str, str] = {}
    for v in videos:
        key = str(v.path)
        previous = manifest.entries.get(key)
        rel = str(previous["file"]) if previous and previous.get("file") else v.rel
        other = taken.get(rel) or (owners.get(rel) if owners.get(rel) != key else None)
        if other is not None and other != key:
            raise UsageError(
                f"{key} and {other} would both write {out_dir / rel}.*: give the inputs "
                "from a common folder, or choose another --out"
            )
        taken[rel] = key
        result.append(VideoInput(v.path, rel))
    return result


def _is_done(
    entry: dict[str, Any] | None, st: os.stat_result, hashes: set[str], out_dir: Path
) -> bool:
    if not entry or entry.get("status") != "done":
        return False
    if entry.get("size") != st.st_size or entry.get("mtime_ns") != st.st_mtime_ns:
        return False
    if entry.get("options_hash") not in hashes:
        return False
    outputs = entry.get("outputs") or {}
    return bool(outputs) and all((out_dir / p).exists() for p in outputs.values())


def _remove_stale(previous: dict[str, Any] | None, entry: dict[str, Any], out_dir: Path) -> None:
    """Outputs of an earlier annotation of the video that the new one did not write
    (another --outputs, or the video failed this time): the folder matches the manifest."""
    if not previous:
        return
    keep = set((entry.get("outputs") or {}).values())
    for rel in (previous.get("outputs") or {}).values():
        if rel not in keep:
            stale = out_dir / rel
            with contextlib.suppress(OSError):
                shutil.rmtree(stale) if stale.is_dir() else stale.unlink()


def _describe(engine: Engine, idents: list[ModelIdentity], threads: int | None) -> str:
    ident = idents[0]
    where = {"cpu": "CPU", "cuda": "CUDA"}.get(ident.device, ident.device)
    runtime = "OpenVINO" if ident.runtime == "openvino" else "ONNX Runtime"
    text = f"{ident.model_id} on {where} ({runtime} {ident.precision})"
    if len(idents) > 1:
        text += f" and {len(idents) - 1} other configuration(s)"
    if threads:
        text += f", {threads} thread{'s' * (threads != 1)} per worker"
    return text


def _local_engine(
    options: ArchiveOptions,
    workers: int | None,
    videos: int,
    guard: SignalGuard,
    log_level: int,
) -> tuple[Engine, int]:
    from ..model.resolve import resolve_model
    from ..model.runtimes.base import cpu_threads
    from ..model.runtimes.onnx import cuda_unusable_reason
    from ..model.runtimes.select import bundle_precision_for
    from .local import LocalEngine, default_workers, usable_cpus

    # exported (or found in the cache) once here, not by every worker at the same time
    bundle = guard.call(
        resolve_model,
        options.model,
        precision=bundle_precision_for(options.precision, options.device),
    )
    cuda = options.device != "cpu" and cuda_unusable_reason() is None
    if workers is None:
        workers = default_workers(Path(bundle), videos, cuda)
    if workers < 1:
        raise UsageError(f"--workers must be at least 1, not {workers}")
    threads = (
        cpu_threads() if os.environ.get("SCENECLS_THREADS") else max(1, usable_cpus() // workers)
    )
    config = WorkerConfig(
        replace(options, model=str(bundle)),
        log_level,
        worker_environment(threads, forwarded_settings()),
    )
    return LocalEngine(config, workers, stop=guard.stop), threads


def annotate_archive(
    inputs: Sequence[str],
    options: ArchiveOptions,
    *,
    engine: str = "local",
    workers: int | None = None,
    ray_address: str | None = None,
    guard: SignalGuard | None = None,
    progress: bool = True,
    log_level: int = logging.WARNING,
) -> ArchiveSummary:
    """Annotate every video named by ``inputs`` into ``options.out_dir`` (see the module
    docstring) and return the summary. ``guard.stop`` set (a signal) stops the run:
    the summary then has ``interrupted``; nothing half-written is left."""
    guard = guard or SignalGuard()
    if engine not in ENGINES:
        raise UsageError(f"--engine must be one of {', '.join(ENGINES)}, not {engine!r}")
    if ray_address and engine != "ray":
        raise UsageError("--ray-address needs --engine ray")
    if workers is not None and workers < 1:
        raise UsageError(f"--workers must be at least 1, not {workers}")
    if engine == "ray":
        from .ray_engine import import_ray

        import_ray()  # not installed: say so before anything is written
    t0 = time.perf_counter()
    if Path(options.out_dir).exists() and not Path(options.out_dir).is_dir():
        raise UsageError(f"--out {options.out_dir} is a file: give a folder")
    videos = expand_inputs(inputs, Path(options.out_dir).resolve())  # before writing anything
    out_dir = _prepare_out_dir(options.out_dir)
    options = replace(options, out_dir=out_dir)
    summary = ArchiveSummary(out_dir=out_dir, engine=engine, found=len(videos))
    with _lock(out_dir):
        _clear_partials(out_dir)
        with Manifest(out_dir) as manifest:
            videos = _mirror_paths(videos, manifest, out_dir)
            partial = out_dir / PARTIAL_DIR
            track_partial(partial)  # a forced exit removes the videos in progress
            try:
                _run(
                    videos,
                    options,
                    engine,
                    workers,
                    ray_address,
                    guard,
                    progress,
                    log_level,
                    manifest,
                    summary,
                )
            finally:
                shutil.rmtree(partial, ignore_errors=True)
                untrack_partial(partial)
    summary.wall_seconds = time.perf_counter() - t0
    return summary


def _run(
    videos: list[VideoInput],
    options: ArchiveOptions,
    engine_name: str,
    workers: int | None,
    ray_address: str | None,
    guard: SignalGuard,
    show_progress: bool,
    log_level: int,
    manifest: Manifest,
    summary: ArchiveSummary,
) -> None:
    out_dir = options.out_dir
    threads: int | None = None
    eng: Engine
    if engine_name == "local":
        eng, threads = _local_engine(options, workers, len(videos), guard, log_level)
    else:
        from .ray_engine import RayEngine

        eng = RayEngine(
            WorkerConfig(options, log_level, forwarded_settings()),
            workers,
            ray_address,
            stop=guard.stop,
        )
    try:
        reports = eng.start()
        guard.check()
        idents = identities(reports)
        if engine_name == "ray":
            plan = getattr(eng, "plan", None)
            threads = plan.threads if plan is not None else None
        summary.workers = eng.workers
        summary.model = _describe(eng, idents, threads)
        hashes = {options.options_hash(i) for i in idents}
        todo: list[tuple[VideoInput, int]] = []
        for v in videos:
            entry = manifest.entries.get(str(v.path))
            try:
                st = os.stat(v.path)
            except OSError:
                todo.append((v, 0))  # the worker records why it cannot be read
                continue
            if _is_done(entry, st, hashes, out_dir):
                summary.skipped += 1
                summary.archive_seconds += float((entry or {}).get("duration") or 0.0)
            else:
                todo.append((v, st.st_size))
        todo.sort(key=lambda item: (-item[1], item[0].rel))  # largest first: no long tail
        tasks = [VideoTask(i, str(v.path), v.rel, size) for i, (v, size) in enumerate(todo)]
        log.info(
            "%d video(s): %d to annotate, %d already done; %s engine, %d worker(s): %s",
            len(videos),
            len(tasks),
            summary.skipped,
            engine_name,
            eng.workers,
            summary.model,
        )
        if tasks:
            _dispatch(eng, tasks, manifest, summary, guard, show_progress, out_dir)
    finally:
        eng.close()


def _dispatch(
    eng: Engine,
    tasks: list[VideoTask],
    manifest: Manifest,
    summary: ArchiveSummary,
    guard: SignalGuard,
    show_progress: bool,
    out_dir: Path,
) -> None:
    sizes = {t.index: t.size for t in tasks}
    bar = ArchiveProgress(len(tasks), sum(sizes.values()), enabled=show_progress)
    finished = 0
    bytes_done = 0
    stopping = False
    try:
        for result in eng.run(tasks):
            if guard.stop.is_set() and not stopping:
                stopping = True
                eng.stop()
            if result is not None and result.get("status") != "interrupted":
                finished += 1
                bytes_done += int(result.get("size") or 0)
                if result.pop(FATAL, False) and not stopping:
                    summary.stopped_by = str(result.get("error"))
                    stopping = True
                    eng.stop()
                _record(result, manifest, summary, out_dir)
            in_flight = sum(sizes.get(i, 0) * f for i, f in eng.fractions().items())
            bar.update(finished, summary.failed, bytes_done + in_flight, summary.video_seconds)
    finally:
        bar.close()
    if stopping or guard.stop.is_set():
        summary.interrupted = summary.stopped_by is None
        summary.not_done = len(tasks) - finished


def _record(
    entry: dict[str, Any],
    manifest: Manifest,
    summary: ArchiveSummary,
    out_dir: Path,
) -> None:
    """Append a finished video's entry and count it."""
    previous = manifest.entries.get(str(entry["input"]))
    manifest.append(entry)
    _remove_stale(previous, entry, out_dir)
    rel = str(entry.get("file"))
    if entry.get("warnings"):
        for w in entry["warnings"]:
            log.warning("%s: %s", rel, w)
    if entry.get("status") == "done":
        summary.done += 1
        summary.frames_analysed += int(entry.get("analysed") or 0)
        summary.frames_encoded += int(entry.get("encoded") or 0)
        summary.video_seconds += float(entry.get("duration") or 0.0)
        summary.archive_seconds += float(entry.get("duration") or 0.0)
    else:
        summary.failed += 1
        summary.failures.append((rel, str(entry.get("error"))))
        log.warning("%s failed: %s", rel, entry.get("error"))
