"""The change gate end to end, with the trained fixture model: synthetic clips where a
small object appears, the picture is cut, fades or brightens slowly, and the fixture's
own synthetic videos. Gated analysis must follow every-frame analysis (the agreement bars
of ``scenecls bench``), and catch each change within one frame (within ``--max-reuse``
for the ramp)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from scenecls.bench import AGREEMENT_BARS, agreement, annotate_file, meets_bars
from scenecls.cli import main
from scenecls.model.labels import resolve_labels
from scenecls.video.gate import GateConfig
from scenecls.video.pipeline import Pipeline, PipelineConfig
from scenecls.video.sources import SimulatedLiveSource

REPO = Path(__file__).resolve().parent.parent
FIXTURE = REPO / "tests" / "fixtures" / "shapes-clip"
sys.path.insert(0, str(REPO / "scripts"))
import synthetic_shapes  # noqa: E402

LABELS = ",".join(synthetic_shapes.CLASSES)
W, H, FPS = 320, 240, 15.0


@pytest.fixture(scope="module")
def model():  # type: ignore[no-untyped-def]
    import scenecls

    return scenecls.load_model(FIXTURE)


def _write(path: Path, frames: list[np.ndarray]) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (W, H))
    for f in frames:
        writer.write(f)
    writer.release()
    return path


def _scene(label: str, seed: int, radius: float = 60.0) -> np.ndarray:
    """A still picture of ``label``'s shape on a fixture-style background, BGR uint8."""
    rng = np.random.default_rng(seed)
    canvas = synthetic_shapes.background(H, W, rng)
    colour, shape = label.split()
    synthetic_shapes.draw_shape(
        canvas, shape, (W / 2, H / 2), radius, synthetic_shapes.class_colour(colour, rng)
    )
    return canvas


def _noisy(image: np.ndarray, rng: np.random.Generator, gain: float = 1.0) -> np.ndarray:
    out = image.astype(np.float32) * gain + rng.normal(0, 1.5, image.shape)
    return np.clip(out, 0, 255).astype(np.uint8)


def _ramp(image: np.ndarray, i: int, rng: np.random.Generator) -> np.ndarray:
    """Frame ``i`` of a slow brightness ramp: half brightness plus 0.6 levels a frame."""
    return _noisy(np.clip(image.astype(np.float32) * 0.5 + 0.6 * i, 0, 255), rng)


def _clips(folder: Path) -> dict[str, tuple[Path, int]]:
    """name -> (video, frame index where the change starts)."""
    rng = np.random.default_rng(7)
    bg = synthetic_shapes.background(H, W, np.random.default_rng(3))
    with_object = bg.copy()
    # about 5 % of the frame, at the edge of the centred square the model looks at
    synthetic_shapes.draw_shape(
        with_object, "circle", (W / 2 - 75, H / 2 - 75), 35.0, (30, 30, 230)
    )
    a, b = _scene("blue ring", 1), _scene("green circle", 2)
    red = _scene("red circle", 4)
    n = int(3 * FPS)
    clips = {
        "object-appears": ([_noisy(bg if i < 20 else with_object, rng) for i in range(n)], 20),
        "hard-cut": ([_noisy(a if i < 22 else b, rng) for i in range(n)], 22),
        "fade-to-black": (
            [_noisy(red, rng, max(0.0, 1 - max(0, i - 15) / 15)) for i in range(n)],
            15,
        ),
        "brightness-ramp": ([_ramp(red, i, rng) for i in range(n)], 0),
    }
    out = {name: (_write(folder / f"{name}.mp4", frames), k) for name, (frames, k) in clips.items()}
    fixture_video = folder / "fixture-video.mp4"
    synthetic_shapes.make_video(
        fixture_video,
        [("red circle", 0, 2), ("blue ring", 2, 4), ("green circle", 4, 6)],
        fps=FPS,
        size=(W, H),
        seed=5,
    )
    out["fixture-video"] = (fixture_video, 30)
    return out


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, int]]:
    return _clips(tmp_path_factory.mktemp("gate-clips"))


def _runs(model, video: Path):  # type: ignore[no-untyped-def]
    labels = resolve_labels(LABELS, "{}")
    every = PipelineConfig(gate=GateConfig(change_threshold=0))
    ref = annotate_file(model, video, labels, every)
    got = annotate_file(model, video, labels, PipelineConfig())
    return ref, got


