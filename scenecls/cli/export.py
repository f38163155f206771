"""``scenecls export``: a Hugging Face CLIP checkpoint to a bundle folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..interrupts import guard_of
from .options import DEFAULT_MODEL, Example, examples_epilog

EXAMPLES: list[Example] = [
    Example(
        "download and export the default model into the model cache now, while online",
        "scenecls export",
    ),
    Example(
        "a bundle folder to copy to a machine offline (then: --model models/clip-b32)",
        "scenecls export --out models/clip-b32",
    ),
]


def add_export_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    exp = sub.add_parser(
        "export",
        parents=[common],
        help="export a CLIP checkpoint to an ONNX bundle",
        description="Export a Hugging Face CLIP checkpoint (hub id or local folder) "
        "to a scenecls bundle folder. Needs torch and transformers.",
        epilog=examples_epilog(EXAMPLES),
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


def run_export(args: argparse.Namespace) -> int:
    from ..model.export import export_bundle
    from ..model.resolve import cached_bundle_path

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
