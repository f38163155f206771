"""``scenecls teach --suggest``: the most distinct moments of real videos written as
pictures to sort, from the videos themselves and from stored embeddings (nothing
encoded), and bad inputs refused before anything is written."""

from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

import scenecls
from scenecls.errors import UsageError
from scenecls.model.embeddings_store import FRAME_DTYPE, row_spans, write_embeddings
from scenecls.model.store_writer import StoreWriter
from scenecls.region import Region
from scenecls.teaching.suggest import (
    README,
    UNSORTED,
    frames_at,
    moment_name,
    pick_distinct,
    suggest,
)
from scenecls.video.sources import VideoFileSource

from .conftest import MEDIA

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / "tests" / "fixtures" / "shapes-clip"
BOTTLES = MEDIA / "bottle-detection.mp4"  # 640x360, 40 s at 30 fps
CARS = MEDIA / "car-detection.mp4"  # 768x432, 30 s at 12.5 fps
NAME = re.compile(r"^(?P<stem>.+)_(?P<min>\d{2,})m(?P<sec>\d{2}\.\d)s(-\d+)?\.jpg$")


@pytest.fixture(scope="module")
def model() -> scenecls.SceneModel:
    return scenecls.load_model(BUNDLE, device="cpu")


@pytest.fixture(scope="module")
def decoded() -> dict[str, tuple[np.ndarray, list[np.ndarray]]]:
    """Every frame's presentation time (s) and HxWx3 uint8 BGR image, per video stem."""
    out = {}
    for video in (BOTTLES, CARS):
        source = VideoFileSource(video)
        source.open()
        times, images = [], []
        while (frame := source.read()) is not None:
            times.append(frame.timestamp)
            images.append(frame.image_bgr)
        source.close()
        out[video.stem] = (np.asarray(times), images)
    return out


class NoEncoder:
    """A model that must not encode: the facts of ``model``, and an encoder that fails."""

    def __init__(self, model: scenecls.SceneModel) -> None:
        self.bundle = model.bundle
        self.embed_dim = model.embed_dim

    def encode_images(self, images_bgr: object) -> np.ndarray:
        raise AssertionError("an embeddings file's moments must not be encoded again")


def _parsed(path: Path) -> tuple[str, float]:
    match = NAME.match(path.name)
    assert match, f"{path.name} is not named <video>_<MMmSS.Ss>.jpg"
    return match["stem"], int(match["min"]) * 60 + float(match["sec"])


def _check_pictures(
    paths: list[Path],
    out: Path,
    decoded: dict[str, tuple[np.ndarray, list[np.ndarray]]],
    count: int,
) -> dict[str, list[float]]:
    """The pictures are ``count`` distinct whole frames of the videos at their names'
    times, in time order per video; returns the times per video."""
    assert len(paths) == count
    assert sorted(paths) == sorted((out / UNSORTED).glob("*.jpg"))
    assert len({p.name for p in paths}) == count
    assert len({hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}) == count
    times: dict[str, list[float]] = {}
    for path in paths:
        stem, t = _parsed(path)
        assert stem in decoded
        times.setdefault(stem, []).append(t)
        video_times, images = decoded[stem]
        assert video_times[0] - 0.05 <= t <= video_times[-1] + 0.05
        picture = cv2.imread(str(path), cv2.IMREAD_COLOR)
        assert picture.shape == images[0].shape  # the whole frame, nothing cropped
        near = np.flatnonzero(np.abs(video_times - t) <= 0.051)
        diff = min(
            float(np.abs(picture.astype(np.int16) - images[i].astype(np.int16)).mean())
            for i in near
        )
        assert diff < 4.0, f"{path.name} is not the frame at {t} s ({diff:.1f})"
    for stem, ts in times.items():  # time order per video, videos in input order
        assert ts == sorted(ts), stem
    order = [_parsed(p)[0] for p in paths]
    assert order == sorted(order, key=list(times).index)
    readme = (out / UNSORTED / README).read_text()
    assert "scenecls teach" in readme and str(out) in readme and "none" in readme
    return times


def test_suggests_distinct_moments_of_two_videos(
    model: scenecls.SceneModel, decoded: dict, tmp_path: Path
) -> None:
    out = tmp_path / "suggested"
    region = Region(0.25, 0.0, 0.5, 1.0)  # encoded: the crop; written: the whole frame
    paths = suggest(model, [BOTTLES, str(CARS)], 6, out, region=region)
    times = _check_pictures(paths, out, decoded, 6)
    every = [t for ts in times.values() for t in ts]
    assert max(every) - min(every) > 2.0 or len(times) > 1
    for ts in times.values():
        if len(ts) > 1:
            assert max(ts) - min(ts) > 2.0, f"picks bunched in time: {ts}"
    again = suggest(model, [BOTTLES, CARS], 6, tmp_path / "again", region=region)
    assert [p.name for p in again] == [p.name for p in paths]  # deterministic


def test_an_embeddings_store_needs_no_encoding(
    model: scenecls.SceneModel, decoded: dict, tmp_path: Path
) -> None:
    from scenecls.cli.main import main

    store = tmp_path / "cars.embeddings"
    argv = ["run", str(CARS), "--model", str(BUNDLE), "--labels", "red circle,blue ring",
            "--embeddings", str(store)]  # fmt: skip
    assert main(argv) == 0
    out = tmp_path / "from-store"
    paths = suggest(NoEncoder(model), [store], 6, out)
    times = _check_pictures(paths, out, decoded, 6)
    assert list(times) == ["car-detection"]
    assert max(times["car-detection"]) - min(times["car-detection"]) > 2.0
    # no model at all works too, and gives the same choice
    assert [p.name for p in suggest(None, [store], 6, tmp_path / "none")] == [p.name for p in paths]


