"""The embeddings output: every encoded frame's embedding, kept for search and relabelling.

The rows and the per-frame records are written as the run goes into a store folder
(:class:`~scenecls.model.store_writer.StoreWriter`) and flushed at least every
``flush_seconds``: memory stays flat on runs of any length, a reader sees every flushed
row while the run goes on, and a crash (``kill -9``, a power cut) loses only what came
after the last flush. :meth:`EmbeddingsSink.finish` (also after an error or Ctrl-C)
closes the last row's span and marks the store complete. The format is described in
:mod:`scenecls.model.embeddings_store`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ...errors import OutputError, UsageError
from ...model.embeddings_store import DTYPES, FRAME_DTYPE, store_meta
from ...model.store_writer import FLUSH_SECONDS, StoreWriter, prepare_store_folder
from ...types import Segment
from .base import DiskWatch, EmbeddingBatch, RunInfo, Sink


class EmbeddingsSink(Sink):
    """Writes the run's embeddings store, the folder at ``path``, rows stored as
    ``dtype`` (``float16``, the default: half the size, cosine to the float32 rows >=
    0.9999; or ``float32``: relabelling then reproduces the run's outputs bit for bit),
    flushed at least every ``flush_seconds``."""

    def __init__(
        self,
        path: str | Path,
        dtype: str = "float16",
        option: str = "--embeddings",
        flush_seconds: float = FLUSH_SECONDS,
    ):
        if dtype not in DTYPES:
            raise UsageError(f"--embeddings-dtype must be one of {', '.join(DTYPES)}, not {dtype}")
        if not flush_seconds > 0:
            raise UsageError(f"--flush-seconds must be more than 0, not {flush_seconds:g}")
        try:
            self.path = prepare_store_folder(Path(path), option)
        except OutputError as e:
            raise UsageError(str(e)) from e
        self.option = option
        self.dtype = np.dtype(dtype)
        self.flush_seconds = float(flush_seconds)
        self._writer: StoreWriter | None = None
        self._rows = 0
        self._last_row = -1
        self._last_time = 0.0
        self._disk = DiskWatch(self.path)

    def start(self, info: RunInfo) -> None:
        self._rows = 0
        self._last_row = -1
        source = info.source
        input_path = os.path.abspath(source) if os.path.isfile(source) else None
        dim = int(info.model.get("embed_dim") or 0)
        meta = store_meta(
            model=dict(info.model) | {"embed_dim": dim},
            source=source,
            input_path=input_path,
            dtype=self.dtype.name,
            end_time=0.0,
            settings=info.settings,
            extra={
                "live": info.live,
                "fps": info.fps,
                "size": list(info.size) if info.size else None,
            },
        )
        self._writer = StoreWriter(
            self.path, meta, dim, self.dtype.name, flush_seconds=self.flush_seconds,
            option=self.option,
        )  # fmt: skip

    def on_embeddings(self, batch: EmbeddingBatch) -> None:
        writer = self._writer
        if writer is None:
            return
        n = len(batch.frames)
        if n == 0:
            return
        embs = np.asarray(batch.embeddings)
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
            writer.add(embs[mine], record)
        except OutputError:
            writer.abandon()
            self._writer = None
            raise
        self._rows += len(mine)
        if len(mine):
            self._last_row = self._rows - 1
        self._last_time = float(record["time"][-1])

    def on_gap(self, lost_at: float, resumed_at: float) -> None:
        if self._writer is not None:
            self._writer.add_gap(lost_at, resumed_at)

    def finish(self, segments: Sequence[Segment]) -> None:
        writer, self._writer = self._writer, None
        if writer is None:
            return
        end = segments[-1].end if segments else self._last_time
        try:
            writer.close(max(end, self._last_time))
        except OutputError:
            writer.abandon()
            raise
