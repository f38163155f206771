"""``scenecls eval``: the command-line side of :mod:`scenecls.evaluate`."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..evaluation.evaluate import (
    evaluate_images,
    evaluate_video,
    format_image_report,
    format_video_report,
    frame_confusion,
    labels_for,
    load_image_folder,
    read_label_map,
    read_template_sets,
    read_truth_csv,
    timeline_tracks,
    write_json,
    write_predictions_csv,
)
from ..interrupts import guard_of
from ..model.scoring import check_min_confidence
from ..video.sinks import check_writable
from .options import (
    Example,
    add_gate_options,
    add_model_options,
    add_region_options,
    add_smoothing_options,
    examples_epilog,
    labels_of,
)

log = logging.getLogger("scenecls")


EXAMPLES: list[Example] = [
    Example(
        "accuracy on labelled pictures (a folder per label), with a confusion matrix",
        "scenecls eval examples/ --confusion confusion.png",
    ),
    Example(
        "a video against its true segments (label,start,end rows), with a timeline",
        "scenecls eval video.mp4 --truth moments.csv --timeline timeline.png --report eval.json",
    ),
]


def add_eval_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    ev = sub.add_parser(
        "eval",
        parents=[common],
        help="measure accuracy on labelled images or a video with truth segments",
        description="IMAGES_DIR: one subfolder per class (folder name = label, or --label-map). "
        "VIDEO --truth TRUTH.csv: truth segments label,start,end in seconds.",
        epilog=examples_epilog(EXAMPLES),
    )
    ev.add_argument("input", metavar="IMAGES_DIR|VIDEO")
    add_model_options(ev)
    ev.add_argument("--labels", help="label set (default: the class folder names or truth labels)")
    ev.add_argument("--templates", help="prompt templates, as for run")
    ev.add_argument(
        "--min-confidence",
        type=float,
        default=0.0,
        help="below this probability the prediction is 'unknown' (its own column)",
    )
    ev.add_argument(
        "--top-k", type=int, default=5, help="top-k labels in --predictions (default 5)"
    )
    ev.add_argument("--label-map", type=Path, help="folder name -> label (.toml or .csv)")
    ev.add_argument("--truth", type=Path, help="truth segments CSV (label,start,end) for a video")
    ev.add_argument(
        "--tolerance",
        type=float,
        default=1.0,
        help="boundary match tolerance in seconds (default 1)",
    )
    ev.add_argument(
        "--compare-templates",
        type=Path,
        metavar="FILE",
        help="evaluate once per template set in FILE and compare them",
    )
    ev.add_argument("--report", type=Path, help="write the report as JSON")
    ev.add_argument("--confusion", type=Path, help="write the confusion matrix as PNG")
    ev.add_argument("--timeline", type=Path, help="video: truth / raw / smoothed timeline PNG")
    ev.add_argument("--predictions", type=Path, help="images: one CSV row per image")
    ev.add_argument("--fps", type=float, help="video: analyse at most N frames per second")
    add_region_options(ev)
    add_gate_options(ev)
    add_smoothing_options(ev)


def _check_args(args: argparse.Namespace) -> None:
    if args.top_k < 1:
        raise UsageError(f"--top-k must be at least 1, not {args.top_k}")
    if args.tolerance < 0:
        raise UsageError(f"--tolerance must be 0 or more seconds, not {args.tolerance}")
    check_min_confidence(args.min_confidence)
    for option in ("report", "confusion", "timeline", "predictions"):
        path = getattr(args, option)
        if path is not None:
            check_writable(path, f"--{option}")
    for option, suffix in (
        ("confusion", ".png"),
        ("timeline", ".png"),
        ("report", ".json"),
        ("predictions", ".csv"),
    ):
        path = getattr(args, option)
        if path is not None and path.suffix.lower() != suffix:
            raise UsageError(f"--{option} {path}: use a {suffix} file name")


def run_eval(args: argparse.Namespace) -> int:
    from ..model.scene_model import load_model
    from ..model.taught import is_taught_file
    from ..video.gate import GateConfig
    from ..video.smoothing import Smoother, SmoothingConfig

    _check_args(args)
    source = Path(args.input)
    if not source.exists():
        raise UsageError(f"{source} does not exist: give a folder of class subfolders or a video")
    video = source.is_file()
    if video and args.truth is None:
        raise UsageError(f"{source} is a video: give its truth segments with --truth TRUTH.csv")
    if not video and args.truth is not None:
        raise UsageError("--truth is for a video; an image folder's truth is its subfolder names")
    if video and (args.predictions or args.label_map):
        raise UsageError("--predictions and --label-map are for image folders")
    if not video and args.timeline:
        raise UsageError("--timeline is for a video with --truth")
    smoothing = SmoothingConfig.from_args(args)
    gate = GateConfig.from_args(args)
    sets: dict[str, Any] = (
        read_template_sets(args.compare_templates)
        if args.compare_templates
        else {"": args.templates}
    )
    truth = read_truth_csv(args.truth) if video else None
    images = (
        None
        if video
        else load_image_folder(source, read_label_map(args.label_map) if args.label_map else None)
    )
    classes = sorted({s.label for s in truth}) if truth else images.classes  # type: ignore[union-attr]
    if args.labels and is_taught_file(args.labels):
        labels_of(args)  # a taught set's region, unless --region says otherwise
    labelsets = {name: labels_for(args.labels, tpl, classes) for name, tpl in sets.items()}
    model = guard_of(args).call(
        load_model, args.model, device=args.device, precision=args.precision
    )

    results: dict[str, Any] = {}
    for name, labelset in labelsets.items():
        if video:
            results[name] = evaluate_video(
                model,
                source,
                truth,
                labelset,  # type: ignore[arg-type]
                smoother=Smoother(smoothing),
                analysis_fps=args.fps,
                tolerance=args.tolerance,
                gate=gate,
                region=args.region,
            )
        else:
            results[name] = evaluate_images(
                model,
                images,
                labelset,
                top_k=args.top_k,  # type: ignore[arg-type]
                min_confidence=args.min_confidence,
                region=args.region,
            )

    def score_of(name: str) -> float:
        r = results[name]
        return r.report["smoothed"]["frame_accuracy"] if video else r[0]["accuracy"]

    best = max(results, key=score_of)
    labelset = labelsets[best]
    if len(results) == 1:
        report = results[best].report if video else results[best][0]
        print(format_video_report(report) if video else format_image_report(report))
        doc: dict[str, Any] = {
            **report,
            "labels": labelset.names,
            "templates": list(labelset.templates),
            "model": str(args.model),
        }
    else:
        print(_comparison_table(results, labelsets, video))
        doc = {
            "model": str(args.model),
            "best": best,
            "template_sets": {
                name: {
                    "templates": list(labelsets[name].templates),
                    **(r.report if video else r[0]),
                }
                for name, r in results.items()
            },
        }
    doc["region"] = None if args.region is None else args.region.to_json()
    if args.report:
        write_json(args.report, doc)
    chosen = results[best]
    if args.confusion:
        from ..evaluation.plots import save_confusion

        if video:
            rows, cols, m = frame_confusion(chosen, labelset.names)
            save_confusion(args.confusion, rows, cols, m, f"{source.name}: smoothed frames")
        else:
            c = chosen[0]["confusion"]
            save_confusion(
                args.confusion,
                c["labels"],
                c["columns"],
                c["matrix"],
                f"{source.name}: {chosen[0]['n_images']} images, "
                f"accuracy {chosen[0]['accuracy']:.1%}",
            )
    if args.timeline:
        from ..evaluation.plots import save_timeline

        save_timeline(
            args.timeline, timeline_tracks(chosen), labelset.names, chosen.times[0], chosen.end
        )
    if args.predictions:
        write_predictions_csv(args.predictions, chosen[1])
    return 0


def _comparison_table(results: dict[str, Any], labelsets: dict[str, Any], video: bool) -> str:
    width = max(len(n) for n in results) + 2
    if video:
        lines = [f"{'templates':<{width}} frame acc raw  smoothed  boundary F1"]
        for name, r in results.items():
            x = r.report
            lines.append(
                f"{name:<{width}} {x['raw']['frame_accuracy']:13.1%}  "
                f"{x['smoothed']['frame_accuracy']:8.1%}  {x['smoothed']['boundary_f1']:11.2f}"
            )
        return "\n".join(lines)
    ks = list(next(iter(results.values()))[0]["recall_at_k"])
    head = "  ".join(f"R@{k:<4}" for k in ks)
    lines = [f"{'templates':<{width}} accuracy  {head}  macro F1"]
    for name, (r, _) in results.items():
        recalls = "  ".join(f"{r['recall_at_k'][k]:6.1%}" for k in ks)
        lines.append(f"{name:<{width}} {r['accuracy']:8.1%}  {recalls}  {r['macro']['f1']:8.3f}")
    return "\n".join(lines)
