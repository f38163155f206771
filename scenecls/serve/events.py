"""Events of the service (segment changes, expectations, alerts, sources lost/restored,
regions changed, cameras taught from corrections):
published from any thread, delivered to asyncio subscribers (server-sent events) and
kept in a short history for the page."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

log = logging.getLogger("scenecls")

EVENT_TYPES = (
    "segment",
    "expectation_set",
    "expectation_cleared",
    "alert",
    "alert_resolved",
    "source_lost",
    "source_restored",
    "region_changed",
    "taught",
)


class EventHub:
    """Thread-safe publish; each subscriber gets an ``asyncio.Queue`` on the server's loop.

    A subscriber that does not keep up (queue full) loses its oldest events rather than
    slowing the video loop.
    """

    def __init__(self, history: int = 200, queue_size: int = 256) -> None:
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self.history: deque[dict[str, Any]] = deque(maxlen=history)
        self._subscribers: set[asyncio.Queue[dict[str, Any]]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue_size = queue_size
        self._listeners: list[Callable[[dict[str, Any]], None]] = []

    def add_listener(self, listener: Callable[[dict[str, Any]], None]) -> None:
        """Call ``listener(event)`` for every later event, on the publishing thread: it
        must not wait (the MQTT bridge only queues)."""
        with self._lock:
            self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[dict[str, Any]], None]) -> None:
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """The event loop that subscribers live on."""
        self._loop = loop

    def publish(self, kind: str, data: dict[str, Any], time: float) -> dict[str, Any]:
        """Record an event of ``kind`` (one of :data:`EVENT_TYPES`) and fan it out."""
        with self._lock:
            event = {"id": next(self._ids), "type": kind, "time": round(time, 3), **data}
            self.history.append(event)
            subscribers = list(self._subscribers)
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(event)
            except Exception:  # a listener's bug must not stop the video
                log.exception("an event listener failed")
        loop = self._loop
        if loop is not None and subscribers and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(self._deliver, subscribers, event)
        return event

    @staticmethod
    def _deliver(subscribers: list[asyncio.Queue[dict[str, Any]]], event: dict[str, Any]) -> None:
        for q in subscribers:
            if q.full():
                q.get_nowait()
            q.put_nowait(event)

    def subscribe(self) -> asyncio.Queue[dict[str, Any]]:
        """A new queue that receives every later event (call on the server's loop)."""
        q: asyncio.Queue[dict[str, Any]] = asyncio.Queue(self._queue_size)
        with self._lock:
            self._subscribers.add(q)
        return q

    def unsubscribe(self, q: asyncio.Queue[dict[str, Any]]) -> None:
        with self._lock:
            self._subscribers.discard(q)

    def recent(self, kinds: tuple[str, ...] | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """The newest events (optionally only of ``kinds``), oldest first."""
        with self._lock:
            items = [e for e in self.history if kinds is None or e["type"] in kinds]
        return items[-limit:]
