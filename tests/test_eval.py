"""`scenecls eval` end to end with the trained shapes fixture (it really classifies)."""

from __future__ import annotations

import csv
import json
from itertools import pairwise
from pathlib import Path

import cv2
import pytest
import synthetic_shapes as shapes  # scripts/ is on the path (conftest)

from scenecls.cli import main

from .conftest import REPO
from .outputs import one_line_error

FIXTURE = REPO / "tests" / "fixtures" / "shapes-clip"
TRUTH = [
    ("red circle", 0.0, 6.0),
    ("blue ring", 6.0, 12.0),
    ("green circle", 12.0, 18.0),
    ("yellow ring", 18.0, 24.0),
]


@pytest.fixture(scope="module")
def held_out(tmp_path_factory) -> Path:  # type: ignore[no-untyped-def]
    folder = tmp_path_factory.mktemp("shapes")
    shapes.make_dataset(folder, per_class=15, seed=4242)
    return folder


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> tuple[Path, Path]:  # type: ignore[no-untyped-def]
    folder = tmp_path_factory.mktemp("shapes-video")
    path, truth = folder / "clip.mp4", folder / "truth.csv"
    shapes.make_video(path, TRUTH, fps=10, seed=77, flicker=0.15)
    shapes.write_truth_csv(truth, TRUTH)
    return path, truth


