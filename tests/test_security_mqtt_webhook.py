"""Hostile brokers and receivers (issue 24, items 4, 5, 8, 9 and 10): what anyone on the
MQTT broker can publish, and what a webhook receiver can answer, must never stop the
bridge, the webhook worker or the video, nor grow a log line or ``/api/status``.

The MQTT tests run an in-process service and bridge against a real Mosquitto on a free
loopback port (the helpers of ``test_serve_mqtt.py``); the webhook tests against local
receivers that misbehave on purpose.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import synthetic_shapes  # scripts/ is on the path (conftest)

from scenecls.cli import main
from scenecls.model.labels import resolve_labels
from scenecls.model.scene_model import load_model
from scenecls.serve.guard import Trouble
from scenecls.serve.mqtt import EXPECT_LIMIT, MqttBridge, MqttConfig
from scenecls.serve.service import Service
from scenecls.serve.webhook import WebhookSender

from .conftest import LogLines
from .outputs import one_line_error
from .serving import wait_for
from .test_fuzz_api import Api
from .test_serve_mqtt import Broker, Watcher, free_port

MODEL = Path(__file__).parent / "fixtures" / "shapes-clip"
LABELS = ",".join(synthetic_shapes.CLASSES)
EXPECT = "scenecls/pass/expect/set"
SECRET = "T0-B0-not-for-logs"  # a Slack-style webhook keeps its secret in the path


@pytest.fixture
def logs(scenecls_log: LogLines) -> LogLines:
    return scenecls_log


# -- a webhook receiver that misbehaves on purpose ----------------------------------------


class Receiver:
    """An HTTP/1.1 server on a raw socket: each POST's JSON ``mode`` says how it answers:
    ``good`` (204, recorded), ``trickle-headers`` (a status line, then a header one byte
    every 0.1 s, forever), ``trickle-body`` (200 and headers, then the body one byte every
    0.1 s, forever), ``huge`` (200 and a 10 MB body) or ``silent`` (reads, never answers)."""

    def __init__(self) -> None:
        self.posts: list[tuple[float, dict[str, Any]]] = []
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}/hook/{SECRET}"
        self.closed = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed.is_set():
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            try:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                head, _, body = data.partition(b"\r\n\r\n")
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                while len(body) < length:
                    body += conn.recv(65536)
                payload = json.loads(body)
                self._answer(conn, payload.get("mode", "good"), payload)
            except OSError:  # the sender gave up on us: as meant
                pass

    def _answer(self, conn: socket.socket, mode: str, payload: dict[str, Any]) -> None:
        if mode == "good":
            self.posts.append((time.monotonic(), payload))
            conn.sendall(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
        elif mode == "trickle-headers":
            conn.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
            self._trickle(conn)
        elif mode == "trickle-body":
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n")
            self._trickle(conn)
        elif mode == "huge":
            size = 10 * 1024 * 1024
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
            conn.sendall(b"x" * size)
        elif mode == "silent":
            self.closed.wait(30)

    def _trickle(self, conn: socket.socket) -> None:
        while not self.closed.wait(0.1):
            conn.sendall(b"a")

    def close(self) -> None:
        self.closed.set()
        self.server.close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    try:
        yield r
    finally:
        r.close()


# -- an in-process kitchen with a bridge to a real broker ---------------------------------


@dataclass
class Kitchen:
    broker: Broker
    service: Service
    bridge: MqttBridge
    api: Api
    watcher: Watcher
    receiver: Receiver

    def expected(self) -> dict[str, Any] | None:
        """The ``pass`` camera's expectation as ``GET /api/status`` shows it."""
        reply = self.api.request("GET", "/api/status")
        assert reply.status == 200
        cameras = json.loads(reply.body)["cameras"]
        return next(c for c in cameras if c["name"] == "pass")["expected"]

    def mqtt(self) -> dict[str, Any]:
        return self.service.status()["mqtt"]


@pytest.fixture(scope="module")
def model():  # type: ignore[no-untyped-def]
    return load_model(MODEL, device="cpu", precision="fp32")


