"""The kitchen service's history (issue 25): ``serve --data DIR`` keeps every camera's
embeddings, labels and events as it goes, searchable while it runs and after ``kill -9``;
the HTTP API (timeline, search, more-like-this, recordings with HTTP Range, thumbnails)
behind the token; rotation, a full disk, and a folder of another model.

One server for the API tests (the trained fixture model, one looped synthetic camera:
3 s of a red circle, 3 s of a blue ring); the writer's faults are unit tests.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import synthetic_shapes  # scripts/ is on the path (conftest)

from scenecls.errors import OutputError
from scenecls.model.embeddings_store import FRAME_DTYPE, open_embeddings
from scenecls.model.history_layout import (
    chunk_bound,
    history_chunks,
    parse_recording_name,
    stamp_of,
)
from scenecls.model.store_writer import StoreWriter
from scenecls.serve.history import HistoryWriter
from scenecls.serve.history_api import picture_size
from scenecls.serve.history_search import stored_events, stored_labels
from scenecls.utc import parse_utc

from .conftest import LogLines
from .serving import REPO, ServeProcess, wait_for

MODEL = Path(__file__).parent / "fixtures" / "shapes-clip"
LABELS = ",".join(synthetic_shapes.CLASSES)
TOKEN = "history-tests-0123456789"


# -- one server for the API --------------------------------------------------------------


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServeProcess, Path]]:
    folder = tmp_path_factory.mktemp("history")
    video = folder / "pass.mp4"
    synthetic_shapes.make_video(video, [("red circle", 0, 3), ("blue ring", 3, 6)], fps=10)
    data = folder / "data"
    server = ServeProcess(
        [str(video), "--name", "pass", "--model", str(MODEL), "--labels", LABELS, "--loop",
         "--token", TOKEN, "--data", str(data), "--flush-seconds", "1",
         "--segment-minutes", "0.05", "--alert-after", "0.5"],
        home=folder / "home",
    )  # fmt: skip
    try:
        wait_for(lambda: server.camera("pass")["label"] is not None)
        yield server, data
    finally:
        assert server.stop() == 0
        # stopped: the chunk is closed, complete
        chunk = history_chunks(data, "pass")[-1]
        store = open_embeddings(chunk.path)
        assert store.meta["complete"] and not store.notes and not store.writing


def get(server: ServeProcess, path: str, token: str | None = None) -> tuple[int, Any]:
    return server.request("GET", path, token=token)


def raw_get(
    server: ServeProcess, path: str, headers: dict[str, str] | None = None, token: str = TOKEN
) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body bytes) of a GET."""
    return server.raw("GET", path, None, token, headers)


def post_bytes(
    server: ServeProcess, path: str, body: bytes, content_type: str
) -> tuple[int, dict[str, Any]]:
    req = urllib.request.Request(server.url + path, data=body, method="POST")
    req.add_header("Authorization", f"Bearer {TOKEN}")
    req.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def q(**params: str) -> str:
    return urllib.parse.urlencode(params)


def closed_labels(server: ServeProcess) -> list[dict[str, Any]]:
    """The closed label segments, once both labels of the video have closed."""

    def enough() -> list[dict[str, Any]] | None:
        code, body = get(server, "/api/history?camera=pass")
        assert code == 200, body
        done = [s for s in body["labels"] if not s["open"]]
        return done if {"red circle", "blue ring"} <= {s["label"] for s in done} else None

    return wait_for(enough, timeout=30)


def body_labels_are_sorted(labels: list[dict[str, Any]]) -> bool:
    starts = [parse_utc(s["start"]) for s in labels]
    return starts == sorted(starts)


