"""A real ``scenecls serve`` (token, data folder, a real Mosquitto broker, a webhook)
under the attacks of issue 24, one after another, and then the proof that it still
works: the camera is still analysed, MQTT expectations still arrive, alerts still reach
the webhook, and the right token still logs in.

Each attack asserts a clean 4xx (or a closed connection) and no traceback in the log;
docs/security.md lists them. Attacks come from their own loopback addresses
(127.0.0.x), so the rate limit one of them triggers does not lock out the others.
"""

from __future__ import annotations

import concurrent.futures
import http.client
import json
import socket
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
import synthetic_shapes

from .serving import ServeProcess, WebhookReceiver, wait_for
from .test_serve_mqtt import LABELS, MODEL, Broker, Watcher, free_port

TOKEN = "kitchen-token-0123456789abcdef"
SECRET = "s3cret-pass"


class Site:
    """The service under attack, its broker, webhook and MQTT watcher."""

    def __init__(self, tmp: Path) -> None:
        video = tmp / "pass.mp4"
        synthetic_shapes.make_video(video, [("red circle", 0, 2), ("blue ring", 2, 4)], fps=10)
        self.port = free_port()
        self.broker = Broker(tmp / "broker", self.port).start()
        self.watcher = Watcher(self.port, ["scenecls/#"])
        self.webhook = WebhookReceiver()
        self.serve = ServeProcess(
            [str(video), f"rtsp://cook:{SECRET}@127.0.0.1:9/pass", "--name", "pass",
             "--name", "oven", "--model", str(MODEL), "--labels", LABELS, "--templates",
             "{}", "--loop", "--min-dwell", "0.3", "--alert-after", "0.5", "--token", TOKEN,
             "--data", str(tmp / "data"), "--mqtt", f"127.0.0.1:{self.port}", "--webhook",
             self.webhook.url],
            home=tmp / "home",
        )  # fmt: skip
        parsed = urllib.parse.urlsplit(self.serve.url)
        self.host, self.http_port = parsed.hostname or "127.0.0.1", parsed.port or 80

    def call(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        source: str = "127.0.0.1",
    ) -> http.client.HTTPResponse:
        """One request from ``source`` (a loopback address), read whole."""
        conn = http.client.HTTPConnection(
            self.host, self.http_port, timeout=10, source_address=(source, 0)
        )
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        resp.body = resp.read()  # type: ignore[attr-defined]
        conn.close()
        return resp

    def close(self) -> None:
        self.serve.stop()
        self.watcher.close()
        self.webhook.close()
        self.broker.stop()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    s = Site(tmp_path_factory.mktemp("hostile"))
    try:
        wait_for(lambda: s.serve.camera("pass")["frames_analysed"] > 5)
        yield s
    finally:
        s.close()


