"""``scenecls relabel``: new labels for stored embeddings, without decoding video."""

from __future__ import annotations

import argparse
import sys

from ..errors import InputError


def add_relabel_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    from ..archive.relabel import DEFAULT_RELABEL_OUTPUTS, RELABEL_KINDS
    from .options import add_label_options, add_output_folder_options, add_smoothing_options

    p = sub.add_parser(
        "relabel",
        parents=[common],
        help="label stored embeddings again with other labels, without decoding video",
        description="Write segments, captions and per-frame JSON Lines for the videos "
        "whose embeddings PATH holds (scenecls run --embeddings files, or scenecls "
        "annotate folders with the embeddings output), with new labels and smoothing, "
        "named and laid out as scenecls annotate names them, into DIR.",
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="embeddings files or annotate folders")
    add_output_folder_options(p, RELABEL_KINDS, DEFAULT_RELABEL_OUTPUTS)
    p.add_argument(
        "--model",
        help="the model that wrote the embeddings (default: the one recorded in them)",
    )
    add_label_options(p)
    add_smoothing_options(p)


def run_relabel(args: argparse.Namespace) -> int:
    from ..archive.relabel import parse_relabel_outputs, relabel
    from ..archive.stored import bundle_for, collect
    from ..model.scene_model import TextModel, load_labels
    from ..video.smoothing import SmoothingConfig

    outputs = parse_relabel_outputs(args.outputs)
    smoothing = SmoothingConfig.from_args(args)
    labelset = load_labels(args.labels, args.templates)
    videos, problems = collect(args.paths)
    if not videos:
        raise InputError("no usable embeddings: " + "; ".join(p.line for p in problems))
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
