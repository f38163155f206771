"""The kitchen service's history (``serve --data DIR``): what every camera saw, kept as
it goes, searchable while the service runs and after a crash.

Each analysed frame of a camera becomes one record of its current chunk (see
:mod:`scenecls.model.history_layout` for where chunks are), an embeddings store written
by :class:`~scenecls.model.store_writer.StoreWriter` with times in UNIX seconds: an
encoded frame adds its embedding as a row; a frame the change gate let through unchanged
reuses the last row (``left == right``, weight 0: the service's gate never
interpolates). Closed label segments go to the chunk's ``labels.jsonl`` and events
(alerts, expectations, sources lost and back, regions) to its ``events.jsonl``, one JSON
object a line, written through at once (a reader sees them) and synced with the store.

:class:`HistoryWriter` does all the writing on one thread behind a bounded queue: the
analysis loop only puts items in it and never waits for the disk; when the queue is full
items are dropped and counted (said once in the log, and in the status). Data is synced
at least every ``flush_seconds``, so ``kill -9`` or a power cut loses at most that. A
write error or a nearly full disk stops the history with one log line and a status flag,
while the live view and alerts go on; writing resumes by itself once there is room
again (checked every few minutes). Chunks older than ``keep_hours`` are deleted.

Reading it is :mod:`.history_search`'s; the recordings it links to, :mod:`.recordings`'.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import queue
import shutil
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from ..errors import OutputError, UsageError
from ..model.embeddings_store import FRAME_DTYPE, StoreError, read_meta
from ..model.history_layout import (
    CHUNK_SECONDS,
    EVENTS_FILE,
    LABELS_FILE,
    HistoryChunk,
    chunk_bound,
    history_chunks,
    history_dir,
    new_chunk_path,
)
from ..model.store_writer import FLUSH_SECONDS, StoreWriter
from ..video.sinks.base import MIN_FREE_BYTES, DiskWatch

log = logging.getLogger("scenecls")

QUEUE_ITEMS = 4096
"""Items (frames, segments, events) the writer may be behind before new ones are
dropped: some 30 s of four 30 fps cameras."""
RETRY_SECONDS = 300.0
"""After a write error, how often the writer looks whether it can write again."""
EXPIRE_EVERY = 60.0
"""How often chunks older than the kept hours are looked for."""
DROP_TOLD_EVERY = 600.0
"""Dropping is said in the log at most this often (seconds)."""
_BATCH = 1024


def label_line(label: str, start: float, end: float, confidence: float) -> dict[str, Any]:
    """A label segment as the history keeps it (a ``labels.jsonl`` line; UNIX s)."""
    return {"label": label, "start": round(start, 3), "end": round(end, 3),
            "confidence": round(float(confidence), 4)}  # fmt: skip


# -- writing -----------------------------------------------------------------------------


@dataclass
class _CameraLog:
    """The writer thread's state of one camera."""

    name: str
    stem: str
    writer: StoreWriter | None = None
    bound: float = 0.0  # UNIX s: the current chunk ends here
    last_row: object | None = None  # the embedding (array object) of the last row
    rows: list[np.ndarray] = field(default_factory=list)  # pending (D,) float32
    row_times: list[float] = field(default_factory=list)
    records: list[tuple[int, float, int, int, float, bool]] = field(default_factory=list)
    labels: IO[str] | None = None
    events: IO[str] | None = None
    lost_at: float | None = None
    last_time: float | None = None
    dirty: bool = False


