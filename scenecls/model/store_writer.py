"""Writing an embeddings store as it goes (format version 2: a folder; see
:mod:`.embeddings_store` for the layout and the reader).

Rows and per-frame records are appended to growing ``.npy`` files
(:mod:`.growing_npy`) and made durable and visible together at least every
``flush_seconds``: the data of every file is synced first, then the headers are
rewritten in the order rows, times, spans, frames, gaps, so that a reader, or what is
left after ``kill -9`` or a power cut, never has a frame that points at a row that is
not there. Memory stays flat however long the run: nothing is kept but the open span.
A lock (``flock`` on ``.writer.lock``) is held while the writer lives, so that a reader
can tell a store being written from one whose writer died.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import math
import os
import shutil
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import write_bytes_atomic
from ..errors import OutputError
from .embeddings_store import DTYPES, FORMAT, FRAME_DTYPE, LOCK_NAME, META_NAME, STORE_VERSION
from .growing_npy import GrowingNpy
from .vector_scan import SUMMARY_GROUP

FLUSH_SECONDS = 10.0
"""Default of ``--flush-seconds``: the most history a crash may lose."""


def _meta_bytes(meta: Mapping[str, Any]) -> bytes:
    return json.dumps(dict(meta), ensure_ascii=False, sort_keys=True, indent=1).encode("utf-8")


def prepare_store_folder(folder: Path, option: str = "--embeddings") -> Path:
    """Check that ``folder`` can become a store: its parent exists, and it is absent or an
    embeddings store (which will be replaced). Raises :class:`OutputError` in one line."""
    folder = Path(folder)
    if folder.suffix.lower() == ".npz":
        raise OutputError(
            f"{option} {folder}: the embeddings output is now a folder written as it goes "
            "(a crash loses only the last seconds): give a name without .npz, e.g. "
            f"{folder.with_suffix('.embeddings')}; .npz files of earlier versions are still read"
        )
    if not folder.parent.is_dir():
        raise OutputError(f"{option} {folder}: the folder {folder.parent} does not exist")
    is_store = folder.is_dir() and (folder / META_NAME).is_file()
    empty = folder.is_dir() and not any(folder.iterdir())
    if folder.exists() and not is_store and not empty:
        raise OutputError(
            f"{option} {folder} exists and is not an embeddings store: give a new name"
        )
    return folder


class StoreWriter:
    """Writes the store folder at ``folder`` (created; an older store there is replaced).

    ``meta``: the ``meta.json`` object (:func:`~.embeddings_store.store_meta`); ``dim``:
    the embedding width D; ``dtype``: how rows are stored (``float16`` or ``float32``).
    :meth:`add` takes ``(n, D)`` float32 unit rows of newly encoded frames and the
    ``FRAME_DTYPE`` records of the analysed frames (``left``/``right``: absolute row
    numbers); the data is flushed at least every ``flush_seconds`` (None: only when the
    caller calls :meth:`flush`, as the service's history writer does; by the clock
    ``clock``). Every write failure, a full disk included, raises :class:`OutputError`
    in one line; what was flushed before stays readable.
    """

    def __init__(
        self,
        folder: str | Path,
        meta: Mapping[str, Any],
        dim: int,
        dtype: str = "float16",
        *,
        flush_seconds: float | None = FLUSH_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        option: str = "--embeddings",
    ) -> None:
        if dtype not in DTYPES:
            raise OutputError(f"embeddings dtype must be one of {', '.join(DTYPES)}, not {dtype}")
        if flush_seconds is not None and not flush_seconds > 0:
            raise OutputError(f"--flush-seconds must be more than 0, not {flush_seconds:g}")
        self.path = prepare_store_folder(Path(folder), option)
        self.dim = int(dim)
        self.flush_seconds = math.inf if flush_seconds is None else float(flush_seconds)
        self._clock = clock
        self.meta = {**dict(meta), "format": FORMAT, "version": STORE_VERSION}
        self.meta.update(
            dtype=dtype, embed_dim=self.dim, complete=False, summary_group=SUMMARY_GROUP
        )
        self._group_sum = np.zeros(self.dim, np.float64)  # of the rows since the last summary
        self._group_rows = 0
        # spans of rows that may still own frames: row -> [start, end] (a frame owned
        # by its nearer row; the blend weight follows the embeddings, so two rows can
        # take turns); a row is final once a frame's left row is past it
        self._open: dict[int, list[float]] = {}
        self._next_span = 0  # the first row whose span is not written yet
        self._prev_owner: int | None = None
        self._last_time: float | None = None
        self._gap_since: float | None = None  # input lost at, since the last frame
        self._closed = False
        self._mutex = threading.RLock()  # add / flush / close against the flush timer
        self._failure: OutputError | None = None  # a flush on the timer that failed
        self._dirty = False
        self._lock_fd: int | None = None
        try:
            if self.path.exists():
                shutil.rmtree(self.path)
            self.path.mkdir(mode=0o777)
            self._lock_fd = os.open(self.path / LOCK_NAME, os.O_CREAT | os.O_RDWR, 0o666)
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            write_bytes_atomic(self.path / META_NAME, _meta_bytes(self.meta))
            self._rows = GrowingNpy(self.path / "embeddings.npy", dtype, (self.dim,))
            self._times = GrowingNpy(self.path / "times.npy", "<f8")
            self._spans = GrowingNpy(self.path / "spans.npy", "<f8", (2,))
            self._frames = GrowingNpy(self.path / "frames.npy", FRAME_DTYPE)
            self._gaps = GrowingNpy(self.path / "gaps.npy", "<f8", (2,))
            self._summary = GrowingNpy(self.path / "summary.npy", dtype, (self.dim,))
        except OSError as e:
            self._release_lock()
            raise self._error(e) from e
        self._files = (
            self._rows, self._summary, self._times, self._spans, self._frames, self._gaps
        )  # fmt: skip
        self._next_flush = self._clock() + self.flush_seconds
        self._stop = threading.Event()
        if flush_seconds is not None:  # (else the caller flushes)
            self._timer = threading.Thread(
                target=self._flush_on_time, name="scenecls-flush", daemon=True
            )
            self._timer.start()

    def _flush_on_time(self) -> None:
        """Flush rows that are due even when no more come (a stalled source): the bound
        of ``flush_seconds`` holds however long until the next :meth:`add`."""
        while not self._stop.wait(min(1.0, max(0.02, self.flush_seconds / 4))):
            with self._mutex:
                if self._closed or not self._dirty or self._clock() < self._next_flush:
                    continue
                try:
                    self.flush()
                except OutputError as e:
                    self._failure = e  # raised by the next add() or close()
                    return

    # -- writing ---------------------------------------------------------------------

    @property
    def rows(self) -> int:
        return self._rows.rows

    @property
    def frames(self) -> int:
        return self._frames.rows

    @property
    def last_time(self) -> float | None:
        """Time of the last analysed frame added (s), None before the first."""
        return self._last_time

    def add(self, rows: np.ndarray, records: np.ndarray, times: np.ndarray | None = None) -> None:
        """Append ``rows`` (``(n, D)`` float32 unit embeddings of newly encoded frames,
        in order) and ``records`` (``(m,)`` FRAME_DTYPE of analysed frames, time order,
        rows numbered from the store's first row). ``times``: ``(n,)`` float64 times of
        the new rows (default: the times of the ``encoded`` records, in order)."""
        if self._failure is not None:
            raise self._failure
        if self._closed:
            raise OutputError(f"{self.path}: the store is closed")
        rows = np.asarray(rows).reshape(-1, self.dim)
        records = np.asarray(records, FRAME_DTYPE).reshape(-1)
        if times is None:
            times = records["time"][records["encoded"]]
        times = np.asarray(times, np.float64).reshape(-1)
        if len(times) != len(rows):
            raise ValueError(f"{len(rows)} rows with {len(times)} times")
        with self._mutex:
            try:
                self._rows.append(rows)
                self._summarise(rows)
                self._times.append(times)
                self._spans.append(self._spans_closed_by(records))
                self._frames.append(records)
                self._dirty = True
                self.maybe_flush()
            except OSError as e:
                raise self._error(e) from e

    def _summarise(self, rows: np.ndarray) -> None:
        """Append a summary row (the unit mean) for every :data:`SUMMARY_GROUP` rows."""
        for row in rows:
            self._group_sum += row
            self._group_rows += 1
            if self._group_rows == SUMMARY_GROUP:
                norm = float(np.linalg.norm(self._group_sum)) or 1.0
                self._summary.append((self._group_sum / norm)[None, :])
                self._group_sum[:] = 0.0
                self._group_rows = 0

    def add_gap(self, lost_at: float, resumed_at: float) -> None:
        """Live input was lost from ``lost_at`` to ``resumed_at`` seconds."""
        with self._mutex:
            try:
                self._gaps.append(np.array([[lost_at, resumed_at]], np.float64))
                self._dirty = True
            except OSError as e:
                raise self._error(e) from e
        if self._last_time is not None and lost_at >= self._last_time:
            self._gap_since = float(lost_at)

    def _spans_closed_by(self, records: np.ndarray) -> np.ndarray:
        """The ``(k, 2)`` spans of the rows that ``records`` make final, in row order: a
        row stands for the frames it owns (the nearer of a frame's two rows: ``left``
        when ``weight`` < 0.5), each frame until the next one (or until the input was
        lost), as :func:`~.embeddings_store.row_spans` computes them for a whole run."""
        done: list[tuple[float, float]] = []
        owners = np.where(records["weight"] < 0.5, records["left"], records["right"])
        for owner, left, t in zip(
            owners.tolist(), records["left"].tolist(), records["time"].tolist(), strict=True
        ):
            self._end_previous_frame(t)
            self._emit_spans(left, done, t)  # no later frame belongs to rows before left
            span = self._open.setdefault(owner, [t, t])
            span[0] = min(span[0], t)
            self._prev_owner = owner
            self._last_time = t
        return np.array(done, np.float64).reshape(-1, 2)

    def _end_previous_frame(self, t: float) -> None:
        """The previous frame lasts until ``t`` (or until the input was lost)."""
        if self._prev_owner is not None:
            end = self._gap_since if self._gap_since is not None else t
            span = self._open[self._prev_owner]
            span[1] = max(span[1], end)
        self._gap_since = None

    def _emit_spans(self, limit: int, done: list[tuple[float, float]], t: float) -> None:
        """Move the spans of rows before ``limit`` to ``done`` (``(t, t)``: a row that
        owns no frame, which only stores not written by scenecls have)."""
        while self._next_span < limit:
            span = self._open.pop(self._next_span, None)
            done.append((span[0], span[1]) if span else (t, t))
            self._next_span += 1

    def maybe_flush(self) -> None:
        """Flush when ``flush_seconds`` have passed since the last flush."""
        if self._clock() >= self._next_flush:
            self.flush()

    def flush(self) -> None:
        """Make everything added so far durable and visible to readers."""
        with self._mutex:
            try:
                for f in self._files:
                    f.sync()
                for f in self._files:  # rows before the frames that point at them
                    f.commit()
            except OSError as e:
                raise self._error(e) from e
            self._dirty = False
            self._next_flush = self._clock() + self.flush_seconds

    def close(self, end_time: float | None = None) -> None:
        """Close the last row's span at ``end_time`` (default: the last frame's time),
        flush, and mark the store complete in ``meta.json``."""
        self._stop.set()
        with self._mutex:
            self._close(end_time)

    def _close(self, end_time: float | None) -> None:
        if self._closed:
            return
        if self._failure is not None:
            self.abandon()
            raise self._failure
        try:
            last = end_time if end_time is not None else (self._last_time or 0.0)
            if self._prev_owner is not None:
                end = last if self._gap_since is None else min(last, self._gap_since)
                span = self._open[self._prev_owner]
                span[1] = max(span[1], end)
            done: list[tuple[float, float]] = []
            self._emit_spans(self.rows, done, last)
            self._spans.append(np.array(done, np.float64).reshape(-1, 2))
            self.flush()
            for f in self._files:
                f.close()
            end = end_time if end_time is not None else (self._last_time or 0.0)
            self.meta.update(
                complete=True, end=float(end), rows=self.rows, frames=self._frames.rows
            )
            write_bytes_atomic(self.path / META_NAME, _meta_bytes(self.meta))
        except OSError as e:
            raise self._error(e) from e
        finally:
            self._closed = True
            self._release_lock()

    def abandon(self) -> None:
        """Stop writing without marking the store complete (after a write error): what
        was flushed stays readable."""
        self._stop.set()
        if self._closed:
            return
        self._closed = True
        for f in getattr(self, "_files", ()):
            with contextlib.suppress(OSError):
                f.close()
        self._release_lock()

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._lock_fd)
            self._lock_fd = None

    def _error(self, e: OSError) -> OutputError:
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            why = "the disk is full"
        else:
            why = e.strerror or str(e)
        return OutputError(
            f"writing the embeddings store {self.path} failed ({why}); everything up to the "
            "last flush is kept and readable"
        )
