"""Fuzzing the kitchen service's HTTP API: whatever a client sends (any JSON or bytes,
any content type, query, camera name, token or Last-Event-ID), the reply is a 2xx or a
4xx whose body is ``{"error": "one line"}``; never a 5xx, never a hung request, no
traceback in the service's log, and the service keeps answering. The history routes
(issue 25) too: any time, ``top``, query text, picture body, recording name or
``Range`` (a recording answers 200, 206 or 416).

One Service (the trained fixture model, one camera on a short looped synthetic clip,
a data folder: history and 6-second recordings) serves two apps, with and without a
token, on an event loop in a thread. The runner is
configured as ``scenecls serve`` configures it (handlers are not cancelled when the
client goes away), not as aiohttp's TestServer defaults. Hypothesis runs derandomized and
without an example database, so CI sees the same examples every run.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
import time
from collections.abc import AsyncIterator, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import cv2
import numpy as np
import pytest
import synthetic_shapes  # scripts/ is on the path (conftest)
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scenecls.model.labels import resolve_labels
from scenecls.model.scene_model import load_model
from scenecls.serve.app import ACCESS, create_app
from scenecls.serve.service import Service
from scenecls.utc import parse_utc, utc_iso

MODEL = Path(__file__).parent / "fixtures" / "shapes-clip"
CAMERA = "pass"
TOKEN = "s3cret"
TIMEOUT = 5.0  # seconds for one request, reply included: more is a hung request
STREAMS = ("text/event-stream", "multipart/x-mixed-replace")

FUZZ = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


class _ServeLikeServer(TestServer):
    """A TestServer whose runner is set up like ``scenecls serve``'s."""

    async def _make_runner(self, **kwargs: Any) -> web.AppRunner:
        kwargs["handler_cancellation"] = False  # aiohttp's default, and serve's
        return web.AppRunner(self.app, shutdown_timeout=1.0, **kwargs)


@dataclass
class Reply:
    method: str
    status: int
    content_type: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


class Api:
    """Two test clients (token / no token) on one service, driven from the test thread."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.clients: dict[bool, TestClient] = {}

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float = 30.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def start(self) -> None:
        self.service.events.bind(asyncio.get_running_loop())
        for secured in (True, False):
            client = TestClient(
                _ServeLikeServer(create_app(self.service, TOKEN if secured else ""))
            )
            await client.start_server()
            self.clients[secured] = client

    async def close(self) -> None:
        for client in self.clients.values():
            await client.close()
        # event streams whose client left wait for their next keep-alive write to notice
        # (as in `scenecls serve`); end them before the loop closes
        rest = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in rest:
            task.cancel()
        await asyncio.gather(*rest, return_exceptions=True)

    def shutdown(self) -> None:
        """Close the clients, stop the loop and its thread, then the service."""
        self.run(self.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()
        self.service.stop()

    def forget_tries(self) -> None:
        """Forget the wrong tokens sent so far (the fuzzer sends them on purpose), so that
        its next request is not refused for them (429)."""

        async def forget() -> None:
            for client in self.clients.values():
                client.server.app[ACCESS].forget_tries()

        self.run(forget())

    def request(
        self, method: str, path: str, *, secured: bool = True, token: bool = True, **kwargs: Any
    ) -> Reply:
        """One request; a streaming reply is read up to its first chunk, then dropped.
        ``token``: the secured app gets the bearer token unless the headers hold an
        Authorization of their own (False: only what the headers say)."""
        headers = dict(kwargs.pop("headers", None) or {})
        if secured and token and "Authorization" not in headers:
            headers["Authorization"] = f"Bearer {TOKEN}"
        kwargs["headers"] = headers

        async def go() -> Reply:
            resp = await self.clients[secured].request(method, path, **kwargs)
            try:
                if resp.content_type.startswith(STREAMS):
                    body = b"" if method == "HEAD" else await resp.content.readany()
                else:
                    body = await resp.read()
                return Reply(method, resp.status, resp.content_type, body, dict(resp.headers))
            finally:
                resp.close()

        return self.run(asyncio.wait_for(go(), TIMEOUT))


class _Failures(logging.Handler):
    """Log records that carry a traceback, or say a request failed, from any logger."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info or "Traceback" in text or "failed" in text:
            self.records.append(record)