def test_the_history_grows_on_disk_while_serving(served: tuple[ServeProcess, Path]) -> None:
    server, data = served
    chunk = wait_for(lambda: history_chunks(data, "pass"), timeout=20)[-1]
    assert chunk.camera == "pass" and chunk.path.parent == data / "history" / "pass"
    assert abs(chunk.start - time.time()) < 120
    first = wait_for(lambda: open_embeddings(chunk.path).rows, timeout=20)
    later = wait_for(lambda: (r := open_embeddings(chunk.path).rows) > first and r, timeout=20)
    store = open_embeddings(chunk.path)  # a reader sees everything up to the last flush
    assert store.writing and not store.notes and store.rows >= later
    assert store.meta["clock"] == "unix" and store.meta["camera"] == "pass"
    assert store.meta["model"].startswith("scenecls-shapes-clip")
    frames = store.frames
    assert frames.dtype == FRAME_DTYPE and len(frames) >= store.rows
    assert (frames["left"] == frames["right"]).all() and (frames["weight"] == 0).all()
    assert np.all(np.diff(frames["time"]) > 0) and abs(frames["time"][-1] - time.time()) < 30
    # every row is a frame's own (encoded, or the first of the chunk)
    assert len(np.unique(frames["left"])) == store.rows
    status = server.camera("pass")["history"]
    assert status["writing"] and status["error"] is None and status["dropped"] == 0


def test_history_lists_labels_alerts_and_recordings(served: tuple[ServeProcess, Path]) -> None:
    server, data = served
    done = closed_labels(server)
    assert body_labels_are_sorted(done)
    for s in done:
        assert s["start"].endswith("Z") and parse_utc(s["end"]) >= parse_utc(s["start"])
    # an alert: blue ring expected while the red circle shows
    code, _ = server.request("POST", "/api/expect", {"camera": "pass", "label": "blue ring"})
    assert code == 200

    def alerted() -> list[dict[str, Any]]:
        body = get(server, "/api/history?camera=pass")[1]
        return [e for e in body["events"] if e["kind"] == "alert"]

    alert = wait_for(alerted, timeout=20)[0]
    assert alert["expected"] == "blue ring" and alert["seen"] != "blue ring"
    assert isinstance(alert["id"], int) and alert["moment"] == alert["started"]
    assert parse_utc(alert["moment"]) <= parse_utc(alert["time"])
    server.request("DELETE", "/api/expect?camera=pass")
    kinds = {e["kind"] for e in get(server, "/api/history?camera=pass")[1]["events"]}
    assert {"expectation_set", "alert"} <= kinds
    # on disk: UNIX seconds, one JSON object a line
    stem_labels = stored_labels(data, "pass", 0, time.time() + 60)
    assert len(stem_labels) >= 2 and stem_labels[0]["start"] > 1e9
    assert any(e["kind"] == "alert" for e in stored_events(data, "pass", 0, time.time() + 60))
    recordings = wait_for(
        lambda: get(server, "/api/history?camera=pass")[1]["recordings"], timeout=20
    )
    assert all(r["url"] == "/recordings/" + r["name"] for r in recordings)
    assert all(r["name"].startswith("pass-") and r["name"].endswith(".webm") for r in recordings)
    body = get(server, "/api/history?camera=pass")[1]
    assert body["history"] == {"writing": True, "error": None}
    window = get(server, "/api/history?" + q(camera="pass", since="2020-01-01T00:00:00Z",
                                                until="2020-01-01T01:00:00+00:00"))[1]  # fmt: skip
    assert window["labels"] == [] and window["events"] == [] and window["recordings"] == []
    assert window["since"] == "2020-01-01T00:00:00.000Z"


def test_free_text_search_finds_the_moment_and_its_recording(
    served: tuple[ServeProcess, Path],
) -> None:
    server, _ = served
    wait_for(lambda: len(get(server, "/api/recordings?camera=pass")[1]["recordings"]) >= 2, 30)
    done = closed_labels(server)
    code, body = get(server, "/api/search?" + q(q="red circle", top="5"))
    assert code == 200, body
    assert body["query"] == "red circle" and body["rows"] > 0 and body["took_ms"] >= 0
    moments = body["moments"]
    assert 1 <= len(moments) <= 5
    assert [m["score"] for m in moments] == sorted((m["score"] for m in moments), reverse=True)
    best = moments[0]
    assert best["camera"] == "pass"
    t = parse_utc(best["best"])
    assert parse_utc(best["start"]) <= t <= parse_utc(best["end"])
    # the known moment: the best frame shows the red circle
    red = [s for s in done if s["label"] == "red circle"]
    blue = [s for s in done if s["label"] == "blue ring"]
    hits = [m for m in moments if m["recording"] is not None and m["thumbnail"]]
    assert hits, moments
    for m in hits:
        assert m["why"] is None and m["recording"]["url"].startswith("/recordings/pass-")
        assert m["recording"]["offset"] >= 0
    if any(parse_utc(s["start"]) <= t <= parse_utc(s["end"]) for s in red + blue):
        # (the labels lag the pictures by the smoothing)
        assert any(parse_utc(s["start"]) - 0.6 <= t <= parse_utc(s["end"]) + 0.6 for s in red)
    code, headers, jpeg = raw_get(server, hits[0]["thumbnail"])
    assert code == 200 and headers["Content-Type"] == "image/jpeg" and jpeg[:2] == b"\xff\xd8"
    picture = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert picture.shape[1] == 320
    # one camera, a window, top
    one = get(server, "/api/search?" + q(q="red circle", camera="pass", top="1"))[1]
    assert len(one["moments"]) == 1
    none = get(server, "/api/search?" + q(q="red circle", until="2020-01-01T00:00:00Z"))[1]
    assert none["moments"] == [] and none["rows"] == 0


