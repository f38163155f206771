"""The history part of the service's HTTP API (behind the token, like the rest): the
camera's label segments, events and recordings over a time window, search of the
history by text, by a camera's picture or by an uploaded one, the recordings with HTTP
Range, and thumbnails. The routes, their parameters and their errors are listed once,
in :data:`scenecls.serve.routes.ROUTES` (``section="history"``), which the app
registers and docs/reference/http.md renders.

Times are ISO 8601 UTC (``2026-12-02T15:04:05.123Z``); ``since``/``until``/``at`` also
take an offset. Bad values get 400 with one line saying what to send.
"""

from __future__ import annotations

import asyncio
import math
import struct
import time
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar
from urllib.parse import quote, urlencode

import cv2
import numpy as np
from aiohttp import web

from ..errors import SceneclsError
from ..utc import parse_utc, utc_iso
from .guard import ApiError, known_camera
from .history_search import Hit, row_near, search_history, stored_events, stored_labels
from .recordings import Recording
from .routes import route_defs
from .service import Service

HISTORY_WINDOW = 3 * 3600.0
"""``/api/history`` without ``since``: the last 3 hours."""
TOP = 12
TOP_MAX = 100
QUERY_MAX = 200
IMAGE_TYPES = ("image/jpeg", "image/png")
IMAGE_MAX = 8 * 2**20
"""The largest picture ``POST /api/search`` takes (bytes)."""
MAX_PIXELS = 40_000_000
_NO_HISTORY = "no history is kept: start scenecls serve with --data DIR"

T = TypeVar("T")


def _time(query: Any, key: str) -> float | None:
    raw = query.get(key)
    if raw is None or raw == "":
        return None
    try:
        return parse_utc(raw, key)
    except SceneclsError as e:
        raise ApiError(400, str(e)) from None


