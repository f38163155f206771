"""Free-text and image search over stored embeddings: ranked moments of videos.

Every stored row (one per encoded frame, standing for a span of time) is scored by its
cosine with the query, a file at a time and a block of rows at a time
(:func:`~scenecls.model.vector_scan.scan`), so memory stays bounded whatever the archive
holds. A *moment* grows around a peak row: the rows of the same video on either side
that score within ``spread`` of the peak, joined across stretches of up to ``min_gap``
seconds that do not. The rows it covers, and those within ``min_gap`` of it, cannot
start another moment (a weaker peak next to a moment is part of it). Moments are ranked
by their peak, exactly: rows are taken in order of score, the best moment's peak is the
best row of the archive, and a file's moments do not depend on how many are asked for,
so each file gives its best ``top`` and the best ``top`` of those are the answer.
"""

from __future__ import annotations

import base64
import html
import logging
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np

from ..atomic import write_bytes_atomic
from ..errors import UsageError
from ..model.embeddings_store import EmbeddingsFile, StoreError
from ..model.runtimes.base import cpu_threads
from ..model.vector_scan import (
    SUMMARY_GROUP,
    coarse_scan,
    group_threshold,
    summary_scores,
    top_k,
)
from ..utc import utc_iso
from .search import clock
from .stored import Problem, StoredVideo

log = logging.getLogger("scenecls")


COARSE_FROM_ROWS = 1_000_000
"""From this many stored rows on, :func:`search` scans summary rows first (unless told
to be exact): about 0.25 s instead of 1 s per million rows on the 2-core build machine."""


@dataclass(frozen=True)
class Moment:
    """A stretch of one video that matches the query: ``video`` (its name in the
    archive), ``input`` (the video's path, if known), ``start``/``end`` seconds,
    ``score`` (the peak cosine), ``best`` (time of the best-matching encoded frame, s),
    ``embeddings`` (the store it was found in); ``unix``: the times are UNIX seconds (a
    service's history), not seconds of a video."""

    video: str
    input: str | None
    start: float
    end: float
    score: float
    best: float
    embeddings: str
    unix: bool = False

    def to_json(self) -> dict[str, Any]:
        found: dict[str, Any] = {
            "video": self.video,
            "input": self.input,
            "start": round(self.start, 3),
            "end": round(self.end, 3),
            "score": round(self.score, 4),
            "best": round(self.best, 3),
        }
        if self.unix:
            found.update(start_utc=utc_iso(self.start), end_utc=utc_iso(self.end))
            found["best_utc"] = utc_iso(self.best)
        return found


def file_moments(
    scores: np.ndarray,
    times: np.ndarray,
    spans: np.ndarray,
    top: int,
    spread: float,
    min_gap: float,
) -> list[tuple[int, int, int]]:
    """Up to ``top`` moments of one file, best first, as ``(peak, first, last)`` row
    indices. ``scores``: ``(R,)`` cosines of rows in time order; ``spans``: ``(R, 2)``
    seconds each row stands for."""
    n = len(scores)
    taken = np.zeros(n, bool)
    found: list[tuple[int, int, int]] = []
    want = min(n, max(64, 8 * top))
    while len(found) < top:
        candidates = top_k(scores, want)
        for peak in candidates:
            if taken[peak]:
                continue
            if scores[peak] == -np.inf:  # not scanned (coarse_scan): no moment here
                break
            floor = scores[peak] - spread
            first = last = int(peak)
            j = peak + 1  # grow right over rows within the spread, across short gaps
            while j < n and not taken[j] and spans[j, 0] - spans[last, 1] <= min_gap:
                if scores[j] >= floor:
                    last = j
                j += 1
            j = peak - 1
            while j >= 0 and not taken[j] and spans[first, 0] - spans[j, 1] <= min_gap:
                if scores[j] >= floor:
                    first = j
                j -= 1
            # the moment, and the rows within min_gap of it: weaker peaks next to a
            # moment are part of it, never a moment of their own
            lo = int(np.searchsorted(spans[:, 1], spans[first, 0] - min_gap, side="left"))
            hi = int(np.searchsorted(spans[:, 0], spans[last, 1] + min_gap, side="right"))
            taken[min(lo, first) : max(hi, last + 1)] = True
            found.append((int(peak), first, last))
            if len(found) == top:
                break
        if want >= n or len(found) == top:
            break
        want = min(n, want * 8)  # every candidate fell inside an earlier moment
    return found


@dataclass
class SearchResult:
    """``moments`` best first; ``searched`` videos and ``rows`` scored; ``problems``:
    files left out; ``notes``: one line each about stores read only in part (being
    written, or cut after a crash)."""

    moments: list[Moment]
    searched: int
    rows: int
    problems: list[Problem]
    notes: list[str] = field(default_factory=list)


