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
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np

from ..atomic import write_bytes_atomic
from ..errors import UsageError
from ..model.embeddings_store import StoreError
from ..model.runtimes.base import cpu_threads
from ..model.vector_scan import scan, top_k
from .search import clock
from .stored import Problem, StoredVideo

log = logging.getLogger("scenecls")


@dataclass(frozen=True)
class Moment:
    """A stretch of one video that matches the query: ``video`` (its name in the
    archive), ``input`` (the video's path, if known), ``start``/``end`` seconds,
    ``score`` (the peak cosine), ``best`` (time of the best-matching encoded frame, s),
    ``embeddings`` (the file it was found in)."""

    video: str
    input: str | None
    start: float
    end: float
    score: float
    best: float
    embeddings: str

    def to_json(self) -> dict[str, Any]:
        return {
            "video": self.video,
            "input": self.input,
            "start": round(self.start, 3),
            "end": round(self.end, 3),
            "score": round(self.score, 4),
            "best": round(self.best, 3),
        }


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
    files left out."""

    moments: list[Moment]
    searched: int
    rows: int
    problems: list[Problem]


def search(
    videos: Sequence[StoredVideo],
    query: np.ndarray,
    *,
    top: int = 10,
    spread: float = 0.02,
    min_gap: float = 2.0,
    problems: Sequence[Problem] = (),
    threads: int | None = None,
) -> SearchResult:
    """The ``top`` best moments for ``query`` (``(D,)`` float32 unit embedding of a text
    or an image) over ``videos``, on ``threads`` threads (default: the cores scenecls
    may use): a file each, or all on each file when there are fewer files than threads.
    A file whose rows do not match the query's size, or that turns out unreadable, is
    left out and listed in ``problems``."""
    if top < 1:
        raise UsageError(f"--top must be at least 1, not {top}")
    if spread < 0 or min_gap < 0:
        raise UsageError("--spread and --min-gap must be 0 or more")
    query = np.asarray(query, np.float32).reshape(-1)
    threads = threads or cpu_threads()
    # many files: one file per thread; few: every thread on each file's rows
    across = threads if len(videos) >= threads else 1
    within = 1 if across > 1 else threads

    def one(v: StoredVideo) -> tuple[list[Moment], int, Problem | None]:
        try:
            store = v.open(frames=False)
        except StoreError as e:
            return [], 0, Problem(str(v.path), str(e))
        width = store.embeddings.shape[1]
        if width != len(query):
            return (
                [],
                0,
                Problem(str(v.path), f"rows of {width} values, the query has {len(query)}"),
            )
        try:
            scores = scan(store.embeddings, query, threads=within)
        except (OSError, ValueError) as e:  # the file changed or vanished under us
            return [], 0, Problem(str(v.path), f"cannot be read: {e}")
        spans, times = store.spans, store.times
        moments = [
            Moment(
                v.name,
                v.video,
                float(spans[first, 0]),
                float(spans[last, 1]),
                float(scores[peak]),
                float(times[peak]),
                str(v.path),
            )
            for peak, first, last in file_moments(scores, times, spans, top, spread, min_gap)
        ]
        return moments, len(scores), None

    found: list[Moment] = []
    left_out = list(problems)
    rows = searched = 0
    with ThreadPoolExecutor(across) as pool:
        for moments, count, problem in pool.map(one, videos):
            if problem is not None:
                left_out.append(problem)
                continue
            searched += 1
            rows += count
            found.extend(moments)
            found.sort(key=lambda m: (-m.score, m.video, m.start))
            del found[top:]  # memory: never more than top moments kept
    return SearchResult(found, searched, rows, left_out)


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
