"""``scenecls run``: the video pipeline from the command line, with signal handling."""

from __future__ import annotations

import argparse
import logging
import sys

from .errors import InputError, UsageError

log = logging.getLogger("scenecls")


def run_video(args: argparse.Namespace) -> int:
    from .interrupts import guard_of
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
    smoothing = SmoothingConfig.from_args(args)
    labelset = resolve_labels(args.labels, args.templates)
    if args.reconnect_timeout < 0:
        raise UsageError(f"--reconnect-timeout must be 0 or more, not {args.reconnect_timeout}")
    source = open_source(
        args.source, image_fps=args.image_fps, reconnect_timeout=args.reconnect_timeout
    )
    if not source.live:  # a file that is no video fails now, before the model loads
        source.open()
        source.close()
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

    guard = guard_of(args)
    model = guard.call(load_model, args.model, device=args.device, precision=args.precision)
    guard.check()
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
        stats = pipeline.run(guard.stop)
    finally:
        progress.close()
    if not args.quiet:
        print(stats.summary(), file=sys.stderr)
    if stats.frames_read == 0 and not stats.interrupted:
        raise InputError(f"no frame could be decoded from {args.source}: is it a video?")
    if stats.frames_skipped:
        log.warning(
            "%d frame(s) of %s could not be decoded and were skipped",
            stats.frames_skipped,
            args.source,
        )
    return 130 if stats.interrupted and guard.stop.is_set() else 0