def picture_size(data: bytes) -> tuple[int, int] | None:
    """``(width, height)`` of a PNG or JPEG picture from its header; None when ``data``
    is neither (or the header is cut)."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR" and len(data) >= 24:
        w, h = struct.unpack(">II", data[16:24])
        return int(w), int(h)
    if data[:2] != b"\xff\xd8":
        return None
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if i + 9 > len(data):
                return None
            h, w = struct.unpack(">HH", data[i + 5 : i + 9])
            return int(w), int(h)
        i += 2 + length
    return None


def decode_picture(data: bytes) -> np.ndarray:
    """A JPEG or PNG body as an HxWx3 uint8 BGR image; :class:`ApiError`
    (400, one line) when it is not one, or too large."""
    size = picture_size(data)
    if size is None:
        raise ApiError(
            400, "the body is not a JPEG or PNG picture: send the picture's bytes as they are"
        )
    if size[0] * size[1] > MAX_PIXELS:
        raise ApiError(
            400,
            f"the picture is {size[0]} x {size[1]} pixels; at most {MAX_PIXELS // 10**6} "
            "megapixels are taken: send a smaller one",
        )
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None or image.size == 0:
        raise ApiError(
            400, "the picture cannot be decoded (damaged or cut): send a whole JPEG or PNG"
        )
    return image


class HistoryApi:
    """The handlers of the history routes for ``service``."""

    def __init__(self, service: Service) -> None:
        self.service = service

    HANDLERS = ("history", "search", "search_picture", "recordings", "recording", "thumbnail")
    """The methods that serve routes, by their name in :data:`.routes.ROUTES`."""

    def routes(self) -> list[web.RouteDef]:
        """The routes of :data:`.routes.ROUTES` that these methods serve, each to the
        method of its handler's name (:class:`.routes.RouteTableError` for a name no route
        has)."""
        return route_defs({name: getattr(self, name) for name in self.HANDLERS})

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` off the event loop (it reads files)."""
        return await asyncio.get_running_loop().run_in_executor(None, partial(fn, *args))

    def _camera(self, name: str | None, required: bool = True) -> str | None:
        return known_camera(self.service.camera_names(), name, required=required)

    def _window(self, query: Any, default: float | None) -> tuple[float, float]:
        """``(since, until)`` UNIX s of ``since``/``until``; without them: the last
        ``default`` seconds, or (None) everything."""
        until = _time(query, "until")
        since = _time(query, "since")
        if until is None:
            until = time.time() if default is not None else math.inf
        if since is None:
            since = until - default if default is not None else -math.inf
        if since > until:
            raise ApiError(
                400, f"since ({utc_iso(since)}) is after until ({utc_iso(until)}): swap them"
            )
        return since, until

    def _shown_window(self, since: float, until: float) -> tuple[str | None, str | None]:
        return (
            utc_iso(since) if math.isfinite(since) else None,
            utc_iso(until) if math.isfinite(until) else None,
        )

    # -- /api/history ----------------------------------------------------------------

    async def history(self, request: web.Request) -> web.Response:
        camera = self._camera(request.query.get("camera"))
        assert camera is not None
        since, until = self._window(request.query, HISTORY_WINDOW)
        return web.json_response(await self._run(self._history, camera, since, until))

    def _history(self, camera: str, since: float, until: float) -> dict[str, Any]:
        svc = self.service
        if svc.history is not None and svc.data is not None:
            labels = stored_labels(svc.data, svc.stems[camera], since, until)
            events = stored_events(svc.data, svc.stems[camera], since, until)
        else:
            labels = svc.memory_labels(camera, since, until)
            events = svc.memory_events(camera, since, until)
        shown = [_label_json(s, False) for s in labels]
        current = svc.open_label(camera)
        if current is not None and current["end"] >= since and current["start"] <= until:
            shown.append(_label_json(current, True))
        state = svc.history_status(camera)
        first, last = self._shown_window(since, until)
        return {
            "camera": camera,
            "since": first,
            "until": last,
            "labels": shown,
            "events": [_event_json(e) for e in events],
            "recordings": [_recording_json(r) for r in svc.recordings.list(camera, since, until)],
            "history": {
                "writing": state["writing"],
                "error": state["error"] if state["enabled"] else _NO_HISTORY,
            },
        }

    # -- /api/search -----------------------------------------------------------------

    def _scope(self, query: Any) -> tuple[list[str], float, float, int]:
        """``(cameras, since, until, top)`` of a search's query parameters."""
        if self.service.history is None:
            raise ApiError(409, f"search needs the history: {_NO_HISTORY}")
        one = self._camera(query.get("camera"), required=False)
        cameras = [one] if one is not None else self.service.camera_names()
        since, until = self._window(query, None)
        raw = query.get("top", str(TOP))
        try:
            top = int(raw)
        except ValueError:
            top = 0
        if not 1 <= top <= TOP_MAX:
            raise ApiError(400, f"top must be a whole number 1..{TOP_MAX}, not {raw[:20]!r}")
        return cameras, since, until, top

    async def search(self, request: web.Request) -> web.Response:
        q = request.query
        started = time.perf_counter()
        text, like = q.get("q"), q.get("like")
        if (text is None) == (like is None):
            raise ApiError(
                400, "give ?q=TEXT (what to look for) or ?like=CAMERA (optionally &at=ISO)"
            )
        cameras, since, until, top = self._scope(q)
        svc = self.service
        if text is not None:
            text = text.strip()
            if not text:
                raise ApiError(400, "the query text is empty: say what to look for")
            if len(text) > QUERY_MAX or not text.isprintable():
                raise ApiError(
                    400, f"the query must be printable text of at most {QUERY_MAX} characters"
                )
            try:
                vector = await self._run(svc.embed_text, text)
            except SceneclsError as e:
                raise ApiError(400, str(e)) from None
            shown = text
        else:
            camera = self._camera(like)
            assert camera is not None
            at = _time(q, "at")
            if at is None:
                found = svc.current_embedding(camera)
                if found is None:
                    raise ApiError(
                        409, f"camera {camera} has no analysed frame yet: try again in a moment"
                    )
                vector, shown = found, f"like {camera} now"
            else:
                assert svc.data is not None
                near = await self._run(row_near, svc.data, svc.stems[camera], at)
                if near is None:
                    raise ApiError(404, f"camera {camera} has no stored history near {utc_iso(at)}")
                vector, shown = near[0], f"like {camera} at {utc_iso(near[1])}"
        return web.json_response(
            await self._run(self._search, shown, vector, cameras, since, until, top, started)
        )

    async def search_picture(self, request: web.Request) -> web.Response:
        """``POST /api/search`` with a JPEG or PNG body: moments that look like it."""
        started = time.perf_counter()
        cameras, since, until, top = self._scope(request.query)
        if request.content_type not in IMAGE_TYPES:  # (the middleware refuses others)
            raise ApiError(415, "send the picture as image/jpeg or image/png")
        image = decode_picture(await request.read())
        vector = await self._run(self.service.embed_image, image)
        return web.json_response(
            await self._run(
                self._search, "like the picture", vector, cameras, since, until, top, started
            )
        )

    def _search(
        self,
        shown: str,
        vector: np.ndarray,
        cameras: list[str],
        since: float,
        until: float,
        top: int,
        started: float,
    ) -> dict[str, Any]:
        svc = self.service
        assert svc.data is not None
        stems = {c: svc.stems[c] for c in cameras}
        result = search_history(svc.data, stems, vector, since, until, top=top)
        moments = [self._moment(h) for h in result.hits]
        return {
            "query": shown,
            "moments": moments,
            "rows": result.rows,
            "took_ms": round((time.perf_counter() - started) * 1000, 1),
            **({"problems": result.problems} if result.problems else {}),
        }

    def _moment(self, hit: Hit) -> dict[str, Any]:
        """A hit with its thumbnail, the recording to play from its start, or why not."""
        recordings = self.service.recordings
        at_best, why = recordings.find(hit.camera, hit.best)
        at_start, why_start = recordings.find(hit.camera, hit.start)
        playing = at_start or at_best
        recording = None
        if playing is not None:
            t = hit.start if at_start is not None else hit.best
            recording = {
                "name": playing.name,
                "url": _recording_url(playing.name),
                "offset": round(playing.span.offset(t), 3),
                "time": utc_iso(t),  # what the offset shows
            }
        thumbnail = None
        if at_best is not None:
            thumbnail = "/api/thumbnail?" + urlencode(
                {"camera": hit.camera, "time": utc_iso(hit.best)}
            )
        return {
            "camera": hit.camera,
            "start": utc_iso(hit.start),
            "end": utc_iso(hit.end),
            "best": utc_iso(hit.best),
            "score": round(hit.score, 4),
            "thumbnail": thumbnail,
            "recording": recording,
            "why": None if at_best is not None and playing is not None else (why or why_start),
        }

    # -- recordings and thumbnails -----------------------------------------------------

    async def recordings(self, request: web.Request) -> web.Response:
        one = self._camera(request.query.get("camera"), required=False)
        cameras = [one] if one is not None else self.service.camera_names()
        since, until = self._window(request.query, None)

        def listed() -> list[dict[str, Any]]:
            found = []
            for camera in cameras:
                found.extend(self.service.recordings.list(camera, since, until))
            return [_recording_json(r) for r in found]

        return web.json_response({"recordings": await self._run(listed)})

    async def recording(self, request: web.Request) -> web.StreamResponse:
        """One recording's file, with HTTP Range; only names of recordings the service
        lists (no other file can be named)."""
        name = request.match_info["name"]
        path = self.service.recordings.path_of(name)
        if path is None:
            shown = name if len(name) <= 60 and name.isprintable() else repr(name[:57]) + "..."
            raise ApiError(404, f"no recording named {shown}: see /api/recordings")
        kind = "video/webm" if path.suffix == ".webm" else "video/mp4"
        return web.FileResponse(
            path, headers={"Content-Type": kind, "Cache-Control": "private, max-age=3600"}
        )

    async def thumbnail(self, request: web.Request) -> web.Response:
        camera = self._camera(request.query.get("camera"))
        assert camera is not None
        t = _time(request.query, "time")
        if t is None:
            raise ApiError(400, "give the time: &time=ISO, e.g. 2026-12-02T12:31:00Z")
        svc = self.service
        rec, why = await self._run(svc.recordings.find, camera, t)
        if rec is None:
            raise ApiError(404, f"no thumbnail of camera {camera} at {utc_iso(t)}: {why}")
        jpeg = await self._run(svc.thumbnails.get, rec.path, rec.span.offset(t))
        if jpeg is None:
            raise ApiError(
                404, f"the recording {rec.name} cannot be read at {utc_iso(t)} (damaged?)"
            )
        return web.Response(
            body=jpeg,
            content_type="image/jpeg",
            headers={"Cache-Control": "private, max-age=86400"},
        )


