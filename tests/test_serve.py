"""`scenecls serve` as a real server on loopback: cameras from video files, the trained
fixture model, the JSON API driven over HTTP, events, webhook, snapshots, metrics."""

from __future__ import annotations

import itertools
import shutil
import time
import urllib.request
from pathlib import Path

import cv2
import pytest
import synthetic_shapes  # scripts/ is on the path (conftest)
from prometheus_client.parser import text_string_to_metric_families

from .conftest import MEDIA
from .outputs import one_line_error
from .serving import EventListener, ServeProcess, WebhookReceiver, wait_for

MODEL = Path(__file__).parent / "fixtures" / "shapes-clip"
LABELS = ",".join(synthetic_shapes.CLASSES)
TOKEN = "s3cret"


@pytest.fixture(scope="module")
def pass_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 s of a red circle, then 4 s of a blue ring (played in a loop by the server)."""
    path = tmp_path_factory.mktemp("video") / "pass.mp4"
    synthetic_shapes.make_video(path, [("red circle", 0, 4), ("blue ring", 4, 8)], fps=10)
    return path


@pytest.fixture(scope="module")
def kitchen(tmp_path_factory: pytest.TempPathFactory, pass_video: Path):  # type: ignore[no-untyped-def]
    tmp = tmp_path_factory.mktemp("kitchen")
    broken = tmp / "door.mp4"
    broken.write_text("not a video\n")
    hook = WebhookReceiver()
    snaps = tmp / "snapshots"
    server = ServeProcess(
        [str(pass_video), str(MEDIA / "bottle-detection.mp4"), str(broken),
         "--name", "pass", "--name", "oven", "--name", "door",
         "--model", str(MODEL), "--labels", LABELS, "--loop", "--alert-after", "0.5",
         "--webhook", hook.url, "--snapshots", str(snaps), "--token", TOKEN],
        home=tmp / "home",
    )  # fmt: skip
    server.hook = hook  # type: ignore[attr-defined]
    server.snapshots = snaps  # type: ignore[attr-defined]
    yield server
    code = server.stop()
    hook.close()
    assert code == 0, "".join(server.log)


def test_status_shows_every_camera_and_retries_the_broken_one(kitchen) -> None:  # type: ignore[no-untyped-def]
    def ready():  # type: ignore[no-untyped-def]
        cams = {c["name"]: c for c in kitchen.status()["cameras"]}
        ok = all(cams[n]["status"] == "running" and cams[n]["label"] for n in ("pass", "oven"))
        return cams if ok and cams["door"]["status"] == "retrying" else None

    cams = wait_for(ready)
    s = kitchen.status()
    assert s["labels"] == list(synthetic_shapes.CLASSES) and s["uptime"] > 0
    calls = s["model"]["encoder_calls"]  # one encoder for every camera, counted by batch
    encoded = sum(int(n) * c for n, c in calls["calls"].items())
    assert encoded >= cams["pass"]["frames_encoded"] > 0 and s["model"]["runtime"]
    p = cams["pass"]
    assert p["label"] in synthetic_shapes.CLASSES and 0 <= p["confidence"] <= 1
    assert p["expected"] is None and p["match"] is None and p["alert"] is None
    assert p["size"] == [320, 240] and p["frames_analysed"] > 0 and p["dropped"] >= 0
    wait_for(lambda: kitchen.camera("pass")["fps"] > 3)
    door = cams["door"]
    assert door["label"] is None and "door.mp4" in door["error"]


def test_page_health_metrics_and_live_view(kitchen) -> None:  # type: ignore[no-untyped-def]
    code, page = kitchen.request("GET", "/")
    assert code == 200 and "<title>scenecls" in page and "/api/status" in page
    code, health = kitchen.request("GET", "/healthz")
    assert code == 200 and health == {"status": "ok"}  # open to anyone: no camera names
    wait_for(lambda: kitchen.camera("oven")["latency_p95_ms"] is not None)
    code, text = kitchen.request("GET", "/metrics")
    assert code == 200
    assert 'scenecls_camera_up{camera="pass"} 1' in text
    assert 'scenecls_camera_up{camera="door"} 0' in text
    assert "# TYPE scenecls_alerts_total counter" in text
    assert 'scenecls_capture_to_label_seconds{camera="oven",quantile="0.95"}' in text
    # what a Prometheus server reads: every documented metric, of its documented type
    families = {f.name: f for f in text_string_to_metric_families(text)}
    kinds = {name: f.type for name, f in families.items()}
    assert kinds == {
        "scenecls_camera_fps": "gauge", "scenecls_camera_frames_read": "counter",
        "scenecls_camera_frames_analysed": "counter",
        "scenecls_camera_frames_encoded": "counter", "scenecls_camera_encoded_ratio": "gauge",
        "scenecls_camera_dropped_frames": "counter", "scenecls_camera_reconnects": "counter",
        "scenecls_alerts": "counter", "scenecls_camera_up": "gauge",
        "scenecls_camera_mismatch": "gauge", "scenecls_capture_to_label_seconds": "gauge",
        "scenecls_uptime_seconds": "gauge",
        # --webhook: its health (with --mqtt, scenecls_mqtt_...)
        "scenecls_webhook_delivered": "counter", "scenecls_webhook_failed": "counter",
        "scenecls_webhook_dropped": "counter", "scenecls_webhook_errors": "counter",
        "scenecls_webhook_queued": "gauge",
    }  # fmt: skip
    read = {s.labels["camera"]: s.value for s in families["scenecls_camera_frames_read"].samples}
    assert read["pass"] > 0 and read["door"] == 0  # the door camera never opened
    stream = urllib.request.Request(
        kitchen.url + "/stream/pass.mjpg", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    with urllib.request.urlopen(stream, timeout=10) as r:
        assert r.headers["Content-Type"].startswith("multipart/x-mixed-replace")
        head = r.read(2000)
    assert head.startswith(b"--frame\r\nContent-Type: image/jpeg") and b"\xff\xd8" in head
    code, _ = kitchen.request("GET", "/snapshot/oven.jpg")
    assert code == 200


@pytest.mark.parametrize(
    ("method", "path", "body", "raw", "token", "status", "words"),
    [
        ("POST", "/api/expect", {"camera": "pass", "label": "red circle"}, None, "", 401,
         "Bearer"),
        ("POST", "/api/expect", {"camera": "pass", "label": "red circle"}, None, "wrong", 401,
         "token"),
        ("POST", "/api/expect", None, b"{not json", TOKEN, 400, "JSON"),
        ("POST", "/api/expect", None, b"\xff\xfe", TOKEN, 400, "JSON"),
        ("POST", "/api/expect", [1, 2], None, TOKEN, 400, "object"),
        ("POST", "/api/expect", {"label": "red circle"}, None, TOKEN, 400, "camera"),
        ("POST", "/api/expect", {"camera": "grill", "label": "red circle"}, None, TOKEN, 404,
         "pass, oven, door"),
        ("POST", "/api/expect", {"camera": "pass", "label": "pizza"}, None, TOKEN, 422,
         "allowed: red circle"),
        ("POST", "/api/expect", {"camera": "pass", "label": None}, None, TOKEN, 422, "allowed"),
        ("POST", "/api/expect", {"camera": "pass", "label": "red circle", "order": [1]}, None,
         TOKEN, 400, "order"),
        ("POST", "/api/expect", None, b"x" * 100_000, TOKEN, 413, ""),
        ("DELETE", "/api/expect", None, None, "", 401, "Bearer"),
        ("DELETE", "/api/expect", None, None, TOKEN, 400, "camera"),
        ("DELETE", "/api/expect?camera=grill", None, None, TOKEN, 404, "unknown camera"),
        ("GET", "/api/segments", None, None, None, 400, "camera"),
        ("GET", "/api/segments?camera=pass&since=soon", None, None, None, 400, "since"),
        ("GET", "/api/segments?camera=pass&since=nan", None, None, None, 400, "since"),
        ("GET", "/api/nothing", None, None, None, 404, "Not Found"),
        ("PUT", "/api/status", None, None, TOKEN, 405, "Not Allowed"),
        ("GET", "/stream/grill.mjpg", None, None, None, 404, "unknown camera"),
    ],
)  # fmt: skip
def test_bad_requests_get_a_clear_4xx(
    kitchen, method, path, body, raw, token, status, words
) -> None:  # type: ignore[no-untyped-def]
    code, reply = kitchen.request(method, path, body=body, raw=raw, token=token)
    assert code == status, reply
    assert isinstance(reply, dict) and words in reply["error"], reply


def test_segments_of_a_camera(kitchen) -> None:  # type: ignore[no-untyped-def]
    def segments():  # type: ignore[no-untyped-def]
        return kitchen.request("GET", "/api/segments?camera=pass&since=0")[1]["segments"]

    wait_for(lambda: len(segments()) >= 2)
    code, r = kitchen.request("GET", "/api/segments?camera=pass&since=0")
    assert code == 200 and r["camera"] == "pass"
    segs = r["segments"]
    assert segs[-1]["open"] is True and all(not s["open"] for s in segs[:-1])
    assert all(a["end"] == pytest.approx(b["start"]) for a, b in itertools.pairwise(segs))
    assert {s["label"] for s in segs} <= set(synthetic_shapes.CLASSES)
    code, later = kitchen.request("GET", f"/api/segments?camera=pass&since={r['now']}")
    assert [s["open"] for s in later["segments"]] == [True]


def test_a_mismatch_alerts_once_and_resolves_on_a_match(kitchen) -> None:  # type: ignore[no-untyped-def]
    events = EventListener(kitchen.url, TOKEN)
    try:
        # start of a red stretch, so the mismatch below lasts well past --alert-after
        wait_for(lambda: kitchen.camera("pass")["label"] == "blue ring")
        wait_for(lambda: kitchen.camera("pass")["label"] == "red circle")
        t = time.monotonic()
        body = {"camera": "pass", "label": "blue ring", "order": 1042}
        code, r = kitchen.request("POST", "/api/expect", body, token=TOKEN)
        assert code == 200 and r["expected"]["label"] == "blue ring"
        assert r["expected"]["order"] == "1042"

        alert = wait_for(lambda: events.of("alert", "pass"), timeout=5)[0]["alert"]
        assert time.monotonic() - t < 3
        assert (alert["expected"], alert["seen"], alert["order"]) == (
            "blue ring",
            "red circle",
            "1042",
        )
        cam = kitchen.camera("pass")
        assert cam["match"] is False and cam["alert"]["id"] == alert["id"]
        snap = kitchen.snapshots / alert["snapshot"]  # its name: no path leaves the machine
        assert "/" not in alert["snapshot"] and cv2.imread(str(snap)) is not None

        resolved = wait_for(lambda: events.of("alert_resolved", "pass"), timeout=10)[0]["alert"]
        assert resolved["id"] == alert["id"] and resolved["resolution"] == "matched"
        assert len(events.of("alert", "pass")) == 1  # one alert for the episode
        labels = [e["label"] for e in events.of("segment", "pass")]
        assert "blue ring" in labels  # the change that resolved it, as a segment event
        assert kitchen.camera("pass")["match"] is True

        hooks = wait_for(lambda: kitchen.hook.posts if len(kitchen.hook.posts) >= 2 else None)
        assert [h["event"] for h in hooks[:2]] == ["alert", "alert_resolved"]
        assert hooks[0]["camera"] == "pass" and hooks[0]["alert"]["id"] == alert["id"]
        assert hooks[0]["time"].endswith("Z")

        code, r = kitchen.request("DELETE", "/api/expect?camera=pass", token=TOKEN)
        assert code == 200 and r["cleared"] is True
        assert kitchen.camera("pass")["expected"] is None
        wait_for(lambda: events.of("expectation_cleared", "pass"))
        assert events.of("expectation_set", "pass")[0]["expected"]["order"] == "1042"
        code, text = kitchen.request("GET", "/metrics")
        assert 'scenecls_alerts_total{camera="pass"} 1' in text
    finally:
        events.close()


def test_a_failed_camera_is_retried_and_restored(tmp_path: Path, pass_video: Path) -> None:
    door = tmp_path / "door.mp4"
    door.write_text("not yet a video\n")
    server = ServeProcess(
        [str(door), "--name", "door", "--model", str(MODEL), "--labels", LABELS, "--loop"],
        home=tmp_path / "home",
    )
    try:
        events = EventListener(server.url)
        wait_for(lambda: server.camera("door")["status"] == "retrying")
        shutil.copy(pass_video, door)
        wait_for(lambda: server.camera("door")["status"] == "running", timeout=15)
        wait_for(lambda: events.of("source_restored", "door"))
        wait_for(lambda: server.camera("door")["label"])
        assert server.camera("door")["reconnects"] >= 1
        events.close()
    finally:
        t = time.monotonic()
        code = server.stop()
        assert code == 0 and time.monotonic() - t < 5, "".join(server.log)


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (["--name", "a", "--name", "b"], "2 --name for 1 sources"),
        (["--name", "a b"], "camera name 'a b'"),
        (["--webhook", "ftp://x/y"], "--webhook must be an http"),
        (["--alert-after", "0"], "--alert-after must be more than 0"),
        (["--port", "70000"], "--port must be 0..65535"),
        (["--fps", "0"], "--fps must be more than 0"),
        (["--change-threshold", "-2"], "--change-threshold must be 0 or more"),
        (["--token", " "], "--token must not be empty"),
        (["--labels", "red circle,pizza", "--precision", "int8", "--device", "cuda"],
         "runs on the CPU"),
    ],
)  # fmt: skip
def test_bad_serve_options_are_one_line_usage_errors(pass_video, capsys, extra, words) -> None:  # type: ignore[no-untyped-def]
    from scenecls.cli import main

    code = main(["serve", str(pass_video), "--model", str(MODEL), *extra])
    assert code == 2
    assert words in one_line_error(capsys.readouterr().err)


def test_missing_source_and_busy_port_are_one_line_errors(pass_video, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    import socket

    from scenecls.cli import main

    assert main(["serve", str(tmp_path / "nope.mp4"), "--model", str(MODEL)]) == 2
    assert "nope.mp4 does not exist" in one_line_error(capsys.readouterr().err)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code = main(["serve", str(pass_video), "--model", str(MODEL), "--labels", LABELS,
                     "--port", str(port)])  # fmt: skip
    assert code == 2
    assert "the port is in use" in one_line_error(capsys.readouterr().err)


def test_a_public_address_without_a_token_is_warned_about(pass_video, caplog) -> None:  # type: ignore[no-untyped-def]
    import logging

    from scenecls.cli.main import build_parser
    from scenecls.cli.serve import _check

    def warnings(*extra: str) -> list[str]:
        caplog.clear()
        args = build_parser().parse_args(["serve", str(pass_video), *extra])
        with caplog.at_level(logging.WARNING, logger="scenecls"):
            _check(args)
        return [r.message for r in caplog.records if "without --token" in r.message]

    assert warnings() == []  # 127.0.0.1 by default
    assert warnings("--host", "::1") == []
    assert warnings("--host", "0.0.0.0") != []
    assert warnings("--host", "0.0.0.0", "--token", "t") == []


def test_a_camera_offers_at_most_fps_frames_a_second(pass_video: Path) -> None:
    """``serve --fps 5`` on a faster file: about 5 frames a second reach the engine."""
    from scenecls.serve.camera import Camera

    t0 = time.monotonic()
    cam = Camera("pass", str(pass_video), clock=lambda: time.monotonic() - t0, loop=True,
                 max_fps=5)  # fmt: skip
    taken = 0
    cam.start()
    try:
        end = time.monotonic() + 3.0
        while time.monotonic() < end:
            taken += cam.take() is not None
            time.sleep(0.01)
    finally:
        cam.stop()
    assert 12 <= taken <= 16, taken