def test_more_like_this(served: tuple[ServeProcess, Path]) -> None:
    server, _ = served
    # (the history shows what was flushed: within --flush-seconds of the start)
    code, now = wait_for(
        lambda: (r := get(server, "/api/search?like=pass&top=3"))[1]["moments"] and r
    )
    assert code == 200 and now["moments"] and now["query"] == "like pass now"
    at = now["moments"][0]["best"]
    code, body = get(server, "/api/search?" + q(like="pass", at=at, top="20"))
    assert code == 200 and body["query"].startswith("like pass at ")
    assert body["moments"][0]["score"] > 0.99  # the stored frame itself (or, the video
    # looping, the same frame again): the moment of that time is among the best
    assert any(
        parse_utc(m["start"]) - 0.2 <= parse_utc(at) <= parse_utc(m["end"]) + 0.2
        for m in body["moments"]
        if m["score"] > 0.99
    )
    # a picture: PNG and JPEG bodies
    image = synthetic_shapes.make_image("red circle", np.random.default_rng(1), size=(240, 320))
    for ext, kind in ((".png", "image/png"), (".jpg", "image/jpeg")):
        buf = cv2.imencode(ext, image)[1]
        code, body = post_bytes(server, "/api/search?top=2", buf.tobytes(), kind)
        assert code == 200 and body["query"] == "like the picture" and body["moments"], body
    code, body = post_bytes(server, "/api/search", b"\x89PNG\r\n\x1a\nnot really", "image/png")
    assert code == 400 and "\n" not in body["error"] and "JPEG or PNG" in body["error"]
    code, body = post_bytes(server, "/api/search", b'{"q": "red"}', "application/json")
    assert code == 415 and "image/jpeg" in body["error"]
    for path, status in [
        ("/api/search?like=nope", 404),
        ("/api/search?q=red&like=pass", 400),
        ("/api/search", 400),
        ("/api/search?" + q(q="   "), 400),
        ("/api/search?" + q(like="pass", at="2020-01-01T00:00:00Z"), 404),
    ]:
        code, body = get(server, path)
        assert code == status and "\n" not in body["error"], (path, body)


def test_recordings_are_served_with_http_range(served: tuple[ServeProcess, Path]) -> None:
    server, data = served
    listed = wait_for(lambda: get(server, "/api/recordings?camera=pass")[1]["recordings"], 30)
    rec = listed[0]
    assert parse_utc(rec["start"]) < parse_utc(rec["end"])
    whole = (data / "recordings" / rec["name"]).read_bytes()
    assert whole[:4] == b"\x1a\x45\xdf\xa3"  # WebM (EBML)
    code, headers, part = raw_get(server, rec["url"], {"Range": "bytes=100-1099"})
    assert code == 206 and part == whole[100:1100]
    assert headers["Content-Range"] == f"bytes 100-1099/{len(whole)}"
    assert headers["Content-Type"] == "video/webm"
    code, headers, body = raw_get(server, rec["url"])
    assert code == 200 and body == whole and headers.get("Accept-Ranges") == "bytes"