def search(
    videos: Sequence[StoredVideo],
    query: np.ndarray,
    *,
    top: int = 10,
    spread: float = 0.02,
    min_gap: float = 2.0,
    problems: Sequence[Problem] = (),
    threads: int | None = None,
    exact: bool | None = None,
    window: tuple[float, float] | None = None,
) -> SearchResult:
    """The ``top`` best moments for ``query`` (``(D,)`` float32 unit embedding of a text
    or an image) over ``videos``, on ``threads`` threads (default: the cores scenecls
    may use): a file each, or all on each file when there are fewer files than threads.
    A file whose rows do not match the query's size, or that turns out unreadable, is
    left out and listed in ``problems``.

    ``exact``: score every row (True), or scan the stores' summary rows first and only
    the best groups of rows exactly (False: :func:`~scenecls.model.vector_scan.
    coarse_scan`); None (the default): exact below :data:`COARSE_FROM_ROWS` rows in all,
    coarse from there on (a week of a kitchen's cameras). ``window``: ``(since, until)``
    in the stores' time: only rows standing for times in it are scored."""
    if top < 1:
        raise UsageError(f"--top must be at least 1, not {top}")
    if spread < 0 or min_gap < 0:
        raise UsageError("--spread and --min-gap must be 0 or more")
    query = np.asarray(query, np.float32).reshape(-1)
    threads = threads or cpu_threads()
    if exact is None:
        exact = sum(v.approx_rows() for v in videos) < COARSE_FROM_ROWS
    # many files: one file per thread; few: every thread on each file's rows
    across = threads if len(videos) >= threads else 1
    within = 1 if across > 1 else threads

    notes: list[str] = []
    left_out = list(problems)
    opened: dict[int, tuple[EmbeddingsFile, np.ndarray | None]] = {}
    threshold: float | None = None

    def bounds(store: EmbeddingsFile) -> tuple[int, int]:
        """The rows of ``store`` in the window: ``[lo, hi)``."""
        if window is None:
            return 0, store.rows
        lo = int(np.searchsorted(store.spans[:, 1], window[0], side="left"))
        return lo, max(lo, int(np.searchsorted(store.times, window[1], side="right")))

    def open_one(v: StoredVideo) -> EmbeddingsFile | Problem:
        try:
            store = v.open(frames=False)
        except StoreError as e:
            return Problem(str(v.path), str(e))
        notes.extend(store.notes)
        width = store.embeddings.shape[1]
        if width != len(query):
            return Problem(str(v.path), f"rows of {width} values, the query has {len(query)}")
        return store

    if not exact:  # first pass: every store's summary rows; the best groups of them all

        def summarise(i: int) -> tuple[int, EmbeddingsFile | Problem, np.ndarray | None]:
            store = open_one(videos[i])
            if isinstance(store, Problem) or store.summary is None:
                return i, store, None
            group = int(store.meta.get("summary_group") or SUMMARY_GROUP)
            lo, hi = bounds(store)
            return i, store, summary_scores(store.summary, query, group, lo, hi)

        with ThreadPoolExecutor(across) as pool:
            for i, store, coarse in pool.map(summarise, range(len(videos))):
                if isinstance(store, Problem):
                    left_out.append(store)
                else:
                    opened[i] = (store, coarse)
        threshold = group_threshold(
            [c for _, c in opened.values() if c is not None], max(256, 32 * top)
        )

    def one(i: int) -> tuple[list[Moment], int, Problem | None]:
        v = videos[i]
        if not exact:
            if i not in opened:
                return [], -1, None  # left out in the first pass
            store, coarse = opened[i]
        else:
            got = open_one(v)
            if isinstance(got, Problem):
                return [], 0, got
            store, coarse = got, None
        unix = store.meta.get("clock") == "unix"
        lo, hi = bounds(store)
        if hi <= lo:
            return [], 0, None
        try:
            summary = None if exact else store.summary
            group = int(store.meta.get("summary_group") or SUMMARY_GROUP)
            scores = coarse_scan(
                store.embeddings, query, summary, group, lo=lo, hi=hi, threads=within,
                threshold=threshold, coarse=coarse,
            )  # fmt: skip
        except (OSError, ValueError) as e:  # the file changed or vanished under us
            return [], 0, Problem(str(v.path), f"cannot be read: {e}")
        if not exact and not np.isfinite(scores).any():
            return [], len(scores), None  # none of its rows is among the best groups
        spans, times = store.spans[lo:hi], store.times[lo:hi]
        moments = [
            Moment(
                v.name,
                v.video,
                float(spans[first, 0]),
                float(spans[last, 1]),
                float(scores[peak]),
                float(times[peak]),
                str(v.path),
                unix,
            )
            for peak, first, last in file_moments(scores, times, spans, top, spread, min_gap)
        ]
        return moments, len(scores), None

    found: list[Moment] = []
    rows = searched = 0
    with ThreadPoolExecutor(across) as pool:
        for moments, count, problem in pool.map(one, range(len(videos))):
            if problem is not None:
                left_out.append(problem)
                continue
            if count < 0:
                continue
            searched += 1
            rows += count
            found.extend(moments)
            found.sort(key=lambda m: (-m.score, m.video, m.start))
            del found[top:]  # memory: never more than top moments kept
    return SearchResult(found, searched, rows, left_out, sorted(notes))