FAILURES = _Failures()


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    folder = tmp_path_factory.mktemp("fuzz-api")
    video = folder / "pass.mp4"
    synthetic_shapes.make_video(video, [("red circle", 0, 2), ("blue ring", 2, 4)], fps=10)
    model = load_model(MODEL, device="cpu", precision="fp32")
    labels = resolve_labels(",".join(synthetic_shapes.CLASSES))
    service = Service(
        model, labels, [(CAMERA, str(video))], loop=True, alert_after=0.5,
        data=folder / "data", flush_seconds=1, segment_minutes=0.1,
    )  # fmt: skip
    api = Api(service)
    logging.getLogger().addHandler(FAILURES)
    try:
        api.run(api.start())
        service.start()
        deadline = time.monotonic() + 30
        while service.latest_jpeg(CAMERA)[1] is None:  # so /snapshot never answers 503
            assert time.monotonic() < deadline, "the camera sent no frame in 30 s"
            time.sleep(0.05)
        yield api
    finally:
        logging.getLogger().removeHandler(FAILURES)
        api.shutdown()


# -- the property ----------------------------------------------------------------------


def check(api: Api, reply: Reply) -> None:
    """2xx or 4xx; a 4xx is ``{"error": "one printable line"}`` (HEAD: no body); the
    service still runs."""
    assert 200 <= reply.status < 300 or 400 <= reply.status < 500, reply
    if reply.method == "HEAD":
        assert reply.body == b"", reply
    elif reply.status >= 400:
        assert reply.content_type == "application/json", reply
        doc = json.loads(reply.body)
        assert isinstance(doc, dict) and set(doc) == {"error"}, doc
        error = doc["error"]
        assert isinstance(error, str) and error.strip() and error.isprintable(), doc
    elif reply.content_type == "application/json":
        json.loads(reply.body)
    api.forget_tries()
    after = api.request("GET", "/api/status")
    assert after.status == 200 and json.loads(after.body)["cameras"][0]["name"] == CAMERA


# -- strategies ------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(-(10**300), 10**300)
    | st.floats()
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
labels = st.sampled_from([*synthetic_shapes.CLASSES, "unknown", "", "Red Circle"])
orders = st.sampled_from(["A17", 17, -1, 2**70, True, 1.5]) | json_values
expect_objects = st.one_of(
    st.fixed_dictionaries({"camera": st.just(CAMERA), "label": labels}, optional={"order": orders}),
    st.fixed_dictionaries(
        {},
        optional={
            "camera": st.sampled_from([CAMERA, "oven", "", " pass"]) | json_values,
            "label": labels | json_values,
            "order": orders,
        },
    ),
)
raw_bodies = st.sampled_from(
    [
        b"",
        b"{",
        b"null",
        b"NaN",
        b'{"camera": "pass", "label": ' + b"9" * 5000 + b"}",  # past Python's int limit
        b"[" * 60_000,  # deeper than json can recurse
        b'{"camera": "pass", "label": "red circle"}' + b" " * (70 * 1024),  # too large
        b'{"camera": "pass", "label": "red circle", "order": "\xff"}',  # not UTF-8
        b'\xef\xbb\xbf{"camera": "pass", "label": "red circle"}',  # a UTF-8 BOM
        '{"camera": "pass", "label": "red circle"}'.encode("utf-16"),
    ]
)
bodies = st.one_of(
    json_values.map(lambda v: json.dumps(v).encode()),
    expect_objects.map(lambda v: json.dumps(v).encode()),
    expect_objects.map(lambda v: json.dumps(v, ensure_ascii=False).encode()),
    st.binary(max_size=100),
    raw_bodies,
)
header_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=30)
content_types = st.one_of(
    st.none(),
    st.sampled_from(
        [
            "application/json",
            "application/json; charset=utf-8",
            "application/json; charset=latin-1",
            "application/json; charset=utf-16",
            "application/json; charset=foo",
            "application/json; charset=rot13",
            "application/json; charset=base64",
            "application/json; charset=idna",
            "application/json; charset=unicode_escape",
            "application/json; charset=",
            "text/plain",
            "multipart/form-data; boundary=x",
            "application/x-www-form-urlencoded",
            ";;;",
        ]
    ),
    header_text,
)
auths = st.one_of(
    st.just(f"Bearer {TOKEN}"),
    st.none(),
    st.sampled_from(
        [
            f"Bearer {TOKEN}",
            f"bearer  {TOKEN} ",
            "Bearer wrong",
            "Bearer",
            "Basic czNjcmV0",
            "Bearer t\u00f6k\u00e9n",  # non-ASCII: hmac.compare_digest refuses str
            "Bearer \u2603",
        ]
    ),
    header_text,
    st.text(st.characters(min_codepoint=0xA0, max_codepoint=0x2FFF), max_size=10).map(
        "Bearer ".__add__
    ),
)
query_values = st.one_of(
    st.sampled_from([CAMERA, "", "0", "-1", "nan", "inf", "-1e308", "1e400", "1_0", "\u0661"]),
    st.text(max_size=20),
)
queries = st.one_of(
    st.lists(
        st.tuples(
            st.sampled_from(["camera", "since", "limit", "x"]) | st.text(max_size=8), query_values
        ),
        max_size=4,
    ).map(lambda pairs: urlencode(pairs, quote_via=quote)),
    st.sampled_from(["camera=%ff", "%", "camera=pass&since=%zz", "&&==", "camera=pass%00"]),
    st.sampled_from(["camera=pass&since=1e400", "camera=pass&since=-inf", "camera"]),
)
camera_names = st.one_of(
    st.sampled_from([CAMERA, "", ".", "..", "pass.jpg", "PASS", "pass\n", "a/b"]),
    st.text(max_size=20),
)


