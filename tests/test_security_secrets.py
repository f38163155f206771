"""No secret out (issue 24, item 3 and its "Also" list): a camera's login never leaves the
process (status, page, events, MQTT, webhooks, files written by ``run``, every log line),
it need not be on the command line (``--camera-credentials-file``), alert snapshots are
named without their folder, and the webhook's URL path is never logged."""

from __future__ import annotations

import io
import json
import logging
import os
import threading
import time
from pathlib import Path

import pytest
import synthetic_shapes  # scripts/ is on the path (conftest)

import scenecls
from scenecls.errors import InputError, UsageError
from scenecls.redact import redact_url, url_origin
from scenecls.serve.camera import Camera
from scenecls.serve.credentials import check_camera_credentials, load_camera_credentials
from scenecls.video.sources import LiveCaptureSource, open_source, with_credentials
from scenecls.video.sources.base import FrameSource

from .serving import EventListener, ServeProcess, WebhookReceiver, wait_for
from .test_rtsp import RtspServer, free_port
from .test_serve_mqtt import Broker, Watcher

MODEL = Path(__file__).parent / "fixtures" / "shapes-clip"
LABELS = ",".join(synthetic_shapes.CLASSES)
SECRET = "s3cret"
PASSWORD = f"p@ss/w:rd-{SECRET}"  # "@", "/" and ":" in it: percent-encoded in a URL
USER = "cook"
LOGIN_URL = "rtsp://{}:p%40ss%2Fw%3Ard-s3cret@127.0.0.1:{}/pass"


# -- the one function ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("rtsp://admin:s3cret@10.0.0.7:554/Streaming/Channels/102",
         "rtsp://***@10.0.0.7:554/Streaming/Channels/102"),
        ("cannot open stream rtsp://admin:p@ss@cam.local/live: check the URL",
         "cannot open stream rtsp://***@cam.local/live: check the URL"),
        ("a 'rtsps://u:s3cret@h' and http://x:y@[::1]:80/a?b=c@d here",
         "a 'rtsps://***@h' and http://***@[::1]:80/a?b=c@d here"),
        ("x_rtsp://u:s3cret@h", "x_rtsp://***@h"),
        ("rtsp://token-only@h/x", "rtsp://***@h/x"),
        ("http://cam/videostream.cgi?usr=admin&pwd=s3cret&rate=0",
         "http://cam/videostream.cgi?usr=***&pwd=***&rate=0"),
        ("rtsp://10.0.0.7/cam/realmonitor?channel=1&subtype=0",
         "rtsp://10.0.0.7/cam/realmonitor?channel=1&subtype=0"),
        ("/videos/pass@noon.mp4", "/videos/pass@noon.mp4"),
        ("mail cook@example.org about rtsp://h/x", "mail cook@example.org about rtsp://h/x"),
    ],
)  # fmt: skip
def test_redact_url_removes_every_login_from_urls_in_any_text(text: str, shown: str) -> None:
    assert redact_url(text) == shown


def test_url_origin_keeps_only_the_scheme_and_host() -> None:
    hook = "https://hooks.slack.com/services/T000/B000/XXXXs3cret"
    assert url_origin(hook) == "https://hooks.slack.com"
    assert url_origin("http://u:s3cret@[::1]:8080/a?token=s3cret") == "http://[::1]:8080"


# -- the log -----------------------------------------------------------------------------


def test_no_log_line_of_scenecls_holds_a_url_password() -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log = logging.getLogger("scenecls")
    log.addHandler(handler)
    try:
        url = f"rtsp://{USER}:{SECRET}@10.0.0.7/live"
        log.warning("stream %s sent nothing for 5 s: it stalled", url)
        log.warning(f"camera pass lost: cannot open {url}")
        try:
            raise ConnectionError(f"refused by {url}")
        except ConnectionError:
            log.exception("the analysis loop stopped")
    finally:
        log.removeHandler(handler)
    text = out.getvalue()
    assert SECRET not in text and USER not in text, text
    assert text.count("rtsp://***@10.0.0.7/live") == 3 and "Traceback" in text