def test_image_folder_report_plot_and_predictions(held_out: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    report, png, preds = tmp_path / "r.json", tmp_path / "c.png", tmp_path / "p.csv"
    code = main(
        [
            "eval",
            str(held_out),
            "--model",
            str(FIXTURE),
            "--report",
            str(report),
            "--confusion",
            str(png),
            "--predictions",
            str(preds),
            "--top-k",
            "3",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert ("accuracy" in out and "worst confusions" in out) or "macro" in out
    r = json.loads(report.read_text())
    k = len(shapes.CLASSES)
    assert r["n_images"] == 15 * k
    assert r["accuracy"] >= 0.9
    assert set(r["recall_at_k"]) == {"1", "3", "5"}
    assert r["recall_at_k"]["5"] >= r["recall_at_k"]["3"] >= r["recall_at_k"]["1"]
    assert set(r["per_class"]) == set(shapes.CLASSES)
    assert all(set(c) == {"precision", "recall", "f1", "support"} for c in r["per_class"].values())
    assert {"precision", "recall", "f1"} <= set(r["macro"]) and {
        "precision",
        "recall",
        "f1",
    } <= set(r["micro"])
    m = r["confusion"]["matrix"]
    assert len(m) == k and all(len(row) == k + 1 for row in m)  # + the unknown column
    assert sum(map(sum, m)) == 15 * k
    assert isinstance(r["worst_confusions"], list)
    img = cv2.imread(str(png))
    assert img is not None and img.shape[0] > 300 and img.shape[1] > 300
    with open(preds, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 15 * k and len(rows[0]["top_k"].split("|")) == 3


def test_unknown_is_its_own_column(held_out: Path, tmp_path: Path) -> None:
    report = tmp_path / "r.json"
    assert (
        main(
            [
                "eval",
                str(held_out),
                "--model",
                str(FIXTURE),
                "--min-confidence",
                "0.999",
                "--report",
                str(report),
            ]
        )
        == 0
    )
    r = json.loads(report.read_text())
    unknown = sum(row[-1] for row in r["confusion"]["matrix"])
    assert unknown > 0 and r["unknown_rate"] == pytest.approx(unknown / r["n_images"])
    assert r["accuracy"] < r["recall_at_k"]["1"]


def test_label_map_renames_folders(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    shapes.make_dataset(folder, per_class=4, seed=5)
    for cls in shapes.CLASSES:
        (folder / cls).rename(folder / cls.replace(" ", "_"))
    mapping = tmp_path / "map.csv"
    mapping.write_text(
        "folder,label\n" + "".join(f"{c.replace(' ', '_')},{c}\n" for c in shapes.CLASSES)
    )
    report = tmp_path / "r.json"
    assert (
        main(
            [
                "eval",
                str(folder),
                "--model",
                str(FIXTURE),
                "--label-map",
                str(mapping),
                "--report",
                str(report),
            ]
        )
        == 0
    )
    assert set(json.loads(report.read_text())["per_class"]) == set(shapes.CLASSES)


def test_compare_templates(held_out: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    sets, report = tmp_path / "sets.toml", tmp_path / "r.json"
    sets.write_text(
        '[sets]\nraw = ["{}"]\nphoto = ["a photo of a {}."]\n'
        'ensemble = ["a photo of a {}.", "a drawing of a {}.", "a {}."]\n'
    )
    assert (
        main(
            [
                "eval",
                str(held_out),
                "--model",
                str(FIXTURE),
                "--compare-templates",
                str(sets),
                "--report",
                str(report),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert all(name in out for name in ("raw", "photo", "ensemble"))
    r = json.loads(report.read_text())
    assert set(r["template_sets"]) == {"raw", "photo", "ensemble"}
    assert r["template_sets"]["raw"]["templates"] == ["{}"]
    assert r["best"] in r["template_sets"]


def test_video_with_truth(video: tuple[Path, Path], tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    clip, truth = video
    report, timeline, conf = tmp_path / "v.json", tmp_path / "t.png", tmp_path / "c.png"
    code = main(
        [
            "eval",
            str(clip),
            "--truth",
            str(truth),
            "--model",
            str(FIXTURE),
            "--labels",
            ",".join(shapes.CLASSES),
            "--min-dwell",
            "0.5",
            "--half-life",
            "0.2",
            "--report",
            str(report),
            "--timeline",
            str(timeline),
            "--confusion",
            str(conf),
        ]
    )
    assert code == 0
    r = json.loads(report.read_text())
    raw, smooth = r["raw"], r["smoothed"]
    assert smooth["frame_accuracy"] >= 0.85
    assert smooth["switches_per_minute"] <= raw["switches_per_minute"]
    assert r["truth"]["boundaries"] == 3
    assert smooth["boundary_f1"] >= 0.8
    assert 0 <= smooth["mean_delay_s"] <= 0.5 + 0.2 + 0.1 + 1e-6
    for png in (timeline, conf):
        assert cv2.imread(str(png)) is not None
    assert "smoothed" in capsys.readouterr().out


@pytest.mark.parametrize(
    "extra, message",
    [
        ([], "give its truth segments with --truth"),
        (["--truth", "TRUTH", "--labels", "red circle,blue circle"], "not in --labels"),
        (["--truth", "BADCSV"], "header must be label,start,end"),
        (["--truth", "TRUTH", "--report", "OUT/r.txt"], "use a .json file name"),
    ],
)
def test_bad_video_eval_input(extra, message, video, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    clip, truth = video
    bad = tmp_path / "bad.csv"
    bad.write_text("name,from,to\nx,0,1\n")
    extra = [
        str(truth)
        if a == "TRUTH"
        else str(bad)
        if a == "BADCSV"
        else a.replace("OUT", str(tmp_path))
        for a in extra
    ]
    assert main(["eval", str(clip), "--model", str(FIXTURE), *extra]) == 2
    assert message in one_line_error(capsys.readouterr().err)


def test_run_segments_follow_the_truth(video: tuple[Path, Path], tmp_path: Path) -> None:
    """`scenecls run` with the trained model: smoothing turns glitchy frames into the true
    segments, each change found within min-dwell + two half-lives + one frame (the EMA
    crosses over after about one half-life; glitch frames can hold it back a little)."""
    from .outputs import check_segments, read_jsonl, read_segments

    clip, _ = video
    seg, jsonl = tmp_path / "s.json", tmp_path / "f.jsonl"
    assert (
        main(
            [
                "run",
                str(clip),
                "--model",
                str(FIXTURE),
                "--labels",
                ",".join(shapes.CLASSES),
                "--segments",
                str(seg),
                "--jsonl",
                str(jsonl),
                "--no-progress",
                "-q",
            ]
        )
        == 0
    )
    segs = read_segments(seg)
    check_segments(segs, first_time=0.0, end_time=24.0)
    assert [s["label"] for s in segs] == [t[0] for t in TRUTH]
    for s, (_, start, _) in zip(segs[1:], TRUTH[1:], strict=True):
        assert start <= s["start"] <= start + 0.5 + 2 * 0.25 + 0.1 + 1e-6
    lines = read_jsonl(jsonl)
    raw_switches = sum(a["raw_label"] != b["raw_label"] for a, b in pairwise(lines))
    assert raw_switches > 10 * (len(segs) - 1)  # the glitches were really there
