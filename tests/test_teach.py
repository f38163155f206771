"""Teaching labels by example (``scenecls teach``, ``scenecls.teach``, taught sets under
``--labels``) with the trained fixture model on classes its text tower never learned:
the pizzas are the fixture's coloured shapes under names that mean nothing to it."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

os.environ["HF_HUB_OFFLINE"] = "1"

import synthetic_shapes

import scenecls
from scenecls.cli import main
from scenecls.model.taught import ExampleSet, load_taught

from .docs_blocks import section_blocks
from .outputs import one_line_error, read_jsonl, read_segments

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / "tests" / "fixtures" / "shapes-clip"
PIZZAS = {
    "red circle": "margherita",
    "blue ring": "quattro formaggi",
    "green circle": "funghi",
    "yellow ring": "diavola",
}
UNTAUGHT = "red ring"  # a class the set never saw: far from every example
SEGMENTS = [
    ("red circle", 0, 4),
    ("blue ring", 4, 8),
    ("green circle", 8, 12),
    ("yellow ring", 12, 16),
]


@pytest.fixture(scope="module")
def model() -> scenecls.SceneModel:
    return scenecls.load_model(BUNDLE, device="cpu", precision="fp32")


def _pictures(folder: Path, per_label: int, seed: int, classes: dict[str, str] = PIZZAS) -> Path:
    rng = np.random.default_rng(seed)
    for cls, name in classes.items():
        (folder / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_label):
            cv2.imwrite(str(folder / name / f"{i:02d}.png"), synthetic_shapes.make_image(cls, rng))
    return folder


def _held_out(model: scenecls.SceneModel, per_label: int = 20) -> tuple[np.ndarray, list[str]]:
    rng = np.random.default_rng(777)
    images, truth = [], []
    for cls, name in PIZZAS.items():
        for _ in range(per_label):
            images.append(synthetic_shapes.make_image(cls, rng))
            truth.append(name)
    return model.encode_images(images), truth


@pytest.fixture(scope="module")
def examples(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _pictures(tmp_path_factory.mktemp("examples"), 5, seed=11)


@pytest.fixture(scope="module")
def taught(model: scenecls.SceneModel, examples: Path) -> scenecls.TaughtSet:
    return scenecls.teach(examples, model)


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("video")
    path, truth = folder / "pass.mp4", folder / "pass.csv"
    synthetic_shapes.make_video(path, SEGMENTS, fps=10, seed=3)
    synthetic_shapes.write_truth_csv(truth, [(PIZZAS[c], a, b) for c, a, b in SEGMENTS])
    return path, truth


def test_five_examples_teach_what_the_names_cannot(
    model: scenecls.SceneModel, taught: scenecls.TaughtSet
) -> None:
    report = taught.report
    assert report["cross_validation"]["accuracy"] >= 0.9
    assert report["zero_shot"]["accuracy"] <= 0.6  # the names mean little to the text tower
    embs, truth = _held_out(model)
    sims, probs = taught.score_rows(embs)
    assert sims.shape == probs.shape == (len(truth), 4)
    predicted = [taught.names[i] for i in probs.argmax(axis=1)]
    accuracy = np.mean([p == t for p, t in zip(predicted, truth, strict=True)])
    assert accuracy >= 0.9, accuracy
    assert (probs.sum(axis=1) > 0.99).mean() >= 0.95  # held-out pizzas are not 'unknown'
    text_only = model.classify(list(_images(40)), list(PIZZAS.values()))
    assert np.mean([c.label == t for c, t in zip(text_only, _truth(40), strict=True)]) < 0.6


def _images(n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(5)
    return [synthetic_shapes.make_image(c, rng) for c in PIZZAS for _ in range(n // 4)]


def _truth(n: int) -> list[str]:
    return [PIZZAS[c] for c in PIZZAS for _ in range(n // 4)]


def test_a_frame_unlike_every_example_is_unknown(
    model: scenecls.SceneModel, taught: scenecls.TaughtSet
) -> None:
    rng = np.random.default_rng(8)
    strange = model.encode_images([synthetic_shapes.make_image(UNTAUGHT, rng) for _ in range(12)])
    strange = np.concatenate([strange, -model.encode_images(_images(8)[:4])])
    _, probs = taught.score_rows(strange)
    assert taught.unknown_below is not None
    assert (probs.sum(axis=1) == 0).mean() >= 0.5
    results = model.classify(_images(8), taught)
    assert [r.label for r in results] == _truth(8)


def test_the_file_is_numpy_alone_and_scores_the_same_after_loading(
    taught: scenecls.TaughtSet, tmp_path: Path, model: scenecls.SceneModel
) -> None:
    path = taught.save(tmp_path / "pizza.npz")
    with zipfile.ZipFile(path) as zf:
        assert all(i.compress_type == zipfile.ZIP_STORED for i in zf.infolist())
    with np.load(path, allow_pickle=False) as z:  # numpy alone, no pickles
        meta = json.loads(str(z["meta"][()]))
        assert meta["format"] == "scenecls-taught-labels"
        assert meta["model_fingerprint"] == model.bundle.fingerprint
        assert [lb["name"] for lb in meta["labels"]] == taught.names
        assert z["examples"].shape == (20, model.embed_dim)
        assert z["weights"].shape == (4, model.embed_dim)
        assert "cross_validation" in meta["report"]
    again = load_taught(path)
    embs, _ = _held_out(model, 3)
    for a, b in zip(taught.score_rows(embs), again.score_rows(embs), strict=True):
        np.testing.assert_array_equal(a, b)
    # a row's scores do not depend on the rows scored with it
    one = np.concatenate([again.score_rows(embs[i : i + 1])[1] for i in range(len(embs))])
    np.testing.assert_array_equal(one, again.score_rows(embs)[1])


def test_moments_of_a_video_are_grouped_and_match_its_stored_embeddings(
    model: scenecls.SceneModel, video: tuple[Path, Path], tmp_path: Path
) -> None:
    path, truth = video
    from_video = scenecls.teach(f"{path}={truth}", model, fps=2)
    r = from_video.report
    assert r["examples"] == 32 and r["groups"] == 4  # 2 frames/s x 16 s, one group a moment
    stored = tmp_path / "pass.embeddings"  # a store folder
    assert main(["run", str(path), "--model", str(BUNDLE), "--embeddings", str(stored),
                 "--embeddings-dtype", "float32", "--no-progress", "--change-threshold", "0",
                 "--max-reuse", "0", "-q", "--labels", "a,b"]) == 0  # fmt: skip
    from_store = scenecls.teach(f"{stored}={truth}", model, fps=2)
    assert from_store.report["examples"] == 32
    assert from_store.example_sources == from_video.example_sources or all(
        abs(float(a.rpartition("@")[2]) - float(b.rpartition("@")[2])) < 0.11
        for a, b in zip(from_store.example_sources, from_video.example_sources, strict=True)
    )
    cos = (from_store.examples * from_video.examples).sum(axis=1)
    assert cos.min() > 0.999  # the same frames: decoded and encoded, or stored
    out = tmp_path / "set.npz"
    assert main(["teach", f"{stored}={truth}", "--model", str(BUNDLE), "--out", str(out),
                 "-q"]) == 0  # fmt: skip
    assert scenecls.load_taught(out).report["examples"] == 32


@pytest.mark.parametrize("classifier", ["auto", "cache"])
def test_cli_teach_prints_the_accuracy_and_run_uses_the_set(
    examples: Path,
    video: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    classifier: str,
) -> None:
    out = tmp_path / "pizza.npz"
    assert main(["teach", str(examples), "--model", str(BUNDLE), "--out", str(out),
                 "--classifier", classifier]) == 0  # fmt: skip
    printed = capsys.readouterr()
    assert "cross-validated" in printed.out and "text only (zero-shot)" in printed.out
    assert "confusion" in printed.out and "margherita" in printed.out
    path, truth = video
    seg = tmp_path / "seg.csv"
    jsonl = tmp_path / "f.jsonl"
    emb = tmp_path / "e.embeddings"
    assert main(["run", str(path), "--model", str(BUNDLE), "--labels", str(out), "--segments",
                 str(seg), "--jsonl", str(jsonl), "--embeddings", str(emb),
                 "--embeddings-dtype", "float32", "--no-progress", "-q"]) == 0  # fmt: skip
    segments = read_segments(seg)
    assert [s["label"] for s in segments] == [PIZZAS[c] for c, _, _ in SEGMENTS]
    # relabel with the taught set reproduces the run from the stored embeddings
    rel = tmp_path / "rel"
    assert main(["relabel", str(emb), "--labels", str(out), "--out", str(rel),
                 "--outputs", "jsonl,segments", "-q"]) == 0  # fmt: skip
    rows = [r for r in read_jsonl(rel / "pass.mp4.jsonl") if "frame" in r]
    ran = [r for r in read_jsonl(jsonl) if "frame" in r]
    assert len(rows) == len(ran) == 160
    assert rows == ran  # labels and scores to the last digit
    # eval takes the set, and its truth CSV
    assert main(["eval", str(path), "--truth", str(truth), "--model", str(BUNDLE),
                 "--labels", str(out)]) == 0  # fmt: skip
    # search ranks moments by a taught label
    capsys.readouterr()
    assert main(["search", str(emb), "funghi", "--labels", str(out), "--top", "1",
                 "--json"]) == 0  # fmt: skip
    best = json.loads(capsys.readouterr().out.splitlines()[0])
    assert 8 - 1 <= best["best"] <= 12 + 1


def test_classify_with_a_taught_set(
    examples: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "pizza.npz"
    assert main(["teach", str(examples), "--model", str(BUNDLE), "--out", str(out), "-q"]) == 0
    folder = _pictures(tmp_path / "new", 2, seed=99)
    capsys.readouterr()
    pics = sorted(folder.rglob("*.png"))
    assert main(["classify", *map(str, pics), "--model", str(BUNDLE), "--labels", str(out),
                 "--json"]) == 0  # fmt: skip
    results = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["label"] for r in results] == [p.parent.name for p in pics]


def test_text_only_and_example_labels_mix_and_none_is_a_label(
    model: scenecls.SceneModel, tmp_path: Path
) -> None:
    folder = _pictures(tmp_path / "ex", 4, seed=3, classes={"red circle": "margherita",
                       "blue ring": "quattro formaggi", "green ring": "none"})  # fmt: skip
    labels = tmp_path / "labels.toml"
    labels.write_text('[labels]\n"yellow ring" = "yellow ring"\nmargherita = []\n')
    taught = scenecls.teach(folder, model, labels=str(labels))
    assert taught.names == ["yellow ring", "margherita", "none", "quattro formaggi"]
    assert [lb.phrasings for lb in taught.labels][:2] == [("yellow ring",), ()]
    assert taught.unknown_below is None  # a text-only label has no examples to be near
    rng = np.random.default_rng(4)
    results = model.classify(
        [synthetic_shapes.make_image(c, rng) for c in ("yellow ring", "green ring")], taught
    )
    assert [r.label for r in results] == ["yellow ring", "none"]


@pytest.mark.parametrize("kind", ["means", "cache", "linear"])
def test_every_classifier_learns_and_auto_takes_the_best(
    model: scenecls.SceneModel, examples: Path, kind: str, taught: scenecls.TaughtSet
) -> None:
    forced = scenecls.teach(examples, model, classifier=kind)
    assert forced.report["chosen"]["kind"] == kind
    assert forced.report["cross_validation"]["accuracy"] >= 0.85
    best = max(c["cv_balanced_accuracy"] for c in taught.report["candidates"])
    assert taught.report["cross_validation"]["balanced_accuracy"] == pytest.approx(best)


def test_warnings_name_the_problem_examples(model: scenecls.SceneModel, tmp_path: Path) -> None:
    folder = _pictures(tmp_path / "ex", 6, seed=21, classes={"red circle": "margherita",
                       "blue ring": "quattro"})  # fmt: skip
    _pictures(tmp_path / "ex", 1, seed=22, classes={"green circle": "funghi"})
    # a blue ring sorted into margherita, and one picture twice
    rng = np.random.default_rng(23)
    cv2.imwrite(
        str(folder / "margherita" / "zz.png"), synthetic_shapes.make_image("blue ring", rng)
    )
    (folder / "quattro" / "copy.png").write_bytes((folder / "quattro" / "00.png").read_bytes())
    warnings = scenecls.teach(folder, model).report["warnings"]
    text = "\n".join(warnings)
    assert "'funghi' has 1 example" in text
    assert "near-duplicates" in text and "copy.png" in text
    assert "imbalanced" in text
    assert "zz.png (given 'margherita') is closer to 'quattro'" in text


def _fails(capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    assert main(args) == 2
    line = one_line_error(capsys.readouterr().err)
    assert message in line, line


def test_bad_inputs_are_one_line_and_write_nothing(
    examples: Path, video: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "set.npz"
    base = ["teach", "--model", str(BUNDLE), "--out", str(out)]
    broken = _pictures(tmp_path / "broken", 3, seed=1)
    (broken / "funghi" / "bad.jpg").write_bytes(b"not a picture")
    _fails(capsys, [*base, str(broken)], "bad.jpg")
    one = _pictures(tmp_path / "one", 3, seed=1, classes={"red circle": "margherita"})
    _fails(capsys, [*base, str(one)], "only one label")
    labels = tmp_path / "l.toml"
    labels.write_text("[labels]\nnothing = []\n")
    _fails(capsys, [*base, str(examples), "--labels", str(labels)], "neither text nor examples")
    path, _ = video
    late = tmp_path / "late.csv"
    late.write_text("label,start,end\nmargherita,14,20\n")
    _fails(capsys, [*base, f"{path}={late}", str(examples)], "outside the video")
    _fails(capsys, [*base, str(examples), "--region", "0,0,4000,10"], "region")
    _fails(capsys, [*base, str(path)], "MOMENTS.csv")
    assert not out.exists()
    assert not list(tmp_path.glob(".*partial"))


def test_a_set_from_another_model_names_both_fingerprints(
    examples: Path, tiny_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "pizza.npz"
    assert main(["teach", str(examples), "--model", str(BUNDLE), "--out", str(out), "-q"]) == 0
    jsonl = tmp_path / "f.jsonl"
    video = REPO.parent / "shared" / "media" / "car-detection.mp4"
    assert main(["run", str(video), "--model", str(tiny_bundle), "--labels", str(out),
                 "--jsonl", str(jsonl), "--no-progress"]) == 2  # fmt: skip
    line = one_line_error(capsys.readouterr().err)
    fingerprint = load_taught(out).fingerprint[:12]
    assert "belongs to model" in line and fingerprint in line
    assert not jsonl.exists()


def test_learning_from_embeddings_needs_no_images(model: scenecls.SceneModel) -> None:
    embs, truth = _held_out(model, 10)
    examples = ExampleSet(embs, truth, np.arange(len(truth)), [f"#{i}" for i in range(len(truth))])
    taught = scenecls.teach(examples, model)
    assert taught.report["examples"] == 40 and taught.report["seconds"] < 1.0


def test_the_docs_worked_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The worked example of docs/teaching.md ("A worked example: the sample videos"), as
    written, on the fixture model: its block that writes the moments files, its teach
    command and its run command, in a folder that sees the sample videos at
    ``../shared/media`` as the docs' readers (and the docs runner's worlds) do."""
    import shlex
    import subprocess

    page = REPO / "docs" / "teaching.md"
    blocks = [b.code for b in section_blocks(page, "## A worked example", "bash")]
    (write,) = [b for b in blocks if "> bottles.csv" in b]
    (teach,) = [b for b in blocks if b.startswith("scenecls teach ")]
    (run,) = [b for b in blocks if b.startswith("scenecls run ")]
    work = tmp_path / "checkout"
    work.mkdir()
    (tmp_path / "shared").symlink_to(REPO.parent / "shared", target_is_directory=True)
    subprocess.run(["bash", "-e", "-c", write], cwd=work, check=True)
    moments = {"bottles": "0,8 12,18 20,24", "cars": "0,6 9,14 15,18", "people": "0,20 30,50 60,84"}
    for label, spans in moments.items():
        rows = "".join(f"{label},{span}\n" for span in spans.split())
        assert (work / f"{label}.csv").read_text() == "label,start,end\n" + rows
    monkeypatch.chdir(work)
    command = shlex.split(teach.replace("\\\n", " "))
    assert command[:2] == ["scenecls", "teach"]
    videos = [arg.split("=", 1)[0] for arg in command if "=" in arg and not arg.startswith("-")]
    names = ("bottle-detection.mp4", "car-detection.mp4", "one-by-one-person-detection.mp4")
    assert videos == [f"../shared/media/{name}" for name in names]
    assert main([*command[1:], "--model", str(BUNDLE), "--example-fps", "0.5"]) == 0
    assert (work / "media.npz").is_file() and (work / "report" / "index.html").is_file()
    taught = load_taught(work / "media.npz")
    assert [label.name for label in taught.labels] == ["bottles", "cars", "people"]
    command = shlex.split(run)
    assert command[:2] == ["scenecls", "run"] and "media.npz" in command
    assert main([*command[1:], "--model", str(BUNDLE), "--no-progress"]) == 0
    segments = read_segments(work / "segments.csv")
    assert segments and {s["label"] for s in segments} <= {"bottles", "cars", "people", "unknown"}