@pytest.fixture(scope="module")
def kitchen(model, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kitchen]:  # type: ignore[no-untyped-def]
    folder = tmp_path_factory.mktemp("hostile")
    video = folder / "pass.mp4"
    synthetic_shapes.make_video(video, [("red circle", 0, 2), ("blue ring", 2, 4)], fps=10)
    port = free_port()
    broker = Broker(folder / "broker", port).start()
    receiver = Receiver()
    webhook = WebhookSender(receiver.url, deadline=2.0, attempts=1)
    service = Service(model, resolve_labels(LABELS), [("pass", str(video))], loop=True,
                      alert_after=0.5, webhook=webhook)  # fmt: skip
    api = Api(service)
    bridge = MqttBridge(service, MqttConfig("127.0.0.1", port))
    watcher = Watcher(port, ["scenecls/events"])  # its own handler takes only UTF-8
    try:
        api.run(api.start())
        service.start()
        bridge.start()
        wait_for(lambda: bridge.status()["connected"])
        yield Kitchen(broker, service, bridge, api, watcher, receiver)
    finally:
        bridge.stop()
        watcher.close()
        api.shutdown()
        broker.stop()
        receiver.close()


@pytest.fixture
def fresh(kitchen: Kitchen, logs: LogLines) -> Kitchen:
    """The kitchen with no expectation and its MQTT log limits reset (each test sees its
    own first log line)."""
    kitchen.bridge.trouble = Trouble("MQTT")
    kitchen.service.clear_expectation("pass")
    return kitchen


def test_a_deeply_nested_mqtt_payload_does_not_stop_the_bridge(fresh: Kitchen, logs) -> None:  # type: ignore[no-untyped-def]
    k = fresh
    # the payload of the report: 100,000 '[' (over the size limit: never parsed)
    k.watcher.publish(EXPECT, '{"label":"x","order":' + "[" * 100_000)
    # (each refusal seen before the next message: on a loaded machine the 100 kB one
    # can take a while through the broker)
    wait_for(lambda: k.mqtt()["refused"] >= 1, timeout=60)
    # nested within the size limit: refused before the parser sees it
    nested = '{"label":"red circle","order":' + "[" * (EXPECT_LIMIT - 40)
    assert len(nested) <= EXPECT_LIMIT
    k.watcher.publish(EXPECT, nested)
    wait_for(lambda: k.mqtt()["refused"] >= 2, timeout=60)
    # counted, then logged (on paho's thread): the line, or at least the status's last error
    wait_for(
        lambda: (
            logs.having("nests more than") or "nests more than" in (k.mqtt()["last_error"] or "")
        ),
        timeout=5,
    )

    # whatever a handler raises (here RecursionError) is caught, counted, logged once
    real = k.bridge._expect

    def boom(camera: str, payload: str) -> None:
        raise RecursionError("maximum recursion depth exceeded")

    k.bridge._expect = boom  # type: ignore[method-assign]
    try:
        for _ in range(3):
            k.watcher.publish(EXPECT, "red circle")
        wait_for(lambda: k.mqtt()["errors"] >= 3)
    finally:
        k.bridge._expect = real  # type: ignore[method-assign]
    assert len(logs.having("on_message failed: RecursionError")) == 1

    # the bridge still works, and says so
    k.watcher.publish(EXPECT, '{"label": "Blue Ring", "order": "1042"}')
    wait_for(lambda: (k.expected() or {}).get("order") == "1042")
    assert k.expected()["label"] == "blue ring"  # type: ignore[index]
    status = k.mqtt()
    assert status["connected"] is True and status["last_error"]