def test_a_stalled_or_failing_stream_logs_and_raises_without_its_login(
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = LOGIN_URL.format(USER, free_port())  # nothing listens there
    source = LiveCaptureSource(url, reconnect_timeout=0)
    assert SECRET not in source.name and source.name.startswith("rtsp://***@127.0.0.1:")
    with pytest.raises(InputError) as failed:
        source.open()
    assert SECRET not in str(failed.value) and "rtsp://***@127.0.0.1" in str(failed.value)

    class Stalling:  # a capture whose read waits out the I/O timeout
        def read(self) -> tuple[bool, None]:
            time.sleep(0.06)
            return False, None

    source.io_timeout_s = 0.05
    source._cap = Stalling()  # type: ignore[assignment]
    with caplog.at_level(logging.WARNING, logger="scenecls"):
        assert source._decode() is None
    assert "it stalled" in caplog.text and SECRET not in caplog.text
    with pytest.raises(UsageError) as bad:
        open_source(f"ftp://{USER}:{SECRET}@h/x")
    assert SECRET not in str(bad.value)


# -- the credentials file ------------------------------------------------------------------


def test_the_credentials_file_is_read_checked_and_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "cameras"
    path.write_text(f"# CAMERA USER:PASSWORD\n\npass  {USER}:{PASSWORD}\noven viewer:a b:c\n")
    path.chmod(0o600)
    with caplog.at_level(logging.WARNING, logger="scenecls"):
        found = load_camera_credentials(path)
    assert found == {"pass": (USER, PASSWORD), "oven": ("viewer", "a b:c")}
    assert not caplog.text
    path.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="scenecls"):
        load_camera_credentials(path)
    assert "can be read by other users (mode 644): chmod 600" in caplog.text

    for bad, why in [
        (f"pass {SECRET}\n", "line 1: write CAMERA USER:PASSWORD"),
        ("# x\npass\n", "line 2: write CAMERA USER:PASSWORD"),
        (f"pass :{SECRET}\n", "line 1: write CAMERA USER:PASSWORD"),
        (f"pass a:{SECRET}\npass b:{SECRET}\n", "line 2: camera 'pass' has a login already"),
    ]:
        path.write_text(bad)
        with pytest.raises(UsageError) as e:
            load_camera_credentials(path)
        assert why in str(e.value) and SECRET not in str(e.value)
    with pytest.raises(UsageError, match="does not exist"):
        load_camera_credentials(tmp_path / "missing")

    creds = {"pass": (USER, PASSWORD)}
    check_camera_credentials(creds, {"pass": "rtsp://10.0.0.7/live"}, path)
    for cameras, why in [
        ({"oven": "rtsp://10.0.0.7/live"}, "names camera 'pass', which is not one of"),
        ({"pass": "kitchen.mp4"}, "is not a stream URL"),
        ({"pass": f"rtsp://a:{SECRET}@10.0.0.7/live"}, "has a login and the credentials file"),
    ]:
        with pytest.raises(UsageError, match=why) as e:
            check_camera_credentials(creds, cameras, path)
        assert SECRET not in str(e.value)


def test_a_camera_gets_its_login_only_when_it_opens_and_shows_none(
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert with_credentials("rtsp://h:554/x?a=1", USER, PASSWORD) == (
        "rtsp://cook:p%40ss%2Fw%3Ard-s3cret@h:554/x?a=1"
    )
    opened: list[str] = []
    failed = threading.Event()

    def refuse(spec: str, fps: float) -> FrameSource:
        opened.append(spec)
        failed.set()
        raise InputError(f"cannot open stream {spec}: check the URL")

    cam = Camera("pass", "rtsp://10.0.0.7/live", clock=time.monotonic, open_source_fn=refuse,
                 credentials=(USER, PASSWORD))  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="scenecls"):
        cam.start()
        assert failed.wait(5)
        wait_for(lambda: cam.status == "retrying", timeout=5)
        error = cam.error
        cam.stop()
    assert opened[0] == "rtsp://cook:p%40ss%2Fw%3Ard-s3cret@10.0.0.7/live"
    assert error == "cannot open stream rtsp://***@10.0.0.7/live: check the URL"
    legacy = Camera("door", f"rtsp://a:{SECRET}@h/x", clock=time.monotonic)
    assert legacy.source == "rtsp://***@h/x" and SECRET not in caplog.text


def test_the_webhook_log_names_only_the_receivers_host(caplog: pytest.LogCaptureFixture) -> None:
    from scenecls.serve.webhook import WebhookSender

    url = f"http://127.0.0.1:{free_port()}/services/T000/B000/{SECRET}"
    sender = WebhookSender(url, attempts=1, backoff=0.01, timeout=1)
    with caplog.at_level(logging.WARNING, logger="scenecls"):
        sender.send({"event": "alert"})
        wait_for(lambda: sender.failed, timeout=5)
        sender.close()
    assert "http://127.0.0.1:" in caplog.text and SECRET not in caplog.text
    assert "/services/" not in caplog.text


# -- a real service and a real camera that wants a login --------------------------------


@pytest.fixture(scope="module")
def camera_with_login():  # type: ignore[no-untyped-def]
    os.environ["RTSP_SERVER_LOGIN"] = f"{USER}:{PASSWORD}"
    try:
        server = RtspServer().start()
    finally:
        del os.environ["RTSP_SERVER_LOGIN"]
    try:
        yield server
    finally:
        server.stop()


