"""``scenecls relabel``: new labels for stored embeddings, without decoding video."""

from __future__ import annotations

import argparse
import sys

from ..errors import InputError, UsageError
from .options import Example, examples_epilog

EXAMPLES: list[Example] = [
    Example(
        "label the archive again with other labels, without decoding the videos",
        'scenecls relabel archive --out relabelled --labels "road,factory,crowd"',
    ),
    Example(
        "steadier segments: a new label must lead for 2 seconds to take over",
        'scenecls relabel archive --out steady --labels "road,factory,crowd" --min-dwell 2',
    ),
]


def add_relabel_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    from ..archive.relabel import DEFAULT_RELABEL_OUTPUTS, RELABEL_KINDS
    from .options import add_label_options, add_output_folder_options, add_smoothing_options

    p = sub.add_parser(
        "relabel",
        parents=[common],
        help="label stored embeddings again with other labels, without decoding video",
        description="Write segments, captions and per-frame JSON Lines for the videos "
        "whose embeddings PATH holds (embeddings stores of scenecls run --embeddings, "
        ".npz files of earlier versions, scenecls annotate folders with the embeddings "
        "output, or the --data folder of scenecls serve), with new labels and smoothing, "
        "named and laid out as scenecls annotate names them, into DIR.",
        epilog=examples_epilog(EXAMPLES),
    )
    p.add_argument(
        "paths",
        nargs="+",
        metavar="PATH",
        help="embeddings stores (run --embeddings; .npz of earlier versions), annotate "
        "folders or serve data folders",
    )
    add_output_folder_options(p, RELABEL_KINDS, DEFAULT_RELABEL_OUTPUTS)
    p.add_argument(
        "--model",
        help="the model that wrote the embeddings (default: the one recorded in them)",
    )
    add_label_options(p)
    add_smoothing_options(p)


def run_relabel(args: argparse.Namespace) -> int:
    from ..archive.relabel import DEFAULT_RELABEL_OUTPUTS, parse_relabel_outputs, relabel
    from ..archive.stored import bundle_for, collect
    from ..model.scene_model import TextModel, load_labels
    from ..video.smoothing import SmoothingConfig

    outputs = parse_relabel_outputs(args.outputs)
    smoothing = SmoothingConfig.from_args(args)
    labelset = load_labels(args.labels, args.templates)
    videos, problems = collect(args.paths)
    if not videos:
        raise InputError("no usable embeddings: " + "; ".join(p.line for p in problems))
    history = [v for v in videos if v.meta.get("clock") == "unix"]
    captions = [k for k in outputs if k in ("srt", "vtt")]
    if history and captions:
        if args.outputs == ",".join(DEFAULT_RELABEL_OUTPUTS):  # not asked for: left out
            outputs = tuple(k for k in outputs if k not in captions)
        else:
            raise UsageError(
                f"{history[0].path} is a service's history, timed in UTC: captions "
                f"({', '.join(captions)}) would start in 1970; give --outputs "
                "jsonl,segments,csv"
            )
    bundle = bundle_for(videos, args.model)
    summary = relabel(
        videos,
        problems,
        TextModel(bundle),
        labelset,
        smoothing,
        args.out,
        outputs,
        stop=args.guard.stop,
    )
    if not args.quiet:
        print("\n".join(summary.lines()), file=sys.stderr)
    return summary.exit_code
