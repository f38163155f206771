"""``scenecls run``: the video pipeline from the command line, with signal handling."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from ..errors import InputError, UsageError
from ..redact import redact_url
from .options import (
    Example,
    add_embeddings_options,
    add_gate_options,
    add_label_options,
    add_model_options,
    add_region_options,
    add_smoothing_options,
    check_region,
    examples_epilog,
    labels_of,
)

log = logging.getLogger("scenecls")


EXAMPLES: list[Example] = [
    Example(
        "watch the webcam live in a window (q quits)",
        'scenecls run 0 --labels "desk,kitchen,living room" --show',
        not_run="needs a webcam and a display",
    ),
    Example(
        "label a video, and write the annotated copy and its segments",
        'scenecls run video.mp4 --labels "street,parking lot" --out annotated.mp4 '
        "--segments segments.csv",
    ),
    Example(
        "5 frames a second: captions, and embeddings for search, relabel and teach",
        'scenecls run video.mp4 --labels "street,parking lot" --fps 5 --srt video.srt '
        "--embeddings video.embeddings",
    ),
]


def add_run_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    run = sub.add_parser(
        "run",
        parents=[common],
        help="classify a video, stream, webcam or image folder",
        description="Classify every frame of SOURCE, smooth the labels into "
        "segments, and write or show the results.",
        epilog=examples_epilog(EXAMPLES),
    )
    run.add_argument(
        "source",
        metavar="SOURCE",
        help="video file, image folder, webcam index (0) or stream URL (rtsp://, http(s)://)",
    )
    add_model_options(run)
    add_label_options(run)
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
        "--rtsp-transport",
        choices=["tcp", "udp"],
        help="rtsp:// streams: tcp (through firewalls and NAT) or udp (FFmpeg's choice when "
        "not given)",
    )
    g.add_argument(
        "--reconnect-timeout",
        type=float,
        default=30.0,
        metavar="S",
        help="webcams and streams: keep retrying one that cannot be opened or drops for "
        "up to S seconds, with growing pauses (default 30; 0: fail at once)",
    )
    add_region_options(run)
    add_gate_options(run)
    add_smoothing_options(run)
    g = run.add_argument_group("outputs (any combination)")
    g.add_argument(
        "--show",
        action="store_true",
        help="watch in a window: files play at their own speed (see --speed); keys: space "
        "pauses, q or Esc quits, s saves a snapshot, f toggles full screen",
    )
    g.add_argument(
        "--speed",
        metavar="X|max",
        help="with --show on a file: play at X times the video's speed (default 1), or max: "
        "as fast as the analysis goes; the outputs are the same at any speed",
    )
    g.add_argument("--out", type=Path, help="annotated video (.mp4, .avi, .mkv, .mov)")
    g.add_argument(
        "--segment-minutes",
        type=float,
        metavar="M",
        help="--out in files of M minutes, OUT-YYYYmmdd-HHMMSS.mp4 beside OUT, each "
        "complete when the next starts (for live sources that run for days)",
    )
    g.add_argument(
        "--keep-hours",
        type=float,
        metavar="H",
        help="with --segment-minutes: delete those files when older than H hours",
    )
    g.add_argument("--jsonl", type=Path, help="one JSON line per analysed frame")
    g.add_argument("--segments", type=Path, help="segments as .json or .csv")
    g.add_argument("--srt", type=Path, help="captions, one per segment (SubRip)")
    g.add_argument("--vtt", type=Path, help="captions, one per segment (WebVTT)")
    add_embeddings_options(g)
    g.add_argument("--top-k", type=int, default=3, help="bars in the overlay (default 3)")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")


def run_video(args: argparse.Namespace) -> int:
    from ..interrupts import guard_of
    from ..model.scene_model import load_model
    from ..video.gate import GateConfig
    from ..video.pipeline import Pipeline, PipelineConfig
    from ..video.playback import parse_speed
    from ..video.progress import Progress
    from ..video.sinks import (
        CaptionSink,
        EmbeddingsSink,
        JsonlSink,
        RecordingSink,
        SegmentsSink,
        VideoSink,
        WindowSink,
        run_with_window,
    )
    from ..video.sinks.window import window_title
    from ..video.smoothing import Smoother, SmoothingConfig
    from ..video.sources import open_source

    if args.batch < 1:
        raise UsageError(f"--batch must be at least 1, not {args.batch}")
    if args.fps is not None and args.fps <= 0:
        raise UsageError(f"--fps must be more than 0, not {args.fps}")
    if args.top_k < 1:
        raise UsageError(f"--top-k must be at least 1, not {args.top_k}")
    smoothing = SmoothingConfig.from_args(args)
    gate = GateConfig.from_args(args)
    labelset = labels_of(args)
    if args.reconnect_timeout < 0:
        raise UsageError(f"--reconnect-timeout must be 0 or more, not {args.reconnect_timeout}")
    source = open_source(
        args.source,
        image_fps=args.image_fps,
        reconnect_timeout=args.reconnect_timeout,
        rtsp_transport=args.rtsp_transport,
    )
    if not source.live:  # a file that is no video fails now, before the model loads
        source.open()
        source.close()
        check_region(args.region, source.size, redact_url(args.source))
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
    if args.embeddings:
        sinks.append(
            EmbeddingsSink(args.embeddings, args.embeddings_dtype, flush_seconds=args.flush_seconds)
        )
    if args.keep_hours is not None and args.segment_minutes is None:
        raise UsageError("--keep-hours needs --segment-minutes (and --out)")
    if args.segment_minutes is not None:
        if not args.out:
            raise UsageError("--segment-minutes needs --out: where the files go")
        if args.out.suffix.lower() != ".mp4":
            raise UsageError(f"--out {args.out}: with --segment-minutes, name an .mp4")
        sinks.append(
            RecordingSink(
                args.out.parent if str(args.out.parent) else Path("."),
                prefix=args.out.stem,
                segment=args.segment_minutes * 60,
                keep=None if args.keep_hours is None else args.keep_hours * 3600,
            )
        )
    elif args.out:
        sinks.append(VideoSink(args.out))
        if source.live:
            log.warning(
                "--out on a live source: one file that grows (about 120 MB of memory a day "
                "at 30 fps) and plays only once the run ends; --segment-minutes M rotates it"
            )
    window = None
    if args.speed is not None and not args.show:
        raise UsageError("--speed sets how fast --show plays a file: add --show")
    if args.show:
        if args.speed is not None and source.live:
            raise UsageError(
                f"--speed: {redact_url(args.source)} is live and shows each frame as it "
                "comes: drop --speed"
            )
        written = [args.out, args.jsonl, args.segments, args.srt, args.vtt, args.embeddings]
        first = next((p for p in written if p is not None), None)
        window = WindowSink(
            window_title(args.source),
            speed=parse_speed(args.speed) if args.speed is not None else 1.0,
            snapshot_dir=first.parent if first is not None else None,
        )
        sinks.append(window)
    if not sinks:
        log.warning(
            "no output chosen: add --show, --out, --jsonl, --segments, --srt, --vtt or --embeddings"
        )

    guard = guard_of(args)
    model = guard.call(load_model, args.model, device=args.device, precision=args.precision)
    model.scorer(labelset)  # a taught set of another model fails here, nothing written
    guard.check()
    progress = Progress(enabled=not args.no_progress and not source.live)
    pipeline = Pipeline(
        model,
        labelset,
        source,
        sinks,
        smoother=Smoother(smoothing),
        config=PipelineConfig(
            batch_size=args.batch,
            analysis_fps=args.fps,
            overlay_top_k=args.top_k,
            gate=gate,
            region=args.region,
        ),
        on_progress=progress.update,
    )
    try:
        if window is not None:
            stats = run_with_window(pipeline.run, window, guard.stop, source.size)
        else:
            stats = pipeline.run(guard.stop)
    finally:
        progress.close()
    if not args.quiet:
        print(stats.summary(), file=sys.stderr)
        if window is not None:
            print(window.summary(), file=sys.stderr)
    if stats.frames_read == 0 and not stats.interrupted:
        raise InputError(
            f"no frame could be decoded from {redact_url(args.source)}: is it a video?"
        )
    if stats.frames_skipped:
        log.warning(
            "%d frame(s) of %s could not be decoded and were skipped",
            stats.frames_skipped,
            redact_url(args.source),
        )
    return 130 if stats.interrupted and guard.stop.is_set() else 0
