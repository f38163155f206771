"""The HTTP side of ``scenecls serve`` (aiohttp): the page, the JSON API, server-sent
events, the MJPEG live view, health and Prometheus metrics.

Bad requests get a 4xx with ``{"error": "..."}`` saying what is wrong; nothing a client
sends can cause a 500. A browser's request that changes something (``POST``, ``DELETE``
under ``/api/``) from another site's page is refused (403; see
:func:`.access.cross_site`), so is one whose body is not said to be JSON (415), and any
request whose ``Host`` is not this service's (421: DNS rebinding; see :mod:`.hosts`).
Request bodies must arrive within a few seconds, and streams that nobody reads are
dropped (see :mod:`.connections`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry

from ..errors import InputError
from ..region import Region
from .access import (
    COOKIE,
    SESSION_SECONDS,
    Access,
    client_address,
    cross_site,
    login_page,
    login_redirect,
    safe_next,
    secure_request,
)
from .connections import BODY_TIMEOUT, head_done, write_or_drop
from .guard import ApiError, BadInput, check_order, known_camera, shown
from .headers import add_security_headers, page_html
from .history_api import IMAGE_MAX, IMAGE_TYPES, HistoryApi
from .hosts import HostPolicy, json_content, refused_host
from .metrics import CONTENT_TYPE, metrics_registry, prometheus_text
from .routes import Handler, check_router, route_defs
from .service import Service
from .teaching import TeachingRefused

log = logging.getLogger("scenecls")

SERVICE = web.AppKey("service", Service)
ACCESS = web.AppKey("access", Access)
METRICS = web.AppKey("metrics", CollectorRegistry)
HOSTS = web.AppKey("hosts", HostPolicy)
DRAWING = web.AppKey("drawing", ThreadPoolExecutor)
MAX_BODY = 64 * 1024
MJPEG_FPS = 15.0
SSE_KEEPALIVE = 15.0


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


@web.middleware
async def _errors(request: web.Request, handler: Any) -> web.StreamResponse:
    """Every error as JSON; HTTP errors keep their status, anything else is logged."""
    try:
        return await handler(request)
    except ApiError as e:
        return _error(e.status, str(e))
    except web.HTTPException as e:
        if e.status < 400:
            raise
        # the raw (still percent-encoded) path: a decoded one may hold line breaks
        return _error(e.status, f"{e.reason}: {request.method} {request.rel_url.raw_path}")
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except Exception:  # pragma: no cover - a bug; the client still gets JSON
        log.exception("request %s %s failed", request.method, request.path)
        return _error(500, "internal error: see the service log")


@web.middleware
async def _auth(request: web.Request, handler: Any) -> web.StreamResponse:
    """With ``--token``, every route but ``/healthz`` (and the login form) needs the
    bearer token or a session cookie (see :mod:`.access`). An address that tried too many
    wrong tokens gets 429 with ``Retry-After`` for every try until its lock-out ends."""
    access = request.app[ACCESS]
    verdict = access.check(request)
    if verdict.ok:
        return await handler(request)
    if verdict.retry_after > 0:
        seconds = str(math.ceil(verdict.retry_after))
        reply = _error(429, f"too many wrong tokens from this address: try again in {seconds} s")
        reply.headers["Retry-After"] = seconds
        return reply
    person = request.path == "/" and request.method in ("GET", "HEAD")
    if person and "Authorization" not in request.headers:
        return login_redirect(request)  # to the form
    return _error(
        401,
        "missing or wrong token: send 'Authorization: Bearer TOKEN', or log in at /login",
    )


@web.middleware
async def _same_site(request: web.Request, handler: Any) -> web.StreamResponse:
    """What a browser may have been tricked into sending is refused, with or without
    ``--token`` (see :mod:`.hosts`): a request whose ``Host`` is not this service's (DNS
    rebinding: 421); a POST or DELETE to the API from another site's page (cross-site
    request forgery: 403; scripts send no Origin and pass). (Such a change must also be
    JSON: see :func:`_request_body`.)"""
    head_done(request)  # (the connection's deadline for its first request head is off)
    host = refused_host(request, request.app[HOSTS])
    if host is not None:
        return _error(
            421,
            f"Host {shown(host)} is not this service's address: use the address it "
            "listens on, or start it with --allowed-host NAME for a name of its own",
        )
    changes = request.method not in SAFE_METHODS and request.path.startswith("/api/")
    if changes and cross_site(request):
        return _error(
            403,
            "cross-site request refused: change things from the service's own page, "
            "or from a script (which sends no Origin header)",
        )
    return await handler(request)


@web.middleware
async def _request_body(request: web.Request, handler: Any) -> web.StreamResponse:
    """The body of a request that passed :func:`_auth`, before its handler runs:

    - a POST or DELETE under ``/api/`` must say ``Content-Type: application/json`` (415
      otherwise): the types a page of another site may send without asking first
      (``text/plain``, forms) are never taken for JSON (see :mod:`.hosts`); but for
      ``POST /api/search``, which takes a picture: ``image/jpeg`` or ``image/png`` (which
      no other site's page may send without asking first either);
    - it is read whole within :data:`.connections.BODY_TIMEOUT` seconds (408 after:
      slow-loris in the body), and a ``Content-Length`` over :data:`MAX_BODY` (a
      picture: :data:`.history_api.IMAGE_MAX`) is refused before a byte of it is read
      (413); both close the connection."""
    changes = request.method not in SAFE_METHODS and request.path.startswith("/api/")
    routed = request.match_info.http_exception is None  # (else: 404 or 405 below)
    picture = routed and request.method == "POST" and request.path == "/api/search"
    limit = IMAGE_MAX if picture else MAX_BODY
    if picture and request.content_type not in IMAGE_TYPES:
        return _error(
            415,
            f"send the picture as Content-Type: image/jpeg or image/png (not "
            f"{shown(request.content_type)})",
        )
    if changes and routed and not picture and not json_content(request):
        return _error(
            415,
            f"send Content-Type: application/json (not {shown(request.content_type)}) "
            "with every POST and DELETE under /api/",
        )
    if picture:
        request = request.clone(client_max_size=IMAGE_MAX)
    if request.body_exists:
        length = request.content_length
        reply: web.Response | None = None
        if length is not None and length > limit:
            reply = _error(
                413, f"Request Entity Too Large: {length} bytes; at most {limit} are taken"
            )
        else:
            try:
                await asyncio.wait_for(request.read(), BODY_TIMEOUT)
            except asyncio.TimeoutError:
                reply = _error(
                    408,
                    f"Request Timeout: the body did not arrive within {BODY_TIMEOUT:g} s: "
                    "send it whole",
                )
            except web.RequestPayloadError:  # a broken chunked encoding, a cut body
                reply = _error(400, "the request body is malformed: send it whole, as declared")
            except web.HTTPRequestEntityTooLarge:  # a chunked body over the limit
                reply = _error(413, f"Request Entity Too Large: at most {limit} bytes are taken")
        if reply is not None:
            reply.force_close()
            return reply
    return await handler(request)


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def create_app(
    service: Service,
    token: str = "",
    *,
    metrics_open: bool = False,
    hosts: HostPolicy | None = None,
) -> web.Application:
    """The aiohttp application for ``service``; ``token`` (when not empty) is needed on
    every route but ``/healthz``, and on ``/metrics`` unless ``metrics_open``. ``hosts``:
    the ``Host`` values it answers (default: the address each connection reached, and
    the other loopback names on loopback; ``scenecls serve`` gives the policy of its
    ``--host`` and ``--allowed-host``). Sessions are signed with the key kept in the
    service's data folder (a key per process without one). Every response gets the
    security headers of :mod:`.headers`."""
    app = web.Application(
        middlewares=[_errors, _same_site, _auth, _request_body], client_max_size=MAX_BODY
    )
    app[SERVICE] = service
    app[METRICS] = metrics_registry(service)
    app[HOSTS] = hosts if hosts is not None else HostPolicy()
    app.cleanup_ctx.append(_drawing_thread)
    data = service.settings.folder if service.settings is not None else None
    app[ACCESS] = Access(token, metrics_open=metrics_open, data=data)
    app.on_response_prepare.append(add_security_headers)
    # every route of the table (.routes.ROUTES), each to the handler of its name: this
    # module's, then the history's (see .history_api); nothing else (checked)
    app.router.add_routes(route_defs(_handlers()))
    app.router.add_routes(HistoryApi(service).routes())
    check_router(app.router)
    return app


def _handlers() -> dict[str, Handler]:
    """This module's route handlers by their name in :data:`.routes.ROUTES`."""
    return {
        "login_form": _login_form,
        "login": _login,
        "logout": _logout,
        "page": _page,
        "status": _status,
        "segments": _segments,
        "expect": _expect,
        "clear": _clear,
        "region": _region,
        "examples": _examples,
        "add_example": _add_example,
        "undo_example": _undo_example,
        "events": _events,
        "health": _health,
        "metrics": _metrics,
        "mjpeg": _mjpeg,
        "snapshot": _snapshot,
    }


async def _drawing_thread(app: web.Application) -> AsyncIterator[None]:
    """One thread draws and encodes the live view's frames for every client: however many
    watch (or open the view and never read it), frames are drawn one at a time, and the
    native memory of drawing and JPEG encoding is that of one thread, not of a pool's
    every thread (which grew the service by some 35 MB under 10 clients)."""
    app[DRAWING] = ThreadPoolExecutor(max_workers=1, thread_name_prefix="scenecls-draw")
    yield
    app[DRAWING].shutdown(wait=False, cancel_futures=True)


def _camera(request: web.Request, name: str | None) -> str:
    known = known_camera(request.app[SERVICE].camera_names(), name)
    assert known is not None
    return known


def _html(text: str, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        text=text, status=status, content_type="text/html", charset="utf-8", headers=headers
    )


async def _login_form(request: web.Request) -> web.Response:
    if not request.app[ACCESS].enabled:
        return web.Response(status=303, headers={"Location": "/"})
    return _html(login_page(request.query.get("next", "/")))


async def _login(request: web.Request) -> web.Response:
    """The form's POST: right token -> the session cookie and back where the person was
    going; wrong -> the form again (401); too many wrong ones -> 429 for a while."""
    access = request.app[ACCESS]
    if not access.enabled:
        return web.Response(status=303, headers={"Location": "/"})
    client = client_address(request)
    wait = access.begin_try(client)  # counted before the body is read: no race
    if wait > 0:
        seconds = str(math.ceil(wait))
        page = login_page("/", f"too many failed logins: try again in {seconds} s")
        return _html(page, 429, {"Retry-After": seconds})
    try:
        form = await request.post()
    except ValueError as e:
        raise ApiError(400, f"send the login form (application/x-www-form-urlencoded): {e}") from e
    target = safe_next(str(form.get("next", "/")))
    if not access.bearer_ok(f"Bearer {form.get('token', '')}"):
        access.wrong_try(client, "the login form")
        return _html(login_page(target, "wrong token"), 401)
    access.right_try(client)
    reply = web.Response(status=303, headers={"Location": target})
    reply.set_cookie(
        COOKIE,
        access.session_cookie(),
        max_age=SESSION_SECONDS,
        path="/",
        httponly=True,
        samesite="Strict",
        secure=secure_request(request),
    )
    return reply


async def _logout(request: web.Request) -> web.Response:
    """The session ends on the server (its cookie no longer works, wherever a copy is) and
    the browser forgets the cookie."""
    request.app[ACCESS].end_session(request.cookies.get(COOKIE, ""))
    reply = web.Response(status=303, headers={"Location": "/login"})
    reply.del_cookie(COOKIE, path="/")
    return reply


async def _page(request: web.Request) -> web.Response:
    return web.Response(text=page_html(), content_type="text/html", charset="utf-8")


async def _status(request: web.Request) -> web.Response:
    return web.json_response(request.app[SERVICE].status())


async def _segments(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    camera = _camera(request, request.query.get("camera"))
    raw = request.query.get("since", "0")
    try:
        since = float(raw)
    except ValueError:
        since = math.nan
    if not math.isfinite(since):
        return _error(400, f"since must be a number of seconds (service clock), not {raw!r}")
    return web.json_response(service.segments(camera, since))


async def _read_json(
    request: web.Request, form: str = '{"camera": NAME, "label": LABEL, "order": ID}'
) -> Any:
    """The request body as JSON (UTF-8 unless the Content-Type names another charset);
    ``form``: what the route takes, said when the body is not JSON."""
    raw = await request.read()
    charset = request.charset or "utf-8"
    try:
        text = raw.decode(charset)
    except LookupError:
        raise ApiError(415, f"unknown charset {charset!r}: send the body as UTF-8") from None
    except ValueError:  # UnicodeDecodeError
        raise ApiError(400, f"the body is not valid {charset} text: send UTF-8 JSON") from None
    try:
        return json.loads(text)
    except RecursionError:
        raise ApiError(400, "the JSON body is nested too deeply: send a flat object") from None
    except ValueError:  # not JSON, or an integer longer than Python converts
        raise ApiError(400, f"body must be JSON: {form}") from None


async def _expect(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    body = await _read_json(request)
    if not isinstance(body, dict):
        return _error(400, 'body must be a JSON object: {"camera": NAME, "label": LABEL}')
    camera, label, order = body.get("camera"), body.get("label"), body.get("order")
    if not isinstance(camera, str) or not camera:
        return _error(400, '"camera" must be a camera name (a string)')
    camera = _camera(request, camera)
    if not isinstance(label, str) or label not in service.names:
        return _error(
            422,
            f"label {shown(label)} is not in the label set; allowed: {', '.join(service.names)}",
        )
    try:  # printable text of at most 200 characters, as over MQTT
        order = check_order(order)
    except BadInput as e:
        return _error(400, str(e))
    expected = service.expect(camera, label, order)
    return web.json_response({"camera": camera, "expected": expected})


async def _clear(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    camera = _camera(request, request.query.get("camera"))
    return web.json_response({"camera": camera, "cleared": service.clear_expectation(camera)})


REGION_FORM = '{"x": X, "y": Y, "w": W, "h": H} as fractions of the frame, or {"region": null}'


async def _region(request: web.Request) -> web.Response:
    """Set a camera's region of interest (fractions of the frame), or clear it with
    ``{"region": null}``; the reply is the camera's region as now set."""
    service = request.app[SERVICE]
    camera = _camera(request, request.match_info["camera"])
    body = await _read_json(request, REGION_FORM)
    if not isinstance(body, dict):
        return _error(400, f"body must be a JSON object: {REGION_FORM}")
    value = body["region"] if set(body) == {"region"} else body
    region: Region | None = None
    if value is not None:
        if isinstance(value, dict) and value.get("unit", "fraction") != "fraction":
            return _error(400, f"the API takes fractions of the frame: {REGION_FORM}")
        try:
            region = Region.from_json(value)
        except InputError as e:
            return _error(400, f"{e}; send {REGION_FORM}")
    loop = asyncio.get_running_loop()
    try:  # saving to --data writes a file: off the event loop
        reply = await loop.run_in_executor(None, service.set_region, camera, region)
    except InputError as e:  # it does not fit the camera's frames
        return _error(400, str(e))
    return web.json_response(reply)


EXAMPLE_FORM = '{"label": LABEL}'


async def _examples(request: web.Request) -> web.Response:
    """A camera's examples per label, its classifier's accuracy, the teaching state."""
    service = request.app[SERVICE]
    camera = _camera(request, request.match_info["camera"])
    return web.json_response(service.examples(camera))


async def _add_example(request: web.Request) -> web.Response:
    """``{"label": LABEL}``: the camera's current frame is an example of LABEL; the camera
    is taught again in the background."""
    service = request.app[SERVICE]
    camera = _camera(request, request.match_info["camera"])
    body = await _read_json(request, EXAMPLE_FORM)
    if not isinstance(body, dict) or set(body) != {"label"}:
        return _error(400, f"body must be a JSON object: {EXAMPLE_FORM}, one of the labels")
    label = body["label"]
    if not isinstance(label, str) or label not in service.names:
        return _error(
            400,
            f"label {shown(label)} is not in the label set; allowed: {', '.join(service.names)}",
        )
    loop = asyncio.get_running_loop()
    try:  # the picture and the index are written to --data: off the event loop
        reply = await loop.run_in_executor(None, service.add_example, camera, label)
    except TeachingRefused as e:
        return _error(409, str(e))
    return web.json_response(reply)


async def _undo_example(request: web.Request) -> web.Response:
    """Remove the camera's newest example; the camera is taught again."""
    service = request.app[SERVICE]
    camera = _camera(request, request.match_info["camera"])
    raw = await request.read()
    if raw.strip():
        body = await _read_json(request, "nothing, or {}")
        if not isinstance(body, dict) or body:
            return _error(400, "send no body, or {}: the newest example is removed")
    loop = asyncio.get_running_loop()
    try:
        reply = await loop.run_in_executor(None, service.undo_example, camera)
    except TeachingRefused as e:
        return _error(409, str(e))
    return web.json_response(reply)


async def _events(request: web.Request) -> web.StreamResponse:
    """Server-sent events; ``Last-Event-ID`` replays what the client missed (if kept)."""
    service = request.app[SERVICE]
    after = _last_event_id(request)
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
    )
    await response.prepare(request)
    if request.method == "HEAD":  # headers only: a HEAD response has no body
        return response
    queue = service.events.subscribe()
    try:
        if after is not None:
            for event in service.events.recent(limit=1000):
                if event["id"] > after:
                    await write_or_drop(request, response, _sse(event))
        await write_or_drop(request, response, b": connected\n\n")
        while True:
            try:
                event = await asyncio.wait_for(queue.get(), SSE_KEEPALIVE)
            except asyncio.TimeoutError:
                await write_or_drop(request, response, b": keep-alive\n\n")
                continue
            await write_or_drop(request, response, _sse(event))
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        service.events.unsubscribe(queue)
    return response


def _last_event_id(request: web.Request) -> int | None:
    """``Last-Event-ID`` as a number; None when absent or not plain ASCII digits (ids
    longer than 18 digits were never sent, so there is nothing to replay)."""
    last = request.headers.get("Last-Event-ID", "").strip()
    if not (last.isascii() and last.isdigit()) or len(last) > 18:
        return None
    return int(last)


def _sse(event: dict[str, Any]) -> bytes:
    return f"id: {event['id']}\nevent: {event['type']}\ndata: {json.dumps(event)}\n\n".encode()


async def _health(request: web.Request) -> web.Response:
    """Open to anyone, so it says nothing but whether the analysis loop runs (the
    cameras, their sources and errors are in ``/api/status``, behind the token)."""
    if request.app[SERVICE].healthy:
        return web.json_response({"status": "ok"})
    return web.json_response({"status": "stopped"}, status=503)


async def _metrics(request: web.Request) -> web.Response:
    return web.Response(
        body=prometheus_text(request.app[METRICS]),
        headers={"Content-Type": CONTENT_TYPE, "X-Content-Type-Options": "nosniff"},
    )


def _camera_from_path(request: web.Request, suffix: str) -> str:
    name = request.match_info["camera"]
    if name.endswith(suffix):
        name = name[: -len(suffix)]
    return _camera(request, name)


async def _mjpeg(request: web.Request) -> web.StreamResponse:
    """The annotated live view as MJPEG (``/stream/NAME.mjpg``), at most 15 frames/s."""
    service = request.app[SERVICE]
    camera = _camera_from_path(request, ".mjpg")
    response = web.StreamResponse(
        headers={
            "Content-Type": "multipart/x-mixed-replace; boundary=frame",
            "Cache-Control": "no-cache",
        }
    )
    await response.prepare(request)
    if request.method == "HEAD":  # headers only: a HEAD response has no body
        return response
    seen = -1
    drawing = request.app[DRAWING]
    try:
        while True:
            # drawn on demand: off the event loop
            loop = asyncio.get_running_loop()
            seq, jpeg = await loop.run_in_executor(drawing, service.latest_jpeg, camera)
            if jpeg is not None and seq != seen:
                seen = seq
                head = f"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
                await write_or_drop(request, response, head.encode() + jpeg + b"\r\n")
            await asyncio.sleep(1.0 / MJPEG_FPS)
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    return response


async def _snapshot(request: web.Request) -> web.Response:
    """The newest annotated frame of a camera as one JPEG (``/snapshot/NAME.jpg``)."""
    service = request.app[SERVICE]
    camera = _camera_from_path(request, ".jpg")
    loop = asyncio.get_running_loop()
    _, jpeg = await loop.run_in_executor(request.app[DRAWING], service.latest_jpeg, camera)
    if jpeg is None:
        return _error(503, f"no frame from camera {camera!r} yet")
    return web.Response(body=jpeg, content_type="image/jpeg", headers={"Cache-Control": "no-cache"})
