"""The HTML training report of a taught label set: figures, confusion matrix, warnings,
and the worst examples as thumbnails of what the classifier saw (placeholders for
pictures that are gone), written whole."""

from __future__ import annotations

import base64
import dataclasses
import html
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import synthetic_shapes  # scripts/ is on the path (conftest)

import scenecls
from scenecls.model.embeddings_store import FRAME_DTYPE, row_spans, write_embeddings
from scenecls.model.store_writer import StoreWriter
from scenecls.model.taught import ExampleSet, TaughtSet, teach_embeddings
from scenecls.teaching.report_html import report_page, write_report
from scenecls.teaching.suggest import frames_at

from .conftest import MEDIA

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / "tests" / "fixtures" / "shapes-clip"
VIDEO = MEDIA / "car-detection.mp4"  # 768x432
LABELS = ("red circle", "blue ring", "green circle")
IMG = re.compile(r'<img src="data:image/jpeg;base64,([A-Za-z0-9+/=]+)" alt="([^"]*)">')


def _store(path: Path, video: Path, rows: np.ndarray, times: np.ndarray) -> Path:
    """An embeddings store of ``video``: one encoded frame per row at ``times``; a store
    folder, or a ``.npz`` file of format version 1 when ``path`` ends in ``.npz``."""
    n, dim = rows.shape
    frames = np.zeros(n, FRAME_DTYPE)
    frames["index"] = np.arange(n)
    frames["time"] = times
    frames["left"] = frames["right"] = np.arange(n)
    frames["encoded"] = True
    end = float(times[-1]) + 1.0
    meta = {
        "format": "scenecls-embeddings", "version": 1, "model": "m", "model_fingerprint": "f",
        "embed_dim": dim, "source": str(video), "input": str(video), "end": end,
        "dtype": "float32",
    }  # fmt: skip
    if path.suffix != ".npz":
        writer = StoreWriter(path, meta, dim, "float32")
        writer.add(rows, frames)
        writer.close(end)
        return path
    spans = row_spans(frames, n, end, np.zeros((0, 2)))
    write_embeddings(path, meta, rows, n, dim, "float32", times, spans, frames, np.zeros((0, 2)))
    return path


@pytest.fixture(scope="module")
def taught(tmp_path_factory: pytest.TempPathFactory) -> tuple[TaughtSet, Path]:
    """Three shape labels of 5 pictures each, one blue ring sorted as a red circle, and a
    'street' label of 4 moments of a real video (one through an embeddings store, one
    through a .npz embeddings file of earlier versions, one past the video's end); the
    picture of one green circle is deleted afterwards."""
    model = scenecls.load_model(BUNDLE, device="cpu")
    folder = tmp_path_factory.mktemp("examples")
    rng = np.random.default_rng(11)
    paths, given, images = [], [], []
    for label in LABELS:
        for i in range(5):
            paths.append(folder / label.replace(" ", "-") / f"{i}.png")
            given.append(label)
            images.append(synthetic_shapes.make_image(label, rng))
    paths.append(folder / "red-circle" / "misplaced.png")
    given.append("red circle")
    images.append(synthetic_shapes.make_image("blue ring", rng))
    for path, image in zip(paths, images, strict=True):
        path.parent.mkdir(exist_ok=True)
        assert cv2.imwrite(str(path), image)
    examples = ExampleSet.empty(model.embed_dim)
    examples.add(model.encode_images(images), given, [str(p) for p in paths])
    seconds = np.array([2.0, 9.0, 17.0, 25.0])
    frames = frames_at(VIDEO, seconds.tolist(), exact=False)
    assert all(f is not None for f in frames)
    rows = model.encode_images(frames)  # type: ignore[arg-type]
    store = _store(folder / "street.embeddings", VIDEO, rows, seconds)
    old = _store(folder / "street.npz", VIDEO, rows, seconds)
    sources = [f"{old}@2.0", f"{VIDEO}@9.0", f"{store}@17.0", f"{VIDEO}@999.0"]
    for i, source in enumerate(sources):
        examples.add(rows[i : i + 1], ["street"], [source], group=0)
    taught = teach_embeddings(model, examples)
    gone = folder / "green-circle" / "4.png"
    gone.unlink()
    return taught, gone


