"""A camera's region of interest in the kitchen service: set and cleared through the API
(with the API's authentication), seen by the camera's gate and encoder only, drawn on
the live view, kept in ``--data DIR`` across a restart; and the command line's checks."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
import synthetic_shapes  # scripts/ is on the path (conftest)

from scenecls.cli import main
from scenecls.model.labels import resolve_labels
from scenecls.model.scene_model import load_model
from scenecls.region import Region
from scenecls.serve.service import Service
from scenecls.serve.settings import CameraSettings, camera_file_name

from .outputs import one_line_error
from .test_fuzz_api import Api

MODEL = Path(__file__).parent / "fixtures" / "shapes-clip"
LABELS = ",".join(synthetic_shapes.CLASSES)
HALF = {"x": 0.5, "y": 0.0, "w": 0.5, "h": 0.5}
JSON = {"Content-Type": "application/json"}  # (a change without it is refused: 415)


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("region") / "pass.mp4"  # 320 x 240
    synthetic_shapes.make_video(path, [("red circle", 0, 2), ("blue ring", 2, 4)], fps=10)
    return path


@pytest.fixture(scope="module")
def model():  # type: ignore[no-untyped-def]
    return load_model(MODEL, device="cpu", precision="fp32")


def _service(model, video: Path, **kwargs) -> Service:  # type: ignore[no-untyped-def]
    cameras = [("pass", str(video)), ("oven", str(video))]
    return Service(model, resolve_labels(LABELS), cameras, loop=True, **kwargs)


def _wait(check, timeout: float = 20.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not (result := check()):
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)
    return result


@pytest.fixture
def running(model, video: Path, tmp_path: Path) -> Iterator[tuple[Api, list]]:  # type: ignore[no-untyped-def]
    """A started service with --data, served with a token; the shapes of every image
    its encoder got, with the time of the call."""
    service = _service(model, video, data=tmp_path / "data")
    calls: list[tuple[float, list[tuple[int, ...]]]] = []
    encode = service._encode

    def spy(images):  # type: ignore[no-untyped-def]
        calls.append((time.monotonic(), [i.shape for i in images]))
        return encode(images)

    service._encode = spy  # type: ignore[method-assign]
    api = Api(service)
    try:
        api.run(api.start())
        service.start()
        _wait(lambda: all(service.latest_jpeg(n)[1] for n in ("pass", "oven")))
        yield api, calls
    finally:
        api.shutdown()


def _post(api: Api, camera: str, body: object, **kwargs) -> tuple[int, dict]:  # type: ignore[no-untyped-def]
    kwargs["headers"] = {**JSON, **kwargs.get("headers", {})}
    reply = api.request(
        "POST", f"/api/cameras/{camera}/region", data=json.dumps(body).encode(), **kwargs
    )
    return reply.status, json.loads(reply.body)


def _status(api: Api) -> dict[str, dict]:
    reply = api.request("GET", "/api/status")
    return {c["name"]: c for c in json.loads(reply.body)["cameras"]}


def test_set_and_clear_a_region_through_the_api(running, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    api, calls = running
    service = api.service
    assert _status(api)["pass"]["region"] is None
    # the API's rules: no token, no change
    status, body = _post(api, "pass", HALF, token=False)
    assert status == 401 and _status(api)["pass"]["region"] is None

    at = time.monotonic()
    status, body = _post(api, "pass", HALF)
    assert status == 200, body
    assert body == {"camera": "pass", "region": {**HALF, "unit": "fraction"}, "saved": True}
    cams = _status(api)
    assert cams["pass"]["region"] == {**HALF, "unit": "fraction"} and cams["oven"]["region"] is None
    assert any(e["type"] == "region_changed" for e in service.events.recent(limit=50))
    # the next frame of the camera is encoded, and only its region: 160 x 120 of 320 x 240
    _wait(lambda: any((120, 160, 3) in shapes for t, shapes in calls if t > at))
    _wait(lambda: len([s for t, shapes in calls if t > at + 0.5 for s in shapes]) > 4)
    later = [s for t, shapes in calls if t > at + 0.5 for s in shapes]
    assert set(later) <= {(120, 160, 3), (240, 320, 3)}  # pass's region, oven's whole frame
    # the live view is the whole frame, with the region's frame drawn on it
    seq = service.latest_jpeg("pass")[0]
    _wait(lambda: service.latest_jpeg("pass")[0] > seq)
    view = cv2.imdecode(np.frombuffer(service.latest_jpeg("pass")[1], np.uint8), cv2.IMREAD_COLOR)
    assert view.shape == (240, 320, 3)
    b, g, r = (int(v) for v in view[119, 240])  # the region's bottom edge, amber
    assert r > 170 and g > 140 and r - b > 70
    # saved in --data
    stored = json.loads((tmp_path / "data" / "cameras" / "pass.json").read_text())
    assert stored["region"] == {**HALF, "unit": "fraction"} and stored["camera"] == "pass"

    status, body = _post(api, "pass", {"region": None})
    assert status == 200 and body["region"] is None and body["saved"] is True
    assert _status(api)["pass"]["region"] is None
    assert json.loads((tmp_path / "data" / "cameras" / "pass.json").read_text())["region"] is None


@pytest.mark.parametrize(
    "camera, body, status, words",
    [
        ("nope", HALF, 404, "unknown camera 'nope'"),
        ("pass", b'{"x": NaN, "y": 0, "w": 0.5, "h": 0.5}', 400, "x must be a finite number"),
        ("pass", b'{"x": 0, "y": 0, "w": Infinity, "h": 0.5}', 400, "w must be a finite"),
        ("pass", {"x": "0", "y": 0, "w": 0.5, "h": 0.5}, 400, "x must be a number, not str"),
        ("pass", {"x": [0], "y": 0, "w": 0.5, "h": 0.5}, 400, "x must be a number, not list"),
        ("pass", {"x": True, "y": 0, "w": 0.5, "h": 0.5}, 400, "must be a number, not bool"),
        ("pass", {"x": 10**30, "y": 0, "w": 0.5, "h": 0.5}, 400, "out of range"),
        ("pass", {"x": 0, "y": 0, "w": 1e300, "h": 0.5}, 400, "at most 1"),
        ("pass", {"x": 0.8, "y": 0, "w": 0.5, "h": 0.5}, 400, "at most 1"),  # outside
        ("pass", {"x": -0.1, "y": 0, "w": 0.5, "h": 0.5}, 400, "0 or more"),
        ("pass", {"x": 0, "y": 0, "w": 0, "h": 0.5}, 400, "more than 0"),
        ("pass", {"x": 0, "y": 0, "w": 0.001, "h": 0.5}, 400, "covers no whole pixel"),
        ("pass", {"x": 0, "y": 0, "w": 0.5}, 400, "lacks h"),
        ("pass", {**HALF, "unit": "pixel"}, 400, "fractions of the frame"),
        ("pass", {**HALF, "z": 1}, 400, "unknown region field(s) z"),
        ("pass", {"region": "0,0,1,1"}, 400, "must be a JSON object"),
        ("pass", [0, 0, 1, 1], 400, "body must be a JSON object"),
        ("pass", b"x=0&y=0", 400, "body must be JSON"),
        ("pass", b"[" * 60_000, 400, "nested too deeply"),
    ],
)
def test_hostile_region_payloads_are_one_line_4xx(
    running, camera: str, body: object, status: int, words: str
) -> None:  # type: ignore[no-untyped-def]
    api, _ = running
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    reply = api.request("POST", f"/api/cameras/{camera}/region", data=data, headers=JSON)
    assert reply.status == status and reply.content_type == "application/json"
    error = json.loads(reply.body)["error"]
    assert words in error and "\n" not in error and len(error) < 400
    assert _status(api)["pass"]["region"] is None  # nothing changed


def test_the_region_is_kept_across_a_restart_with_data(
    model, video: Path, tmp_path: Path, caplog
) -> None:  # type: ignore[no-untyped-def]
    data = tmp_path / "data"
    first = _service(model, video, data=data)
    assert first.states["pass"].region is None
    assert first.set_region("pass", Region(0.1, 0.2, 0.3, 0.4))["saved"] is True
    # restarted: the stored region comes back (and only for that camera)
    second = _service(model, video, data=data)
    assert second.states["pass"].region == Region(0.1, 0.2, 0.3, 0.4)
    assert second.states["pass"].overlay.region == Region(0.1, 0.2, 0.3, 0.4)
    assert second.states["oven"].region is None
    assert second.status()["cameras"][0]["region"]["w"] == 0.3
    # a --region on the command line wins over the stored one, and is saved
    cli = Region(0, 0, 100, 100, "pixel")
    third = _service(model, video, data=data, regions={"pass": cli, "oven": None})
    assert third.states["pass"].region == cli
    assert _service(model, video, data=data).states["pass"].region == cli
    # cleared on the page: stays cleared after a restart
    third.set_region("pass", None)
    assert _service(model, video, data=data).states["pass"].region is None
    # without --data it holds until the restart only
    assert _service(model, video).set_region("pass", Region(0, 0, 0.5, 0.5))["saved"] is None
    # a damaged settings file is logged and ignored
    (data / "cameras" / "pass.json").write_text('{"region": {"x": 0.1, "y"')
    (data / "cameras" / "oven.json").write_text('{"region": {"x": 5, "y": 0, "w": 1, "h": 1}}')
    with caplog.at_level(logging.WARNING, logger="scenecls"):
        damaged = _service(model, video, data=data)
    assert damaged.states["pass"].region is None and damaged.states["oven"].region is None
    assert "ignoring its damaged settings file" in caplog.text
    assert "ignoring the stored region" in caplog.text
    assert damaged.set_region("pass", Region(0, 0, 1, 1))["saved"] is True  # rewritten whole
    assert CameraSettings(data).region("pass") == Region(0, 0, 1, 1)


def test_camera_settings_file_names_are_safe_and_distinct() -> None:
    assert camera_file_name("pass") == "pass.json"
    assert camera_file_name("oven-2_b.c") == "oven-2_b.c.json"
    names = ["..", ".", "café", "caf_", "a/b", "a\\b", "ÄÖ", "__"]
    files = [camera_file_name(n) for n in names]
    assert len(set(files)) == len(files)
    for f in files:
        assert "/" not in f and "\\" not in f and not f.startswith(".") and f.isascii()


@pytest.mark.parametrize(
    "extra, code, words",
    [
        (["--region", "0,0,0.5,0.5", "--region", "0,0,1,1", "--region", "0,0,1,1"], 2,
         "3 --region for 2 sources"),
        (["--region", "0,0,400,100"], 2, "camera pass (VIDEO): region 0,0,400,100 (pixels) "
         "reaches outside the 320x240 frame"),
        (["--region", "0,0,0.5,0.5", "--region", "0,0,321,10"], 2, "camera oven (VIDEO)"),
        (["--region", "0,0,2"], 2, "--region '0,0,2': give four numbers"),
        (["--data", "FILE/data"], 1, "--data FILE/data: cannot write there"),
    ],
)  # fmt: skip
def test_bad_serve_region_and_data_options_are_one_line(
    extra: list[str], code: int, words: str, video: Path, tmp_path: Path, capsys
) -> None:  # type: ignore[no-untyped-def]
    blocker = tmp_path / "file"
    blocker.write_text("a file, not a folder\n")
    extra = [a.replace("FILE", str(blocker)) for a in extra]
    words = words.replace("VIDEO", str(video)).replace("FILE", str(blocker))
    argv = ["serve", str(video), str(video), "--name", "pass", "--name", "oven",
            "--model", str(tmp_path / "no-model"), "--labels", LABELS, *extra]  # fmt: skip
    assert main(argv) == code  # refused before the model (which does not exist) loads
    assert words in one_line_error(capsys.readouterr().err)