def test_a_1mb_mqtt_payload_is_dropped_with_one_short_log_line(fresh: Kitchen, logs) -> None:  # type: ignore[no-untyped-def]
    k = fresh
    before = k.mqtt()["refused"]
    k.watcher.publish(EXPECT, "x" * 1_000_000)  # a 1 MB label
    k.watcher.publish(EXPECT, json.dumps({"label": "red circle", "order": "1" * 1_000_000}))
    wait_for(lambda: k.mqtt()["refused"] >= before + 2)
    dropped = logs.having("bytes dropped")
    assert len(dropped) == 1, dropped
    assert "1000000 bytes dropped: at most 4096" in dropped[0]
    assert max(len(line) for line in logs.lines) < 300
    assert k.expected() is None
    assert len(json.dumps(k.service.status())) < 20_000
    # a long label or order under the byte limit is refused too, in one short line
    k.watcher.publish(EXPECT, json.dumps({"label": "red circle", "order": "7" * 201}))
    wait_for(lambda: logs.having("201 characters long"))
    assert k.expected() is None


def test_a_lone_surrogate_or_control_character_is_refused(fresh: Kitchen, logs) -> None:  # type: ignore[no-untyped-def]
    k = fresh
    # over MQTT: JSON's escape of a lone surrogate, bytes that are not UTF-8, a NUL
    k.watcher.publish(EXPECT, '{"label": "red circle", "order": "\\ud800"}')
    wait_for(lambda: logs.having("lone surrogate (U+D800)"))
    k.watcher.client.publish(EXPECT, b'{"label": "red circle", "order": "\xff\xfe"}', qos=1)
    wait_for(lambda: logs.having("not UTF-8"))
    k.watcher.publish(EXPECT, '{"label": "red circle", "order": "a\\u0000b"}')
    # the same kind of problem again within 10 s: counted and shown, not logged again
    wait_for(lambda: "control character (U+0000)" in (k.mqtt()["last_error"] or ""))
    assert k.mqtt()["refused"] == 3 and k.expected() is None
    assert len(logs.having("MQTT:")) == 2

    # over HTTP: the same check, a clean 400
    def post(order: str) -> Any:
        body = '{"camera": "pass", "label": "red circle", "order": "' + order + '"}'
        return k.api.request("POST", "/api/expect", data=body.encode(),
                             headers={"Content-Type": "application/json"})  # fmt: skip

    for bad in ("\\ud800", "x\\u001b[2J", "\\u202e", "7" * 201):
        reply = post(bad)
        assert reply.status == 400, (bad, reply)
        assert json.loads(reply.body)["error"].isprintable()
    assert k.expected() is None

    # text that is fine (not ASCII) is taken, and its events reach the broker
    reply = post("Tisch 4 \\u2013 Caf\\u00e9")
    assert reply.status == 200, reply
    order = "Tisch 4 \u2013 Caf\u00e9"
    wait_for(
        lambda: any(e["expected"]["order"] == order for _, e in k.watcher.events("expectation_set"))
    )


def test_the_bridge_comes_back_after_the_broker_restarts_or_its_thread_stops(
    model, tmp_path: Path, logs: LogLines
) -> None:  # type: ignore[no-untyped-def]
    port = free_port()
    broker = Broker(tmp_path / "broker", port).start()
    service = Service(model, resolve_labels(LABELS), [("pass", str(tmp_path / "none.mp4"))])
    bridge = MqttBridge(service, MqttConfig("127.0.0.1", port)).start()
    watcher = None
    try:
        wait_for(lambda: bridge.status()["connected"])
        broker.stop()
        wait_for(lambda: bridge.status()["connected"] is False, timeout=5)
        broker.start()
        wait_for(lambda: bridge.status()["connected"], timeout=10)
        assert bridge.status()["connections"] == 2

        # paho's network thread stops (it must not; if it does): status says so at
        # once, and the bridge starts it again
        bridge.client.loop_stop()
        assert bridge.status()["connected"] is False
        wait_for(lambda: bridge.status()["connected"], timeout=5)
        assert logs.having("network thread stopped")

        watcher = Watcher(port, ["scenecls/available"])
        watcher.publish(EXPECT, "blue ring")
        wait_for(lambda: service.status()["cameras"][0]["expected"], timeout=5)
    finally:
        bridge.stop()
        if watcher is not None:
            watcher.close()
        broker.stop()


