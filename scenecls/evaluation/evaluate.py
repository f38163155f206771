"""Evaluation runs: an image folder with one subfolder per class, or a video with truth
segments. Produces the reports of :mod:`scenecls.metrics` plus per-image predictions."""

from __future__ import annotations

import csv
import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError, LabelError, UsageError
from ..model.labels import LabelSet
from ..model.scene_model import SceneModel, load_labels
from ..model.scoring import classify_scores
from ..model.taught import TaughtSet, scores_of
from ..region import Region, region_crop
from ..types import Segment
from ..video.gate import GateConfig
from ..video.sinks import Sink
from ..video.sources.images import IMAGE_EXTENSIONS, read_image
from .metrics import classification_report, runs_to_segments, video_report

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

log = logging.getLogger("scenecls")


def read_label_map(path: Path) -> dict[str, str]:
    """Folder name -> label, from a TOML table (``folder = "label"``) or a two-column CSV
    (``folder,label``, header optional)."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"label map {path} does not exist")
    if path.suffix.lower() == ".toml":
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as e:
            raise LabelError(f"label map {path} is not valid TOML: {e}") from e
        if not all(isinstance(v, str) for v in data.values()):
            raise LabelError(f'label map {path}: every entry must be folder = "label"')
        return {str(k): str(v) for k, v in data.items()}
    mapping = {}
    with open(path, newline="", encoding="utf-8") as f:
        for n, row in enumerate(csv.reader(f), 1):
            if not row or (n == 1 and [c.strip().lower() for c in row] == ["folder", "label"]):
                continue
            if len(row) != 2:
                raise LabelError(f"label map {path} line {n}: expected 'folder,label'")
            mapping[row[0].strip()] = row[1].strip()
    return mapping


@dataclass(frozen=True)
class ImageSet:
    """Images with their true labels; ``classes`` are the true labels present, in order."""

    paths: list[Path]
    truth: list[str]
    classes: list[str]


def load_image_folder(folder: Path, label_map: dict[str, str] | None = None) -> ImageSet:
    """``folder/<class>/<image>``: the subfolder name (or its mapping) is the true label."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder} is not a folder of class subfolders")
    paths, truth, classes = [], [], []
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        files = sorted(f for f in sub.rglob("*") if f.suffix.lower() in IMAGE_EXTENSIONS)
        if not files:
            continue
        label = (label_map or {}).get(sub.name, sub.name)
        if label not in classes:
            classes.append(label)
        paths += files
        truth += [label] * len(files)
    if not paths:
        raise InputError(f"{folder} has no class subfolders with images ({folder}/<label>/*.jpg)")
    return ImageSet(paths, truth, classes)


def check_labels_cover(classes: Sequence[str], labelset: LabelSet | TaughtSet) -> None:
    missing = [c for c in classes if c not in labelset.names]
    if missing:
        raise LabelError(
            f"true label(s) {missing} are not in --labels ({', '.join(labelset.names)}): add them, "
            "or map folder names to labels with --label-map"
        )