def _bearer(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _json(token: str = TOKEN) -> dict[str, str]:
    return {**_bearer(token), "Content-Type": "application/json"}


def test_guessing_the_token_is_limited_per_address(site: Site) -> None:
    codes = [
        site.call("GET", "/api/status", headers=_bearer(f"guess-{i}"), source="127.0.0.9").status
        for i in range(40)
    ]
    assert codes.count(401) <= 5 and codes[-1] == 429
    locked = site.call("GET", "/api/status", headers=_bearer(), source="127.0.0.9")
    assert locked.status == 429 and int(locked.getheader("Retry-After") or 0) > 0
    # the right token still works from another address
    assert site.call("GET", "/api/status", headers=_bearer(), source="127.0.0.2").status == 200


def test_a_flood_of_concurrent_logins_gets_only_the_allowed_tries(site: Site) -> None:
    def login(i: int) -> int:
        body = urllib.parse.urlencode({"token": f"wrong-{i}", "next": "/"}).encode()
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        return site.call("POST", "/login", body, form, source="127.0.0.8").status

    with concurrent.futures.ThreadPoolExecutor(40) as pool:
        codes = list(pool.map(login, range(40)))
    assert codes.count(429) >= 35 and set(codes) <= {401, 429}


def test_login_never_redirects_to_another_site(site: Site) -> None:
    for target in ("/\\evil.example", "/\t/evil.example", "//evil.example", "/%5Cevil.example"):
        body = urllib.parse.urlencode({"token": TOKEN, "next": target}).encode()
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        resp = site.call("POST", "/login", body, form, source="127.0.0.7")
        assert resp.status == 303 and resp.getheader("Location") == "/", target


def test_logout_ends_the_session(site: Site) -> None:
    body = urllib.parse.urlencode({"token": TOKEN, "next": "/"}).encode()
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    resp = site.call("POST", "/login", body, form, source="127.0.0.6")
    cookie = (resp.getheader("Set-Cookie") or "").split(";")[0]
    assert cookie.startswith("scenecls_session=")
    assert site.call("GET", "/api/status", headers={"Cookie": cookie}).status == 200
    site.call("POST", "/logout", headers={"Cookie": cookie})
    assert site.call("GET", "/api/status", headers={"Cookie": cookie}).status == 401


@pytest.mark.parametrize(
    "cookie", ["scenecls_session=²1.ab", "scenecls_session=" + "9" * 4400 + ".a.b", "x=\udcff"]
)
def test_a_malformed_cookie_is_401_not_500(site: Site, cookie: str) -> None:
    raw = cookie.encode("utf-8", "surrogateescape")
    with socket.create_connection((site.host, site.http_port), timeout=10) as s:
        s.sendall(b"GET /api/status HTTP/1.1\r\nHost: " + site.host.encode() + b":"
                  + str(site.http_port).encode() + b"\r\nCookie: " + raw
                  + b"\r\nConnection: close\r\n\r\n")  # fmt: skip
        head = s.recv(65536).split(b"\r\n", 1)[0]
    assert head.split()[1] in (b"400", b"401"), head


@pytest.mark.parametrize(
    "headers, body, status",
    [
        ({"Content-Type": "text/plain"}, b'{"camera": "pass", "label": "red ring"}', 415),
        ({"Content-Type": "application/json", "Origin": "http://evil.example"},
         b'{"camera": "pass", "label": "red ring"}', 403),
        ({"Content-Type": "application/json"}, b'{"camera": "pass", "label": "red ring", '
         b'"order": "\\ud800"}', 400),
        ({"Content-Type": "application/json"}, b'{"camera": "pass", "label": ' + b"[" * 30_000,
         400),
        ({"Content-Type": "application/json"}, b'{"camera": "pass", "label": "\xff\xfe"}', 400),
        ({"Content-Type": "application/json"}, b'{"camera": "pass", "label": "' + b"x" * 70_000
         + b'"}', 413),
    ],
    ids=["text-plain", "cross-site", "lone-surrogate", "deep-nesting", "bad-utf8", "oversized"],
)  # fmt: skip
def test_hostile_posts_are_refused_and_change_nothing(
    site: Site, headers: dict[str, str], body: bytes, status: int
) -> None:
    resp = site.call("POST", "/api/expect", body, {**_bearer(), **headers})
    assert resp.status == status, resp.body  # type: ignore[attr-defined]
    expected = site.serve.camera("pass")["expected"] or {}
    assert expected.get("label") != "red ring"


def test_another_host_name_is_refused(site: Site) -> None:
    resp = site.call("GET", "/api/status", headers={**_bearer(), "Host": "evil.example"})
    assert resp.status in (400, 421)


def test_malformed_http_gets_a_clean_400(site: Site) -> None:
    for junk in (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64,
                 b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\n\r\n",
                 b"GET / HTTP/1.1\r\nX: \xff\xfe\r\n" + b"H: v\r\n" * 500 + b"\r\n"):  # fmt: skip
        with socket.create_connection((site.host, site.http_port), timeout=10) as s:
            s.sendall(junk)
            reply = s.recv(4096)
        assert reply == b"" or reply.split()[1] in (b"400", b"413", b"431"), reply[:80]


def test_the_page_has_the_security_headers_and_health_says_only_ok(site: Site) -> None:
    page = site.call("GET", "/", headers=_bearer())
    assert page.status == 200
    assert "default-src" in (page.getheader("Content-Security-Policy") or "")
    assert page.getheader("X-Frame-Options") == "DENY"
    assert page.getheader("X-Content-Type-Options") == "nosniff"
    health = site.call("GET", "/healthz")
    assert json.loads(health.body) == {"status": "ok"}  # type: ignore[attr-defined]


def test_mqtt_payloads_that_would_kill_the_bridge_are_dropped(site: Site) -> None:
    topic = "scenecls/pass/expect/set"
    site.watcher.publish(topic, '{"label":"x","order":' + "[" * 100_000)
    site.watcher.publish(topic, json.dumps({"label": "x" * 1_000_000}))
    site.watcher.publish(topic, '{"label": "red ring", "order": "\\ud800"}')
    site.watcher.publish(topic, json.dumps({"label": "blue ring", "order": "A17"}))
    wait_for(
        lambda: (site.serve.camera("pass")["expected"] or {}).get("order") == "A17", timeout=10
    )
    assert site.serve.status()["mqtt"]["connected"] is True


def test_camera_passwords_never_leave(site: Site) -> None:
    status = json.dumps(site.serve.status())
    assert SECRET not in status and "rtsp://" in status
    assert all(SECRET not in line for line in site.serve.log)
    assert all(SECRET not in payload for _, _, payload, _ in site.watcher.messages)


def test_slow_clients_are_cut_off_and_the_service_still_works(site: Site) -> None:
    # slow-loris: half a request head, never finished
    slow = []
    for _ in range(20):
        s = socket.create_connection((site.host, site.http_port), timeout=30)
        s.sendall(b"GET /api/status HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        slow.append(s)
    # readers of the live view that never read
    lazy = []
    for _ in range(10):
        s = socket.create_connection((site.host, site.http_port), timeout=30)
        s.sendall(f"GET /stream/pass.mjpg HTTP/1.1\r\nHost: {site.host}:{site.http_port}\r\n"
                  f"Authorization: Bearer {TOKEN}\r\n\r\n".encode())  # fmt: skip
        lazy.append(s)
    before = site.serve.camera("pass")["frames_analysed"]
    time.sleep(2)
    # meanwhile the camera is analysed, and a mismatch reaches the webhook
    assert site.serve.camera("pass")["frames_analysed"] > before
    site.serve.request("POST", "/api/expect", {"camera": "pass", "label": "green ring"})
    wait_for(lambda: any(p.get("event") == "alert" for p in site.webhook.posts), timeout=15)
    # the slow heads are answered 408 (or closed) within the service's head timeout
    deadline = time.monotonic() + 15
    for s in slow:
        s.settimeout(max(0.1, deadline - time.monotonic()))
        reply = s.recv(4096)
        assert reply == b"" or b" 408 " in reply.split(b"\r\n", 1)[0], reply[:80]
        s.close()
    for s in lazy:
        s.close()
    assert site.serve.proc.poll() is None
    assert not [line for line in site.serve.log if "Traceback" in line]
