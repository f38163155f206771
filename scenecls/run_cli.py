"""``scenecls run``: the video pipeline from the command line, with signal handling."""

from __future__ import annotations

import argparse
import logging
import sys

from .errors import InputError, UsageError

log = logging.getLogger("scenecls")


def run_video(args: argparse.Namespace) -> int:
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
    if stats.frames_read == 0 and not stats.interrupted:
        raise InputError(f"no frame could be decoded from {args.source}: is it a video?")
    return 130 if stats.interrupted and stop.is_set() else 0