def evaluate_images(
    model: SceneModel,
    images: ImageSet,
    labelset: LabelSet | TaughtSet,
    *,
    top_k: int = 5,
    min_confidence: float = 0.0,
    region: Region | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Classify every image (only ``region`` of each, when given: an image it does not
    fit raises :class:`~scenecls.errors.RegionError` naming it); returns (report, one
    prediction row per image)."""
    check_labels_cover(images.classes, labelset)
    scorer = model.scorer(labelset)
    names = labelset.names
    predicted, ranked, rows = [], [], []
    for start in range(0, len(images.paths), model.batch_size):
        batch = images.paths[start : start + model.batch_size]
        imgs = [region_crop(region, read_image(p), str(p)) for p in batch]
        for p, s, t in zip(
            batch,
            scores_of(scorer, model.encode_images(imgs)),
            images.truth[start : start + len(batch)],
            strict=True,
        ):
            c = classify_scores(s, top_k=len(names), min_confidence=min_confidence)
            predicted.append(c.label)
            ranked.append([x.label for x in c.top])
            rows.append(
                {
                    "image": str(p),
                    "truth": t,
                    "predicted": c.label,
                    "confidence": round(c.confidence, 6),
                    "correct": c.label == t,
                    "top_k": "|".join(x.label for x in c.top[:top_k]),
                }
            )
    report = classification_report(images.truth, predicted, ranked, names)
    if str(top_k) not in report["recall_at_k"] and top_k <= len(names):
        report["recall_at_k"][str(top_k)] = sum(
            t in r[:top_k] for t, r in zip(images.truth, ranked, strict=True)
        ) / len(ranked)
    return report, rows


def write_predictions_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    import io

    from ..video.sinks import write_text_atomic

    buf = io.StringIO()
    w = csv.DictWriter(
        buf, ["image", "truth", "predicted", "confidence", "correct", "top_k"], lineterminator="\n"
    )
    w.writeheader()
    w.writerows(rows)
    write_text_atomic(Path(path), buf.getvalue())


def read_truth_csv(path: Path) -> list[Segment]:
    """Truth segments from a CSV with header ``label,start,end`` (seconds), sorted."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"truth file {path} does not exist")
    segs = []
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or not {"label", "start", "end"} <= set(reader.fieldnames):
            raise UsageError(f"truth file {path}: the header must be label,start,end")
        for n, row in enumerate(reader, 2):
            try:
                seg = Segment(row["label"].strip(), float(row["start"]), float(row["end"]), 1.0)
            except (TypeError, ValueError) as e:
                raise UsageError(f"truth file {path} line {n}: {e}") from e
            segs.append(seg)
    if not segs:
        raise UsageError(f"truth file {path} has no segments")
    segs.sort(key=lambda s: s.start)
    for a, b in pairwise(segs):
        if b.start < a.end - 1e-9:
            raise UsageError(f"truth file {path}: segments overlap at {b.start} s")
    return segs


class _Recorder(Sink):
    """Keeps each analysed frame's time, raw label and smoothed label."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.raw: list[str] = []
        self.smoothed: list[str] = []

    def on_frame(self, frame, prediction, analysed, annotated_bgr=None):  # type: ignore[no-untyped-def]
        if analysed and prediction is not None:
            self.times.append(frame.timestamp)
            self.raw.append(prediction.raw_label)
            self.smoothed.append(prediction.label)


@dataclass
class VideoEvaluation:
    report: dict[str, Any]
    times: list[float]
    raw: list[str]
    smoothed: list[str]
    truth: list[Segment]
    end: float


def evaluate_video(
    model: SceneModel,
    video: Path,
    truth: list[Segment],
    labelset: LabelSet | TaughtSet,
    *,
    smoother: Any = None,
    analysis_fps: float | None = None,
    tolerance: float = 1.0,
    gate: GateConfig | None = None,
    region: Region | None = None,
) -> VideoEvaluation:
    """Run the pipeline over ``video`` and compare raw and smoothed labels with ``truth``
    (``gate``: the change gate; default settings when None; ``region``: the region of
    interest, None: the whole frame)."""
    from ..video.pipeline import Pipeline, PipelineConfig
    from ..video.sources import VideoFileSource

    check_labels_cover(sorted({s.label for s in truth}), labelset)
    if tolerance < 0:
        raise UsageError(f"--tolerance must be 0 or more seconds, not {tolerance}")
    rec = _Recorder()
    stats = Pipeline(
        model,
        labelset,
        VideoFileSource(video),
        [rec],
        smoother=smoother,
        config=PipelineConfig(analysis_fps=analysis_fps, gate=gate or GateConfig(), region=region),
    ).run()
    if not rec.times:
        raise InputError(f"no frame could be decoded from {video}")
    report = video_report(rec.times, rec.raw, rec.smoothed, truth, stats.end_time, tolerance)
    report["video"] = str(video)
    return VideoEvaluation(report, rec.times, rec.raw, rec.smoothed, truth, stats.end_time)


def frame_confusion(
    ev: VideoEvaluation, labels: Sequence[str]
) -> tuple[list[str], list[str], np.ndarray]:
    """Smoothed per-frame labels vs truth as a confusion matrix (frames outside truth skipped)."""
    from .metrics import confusion_matrix, label_at

    pairs = [(label_at(ev.truth, t), p) for t, p in zip(ev.times, ev.smoothed, strict=True)]
    pairs = [(t, p) for t, p in pairs if t is not None]
    rows = [lb for lb in labels if any(t == lb for t, _ in pairs)]  # labels the truth uses
    cols, m = confusion_matrix([t for t, _ in pairs], [p for _, p in pairs], rows, labels)
    return rows, cols, m


def timeline_tracks(ev: VideoEvaluation) -> list[tuple[str, list[Segment]]]:
    return [
        ("truth", ev.truth),
        ("raw", runs_to_segments(ev.times, ev.raw, ev.end)),
        ("smoothed", runs_to_segments(ev.times, ev.smoothed, ev.end)),
    ]


def read_template_sets(path: Path) -> dict[str, tuple[str, ...]]:
    """Named template sets to compare: TOML ``[sets]`` of ``name = ["a photo of a {}.", ...]``,
    or a text file with one set per line, templates separated by ``|``."""
    from ..model.labels import parse_templates

    path = Path(path)
    if not path.is_file():
        raise UsageError(f"template sets file {path} does not exist")
    sets: dict[str, tuple[str, ...]] = {}
    if path.suffix.lower() == ".toml":
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as e:
            raise LabelError(f"{path} is not valid TOML: {e}") from e
        raw = data.get("sets", data)
        for name, templates in raw.items():
            if not isinstance(templates, list):
                raise LabelError(f"{path}: set {name!r} must be a list of templates")
            sets[str(name)] = parse_templates(templates)
    else:
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                sets[line.strip()] = parse_templates(line.strip())
    if not sets:
        raise LabelError(f"{path} holds no template sets")
    return sets


def format_image_report(r: dict[str, Any], title: str = "") -> str:
    """A readable table of an image-folder report."""
    lines = [title] if title else []
    recall = "  ".join(f"recall@{k} {v:.1%}" for k, v in r["recall_at_k"].items())
    lines.append(f"images {r['n_images']}   accuracy {r['accuracy']:.1%}   {recall}")
    width = max([len(lb) for lb in r["per_class"]] + [10])
    lines.append(f"{'label':<{width}}  precision  recall     f1  support")
    for lb, c in r["per_class"].items():
        lines.append(
            f"{lb:<{width}}  {c['precision']:9.3f}  {c['recall']:6.3f}  {c['f1']:5.3f}  "
            f"{c['support']:7d}"
        )
    for avg in ("macro", "micro"):
        a = r[avg]
        lines.append(f"{avg:<{width}}  {a['precision']:9.3f}  {a['recall']:6.3f}  {a['f1']:5.3f}")
    if r["worst_confusions"]:
        worst = ", ".join(
            f"{c['truth']} -> {c['predicted']} ({c['count']})" for c in r["worst_confusions"][:5]
        )
        lines.append(f"worst confusions: {worst}")
    return "\n".join(lines)


def format_video_report(r: dict[str, Any]) -> str:
    t = r["truth"]
    lines = [
        f"frames {r['n_frames']} ({r['n_scored_frames']} inside truth segments), "
        f"{r['duration_s']:.1f} s, boundary tolerance {r['tolerance_s']:g} s",
        f"{'':10s} frame acc  switches/min  boundary P    R     F1   mean delay",
    ]
    for name in ("raw", "smoothed"):
        x = r[name]
        delay = f"{x['mean_delay_s']:+.2f} s" if x["mean_delay_s"] is not None else "-"
        lines.append(
            f"{name:10s} {x['frame_accuracy']:8.1%}  {x['switches_per_minute']:12.1f}  "
            f"{x['boundary_precision']:10.2f} {x['boundary_recall']:5.2f} "
            f"{x['boundary_f1']:5.2f}   {delay}"
        )
    lines.append(
        f"{'truth':10s} {'':8s}  {t['switches_per_minute']:12.1f}  ({t['boundaries']} changes)"
    )
    return "\n".join(lines)


def write_json(path: Path, doc: dict[str, Any]) -> None:
    from ..video.sinks import write_text_atomic

    write_text_atomic(Path(path), json.dumps(doc, indent=2, ensure_ascii=False) + "\n")


def labels_for(
    spec: str | None, templates: str | None, classes: Sequence[str]
) -> LabelSet | TaughtSet:
    """``--labels`` (text labels or a taught set) if given, else the true classes."""
    return load_labels(spec if spec else list(classes), templates)
