"""Mismatch episodes: one alert per episode after alert_after seconds, resolved by a
match or by changing/clearing the expectation; webhook delivery with retries."""

from __future__ import annotations

import itertools
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

from scenecls.serve.alerts import MismatchMonitor
from scenecls.serve.events import EventHub
from scenecls.serve.webhook import WebhookSender


def feed(m: MismatchMonitor, labels: str, start: float = 0.0, step: float = 0.5):  # type: ignore[no-untyped-def]
    """Feed one label per step ('r' red, 'b' blue); returns [(time, kind, alert)]."""
    out = []
    for i, ch in enumerate(labels):
        t = start + i * step
        label = {"r": "red", "b": "blue"}[ch]
        out += [(t, kind, a) for kind, a in m.update(label, 0.9, t)]
    return out


def test_no_expectation_no_alert() -> None:
    m = MismatchMonitor("pass", alert_after=1.0)
    assert feed(m, "rrrrrrbbbb") == []


def test_one_alert_per_episode_after_alert_after_then_resolved_by_a_match() -> None:
    m = MismatchMonitor("pass", alert_after=1.0)
    m.expect("blue", "A17", 0.0)
    got = feed(m, "rrrrrrrbbrrrr")
    # mismatch from t=0; alert at t=1.0 (alert_after), once; match at t=3.5 resolves it;
    # the new mismatch from t=4.5 alerts again at t=5.5
    assert [(t, k) for t, k, _ in got] == [(1.0, "alert"), (3.5, "resolved"), (5.5, "alert")]
    first = got[0][2]
    assert (first.expected, first.seen, first.order, first.started) == ("blue", "red", "A17", 0.0)
    assert first.resolution == "matched" and first.resolved == 3.5
    assert got[2][2].id == first.id + 1


def test_a_short_mismatch_does_not_alert() -> None:
    m = MismatchMonitor("pass", alert_after=2.0)
    m.expect("blue", None, 0.0)
    assert feed(m, "bbrrrbbbrrrb") == []  # mismatches of 1.5 s and 1.5 s


def test_changing_or_clearing_the_expectation_resolves_the_alert() -> None:
    m = MismatchMonitor("pass", alert_after=0.5)
    m.expect("blue", None, 0.0)
    (_, kind, alert), = feed(m, "rrr")  # fmt: skip
    assert kind == "alert" and m.active is alert
    ((kind, resolved),) = m.expect("red", None, 2.0)
    assert kind == "resolved" and resolved.resolution == "expectation changed"
    assert feed(m, "rrrr", start=2.0) == []  # now a match
    m.expect("blue", None, 4.0)
    feed(m, "rr", start=4.0)
    ((kind, resolved),) = m.clear(5.0)
    assert resolved.resolution == "expectation cleared" and m.expectation is None
    assert m.clear(6.0) == []


def test_alert_ids_are_unique_across_cameras() -> None:
    ids = itertools.count(1)
    a, b = MismatchMonitor("a", 0.5, ids=ids), MismatchMonitor("b", 0.5, ids=ids)
    a.expect("blue", None, 0)
    b.expect("blue", None, 0)
    got = feed(a, "rr") + feed(b, "rr")
    assert [x.id for _, _, x in got] == [1, 2]


def test_event_history_keeps_the_newest_and_filters_by_kind() -> None:
    hub = EventHub(history=3)
    for i in range(5):
        hub.publish("segment" if i % 2 else "alert", {"n": i}, float(i))
    assert [e["n"] for e in hub.recent()] == [2, 3, 4]
    assert [e["n"] for e in hub.recent(("alert",))] == [2, 4]
    assert [e["id"] for e in hub.recent()] == [3, 4, 5]


class _Receiver(BaseHTTPRequestHandler):
    posts: list[dict] = []  # noqa: RUF012 - shared with the test
    failures_left = 0

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if _Receiver.failures_left > 0:
            _Receiver.failures_left -= 1
            self.send_response(503)
            self.end_headers()
            return
        _Receiver.posts.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_webhook_retries_until_delivered_and_never_blocks_the_caller() -> None:
    server = HTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Receiver.posts, _Receiver.failures_left = [], 2
    sender = WebhookSender(f"http://127.0.0.1:{server.server_port}/hook", backoff=0.05)
    t = time.perf_counter()
    sender.send({"event": "alert", "n": 1})
    sender.send({"event": "alert_resolved", "n": 1})
    assert time.perf_counter() - t < 0.05  # queued, not sent inline
    deadline = time.monotonic() + 5
    while len(_Receiver.posts) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    sender.close()
    server.shutdown()
    assert [p["event"] for p in _Receiver.posts] == ["alert", "alert_resolved"]
    assert (sender.delivered, sender.failed) == (2, 0)


def test_webhook_to_a_dead_receiver_gives_up_with_a_count() -> None:
    sender = WebhookSender("http://127.0.0.1:9/nothing", timeout=0.5, attempts=2, backoff=0.01)
    sender.send({"event": "alert"})
    deadline = time.monotonic() + 5
    while sender.failed == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    sender.close()
    assert (sender.delivered, sender.failed) == (0, 1)
