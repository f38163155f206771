"""``scenecls bench``: measure the pipeline (and, with ``--baseline``, the usual HF loop)."""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

from ..errors import NetworkError, UsageError
from ..interrupts import guard_of
from ..region import region_crop
from ..video.sinks import check_writable
from .options import (
    DEFAULT_MODEL,
    Example,
    add_gate_options,
    add_model_options,
    add_region_options,
    check_region,
    examples_epilog,
    labels_of,
)

log = logging.getLogger("scenecls")


EXAMPLES: list[Example] = [
    Example(
        "how fast this machine labels a video, gated and every frame; live latency",
        "scenecls bench --source video.mp4 --live-seconds 2",
    ),
    Example(
        "the encoder in each precision, and its agreement with fp32, into bench.json",
        "scenecls bench --source videos/ --live-seconds 0 --precisions fp32,int8 --json bench.json",
    ),
    Example(
        "against the usual Hugging Face loop (CLIPProcessor + CLIPModel, PyTorch)",
        "scenecls bench --source video.mp4 --live-seconds 0 --baseline",
    ),
]


def add_bench_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    bench = sub.add_parser(
        "bench",
        parents=[common],
        help="measure speed: end to end (gated and every frame), encoder, live latency",
        description="Annotate videos with JSONL and segment outputs, once with the change "
        "gate and once encoding every frame, and report frames per second, the share of "
        "frames encoded and the gated run's agreement with the every-frame run; then "
        "encoder throughput and live latency. --baseline also times the Hugging Face "
        "CLIPProcessor + CLIPModel loop on the same frames.",
        epilog=examples_epilog(EXAMPLES),
    )
    add_model_options(
        bench,
        default=None,
        model_help="bundle, Hugging Face folder or hub id (default: "
        f"{DEFAULT_MODEL}, or the random-weight reference model offline)",
    )
    bench.set_defaults(default_model=DEFAULT_MODEL)
    bench.add_argument(
        "--source",
        type=Path,
        action="append",
        help="video, or folder of videos, to annotate; may be given several times "
        "(default: the videos of ../shared/media when present)",
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
    add_region_options(bench)
    add_gate_options(bench)


REF_MODEL = Path("models") / "ref-clip-vit-b32-random"
SHARED_TOOL = Path("..") / "shared" / "tools" / "make_ref_model.py"
SHARED_MEDIA = Path("..") / "shared" / "media"


def _sources(given: list[Path] | None) -> list[Path]:
    """The videos to measure: each ``--source`` file, the videos inside each folder
    (sorted, recursively), or by default those of ../shared/media."""
    from ..archive.inputs import VIDEO_EXTENSIONS

    if not given:
        if not SHARED_MEDIA.is_dir():
            raise UsageError("give videos to measure with --source VIDEO_OR_FOLDER")
        given = [SHARED_MEDIA]
    found: list[Path] = []
    for path in given:
        if path.is_dir():
            videos = sorted(
                p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS
            )
            if not videos:
                raise UsageError(f"--source {path}: no videos in this folder")
            found += videos
        elif path.is_file():
            found.append(path)
        else:
            raise UsageError(f"--source {path} does not exist: give a video file or a folder")
    return found


def _model_or_reference(args: argparse.Namespace) -> tuple[str, bool]:
    """The model to measure; without real weights, the full-size random reference model
    (built once with shared/tools/make_ref_model.py). Returns (model, random weights?)."""
    from ..model.resolve import resolve_model
    from ..model.runtimes.select import bundle_precision_for

    if args.model is not None:
        return args.model, False
    try:
        resolve_model(
            args.default_model, precision=bundle_precision_for(args.precision, args.device)
        )
        return args.default_model, False
    except NetworkError:
        pass
    if not (REF_MODEL / "model.safetensors").is_file():
        if not SHARED_TOOL.is_file():
            raise UsageError(
                "real weights are not available offline and no reference model was found: "
                "pass --model (a bundle or Hugging Face folder)"
            )
        log.warning(
            "real weights absent: building the full-size random-weight reference model "
            "in %s (about 600 MB, once)",
            REF_MODEL,
        )
        subprocess.run(
            [sys.executable, str(SHARED_TOOL), str(REF_MODEL)],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    log.warning(
        "real weights absent: measuring the random-weight model in %s; speed is "
        "the real architecture's, accuracy is meaningless",
        REF_MODEL,
    )
    return str(REF_MODEL), True


def _fp32_reference(model: Any, model_name: str) -> Any:
    """The exact path to compare with: the fp32 image tower on ONNX Runtime on the CPU.
    For an fp16 bundle, the fp32 bundle of the same checkpoint when one can be had."""
    from ..errors import SceneclsError
    from ..model.bundle import load_bundle
    from ..model.resolve import resolve_model
    from ..model.runtimes.onnx import OnnxImageEncoder

    bundle = model.bundle
    if bundle.precision != "fp32":
        if (Path(model_name) / "bundle.json").is_file():
            log.warning("no fp32 bundle to compare the fp16 one with: fidelity not measured")
            return None
        try:
            bundle = load_bundle(resolve_model(model_name, precision="fp32"))
        except SceneclsError as e:
            log.warning("fidelity not measured: no fp32 bundle of %s: %s", model_name, e)
            return None
    return OnnxImageEncoder(bundle, "cpu")


def run_bench(args: argparse.Namespace) -> int:
    import json

    from ..bench import (
        bench_baseline,
        bench_encoder,
        bench_fidelity,
        bench_live,
        bench_precisions,
        bench_sources,
        format_report,
    )
    from ..model.runtimes.base import PRECISIONS
    from ..model.runtimes.cpu import cpu_info
    from ..model.scene_model import load_model
    from ..video.gate import GateConfig
    from ..video.sources import sample_frames

    if args.batch < 1:
        raise UsageError(f"--batch must be at least 1, not {args.batch}")
    precisions = [p.strip() for p in args.precisions.split(",") if p.strip()]
    unknown = [p for p in precisions if p not in PRECISIONS or p == "auto"]
    if unknown:
        raise UsageError(
            f"--precisions: unknown {', '.join(unknown)}; choose from fp32, fp16, bf16, int8"
        )
    if args.fidelity_frames < 1:
        raise UsageError(f"--fidelity-frames must be at least 1, not {args.fidelity_frames}")
    if args.json:
        check_writable(args.json, "--json")
    sources = _sources(args.source)
    source = sources[0]
    if args.region is not None:  # every video, before anything is measured
        from ..video.sources import VideoFileSource

        for path in sources:
            video = VideoFileSource(path)
            video.open()
            video.close()
            check_region(args.region, video.size, str(path))
    gate = GateConfig.from_args(args)
    labelset = labels_of(args)
    model_name, random_weights = _model_or_reference(args)
    hf = args.hf_model or model_name
    if args.baseline and (Path(hf) / "bundle.json").is_file():
        raise UsageError("--baseline needs the Hugging Face checkpoint: pass --hf-model DIR")
    model = guard_of(args).call(
        load_model, model_name, device=args.device, precision=args.precision, batch_size=args.batch
    )
    model.scorer(labelset)  # a taught set of another model fails here
    frames = sample_frames(source, max(8, args.baseline_frames))
    # what the encoder sees of them (the live run crops its frames itself)
    looks = [region_crop(args.region, f, str(source)) for f in frames]
    machine = cpu_info()
    report: dict[str, Any] = {
        "model": model_name,
        "random_weights": random_weights,
        "device": model.device,
        "runtime": model.runtime,
        "precision": model.precision,
        "bundle_precision": model.bundle.precision,
        "encoder_description": model.encoder_description,
        "cpu": {**machine.to_dict(), "describe": machine.describe()},
        "source": [str(p) for p in sources],
        "batch": args.batch,
        "region": None if args.region is None else args.region.to_json(),
    }
    report["sources"] = bench_sources(model, sources, labelset, args.batch, gate, args.region)
    report["encoder"] = bench_encoder(model, looks[0], args.batch)
    if args.live_seconds > 0:
        report["live"] = bench_live(
            model, frames[:8], labelset, args.live_seconds, region=args.region
        )
    # Agreement with fp32 after the timed runs: other sessions' idle threads stay out of them.
    fidelity_frames = sample_frames(source, args.fidelity_frames)
    pixels = model.preprocess([region_crop(args.region, f, str(source)) for f in fidelity_frames])
    reference = _fp32_reference(model, model_name)
    choice = getattr(model.image_encoder, "choice", None)
    if choice is not None:
        report["runtime_trial"] = {"chosen": choice.name, "cached": choice.cached, **choice.trials}
    if reference is not None:
        report["fidelity"] = bench_fidelity(model.image_encoder, reference, pixels)
    if precisions:
        report["precisions"] = bench_precisions(model, reference, pixels, precisions, args.batch)
    del reference
    if args.baseline:
        report["baseline"] = bench_baseline(hf, looks[: args.baseline_frames], labelset.names)
    print(format_report(report))
    if args.json:
        from ..video.sinks import write_text_atomic

        write_text_atomic(args.json, json.dumps(report, indent=2) + "\n")
    return 0
