"""The HTTP routes of ``scenecls serve``, as one table: the app registers exactly these
(:mod:`.app` and :mod:`.history_api` look each handler up by its name here), and the
documentation's HTTP reference is generated from it, so neither can drift from the
other.

A route in :data:`ROUTES` whose handler no module has, or a handler that no route names,
stops the app from being built (:class:`RouteTableError`), as does a route registered
that the table does not list (:func:`check_router`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
"""What aiohttp calls for a request."""

METHODS = ("GET", "POST", "DELETE")

ACCESS: dict[str, str] = {
    "open": "anyone, also with --token",
    "token": (
        "with --token: the header `Authorization: Bearer TOKEN` or the session cookie of "
        "`/login`; else 401 (429 with `Retry-After` after 5 wrong tokens from one address "
        "within a minute). Without --token: anyone"
    ),
    "token, else the login form": (
        "as `token`; a browser that sends neither is sent to `/login` (303) and comes "
        "back after logging in"
    ),
    "token unless --metrics-open": (
        "as `token`; open to anyone with --metrics-open (a Prometheus server without the token)"
    ),
}
"""Who may call a route: each :attr:`Route.access` is one of these keys (the value says
what it means; :mod:`.access` decides)."""

SECTIONS: dict[str, str] = {
    "page": "The page and logging in",
    "live": "Cameras, labels and expectations",
    "cameras": "Regions and teaching",
    "history": "History, search and recordings",
    "health": "Health and metrics",
}
"""The parts of the API, in the order the reference shows them."""


@dataclass(frozen=True)
class Route:
    """One route: ``method`` and ``path`` (aiohttp's pattern, ``{camera}`` a path part),
    the name of its ``handler``, who may call it (``access``, a key of :data:`ACCESS`),
    the part of the API it belongs to (``section``, a key of :data:`SECTIONS`), and for
    the reference: what it answers (``summary``), what it takes (``params``: query
    parameters, headers, the body) and its own error statuses (``errors``; those every
    route shares are in the reference's introduction). Text in backquotes is code."""

    method: str
    path: str
    handler: str
    access: str
    section: str
    summary: str
    params: str = ""
    errors: str = ""

    @property
    def request(self) -> str:
        """``METHOD /path``."""
        return f"{self.method} {self.path}"


ROUTES: tuple[Route, ...] = (
    # -- the page and logging in ------------------------------------------------------
    Route(
        "GET", "/", "page", "token, else the login form", "page",
        "The kitchen page (HTML): a card per camera with its live view, label, "
        "expectation, timeline, alerts, region and teaching buttons; the history below.",
    ),
    Route(
        "GET", "/login", "login_form", "open", "page",
        "The login form (HTML). Without --token: a redirect (303) to `/`.",
        params="`next`: the path to go back to after logging in (only a path of this server).",
    ),
    Route(
        "POST", "/login", "login", "open", "page",
        "Checks the form's `token`: right, it sets the session cookie (HttpOnly, "
        "SameSite=Strict, `Secure` over HTTPS, 30 days) and redirects (303) to `next`.",
        params="a form (`application/x-www-form-urlencoded`): `token`, `next`.",
        errors="401: wrong token (the form again); 429 with `Retry-After`: 5 wrong tries "
        "from the address within a minute; 400: not a form.",
    ),
    Route(
        "POST", "/logout", "logout", "open", "page",
        "Ends the session on the server (a copy of the cookie no longer works, also after "
        "a restart with --data), forgets the cookie and redirects (303) to `/login`.",
    ),
    # -- cameras, labels and expectations ---------------------------------------------
    Route(
        "GET", "/api/status", "status", "token", "live",
        "The service (`uptime`, `time`, `labels`, `model`) and per camera: `status`, "
        "`error`, `label`, `confidence`, `expected`, `match`, the active `alert`, "
        "`recent_alerts`, `fps`, `frames_read`, `frames_analysed`, `frames_encoded`, "
        "`encoded_share`, `dropped`, `reconnects`, `latency_p50_ms`, `latency_p95_ms`, "
        "`uptime`, `region` (null: the whole frame), `region_error`, `teaching` and "
        "`history`. With --mqtt, `mqtt` (`connected`, `connections`, `published`, "
        "`dropped`, `refused`, `errors`, `last_error`); with --webhook, `webhook` "
        "(`receiver`: scheme, host and port only; `delivered`, `failed`, `dropped`, "
        "`queued`, `last_error`).",
    ),
    Route(
        "GET", "/api/segments", "segments", "token", "live",
        "The camera's label segments that end after `since`, the open one last "
        '(`"open": true`); the reply\'s `now` is the next `since`.',
        params="`camera` (required); `since`: seconds on the service clock (default 0).",
        errors="400: no camera, or `since` is not a number; 404: unknown camera.",
    ),
    Route(
        "POST", "/api/expect", "expect", "token", "live",
        "Sets the label that should be at the camera; a mismatch that lasts --alert-after "
        'seconds raises one alert. The reply: `{"camera", "expected"}`.',
        params='JSON `{"camera": NAME, "label": LABEL, "order": ID}`; `order` is optional: '
        "printable text or a whole number, at most 200 characters.",
        errors="400: not that JSON, or a bad `order`; 404: unknown camera; 422: a label "
        "outside the set (the reply lists the allowed ones).",
    ),
    Route(
        "DELETE", "/api/expect", "clear", "token", "live",
        "Clears the camera's expectation (an active alert is resolved). The reply: "
        '`{"camera", "cleared"}`.',
        params="`camera` (required); no body, but `Content-Type: application/json`.",
        errors="400: no camera; 404: unknown camera.",
    ),
    Route(
        "GET", "/api/events", "events", "token", "live",
        "Server-sent events (`text/event-stream`), each with `id`, `type`, `time` and "
        "`camera`: `segment`, `expectation_set`, `expectation_cleared`, `alert`, "
        "`alert_resolved`, `source_lost`, `source_restored`, `region_changed`, `taught`. "
        "A comment every 15 s keeps the connection alive.",
        params="header `Last-Event-ID`: replays the recent events after that id.",
    ),
    Route(
        "GET", "/stream/{camera}", "mjpeg", "token", "live",
        "The annotated live view as MJPEG (`multipart/x-mixed-replace`), at most 15 "
        "frames/s: `/stream/NAME.mjpg`.",
        errors="404: unknown camera.",
    ),
    Route(
        "GET", "/snapshot/{camera}", "snapshot", "token", "live",
        "The camera's newest annotated frame as one JPEG: `/snapshot/NAME.jpg`.",
        errors="404: unknown camera; 503: no frame yet.",
    ),
    # -- regions and teaching ---------------------------------------------------------
    Route(
        "POST", "/api/cameras/{camera}/region", "region", "token", "cameras",
        "Sets the camera's region of interest (only that part of the frame is "
        "classified), or clears it. The reply: `{\"camera\", \"region\", \"saved\"}` "
        "(`saved`: written to --data; null without it).",
        params='JSON `{"x": X, "y": Y, "w": W, "h": H}` in fractions of the frame (0..1), '
        'or `{"region": null}` to clear it.',
        errors="400: anything else (NaN, strings, pixels, a region outside the frame); "
        "404: unknown camera.",
    ),
    Route(
        "GET", "/api/cameras/{camera}/examples", "examples", "token", "cameras",
        "The camera's examples (`examples`, `per_label`, `base_examples`, `last`), the "
        "classifier in use (`classifier`, cross-validated `accuracy`, text-only "
        "`zero_shot`, `few_examples`, `warnings`), `training`, `trainings`, `trained_at`, "
        "`seconds`, `error` (the last run's) and `saved`.",
        errors="404: unknown camera.",
    ),
    Route(
        "POST", "/api/cameras/{camera}/examples", "add_example", "token", "cameras",
        "The camera's current analysed frame becomes an example of LABEL; the camera is "
        "taught again in the background. The reply: as `GET`, plus `added`.",
        params='JSON `{"label": LABEL}`, one of the service\'s labels.',
        errors="400: not that JSON, or an unknown label; 404: unknown camera; 409: no "
        "frame analysed yet.",
    ),
    Route(
        "POST", "/api/cameras/{camera}/examples/undo", "undo_example", "token", "cameras",
        "Removes the camera's newest example; the camera is taught again. The reply: as "
        "`GET`, plus `removed`.",
        params="no body, or `{}`; `Content-Type: application/json` either way.",
        errors="404: unknown camera; 409: no example to undo.",
    ),
    # -- history, search and recordings (with --data) ---------------------------------
    Route(
        "GET", "/api/history", "history", "token", "history",
        "The camera's `labels` (closed segments, then the open one with "
        '`"open": true`), `events` (each with its `moment`: an alert\'s start, else the '
        "event's time), `recordings` and `history` (`writing`, `error`).",
        params="`camera` (required); `since`, `until`: ISO 8601 times (default: the last "
        "3 hours).",
        errors="400: no camera, a bad time, `since` after `until`; 404: unknown camera.",
    ),
    Route(
        "GET", "/api/search", "search", "token", "history",
        "Moments of the history, best first: `query`, `rows` (stored rows scored), "
        "`took_ms` and `moments` (`camera`, `start`, `end`, `best`, `score`, `thumbnail`, "
        "`recording`, `why`).",
        params="`q=TEXT` (free text), or `like=CAMERA` (its picture now) with `at=TIME` "
        "(its stored frame nearest that time); `camera` (default: all), `since`, `until`, "
        "`top` (1 to 100, default 12).",
        errors="400: both or neither of `q` and `like`, empty or long text, a bad `top`; "
        "404: no stored frame near `at`; 409: no --data, or `like` before the camera's "
        "first frame.",
    ),
    Route(
        "POST", "/api/search", "search_picture", "token", "history",
        "Moments that look like a picture, as `GET /api/search` answers.",
        params="the picture's bytes, `Content-Type: image/jpeg` or `image/png`, at most "
        "8 MiB; the query parameters of `GET /api/search` but `q`, `like` and `at`.",
        errors="400: not a JPEG or PNG, or over 40 megapixels; 409: no --data; 413: over "
        "8 MiB; 415: another Content-Type.",
    ),
    Route(
        "GET", "/api/recordings", "recordings", "token", "history",
        "The closed recordings: `camera`, `name`, `url`, `start`, `end`, `anchors` "
        "(`[offset in the file, time]` pairs: one more after each gap the file skips).",
        params="`camera` (default: all), `since`, `until`.",
        errors="400: a bad time; 404: unknown camera.",
    ),
    Route(
        "GET", "/recordings/{name}", "recording", "token", "history",
        "One recording (`video/webm` or `video/mp4`), with HTTP Range (206; 416 past the "
        "end), so a browser can seek. Only the names `/api/recordings` lists are served.",
        errors="404: no such recording.",
    ),
    Route(
        "GET", "/api/thumbnail", "thumbnail", "token", "history",
        "A 320-pixel-wide JPEG of the camera's recording at `time`.",
        params="`camera`, `time` (both required).",
        errors="400: no camera or time; 404: unknown camera, or no recording then (the "
        "reply says why).",
    ),
    # -- health and metrics -----------------------------------------------------------
    Route(
        "GET", "/healthz", "health", "open", "health",
        'Whether the analysis loop runs: 200 `{"status": "ok"}`, or 503 '
        '`{"status": "stopped"}`; nothing else. Answered whatever the `Host`, for health '
        "checkers.",
    ),
    Route(
        "GET", "/metrics", "metrics", "token unless --metrics-open", "health",
        "Prometheus text exposition: per camera frames per second, frames read, analysed, "
        "encoded and dropped, reconnects, alerts, whether its source is up and an alert "
        "active, capture-to-label latency; the uptime; with --mqtt and --webhook, their "
        "health.",
    ),
)  # fmt: skip
"""Every route of the service, in the order of the reference."""


class RouteTableError(RuntimeError):
    """The routes registered and :data:`ROUTES` differ: a bug, found when the app is
    built."""


def route_defs(
    handlers: Mapping[str, Handler], routes: Iterable[Route] = ROUTES
) -> list[web.RouteDef]:
    """The aiohttp routes of the table's entries whose handler is in ``handlers`` (a
    module's handlers by name); a ``GET`` also answers ``HEAD``. Raises
    :class:`RouteTableError` when one of ``handlers`` is named by no route."""
    table = list(routes)
    named = {r.handler for r in table}
    unused = sorted(set(handlers) - named)
    if unused:
        raise RouteTableError(
            f"handlers {', '.join(unused)} serve no route: add them to ROUTES in {__name__}"
        )
    return [
        web.route(r.method, r.path, handlers[r.handler]) for r in table if r.handler in handlers
    ]


def registered(router: web.UrlDispatcher) -> set[tuple[str, str]]:
    """``(method, path)`` of every route of ``router``, but the ``HEAD`` that aiohttp adds
    to each ``GET``."""
    found = set()
    for route in router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("path") or info.get("formatter") or ""
        found.add((route.method, path))
    heads = {("HEAD", path) for method, path in found if method == "GET"}
    return found - heads


def check_router(router: web.UrlDispatcher, routes: Iterable[Route] = ROUTES) -> None:
    """Raise :class:`RouteTableError` unless ``router`` has exactly the routes of the
    table: a route without a handler, or one registered outside the table."""
    want = {(r.method, r.path) for r in routes}
    have = registered(router)
    missing = sorted(f"{m} {p}" for m, p in want - have)
    extra = sorted(f"{m} {p}" for m, p in have - want)
    if missing:
        raise RouteTableError(
            f"routes of the table without a handler: {', '.join(missing)} (see {__name__})"
        )
    if extra:
        raise RouteTableError(
            f"routes registered outside the table: {', '.join(extra)}: add them to "
            f"ROUTES in {__name__}"
        )


def check_table(routes: Iterable[Route] = ROUTES) -> None:
    """Raise :class:`RouteTableError` when an entry is not well formed: an unknown method,
    access or section, no summary, a path that does not start with ``/``, or a
    ``(method, path)`` or handler that appears twice."""
    seen: set[tuple[str, str]] = set()
    handlers: set[str] = set()
    for r in routes:
        problems = []
        if r.method not in METHODS:
            problems.append(f"method {r.method!r} is not one of {', '.join(METHODS)}")
        if not r.path.startswith("/"):
            problems.append("the path must start with /")
        if r.access not in ACCESS:
            problems.append(f"access {r.access!r} is not one of ACCESS")
        if r.section not in SECTIONS:
            problems.append(f"section {r.section!r} is not one of SECTIONS")
        if not r.summary.strip() or not r.handler:
            problems.append("it needs a handler and a summary")
        if (r.method, r.path) in seen or r.handler in handlers:
            problems.append("it is in the table twice (its path or its handler)")
        seen.add((r.method, r.path))
        handlers.add(r.handler)
        if problems:
            raise RouteTableError(f"{r.request}: {'; '.join(problems)}")
