"""``scenecls serve --token``: every route without, with a wrong and with the right token;
the login form, its session cookie and its rate limit; ``--metrics-open``."""

from __future__ import annotations

import functools
import http.client
import http.cookiejar
import json
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import synthetic_shapes  # scripts/ is on the path (conftest)

from scenecls.serve.access import COOKIE, MAX_FAILURES, SESSION_SECONDS, Access, safe_next

from .serving import ServeProcess, red_circle_service

MODEL = Path(__file__).parent / "fixtures" / "shapes-clip"
LABELS = ",".join(synthetic_shapes.CLASSES)
TOKEN = "kitchen-token-0123456789"

# every route a person or script reaches, and what it answers when allowed
ROUTES = [
    ("GET", "/", 200),
    ("GET", "/api/status", 200),
    ("GET", "/api/segments?camera=pass", 200),
    ("GET", "/api/events", 200),
    ("GET", "/metrics", 200),
    ("GET", "/stream/pass.mjpg", 200),
    ("GET", "/snapshot/pass.jpg", 200),
    ("POST", "/api/expect", 200),
    ("DELETE", "/api/expect?camera=pass", 200),
    ("POST", "/api/cameras/pass/region", 200),
    ("GET", "/api/cameras/pass/examples", 200),
    ("POST", "/api/cameras/pass/examples", 200),  # an example of the current frame ...
    ("POST", "/api/cameras/pass/examples/undo", 200),  # ... taken back
]


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        return None


def from_address(source: str) -> urllib.request.OpenerDirector:
    """An opener whose connections come from loopback address ``source`` (127.0.0.0/8 is
    all loopback on Linux): a client of its own, whose wrong tokens lock out only it."""

    class _From(urllib.request.HTTPHandler):
        def http_open(self, req):  # type: ignore[no-untyped-def]
            connect = functools.partial(http.client.HTTPConnection, source_address=(source, 0))
            return self.do_open(connect, req)

    return urllib.request.build_opener(_From, _NoRedirect)


def fetch(
    url: str, method: str = "GET", *, headers: dict[str, str] | None = None,
    data: bytes | None = None, opener: urllib.request.OpenerDirector | None = None,
) -> tuple[int, dict[str, str], bytes]:  # fmt: skip
    """(status, headers, first bytes of the body); redirects are not followed."""
    opener = opener or urllib.request.build_opener(_NoRedirect)
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with opener.open(req, timeout=10) as r:
            if r.headers.get("Content-Type", "").startswith("text/event-stream"):
                return r.status, dict(r.headers), b""  # open; events come when they happen
            return r.status, dict(r.headers), r.read1(4096)
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read(4096)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    with red_circle_service(tmp_path_factory.mktemp("access"), MODEL, LABELS, TOKEN) as s:
        yield s


def _body(method: str, path: str) -> bytes | None:
    if method != "POST" or path.endswith("/undo"):
        return None
    if "region" in path:
        return b'{"region": null}'
    if "examples" in path:
        return b'{"label": "red circle"}'
    return b'{"camera": "pass", "label": "red circle"}'


@pytest.mark.parametrize(("method", "path", "ok"), ROUTES)
def test_every_route_needs_the_token(server, method: str, path: str, ok: int) -> None:  # type: ignore[no-untyped-def]
    url = server.url + path
    json_type = {"Content-Type": "application/json"}
    code, headers, body = fetch(url, method, headers=json_type, data=_body(method, path))
    if path == "/":  # a person is sent to the form, and nothing of the page is shown
        assert code == 303 and headers["Location"].startswith("/login")
    else:
        assert code == 401 and b"Bearer" in body and b"\xff\xd8" not in body
    wrong = {**json_type, "Authorization": "Bearer not-the-token"}
    guesser = from_address(f"127.0.0.{10 + ROUTES.index((method, path, ok))}")  # one guess each
    code, _, body = fetch(url, method, headers=wrong, data=_body(method, path), opener=guesser)
    assert code == 401 and b"\xff\xd8" not in body  # no frame leaks
    right = {**json_type, "Authorization": f"Bearer {TOKEN}"}
    code, headers, body = fetch(url, method, headers=right, data=_body(method, path))
    assert code == ok, body
    if "snapshot" in path or "stream" in path:
        assert b"\xff\xd8" in body  # the frame, with the token


def test_health_stays_open(server) -> None:  # type: ignore[no-untyped-def]
    code, _, body = fetch(server.url + "/healthz")
    assert code == 200 and json.loads(body) == {"status": "ok"}  # no camera names