def with_headers(content_type: str | None, auth: str | None) -> dict[str, str]:
    headers = {}
    if content_type is not None:
        headers["Content-Type"] = content_type
    if auth is not None:
        headers["Authorization"] = auth
    return headers


# -- the tests -------------------------------------------------------------------------


@FUZZ
@given(body=bodies, content_type=content_types, auth=auths, secured=st.booleans())
def test_post_expect_any_body(
    api: Api, body: bytes, content_type: str | None, auth: str | None, secured: bool
) -> None:
    headers = with_headers(content_type, auth)
    reply = api.request(
        "POST", "/api/expect", secured=secured, token=False, data=body, headers=headers
    )
    check(api, reply)
    if reply.status == 200:
        assert json.loads(reply.body)["camera"] == CAMERA


fractions = st.floats(0, 1)
coordinates = st.one_of(
    fractions,
    st.floats(),  # NaN and infinities too (json.dumps writes them, json.loads reads them)
    st.integers(-(10**30), 10**30),
    st.sampled_from([0, 1, 1.0000001, -0.0, -1e-12, 1e308, "0.5", True, None]),
    json_values,
)
region_objects = st.one_of(
    st.fixed_dictionaries({"x": fractions, "y": fractions, "w": fractions, "h": fractions}),
    st.fixed_dictionaries(
        {},
        optional={
            "x": coordinates,
            "y": coordinates,
            "w": coordinates,
            "h": coordinates,
            "unit": st.sampled_from(["fraction", "pixel", "", 1]),
            "region": st.none() | json_values,
        },
    ),
    st.fixed_dictionaries({"region": st.none() | json_values}),
)
region_bodies = st.one_of(
    region_objects.map(lambda v: json.dumps(v).encode()),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=60),
    raw_bodies,
)


@FUZZ
@given(
    name=camera_names,
    body=region_bodies,
    content_type=content_types,
    auth=auths,
    secured=st.booleans(),
)
def test_post_region_any_body(
    api: Api, name: str, body: bytes, content_type: str | None, auth: str | None, secured: bool
) -> None:
    headers = with_headers(content_type, auth)
    path = f"/api/cameras/{quote(name, safe='')}/region"
    reply = api.request("POST", path, secured=secured, token=False, data=body, headers=headers)
    check(api, reply)
    if reply.status == 200:
        doc = json.loads(reply.body)
        assert doc["camera"] == CAMERA
        region = doc["region"]
        assert region is None or (
            region["unit"] == "fraction"
            and 0 <= region["x"] < region["x"] + region["w"] <= 1 + 1e-9
            and 0 <= region["y"] < region["y"] + region["h"] <= 1 + 1e-9
        )
    api.service.set_region(CAMERA, None)  # the other tests see the whole frame