def video_is_there(moment: Moment, stored: StoredVideo | None) -> bool:
    """Whether the video of ``moment`` is still where it was, unchanged in size."""
    if not moment.input or not os.path.isfile(moment.input):
        return False
    size = stored.meta.get("input_size") if stored is not None else None
    return size is None or os.path.getsize(moment.input) == size


def thumbnail_jpeg(path: str, seconds: float, width: int = 320) -> bytes | None:
    """A JPEG of the frame of the video at ``path`` nearest ``seconds``, ``width`` pixels
    wide; None when it cannot be read."""
    import cv2

    cap = cv2.VideoCapture(path)
    try:
        if not cap.isOpened():
            return None
        cap.set(cv2.CAP_PROP_POS_MSEC, max(0.0, seconds) * 1000.0)
        ok, image = cap.read()
        if not ok or image is None:
            cap.set(cv2.CAP_PROP_POS_MSEC, 0.0)
            ok, image = cap.read()
        if not ok or image is None:
            return None
        h, w = image.shape[:2]
        image = cv2.resize(
            image, (width, max(1, round(h * width / w))), interpolation=cv2.INTER_AREA
        )
        ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 80])
        return data.tobytes() if ok else None
    finally:
        cap.release()


_PLACEHOLDER = '<div class="missing">video not found<br><small>{}</small></div>'


def html_page(
    query: str,
    result: SearchResult,
    videos: Sequence[StoredVideo],
    thumb: Callable[[str, float], bytes | None] = thumbnail_jpeg,
    stop: threading.Event | None = None,
) -> str:
    """A self-contained HTML page of the moments: a thumbnail of each (from the video at
    its best frame, a placeholder when the video is gone) and a link that opens the
    video at that frame's time (a media fragment, ``#t=SECONDS``)."""
    by_file = {str(v.path): v for v in videos}
    cards = []
    for rank, m in enumerate(result.moments, 1):
        if stop is not None and stop.is_set():
            break
        stored = by_file.get(m.embeddings)
        there = video_is_there(m, stored)
        jpeg = thumb(m.input, m.best) if there and m.input else None
        if jpeg:
            src = "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")
            picture = f'<img src="{src}" alt="frame at {clock(m.best)}">'
        else:
            picture = _PLACEHOLDER.format(html.escape(m.input or m.video))
        title = html.escape(m.video)
        times = f"{clock(m.start)} - {clock(m.end)}"
        if there and m.input:
            href = Path(m.input).resolve().as_uri() + f"#t={m.best:.2f}"
            link = f'<a href="{html.escape(quote(href, safe=":/#=.%"))}">{title}</a>'
        else:
            link = title
        cards.append(
            f'<div class="hit"><div class="pic">{picture}</div><div class="txt">'
            f"<b>{rank}.</b> {link}<br>{times} &middot; best {clock(m.best)}"
            f" &middot; score {m.score:.3f}</div></div>"
        )
    skipped = "".join(f"<li>{html.escape(p.line)}</li>" for p in result.problems)
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>scenecls search: {html.escape(query)}</title><style>"
        "body{font-family:sans-serif;margin:1.5em;background:#fafafa}"
        ".hit{display:flex;gap:1em;margin:.6em 0;padding:.5em;background:#fff;"
        "border:1px solid #ddd;border-radius:6px}.pic img,.missing{width:320px}"
        ".missing{height:180px;display:flex;flex-direction:column;align-items:center;"
        "justify-content:center;background:#eee;color:#777;text-align:center}"
        "</style></head><body>"
        f"<h1>{html.escape(query)}</h1><p>{len(result.moments)} moments from "
        f"{result.searched} videos ({result.rows} stored embeddings)</p>"
        + "".join(cards)
        + (f"<h2>Left out</h2><ul>{skipped}</ul>" if skipped else "")
        + "</body></html>\n"
    )


def write_html(path: Path, text: str) -> None:
    write_bytes_atomic(Path(path), text.encode("utf-8"))
