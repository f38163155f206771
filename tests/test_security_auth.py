"""``scenecls serve --token`` against an attacker on the network (issue 24, items 1, 2, 7
and 11, the security headers and ``/healthz``): guessing the token by script or by a
flood of concurrent logins, open redirects after logging in, malformed session cookies,
sessions that outlive logging out or give the token away, framing and sniffing.

Each test runs the real application (``create_app``) on loopback, on one service (the
trained fixture model, one camera on a short looped clip), with an event loop of its own
and a fresh ``Access``: no test's guesses lock out another's.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
import synthetic_shapes  # scripts/ is on the path (conftest)
from aiohttp import web

from scenecls.model.labels import resolve_labels
from scenecls.model.scene_model import load_model
from scenecls.serve.access import (
    COOKIE,
    FAILURE_WINDOW,
    MAX_FAILURES,
    REVOKED_FILE,
    SECRET_FILE,
    Access,
    safe_next,
)
from scenecls.serve.app import ACCESS, create_app
from scenecls.serve.headers import content_security_policy, page_html
from scenecls.serve.service import Service

MODEL = Path(__file__).parent / "fixtures" / "shapes-clip"
CAMERA = "pass"
TOKEN = "kitchen-token-0123456789"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
WRONG = {"Authorization": "Bearer not-the-token"}
HOME = "127.0.0.1"  # the attacker's address in these tests ...
ELSEWHERE = "127.0.0.2"  # ... and someone else's (127.0.0.0/8 is all loopback on Linux)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """A running service with a data folder (where the session key is kept) and a frame."""
    folder = tmp_path_factory.mktemp("security-auth")
    video = folder / "pass.mp4"
    synthetic_shapes.make_video(video, [("red circle", 0, 2)], fps=10)
    model = load_model(MODEL, device="cpu", precision="fp32")
    labels = resolve_labels(",".join(synthetic_shapes.CLASSES))
    svc = Service(model, labels, [(CAMERA, str(video))], loop=True, data=folder / "data")
    svc.start()
    try:
        deadline = time.monotonic() + 30
        while svc.latest_jpeg(CAMERA)[1] is None:
            assert time.monotonic() < deadline, "the camera sent no frame in 30 s"
            time.sleep(0.05)
        yield svc
    finally:
        svc.stop()


class Server:
    """One app on loopback; :meth:`request` from any loopback address."""

    def __init__(self, app: web.Application, runner: web.AppRunner, port: int) -> None:
        self.app = app
        self.runner = runner
        self.port = port
        self.url = f"http://{HOME}:{port}"
        self.sessions: dict[str, aiohttp.ClientSession] = {}

    @property
    def access(self) -> Access:
        return self.app[ACCESS]

    async def request(
        self, method: str, path: str, *, source: str = HOME, **kwargs: Any
    ) -> tuple[int, dict[str, str], bytes]:
        """(status, headers, body) of one request from ``source``; redirects not followed."""
        if source not in self.sessions:
            connector = aiohttp.TCPConnector(local_addr=(source, 0), force_close=True)
            self.sessions[source] = aiohttp.ClientSession(connector=connector)
        kwargs.setdefault("allow_redirects", False)
        async with self.sessions[source].request(method, self.url + path, **kwargs) as r:
            return r.status, dict(r.headers), await r.read()

    async def close(self) -> None:
        for session in self.sessions.values():
            await session.close()
        await self.runner.cleanup()


def serve(service: Service, test: Callable[[Server], Awaitable[None]], token: str = TOKEN) -> None:
    """Run ``test`` against a fresh app of ``service`` with ``token``."""

    async def main() -> None:
        service.events.bind(asyncio.get_running_loop())
        app = create_app(service, token)
        runner = web.AppRunner(app, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, HOME, 0)
        await site.start()
        port = runner.addresses[0][1]
        server = Server(app, runner, port)
        try:
            await asyncio.wait_for(test(server), 15)
        finally:
            await server.close()

    asyncio.run(main())


def _cookie_of(headers: dict[str, str]) -> str:
    m = re.search(rf"{COOKIE}=([^;]*)", headers.get("Set-Cookie", ""))
    assert m, headers
    return m.group(1)


def _login_form(token: str, next_path: str = "/") -> dict[str, Any]:
    return {
        "data": urlencode({"token": token, "next": next_path}),
        "headers": {"Content-Type": "application/x-www-form-urlencoded"},
    }


# -- 1. guessing the token ----------------------------------------------------------------


def test_wrong_bearer_tokens_are_limited_per_address_and_logged_once(
    service: Service, caplog: pytest.LogCaptureFixture
) -> None:
    now = [1_000_000.0]

    async def test(s: Server) -> None:
        s.access.clock = lambda: now[0]
        for _ in range(MAX_FAILURES):
            assert (await s.request("GET", "/api/status", headers=WRONG))[0] == 401
        for _ in range(20):  # a script keeps guessing: refused without being checked
            code, headers, body = await s.request("GET", "/api/status", headers=WRONG)
            assert code == 429 and 0 < int(headers["Retry-After"]) <= FAILURE_WINDOW
            assert "too many wrong tokens" in json.loads(body)["error"]
        # the locked-out address is refused with the right token too ...
        code, headers, _ = await s.request("GET", "/api/status", headers=BEARER)
        assert code == 429 and int(headers["Retry-After"]) > 0
        code, _, _ = await s.request("POST", "/login", **_login_form(TOKEN))
        assert code == 429
        # ... while the right token works from another address, which is not locked out
        assert (await s.request("GET", "/api/status", headers=BEARER, source=ELSEWHERE))[0] == 200
        assert (await s.request("GET", "/api/status", headers=WRONG, source=ELSEWHERE))[0] == 401
        # a minute later the address may try again
        now[0] += FAILURE_WINDOW + 1
        assert (await s.request("GET", "/api/status", headers=BEARER))[0] == 200

    with caplog.at_level(logging.WARNING, logger="scenecls"):
        serve(service, test)
    lines = [r.getMessage() for r in caplog.records if HOME in r.getMessage()]
    # once per burst, not per try: its first wrong token and its lock-out
    assert len(lines) == 2, lines
    assert "wrong token from 127.0.0.1" in lines[0] and "refused (429)" in lines[1]
    assert TOKEN not in caplog.text and "not-the-token" not in caplog.text


def test_a_long_guessing_attack_is_logged_every_ten_minutes_not_per_try(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    access = Access(TOKEN, clock=lambda: now[0])
    checked = 0
    with caplog.at_level(logging.WARNING, logger="scenecls"):
        while now[0] < 1300:  # 21 minutes of a guess every second
            if access.begin_try("10.0.0.7") == 0:
                checked += 1
                access.wrong_try("10.0.0.7", "an Authorization header")
            now[0] += 1
    assert checked <= MAX_FAILURES * (1300 / FAILURE_WINDOW + 1)  # 5 a minute, not 1300
    lines = [r.getMessage() for r in caplog.records if "10.0.0.7" in r.getMessage()]
    assert len(lines) == 4, lines  # the first, the lock-out, then once per 10 minutes
    assert "keeps trying" in lines[2] and "tries refused" in lines[3]


def test_forty_concurrent_logins_get_only_the_allowed_tries(service: Service) -> None:
    """All 40 send their headers first and their bodies at once: the tries are counted
    before the bodies are read, so at most MAX_FAILURES are checked and the right token,
    sent last, gets no session."""
    bodies = [urlencode({"token": f"guess-{i}", "next": "/"}).encode() for i in range(39)]
    bodies.append(urlencode({"token": TOKEN, "next": "/"}).encode())

    async def test(s: Server) -> None:
        streams = []
        for body in bodies:
            reader, writer = await asyncio.open_connection(HOME, s.port)
            head = (
                f"POST /login HTTP/1.1\r\nHost: {HOME}:{s.port}\r\n"
                "Content-Type: application/x-www-form-urlencoded\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            )
            writer.write(head.encode())
            await writer.drain()
            streams.append((reader, writer))
        await asyncio.sleep(0.3)  # every handler is waiting for its body now
        for (_, writer), body in zip(streams, bodies, strict=True):
            writer.write(body)
        await asyncio.gather(*(w.drain() for _, w in streams))
        replies = await asyncio.gather(*(r.read() for r, _ in streams))
        for _, writer in streams:
            writer.close()
        codes = [int(reply.split(b" ", 2)[1]) for reply in replies]
        checked = [c for c in codes if c != 429]
        assert len(checked) <= MAX_FAILURES, codes
        assert not any(COOKIE.encode() in reply for reply in replies)  # no session

    serve(service, test)


# -- 2. where the browser goes after logging in ---------------------------------------------

HOSTILE_NEXT = [
    "/\\evil.example",  # browsers read a backslash as a slash: //evil.example
    "/\t/evil.example",  # browsers drop TAB, CR and LF from URLs
    "/\r\n/evil.example",
    "/\n/evil.example",
    "\\\\evil.example",
    "//evil.example",
    "///evil.example",
    "/\\/evil.example",
    "/%5Cevil.example",
    "/%5cevil.example",
    "/%09/evil.example",
    "/%0d%0a/evil.example",
    "/%2F/evil.example",  # decodes to //evil.example
    "/%2f%2fevil.example",
    "/%252F/evil.example",  # twice encoded
    "/%255Cevil.example",
    "/%E3%80%80/evil.example",  # an ideographic space
    "/%E2%80%8B/evil.example",  # a zero-width space
    "/%ff/evil.example",  # no UTF-8
    "/\u3000/evil.example",
    "/\x00/evil.example",
    "https://evil.example/",
    "http:/evil.example",
    "javascript:alert(1)",
    "evil.example",
    " /api/status",
    "/" + "a" * 3000,
]


@pytest.mark.parametrize("target", HOSTILE_NEXT)
def test_next_never_leaves_this_server(target: str) -> None:
    assert safe_next(target) == "/"


@pytest.mark.parametrize(
    "target",
    ["/", "/api/status", "/?camera=pass", "/stream/pass.mjpg", "/api/segments?camera=k%C3%BCche"],
)
def test_next_keeps_paths_of_this_server(target: str) -> None:
    assert safe_next(target) == target


def test_login_redirects_only_to_this_server(service: Service) -> None:
    async def test(s: Server) -> None:
        for target in ("/\\evil.example", "/\t/evil.example", "/%5Cevil.example"):
            code, headers, _ = await s.request("POST", "/login", **_login_form(TOKEN, target))
            assert code == 303 and headers["Location"] == "/", target
            # the form carries no such target either
            code, _, page = await s.request("GET", "/login", params={"next": target})
            assert code == 200 and b"evil" not in page
        code, headers, _ = await s.request("POST", "/login", **_login_form(TOKEN, "/api/status"))
        assert code == 303 and headers["Location"] == "/api/status"

    serve(service, test)


# -- 7. malformed session cookies -----------------------------------------------------------

BAD_COOKIES = [
    "\u00b21.ab",  # a superscript two: str.isdigit() says yes, int() says no
    "9" * 4400 + ".ab",  # more digits than int() converts
    "9" * 4400 + "." + "a" * 32 + "." + "0" * 64,
    "\u0663\u0663." + "a" * 32 + "." + "0" * 64,  # Arabic-Indic digits
    "-1." + "a" * 32 + "." + "0" * 64,
    "1e9." + "a" * 32 + "." + "0" * 64,
    "99999999999." + "0" * 64,  # the old form
    "99999999999." + "A" * 32 + "." + "0" * 64,
    "99999999999." + "a" * 32 + "." + "\u00e9" * 64,
    "." * 5000,
    "",
]


@pytest.mark.parametrize("value", BAD_COOKIES)
def test_malformed_session_cookies_are_refused(value: str) -> None:
    assert not Access(TOKEN).valid_session(value)


def test_malformed_session_cookies_get_401_never_500(service: Service) -> None:
    async def test(s: Server) -> None:
        for value in BAD_COOKIES:
            raw = f"{COOKIE}={value}".encode("utf-8", "surrogatepass")
            # sent as raw bytes, as an attacker would: not through a cookie jar
            head = (
                f"GET /api/status HTTP/1.1\r\nHost: {HOME}:{s.port}\r\n".encode()
                + b"Cookie: "
                + raw
                + b"\r\nConnection: close\r\n\r\n"
            )
            reader, writer = await asyncio.open_connection(HOME, s.port)
            writer.write(head)
            reply = await reader.read()
            writer.close()
            code = int(reply.split(b" ", 2)[1])
            assert code == 401, (value[:20], reply[:200])
            head = head.replace(b"GET /api/status", b"GET /")
            reader, writer = await asyncio.open_connection(HOME, s.port)
            writer.write(head)
            reply = await reader.read()
            writer.close()
            assert int(reply.split(b" ", 2)[1]) == 303, (value[:20], reply[:200])

    serve(service, test)


# -- 11. sessions: ended by logging out, keyed by a per-install secret ---------------------


def test_logout_ends_the_session_also_after_a_restart(service: Service) -> None:
    data = service.settings.folder  # type: ignore[union-attr]
    cookies: dict[str, str] = {}

    async def test(s: Server) -> None:
        for name in ("kept", "ended"):
            code, headers, _ = await s.request("POST", "/login", **_login_form(TOKEN))
            assert code == 303
            cookies[name] = _cookie_of(headers)
        sniffed = {"Cookie": f"{COOKIE}={cookies['ended']}"}  # a copy of it, elsewhere
        assert (await s.request("GET", "/api/status", headers=sniffed))[0] == 200
        code, headers, _ = await s.request("POST", "/logout", headers=sniffed)
        assert code == 303 and headers["Location"] == "/login"
        assert (await s.request("GET", "/api/status", headers=sniffed))[0] == 401
        assert (await s.request("GET", "/", headers=sniffed))[0] == 303  # to the form
        kept = {"Cookie": f"{COOKIE}={cookies['kept']}"}
        assert (await s.request("GET", "/api/status", headers=kept))[0] == 200

    serve(service, test)
    revoked = data / REVOKED_FILE
    assert revoked.stat().st_mode & 0o777 == 0o600
    restarted = Access(TOKEN, data=data)  # the same data folder: the same key
    assert not restarted.valid_session(cookies["ended"])
    assert restarted.valid_session(cookies["kept"])  # sessions survive a restart


def test_session_key_is_a_per_install_secret_not_the_token(service: Service) -> None:
    data = service.settings.folder  # type: ignore[union-attr]
    now = [1_000_000.0]
    access = Access(TOKEN, data=data, clock=lambda: now[0])
    cookie = access.session_cookie()
    assert TOKEN not in cookie
    secret = data / SECRET_FILE
    assert secret.stat().st_mode & 0o777 == 0o600
    assert re.fullmatch(r"[0-9a-f]{64}\n", secret.read_text())
    # nothing in the cookie is keyed by the token alone: a sniffed cookie cannot be checked
    # against guesses of it (the old cookie was EXPIRES.HMAC(token, EXPIRES))
    expires, session_id, signature = cookie.split(".")
    for text in (f"scenecls-session:{expires}", f"{expires}.{session_id}", session_id):
        guess = hmac.new(TOKEN.encode(), text.encode(), hashlib.sha256).hexdigest()
        assert guess != signature
    # the right token without the install's secret does not make a valid cookie
    assert not Access(TOKEN, clock=lambda: now[0]).valid_session(cookie)
    # changing the token ends every session, the key staying the same
    assert not Access("another-token-0123456789", data=data, clock=lambda: now[0]).valid_session(
        cookie
    )
    assert Access(TOKEN, data=data, clock=lambda: now[0]).valid_session(cookie)


def test_session_key_without_a_data_folder_is_per_process(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger="scenecls"):
        first = Access(TOKEN)
    assert "log in again after a restart" in caplog.text
    assert not Access(TOKEN).valid_session(first.session_cookie())


def test_damaged_or_readable_session_key_is_replaced_or_made_private(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    secret = tmp_path / SECRET_FILE
    secret.write_text("not a key")
    with caplog.at_level(logging.WARNING, logger="scenecls"):
        access = Access(TOKEN, data=tmp_path)
    assert "damaged" in caplog.text
    assert secret.stat().st_mode & 0o777 == 0o600 and re.fullmatch(
        r"[0-9a-f]{64}\n", secret.read_text()
    )
    cookie = access.session_cookie()
    secret.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="scenecls"):
        assert Access(TOKEN, data=tmp_path).valid_session(cookie)
    assert "made private" in caplog.text and secret.stat().st_mode & 0o777 == 0o600
    # a damaged list of ended sessions: what was ended is not known, so every session ends
    (tmp_path / REVOKED_FILE).write_text("{")
    assert not Access(TOKEN, data=tmp_path).valid_session(cookie)


# -- security headers and /healthz ----------------------------------------------------------


def _inline_hash(html: str, tag: str) -> str:
    block = re.search(rf"<{tag}>(.*?)</{tag}>", html, re.DOTALL)
    assert block, tag
    return base64.b64encode(hashlib.sha256(block.group(1).encode()).digest()).decode()


def test_every_html_response_has_the_security_headers(service: Service) -> None:
    policy = content_security_policy()
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    assert directives["default-src"] == "'self'"
    assert directives["script-src"] == f"'sha256-{_inline_hash(page_html(), 'script')}'"
    assert "unsafe" not in policy and directives["frame-ancestors"] == "'none'"
    assert directives["img-src"] == "'self' data: blob:"

    async def test(s: Server) -> None:
        html_replies = [
            await s.request("GET", "/", headers=BEARER),
            await s.request("GET", "/login"),
            await s.request("POST", "/login", **_login_form("wrong")),  # 401, the form again
        ]
        for _ in range(MAX_FAILURES):
            await s.request("POST", "/login", **_login_form("wrong"))
        html_replies.append(await s.request("POST", "/login", **_login_form("wrong")))  # 429
        assert [code for code, _, _ in html_replies] == [200, 200, 401, 429]
        for code, headers, _ in html_replies:
            assert headers["Content-Type"].startswith("text/html"), code
            assert headers["Content-Security-Policy"] == policy, code
            assert headers["X-Frame-Options"] == "DENY", code
            assert headers["X-Content-Type-Options"] == "nosniff", code
            assert headers["Referrer-Policy"] == "no-referrer", code
        # the page's inline style is allowed by its hash too
        assert f"'sha256-{_inline_hash(html_replies[0][2].decode(), 'style')}'" in policy
        # JSON, JPEG and the errors: never sniffed as a page
        for path, kind in (
            ("/api/status", "application/json"),
            (f"/snapshot/{CAMERA}.jpg", "image/jpeg"),
            ("/api/nothing", "application/json"),
            ("/healthz", "application/json"),
        ):
            code, headers, _ = await s.request("GET", path, headers=BEARER, source=ELSEWHERE)
            assert headers["Content-Type"].startswith(kind), path
            assert headers["X-Content-Type-Options"] == "nosniff", path

    serve(service, test)


def test_health_says_only_ok(service: Service) -> None:
    async def test(s: Server) -> None:
        code, _, body = await s.request("GET", "/healthz")
        assert code == 200 and json.loads(body) == {"status": "ok"}
        assert CAMERA.encode() not in body

    serve(service, test)
    model = load_model(MODEL, device="cpu", precision="fp32")
    stopped = Service(model, resolve_labels("a,b"), [("secret-door", "/nowhere.mp4")])

    async def test_stopped(s: Server) -> None:  # never started: the loop does not run
        code, _, body = await s.request("GET", "/healthz")
        assert code == 503 and json.loads(body) == {"status": "stopped"}

    serve(stopped, test_stopped)