example_bodies = st.one_of(
    st.fixed_dictionaries({"label": labels | json_values}).map(lambda v: json.dumps(v).encode()),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=60),
    raw_bodies,
)
origins = st.one_of(
    st.none(),
    st.none(),  # (most requests come from scripts or the page itself)
    st.sampled_from(
        [
            {"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"},
            {"Origin": "null"},
            {"Origin": "http://["},
            {"Sec-Fetch-Site": "same-origin"},
            {"Sec-Fetch-Site": "\u00e9"},
        ]
    ),
    st.dictionaries(st.sampled_from(["Origin", "Sec-Fetch-Site"]), header_text, max_size=2),
)


@FUZZ
@given(
    name=st.just(CAMERA) | camera_names,
    call=st.sampled_from([("POST", "examples"), ("POST", "examples/undo"), ("GET", "examples")]),
    body=example_bodies,
    content_type=content_types,
    auth=auths,
    origin=origins,
    secured=st.booleans(),
)
def test_examples_any_request(
    api: Api, name: str, call: tuple[str, str], body: bytes, content_type: str | None,
    auth: str | None, origin: dict[str, str] | None, secured: bool,
) -> None:  # fmt: skip
    method, route = call
    headers = {**with_headers(content_type, auth), **(origin or {})}
    path = f"/api/cameras/{quote(name, safe='')}/{route}"
    data = body if method == "POST" else None
    reply = api.request(method, path, secured=secured, token=False, data=data, headers=headers)
    check(api, reply)
    if reply.status == 200:
        doc = json.loads(reply.body)
        assert doc["camera"] == CAMERA and doc["examples"] >= 0
        assert set(doc["per_label"]) == set(synthetic_shapes.CLASSES)


@FUZZ
@given(query=queries, auth=auths, secured=st.booleans())
def test_delete_expect_any_query(api: Api, query: str, auth: str | None, secured: bool) -> None:
    headers = with_headers(None, auth)
    check(
        api,
        api.request(
            "DELETE", f"/api/expect?{query}", secured=secured, token=False, headers=headers
        ),
    )


@FUZZ
@given(query=queries)
def test_segments_any_query(api: Api, query: str) -> None:
    reply = api.request("GET", f"/api/segments?{query}")
    check(api, reply)
    if reply.status == 200:
        assert json.loads(reply.body)["camera"] == CAMERA


@FUZZ
@given(
    name=camera_names,
    route=st.sampled_from(["/snapshot/{}.jpg", "/stream/{}.mjpg", "/snapshot/{}", "/stream/{}"]),
    method=st.sampled_from(["GET", "HEAD"]),
)
def test_camera_paths_any_name(api: Api, name: str, route: str, method: str) -> None:
    check(api, api.request(method, route.format(quote(name, safe=""))))


@FUZZ
@given(
    last=st.one_of(
        st.none(),
        st.sampled_from(["0", "1", "\u00b2", "\u0661\u0662", "9" * 5000, "-1", " 3 ", "1e3"]),
        header_text,
    ),
    method=st.sampled_from(["GET", "HEAD"]),
)
def test_events_any_last_event_id(api: Api, last: str | None, method: str) -> None:
    headers = {} if last is None else {"Last-Event-ID": last}
    reply = api.request(method, "/api/events", headers=headers)
    check(api, reply)
    assert reply.status == 200


@FUZZ
@given(
    method=st.sampled_from(
        ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "PROPFIND"]
    ),
    path=st.one_of(
        st.sampled_from(["/", "/api/status", "/api/expect", "/healthz", "/metrics", "/api"]),
        # no leading "//": the test client would read it as a host (a URL, not a path)
        st.text(max_size=20).map(lambda t: "/" + quote(t).lstrip("/")),
    ),
    auth=auths,
)
def test_any_method_any_path(api: Api, method: str, path: str, auth: str | None) -> None:
    check(api, api.request(method, path, token=False, headers=with_headers(None, auth)))


