"""The region of interest (``--region x,y,w,h``): parsing, cropping, the pipeline's gate and
encoder seeing only the region, the overlay's frame, and the commands that take it."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from scenecls.cli import main
from scenecls.errors import InputError, RegionError, UsageError
from scenecls.model.embeddings_store import read_meta
from scenecls.region import Region, parse_region, region_crop
from scenecls.types import Frame
from scenecls.video.gate import GateConfig
from scenecls.video.overlay import Overlay
from scenecls.video.pipeline import Pipeline, PipelineConfig
from scenecls.video.sources import (
    FrameSource,
    SimulatedLiveSource,
    VideoFileSource,
    sample_frames,
)

from .conftest import MEDIA
from .outputs import one_line_error, read_jsonl

VIDEO = MEDIA / "bottle-detection.mp4"  # 640 x 360, 29.8 frames/s, 40 s
LABELS = "room,park,warehouse,street"

# --- parsing -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0.25,0,0.5,1", Region(0.25, 0, 0.5, 1, "fraction")),
        (" 0.25 , 0 , 0.5 , 1 ", Region(0.25, 0, 0.5, 1, "fraction")),
        ("0,0,1,1", Region(0, 0, 1, 1, "fraction")),
        (".1,.2,.3,.4", Region(0.1, 0.2, 0.3, 0.4, "fraction")),
        ("0.3,0.3,0.7,0.7", Region(0.3, 0.3, 0.7, 0.7, "fraction")),  # x + w = 1 exactly
        ("320,0,640,720", Region(320, 0, 640, 720, "pixel")),
        ("0,0,2,2", Region(0, 0, 2, 2, "pixel")),  # one number over 1: all are pixels
        ("10,20,30.0,40", Region(10, 20, 30, 40, "pixel")),
    ],
)
def test_region_specs_that_parse(text: str, expected: Region) -> None:
    region = parse_region(text)
    assert region == expected
    assert parse_region(str(region)) == region  # the text reads back
    assert Region.from_json(json.loads(json.dumps(region.to_json()))) == region


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", "four numbers"),
        ("0.1,0.2,0.3", "four numbers"),
        ("0.1,0.2,0.3,0.4,0.5", "four numbers"),
        ("a,b,c,d", "four numbers"),
        ("nan,0,1,1", "four numbers"),
        ("inf,0,1,1", "four numbers"),
        ("1_0,0,5,5", "four numbers"),
        ("0.5;0;0.5;1", "four numbers"),
        ("0,0,0,1", "w and h must be more than 0"),
        ("-0.1,0,0.5,0.5", "x and y must be 0 or more"),
        ("0.6,0,0.5,1", "at most 1"),  # outside the frame as fractions
        ("0,0.5,1,0.6", "at most 1"),
        ("1,1,1,1", "at most 1"),  # all <= 1: fractions, and x + w = 2
        ("0.5,0,320,240", "whole numbers"),  # mixed: pixels must be whole
        ("-5,0,320,240", "0 or more"),
        ("0,0,99999999,10", "at most"),
    ],
)
def test_malformed_or_outside_specs_are_one_line_usage_errors(text: str, words: str) -> None:
    with pytest.raises(UsageError) as e:
        parse_region(text)
    message = str(e.value)
    assert words in message and "\n" not in message
    assert "fractions of the frame (0.25,0,0.5,1) or pixels (320,0,640,720)" in message


def test_box_and_crop_fit_or_say_why() -> None:
    image = np.arange(360 * 640 * 3, dtype=np.uint32).astype(np.uint8).reshape(360, 640, 3)
    half = Region(0.25, 0, 0.5, 1)
    assert half.box(640, 360) == (160, 0, 480, 360)
    crop = half.crop(image)
    assert crop.shape == (360, 320, 3) and crop.dtype == np.uint8
    assert np.shares_memory(crop, image)  # a view, not a copy
    assert np.array_equal(crop, image[:, 160:480])
    pixels = Region(100, 50, 200, 100, "pixel")
    assert pixels.crop(image).shape == (100, 200, 3)
    assert region_crop(None, image) is image
    with pytest.raises(RegionError) as e:  # partly outside: never clipped
        Region(500, 0, 200, 100, "pixel").box(640, 360)
    assert isinstance(e.value, InputError) and e.value.exit_code == 2
    assert "500,0,200,100" in str(e.value) and "640x360" in str(e.value)
    with pytest.raises(RegionError, match="covers no whole pixel"):
        Region(0, 0, 0.001, 0.5).box(320, 240)
    with pytest.raises(RegionError, match=r"^image\.jpg: region"):
        region_crop(Region(0, 0, 700, 10, "pixel"), image, "image.jpg")


@pytest.mark.parametrize(
    "data",
    [
        None,
        [0, 0, 1, 1],
        "0,0,1,1",
        {"x": 0, "y": 0, "w": 1},
        {"x": 0, "y": 0, "w": 1, "h": 1, "colour": "red"},
        {"x": "0", "y": 0, "w": 1, "h": 1},
        {"x": True, "y": 0, "w": 1, "h": 1},
        {"x": float("nan"), "y": 0, "w": 1, "h": 1},
        {"x": 0, "y": 0, "w": float("inf"), "h": 1},
        {"x": 10**400, "y": 0, "w": 1, "h": 1},
        {"x": 0, "y": 0, "w": 1, "h": 1, "unit": "inch"},
        {"x": 0, "y": 0, "w": 1, "h": 1, "unit": 3},
        {"x": 0.5, "y": 0, "w": 0.6, "h": 1},
    ],
)
def test_bad_json_regions_are_input_errors(data: object) -> None:
    with pytest.raises(InputError) as e:
        Region.from_json(data)
    assert "\n" not in str(e.value)


# --- the pipeline: only the region reaches the gate and the encoder -------------------


class FramesSource(FrameSource):
    """Given frames as a file-like source at ``fps``."""

    def __init__(self, images: list[np.ndarray], fps: float = 10.0) -> None:
        super().__init__("frames")
        self.images, self.fps = images, fps
        self._i = 0

    def open(self) -> None:
        self._i = 0
        self.size = (self.images[0].shape[1], self.images[0].shape[0])
        self.frame_count = len(self.images)

    def read(self) -> Frame | None:
        if self._i >= len(self.images):
            return None
        self._i += 1
        return Frame(self.images[self._i - 1], self._i - 1, (self._i - 1) / self.fps)


def _run(model, source, region, **config):  # type: ignore[no-untyped-def]
    got: list[tuple[Frame, np.ndarray, bool]] = []

    def keep(frames, embs, encoded):  # type: ignore[no-untyped-def]
        got.extend(zip(frames, embs, encoded, strict=True))

    stats = Pipeline(
        model,
        LABELS,
        source,
        config=PipelineConfig(region=region, **config),
        on_embeddings=keep,
    ).run()
    return stats, got


def test_the_encoder_sees_only_the_region_of_a_real_video(tiny_model) -> None:  # type: ignore[no-untyped-def]
    region = Region(0.5, 0.25, 0.5, 0.5)
    stats, got = _run(tiny_model, VideoFileSource(VIDEO), region, analysis_fps=1.0)
    encoded = [(f, e) for f, e, enc in got if enc]
    assert stats.frames_encoded == len(encoded) >= 3
    for frame, emb in encoded[:3]:
        crop = region.crop(frame.image_bgr)
        assert crop.shape == (180, 320, 3)
        np.testing.assert_allclose(emb, tiny_model.encode_images([crop])[0], atol=1e-5)
        whole = tiny_model.encode_images([frame.image_bgr])[0]
        assert float(emb @ whole) < 0.9999  # not the whole frame's embedding


@pytest.mark.parametrize("live", [False, True], ids=["file", "live"])
def test_a_change_outside_the_region_does_not_make_the_gate_encode(tiny_model, live) -> None:  # type: ignore[no-untyped-def]
    base = sample_frames(VIDEO, 1)[0]
    changed = []
    for i in range(20):  # a white block flashes on and off in the left half
        image = base.copy()
        if i % 2:
            image[40:320, 20:300] = 255
        changed.append(image)
    right = Region(0.5, 0, 0.5, 1)
    # files: a change the thumbnails see is encoded, not interpolated (the tiny model's
    # embeddings barely move with the picture)
    gate = GateConfig(max_reuse=100.0, agreement=1.0, probe_agreement=1.0)

    def encodes(images, region):  # type: ignore[no-untyped-def]
        source: FrameSource = FramesSource(images)
        if live:  # a camera: the newest frame each time, through the ChangeGate
            source = SimulatedLiveSource(images, fps=25.0, duration=0.8)
        return _run(tiny_model, source, region, gate=gate)[0].frames_encoded

    # as many encodes as for a still picture (the first frame; files also the last)
    assert encodes(changed, right) == encodes([base] * 20, right) <= 2
    assert encodes(changed, None) > 4  # the whole frame: every flash is a change


def test_the_region_is_checked_before_any_output_is_started(tiny_model, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from scenecls.video.sinks import JsonlSink

    out = tmp_path / "o.jsonl"
    pipeline = Pipeline(
        tiny_model,
        LABELS,
        VideoFileSource(VIDEO),
        [JsonlSink(out)],
        config=PipelineConfig(region=Region(600, 0, 100, 100, "pixel")),
    )
    with pytest.raises(RegionError, match=r"bottle-detection\.mp4: region 600,0,100,100"):
        pipeline.run()
    assert not out.exists()


# --- the overlay -----------------------------------------------------------------------


def test_the_overlay_draws_the_region_frame() -> None:
    image = np.full((360, 640, 3), 90, np.uint8)
    region = Region(0.25, 0.25, 0.5, 0.5)
    x0, y0, x1, y1 = region.box(640, 360)
    plain = Overlay(["a", "b"]).draw(image, None, [], 0.0)
    framed = Overlay(["a", "b"], region=region).draw(image, None, [], 0.0)
    assert np.array_equal(image, np.full_like(image, 90))  # the input is left as it was
    differs = np.any(plain != framed, axis=2)
    assert differs[y0, (x0 + x1) // 2] and differs[(y0 + y1) // 2, x1 - 1]  # the edges
    assert not differs[(y0 + y1) // 2, (x0 + x1) // 2]  # not the inside
    assert not differs[5, 630] and not differs[355, 5]  # nor far outside
    assert tuple(framed[y0, (x0 + x1) // 2]) == (0, 215, 255)  # amber, BGR
    # a region that does not fit this frame draws nothing rather than failing
    odd = Overlay(["a"], region=Region(0, 0, 2000, 10, "pixel")).draw(image, None, [], 0.0)
    assert np.array_equal(odd, Overlay(["a"]).draw(image, None, [], 0.0))


# --- the commands ----------------------------------------------------------------------


def test_run_with_a_region_writes_it_in_the_settings(tiny_bundle: Path, tmp_path: Path) -> None:
    jsonl, emb = tmp_path / "o.jsonl", tmp_path / "o.embeddings"
    code = main(["run", str(VIDEO), "--model", str(tiny_bundle), "--no-progress", "-q",
                 "--fps", "2", "--region", "0.25,0,0.5,1", "--jsonl", str(jsonl),
                 "--embeddings", str(emb)])  # fmt: skip
    assert code == 0
    assert len(read_jsonl(jsonl)) > 50
    settings = read_meta(emb)["settings"]
    assert settings["region"] == {"x": 0.25, "y": 0.0, "w": 0.5, "h": 1.0, "unit": "fraction"}


def test_run_annotated_video_shows_the_region(tiny_bundle: Path, tmp_path: Path) -> None:
    out = tmp_path / "o.mp4"
    code = main(["run", str(MEDIA / "car-detection.mp4"), "--model", str(tiny_bundle),
                 "--no-progress", "-q", "--region", "100,50,300,200",
                 "--out", str(out)])  # fmt: skip
    assert code == 0
    ok, frame = cv2.VideoCapture(str(out)).read()
    assert ok and frame.shape == (432, 768, 3)  # the whole frame is written
    b, g, r = (int(v) for v in frame[50, 250])  # the frame's top edge, amber
    assert r > 180 and g > 150 and r - b > 80  # (after video compression)


def test_classify_with_a_region(tiny_bundle: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    frame = sample_frames(VIDEO, 1)[0]
    cv2.imwrite(str(tmp_path / "a.png"), frame)
    cv2.imwrite(str(tmp_path / "b.png"), frame[:, ::-1])
    argv = ["classify", str(tmp_path), "--model", str(tiny_bundle), "--json"]
    assert main([*argv, "--region", "0,0,0.5,1"]) == 0
    left = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert main([*argv, "--region", "320,0,320,360"]) == 0  # pixels: the right half
    right = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert main(argv) == 0
    whole = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["image"] for r in left] == [str(tmp_path / "a.png"), str(tmp_path / "b.png")]
    # the left half of b is the mirrored right half of a: different pixels, so different
    # scores; and a region is not the whole picture
    assert left[0]["predictions"] != whole[0]["predictions"]
    assert left[0]["predictions"] != right[0]["predictions"]


def test_classify_names_the_image_a_pixel_region_does_not_fit(
    tiny_bundle: Path, tmp_path: Path, capsys
) -> None:  # type: ignore[no-untyped-def]
    cv2.imwrite(str(tmp_path / "big.png"), np.zeros((400, 600, 3), np.uint8))
    cv2.imwrite(str(tmp_path / "small.png"), np.zeros((100, 150, 3), np.uint8))
    code = main(["classify", str(tmp_path), "--model", str(tiny_bundle), "--region",
                 "100,0,200,200"])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 2
    line = one_line_error(captured.err)
    assert "small.png" in line and "150x100" in line and "100,0,200,200" in line
    assert captured.out == ""  # nothing printed for the image that fitted


def test_eval_images_and_video_with_a_region(tiny_bundle: Path, tmp_path: Path) -> None:
    frames = sample_frames(VIDEO, 4)
    for i, frame in enumerate(frames):
        folder = tmp_path / "set" / ("room" if i % 2 else "park")
        folder.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / f"{i}.png"), frame)
    report = tmp_path / "r.json"
    code = main(["eval", str(tmp_path / "set"), "--model", str(tiny_bundle), "--region",
                 "0.1,0.1,0.5,0.5", "--report", str(report)])  # fmt: skip
    assert code == 0
    doc = json.loads(report.read_text())
    assert doc["n_images"] == 4 and doc["region"]["w"] == 0.5
    truth = tmp_path / "truth.csv"
    truth.write_text("label,start,end\nroom,0,5\npark,5,13\n")
    code = main(["eval", str(MEDIA / "car-detection.mp4"), "--truth", str(truth), "--model",
                 str(tiny_bundle), "--fps", "2", "--labels", "room,park", "--region",
                 "0.5,0,0.5,1", "--report", str(report)])  # fmt: skip
    assert code == 0
    assert json.loads(report.read_text())["region"]["x"] == 0.5


def test_bench_with_a_region(tiny_bundle: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "b.json"
    code = main(["bench", "--model", str(tiny_bundle), "--source", str(MEDIA / "car-detection.mp4"),
                 "--live-seconds", "1", "--fidelity-frames", "2", "--region", "0,0,384,216",
                 "--json", str(out)])  # fmt: skip
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert "region      0,0,384,216 (pixels): only it is gated and encoded" in printed.out
    report = json.loads(out.read_text())
    assert report["region"] == {"x": 0, "y": 0, "w": 384, "h": 216, "unit": "pixel"}
    assert report["sources"]["frames"] == 377
    code = main(["bench", "--model", str(tiny_bundle), "--source", str(MEDIA / "car-detection.mp4"),
                 "--region", "0,0,800,216", "--json", str(tmp_path / "c.json")])  # fmt: skip
    assert code == 2
    assert "car-detection.mp4: region 0,0,800,216" in one_line_error(capsys.readouterr().err)
    assert not (tmp_path / "c.json").exists()


def test_annotate_with_a_region(tiny_bundle: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    argv = ["annotate", str(MEDIA / "car-detection.mp4"), "--out", str(out), "--model",
            str(tiny_bundle), "--workers", "1", "--no-progress", "-q", "--fps", "2",
            "--outputs", "jsonl,embeddings"]  # fmt: skip
    assert main([*argv, "--region", "0.5,0.5,0.5,0.5"]) == 0
    meta = read_meta(out / "car-detection.mp4.embeddings")
    assert meta["settings"]["region"]["x"] == 0.5
    entry = json.loads((out / "manifest.jsonl").read_text().splitlines()[-1])
    # another region is another result: the video is annotated again, not skipped
    assert main([*argv, "--region", "0,0,0.5,0.5"]) == 0
    again = json.loads((out / "manifest.jsonl").read_text().splitlines()[-1])
    assert again["options_hash"] != entry["options_hash"]
    assert read_meta(out / "car-detection.mp4.embeddings")["settings"]["region"]["x"] == 0
