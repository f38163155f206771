"""Connections of ``scenecls serve`` that hold on without asking for anything (slow-loris),
too many of them, and malformed HTTP: what the service does about each.

- **Request heads on time.** A connection has :data:`HEAD_TIMEOUT` seconds from opening
  to send its first complete request head (the request line and the headers); one that
  trickles its headers, or says nothing, is answered 408 and closed. Later requests on
  a kept-alive connection must start within :data:`IDLE_TIMEOUT` of the previous
  response and their head must be complete by then: aiohttp's own keep-alive timer
  closes a connection that waits for a head past it (idle or trickling alike).
- **Bodies on time.** A request body (at most 64 KB here) must arrive within
  :data:`BODY_TIMEOUT` s (408); a ``Content-Length`` over the limit is refused (413)
  before a byte of the body is read (see :mod:`.app`). After such a refusal (or any
  reply that left a body unread) the rest of the body is read for at most
  :data:`LINGER` s, then the connection is closed.
- **Streams that nobody reads.** The live view and the event stream write as fast as the
  client reads (backpressure); a client that reads nothing for :data:`WRITE_STALL` s is
  dropped (:func:`write_or_drop`). Streams that are read stay open as long as wanted:
  none of the timeouts above applies to a request being answered.
- **A cap.** At most :data:`MAX_CONNECTIONS` connections at once, and
  :data:`MAX_PER_CLIENT` from one IP address; a connection beyond either is answered 503
  with ``Retry-After`` and closed at once, before a request is read
  (:class:`ConnectionGuard`).
- **Malformed HTTP** (a garbage request line, a header line over 8 KB, more than 128
  headers, bytes that are not HTTP): aiohttp's parser answers 400 and closes; its log of
  it (a traceback at ERROR level otherwise) becomes one WARNING line at most every
  10 s, with how many there were (:class:`HttpLog`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

log = logging.getLogger("scenecls")

HEAD_TIMEOUT = 10.0
"""Seconds a new connection has to send a complete request head."""
IDLE_TIMEOUT = 10.0
"""Seconds a kept-alive connection may wait for its next request head."""
BODY_TIMEOUT = 10.0
"""Seconds a request has to send its body."""
WRITE_STALL = 20.0
"""Seconds a stream's write may wait for a client that reads nothing."""
LINGER = 2.0
"""Seconds the unread rest of a request body is read (and dropped) after the reply."""
MAX_CONNECTIONS = 256
"""Open connections at once, all clients together."""
MAX_PER_CLIENT = 128
"""Open connections at once from one IP address."""
LOG_EVERY = 10.0
"""Seconds between two log lines about malformed requests, or about the cap."""

_HEAD_ENDS = (b"\r\n\r\n", b"\n\n", b"\n\r\n")


def _reply(status: str, message: str, extra: str = "") -> bytes:
    """A whole HTTP/1.1 response that closes the connection: ``{"error": message}``."""
    body = json.dumps({"error": message}).encode()
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: application/json; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n{extra}\r\n"
    )
    return head.encode("ascii") + body


TIMEOUT_REPLY = _reply(
    "408 Request Timeout",
    f"the request head did not arrive within {HEAD_TIMEOUT:g} s: send it whole",
)


class _Limiter:
    """Counts events of one kind and says when one may be logged: the first, then at
    most one every ``every`` seconds (with how many were not logged since)."""

    def __init__(self, every: float = LOG_EVERY, clock: Callable[[], float] = time.monotonic):
        self.every = every
        self.clock = clock
        self._last: float | None = None
        self._skipped = 0

    def due(self) -> int | None:
        """None: do not log this one; else log it, with the returned count of those not
        logged since the last line."""
        now = self.clock()
        if self._last is not None and now - self._last < self.every:
            self._skipped += 1
            return None
        skipped, self._skipped, self._last = self._skipped, 0, now
        return skipped


def _one_line(text: str, limit: int = 120) -> str:
    """``text`` as one printable line of at most ``limit`` characters (a client's bytes
    may be in it: control characters are escaped)."""
    line = " ".join(str(text).split())
    line = line.encode("ascii", "backslashreplace").decode("ascii")
    line = "".join(c if c.isprintable() else repr(c)[1:-1] for c in line)
    return line if len(line) <= limit else line[: limit - 3] + "..."


class HttpLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """The logger handed to aiohttp's HTTP server (``RequestHandler(logger=...)``).

    aiohttp logs each malformed request (its parser's ``HttpProcessingError``) with a
    traceback at ERROR level; a client can send those as fast as it likes. Here they
    become one WARNING line at most every :data:`LOG_EVERY` s (the traceback only in the
    debug log). Anything else goes to the ``scenecls`` log unchanged."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        super().__init__(logger or logging.getLogger("scenecls.http"), {})
        self._limiter = _Limiter()
        self.malformed = 0

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info")
        if exc is True:
            import sys

            exc = sys.exc_info()[1]
        if isinstance(exc, HttpProcessingError):
            self._malformed(exc, args, quiet=level < logging.WARNING)
            return
        super().log(level, msg, *args, **kwargs)

    def _malformed(self, exc: HttpProcessingError, args: tuple[Any, ...], quiet: bool) -> None:
        """One malformed request from ``args[0]``: counted, its traceback in the debug
        log, a WARNING line when due (``quiet``: aiohttp itself thought it not worth one)."""
        self.malformed += 1
        client = args[0] if args else "?"
        self.logger.debug("malformed HTTP request from %s", client, exc_info=exc)
        if quiet:
            return
        skipped = self._limiter.due()
        if skipped is None:
            return
        more = f" ({skipped} more since the last such line)" if skipped else ""
        what = _one_line(getattr(exc, "message", "") or type(exc).__name__)
        self.logger.warning(
            "malformed HTTP request from %s refused (400): %s%s", client, what, more
        )


def runner_options() -> dict[str, Any]:
    """Keyword arguments of :class:`aiohttp.web.AppRunner` for a service on a network:
    the idle keep-alive timeout, how long an unread body is read after the reply, and
    the logger of :class:`HttpLog`."""
    return {"keepalive_timeout": IDLE_TIMEOUT, "lingering_time": LINGER, "logger": HttpLog()}


class _Connection(asyncio.Protocol):
    """One accepted connection: refused when over the cap, else handed to aiohttp's
    protocol (``inner``) with a deadline for the first request head."""

    def __init__(self, guard: ConnectionGuard) -> None:
        self._guard = guard
        self._inner: asyncio.Protocol | None = None
        self._client: str | None = None
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._tail = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        peer = transport.get_extra_info("peername")
        client = str(peer[0]) if isinstance(peer, tuple | list) and peer else "?"
        refusal = self._guard.admit(client)
        if refusal is not None:
            transport.write(refusal)
            transport.close()
            return
        self._client = client
        self._transport = transport
        self._timer = asyncio.get_running_loop().call_later(
            self._guard.head_timeout, self._head_late
        )
        self._inner = self._guard.protocol()
        self._inner.connection_made(transport)

    def head_done(self) -> None:
        """The request head is in: its deadline is off."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
            self._tail = b""

    def _head_late(self) -> None:
        self._timer = None
        if self._transport is not None and not self._transport.is_closing():
            self._guard.late_heads += 1
            self._transport.write(TIMEOUT_REPLY)
            self._transport.close()

    def data_received(self, data: bytes) -> None:
        if self._timer is not None:  # looking for the end of the first head
            seen = self._tail + data
            if any(end in seen for end in _HEAD_ENDS):
                self.head_done()
            else:
                self._tail = seen[-3:]
        if self._inner is not None:
            self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._inner is not None else None

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self.head_done()
        if self._client is not None:
            self._guard.release(self._client)
            self._client = None
        if self._inner is not None:
            self._inner.connection_lost(exc)
            self._inner = None
        self._transport = None


class ConnectionGuard:
    """The protocol factory of the listening socket: counts open connections (all, and
    per client address), refuses those beyond :data:`MAX_CONNECTIONS` or
    :data:`MAX_PER_CLIENT`, and gives every connection :data:`HEAD_TIMEOUT` s to send
    its first request head. ``protocol``: aiohttp's factory (``AppRunner.server``)."""

    def __init__(
        self,
        protocol: Callable[[], asyncio.Protocol],
        *,
        max_connections: int = MAX_CONNECTIONS,
        max_per_client: int = MAX_PER_CLIENT,
        head_timeout: float = HEAD_TIMEOUT,
    ) -> None:
        self.protocol = protocol
        self.max_connections = max_connections
        self.max_per_client = max_per_client
        self.head_timeout = head_timeout
        self.open = 0
        self.per_client: dict[str, int] = {}
        self.refused = 0
        self.late_heads = 0
        self._limiter = _Limiter()

    def __call__(self) -> asyncio.Protocol:
        return _Connection(self)

    def admit(self, client: str) -> bytes | None:
        """Count a new connection from ``client``; None when it may go on, else the
        reply that refuses it."""
        mine = self.per_client.get(client, 0)
        if self.open >= self.max_connections:
            why = f"too many connections ({self.max_connections} open)"
        elif mine >= self.max_per_client:
            why = f"too many connections from {client} ({self.max_per_client} open)"
        else:
            self.open += 1
            self.per_client[client] = mine + 1
            return None
        self.refused += 1
        skipped = self._limiter.due()
        if skipped is not None:
            more = f" ({skipped} more refused since the last such line)" if skipped else ""
            log.warning("connection from %s refused: %s%s", client, why, more)
        return _reply(
            "503 Service Unavailable",
            f"{why}: close some, or try again later",
            "Retry-After: 5\r\n",
        )

    def release(self, client: str) -> None:
        """A connection from ``client`` that :meth:`admit` let in has closed."""
        self.open -= 1
        left = self.per_client.get(client, 1) - 1
        if left > 0:
            self.per_client[client] = left
        else:
            self.per_client.pop(client, None)


def head_done(request: web.BaseRequest) -> None:
    """Tell ``request``'s connection that its head arrived (it did: aiohttp parsed it), in
    case the bytes did not show where the head ended."""
    transport = request.transport
    connection = transport.get_protocol() if transport is not None else None
    if isinstance(connection, _Connection):
        connection.head_done()


async def listen(
    runner: web.AppRunner, host: str, port: int, *, backlog: int = 128
) -> tuple[asyncio.Server, ConnectionGuard]:
    """Listen on ``host``:``port`` for ``runner``'s application (set up already) through a
    :class:`ConnectionGuard`; in place of aiohttp's ``TCPSite``. Close the returned
    server before ``runner.cleanup()``."""
    server = runner.server
    assert server is not None, "runner.setup() first"
    guard = ConnectionGuard(server)
    loop = asyncio.get_running_loop()
    listening = await loop.create_server(guard, host or None, port, backlog=backlog)
    return listening, guard


async def write_or_drop(
    request: web.BaseRequest, response: web.StreamResponse, data: bytes
) -> None:
    """``response.write(data)``, but a client that has read nothing for
    :data:`WRITE_STALL` s is dropped (its connection aborted) and
    ``ConnectionResetError`` raised, as when it goes away."""
    try:
        await asyncio.wait_for(response.write(data), WRITE_STALL)
    except asyncio.TimeoutError:
        transport = request.transport
        if transport is not None:
            transport.abort()
        raise ConnectionResetError(f"the client read nothing for {WRITE_STALL:g} s") from None
