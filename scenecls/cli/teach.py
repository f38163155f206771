"""``scenecls teach``: labels learned from examples, with their accuracy shown first."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from ..errors import UsageError
from .options import Example, add_model_options, add_region_options, examples_epilog

log = logging.getLogger("scenecls")


EXAMPLES: list[Example] = [
    Example(
        "learn labels from folders of example pictures (examples/cars/*.jpg, ...)",
        "scenecls teach examples/ --out objects.npz",
    ),
    Example(
        "from marked moments of a video (label,start,end rows), with an HTML report",
        "scenecls teach video.mp4=moments.csv --out lot.npz --report lot-report",
    ),
    Example(
        "pick distinct moments of recordings as pictures, to sort into label folders",
        "scenecls teach --suggest videos/cars.mp4 videos/people.mp4 --count 8 --out to-sort",
    ),
]


def add_teach_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    from ..teaching.api import CLASSIFIERS
    from ..teaching.examples import DEFAULT_FPS

    p = sub.add_parser(
        "teach",
        parents=[common],
        help="learn labels from example pictures or marked moments, and show how right "
        "they are before use",
        usage="%(prog)s EXAMPLES... --out SET.npz [options]\n"
        "       %(prog)s --suggest VIDEO|EMBEDDINGS... --count N --out DIR",
        description="Learn a taught label set from EXAMPLES, in about a second: a folder "
        "with one sub-folder of pictures per label (DIR/margherita/*.jpg), VIDEO=MOMENTS.csv "
        "or EMBEDDINGS=MOMENTS.csv (label,start,end per line, as eval --truth reads; "
        "EMBEDDINGS: a store of run --embeddings, or a .npz of earlier versions). "
        "Prints the cross-validated accuracy beside text-only zero-shot's, and writes SET.npz "
        "for --labels of run, annotate, serve, relabel, eval, classify and bench. With "
        "--suggest: write the most distinct moments of videos as pictures to sort into "
        "label folders.",
        epilog=examples_epilog(EXAMPLES),
    )
    p.add_argument("examples", nargs="*", metavar="EXAMPLES", help="where the examples are")
    p.add_argument(
        "--out",
        type=Path,
        required=True,
        metavar="SET.npz|DIR",
        help="the taught label set to write (with --suggest: the folder for the pictures)",
    )
    add_model_options(p)
    p.add_argument(
        "--labels",
        help="text for the labels, and labels with text only: inline 'a,b', a preset or a "
        "TOML file (name = [] there: examples only). Labels only the examples name use "
        "their name as text (see --no-name-text)",
    )
    p.add_argument("--templates", help="prompt templates for the label texts (as run takes)")
    p.add_argument(
        "--no-name-text",
        action="store_true",
        help="labels only the examples name get no text (their names mean nothing to CLIP)",
    )
    add_region_options(p)
    p.add_argument(
        "--example-fps",
        type=float,
        default=DEFAULT_FPS,
        metavar="N",
        help=f"frames per second of a moment taken as examples (default {DEFAULT_FPS:g})",
    )
    p.add_argument(
        "--classifier",
        choices=list(CLASSIFIERS),
        default="auto",
        help="auto (default): the best by cross-validation of class means, an example "
        "cache (Tip-Adapter) and logistic regression; or force one",
    )
    p.add_argument(
        "--unknown-quantile",
        type=float,
        default=0.01,
        metavar="Q",
        help="frames farther from every example than all but Q of the held-out examples "
        "are 'unknown' (default 0.01; 0: never; needs examples for every label)",
    )
    p.add_argument(
        "--report", type=Path, metavar="DIR", help="also write an HTML report to DIR/index.html"
    )
    p.add_argument(
        "--suggest",
        nargs="+",
        metavar="VIDEO|EMBEDDINGS",
        help="instead of teaching: write the --count most distinct moments of these videos "
        "(or embeddings stores: run --embeddings; .npz of earlier versions) as pictures "
        "into --out DIR/unsorted/",
    )
    p.add_argument(
        "--count", type=int, default=24, help="with --suggest: how many pictures (default 24)"
    )


def run_teach(args: argparse.Namespace) -> int:
    from ..interrupts import guard_of
    from ..model.scene_model import load_model

    guard = guard_of(args)
    if args.suggest:
        return _suggest(args, guard)
    if not args.examples:
        raise UsageError(
            "give EXAMPLES: a folder of label folders, VIDEO=MOMENTS.csv or "
            "EMBEDDINGS=MOMENTS.csv (see 'scenecls teach --help')"
        )
    from ..model.labels import label_texts
    from ..model.taught import SUFFIX, teach_embeddings
    from ..teaching.examples import gather, parse_inputs
    from ..teaching.summary import format_report
    from ..video.sinks import check_writable

    out: Path = args.out
    if out.suffix != SUFFIX:
        raise UsageError(f"--out {out}: a taught label set is a {SUFFIX} file (e.g. pizza.npz)")
    check_writable(out, "--out")
    if args.report is not None and args.report.exists() and not args.report.is_dir():
        raise UsageError(f"--report {args.report} is a file: give a folder")
    if not 0 <= args.unknown_quantile < 0.5:
        raise UsageError(f"--unknown-quantile must be in [0, 0.5), not {args.unknown_quantile}")
    if args.example_fps <= 0:
        raise UsageError(f"--example-fps must be more than 0, not {args.example_fps}")
    texts, templates = [], None
    if args.labels is not None:
        texts, templates = label_texts(args.labels, args.templates)
    elif args.templates is not None:
        _, templates = label_texts("x", args.templates)
    inputs = parse_inputs(args.examples)
    model = guard.call(load_model, args.model, device=args.device, precision=args.precision)
    guard.check()
    examples = gather(model, inputs, region=args.region, fps=args.example_fps, stop=guard.stop)
    guard.check()
    taught = teach_embeddings(
        model,
        examples,
        texts,
        templates=templates,
        text_from_names=not args.no_name_text,
        only=None if args.classifier == "auto" else args.classifier,
        unknown_quantile=args.unknown_quantile,
    )
    guard.check()
    print(format_report(taught))
    for line in taught.report["warnings"]:
        print(f"warning: {line}", file=sys.stderr)
    if args.report is not None:
        from ..teaching.report_html import write_report

        page = write_report(args.report, taught)
        print(f"report: {page}", file=sys.stderr)
    taught.save(out)
    print(f"wrote {out}: use it with --labels {out}", file=sys.stderr)
    return 0


def _suggest(args: argparse.Namespace, guard: object) -> int:
    from ..model.scene_model import load_model
    from ..teaching.suggest import suggest

    if args.examples:
        raise UsageError("--suggest takes its videos after it; give no EXAMPLES with it")
    if args.count < 1:
        raise UsageError(f"--count must be at least 1, not {args.count}")
    if args.out.exists() and not args.out.is_dir():
        raise UsageError(f"--out {args.out} is a file: with --suggest give a folder")
    model = guard.call(  # type: ignore[attr-defined]
        load_model, args.model, device=args.device, precision=args.precision
    )
    paths = suggest(
        model,
        args.suggest,
        args.count,
        args.out,
        region=args.region,
        stop=guard.stop,  # type: ignore[attr-defined]
    )
    for p in paths:
        print(p)
    print(
        f"{len(paths)} pictures in {args.out / 'unsorted'}: sort them into {args.out}/<label>/ "
        f"folders, then: scenecls teach {args.out} --out SET.npz",
        file=sys.stderr,
    )
    return 0