def test_a_damaged_set_is_named_in_one_line(
    taught: scenecls.TaughtSet, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = taught.save(tmp_path / "good.npz")
    data = good.read_bytes()
    cut = tmp_path / "cut.npz"
    cut.write_bytes(data[: len(data) // 2])
    other = tmp_path / "other.npz"
    np.savez(other, meta=np.array('{"format": "something-else"}'))
    video = REPO.parent / "shared" / "media" / "car-detection.mp4"
    missing = tmp_path / "missing.npz"  # not taken for a label called "missing.npz"
    cases = ((cut, "not a readable taught label set"), (other, "not a taught"),
             (missing, "does not exist"))  # fmt: skip
    for path, message in cases:
        jsonl = tmp_path / "f.jsonl"
        _fails(capsys, ["run", str(video), "--model", str(BUNDLE), "--labels", str(path),
                        "--jsonl", str(jsonl), "--no-progress"], message)  # fmt: skip
        assert not jsonl.exists()
    _fails(capsys, ["run", str(video), "--model", str(BUNDLE), "--labels", str(good),
                    "--templates", "{}"], "--templates does not apply")  # fmt: skip


def test_stored_embeddings_of_another_model_or_region_are_refused(
    video: tuple[Path, Path], tiny_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, truth = video
    stored = tmp_path / "tiny.embeddings"
    assert main(["run", str(path), "--model", str(tiny_bundle), "--embeddings", str(stored),
                 "--no-progress", "-q", "--labels", "a,b"]) == 0  # fmt: skip
    out = tmp_path / "set.npz"
    base = ["teach", f"{stored}={truth}", "--model", str(BUNDLE), "--out", str(out)]
    _fails(capsys, base, "holds embeddings of model")
    mine = tmp_path / "mine.embeddings"
    assert main(["run", str(path), "--model", str(BUNDLE), "--embeddings", str(mine),
                 "--no-progress", "-q", "--labels", "a,b"]) == 0  # fmt: skip
    _fails(capsys, ["teach", f"{mine}={truth}", "--model", str(BUNDLE), "--out", str(out),
                    "--region", "0,0,0.5,0.5"], "was analysed with region")  # fmt: skip
    _fails(capsys, ["teach", str(mine), "--model", str(BUNDLE), "--out", str(out)],
           "say which moments of it show which label")  # fmt: skip
    _fails(capsys, ["teach", f"{tmp_path}={truth}", "--model", str(BUNDLE), "--out", str(out)],
           "neither a video nor an embeddings store")  # fmt: skip
    assert not out.exists()