def test_names_outside_the_recordings_are_404(served: tuple[ServeProcess, Path]) -> None:
    server, data = served
    folder = data / "recordings"
    (folder / "notes.txt").write_text("secret")
    (data / "pass-20200101-000000.webm").write_bytes(b"not in the folder")
    link = folder / "pass-20200101-000001.webm"
    link.symlink_to("/etc/passwd")
    for name in [
        "..%2Fpass-20200101-000000.webm",
        "%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
        "..",
        "notes.txt",
        "pass-20200101-000000.webm",  # (not there)
        "pass-20200101-000001.webm",  # a link
        "other-20200101-000000.webm",
        ".pass-20200101-000000.partial.webm",
        "pass-20200101-000000.webm%00.txt",
    ]:
        code, _, body = raw_get(server, "/recordings/" + name)
        assert code == 404, (name, body)
        assert b"root:" not in body and b"secret" not in body  # (no file's content)
    code, _, _ = raw_get(server, "/recordings/../../etc/passwd")
    assert code == 404


def test_bad_times_and_parameters_are_400(served: tuple[ServeProcess, Path]) -> None:
    server, _ = served
    for path in [
        "/api/history?" + q(camera="pass", since="yesterday"),
        "/api/history?" + q(camera="pass", until="2026-13-01T00:00:00Z"),
        "/api/history?" + q(camera="pass", since="2026-01-02T00:00:00Z",
                            until="2026-01-01T00:00:00Z"),
        "/api/history",
        "/api/search?" + q(q="red", since="12:31"),
        "/api/search?" + q(q="red", top="0"),
        "/api/search?" + q(q="red", top="101"),
        "/api/search?" + q(q="red", top="many"),
        "/api/search?" + q(q="x" * 201),
        "/api/thumbnail?camera=pass",
        "/api/thumbnail?" + q(camera="pass", time="noon"),
    ]:  # fmt: skip
        code, body = get(server, path)
        assert code == 400, (path, body)
        assert "\n" not in body["error"] and len(body["error"]) < 300
    code, body = get(server, "/api/thumbnail?" + q(camera="pass", time="2020-01-01T00:00:00Z"))
    assert code == 404 and "no thumbnail" in body["error"]
    for path in [  # far-away times are just times
        "/api/history?" + q(camera="pass", since="0001-01-01T00:00:00Z"),
        "/api/search?" + q(q="red", until="9999-12-31T23:59:59.999999Z"),
        "/api/recordings?" + q(since="2026-01-01T00:00:00-11:00"),
    ]:
        assert get(server, path)[0] == 200, path
    code, body = get(server, "/api/thumbnail?" + q(camera="pass", time="9999-01-01T00:00:00Z"))
    assert code == 404
    assert get(server, "/api/history?camera=nope")[0] == 404


def test_the_history_needs_the_token(served: tuple[ServeProcess, Path]) -> None:
    server, _ = served
    rec = wait_for(lambda: get(server, "/api/recordings")[1]["recordings"], 30)[0]
    for path in [
        "/api/history?camera=pass",
        "/api/search?q=red",
        "/api/recordings",
        rec["url"],
        "/api/thumbnail?" + q(camera="pass", time=rec["start"]),
    ]:
        code, _, body = raw_get(server, path, token="")  # (a wrong one would lock us out)
        assert code == 401 and b"token" in body, path
    image = synthetic_shapes.make_image("red circle", np.random.default_rng(2), size=(120, 160))
    req = urllib.request.Request(
        server.url + "/api/search", data=cv2.imencode(".png", image)[1].tobytes(), method="POST"
    )
    req.add_header("Content-Type", "image/png")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=10)
    assert e.value.code == 401


# -- crash, restart, another model ---------------------------------------------------------