def test_run_writes_no_login_into_its_files(camera_with_login: RtspServer, tmp_path: Path) -> None:
    url = LOGIN_URL.format(USER, camera_with_login.port)
    sinks = [
        scenecls.SegmentsSink(tmp_path / "segments.json"),
        scenecls.EmbeddingsSink(tmp_path / "run.embeddings"),
        scenecls.JsonlSink(tmp_path / "frames.jsonl"),
    ]
    source = LiveCaptureSource(url, reconnect_timeout=0, rtsp_transport="tcp")
    model = scenecls.load_model(MODEL, device="cpu")
    stop = threading.Event()
    pipeline = scenecls.Pipeline(model, LABELS, source, sinks)
    threading.Timer(2.0, stop.set).start()
    stats = pipeline.run(stop)
    assert stats.frames_analysed > 0
    segments = json.loads((tmp_path / "segments.json").read_text())
    assert segments["source"] == f"rtsp://***@127.0.0.1:{camera_with_login.port}/pass"
    stored = scenecls.open_embeddings(tmp_path / "run.embeddings")
    everything = json.dumps(stored.meta, default=str) + stats.summary()
    everything += (tmp_path / "run.embeddings" / "meta.json").read_text()
    everything += (tmp_path / "frames.jsonl").read_text()
    assert SECRET not in everything and "***@127.0.0.1" in everything


def test_a_served_camera_login_never_leaves_the_process(
    camera_with_login: RtspServer, tmp_path: Path
) -> None:
    """The login comes from the credentials file (camera ``pass``) or, the old way, from
    the URL on the command line (``door``): both cameras stream, and the status, page,
    events, MQTT, webhook posts and log hold no password, while the cameras run and after
    their server went away; alert snapshots are named without their folder."""
    video = tmp_path / "shapes.mp4"
    synthetic_shapes.make_video(video, [("red circle", 0, 2), ("blue ring", 2, 4)], fps=10)
    creds = tmp_path / "cameras"
    creds.write_text(f"pass {USER}:{PASSWORD}\n")
    creds.chmod(0o600)
    broker = Broker(tmp_path / "mqtt", free_port()).start()
    watcher = Watcher(broker.port, ["scenecls/#", "homeassistant/#"])
    hook = WebhookReceiver()
    snaps = tmp_path / "snapshots"
    port = camera_with_login.port
    serve = ServeProcess(
        [f"rtsp://127.0.0.1:{port}/pass", LOGIN_URL.format(USER, port), str(video),
         "--name", "pass", "--name", "door", "--name", "shapes", "--loop",
         "--camera-credentials-file", str(creds), "--rtsp-transport", "tcp",
         "--model", str(MODEL), "--labels", LABELS, "--alert-after", "0.3",
         "--webhook", hook.url, "--snapshots", str(snaps), "--mqtt", f"127.0.0.1:{broker.port}"],
        home=tmp_path / "home",
    )  # fmt: skip
    events = EventListener(serve.url)
    try:
        running = {"pass", "door", "shapes"}
        wait_for(lambda: {c["name"] for c in serve.status()["cameras"]
                          if c["status"] == "running"} == running, timeout=20)  # fmt: skip
        cams = {c["name"]: c for c in serve.status()["cameras"]}
        assert cams["pass"]["source"] == f"rtsp://127.0.0.1:{port}/pass"
        assert cams["door"]["source"] == f"rtsp://***@127.0.0.1:{port}/pass"
        wait_for(lambda: serve.camera("shapes")["label"])
        never = "green ring"  # not in the video: a mismatch at once
        assert serve.request("POST", "/api/expect", {"camera": "shapes", "label": never})[0] == 200
        alert = wait_for(lambda: events.of("alert", "shapes"), timeout=10)[0]["alert"]
        assert alert["snapshot"] == Path(alert["snapshot"]).name
        assert (snaps / alert["snapshot"]).is_file()

        camera_with_login.stop()  # the cameras' server goes away: errors name the URL
        wait_for(  # "stopped sending frames", then the reopen fails, naming the URL
            lambda: {c["name"]: c["error"] for c in serve.status()["cameras"]
                     if "rtsp://" in (c["error"] or "")}.keys() == {"pass", "door"},
            timeout=15,
        )  # fmt: skip
        wait_for(lambda: len([e for e in events.of("source_lost") if "rtsp://" in e["error"]]) >= 2)
        wait_for(lambda: any(p["event"] == "alert" for p in hook.posts))
        wait_for(lambda: any(t == "scenecls/events" and "rtsp://***@" in m
                             for _, t, m, _ in watcher.messages))  # fmt: skip
        status = json.dumps(serve.status())
        assert status.count(f"rtsp://***@127.0.0.1:{port}/pass") >= 3  # 2 errors, 1 source
        page = serve.request("GET", "/")[1]
    finally:
        events.close()
        code = serve.stop()
        watcher.close()
        broker.stop()
        hook.close()
    log = "".join(serve.log)
    assert code == 0, log
    mqtt = "\n".join(f"{t} {m}" for _, t, m, _ in watcher.messages)
    shown = {"status": status, "page": page, "events": json.dumps(events.events),
             "webhook": json.dumps(hook.posts), "mqtt": mqtt, "log": log}  # fmt: skip
    for where, text in shown.items():
        assert SECRET not in text and "p%40ss" not in text, f"the {where} shows the password"
        assert str(snaps) not in text, f"the {where} shows the snapshots' folder"
    assert "rtsp://***@127.0.0.1" in shown["events"] and "rtsp://***@127.0.0.1" in mqtt
    assert alert["snapshot"] in shown["webhook"] and alert["snapshot"] in mqtt