@pytest.mark.parametrize(
    "name", ["object-appears", "hard-cut", "fade-to-black", "brightness-ramp", "fixture-video"]
)
def test_gated_analysis_follows_every_frame_analysis(model, clips, name: str) -> None:  # type: ignore[no-untyped-def]
    video, change = clips[name]
    (ref_stats, ref_embs, ref_labels), (stats, embs, labels) = _runs(model, video)
    a = agreement(ref_embs, embs, ref_labels, labels)
    assert meets_bars(a), a
    assert stats.frames_analysed == ref_stats.frames_analysed
    assert ref_stats.frames_encoded == ref_stats.frames_analysed
    assert stats.frames_encoded < stats.frames_analysed  # the gate saved work
    # the change is followed within one frame: the embedding of the frame where it
    # happens (and the next) is its own
    for i in (change, change + 1):
        cos = float(ref_embs[i] @ embs[i])
        assert cos >= AGREEMENT_BARS["cosine_p1"], (name, i, cos)


def test_a_slow_ramp_is_reencoded_within_max_reuse(model, clips) -> None:  # type: ignore[no-untyped-def]
    video, _ = clips["brightness-ramp"]
    encoded_times = []

    def keep(frames, embs, encoded):  # type: ignore[no-untyped-def]
        encoded_times.extend(f.timestamp for f, e in zip(frames, encoded, strict=True) if e)

    for max_reuse in (0.5, 1.0):
        encoded_times.clear()
        Pipeline(
            model, LABELS, _source(video), [],
            config=PipelineConfig(gate=GateConfig(max_reuse=max_reuse)), on_embeddings=keep,
        ).run()  # fmt: skip
        assert np.diff(encoded_times).max() <= max_reuse + 1e-3


def _source(video: Path):  # type: ignore[no-untyped-def]
    from scenecls.video.sources import VideoFileSource

    return VideoFileSource(video)


def test_cli_reports_the_encoded_share_and_marks_each_frame(clips, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    video, _ = clips["object-appears"]
    out = tmp_path / "frames.jsonl"
    assert main(["run", str(video), "--model", str(FIXTURE), "--labels", LABELS,
                 "--templates", "{}", "--jsonl", str(out), "--no-progress"]) == 0  # fmt: skip
    err = capsys.readouterr().err
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    encoded = sum(r["encoded"] for r in rows)
    assert 0 < encoded < len(rows)
    assert f"encoded     {encoded} of {len(rows)} analysed frames" in err
    assert main(["run", str(video), "--model", str(FIXTURE), "--labels", LABELS,
                 "--jsonl", str(out), "--change-threshold", "0", "--no-progress"]) == 0  # fmt: skip
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert all(r["encoded"] for r in rows)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--change-threshold", "-1"], "--change-threshold must be 0 or more, not -1"),
        (["--max-reuse", "-0.5"], "--max-reuse must be 0 or more, not -0.5"),
    ],
)
def test_bad_gate_options_are_one_line_and_exit_2(clips, tmp_path, capsys, argv, message) -> None:  # type: ignore[no-untyped-def]
    video, _ = clips["hard-cut"]
    out = tmp_path / "frames.jsonl"
    code = main(["run", str(video), "--model", str(FIXTURE), "--jsonl", str(out), *argv])
    assert code == 2
    assert capsys.readouterr().err.strip() == f"scenecls: error: {message}"
    assert not out.exists()


def test_a_live_still_camera_reuses_embeddings(model) -> None:  # type: ignore[no-untyped-def]
    image = _scene("yellow ring", 9)
    source = SimulatedLiveSource([image], fps=10, duration=2.5)
    stats = Pipeline(model, LABELS, source, [], config=PipelineConfig()).run()
    assert stats.frames_analysed >= 15
    # the first frame, then one a second (max_reuse)
    assert 2 <= stats.frames_encoded <= 4
    every = Pipeline(
        model, LABELS, SimulatedLiveSource([image], fps=10, duration=1.0), [],
        config=PipelineConfig(gate=GateConfig(max_reuse=0)),
    ).run()  # fmt: skip
    assert every.frames_encoded == every.frames_analysed