class HistoryWriter:
    """Writes the history of ``cameras`` (name -> file stem) under ``DATA/history``.

    ``meta(name)``: the chunk ``meta.json`` object of a camera's new chunk (model facts,
    source, settings; called on the writer thread); ``dim``: the embedding width D.
    ``keep_hours``: chunks that ended longer ago are deleted (None: kept).
    ``clock``: UNIX time (tests move it); ``store_writer``: what writes a chunk's store.

    The analysis loop calls :meth:`frame`, :meth:`segment`, :meth:`event` and
    :meth:`gap`; they only queue. :meth:`status` and :attr:`error` may be read from any
    thread.
    """

    def __init__(
        self,
        data: Path,
        cameras: Mapping[str, str],
        meta: Callable[[str], dict[str, Any]],
        dim: int,
        *,
        flush_seconds: float = FLUSH_SECONDS,
        keep_hours: float | None = None,
        clock: Callable[[], float] = time.time,
        queue_items: int = QUEUE_ITEMS,
        chunk_seconds: float = CHUNK_SECONDS,
        dtype: str = "float16",
        min_free: int = MIN_FREE_BYTES,
        retry_seconds: float = RETRY_SECONDS,
        store_writer: Callable[..., StoreWriter] = StoreWriter,
    ) -> None:
        if not flush_seconds > 0:
            raise UsageError(f"--flush-seconds must be more than 0, not {flush_seconds:g}")
        self.data = Path(data)
        self.folder = history_dir(self.data)
        self._meta = meta
        self.dim = int(dim)
        self.flush_seconds = float(flush_seconds)
        self.keep = None if not keep_hours else float(keep_hours) * 3600.0
        self.keep_hours = keep_hours or None
        self.clock = clock
        self.chunk_seconds = float(chunk_seconds)
        self.dtype = dtype
        self.min_free = min_free
        self.retry_seconds = retry_seconds
        self._store_writer = store_writer
        self._cams = {name: _CameraLog(name, stem) for name, stem in cameras.items()}
        self._queue: queue.Queue[tuple[Any, ...]] = queue.Queue(maxsize=queue_items)
        self._lock = threading.Lock()
        self.dropped: dict[str, int] = dict.fromkeys(cameras, 0)
        self._drop_told = -math.inf  # when dropping was last said (monotonic s)
        self.writing = True
        self.error: str | None = None
        self._retry_at = 0.0
        self._thread = threading.Thread(target=self._run, name="scenecls-history", daemon=True)
        self._disk: DiskWatch | None = None
        self._shown: dict[str, dict[str, Any]] = {
            name: {"chunk": None, "rows": 0, "frames": 0} for name in cameras
        }
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise OutputError(
                f"--data {self.data}: cannot create {self.folder} ({e.strerror or e}): "
                "pick a writable folder"
            ) from e
        self._disk = DiskWatch(self.folder / ".probe", min_free=min_free)

    # -- the analysis side (never waits) ---------------------------------------------------

    def start(self) -> HistoryWriter:
        self.expire()
        self._thread.start()
        return self

    def _put(self, camera: str, item: tuple[Any, ...]) -> None:
        if not self.writing:
            return
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            now = time.monotonic()
            with self._lock:
                self.dropped[camera] = self.dropped.get(camera, 0) + 1
                tell = now - self._drop_told >= DROP_TOLD_EVERY
                if tell:
                    self._drop_told = now
            if tell:
                log.warning(
                    "history: the writer is behind (the disk is slow): dropping frames from "
                    "the history (counted in /api/status); the video goes on"
                )

    def frame(
        self, camera: str, time_unix: float, index: int, embedding: np.ndarray, encoded: bool
    ) -> None:
        """One analysed frame of ``camera`` at ``time_unix`` (UNIX s) with its ``(D,)``
        float32 unit ``embedding``: the encoder's (``encoded``) or the one the gate
        reused (the same array object as the frame it came from, so the row is kept once).
        The array must not be changed afterwards."""
        self._put(camera, ("frame", camera, float(time_unix), int(index), embedding, encoded))

    def segment(self, camera: str, label: str, start: float, end: float, confidence: float) -> None:
        """A closed label segment of ``camera`` (times UNIX s)."""
        self._put(
            camera, ("segment", camera, float(end), label_line(label, start, end, confidence))
        )

    def event(self, camera: str, kind: str, time_unix: float, data: Mapping[str, Any]) -> None:
        """An event of ``camera`` (``kind``: alert, source_lost, ...) at ``time_unix``;
        ``data``: its other fields (JSON-able, times already UNIX s)."""
        line = {"kind": kind, "time": round(time_unix, 3), **data}
        self._put(camera, ("event", camera, float(time_unix), line))

    # -- the writer thread -----------------------------------------------------------------

    def stop(self, timeout: float = 10.0) -> None:
        """Write what is queued, close every chunk (complete, readable), stop."""
        if not self._thread.is_alive():
            self._close_all()
            return
        while True:
            try:
                self._queue.put(("stop",), timeout=timeout)
                break
            except queue.Full:  # pragma: no cover - the writer is stuck on the disk
                log.error("history: the writer does not keep up; closing without the queue")
                break
        self._thread.join(timeout)

    def _run(self) -> None:
        next_expire = self.clock() + EXPIRE_EVERY
        next_sync = time.monotonic() + self.flush_seconds
        while True:
            try:
                items = [self._queue.get(timeout=min(0.5, self.flush_seconds / 2))]
            except queue.Empty:
                items = []
            while len(items) < _BATCH:
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            stop = False
            try:
                for item in items:
                    if item[0] == "stop":
                        stop = True
                    elif self.writing:
                        self._handle(item)
                if self.writing:
                    self._write_pending()
                    if time.monotonic() >= next_sync:
                        self.flush()
                        next_sync = time.monotonic() + self.flush_seconds
            except (OutputError, OSError, ValueError) as e:
                self._fail(e)
            except Exception as e:  # pragma: no cover - a bug: the video must go on
                log.exception("history: the writer failed")
                self._fail(e)
            if not self.writing:
                self._maybe_resume()
            if self.clock() >= next_expire:
                self.expire()
                next_expire = self.clock() + EXPIRE_EVERY
            if stop:
                break
        self._close_all()

    def _handle(self, item: tuple[Any, ...]) -> None:
        kind, camera = item[0], item[1]
        cam = self._cams.get(camera)
        if cam is None:
            return
        if kind == "frame":
            _, _, t, index, embedding, encoded = item
            if cam.writer is None or t >= cam.bound:
                self._new_chunk(cam, t)
            assert cam.writer is not None
            if encoded or embedding is not cam.last_row:
                cam.rows.append(np.asarray(embedding, np.float32).reshape(self.dim))
                cam.row_times.append(t)
                cam.last_row = embedding
            row = cam.writer.rows + len(cam.rows) - 1
            cam.records.append((index, t, row, row, 0.0, bool(encoded)))
            cam.last_time = t
            return
        _, _, t, line = item
        if cam.writer is None:
            self._new_chunk(cam, t)
        if kind == "event":
            if line["kind"] == "source_lost":
                cam.lost_at = t
            elif line["kind"] == "source_restored" and cam.lost_at is not None:
                self._write_pending_of(cam)
                assert cam.writer is not None
                cam.writer.add_gap(cam.lost_at, t)
                cam.lost_at = None
        target = cam.labels if kind == "segment" else cam.events
        if target is not None:
            target.write(json.dumps(line, ensure_ascii=False) + "\n")
            target.flush()  # readers see it now; synced with the store
            cam.dirty = True

    def _new_chunk(self, cam: _CameraLog, t: float) -> None:
        """Close ``cam``'s chunk (if any) and start one at ``t`` (UNIX s)."""
        if cam.writer is not None:
            self._close_chunk(cam, end=min(t, cam.bound))
        path = new_chunk_path(self.data, cam.stem, t)
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = {**self._meta(cam.name), "clock": "unix", "camera": cam.name, "start": t}
        cam.writer = self._store_writer(  # flushed with the jsonl files by this thread
            path, meta, self.dim, self.dtype, flush_seconds=None, option="--data"
        )
        cam.bound = chunk_bound(t, self.chunk_seconds)
        cam.last_row = None
        cam.labels = open(path / LABELS_FILE, "a", encoding="utf-8")  # noqa: SIM115
        cam.events = open(path / EVENTS_FILE, "a", encoding="utf-8")  # noqa: SIM115
        with self._lock:
            self._shown[cam.name] = {"chunk": path.name, "rows": 0, "frames": 0}
        log.info("history: camera %s: chunk %s started", cam.name, path.name)

    def _write_pending_of(self, cam: _CameraLog) -> None:
        if cam.writer is None or not cam.records:
            return
        rows = np.stack(cam.rows) if cam.rows else np.zeros((0, self.dim), np.float32)
        records = np.array(cam.records, FRAME_DTYPE)
        times = np.array(cam.row_times, np.float64)
        cam.rows, cam.row_times, cam.records = [], [], []
        cam.writer.add(rows, records, times)
        cam.dirty = True
        with self._lock:
            self._shown[cam.name] = {
                "chunk": cam.writer.path.name, "rows": cam.writer.rows,
                "frames": cam.writer.frames,
            }  # fmt: skip

    def _write_pending(self) -> None:
        if self._disk is not None:
            self._disk.check()  # a nearly full disk stops the history, not the video
        for cam in self._cams.values():
            self._write_pending_of(cam)

    def flush(self) -> None:
        """Make everything written so far durable and visible (writer thread only)."""
        for cam in self._cams.values():
            if not cam.dirty or cam.writer is None:
                continue
            cam.writer.flush()
            for f in (cam.labels, cam.events):
                if f is not None:
                    f.flush()
                    os.fsync(f.fileno())
            cam.dirty = False

    def _close_chunk(self, cam: _CameraLog, end: float | None) -> None:
        try:
            self._write_pending_of(cam)
            writer, cam.writer = cam.writer, None
            if writer is not None:
                writer.close(end)
        finally:
            for f in (cam.labels, cam.events):
                if f is not None:
                    with contextlib.suppress(OSError):
                        f.flush()
                        os.fsync(f.fileno())
                        f.close()
            cam.labels = cam.events = None
            cam.dirty = False

    def _close_all(self) -> None:
        for cam in self._cams.values():
            if cam.writer is None:
                continue
            try:
                self._close_chunk(cam, cam.last_time)
            except (OutputError, OSError, ValueError) as e:
                self._fail(e)

    def _fail(self, error: BaseException) -> None:
        """Stop writing: one log line, the status flag; what was flushed stays."""
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        message = message.split(": free some space")[0]  # (DiskWatch's advice for a run)
        first = self.writing
        self.writing = False
        self.error = message
        self._retry_at = time.monotonic() + self.retry_seconds
        for cam in self._cams.values():
            writer, cam.writer = cam.writer, None
            if writer is not None:
                writer.abandon()
            for f in (cam.labels, cam.events):
                if f is not None:
                    with contextlib.suppress(OSError):
                        f.close()
            cam.labels = cam.events = None
            cam.rows, cam.row_times, cam.records = [], [], []
            cam.last_row, cam.dirty = None, False
        with contextlib.suppress(queue.Empty):
            while True:  # what was queued is not written
                self._queue.get_nowait()
        if first:
            log.error(
                "history writing stopped: %s; the live view and alerts go on, and the "
                "history resumes by itself when there is room again",
                message,
            )

    def _maybe_resume(self) -> None:
        if time.monotonic() < self._retry_at:
            return
        self._retry_at = time.monotonic() + self.retry_seconds
        try:
            free = shutil.disk_usage(self.folder).free
        except OSError:
            return
        if free >= self.min_free:
            self.error = None
            self.writing = True
            log.warning("history writing resumed (%d MB free)", free // 2**20)

    def expire(self) -> list[Path]:
        """Delete this service's chunks that ended more than the kept hours ago (not the
        ones being written); returns them."""
        if self.keep is None:
            return []
        limit = self.clock() - self.keep
        current = {c.writer.path for c in self._cams.values() if c.writer is not None}
        gone = []
        for cam in self._cams.values():
            for chunk in history_chunks(self.data, cam.stem, chunk_seconds=self.chunk_seconds):
                if chunk.end < limit and chunk.path not in current:
                    shutil.rmtree(chunk.path, ignore_errors=True)
                    if not chunk.path.exists():
                        gone.append(chunk.path)
                        log.info(
                            "history: camera %s: chunk %s deleted (older than the kept hours)",
                            cam.name, chunk.path.name,
                        )  # fmt: skip
        return gone

    def status(self, camera: str) -> dict[str, Any]:
        """``{"writing", "error", "chunk", "rows", "frames", "dropped"}`` of ``camera``."""
        with self._lock:
            shown = dict(self._shown.get(camera, {}))
            dropped = self.dropped.get(camera, 0)
        return {"writing": self.writing, "error": self.error, **shown, "dropped": dropped}


def check_history_model(data: Path, fingerprint: str, model_id: str) -> None:
    """Refuse (:class:`UsageError`, one line naming both models) a data folder whose
    history was written by another model: its embeddings cannot be searched with this
    one's. Reads the newest chunk's ``meta.json`` of each camera."""
    newest: dict[str, HistoryChunk] = {}
    for chunk in history_chunks(data):
        newest[chunk.stem] = chunk
    for chunk in newest.values():
        try:
            meta = read_meta(chunk.path)
        except StoreError:
            continue
        theirs = meta.get("model_fingerprint")
        if theirs and theirs != fingerprint:
            bundle = meta.get("bundle")
            raise UsageError(
                f"--data {data} holds the history of model {meta.get('model')} (fingerprint "
                f"{str(theirs)[:12]}, camera {chunk.camera}), but this service runs "
                f"{model_id} (fingerprint {fingerprint[:12]}), whose embeddings cannot be "
                "compared with those: serve with that model (--model "
                f"{bundle or meta.get('model')}), or give another --data folder"
            )