@pytest.mark.parametrize(
    "method, path, body, headers, status",
    [
        ("POST", "/api/expect", b'{"label": ' + b"9" * 5000 + b"}", {}, 400),
        ("POST", "/api/expect", b"[" * 60_000, {}, 400),
        ("POST", "/api/expect", b"{}", {"Content-Type": "application/json; charset=foo"}, 415),
        ("POST", "/api/expect", b"{}", {"Authorization": "Bearer t\u00f6k"}, 401),
        ("GET", "/api/events", None, {"Last-Event-ID": "\u00b2"}, 200),
        ("GET", "/api/events", None, {"Last-Event-ID": "9" * 5000}, 200),
        ("HEAD", "/stream/pass.mjpg", None, {}, 200),
        ("GET", "/nothing%0Ahere", None, {}, 404),
        ("POST", "/api/cameras/pass/region", b'{"x": NaN, "y": 0, "w": 1, "h": 1}', {}, 400),
        ("POST", "/api/cameras/pass/region", b'{"x": 0, "y": 0, "w": 1e400, "h": 1}', {}, 400),
        ("POST", "/api/cameras/pass/region", b'{"x": 0, "y": 0, "w": 0.0001, "h": 1}', {}, 400),
        ("POST", "/api/cameras/oven/region", b'{"region": null}', {}, 404),
    ],
)
def test_found_by_fuzzing_api(
    api: Api, method: str, path: str, body: bytes | None, headers: dict[str, str], status: int
) -> None:
    # (JSON unless the case says otherwise: a change of another type is refused, 415)
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json", **headers}
    reply = api.request(method, path, data=body, headers=headers)
    check(api, reply)
    assert reply.status == status


# -- the history (issue 25) -------------------------------------------------------------

HOSTILE_TIMES = [
    "",
    "yesterday",
    "12:31",
    "2026-13-01T00:00:00Z",
    "2026-02-30T00:00:00Z",
    "2026-12-02T25:00:00Z",
    "2026-12-02T12:31:00+24:00",
    "2026-12-02T12:31:00ZZ",
    "2026-12-02T12:31:00.1234567890123Z",
    "0001-01-01T00:00:00Z",
    "0001-01-01T00:00:00+01:00",  # before year 1 in UTC
    "9999-12-31T23:59:59.999999Z",
    "9999-12-31T23:00:00-05:00",  # after year 9999 in UTC
    "1e400",
    "-inf",
    "nan",
    "\u0662\u0660\u0662\u0666-12-02",  # Arabic-Indic digits
    "2026-12-02T12:31:00\u00a0Z",
    "9" * 5000,
]
times = st.one_of(
    st.sampled_from(HOSTILE_TIMES),
    st.datetimes().map(lambda d: d.isoformat() + "Z"),
    st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
    st.text(max_size=30),
)
tops = st.one_of(
    st.integers(-5, 150).map(str),
    st.sampled_from(["", "1e3", "10.0", "0x10", "\u0661", "99999999999999999999999", " 5"]),
    st.text(max_size=6),
)
history_cameras = st.one_of(st.just(CAMERA), st.just(CAMERA), st.none(), camera_names)


def history_query(draw: st.DrawFn, keys: list[str], extra: dict[str, Any]) -> str:
    """A query string of some of ``keys`` (hostile values) plus ``extra``."""
    pairs: list[tuple[str, str]] = []
    for key in keys:
        if draw(st.booleans()):
            value = draw(times if key in ("since", "until", "at", "time") else tops)
            pairs.append((key, value))
    for key, value in extra.items():
        if value is not None:
            pairs.append((key, value))
    return urlencode(pairs, quote_via=quote)


@st.composite
def history_requests(draw: st.DrawFn) -> str:
    route = draw(st.sampled_from(["/api/history", "/api/recordings", "/api/thumbnail"]))
    keys = ["since", "until"] if route != "/api/thumbnail" else ["time"]
    query = history_query(draw, keys, {"camera": draw(history_cameras)})
    return f"{route}?{query}"


