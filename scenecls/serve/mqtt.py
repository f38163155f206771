"""MQTT for ``scenecls serve --mqtt HOST[:PORT]``: labels, alerts and events out,
expectations in, and Home Assistant discovery (the way Frigate talks to home automation).

The topics (``PREFIX/CAM/label``, ``PREFIX/CAM/expect/set``, ...) and what each carries
are the table :data:`.mqtt_topics.TOPICS`: every topic here is built from its patterns,
and the MQTT reference is generated from it. ``CAM`` is a camera name as one topic level
(:func:`topic_name`).

Home Assistant discovery (``homeassistant/...`` by default): a sensor (the label) and a
binary sensor (the alert) per camera, retained, sent at every connection and again when
Home Assistant announces itself (``online`` on ``homeassistant/status``).

The video never waits for the broker: publishing only queues (paho's network thread
sends), and a broker that is down at the start or goes away is retried with growing
pauses (1 s to 30 s). Messages published meanwhile (QoS 1) wait in a queue of
:data:`QUEUE_LIMIT` and are sent when the broker is back; beyond that they are dropped,
counted (``mqtt.dropped`` in ``/api/status``) and logged.

Anyone on the broker can publish, so what comes in is bounded before it is read: an
``expect/set`` payload of more than :data:`EXPECT_LIMIT` bytes (``homeassistant/status``:
:data:`STATUS_LIMIT`), one that is not UTF-8, JSON nested deeper than a flat object, or a
label or order that is not short printable text (:mod:`.guard`) is dropped, counted
(``mqtt.refused``) and logged, at most one line per kind of problem every 10 s. Every
paho callback catches whatever goes wrong in it (counted as ``mqtt.errors``, logged the
same way), so no message can stop paho's network thread; should the thread stop anyway,
it is started again. ``mqtt.connected`` is the real state of the connection.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import UsageError
from ..version import __version__
from .guard import BadInput, Trouble, check_order, check_text, describe, parse_json, shown
from .mqtt_topics import TOPICS

if TYPE_CHECKING:
    from .service import Service

log = logging.getLogger("scenecls")

QUEUE_LIMIT = 10_000
DEFAULT_PORT = 1883
EXPECT_LIMIT = 4096  # bytes of an expect/set payload
STATUS_LIMIT = 64  # bytes of Home Assistant's status payload ("online")


def topic_name(camera: str) -> str:
    """A camera name as one MQTT topic level (no ``/``, ``+`` or ``#``)."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", camera) or "_"


def check_topics(cameras: list[str]) -> None:
    """Raise :class:`~scenecls.errors.UsageError` when two camera names become the same
    topic level (``k.1`` and ``k_1`` are both ``k_1``): the broker, Home Assistant and
    ``expect/set`` could not tell them apart."""
    seen: dict[str, str] = {}
    for name in cameras:
        other = seen.setdefault(topic_name(name), name)
        if other != name:
            raise UsageError(
                f"camera names {other!r} and {name!r} are the same MQTT topic "
                f"{topic_name(name)!r} (characters other than letters, digits, '_' and '-' "
                "become '_'): rename one with --name"
            )


@dataclass(frozen=True)
class MqttConfig:
    """Where and how to connect. ``password`` may come from ``$SCENECLS_MQTT_PASSWORD``
    (a password on the command line is visible to every user of the machine)."""

    host: str
    port: int = DEFAULT_PORT
    username: str | None = None
    password: str | None = None
    tls: bool = False
    ca_file: Path | None = None
    insecure: bool = False
    prefix: str = "scenecls"
    discovery_prefix: str = "homeassistant"

    @classmethod
    def parse(cls, address: str, **kwargs: Any) -> MqttConfig:
        """``HOST[:PORT]`` (``[v6]:PORT`` for IPv6) plus the other settings."""
        text = address.strip()
        host, port = text, DEFAULT_PORT
        m = re.fullmatch(r"\[([^\]]+)\](?::(\d+))?|([^:\[\]]+)(?::(\d+))?", text)
        if not m:
            raise UsageError(f"--mqtt {address!r}: give HOST or HOST:PORT (e.g. 10.0.0.5:1883)")
        host = m.group(1) or m.group(3)
        if m.group(2) or m.group(4):
            port = int(m.group(2) or m.group(4))
        if not 0 < port < 65536:
            raise UsageError(f"--mqtt {address!r}: the port must be 1..65535")
        for name in ("prefix", "discovery_prefix"):
            value = kwargs.get(name)
            if value is not None and (not value or re.search(r"[#+]|^/|/$", value)):
                raise UsageError(f"--mqtt-{name.replace('_', '-')} {value!r}: not a topic prefix")
        ca = kwargs.get("ca_file")
        if ca is not None and not Path(ca).is_file():
            raise UsageError(f"--mqtt-ca {ca}: no such file")
        return cls(host, port, **{k: v for k, v in kwargs.items() if v is not None})


class MqttBridge:
    """Connects ``service`` to a broker (see the module docstring). :meth:`start` never
    blocks on the network; :meth:`stop` says ``offline`` and disconnects."""

    def __init__(self, service: Service, config: MqttConfig) -> None:
        import paho.mqtt.client as mqtt

        self.service = service
        self.config = config
        self.prefix = config.prefix
        check_topics(service.camera_names())
        self.cameras = {topic_name(n): n for n in service.camera_names()}
        self.connected = False  # paho's view: see is_connected() for the real state
        self.connections = 0
        self.published = 0
        self.dropped = 0
        self.trouble = Trouble("MQTT")  # refused messages and failed callbacks
        self._lock = threading.Lock()
        self._online: dict[str, str] = {}
        self._stopping = threading.Event()
        self._watch = threading.Thread(
            target=self._watch_cameras, name="scenecls-mqtt-cameras", daemon=True
        )
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=f"scenecls-{self.prefix.replace('/', '-')}",
            clean_session=True,
        )
        client.will_set(self._topic("available"), "offline", qos=1, retain=True)
        if config.username is not None:
            client.username_pw_set(config.username, config.password)
        if config.tls or config.ca_file is not None:
            client.tls_set(
                ca_certs=str(config.ca_file) if config.ca_file else None,
                cert_reqs=ssl.CERT_NONE if config.insecure else ssl.CERT_REQUIRED,
            )
            client.tls_insecure_set(config.insecure)
        client.reconnect_delay_set(1, 30)
        client.max_queued_messages_set(QUEUE_LIMIT)
        client.on_connect = self._guarded(self._on_connect)
        client.on_disconnect = self._guarded(self._on_disconnect)
        client.on_message = self._guarded(self._on_message)
        client.suppress_exceptions = True  # a second net: paho's thread never dies of ours
        self.client = client

    # -- life cycle --------------------------------------------------------------------

    def start(self) -> MqttBridge:
        self.service.events.add_listener(self._on_event)
        self.service.mqtt = self
        self.client.connect_async(self.config.host, self.config.port, keepalive=30)
        self.client.loop_start()  # paho's network thread: connects, retries, sends
        self._watch.start()
        return self

    def _watch_cameras(self) -> None:
        """Publish each camera's ``online`` / ``offline`` when its source changes state
        (started, lost, retrying, restored), looked at twice a second; start paho's
        network thread again if it ever stopped."""
        while not self._stopping.wait(0.5):
            try:
                if not self._network_alive() and not self._stopping.is_set():
                    self.trouble.report("network", "paho's network thread stopped: restarted")
                    self.client.loop_start()
                for name, st in list(self.service.states.items()):  # no full status: cheap
                    online = "online" if st.camera.status == "running" else "offline"
                    if self._online.get(name) != online:
                        self._online[name] = online
                        self._send(self._topic("status", name), online, retain=True)
            except Exception as e:  # keep watching
                self.trouble.report("watch", f"watching the cameras failed: {describe(e)}", error=e)

    def _network_alive(self) -> bool:
        """Whether paho's network thread (started by ``loop_start``) is running."""
        thread = getattr(self.client, "_thread", None)  # paho keeps no public handle
        return thread is not None and thread.is_alive()

    def is_connected(self) -> bool:
        """Connected to the broker now: paho says so and its network thread runs."""
        return self.connected and self.client.is_connected() and self._network_alive()

    def stop(self, timeout: float = 2.0) -> None:
        self._stopping.set()
        self.service.events.remove_listener(self._on_event)
        if self.connected:
            info = self.client.publish(self._topic("available"), "offline", qos=1, retain=True)
            with contextlib.suppress(RuntimeError, ValueError):  # not connected after all
                info.wait_for_publish(timeout)
        self.client.disconnect()
        self.client.loop_stop()

    def status(self) -> dict[str, Any]:
        """For ``/api/status``: connection, counters (``refused``: messages in that were
        dropped; ``errors``: failures caught in paho's callbacks) and the last problem."""
        return {
            "broker": f"{self.config.host}:{self.config.port}",
            "connected": self.is_connected(),
            "connections": self.connections,
            "published": self.published,
            "dropped": self.dropped,
            "queue_limit": QUEUE_LIMIT,
            "refused": self.trouble.count("refused"),
            "errors": self.trouble.count("callback", "network", "watch", "event"),
            **self.trouble.status(),
        }

    # -- publishing --------------------------------------------------------------------

    def _topic(self, name: str, camera: str | None = None) -> str:
        """The topic ``name`` of :data:`.mqtt_topics.TOPICS` for this bridge (and
        ``camera``, a camera's name; ``+``: any camera, for a subscription)."""
        values = {"prefix": self.prefix, "discovery_prefix": self.config.discovery_prefix}
        if camera is not None:
            values["camera"] = camera if camera == "+" else topic_name(camera)
        return TOPICS[name].format(**values)

    def _send(self, topic: str, payload: str, *, retain: bool = False) -> None:
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        with self._lock:
            if info.rc == 15:  # MQTT_ERR_QUEUE_SIZE: the broker has been gone too long
                self.dropped += 1
                if self.dropped in (1, 10, 100) or self.dropped % 1000 == 0:
                    log.warning(
                        "MQTT: %d message(s) dropped: the broker at %s:%d has been away too "
                        "long (queue of %d full)", self.dropped, self.config.host,
                        self.config.port, QUEUE_LIMIT,
                    )  # fmt: skip
            else:
                self.published += 1

    def _on_event(self, event: dict[str, Any]) -> None:
        """Called for every service event (from the thread that raised it): never waits,
        never raises."""
        try:
            self._publish_event(event)
        except Exception as e:
            self.trouble.report("event", f"an event was not published: {describe(e)}", error=e)

    def _publish_event(self, event: dict[str, Any]) -> None:
        camera = event.get("camera")
        kind = event["type"]
        if camera:
            if kind == "segment":
                self._send(self._topic("label", camera), str(event["label"]), retain=True)
            elif kind in ("alert", "alert_resolved"):
                on = "ON" if kind == "alert" else "OFF"
                self._send(self._topic("alert", camera), on, retain=True)
        payload = {**event, "at": self.service.wall(float(event["time"]))}
        text = json.dumps(payload, ensure_ascii=False)
        try:
            text.encode()
        except UnicodeEncodeError:  # a lone surrogate from somewhere: escape it
            text = json.dumps(payload)
        self._send(self._topic("events"), text)

    def _announce(self) -> None:
        """``online``, discovery, and every camera's current state (all retained)."""
        self._send(self._topic("available"), "online", retain=True)
        self._discovery()
        for cam in self.service.status()["cameras"]:
            name = cam["name"]
            online = "online" if cam["status"] == "running" else "offline"
            self._online[name] = online
            self._send(self._topic("status", name), online, retain=True)
            self._send(self._topic("alert", name), "ON" if cam["alert"] else "OFF", retain=True)
            if cam["label"] is not None:
                self._send(self._topic("label", name), str(cam["label"]), retain=True)

    def _discovery(self) -> None:
        """Home Assistant's MQTT discovery: a sensor and a binary sensor per camera."""
        model = getattr(self.service.model, "bundle", None)
        for cam, name in self.cameras.items():
            device = {
                "identifiers": [f"scenecls_{cam}"],
                "name": f"scenecls {name}",
                "manufacturer": "scenecls",
                "model": getattr(model, "model_id", "CLIP"),
                "sw_version": __version__,
            }
            availability = [
                {"topic": self._topic("available")},
                {"topic": self._topic("status", name), "payload_available": "online",
                 "payload_not_available": "offline"},
            ]  # fmt: skip
            common = {"device": device, "availability": availability, "availability_mode": "all"}
            entities = {  # discovery topic -> the entity's config
                "discovery_label": {
                    "name": "label", "unique_id": f"scenecls_{cam}_label",
                    "state_topic": self._topic("label", name), "icon": "mdi:cctv", **common,
                },
                "discovery_alert": {
                    "name": "alert", "unique_id": f"scenecls_{cam}_alert",
                    "state_topic": self._topic("alert", name), "payload_on": "ON",
                    "payload_off": "OFF", "device_class": "problem", **common,
                },
            }  # fmt: skip
            for topic, config in entities.items():
                text = json.dumps(config, ensure_ascii=False)
                self._send(self._topic(topic, name), text, retain=True)

    # -- paho callbacks (paho's network thread) ------------------------------------------

    def _guarded(self, callback: Any) -> Any:
        """``callback`` for paho: whatever it raises is counted, logged (one line per kind
        every 10 s, the traceback at debug level) and goes no further."""
        name = callback.__name__.lstrip("_")

        def guarded(*args: Any) -> None:
            try:
                callback(*args)
            except Exception as e:
                self.trouble.report("callback", f"{name} failed: {describe(e)}", error=e)

        guarded.__name__ = name
        return guarded

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if getattr(reason, "is_failure", False):
            log.warning("MQTT: the broker refused the connection: %s", reason)
            return
        self.connected = True
        self.connections += 1
        log.info("MQTT: connected to %s:%d", self.config.host, self.config.port)
        client.subscribe([(self._topic("expect", "+"), 1), (self._topic("discovery_status"), 1)])
        self._announce()

    def _on_disconnect(
        self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        if self.connected:
            log.warning(
                "MQTT: lost the broker at %s:%d (%s): retrying; messages wait in a queue",
                self.config.host, self.config.port, reason,
            )  # fmt: skip
        self.connected = False

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        topic = message.topic
        status = topic == self._topic("discovery_status")
        limit = STATUS_LIMIT if status else EXPECT_LIMIT
        raw = message.payload
        where = shown(topic, 80)
        if len(raw) > limit:
            self._refuse(f"{where}: a payload of {len(raw)} bytes dropped: at most {limit}")
            return
        try:
            payload = raw.decode("utf-8").strip()
        except UnicodeDecodeError:
            self._refuse(f"{where}: a payload that is not UTF-8 dropped: send UTF-8 text")
            return
        if status:
            if payload == "online":
                self._discovery()  # Home Assistant restarted: tell it again
            return
        fields = TOPICS["expect"].match(topic, prefix=self.prefix)
        if fields is None:  # (not subscribed to: the broker sends only what was asked for)
            self._refuse(f"{where}: not an expect/set topic", kind="camera")
            return
        cam = fields["camera"]
        camera = self.cameras.get(cam)
        if camera is None:
            self._refuse(f"{where}: no camera {shown(cam)} here", kind="camera")
            return
        try:
            self._expect(camera, payload)
        except (ValueError, UsageError) as e:
            self._refuse(f"{where}: {e}", kind="expect")

    def _refuse(self, message: str, kind: str = "payload") -> None:
        """A message in that is dropped: counted as refused, logged (rate-limited)."""
        self.trouble.report(f"refused {kind}", message)

    def _expect(self, camera: str, payload: str) -> None:
        """Set or clear ``camera``'s expectation from an ``expect/set`` payload (at most
        :data:`EXPECT_LIMIT` bytes: the caller checks). Raises :class:`.guard.BadInput`
        (a ``ValueError``) for a payload it refuses."""
        label: Any = payload
        order = None
        if payload.startswith(("{", "null")):
            doc = parse_json(payload)
            if doc is not None and not isinstance(doc, dict):
                raise BadInput('send a label or {"label": ..., "order": ...}')
            label = None if doc is None else doc.get("label")
            order = None if doc is None else doc.get("order")
        if label in (None, ""):
            self.service.clear_expectation(camera)
            return
        label = check_text(label, "the label")
        order = check_order(order)
        names = {n.casefold(): n for n in self.service.names}
        known = names.get(label.casefold())
        if known is None:
            raise BadInput(f"{shown(label)} is not a label here: {', '.join(self.service.names)}")
        self.service.expect(camera, known, order)