def _store(path: Path, video: Path | None, fingerprint: str, dim: int = 64) -> Path:
    """A small embeddings store of ``video`` (which may not exist), a row every 0.5 s: a
    store folder, or a ``.npz`` file of format version 1 when ``path`` ends in ``.npz``."""
    n = 20
    rng = np.random.default_rng(3)
    rows = rng.normal(size=(n, dim)).astype(np.float32)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    frames = np.zeros(n, FRAME_DTYPE)
    frames["index"] = np.arange(n)
    frames["time"] = np.arange(n) * 0.5
    frames["left"] = frames["right"] = np.arange(n)
    frames["encoded"] = True
    spans = row_spans(frames, n, n * 0.5, np.zeros((0, 2)))
    meta = {
        "format": "scenecls-embeddings", "version": 1, "model": "other/model",
        "model_fingerprint": fingerprint, "embed_dim": dim, "source": str(video),
        "input": None if video is None else str(video), "end": n * 0.5, "dtype": "float32",
    }  # fmt: skip
    if path.suffix != ".npz":
        writer = StoreWriter(path, meta, dim, "float32")
        writer.add(rows, frames)
        writer.close(n * 0.5)
        return path
    write_embeddings(
        path, meta, rows, n, dim, "float32", frames["time"], spans, frames, np.zeros((0, 2))
    )
    return path


def test_bad_inputs_are_refused_before_anything_is_written(
    model: scenecls.SceneModel, tmp_path: Path
) -> None:
    text = tmp_path / "notes.txt"  # FFmpeg would render a text file as a "video"
    shutil.copy(MEDIA / "LICENSE-CC-BY-4.0.txt", text)
    not_store = tmp_path / "arrays.npz"
    np.savez(not_store, a=np.zeros(3))
    not_ours = tmp_path / "not-ours.embeddings"
    not_ours.mkdir()
    (not_ours / "meta.json").write_text("{}")
    gone = _store(tmp_path / "gone.embeddings", tmp_path / "gone.mp4", model.bundle.fingerprint)
    old_gone = _store(tmp_path / "gone.npz", tmp_path / "gone.mp4", model.bundle.fingerprint)
    other = _store(tmp_path / "other.npz", CARS, "f" * 64)
    other_store = _store(tmp_path / "other.embeddings", CARS, "f" * 64)
    live = _store(tmp_path / "live.embeddings", None, model.bundle.fingerprint)
    cases = [
        ([BOTTLES], 0, "--count"),
        ([tmp_path / "nothing.mp4"], 3, "does not exist"),
        ([tmp_path], 3, "is a folder but no embeddings store"),
        ([CARS, text], 3, "neither a video nor an embeddings store"),
        ([not_store], 3, "not a scenecls embeddings file"),
        ([not_ours], 3, "not a scenecls embeddings store"),
        ([CARS, gone], 3, "gone.mp4 is missing"),
        ([CARS, old_gone], 3, "gone.mp4 is missing"),
        ([other], 3, "fingerprint ffffffffffff"),
        ([other_store], 3, "fingerprint ffffffffffff"),
        ([live], 3, "does not name the video"),
        ([], 3, "nothing to suggest"),
    ]
    out = tmp_path / "out"
    for inputs, count, message in cases:
        with pytest.raises(UsageError, match=re.escape(message)) as info:
            suggest(model, inputs, count, out)
        assert "\n" not in str(info.value)
        assert info.value.exit_code == 2
        assert not out.exists(), f"{message}: something was written"


def test_names_and_choice_rules() -> None:
    assert moment_name("bottle-detection", 62.5) == "bottle-detection_01m02.5s"
    assert moment_name("v", 59.96) == "v_01m00.0s"
    assert moment_name("v", 4502.5) == "v_75m02.5s"
    # the most typical first, then the farthest; never a near-duplicate of a chosen one
    a, b, c = np.eye(3)
    picked = pick_distinct(np.stack([a, a, b, c]), np.arange(4), np.zeros(4), 4)
    assert picked.tolist() == [0, 2, 3]
    # two moments as far from the chosen one: the one further away in time wins, unless
    # they are of different videos or there is no time penalty
    rows = np.stack([a, a + 0.3 * b, a - 0.3 * b])
    times = np.array([10.0, 11.0, 30.0])
    assert pick_distinct(rows, np.zeros(3), times, 2).tolist() == [0, 2]
    assert pick_distinct(rows, np.zeros(3), times, 2, time_penalty=0).tolist() == [0, 1]
    assert pick_distinct(rows, np.array([0, 1, 0]), times, 2).tolist() == [0, 1]


def test_frames_at_finds_presentation_times(decoded: dict) -> None:
    video_times, images = decoded["bottle-detection"]
    wanted = [float(video_times[i]) for i in (700, 3, 1100)]
    got = frames_at(BOTTLES, wanted)
    for frame, i in zip(got, (700, 3, 1100), strict=True):
        assert frame is not None and np.array_equal(frame, images[i])
    assert frames_at(BOTTLES, [999.0]) == [None]
    near = frames_at(BOTTLES, [float(video_times[10]) + 0.01], exact=False)[0]
    assert near is not None and np.array_equal(near, images[11])


def test_a_stopped_suggestion_writes_nothing(model: scenecls.SceneModel, tmp_path: Path) -> None:
    import threading

    stop = threading.Event()
    stop.set()
    assert suggest(model, [CARS], 3, tmp_path / "out", stop=stop) == []
    assert not (tmp_path / "out").exists()