@st.composite
def search_requests(draw: st.DrawFn) -> str:
    extra: dict[str, Any] = {"camera": draw(st.none() | st.none() | history_cameras)}
    kind = draw(st.sampled_from(["q", "like", "both", "none"]))
    if kind in ("q", "both"):
        extra["q"] = draw(
            st.sampled_from(["red circle", "", "   ", "x" * 201, "a\u0000b", "\u202e", "\ud7ff"])
            | st.text(max_size=40)
        )
    if kind in ("like", "both"):
        extra["like"] = draw(st.just(CAMERA) | camera_names)
    return "/api/search?" + history_query(draw, ["since", "until", "top", "at"], extra)


@FUZZ
@given(path=history_requests(), secured=st.booleans())
def test_history_routes_any_query(api: Api, path: str, secured: bool) -> None:
    reply = api.request("GET", path, secured=secured)
    check(api, reply)
    if reply.status == 200 and path.startswith("/api/history"):
        doc = json.loads(reply.body)
        assert doc["camera"] == CAMERA and isinstance(doc["labels"], list)


@settings(FUZZ, max_examples=120)
@given(path=search_requests())
def test_search_any_query(api: Api, path: str) -> None:
    reply = api.request("GET", path)
    check(api, reply)
    if reply.status == 200:
        doc = json.loads(reply.body)
        assert len(doc["moments"]) <= 100 and doc["rows"] >= 0


def _picture(ext: str, size: tuple[int, int] = (48, 64)) -> bytes:
    image = synthetic_shapes.make_image("red circle", np.random.default_rng(3), size=size)
    return cv2.imencode(ext, image)[1].tobytes()


PNG = _picture(".png")
JPEG = _picture(".jpg")
# headers that promise more pixels than the service takes (the data is not there)
HUGE_PNG = PNG[:16] + (60000).to_bytes(4, "big") * 2 + PNG[24:]
_SOF = JPEG.index(b"\xff\xc0")
HUGE_JPEG = JPEG[: _SOF + 5] + (65000).to_bytes(2, "big") * 2 + JPEG[_SOF + 9 :]
picture_bodies = st.one_of(
    st.sampled_from(
        [
            PNG,
            JPEG,
            PNG[:40],  # cut
            JPEG[:300],
            HUGE_PNG,
            HUGE_JPEG,
            b"\x89PNG\r\n\x1a\n",
            b"\xff\xd8\xff",
            b"\xff\xd8" + b"\xff\x01" * 2000,  # markers without a frame
            b"GIF89a" + b"\x00" * 40,
            b"",
            b'{"q": "red circle"}',
            PNG + b"\x00" * 1000,
        ]
    ),
    st.binary(max_size=200),
    st.binary(max_size=60).map(lambda b: b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b),
    st.binary(max_size=60).map(lambda b: b"\xff\xd8" + b),
)
PICTURE_TYPES = ["image/png", "image/jpeg", "image/jpeg; q=1", "IMAGE/PNG", "image/gif",
                 "image/svg+xml", "text/plain", "application/json",
                 "multipart/form-data; boundary=x", "application/octet-stream"]  # fmt: skip
picture_types = st.one_of(st.sampled_from(PICTURE_TYPES), content_types)


@settings(FUZZ, max_examples=120)
@given(
    body=picture_bodies,
    content_type=picture_types,
    query=st.sampled_from(["", "top=1", "top=0", "camera=oven", "since=noon", "camera=pass"]),
    origin=origins,
    auth=auths,
)
def test_search_any_picture(
    api: Api, body: bytes, content_type: str | None, query: str,
    origin: dict[str, str] | None, auth: str | None,
) -> None:  # fmt: skip
    headers = {**with_headers(content_type, auth), **(origin or {})}
    reply = api.request("POST", f"/api/search?{query}", token=False, data=body, headers=headers)
    check(api, reply)
    if reply.status == 200:
        assert json.loads(reply.body)["query"] == "like the picture"


def recordings(api: Api) -> list[dict[str, Any]]:
    """The service's closed recordings, once there is one (6-second files)."""
    deadline = time.monotonic() + 30
    while True:
        reply = api.request("GET", "/api/recordings")
        listed = json.loads(reply.body)["recordings"]
        if listed:
            return listed
        assert time.monotonic() < deadline, "no recording closed in 30 s"
        time.sleep(0.2)