def _recording_url(name: str) -> str:
    return "/recordings/" + quote(name)


def _recording_json(rec: Recording) -> dict[str, Any]:
    return {
        "camera": rec.camera,
        "name": rec.name,
        "url": _recording_url(rec.name),
        "start": utc_iso(rec.span.start),
        "end": utc_iso(rec.span.end),
        # (offset s in the file, time it shows): one more after each gap the file skips
        "anchors": [[round(o, 3), utc_iso(w)] for o, w in rec.span.anchors],
    }


def _label_json(segment: dict[str, Any], is_open: bool) -> dict[str, Any]:
    return {
        "label": segment["label"],
        "start": utc_iso(segment["start"]),
        "end": utc_iso(segment["end"]),
        "confidence": segment["confidence"],
        "open": is_open,
    }


def _event_json(event: dict[str, Any]) -> dict[str, Any]:
    """A stored event with its times as ISO; ``moment``: where to play it from (an
    alert's mismatch start, else the event's time)."""
    shown = dict(event)
    for key in ("time", "started", "raised", "resolved"):
        if isinstance(shown.get(key), int | float):
            shown[key] = utc_iso(shown[key])
    expected = shown.get("expected")
    if isinstance(expected, dict) and isinstance(expected.get("set_at"), int | float):
        shown["expected"] = {**expected, "set_at": utc_iso(expected["set_at"])}
    shown.setdefault("id", None)
    moment = event.get("started") if event.get("kind") in ("alert", "alert_resolved") else None
    shown["moment"] = utc_iso(moment if isinstance(moment, int | float) else event["time"])
    return shown