def test_a_person_logs_in_once_through_the_form(server) -> None:  # type: ignore[no-untyped-def]
    jar = http.cookiejar.CookieJar()
    browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), _NoRedirect)
    code, headers, _ = fetch(server.url + "/", opener=browser)
    assert code == 303 and headers["Location"] == "/login?next=/"
    code, _, page = fetch(server.url + "/login?next=/", opener=browser)
    assert code == 200 and b"type='password'" in page and b"name='token'" in page
    form = urllib.parse.urlencode({"token": "guess", "next": "/"}).encode()
    code, _, page = fetch(server.url + "/login", "POST", data=form, opener=browser)
    assert code == 401 and b"wrong token" in page and not list(jar)
    form = urllib.parse.urlencode({"token": TOKEN, "next": "/api/status"}).encode()
    code, headers, _ = fetch(server.url + "/login", "POST", data=form, opener=browser)
    assert code == 303 and headers["Location"] == "/api/status"
    cookie = headers["Set-Cookie"]
    assert COOKIE in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert TOKEN not in cookie  # the cookie is a signed expiry, not the token
    for path in ("/", "/api/status", "/snapshot/pass.jpg", "/metrics"):
        code, _, _ = fetch(server.url + path, opener=browser)
        assert code == 200, path
    code, _, _ = fetch(server.url + "/logout", "POST", opener=browser)
    assert code == 303
    code, _, _ = fetch(server.url + "/api/status", opener=browser)
    assert code == 401
    # a forged or altered cookie is refused
    forged = {"Cookie": f"{COOKIE}=99999999999.{'0' * 64}"}
    assert fetch(server.url + "/api/status", headers=forged)[0] == 401


def test_failed_logins_are_rate_limited(server) -> None:  # type: ignore[no-untyped-def]
    form = urllib.parse.urlencode({"token": "nope"}).encode()
    codes = [fetch(server.url + "/login", "POST", data=form)[0] for _ in range(MAX_FAILURES)]
    # (the login test before this one failed once from this address too)
    assert set(codes) <= {401, 429} and codes.count(401) >= MAX_FAILURES - 1
    right = urllib.parse.urlencode({"token": TOKEN}).encode()
    code, headers, page = fetch(server.url + "/login", "POST", data=right)
    assert code == 429 and int(headers["Retry-After"]) > 0 and b"too many" in page
    # every try of the token from this address is refused until the lock-out ends ...
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    code, headers, _ = fetch(server.url + "/api/status", headers=bearer)
    assert code == 429 and int(headers["Retry-After"]) > 0
    # ... but scripts elsewhere are not locked out by someone guessing at the form
    elsewhere = from_address("127.0.0.2")
    assert fetch(server.url + "/api/status", headers=bearer, opener=elsewhere)[0] == 200


def test_metrics_open_leaves_only_metrics_open(tmp_path: Path) -> None:
    video = tmp_path / "pass.mp4"
    synthetic_shapes.make_video(video, [("red circle", 0, 10)], fps=10)
    s = ServeProcess(
        [str(video), "--name", "pass", "--model", str(MODEL), "--labels", LABELS, "--loop",
         "--token", TOKEN, "--metrics-open"],
        home=tmp_path / "home",
    )  # fmt: skip
    try:
        code, _, body = fetch(s.url + "/metrics")
        assert code == 200 and b"scenecls_uptime_seconds" in body
        assert fetch(s.url + "/api/status")[0] == 401
        assert fetch(s.url + "/snapshot/pass.jpg")[0] == 401
    finally:
        s.stop()


def test_sessions_expire_and_need_the_same_token() -> None:
    now = [1_000_000.0]
    access = Access(TOKEN, clock=lambda: now[0])
    cookie = access.session_cookie()
    assert access.valid_session(cookie)
    assert not Access("another-token", clock=lambda: now[0]).valid_session(cookie)
    assert not access.valid_session(cookie.replace(".", ".0", 1))
    assert not access.valid_session("garbage") and not access.valid_session("")
    now[0] += SESSION_SECONDS + 1
    assert not access.valid_session(cookie)
    # the rate limit forgets failures after a minute
    for _ in range(MAX_FAILURES):
        access.failed("10.0.0.7")
    assert access.blocked_for("10.0.0.7") > 0 and access.blocked_for("10.0.0.8") == 0
    now[0] += 61
    assert access.blocked_for("10.0.0.7") == 0
    assert access.bearer_ok(f"Bearer {TOKEN}") and access.bearer_ok(f"bearer  {TOKEN} ")
    assert not access.bearer_ok(f"Basic {TOKEN}") and not access.bearer_ok("Bearer t\u00f6k")


@pytest.mark.parametrize(
    "target, expected",
    [("/", "/"), ("/api/status", "/api/status"), ("//evil.example", "/"),
     ("https://evil.example/", "/"), ("", "/"), (None, "/")],
)  # fmt: skip
def test_login_only_goes_back_to_local_pages(target: str | None, expected: str) -> None:
    assert safe_next(target) == expected


def test_the_token_can_come_from_the_environment(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """SCENECLS_TOKEN keeps the token out of the process list (systemd's EnvironmentFile)."""
    video = tmp_path / "pass.mp4"
    synthetic_shapes.make_video(video, [("red circle", 0, 10)], fps=10)
    monkeypatch.setenv("SCENECLS_TOKEN", TOKEN)
    s = ServeProcess(
        [str(video), "--name", "pass", "--model", str(MODEL), "--labels", LABELS, "--loop"],
        home=tmp_path / "home",
    )
    try:
        assert fetch(s.url + "/api/status")[0] == 401
        ok = fetch(s.url + "/api/status", headers={"Authorization": f"Bearer {TOKEN}"})
        assert ok[0] == 200
        assert not any(TOKEN in arg for arg in s.proc.args)  # type: ignore[union-attr]
    finally:
        s.stop()
