"""Reading the kitchen service's history (see :mod:`.history`): the label segments and
events of a camera in a time window, the moments that match a query, the stored frame
nearest a time. Works on the data folder alone, so it sees what was flushed, whoever
wrote it, also while the service writes."""

from __future__ import annotations

import json
import logging
import math
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..archive.stored import StoredVideo
from ..model.embeddings_store import EmbeddingsFile, StoreError, open_embeddings
from ..model.history_layout import (
    HistoryChunk,
    history_chunks,
)

log = logging.getLogger("scenecls")


def _read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """The JSON objects of a ``.jsonl`` file; lines that are not one (a line cut by a
    crash) are skipped."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                try:
                    value = json.loads(line)
                except ValueError:
                    continue
                if isinstance(value, dict):
                    yield value
    except OSError:
        return


def _chunks_for_lines(chunks: list[HistoryChunk], since: float, until: float) -> list[HistoryChunk]:
    """The chunks whose ``.jsonl`` lines may fall in ``[since, until]``: a chunk's lines
    are at or after its start and before the next chunk's first frame."""
    chosen = []
    for i, chunk in enumerate(chunks):
        after = chunks[i + 1].start + 1.0 if i + 1 < len(chunks) else math.inf
        if chunk.start <= until and after >= since:
            chosen.append(chunk)
    return chosen


def stored_labels(data: Path, stem: str, since: float, until: float) -> list[dict[str, Any]]:
    """The closed label segments of camera ``stem`` that overlap ``[since, until]`` (UNIX
    s), in time order: ``{"label", "start", "end", "confidence"}`` (UNIX s)."""
    found = []
    # a segment is written when it closes: it may have started in an earlier chunk
    for chunk in _chunks_for_lines(history_chunks(data, stem), since, until):
        for line in _read_jsonl(chunk.labels):
            try:
                start, end = float(line["start"]), float(line["end"])
                row = {"label": str(line["label"]), "start": start, "end": end,
                       "confidence": float(line.get("confidence", 0.0))}  # fmt: skip
            except (KeyError, TypeError, ValueError):
                continue
            if end >= since and start <= until:
                found.append(row)
    found.sort(key=lambda s: (s["start"], s["end"]))
    return found


def stored_events(data: Path, stem: str, since: float, until: float) -> list[dict[str, Any]]:
    """The events of camera ``stem`` in ``[since, until]`` (UNIX s), in time order."""
    found = []
    for chunk in _chunks_for_lines(history_chunks(data, stem), since, until):
        for line in _read_jsonl(chunk.events):
            t = line.get("time")
            if isinstance(t, int | float) and since <= t <= until and "kind" in line:
                found.append(line)
    found.sort(key=lambda e: e["time"])
    return found


@dataclass(frozen=True)
class Hit:
    """A moment of a camera's history that matches a query: ``camera``, ``start`` and
    ``end``, ``best`` (the best-matching encoded frame's time; all UNIX s), ``score``
    (its cosine), ``chunk`` (the store it came from)."""

    camera: str
    start: float
    end: float
    best: float
    score: float
    chunk: Path


@dataclass
class HistorySearch:
    """The answer of :func:`search_history`: ``hits`` best first, ``rows`` scored,
    ``problems``: one line each about chunks left out."""

    hits: list[Hit]
    rows: int
    problems: list[str]


class _Opened:
    """Chunk stores kept open between searches (memory-mapped: the page cache holds
    them, not the heap): a chunk that is complete never changes, so a week of history is
    opened once, not at every query. One being written is opened afresh each time (it
    grows). Bounded to :data:`OPEN_CHUNKS` (the oldest opened dropped first)."""

    def __init__(self) -> None:
        self._stores: dict[Path, EmbeddingsFile] = {}
        self._lock = threading.Lock()

    def get(self, path: Path) -> EmbeddingsFile:
        here = path.exists()
        with self._lock:
            store = self._stores.get(path) if here else self._stores.pop(path, None)
        if store is not None and here:  # (a deleted chunk's file is let go at once)
            return store
        store = open_embeddings(path, frames=False)
        if store.meta.get("complete"):
            with self._lock:
                self._stores[path] = store
                while len(self._stores) > OPEN_CHUNKS:
                    self._stores.pop(next(iter(self._stores)))
        return store


OPEN_CHUNKS = 24 * 7 * 16
"""Complete chunks kept open for search: a week of 16 cameras."""

_OPENED = _Opened()


class _Chunk(StoredVideo):
    """A history chunk as :func:`scenecls.archive.moments.search` takes it, opened
    through the service's cache."""

    def open(self, *, frames: bool = True) -> EmbeddingsFile:
        return _OPENED.get(self.path) if not frames else super().open(frames=frames)


def search_history(
    data: Path,
    cameras: Mapping[str, str],
    query: np.ndarray,
    since: float,
    until: float,
    *,
    top: int = 12,
    spread: float = 0.02,
    min_gap: float = 2.0,
    threads: int | None = None,
) -> HistorySearch:
    """The ``top`` best moments for ``query`` (``(D,)`` float32 unit embedding of a text
    or a picture) in the history of ``cameras`` (name -> stem) between ``since`` and
    ``until`` (UNIX s), as ``scenecls search`` finds them
    (:func:`scenecls.archive.moments.search`: moments grow around peaks, adjacent hits
    merged, within one chunk; from a million rows on, the summary rows of every chunk
    are scanned first and only the best groups of rows exactly), only the rows in the
    window scored; on ``threads`` threads (default: the cores)."""
    from ..archive.moments import search

    query = np.asarray(query, np.float32).reshape(-1)
    chunks = [
        _Chunk(chunk.path, {"embed_dim": len(query), "dtype": "float16"}, camera, "", None)
        for camera, stem in cameras.items()
        for chunk in history_chunks(data, stem)
        if chunk.overlaps(since, until)
    ]
    result = search(
        chunks, query, top=top, spread=spread, min_gap=min_gap, threads=threads,
        window=(since, until),
    )  # fmt: skip
    hits = [
        Hit(m.video, m.start, m.end, m.best, m.score, Path(m.embeddings)) for m in result.moments
    ]
    problems = [
        p.line
        for p in result.problems
        if Path(p.path).exists()  # (not rotated meanwhile)
    ]
    return HistorySearch(hits, result.rows, problems)


def row_near(data: Path, stem: str, t: float) -> tuple[np.ndarray, float] | None:
    """The stored ``(D,)`` float32 unit embedding of camera ``stem`` nearest UNIX time
    ``t`` and its time; None when the history has no row within a chunk around it."""
    chunks = [c for c in history_chunks(data, stem) if c.start <= t + 1.0]
    for chunk in reversed(chunks[-2:]):
        try:
            store = open_embeddings(chunk.path, frames=False)
        except StoreError:
            continue
        if not store.rows:
            continue
        i = int(np.searchsorted(store.times, t))
        near = [j for j in (i - 1, i) if 0 <= j < store.rows]
        j = min(near, key=lambda k: abs(float(store.times[k]) - t))
        row = np.asarray(store.embeddings[j], np.float32)
        norm = float(np.linalg.norm(row))
        return (row / norm if norm > 0 else row), float(store.times[j])
    return None