RECORDING_NAMES = ["..", ".", "../pass.mp4", "..%2F..%2Fetc%2Fpasswd", "%2e%2e",
                   "pass-20200101-000000.webm", "pass-20200101-000000.webm\x00.txt",
                   ".pass-20200101-000000.partial.webm", "oven-20200101-000000.webm",
                   "pass-20209999-000000.webm", "session-secret", "pass-" + "9" * 300 + ".webm",
                   "pass-20200101-000000.webm/", "\\..\\x", "%"]  # fmt: skip
recording_names = st.one_of(st.sampled_from(RECORDING_NAMES), st.text(max_size=30))


@FUZZ
@given(name=recording_names, method=st.sampled_from(["GET", "HEAD"]), secured=st.booleans())
def test_recordings_any_name(api: Api, name: str, method: str, secured: bool) -> None:
    path = "/recordings/" + quote(name, safe="%" if name.startswith("..%") else "")
    reply = api.request(method, path, secured=secured)
    check(api, reply)
    if reply.status == 200 and name not in (".", ".."):  # (those the client makes "/")
        assert reply.content_type.startswith("video/"), reply


RANGES = ["bytes=0-0", "bytes=0-", "bytes=-1", "bytes=-0", "bytes=999999999-", "bytes=5-1",
          "bytes=0-0,5-10", "bytes=0-1," * 500 + "2-3", "bytes=-", "bytes=", "bytes=abc",
          "bytes=0-99999999999999999999999999", "bytes=-99999999999999999999", "items=0-1",
          "bytes = 1-2", "BYTES=1-2", "bytes=1-2 ", "bytes=\u0661-\u0662", "bytes=+1-2",
          "bytes=1.5-2", "bytes=-1-2"]  # fmt: skip
ranges = st.one_of(
    st.sampled_from(RANGES),
    st.tuples(st.integers(-10, 10**12), st.integers(-10, 10**12)).map(
        lambda ab: f"bytes={ab[0]}-{ab[1]}"
    ),
    header_text.map("bytes=".__add__),
    header_text,
)
if_ranges = st.one_of(
    st.none(),
    st.sampled_from(["Wed, 21 Oct 2015 07:28:00 GMT", "garbage", '"etag"', "Thu, 01 Jan 9999"]),
)


def _content_range(reply: Reply) -> tuple[int, int, int]:
    m = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+)", reply.headers.get("Content-Range", ""))
    assert m, reply.headers
    first, last, size = (int(g) for g in m.groups())
    return first, last, size


@settings(FUZZ, max_examples=150)
@given(rng=ranges, if_range=if_ranges, method=st.sampled_from(["GET", "HEAD"]))
def test_recordings_any_range(api: Api, rng: str, if_range: str | None, method: str) -> None:
    """A recording answers 200 (the whole file), 206 (the part asked for, exactly) or
    416; never a 5xx."""
    rec = recordings(api)[0]
    whole = (api.service.record / rec["name"]).read_bytes()  # type: ignore[operator]
    headers = {"Range": rng, **({"If-Range": if_range} if if_range else {})}
    reply = api.request(method, rec["url"], headers=headers)
    assert reply.status in (200, 206, 416), reply
    if reply.status == 416:
        assert reply.headers.get("Content-Range") == f"bytes */{len(whole)}"
    elif method == "GET" and reply.status == 206:
        first, last, size = _content_range(reply)
        assert size == len(whole) and reply.body == whole[first : last + 1]
    elif method == "GET":
        assert reply.body == whole
    api.forget_tries()
    assert api.request("GET", "/api/status").status == 200


PNG_TYPE = {"Content-Type": "image/png"}


async def _chunks(size: int, piece: int = 2**20) -> AsyncIterator[bytes]:
    for _ in range(0, size, piece):
        yield b"\xff" * piece


