"""The embeddings output: every encoded frame's embedding, kept for search and relabelling.

During the run the rows and the per-frame records go to two hidden spill files beside
the output (so memory stays flat on runs of any length); :meth:`EmbeddingsSink.finish`
writes the ``.npz`` file from them atomically (also after an error or Ctrl-C: the file
then holds the frames analysed so far) and removes them. The format is described in
:mod:`scenecls.model.embeddings_store`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np

from ...errors import OutputError, UsageError
from ...interrupts import track_partial, untrack_partial
from ...model.embeddings_store import (
    DTYPES,
    FRAME_DTYPE,
    SUFFIX,
    row_spans,
    store_meta,
    write_embeddings,
)
from ...types import Segment
from .base import DiskWatch, EmbeddingBatch, RunInfo, Sink, check_writable

_READ_ROWS = 8192


class EmbeddingsSink(Sink):
    """Writes the run's embeddings file at ``path`` (``.npz``), rows stored as ``dtype``
    (``float16``, the default: half the size, cosine to the float32 rows >= 0.9999; or
    ``float32``: relabelling then reproduces the run's outputs bit for bit)."""

    def __init__(self, path: str | Path, dtype: str = "float16", option: str = "--embeddings"):
        if dtype not in DTYPES:
            raise UsageError(f"--embeddings-dtype must be one of {', '.join(DTYPES)}, not {dtype}")
        self.path = check_writable(Path(path), option)
        if self.path.suffix.lower() != SUFFIX:
            raise UsageError(f"{option} {path}: use a file name ending in {SUFFIX}")
        self.dtype = np.dtype(dtype)
        self._info: RunInfo | None = None
        self._rows_file: BinaryIO | None = None
        self._frames_file: BinaryIO | None = None
        self._spills: list[Path] = []
        self._rows = 0
        self._frames = 0
        self._dim = 0
        self._last_row = -1
        self._last_time = 0.0
        self._gaps: list[tuple[float, float]] = []
        self._disk = DiskWatch(self.path)

    def start(self, info: RunInfo) -> None:
        self._info = info
        self._dim = int(info.model.get("embed_dim") or 0)
        self._rows = self._frames = 0
        self._last_row = -1
        self._gaps = []
        stem = f".{self.path.name}.{os.getpid()}"
        self._spills = [self.path.with_name(f"{stem}.rows.partial")]
        self._spills.append(self.path.with_name(f"{stem}.frames.partial"))
        for spill in self._spills:
            track_partial(spill)
        try:
            self._rows_file = open(self._spills[0], "wb")  # noqa: SIM115 - closed in finish
            self._frames_file = open(self._spills[1], "wb")  # noqa: SIM115
        except OSError as e:
            self._drop_spills()
            raise OutputError(f"cannot write beside {self.path}: {e.strerror or e}") from e

    def on_embeddings(self, batch: EmbeddingBatch) -> None:
        if self._rows_file is None or self._frames_file is None:
            return
        n = len(batch.frames)
        if n == 0:
            return
        embs = np.asarray(batch.embeddings)
        self._dim = self._dim or int(embs.shape[1])
        encoded = np.asarray(batch.encoded, bool)
        mine = np.flatnonzero(encoded)
        row_of = np.full(n + 1, self._last_row, np.int64)  # index -1: the row before
        row_of[mine] = self._rows + np.arange(len(mine))
        prov = batch.provenance
        if self._last_row < 0 and (
            (prov.left < 0).any() or (prov.right < 0).any()
        ):  # pragma: no cover - the gates always encode first
            raise RuntimeError("an embedding refers to a frame encoded before the run")
        record = np.zeros(n, FRAME_DTYPE)
        record["index"] = [f.index for f in batch.frames]
        record["time"] = [f.timestamp for f in batch.frames]
        record["left"] = row_of[prov.left]
        record["right"] = row_of[prov.right]
        record["weight"] = prov.weight
        record["encoded"] = encoded
        self._disk.check()
        try:
            self._rows_file.write(np.ascontiguousarray(embs[mine], self.dtype).tobytes())
            self._frames_file.write(record.tobytes())
        except OSError as e:
            self._close_spills()
            self._drop_spills()
            raise OutputError(f"writing {self.path} failed: {e.strerror or e}") from e
        self._rows += len(mine)
        self._frames += n
        if len(mine):
            self._last_row = self._rows - 1
        self._last_time = float(record["time"][-1])

    def on_gap(self, lost_at: float, resumed_at: float) -> None:
        self._gaps.append((lost_at, resumed_at))

    def finish(self, segments: Sequence[Segment]) -> None:
        if self._rows_file is None or self._info is None:
            return
        self._close_spills()
        try:
            end = segments[-1].end if segments else self._last_time
            frames = np.fromfile(self._spills[1], FRAME_DTYPE, count=self._frames)
            gaps = np.array(self._gaps, np.float64).reshape(-1, 2)
            info = self._info
            source = info.source
            input_path = os.path.abspath(source) if os.path.isfile(source) else None
            meta = store_meta(
                model=dict(info.model) | {"embed_dim": self._dim},
                source=source,
                input_path=input_path,
                dtype=self.dtype.name,
                end_time=end,
                settings=info.settings,
                extra={
                    "live": info.live,
                    "fps": info.fps,
                    "size": list(info.size) if info.size else None,
                    "frames": int(self._frames),
                    "rows": int(self._rows),
                },
            )
            write_embeddings(
                self.path,
                meta,
                self._read_rows(),
                self._rows,
                self._dim,
                self.dtype.name,
                frames["time"][frames["encoded"]],
                row_spans(frames, self._rows, end, gaps),
                frames,
                gaps,
            )
        except OSError as e:
            raise OutputError(f"writing {self.path} failed: {e.strerror or e}") from e
        finally:
            self._drop_spills()

    def _read_rows(self) -> Iterator[np.ndarray]:
        with open(self._spills[0], "rb") as f:
            while True:
                block = np.fromfile(f, self.dtype, count=_READ_ROWS * max(1, self._dim))
                if not block.size:
                    return
                yield block.reshape(-1, self._dim)

    def _close_spills(self) -> None:
        for f in (self._rows_file, self._frames_file):
            if f is not None:
                with contextlib.suppress(OSError):
                    f.close()
        self._rows_file = self._frames_file = None

    def _drop_spills(self) -> None:
        for spill in self._spills:
            untrack_partial(spill)
            spill.unlink(missing_ok=True)
        self._spills = []
