"""Command line: ``scenecls export`` and ``scenecls classify``.

Parsing (:func:`build_parser`) is separate from running (:func:`run`); :func:`main` is
the one place that turns a :class:`SceneclsError` into a line on stderr and an exit code.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from . import __version__
from .errors import InputError, SceneclsError, UsageError
from .smoothing import MODES

log = logging.getLogger("scenecls")

DEFAULT_MODEL = "openai/clip-vit-base-patch32"
IMAGE_EXTENSIONS = {
    ".jpg",
    ".jpeg",
    ".png",
    ".bmp",
    ".webp",
    ".tif",
    ".tiff",
    ".gif",
    ".ppm",
    ".pgm",
}


class _Parser(argparse.ArgumentParser):
    """argparse that raises UsageError instead of exiting, so main() owns exit codes, and
    takes no abbreviated options (a typo must not silently mean another option)."""

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(
            f"{message} (see 'scenecls {self.prog.split()[-1]} --help')"
            if " " in self.prog
            else f"{message} (see 'scenecls --help')"
        )


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    verbosity = common.add_mutually_exclusive_group()
    verbosity.add_argument("-v", "--verbose", action="store_true", help="log debug details")
    verbosity.add_argument("-q", "--quiet", action="store_true", help="log warnings only")

    parser = _Parser(prog="scenecls", description="Real-time video scene classification with CLIP.")
    parser.add_argument("--version", action="version", version=f"scenecls {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    exp = sub.add_parser(
        "export",
        parents=[common],
        help="export a CLIP checkpoint to an ONNX bundle",
        description="Export a Hugging Face CLIP checkpoint (hub id or local folder) "
        "to a scenecls bundle folder. Needs torch and transformers.",
    )
    exp.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        help=f"hub id or local Hugging Face folder (default {DEFAULT_MODEL})",
    )
    exp.add_argument(
        "--out",
        type=Path,
        help="bundle folder to write (default: the model cache, where --model finds it)",
    )
    exp.add_argument(
        "--precision",
        choices=["fp32", "fp16"],
        default="fp32",
        help="fp32 (any device, default) or fp16 (for CUDA)",
    )
    exp.add_argument("--revision", help="hub revision (branch, tag or commit)")
    exp.add_argument("--force", action="store_true", help="replace an existing bundle folder")

    cls = sub.add_parser(
        "classify",
        parents=[common],
        help="zero-shot classify images",
        description="Print the top-k labels of each image.",
    )
    cls.add_argument("images", nargs="+", metavar="IMAGE", help="image files or folders of images")
    _add_model_options(cls)
    _add_label_options(cls)
    cls.add_argument("--top-k", type=int, default=3, help="labels to show per image (default 3)")
    cls.add_argument("--json", action="store_true", help="one JSON object per image per line")

    run = sub.add_parser(
        "run",
        parents=[common],
        help="classify a video, stream, webcam or image folder",
        description="Classify every frame of SOURCE, smooth the labels into "
        "segments, and write or show the results.",
    )
    run.add_argument(
        "source",
        metavar="SOURCE",
        help="video file, image folder, webcam index (0) or stream URL (rtsp://, http(s)://)",
    )
    _add_model_options(run)
    _add_label_options(run)
    g = run.add_argument_group("sampling")
    g.add_argument(
        "--fps",
        type=float,
        help="analyse at most N frames per second of video (files; default: every frame)",
    )
    g.add_argument(
        "--image-fps",
        type=float,
        default=1.0,
        help="frame rate given to an image folder (default 1)",
    )
    g.add_argument(
        "--batch", type=int, default=16, help="frames per encoder call for files (default 16)"
    )
    g = run.add_argument_group("smoothing (times in seconds)")
    g.add_argument(
        "--smoothing",
        choices=list(MODES),
        default="ema+hysteresis",
        help="default ema+hysteresis: EMA on probabilities plus min-dwell/margin",
    )
    g.add_argument("--half-life", type=float, default=0.5, help="EMA half-life (default 0.5 s)")
    g.add_argument(
        "--min-dwell",
        type=float,
        default=1.0,
        help="a new label must lead this long to take over (default 1 s)",
    )
    g.add_argument(
        "--switch-margin",
        type=float,
        default=0.05,
        help="... by at least this probability (default 0.05)",
    )
    g = run.add_argument_group("outputs (any combination)")
    g.add_argument("--show", action="store_true", help="show a window; q or Esc quits")
    g.add_argument("--out", type=Path, help="annotated video (.mp4, .avi, .mkv, .mov)")
    g.add_argument("--jsonl", type=Path, help="one JSON line per analysed frame")
    g.add_argument("--segments", type=Path, help="segments as .json or .csv")
    g.add_argument("--srt", type=Path, help="captions, one per segment (SubRip)")
    g.add_argument("--vtt", type=Path, help="captions, one per segment (WebVTT)")
    g.add_argument("--top-k", type=int, default=3, help="bars in the overlay (default 3)")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def _add_model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        help=f"bundle folder, Hugging Face folder or hub id (default {DEFAULT_MODEL})",
    )
    p.add_argument(
        "--device",
        choices=["auto", "cpu", "cuda"],
        default="auto",
        help="auto: CUDA when it works here, else CPU (default)",
    )
    p.add_argument(
        "--precision",
        choices=["fp32", "fp16"],
        default="fp32",
        help="precision of a bundle exported on the fly (default fp32)",
    )


def _add_label_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--labels",
        default="scenes",
        help="inline 'a,b,c', a preset (scenes, pizza, cars, cups) or a TOML file (default scenes)",
    )
    p.add_argument(
        "--templates",
        help="prompt templates: 'default', '{}' (labels as they are), "
        "'a photo of a {}.|a picture of a {}.' or a .txt/.toml file",
    )
    p.add_argument(
        "--min-confidence",
        type=float,
        default=0.0,
        help="below this probability the label is 'unknown' (default 0: never)",
    )


def run(args: argparse.Namespace) -> int:
    """Run a parsed command; returns the exit code."""
    if args.command == "export":
        return _run_export(args)
    if args.command == "classify":
        return _run_classify(args)
    if args.command == "run":
        return _run_video(args)
    raise UsageError(f"unknown command {args.command!r}")  # pragma: no cover


def _run_export(args: argparse.Namespace) -> int:
    from .export import export_bundle
    from .resolve import cached_bundle_path

    out = (
        args.out
        if args.out is not None
        else cached_bundle_path(args.model, args.precision, args.revision)
    )
    path = export_bundle(
        args.model,
        out,
        precision=args.precision,
        revision=args.revision,
        force=args.force or args.out is None,
    )
    print(path)
    return 0


def _image_paths(items: Sequence[str]) -> list[Path]:
    paths: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_EXTENSIONS)
            if not found:
                raise UsageError(
                    f"folder {p} holds no images ({', '.join(sorted(IMAGE_EXTENSIONS))})"
                )
            paths.extend(found)
        elif p.is_file():
            paths.append(p)
        else:
            raise UsageError(f"image {p} does not exist: check the path")
    return paths


def read_image(path: Path) -> np.ndarray:
    """Decode an image file to HxWx3 uint8 BGR (first frame of an animated GIF)."""
    import cv2

    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as e:
        raise InputError(f"cannot read {path}: {e}") from e
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None and data.size and path.suffix.lower() == ".gif":
        cap = cv2.VideoCapture(str(path))
        ok, frame = cap.read()
        cap.release()
        image = frame if ok else None
    if image is None:
        raise InputError(f"cannot decode {path}: not an image file OpenCV can read")
    return image


def _batches(paths: list[Path], size: int) -> Iterator[list[tuple[Path, np.ndarray | InputError]]]:
    batch: list[tuple[Path, np.ndarray | InputError]] = []
    for p in paths:
        try:
            batch.append((p, read_image(p)))
        except InputError as e:
            batch.append((p, e))
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _run_classify(args: argparse.Namespace) -> int:
    from .labels import resolve_labels
    from .model import load_model
    from .scoring import check_min_confidence

    if args.top_k < 1:
        raise UsageError(f"--top-k must be at least 1, not {args.top_k}")
    check_min_confidence(args.min_confidence)
    paths = _image_paths(args.images)
    labelset = resolve_labels(args.labels, args.templates)
    model = load_model(args.model, device=args.device, precision=args.precision)
    text = model.embed_labels(labelset)
    from .scoring import classify_scores, score

    failures = 0
    for batch in _batches(paths, model.batch_size):
        good = [(p, img) for p, img in batch if isinstance(img, np.ndarray)]
        embs = model.encode_images([img for _, img in good])
        results = iter(score(embs, text, labelset.names, model.logit_scale))
        for path, img in batch:
            if isinstance(img, InputError):
                failures += 1
                print(f"scenecls: error: {img}", file=sys.stderr)
                continue
            c = classify_scores(next(results), args.top_k, args.min_confidence)
            if args.json:
                record = {
                    "image": str(path),
                    "label": c.label,
                    "confidence": c.confidence,
                    "predictions": [t.to_json() for t in c.top],
                }
                print(json.dumps(record, ensure_ascii=False))
            else:
                print(f"{path}: {c.label} ({c.confidence:.1%})")
                for t in c.top:
                    print(f"  {t.probability:7.2%}  {t.label}  (cosine {t.similarity:+.3f})")
        sys.stdout.flush()
    if failures:
        log.error("%d of %d images could not be read", failures, len(paths))
        return 1
    return 0


def _run_video(args: argparse.Namespace) -> int:
    import os
    import signal
    import threading

    from .labels import resolve_labels
    from .model import load_model
    from .pipeline import Pipeline, PipelineConfig
    from .progress import Progress
    from .sinks import CaptionSink, JsonlSink, SegmentsSink, VideoSink, WindowSink
    from .smoothing import Smoother, SmoothingConfig
    from .sources import open_source

    if args.batch < 1:
        raise UsageError(f"--batch must be at least 1, not {args.batch}")
    if args.fps is not None and args.fps <= 0:
        raise UsageError(f"--fps must be more than 0, not {args.fps}")
    if args.top_k < 1:
        raise UsageError(f"--top-k must be at least 1, not {args.top_k}")
    smoothing = SmoothingConfig(
        args.smoothing,
        args.half_life,
        args.min_dwell,
        args.switch_margin,
        args.min_confidence,
        args.top_k,
    )
    labelset = resolve_labels(args.labels, args.templates)
    source = open_source(args.source, image_fps=args.image_fps)
    # every output is checked before any work starts
    sinks = []
    if args.jsonl:
        sinks.append(JsonlSink(args.jsonl))
    if args.segments:
        sinks.append(SegmentsSink(args.segments))
    if args.srt:
        sinks.append(CaptionSink(args.srt, "srt"))
    if args.vtt:
        sinks.append(CaptionSink(args.vtt, "vtt"))
    if args.out:
        sinks.append(VideoSink(args.out))
    if args.show:
        sinks.append(WindowSink(f"scenecls: {args.source}"))
    if not sinks:
        log.warning("no output chosen: add --show, --out, --jsonl, --segments, --srt or --vtt")

    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        if stop.is_set():
            os._exit(128 + signum)  # second signal: leave now
        stop.set()
        log.warning("stopping: finishing the outputs (press Ctrl-C again to quit at once)")

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        model = load_model(args.model, device=args.device, precision=args.precision)
        progress = Progress(enabled=not args.no_progress and not source.live)
        pipeline = Pipeline(
            model,
            labelset,
            source,
            sinks,
            smoother=Smoother(smoothing),
            config=PipelineConfig(
                batch_size=args.batch, analysis_fps=args.fps, overlay_top_k=args.top_k
            ),
            on_progress=progress.update,
        )
        try:
            if stop.is_set():
                return 130
            stats = pipeline.run(stop)
        finally:
            progress.close()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if not args.quiet:
        print(stats.summary(), file=sys.stderr)
    return 130 if stats.interrupted and stop.is_set() else 0


def _setup_logging(args: argparse.Namespace) -> None:
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("scenecls: %(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(level)
    log.propagate = False


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``scenecls`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        args = build_parser().parse_args(argv)
        _setup_logging(args)
        return run(args)
    except SceneclsError as e:
        if debug:
            raise
        print(f"scenecls: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        if debug:
            raise
        print("scenecls: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
