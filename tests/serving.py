"""Helpers for the service tests: run `scenecls serve` as a real process on loopback,
talk to it over HTTP, and receive its webhook posts."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


class ServeProcess:
    """``scenecls serve ARGS --port 0`` in a subprocess; ``url`` once it listens.
    ``token``: the server's ``--token`` (sent by :meth:`request` unless told otherwise)."""

    def __init__(self, args: list[str], home: Path, timeout: float = 60.0) -> None:
        self.token = args[args.index("--token") + 1] if "--token" in args else ""
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "SCENECLS_HOME": str(home)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "scenecls", "serve", *args, "--port", "0"],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.log: list[str] = []
        self._ready = threading.Event()
        self.url = ""
        threading.Thread(target=self._read, daemon=True).start()
        if not self._ready.wait(timeout) or not self.url:
            self.stop()
            raise RuntimeError("scenecls serve did not start:\n" + "".join(self.log))

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.log.append(line)
            m = re.search(r"on (http://\S+?)/?$", line.strip())
            if m and "serving" in line:
                self.url = m.group(1)
                self._ready.set()
        self._ready.set()

    def stop(self, timeout: float = 10.0) -> int:
        """SIGINT (as Ctrl-C), then the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                return self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise
        return self.proc.returncode

    def request(
        self, method: str, path: str, body: Any = None, token: str | None = None,
        raw: bytes | None = None, headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:  # fmt: skip
        """(status, parsed JSON or text) of one request; 4xx/5xx do not raise.
        ``token``: sent as a bearer token (None: the server's own; "": none)."""
        data = raw if raw is not None else None if body is None else json.dumps(body).encode()
        sent = {"Content-Type": "application/json", **(headers or {})}
        status, got, payload = self.raw(method, path, data, token, sent)
        if "json" in got.get("Content-Type", ""):
            return status, json.loads(payload)
        return status, payload.decode("utf-8", "replace")

    def raw(
        self, method: str, path: str, data: bytes | None = None, token: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:  # fmt: skip
        """(status, response headers, body bytes) of one request, as :meth:`request`."""
        req = urllib.request.Request(self.url + path, data=data, method=method)
        token = self.token if token is None else token
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        for key, value in (headers or {}).items():
            req.add_header(key, value)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    def status(self) -> dict[str, Any]:
        code, body = self.request("GET", "/api/status")
        assert code == 200, body
        return body

    def camera(self, name: str) -> dict[str, Any]:
        return next(c for c in self.status()["cameras"] if c["name"] == name)


@contextlib.contextmanager
def red_circle_service(
    folder: Path, model: Path, labels: str, token: str, *more: str
) -> Iterator[ServeProcess]:
    """``scenecls serve`` with ``--token`` on one camera, ``pass``, looping 30 s of a red
    circle, once it has labelled a frame; stopped on the way out."""
    video = folder / "pass.mp4"
    import synthetic_shapes  # scripts/ is on the path (conftest)

    synthetic_shapes.make_video(video, [("red circle", 0, 30)], fps=10)
    s = ServeProcess(
        [str(video), "--name", "pass", "--model", str(model), "--labels", labels, "--loop",
         "--token", token, *more],
        home=folder / "home",
    )  # fmt: skip
    try:
        wait_for(lambda: s.camera("pass")["label"] is not None)
        yield s
    finally:
        s.stop()


def wait_for(check: Callable[[], Any], timeout: float = 20.0, every: float = 0.1) -> Any:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"condition not met within {timeout} s (last: {last!r})")


class EventListener:
    """Reads ``/api/events`` (server-sent events) on a thread into ``events``."""

    def __init__(self, url: str, token: str = "") -> None:
        self.events: list[dict[str, Any]] = []
        req = urllib.request.Request(url + "/api/events")
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        self._resp = urllib.request.urlopen(req, timeout=60)
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        try:
            for raw in self._resp:
                line = raw.decode().rstrip("\n")
                if line.startswith("data: "):
                    self.events.append(json.loads(line[6:]))
        except (OSError, ValueError, AttributeError):  # closed by close(): the end
            pass

    def of(self, kind: str, camera: str | None = None) -> list[dict[str, Any]]:
        return [
            e
            for e in self.events
            if e["type"] == kind and (camera is None or e["camera"] == camera)
        ]

    def close(self) -> None:
        self._resp.close()


class WebhookReceiver:
    """A local HTTP server that records JSON POSTs."""

    def __init__(self) -> None:
        posts: list[dict[str, Any]] = []
        self.posts = posts

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                posts.append(json.loads(body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