def test_kill_9_leaves_the_history_readable_up_to_the_last_flush(tmp_path: Path) -> None:
    video = tmp_path / "pass.mp4"
    synthetic_shapes.make_video(video, [("red circle", 0, 2), ("blue ring", 2, 4)], fps=10)
    data = tmp_path / "data"
    server = ServeProcess(
        [str(video), "--name", "pass", "--model", str(MODEL), "--labels", LABELS, "--loop",
         "--data", str(data), "--flush-seconds", "1"],
        home=tmp_path / "home",
    )  # fmt: skip
    try:
        chunk = wait_for(lambda: history_chunks(data, "pass"), timeout=20)[-1]
        flushed = wait_for(lambda: (r := open_embeddings(chunk.path).rows) >= 10 and r, 30)
        wait_for(lambda: stored_labels(data, "pass", 0, time.time() + 60), timeout=20)
    finally:
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait()
    store = open_embeddings(chunk.path)  # readable; what was flushed is there
    assert store.rows >= flushed and not store.writing
    assert not store.meta["complete"] and store.notes and "without closing" in store.notes[0]
    assert stored_labels(data, "pass", 0, time.time() + 60)
    # the command line searches the service's data folder
    found = subprocess.run(
        [sys.executable, "-m", "scenecls", "search", str(data), "red circle", "--json",
         "--top", "2"],
        cwd=REPO, env={**os.environ, "SCENECLS_HOME": str(tmp_path / "home")},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert found.returncode == 0, found.stderr
    lines = [json.loads(line) for line in found.stdout.splitlines() if line.startswith("{")]
    assert lines and lines[0]["video"].startswith("pass ")
    assert "UTC)" in found.stderr  # the crash note names the last flush in UTC
    # relabel too: captions (timed from 1970) are left out unless asked for, then refused
    env = {**os.environ, "SCENECLS_HOME": str(tmp_path / "home")}
    relabel = [sys.executable, "-m", "scenecls", "relabel", str(data), "--labels",
               "red circle,blue ring", "--out", str(tmp_path / "relabelled")]  # fmt: skip
    done = subprocess.run(relabel, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    made = sorted(p.name for p in (tmp_path / "relabelled").rglob("*") if p.is_file())
    assert any(n.endswith(".jsonl") and n != "manifest.jsonl" for n in made)
    assert not any(n.endswith((".srt", ".vtt")) for n in made)
    entry = json.loads((tmp_path / "relabelled" / "manifest.jsonl").read_text().splitlines()[0])
    assert 0 < entry["duration"] < 3600  # the chunk's length, not a UNIX time
    refused = subprocess.run(
        [*relabel[:-1], str(tmp_path / "other"), "--outputs", "srt"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert refused.returncode == 2 and "captions" in refused.stderr
    # the unfinished recording the kill left behind goes when the service starts again
    partials = list((data / "recordings").glob(".pass-*.partial.*"))
    assert partials, "a recording was being written when the service was killed"
    again = ServeProcess(
        [str(video), "--name", "pass", "--model", str(MODEL), "--labels", LABELS, "--loop",
         "--data", str(data)],
        home=tmp_path / "home",
    )  # fmt: skip
    try:
        wait_for(lambda: not any(p.exists() for p in partials), timeout=30)
    finally:
        again.stop()


def test_a_history_of_another_model_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    chunk = data / "history" / "pass" / "20260101-120000"
    chunk.mkdir(parents=True)
    meta = {"format": "scenecls-embeddings", "version": 2, "camera": "pass",
            "model": "other/clip-model", "model_fingerprint": "0123456789abcdef"}  # fmt: skip
    (chunk / "meta.json").write_text(json.dumps(meta))
    video = tmp_path / "pass.mp4"
    synthetic_shapes.make_video(video, [("red circle", 0, 1)], fps=5)
    done = subprocess.run(
        [sys.executable, "-m", "scenecls", "serve", str(video), "--name", "pass", "--model",
         str(MODEL), "--labels", LABELS, "--data", str(data), "--port", "0"],
        cwd=REPO, env={**os.environ, "SCENECLS_HOME": str(tmp_path / "home")},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    lines = [ln for ln in done.stderr.splitlines() if ln.startswith("scenecls: error:")]
    assert len(lines) == 1 and "Traceback" not in done.stderr
    assert "other/clip-model" in lines[0] and "scenecls-shapes-clip" in lines[0]
    assert sorted(p.name for p in (data / "history" / "pass").iterdir()) == ["20260101-120000"]


# -- the writer's faults and rotation (no server) ------------------------------------------


def _writer(data: Path, **kw: Any) -> HistoryWriter:
    return HistoryWriter(data, {"pass": "pass"}, lambda name: {"model": "m"}, 4, **kw)


def _unit(i: int) -> np.ndarray:
    row = np.zeros(4, np.float32)
    row[i % 4] = 1.0
    return row


def _feed(writer: HistoryWriter, start: float, seconds: float, fps: float = 10.0) -> None:
    """Frames of camera 'pass' from UNIX ``start``: a new row each second, reused between."""
    row = _unit(0)
    for i in range(round(seconds * fps)):
        encoded = i % round(fps) == 0
        if encoded:
            row = _unit(i)
        writer.frame("pass", start + i / fps, i, row, encoded)


def test_chunks_rotate_by_the_hour_and_old_ones_are_deleted(tmp_path: Path) -> None:
    now = [1_800_000_000.0 + 1800]  # half past an hour
    writer = _writer(tmp_path, keep_hours=2, clock=lambda: now[0]).start()
    _feed(writer, now[0] - 5 * 3600, 3)  # 5 hours ago
    _feed(writer, now[0] - 3 * 3600 + 1500, 3)  # 2.5 hours ago
    _feed(writer, now[0] - 3600, 3)
    _feed(writer, now[0] - 10, 3)
    writer.event("pass", "alert", now[0] - 9, {"id": 1})
    writer.segment("pass", "red circle", now[0] - 10, now[0] - 8, 0.9)
    writer.stop()
    chunks = history_chunks(tmp_path, "pass")
    assert [c.path.name for c in chunks] == [
        stamp_of(t) for t in (now[0] - 5 * 3600, now[0] - 3 * 3600 + 1500, now[0] - 3600,
                              now[0] - 10)
    ]  # fmt: skip
    assert chunks[0].end == chunk_bound(chunks[0].start)
    for chunk in chunks:
        store = open_embeddings(chunk.path)
        assert store.meta["complete"] and store.rows == 3 and len(store.frames) == 30
    assert stored_events(tmp_path, "pass", now[0] - 60, now[0])[0]["kind"] == "alert"
    assert stored_labels(tmp_path, "pass", now[0] - 60, now[0])[0]["label"] == "red circle"
    writer = _writer(tmp_path, keep_hours=2, clock=lambda: now[0])
    gone = writer.expire()  # ended more than 2 hours ago: the first two
    assert gone == [chunks[0].path, chunks[1].path] and not chunks[0].path.exists()
    assert [c.path for c in history_chunks(tmp_path, "pass")] == [c.path for c in chunks[2:]]
    now[0] += 2 * 3600
    assert _writer(tmp_path, keep_hours=2, clock=lambda: now[0]).expire() == [chunks[2].path]
    assert _writer(tmp_path, keep_hours=None, clock=lambda: now[0] + 1e6).expire() == []


def test_a_reused_frame_is_a_record_of_the_last_row(tmp_path: Path) -> None:
    writer = _writer(tmp_path).start()
    a, b = _unit(0), _unit(1)
    t = 1_800_000_000.0
    for i, (row, encoded) in enumerate([(a, True), (a, False), (a, False), (b, True), (b, False)]):
        writer.frame("pass", t + i, i, row, encoded)
    writer.stop()
    store = open_embeddings(history_chunks(tmp_path)[0].path)
    assert store.rows == 2 and list(store.times) == [t, t + 3]
    assert list(store.frames["left"]) == [0, 0, 0, 1, 1]
    assert list(store.frames["encoded"]) == [True, False, False, True, False]
    assert np.allclose(store.frame_embeddings(), [a, a, a, b, b], atol=1e-3)


class _FullDisk(StoreWriter):
    def add(self, *args: Any, **kwargs: Any) -> None:
        raise OutputError(
            f"writing the embeddings store {self.path} failed (the disk is full); everything "
            "up to the last flush is kept and readable"
        )


def test_a_full_disk_stops_the_history_in_one_line(tmp_path: Path, scenecls_log: LogLines) -> None:
    writer = _writer(tmp_path, store_writer=_FullDisk).start()
    _feed(writer, 1_800_000_000.0, 2)
    wait_for(lambda: not writer.writing, timeout=10)
    _feed(writer, 1_800_000_002.0, 2)  # ignored, not queued, nothing logged
    writer.stop()
    errors = [r for r in scenecls_log.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "disk is full" in errors[0].getMessage()
    assert "live view and alerts go on" in errors[0].getMessage()
    status = writer.status("pass")
    assert status["writing"] is False and "disk is full" in status["error"]
    # a nearly full disk (DiskWatch) stops it the same way
    scenecls_log.records.clear()
    writer = _writer(tmp_path / "b", min_free=2**62).start()
    _feed(writer, 1_800_000_000.0, 1)
    wait_for(lambda: not writer.writing, timeout=10)
    writer.stop()
    errors = [r for r in scenecls_log.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "nearly full" in writer.status("pass")["error"]


def test_the_analysis_goes_on_when_the_history_cannot_be_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, scenecls_log: LogLines
) -> None:
    import scenecls
    from scenecls.serve.service import Service

    def full(self: StoreWriter, *args: Any, **kwargs: Any) -> None:
        raise OutputError(f"writing the embeddings store {self.path} failed (the disk is full)")

    monkeypatch.setattr(StoreWriter, "add", full)
    video = tmp_path / "pass.mp4"
    synthetic_shapes.make_video(video, [("red circle", 0, 2)], fps=10)
    service = Service(
        scenecls.load_model(MODEL), LABELS, [("pass", str(video))], loop=True,
        data=tmp_path / "data", flush_seconds=1,
    )  # fmt: skip
    service.start()
    try:
        wait_for(lambda: not service.status()["cameras"][0]["history"]["writing"], timeout=20)
        analysed = service.status()["cameras"][0]["frames_analysed"]
        wait_for(lambda: service.status()["cameras"][0]["frames_analysed"] > analysed + 5, 20)
        camera = service.status()["cameras"][0]
        assert camera["history"]["error"].endswith("(the disk is full)")
        assert camera["label"] is not None and service.healthy
    finally:
        service.stop()
    lines = [r.getMessage() for r in scenecls_log.records if "history writing" in r.getMessage()]
    assert len(lines) == 1, lines


def test_history_chunks_and_recording_names(tmp_path: Path) -> None:
    root = tmp_path / "history"
    for stem, names in {"a": ["20260101-120000", "20260101-125959-2", "20260101-130500"],
                        "b-1": ["20260101-110000", "not-a-chunk"]}.items():  # fmt: skip
        for name in names:
            (root / stem / name).mkdir(parents=True)
    (root / "b-1" / "20260101-110000" / "meta.json").write_text('{"camera": "b 1"}')
    (root / "a" / "stray.txt").write_text("")
    chunks = history_chunks(tmp_path)
    assert [(c.camera, c.stem, c.path.name) for c in chunks] == [
        ("a", "a", "20260101-120000"),
        ("a", "a", "20260101-125959-2"),
        ("a", "a", "20260101-130500"),
        ("b 1", "b-1", "20260101-110000"),
    ]
    start = parse_utc("2026-01-01T12:00:00Z")
    assert chunks[0].start == start and chunks[0].end == start + 3600.0  # (12:59:59 + 1 s)
    assert chunks[1].end == start + 3600.0 and chunks[2].end == start + 2 * 3600
    assert [c.path.name for c in history_chunks(tmp_path, "b-1")] == ["20260101-110000"]
    assert history_chunks(tmp_path / "none") == []
    assert parse_recording_name("cam-1-20260101-120000-2.webm") == ("cam-1", start)
    assert parse_recording_name("cam-20260101-120000.mp4", "cam") == ("cam", start)
    for bad in ("cam-20260101-120000.avi", "cam-2026-120000.webm", "../cam-20260101-120000.webm"):
        assert parse_recording_name(bad, "cam") is None


def test_picture_sizes_are_read_from_the_header() -> None:
    image = np.zeros((30, 40, 3), np.uint8)
    for ext in (".png", ".jpg"):
        assert picture_size(cv2.imencode(ext, image)[1].tobytes()) == (40, 30)
    for junk in (b"", b"GIF89a", b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n"):
        assert picture_size(junk) is None


def test_a_busy_writer_drops_and_says_so_once(tmp_path: Path, scenecls_log: LogLines) -> None:
    gate = threading.Event()

    class _Slow(StoreWriter):
        def add(self, *args: Any, **kwargs: Any) -> None:
            gate.wait(10)
            super().add(*args, **kwargs)

    writer = _writer(tmp_path, store_writer=_Slow, queue_items=8).start()
    _feed(writer, 1_800_000_000.0, 5)
    gate.set()
    writer.stop()
    assert writer.status("pass")["dropped"] > 0 and writer.writing
    warnings = [r for r in scenecls_log.records if "dropping frames" in r.getMessage()]
    assert len(warnings) == 1
    store = open_embeddings(history_chunks(tmp_path)[0].path)  # what got through is whole
    assert store.meta["complete"] and store.rows >= 1
