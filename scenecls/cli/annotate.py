"""``scenecls annotate``: a whole video archive, resumable, on local processes or Ray."""

from __future__ import annotations

import argparse
import logging
import sys

from ..errors import UsageError
from ..interrupts import guard_of
from .options import Example, examples_epilog, labels_of

log = logging.getLogger("scenecls")


EXAMPLES: list[Example] = [
    Example(
        "a folder of recordings into archive/: all outputs, embeddings included",
        'scenecls annotate videos/ --out archive --labels "cars,bottles,people" --outputs all',
    ),
    Example(
        "again after a stop or with new recordings: videos already done are skipped",
        'scenecls annotate videos/ video.mp4 --out archive --labels "cars,bottles,people" '
        "--outputs all",
    ),
    Example(
        "recordings on shared storage, on a Ray cluster (quote the pattern)",
        "scenecls annotate '/mnt/cameras/**/*.mp4' --out /mnt/archive --engine ray "
        "--ray-address auto",
        not_run="needs a Ray cluster",
    ),
]


def add_annotate_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    from ..archive.options import DEFAULT_OUTPUTS, OUTPUT_KINDS
    from .options import (
        add_embeddings_options,
        add_gate_options,
        add_label_options,
        add_model_options,
        add_output_folder_options,
        add_region_options,
        add_smoothing_options,
    )

    p = sub.add_parser(
        "annotate",
        parents=[common],
        help="annotate many videos (files, folders, patterns) into a folder, resumably",
        description="Annotate every video of INPUTS into DIR, mirroring the input folders, "
        "and record each finished video in DIR/manifest.jsonl. Run it again to resume: "
        "videos already done with the same options are skipped, failed ones are retried. "
        "Exit code 0: all done; 1: some video failed (listed at the end and in the "
        "manifest); 130: stopped.",
        epilog=examples_epilog(EXAMPLES),
    )
    p.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help="video files, folders (searched recursively for video files) or glob "
        "patterns (quote them; ** matches any depth)",
    )
    add_output_folder_options(p, OUTPUT_KINDS, DEFAULT_OUTPUTS)
    p.add_argument(
        "--workers",
        type=int,
        help="worker processes (local: default one per two CPU cores, fewer if memory is short; "
        "ray: default one per CPU of the cluster, or four per GPU)",
    )
    p.add_argument(
        "--engine",
        choices=["local", "ray"],
        default="local",
        help="local: a process pool on this machine (default); ray: Ray actors "
        "(pip install 'scenecls[ray]')",
    )
    p.add_argument(
        "--ray-address",
        metavar="ADDR",
        help="Ray cluster to join: HOST:6379, auto, or ray://HOST:10001 (default: start "
        "Ray on this machine)",
    )
    add_model_options(p)
    add_label_options(p)
    g = p.add_argument_group("sampling")
    g.add_argument(
        "--fps", type=float, help="analyse at most N frames per second of video (default: all)"
    )
    g.add_argument("--batch", type=int, default=16, help="frames per encoder call (default 16)")
    add_region_options(p)
    add_gate_options(p)
    add_smoothing_options(p)
    add_embeddings_options(p, run=False)
    p.add_argument(
        "--top-k", type=int, default=3, help="bars in the annotated video's overlay (default 3)"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run_annotate(args: argparse.Namespace) -> int:
    from ..archive import ArchiveOptions, annotate_archive
    from ..archive.options import parse_outputs
    from ..video.gate import GateConfig
    from ..video.smoothing import SmoothingConfig

    if args.top_k < 1:
        raise UsageError(f"--top-k must be at least 1, not {args.top_k}")
    smoothing = SmoothingConfig.from_args(args)
    options = ArchiveOptions(
        out_dir=args.out,
        model=str(args.model),
        labels=labels_of(args),
        smoothing=smoothing,
        outputs=parse_outputs(args.outputs),
        device=args.device,
        precision=args.precision,
        fps=args.fps,
        batch=args.batch,
        gate=GateConfig.from_args(args),
        embeddings_dtype=args.embeddings_dtype,
        flush_seconds=args.flush_seconds,
        region=args.region,
    )
    guard = guard_of(args)
    # workers finish their current batch and the engine shuts down before the exit
    guard.grace = max(guard.grace, 5.0)
    summary = annotate_archive(
        args.inputs,
        options,
        engine=args.engine,
        workers=args.workers,
        ray_address=args.ray_address,
        guard=guard,
        progress=not args.no_progress,
        log_level=log.getEffectiveLevel(),
    )
    if not args.quiet:
        print("\n".join(summary.lines()), file=sys.stderr)
    return summary.exit_code