def test_the_page_shows_figures_matrix_warnings_and_worst_examples(
    taught: tuple[TaughtSet, Path],
) -> None:
    taught_set, gone = taught
    report = taught_set.report
    page = report_page(taught_set)
    names = taught_set.names
    assert page.startswith("<!doctype html>") and page.rstrip().endswith("</html>")
    title = re.search(r"<title>(.*?)</title>", page)
    assert title and all(n in title[1] for n in names) and taught_set.model_id in title[1]

    cv, zs = report["cross_validation"], report["zero_shot"]
    for figures in (cv, zs):  # both accuracies, as the page writes them
        for key in ("accuracy", "balanced_accuracy"):
            assert f"{100 * figures[key]:.1f} %" in page
    assert html.escape(report["chosen"]["description"]) in page
    # the confusion matrices, cell by cell, in order (the cross-validated one first)
    cells = [int(n) for n in re.findall(r'title="[^"]*">(\d+)</td>', page)]
    k = len(names)
    assert cells[: k * k] == [n for row in cv["confusion"] for n in row]
    assert cells[k * k : 2 * k * k] == [n for row in zs["confusion"] for n in row]
    for name in names:
        stats = cv["labels"][name]
        assert f"<td>{html.escape(name)}</td><td>{stats['support']}</td>" in page

    assert report["warnings"], "the misplaced blue ring and the few moments should warn"
    assert any("misplaced.png" in w for w in report["warnings"])
    for warning in report["warnings"]:
        assert html.escape(warning) in page
    for candidate in report["candidates"]:
        assert f"{100 * candidate['cv_balanced_accuracy']:.1f} %" in page

    worst = report["worst"]
    assert len(worst) == len(taught_set.example_sources) == 20  # every example
    pictures = IMG.findall(page)
    shown = {html.unescape(alt) for _, alt in pictures}
    missing = {str(gone), f"{VIDEO}@999.0"}
    assert shown == {w["source"] for w in worst} - missing
    assert len(pictures) == len(worst) - 2
    assert page.count('class="missing"') == 2
    assert f"image {html.escape(str(gone))} not found" in page
    assert "no frame at 0:16:39.00" in page
    for w in worst:
        caption = f"given <b>{html.escape(w['given'])}</b>, predicted"
        assert caption in page and f"margin {w['margin']:+.3f}" in page
    sizes = {}
    for data, alt in pictures:
        image = cv2.imdecode(np.frombuffer(base64.b64decode(data), np.uint8), cv2.IMREAD_COLOR)
        sizes[html.unescape(alt)] = image.shape
        assert max(image.shape[:2]) <= 240
    assert sizes[f"{VIDEO}@9.0"] == (135, 240, 3)  # 768x432 scaled to fit 240


def test_thumbnails_show_the_region_and_a_region_that_does_not_fit_is_named(
    taught: tuple[TaughtSet, Path],
) -> None:
    taught_set, _ = taught
    left_half = dataclasses.replace(taught_set, region={"x": 0, "y": 0, "w": 0.5, "h": 1})
    page = report_page(left_half)
    sizes = {
        html.unescape(alt): cv2.imdecode(
            np.frombuffer(base64.b64decode(data), np.uint8), cv2.IMREAD_COLOR
        ).shape
        for data, alt in IMG.findall(page)
    }
    assert sizes[f"{VIDEO}@9.0"] == (240, 213, 3)  # 384x432 crop scaled to fit 240
    too_big = dataclasses.replace(
        taught_set, region={"x": 0, "y": 0, "w": 5000, "h": 10, "unit": "pixel"}
    )
    page = report_page(too_big)
    assert not IMG.findall(page)
    assert page.count("the region does not fit") == len(taught_set.report["worst"]) - 2


def test_write_report_creates_the_folder_and_writes_the_page_whole(
    taught: tuple[TaughtSet, Path], tmp_path: Path
) -> None:
    taught_set, _ = taught
    folder = tmp_path / "reports" / "kitchen"
    path = write_report(folder, taught_set)
    assert path == folder / "index.html"
    assert path.read_text(encoding="utf-8") == report_page(taught_set)
    assert [p.name for p in folder.iterdir()] == ["index.html"]  # no temporary file left