def test_a_webhook_receiver_that_trickles_or_floods_cannot_stop_alerts(
    receiver: Receiver, logs: LogLines
) -> None:
    deadline = 1.0
    sender = WebhookSender(receiver.url, timeout=0.5, deadline=deadline, attempts=2,
                           backoff=0.05)  # fmt: skip
    try:
        started = time.monotonic()
        for mode in ("trickle-headers", "trickle-body", "huge", "good"):
            sender.send({"event": "alert", "mode": mode})
        # the trickled headers cost two tries of the deadline; the trickled and the
        # 10 MB bodies are not read (their 200 is the delivery)
        wait_for(lambda: receiver.posts, timeout=2 * deadline + 2)
        arrived = receiver.posts[0][0] - started
        assert arrived < 2 * deadline + 1.5, arrived
        assert (sender.delivered, sender.failed) == (3, 1)
        status = sender.status()
        assert status["worker"] is True
        assert f"no answer within {deadline:g} s" in status["last_error"]
        failed = logs.having("failed after 2 tries")
        assert len(failed) == 1 and SECRET not in failed[0], failed
        assert SECRET not in json.dumps(status)

        # and the next alert goes out at once
        sender.send({"event": "alert_resolved", "mode": "good"})
        wait_for(lambda: len(receiver.posts) == 2, timeout=deadline)
    finally:
        sender.close(0.5)


def test_the_webhook_worker_survives_its_own_failure_and_drops_the_oldest(
    receiver: Receiver, logs: LogLines
) -> None:
    sender = WebhookSender(receiver.url, deadline=1.0, attempts=1)
    try:
        sender.send({"event": "alert", "what": object()})  # not JSON: fails in the worker
        sender.send({"event": "alert", "mode": "good"})
        wait_for(lambda: receiver.posts, timeout=3)
        assert sender.status()["errors"] == 1 and sender.delivered == 1
        assert logs.having("a post failed: TypeError")
    finally:
        sender.close(0.5)

    # a receiver that never answers: the queue stays bounded, the oldest posts go
    slow = WebhookSender(receiver.url, deadline=0.5, attempts=1, queue_size=2)
    try:
        for n in range(6):
            slow.send({"event": "alert", "mode": "silent", "n": n})
        assert slow.dropped >= 3 and slow.status()["dropped"] == slow.dropped
        assert len(logs.having("dropped an older alert post")) == 1
    finally:
        slow.close(0.1)


def test_webhook_and_mqtt_health_in_status_and_metrics(fresh: Kitchen) -> None:
    k = fresh
    k.service.webhook.send({"event": "alert", "mode": "good"})  # type: ignore[union-attr]
    wait_for(lambda: k.receiver.posts)
    reply = k.api.request("GET", "/api/status")
    status = json.loads(reply.body)
    mqtt, webhook = status["mqtt"], status["webhook"]
    assert mqtt["connected"] is True
    assert {"refused", "errors", "dropped", "last_error", "last_error_at"} <= set(mqtt)
    assert webhook["receiver"] == k.receiver.url.split("/hook")[0]  # no path: no secret
    assert webhook["delivered"] >= 1 and webhook["worker"] is True
    assert {"failed", "dropped", "errors", "last_error"} <= set(webhook)
    text = k.api.request("GET", "/metrics").body.decode()
    for line in (
        "scenecls_mqtt_connected 1.0",
        "scenecls_mqtt_refused_total ",
        "scenecls_mqtt_errors_total ",
        "scenecls_mqtt_dropped_total 0.0",
        "scenecls_webhook_delivered_total ",
        "scenecls_webhook_failed_total 0.0",
        "scenecls_webhook_dropped_total 0.0",
    ):
        assert line in text, line
    assert SECRET not in text


def test_camera_names_that_are_one_mqtt_topic_are_refused_at_start_up(capsys) -> None:  # type: ignore[no-untyped-def]
    argv = ["serve", "a.mp4", "b.mp4", "--name", "k.1", "--name", "k_1", "--model", str(MODEL)]
    code = main([*argv, "--mqtt", "127.0.0.1:1"])
    line = one_line_error(capsys.readouterr().err)
    assert code == 2 and "'k.1' and 'k_1' are the same MQTT topic 'k_1'" in line
