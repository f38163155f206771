"""Alert delivery to ``--webhook URL``: JSON POSTs from a background thread, so a slow or
dead receiver never blocks the video loop.

The receiver is not trusted to behave: each try has a total deadline (connecting,
sending, and reading the answer's status line and headers: a receiver that trickles its
answer is cut off when it passes), the answer's body is not read at all (a 2xx status is
delivery), and whatever goes wrong in a try is caught, counted, logged (one line per kind
of problem every 10 s, without the URL's path, where Slack-style webhooks keep their
secret) and shown in ``/api/status`` (``webhook``). The queue is bounded: when it is full
the oldest post is dropped and counted.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import logging
import queue
import socket
import threading
import time
from typing import Any
from urllib.parse import unquote, urlsplit

from ..redact import url_origin
from .guard import Trouble, describe

log = logging.getLogger("scenecls")

DEADLINE = 10.0  # seconds for one try, answer included
QUEUE_SIZE = 100


class _Try:
    """One connection under a deadline: :meth:`expire` (from a timer thread) shuts its
    socket down, so a read that is waiting for a trickling receiver ends at once."""

    def __init__(self, connection: http.client.HTTPConnection) -> None:
        self.connection = connection
        self.expired = False

    def expire(self) -> None:
        self.expired = True
        sock = self.connection.sock
        if sock is not None:
            with contextlib.suppress(OSError):  # the base method: an SSL socket too
                socket.socket.shutdown(sock, socket.SHUT_RDWR)


class WebhookSender:
    """Posts payloads to ``url`` in order. ``send`` never blocks: when ``queue_size``
    posts are already waiting, the oldest is dropped (counted in ``dropped``, logged).

    Each post is tried ``attempts`` times, each try at most ``deadline`` seconds in all
    (``timeout``: for one network operation within it), waiting ``backoff * 2**n``
    seconds between tries. ``delivered`` and ``failed`` count posts; ``errors`` counts
    failures of the worker itself (a payload that is not JSON), which then goes on.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 5.0,
        deadline: float = DEADLINE,
        attempts: int = 4,
        backoff: float = 0.5,
        queue_size: int = QUEUE_SIZE,
        headers: dict[str, str] | None = None,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"the webhook must be an http:// or https:// URL: {url_origin(url)}")
        self.url = url
        self.where = url_origin(url)  # what logs and the status show of it
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.timeout = timeout
        self.deadline = deadline
        self.attempts = max(1, attempts)
        self.backoff = backoff
        self.headers = {"Content-Type": "application/json", **(headers or {})}
        if parts.username is not None:  # https://user:password@host/...: basic auth
            login = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            self.headers.setdefault(
                "Authorization", "Basic " + base64.b64encode(login.encode()).decode()
            )
        self.delivered = 0
        self.failed = 0
        self.dropped = 0
        self.trouble = Trouble("webhook")
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(maxsize=queue_size)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="scenecls-webhook", daemon=True)
        self._thread.start()

    def send(self, payload: dict[str, Any]) -> None:
        """Queue ``payload`` for posting; never blocks (drops the oldest when full)."""
        while True:
            try:
                self._queue.put_nowait(payload)
                return
            except queue.Full:
                try:
                    dropped = self._queue.get_nowait()
                except queue.Empty:
                    continue
                if dropped is not None:
                    self.dropped += 1
                    self.trouble.report(
                        "dropped",
                        f"queue of {self._queue.maxsize} full ({self.where} is slow or away): "
                        f"dropped an older alert post ({self.dropped} in all)",
                    )

    def close(self, timeout: float = 2.0) -> None:
        """Stop after the posts already queued, waiting at most ``timeout`` seconds."""
        self._stop.set()
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(None)
        self._thread.join(timeout)

    def status(self) -> dict[str, Any]:
        """For ``/api/status``: the receiver (scheme, host and port only), counters and
        the last problem."""
        return {
            "receiver": self.where,
            "delivered": self.delivered,
            "failed": self.failed,
            "dropped": self.dropped,
            "errors": self.trouble.count("error"),
            "queued": self._queue.qsize(),
            "queue_limit": self._queue.maxsize,
            "worker": self._thread.is_alive(),
            **self.trouble.status(),
        }

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            try:
                self._post(item)
            except Exception as e:  # the worker goes on with the next post
                self.trouble.report("error", f"a post failed: {describe(e)}", error=e)

    def _post(self, payload: dict[str, Any]) -> None:
        body = json.dumps(payload).encode()
        last = "not tried"
        for attempt in range(self.attempts):
            try:
                status = self._try(body)
            except Exception as e:  # a receiver's misbehaviour, whatever it is
                last = describe(e)
            else:
                if 200 <= status < 300:
                    self.delivered += 1
                    return
                last = f"HTTP {status}"
            if attempt + 1 < self.attempts and self._stop.wait(self.backoff * 2**attempt):
                break
        self.failed += 1
        self.trouble.report(
            "failed",
            f"{self.where} failed after {attempt + 1} tries: {last} ({self.failed} in all)",
        )

    def _try(self, body: bytes) -> int:
        """POST ``body`` once; its HTTP status. Raises ``TimeoutError`` when the answer's
        headers are not in within :attr:`deadline` seconds of the start."""
        cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
        connection = cls(self._host, self._port, timeout=min(self.timeout, self.deadline))
        attempt = _Try(connection)
        timer = threading.Timer(self.deadline, attempt.expire)
        timer.daemon = True
        started = time.monotonic()
        timer.start()
        try:
            connection.request("POST", self._path, body, self.headers)
            if attempt.expired:
                raise TimeoutError
            status = connection.getresponse().status  # the body is never read
            if attempt.expired:
                raise TimeoutError
            return status
        except Exception as e:
            if attempt.expired or time.monotonic() - started >= self.deadline:
                raise TimeoutError(f"no answer within {self.deadline:g} s") from e
            raise
        finally:
            timer.cancel()
            connection.close()
