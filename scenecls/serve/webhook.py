"""Alert delivery to ``--webhook URL``: JSON POSTs from a background thread with a timeout
and retries, so a slow or dead receiver never blocks the video loop."""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import threading
import urllib.error
import urllib.request
from typing import Any

log = logging.getLogger("scenecls")


class WebhookSender:
    """Posts payloads to ``url`` in order. ``send`` never blocks: when ``queue_size``
    posts are already waiting, the oldest is dropped (and logged).

    Each post is tried ``attempts`` times, ``timeout`` seconds each, waiting
    ``backoff * 2**n`` seconds between tries. ``delivered`` and ``failed`` count results.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 5.0,
        attempts: int = 4,
        backoff: float = 0.5,
        queue_size: int = 100,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.url = url
        self.timeout = timeout
        self.attempts = max(1, attempts)
        self.backoff = backoff
        self.headers = {"Content-Type": "application/json", **(headers or {})}
        self.delivered = 0
        self.failed = 0
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(maxsize=queue_size)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="scenecls-webhook", daemon=True)
        self._thread.start()

    def send(self, payload: dict[str, Any]) -> None:
        while True:
            try:
                self._queue.put_nowait(payload)
                return
            except queue.Full:
                try:
                    dropped = self._queue.get_nowait()
                    if dropped is not None:
                        self.failed += 1
                        log.warning("webhook queue full: dropped an older alert post")
                except queue.Empty:
                    pass

    def close(self, timeout: float = 2.0) -> None:
        """Stop after the posts already queued, waiting at most ``timeout`` seconds."""
        self._stop.set()
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            self._post(item)

    def _post(self, payload: dict[str, Any]) -> None:
        body = json.dumps(payload).encode()
        for attempt in range(self.attempts):
            request = urllib.request.Request(self.url, body, self.headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    response.read()
                self.delivered += 1
                return
            except (urllib.error.URLError, OSError, ValueError) as e:
                last = e
            if attempt + 1 < self.attempts and self._stop.wait(self.backoff * 2**attempt):
                break
        self.failed += 1
        log.warning("webhook %s failed after %d tries: %s", self.url, attempt + 1, last)
