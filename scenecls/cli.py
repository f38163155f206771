"""Command line: every ``scenecls`` command (the bigger ones live in ``*_cli`` modules).

Parsing (:func:`build_parser`) is separate from running (:func:`run`); :func:`main` is
the one place that turns a :class:`SceneclsError` into a line on stderr and an exit code.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from . import __version__
from .encoders import PRECISIONS
from .errors import SceneclsError, UsageError
from .interrupts import guard_of
from .smoothing import MODES

log = logging.getLogger("scenecls")

DEFAULT_MODEL = "openai/clip-vit-base-patch32"


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
    g.add_argument(
        "--reconnect-timeout",
        type=float,
        default=30.0,
        metavar="S",
        help="webcams and streams: keep retrying one that cannot be opened or drops for "
        "up to S seconds, with growing pauses (default 30; 0: fail at once)",
    )
    _add_smoothing_options(run)
    g = run.add_argument_group("outputs (any combination)")
    g.add_argument("--show", action="store_true", help="show a window; q or Esc quits")
    g.add_argument("--out", type=Path, help="annotated video (.mp4, .avi, .mkv, .mov)")
    g.add_argument("--jsonl", type=Path, help="one JSON line per analysed frame")
    g.add_argument("--segments", type=Path, help="segments as .json or .csv")
    g.add_argument("--srt", type=Path, help="captions, one per segment (SubRip)")
    g.add_argument("--vtt", type=Path, help="captions, one per segment (WebVTT)")
    g.add_argument("--top-k", type=int, default=3, help="bars in the overlay (default 3)")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")

    ev = sub.add_parser(
        "eval",
        parents=[common],
        help="measure accuracy on labelled images or a video with truth segments",
        description="IMAGES_DIR: one subfolder per class (folder name = label, or --label-map). "
        "VIDEO --truth TRUTH.csv: truth segments label,start,end in seconds.",
    )
    ev.add_argument("input", metavar="IMAGES_DIR|VIDEO")
    _add_model_options(ev)
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
    _add_smoothing_options(ev)

    bench = sub.add_parser(
        "bench",
        parents=[common],
        help="measure speed: end to end, encoder, live latency, and the usual HF loop",
        description="Annotate a video with JSONL and segment outputs and report frames per "
        "second, time per stage, encoder throughput and live latency; --baseline also times "
        "the Hugging Face CLIPProcessor + CLIPModel loop on the same frames.",
    )
    _add_model_options(
        bench,
        default=None,
        model_help="bundle, Hugging Face folder or hub id (default: "
        f"{DEFAULT_MODEL}, or the random-weight reference model offline)",
    )
    bench.set_defaults(default_model=DEFAULT_MODEL)
    bench.add_argument(
        "--source",
        type=Path,
        help="video to annotate (default: ../shared/media/car-detection.mp4 when present)",
    )
    bench.add_argument("--labels", default="scenes", help="label set (default scenes)")
    bench.add_argument("--templates", help="prompt templates, as for run")
    bench.add_argument("--batch", type=int, default=16, help="encoder batch for files (default 16)")
    bench.add_argument(
        "--live-seconds",
        type=float,
        default=10.0,
        help="simulated 30 fps camera run for latency (default 10; 0 skips it)",
    )
    bench.add_argument(
        "--baseline",
        action="store_true",
        help="also time the usual Hugging Face CLIP loop (needs torch)",
    )
    bench.add_argument(
        "--hf-model",
        help="Hugging Face checkpoint for --baseline (default: --model when it is one)",
    )
    bench.add_argument(
        "--baseline-frames", type=int, default=30, help="frames timed for the baseline (default 30)"
    )
    bench.add_argument(
        "--precisions",
        default="",
        help="also time the encoder alone in each of these precisions, with each one's "
        "agreement with fp32 (for example fp32,bf16,int8)",
    )
    bench.add_argument(
        "--fidelity-frames",
        type=int,
        default=24,
        help="frames of the source on which agreement with fp32 is measured (default 24)",
    )
    bench.add_argument("--json", type=Path, help="also write the figures as JSON")

    from .annotate_cli import add_annotate_parser
    from .find_cli import add_find_parser
    from .serve_cli import add_serve_parser

    add_serve_parser(sub, common)
    add_annotate_parser(sub, common)
    add_find_parser(sub, common)
    return parser


def _add_smoothing_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("smoothing (times in seconds)")
    g.add_argument(
        "--smoothing",
        choices=list(MODES),
        default="ema+hysteresis",
        help="default ema+hysteresis: EMA on probabilities plus min-dwell/margin",
    )
    g.add_argument("--half-life", type=float, default=0.25, help="EMA half-life (default 0.25 s)")
    g.add_argument(
        "--min-dwell",
        type=float,
        default=0.5,
        help="a new label must lead this long to take over (default 0.5 s)",
    )
    g.add_argument(
        "--switch-margin",
        type=float,
        default=0.05,
        help="... by at least this probability (default 0.05)",
    )


def _add_model_options(
    p: argparse.ArgumentParser, default: str | None = DEFAULT_MODEL, model_help: str | None = None
) -> None:
    p.add_argument(
        "--model",
        default=default,
        help=model_help
        or f"bundle folder, Hugging Face folder or hub id (default {DEFAULT_MODEL})",
    )
    p.add_argument(
        "--device",
        choices=["auto", "cpu", "cuda"],
        default="auto",
        help="auto: CUDA when it works here, else CPU (default)",
    )
    p.add_argument(
        "--precision",
        choices=list(PRECISIONS),
        default="auto",
        help="image encoder precision. auto (default): fp16 on CUDA, bf16 (OpenVINO) on "
        "CPUs with bf16 instructions, else fp32. fp32: exact. int8 (CPU, opt-in): fastest, "
        "check its agreement with scenecls bench",
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
        from .classify_cli import run_classify

        return run_classify(args)
    if args.command == "run":
        from .run_cli import run_video

        return run_video(args)
    if args.command == "bench":
        from .bench_cli import run_bench

        return run_bench(args)
    if args.command == "serve":
        from .serve_cli import run_serve

        return run_serve(args)
    if args.command == "eval":
        from .eval_cli import run_eval

        return run_eval(args)
    if args.command == "annotate":
        from .annotate_cli import run_annotate

        return run_annotate(args)
    if args.command == "find":
        from .find_cli import run_find

        return run_find(args)
    raise UsageError(f"unknown command {args.command!r}")  # pragma: no cover


def _run_export(args: argparse.Namespace) -> int:
    from .export import export_bundle
    from .resolve import cached_bundle_path

    out = (
        args.out
        if args.out is not None
        else cached_bundle_path(args.model, args.precision, args.revision)
    )
    path = guard_of(args).call(
        export_bundle,
        args.model,
        out,
        precision=args.precision,
        revision=args.revision,
        force=args.force or args.out is None,
    )
    print(path)
    return 0


def _setup_logging(args: argparse.Namespace) -> None:
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("scenecls: %(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(level)
    log.propagate = False


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``scenecls`` console script.

    Every failure ends as one line on stderr and an exit code: 2 for a usage error, 1
    for a failure at run time, 130 when interrupted. ``--debug`` shows the traceback.
    """
    from .interrupts import Interrupted, SignalGuard

    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        args = build_parser().parse_args(argv)
        _setup_logging(args)
        with SignalGuard() as guard:
            args.guard = guard
            return run(args)
    except SceneclsError as e:
        if debug:
            raise
        if isinstance(e, Interrupted):
            print("scenecls: interrupted", file=sys.stderr)
        else:
            print(f"scenecls: error: {_one_line(e)}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        if debug:
            raise
        print("scenecls: interrupted", file=sys.stderr)
        return 130
    except OSError as e:  # a file or device failed in a way no check foresaw
        if debug:
            raise
        print(f"scenecls: error: {_one_line(e)}", file=sys.stderr)
        return 1
    except Exception as e:  # a bug: say so in one line, the traceback is one flag away
        if debug:
            raise
        print(
            f"scenecls: internal error: {type(e).__name__}: {_one_line(e)} "
            "(run again with --debug for the traceback, and please report it)",
            file=sys.stderr,
        )
        return 1


def _one_line(error: BaseException) -> str:
    """An exception's message on one line (library messages sometimes span several)."""
    text = " ".join(str(error).split())
    return text if len(text) <= 400 else text[:397] + "..."


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