@pytest.mark.parametrize(
    "method, path, body, headers, status",
    [
        ("GET", "/api/history?camera=pass&until=9999-12-31T23:00:00-05:00", None, {}, 400),
        ("GET", "/api/history?camera=pass&since=0001-01-01T00:00:00%2B01:00", None, {}, 400),
        ("GET", "/api/thumbnail?camera=pass&time=9999-12-31T23:00:00-05:00", None, {}, 400),
        ("GET", "/api/search?q=red&since=0001-01-01T00:00:00%2B01:00", None, {}, (200, 400)),
        ("GET", "/api/search?like=pass&at=9999-12-31T23:00:00-05:00", None, {}, (200, 400)),
        ("GET", "/api/history?camera=pass&since=1e400", None, {}, 400),
        ("GET", "/api/search?q=red&top=99999999999999999999999", None, {}, 400),
        ("GET", "/api/search?q=red&top=-1", None, {}, 400),
        ("GET", "/recordings/..%2F..%2Fetc%2Fpasswd", None, {}, 404),
        ("GET", "/recordings/..%2Fdata%2Fsession-secret", None, {}, 404),
        ("POST", "/api/search", PNG, {"Content-Type": "text/plain"}, 415),
        ("POST", "/api/search", b"not a picture", {"Content-Type": "image/png"}, 400),
        ("POST", "/api/search", HUGE_PNG, {"Content-Type": "image/png"}, 400),
        ("POST", "/api/search", HUGE_JPEG, {"Content-Type": "image/jpeg"}, 400),
        ("POST", "/api/search", b"\x00" * (9 * 2**20), {"Content-Type": "image/png"}, 413),
        ("POST", "/api/search", "chunked", {"Content-Type": "image/jpeg"}, 413),
        ("POST", "/api/search", PNG, {**PNG_TYPE, "Origin": "http://evil.example"}, 403),
        ("POST", "/api/search", PNG, {**PNG_TYPE, "Sec-Fetch-Site": "cross-site"}, 403),
    ],
)  # fmt: skip
def test_found_by_fuzzing_history(
    api: Api, method: str, path: str, body: Any, headers: dict[str, str],
    status: int | tuple[int, ...],
) -> None:  # fmt: skip
    """(Times that are years 1..9999 where they are, but not in UTC, were a 500.)"""
    data = _chunks(9 * 2**20) if body == "chunked" else body
    reply = api.request(method, path, data=data, headers=headers)
    check(api, reply)
    assert reply.status in (status if isinstance(status, tuple) else (status,)), reply


@pytest.mark.parametrize(
    "rng, status", [("bytes=999999999-", 416), ("bytes=0-0,5-10", 416), ("bytes=5-1", 416),
                    ("bytes=abc", 416), ("bytes=-0", (206, 416)), ("bytes=0-0", 206)]
)  # fmt: skip
def test_odd_ranges_of_a_recording(api: Api, rng: str, status: int | tuple[int, ...]) -> None:
    rec = recordings(api)[0]
    reply = api.request("GET", rec["url"], headers={"Range": rng})
    assert reply.status in (status if isinstance(status, tuple) else (status,)), reply


def test_a_deleted_recording_leaves_its_moments_without_a_picture_and_says_why(
    api: Api,
) -> None:
    """(After the tests that read recordings: it deletes one.)"""
    rec = recordings(api)[0]
    (api.service.record / rec["name"]).unlink()  # type: ignore[operator]
    # (a second short of the next file, which a time may be taken for from 0.5 s before)
    start, end = rec["start"], utc_iso(parse_utc(rec["end"]) - 1.0)
    reply = api.request("GET", "/api/thumbnail?" + urlencode({"camera": CAMERA, "time": start}))
    check(api, reply)
    assert reply.status == 404 and "no recording covers" in json.loads(reply.body)["error"]
    query = urlencode({"like": CAMERA, "at": start, "since": start, "until": end, "top": 3})
    reply = api.request("GET", "/api/search?" + query)
    check(api, reply)
    moments = json.loads(reply.body)["moments"]
    assert moments, reply
    for m in moments:  # listed, without a picture or a file, with the reason
        assert m["thumbnail"] is None and m["recording"] is None
        assert "no recording covers" in m["why"], m
    reply = api.request("GET", rec["url"])
    check(api, reply)
    assert reply.status == 404


def test_the_service_logged_no_traceback() -> None:
    """Last: nothing the fuzzers sent made the service log a failure or a traceback."""
    shown = [f"{r.name}: {r.getMessage()}" for r in FAILURES.records]
    assert not shown, shown[:5]
