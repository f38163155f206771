"""``scenecls serve --mqtt`` against a real Mosquitto broker started on a free loopback
port: the topics, Home Assistant discovery, expectations over MQTT, a label change on
the broker within 200 ms of its frame, a broker that goes away for 10 s (nothing lost)
or is not there at the start, and the last will."""

from __future__ import annotations

import getpass
import json
import os
import shutil
import socket
import subprocess
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import paho.mqtt.client as mqtt
import pytest
import synthetic_shapes  # scripts/ is on the path (conftest)

from scenecls.cli import main

from .outputs import one_line_error
from .serving import ServeProcess, wait_for

MODEL = Path(__file__).parent / "fixtures" / "shapes-clip"
LABELS = ",".join(synthetic_shapes.CLASSES)


def _mosquitto() -> str:
    system = Path("/usr/sbin/mosquitto")  # Debian's, outside a user's PATH
    found = shutil.which("mosquitto") or (str(system) if system.is_file() else None)
    if found:
        return found
    if os.environ.get("CI"):
        pytest.fail("CI must install Debian's mosquitto (apt-get install mosquitto)")
    pytest.skip("no mosquitto here: apt-get install mosquitto (CI installs it)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    """Mosquitto on ``port``, persisting sessions in ``folder`` (so a restart keeps the
    watcher's subscription and the messages queued for it)."""

    def __init__(self, folder: Path, port: int, users: dict[str, str] | None = None) -> None:
        self.binary = _mosquitto()
        self.port = port
        folder.mkdir(parents=True, exist_ok=True)
        self.conf = folder / "mosquitto.conf"
        auth = "allow_anonymous true\n"
        if users:  # a broker that wants a user name and password
            passwords = folder / "passwords"
            passwords.write_text("")
            for user, password in users.items():
                subprocess.run(["mosquitto_passwd", "-b", str(passwords), user, password],
                               check=True, capture_output=True)  # fmt: skip
            auth = f"allow_anonymous false\npassword_file {passwords}\n"
        # as root, mosquitto would drop to the user "mosquitto", who cannot read the
        # test's private folders: stay the user that runs the tests
        self.conf.write_text(
            f"listener {port} 127.0.0.1\n{auth}user {getpass.getuser()}\n"
            f"persistence true\npersistence_location {folder}/\n"
        )
        self.proc: subprocess.Popen | None = None

    def start(self) -> Broker:
        self.proc = subprocess.Popen(
            [self.binary, "-c", str(self.conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            time.sleep(0.05)
        raise RuntimeError("mosquitto did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # mosquitto saves its sessions on the way out
            self.proc.wait(10)


class Watcher:
    """A persistent MQTT session that records every message under ``topics`` with the
    wall time it arrived."""

    def __init__(self, port: int, topics: list[str]) -> None:
        self.messages: list[tuple[float, str, str, bool]] = []
        self.lock = threading.Lock()
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="watcher",
                             clean_session=False)  # fmt: skip
        client.on_connect = lambda c, u, f, rc, p: c.subscribe([(t, 1) for t in topics])
        client.on_message = self._on_message
        client.reconnect_delay_set(0.2, 1)
        client.connect("127.0.0.1", port)
        client.loop_start()
        self.client = client

    def _on_message(self, client: Any, userdata: Any, m: Any) -> None:
        with self.lock:
            self.messages.append((time.time(), m.topic, m.payload.decode(), bool(m.retain)))

    def on(self, topic: str) -> list[str]:
        with self.lock:
            return [p for _, t, p, _ in self.messages if t == topic]

    def events(self, kind: str | None = None) -> list[tuple[float, dict[str, Any]]]:
        with self.lock:
            out = [(w, json.loads(p)) for w, t, p, _ in self.messages if t == "scenecls/events"]
        return [(w, e) for w, e in out if kind is None or e["type"] == kind]

    def publish(self, topic: str, payload: str, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def video(tmp_path: Path) -> Path:
    path = tmp_path / "pass.mp4"
    synthetic_shapes.make_video(path, [("red circle", 0, 2), ("blue ring", 2, 4)], fps=10)
    return path


def serve(video: Path, port: int, home: Path, *more: str) -> ServeProcess:
    return ServeProcess(
        [str(video), "--name", "pass", "--model", str(MODEL), "--labels", LABELS,
         "--templates", "{}", "--loop", "--min-dwell", "0.3", "--alert-after", "0.5",
         "--mqtt", f"127.0.0.1:{port}", *more],
        home=home,
    )  # fmt: skip


def test_topics_discovery_expectations_latency_outage_and_last_will(
    video: Path, tmp_path: Path
) -> None:
    port = free_port()
    broker = Broker(tmp_path / "broker", port).start()
    watcher = Watcher(port, ["scenecls/#", "homeassistant/#"])
    server = serve(video, port, tmp_path / "home")
    try:
        # announced, discovered, and the label follows the video
        wait_for(lambda: watcher.on("scenecls/available")[-1:] == ["online"])
        discovery = "homeassistant/{}/scenecls_pass/{}/config"
        sensor = json.loads(wait_for(lambda: watcher.on(discovery.format("sensor", "label")))[-1])
        assert sensor["state_topic"] == "scenecls/pass/label"
        assert sensor["unique_id"] == "scenecls_pass_label"
        alert = json.loads(
            wait_for(lambda: watcher.on(discovery.format("binary_sensor", "alert")))[-1]
        )
        assert alert["state_topic"] == "scenecls/pass/alert" and alert["device_class"] == "problem"
        wait_for(lambda: watcher.on("scenecls/pass/status")[-1:] == ["online"])
        wait_for(lambda: {"red circle", "blue ring"} <= set(watcher.on("scenecls/pass/label")))

        # a label change is on the broker soon after the frame that caused it
        wait_for(lambda: len(watcher.events("segment")) >= 6, timeout=30)
        delays = [
            w - datetime.fromisoformat(e["at"].replace("Z", "+00:00")).timestamp()
            for w, e in watcher.events("segment")
        ]
        assert float(np.percentile(delays, 95)) <= 0.2, delays

        # expectations over MQTT: a label, JSON with an order, and clearing
        watcher.publish("scenecls/pass/expect/set", "Blue Ring")
        wait_for(lambda: (server.camera("pass")["expected"] or {}).get("label") == "blue ring")
        wait_for(lambda: watcher.on("scenecls/pass/alert")[-1:] == ["ON"])  # red circle shows
        watcher.publish("scenecls/pass/expect/set", '{"label": "red circle", "order": "1042"}')
        wait_for(lambda: (server.camera("pass")["expected"] or {}).get("order") == "1042")
        watcher.publish("scenecls/pass/expect/set", "")
        wait_for(lambda: server.camera("pass")["expected"] is None)
        watcher.publish("scenecls/pass/expect/set", "pizza")  # not a label here: ignored
        watcher.publish("scenecls/grill/expect/set", "red circle")  # no such camera
        wait_for(lambda: any("not a label here" in line for line in server.log))
        wait_for(lambda: any("no camera 'grill'" in line for line in server.log))
        assert server.camera("pass")["expected"] is None
        kinds = {e["type"] for _, e in watcher.events()}
        assert {"expectation_set", "expectation_cleared", "alert", "segment"} <= kinds

        # Home Assistant restarts: discovery again
        configs = len(watcher.on("homeassistant/sensor/scenecls_pass/label/config"))
        watcher.publish("homeassistant/status", "online")
        wait_for(
            lambda: len(watcher.on("homeassistant/sensor/scenecls_pass/label/config")) > configs
        )

        # the broker goes away for 10 s: the video goes on, nothing published is lost
        before = server.camera("pass")["frames_analysed"]
        down = time.time()
        broker.stop()
        time.sleep(10)
        during = server.camera("pass")
        assert during["frames_analysed"] - before >= 60 and during["fps"] > 5
        broker.start()
        up = time.time()
        wait_for(lambda: server.status()["mqtt"]["connections"] >= 2, timeout=40)

        def raised_while_down() -> list[dict[str, Any]]:
            return [
                e for _, e in watcher.events("segment")
                if down < datetime.fromisoformat(e["at"].replace("Z", "+00:00")).timestamp() < up
            ]  # fmt: skip

        wait_for(lambda: len(raised_while_down()) >= 3, timeout=20)  # delivered afterwards
        time.sleep(1)
        ids = sorted({e["id"] for _, e in watcher.events()})
        assert ids == list(range(ids[0], ids[-1] + 1)), "an event was lost"
        assert server.status()["mqtt"]["dropped"] == 0

        # killed outright: the broker says offline for it
        server.proc.kill()
        server.proc.wait(10)
        wait_for(lambda: watcher.on("scenecls/available")[-1:] == ["offline"], timeout=90)
    finally:
        if server.proc.poll() is None:
            server.stop()
        watcher.close()
        broker.stop()


def test_a_broker_that_is_not_there_yet_does_not_stop_the_video(
    video: Path, tmp_path: Path
) -> None:
    port = free_port()
    broker = Broker(tmp_path / "broker", port)
    server = serve(video, port, tmp_path / "home")
    try:
        wait_for(lambda: server.camera("pass")["fps"] > 5)
        assert server.status()["mqtt"]["connected"] is False
        broker.start()
        watcher = Watcher(port, ["scenecls/available"])
        try:
            wait_for(lambda: watcher.on("scenecls/available")[-1:] == ["online"], timeout=60)
        finally:
            watcher.close()
        assert server.status()["mqtt"]["connected"] is True
        assert server.stop() == 0
    finally:
        if server.proc.poll() is None:
            server.stop()
        broker.stop()


def test_a_broker_with_passwords(video: Path, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    port = free_port()
    broker = Broker(tmp_path / "broker", port, users={"chef": "s3cret-pass"}).start()
    monkeypatch.setenv("SCENECLS_MQTT_PASSWORD", "wrong")
    refused = serve(video, port, tmp_path / "home1", "--mqtt-user", "chef")
    try:
        wait_for(lambda: any("refused the connection" in line for line in refused.log))
        assert refused.status()["mqtt"]["connected"] is False
        # the video goes on (it may still be starting when the broker says no)
        wait_for(lambda: refused.camera("pass")["status"] == "running")
    finally:
        refused.stop()
    monkeypatch.setenv("SCENECLS_MQTT_PASSWORD", "s3cret-pass")  # not on the command line
    server = serve(video, port, tmp_path / "home2", "--mqtt-user", "chef")
    try:
        wait_for(lambda: server.status()["mqtt"]["connected"] is True)
    finally:
        server.stop()
        broker.stop()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--mqtt", "broker:99999"], "the port must be 1..65535"),
        (["--mqtt", "a:b:c"], "give HOST or HOST:PORT"),
        (["--mqtt-user", "chef"], "need --mqtt HOST[:PORT]"),
        (["--mqtt", "broker", "--mqtt-ca", "TMP/none.pem"], "no such file"),
        (["--mqtt", "broker", "--mqtt-prefix", "a/#"], "not a topic prefix"),
    ],
)
def test_bad_mqtt_options_are_one_line(video: Path, tmp_path: Path, capsys, argv, message) -> None:  # type: ignore[no-untyped-def]
    argv = [a.replace("TMP", str(tmp_path)) for a in argv]
    code = main(["serve", str(video), "--model", str(MODEL), *argv])
    assert code == 2 and message in one_line_error(capsys.readouterr().err)
