"""Load test of the kitchen service: N cameras, each a sample video looped at a fixed
frame rate, through a real ``scenecls serve`` process; reports each camera's analysed
frames per second and capture-to-label latency from ``/api/status``, against the image
encoder's batch-1 time measured first in this process.

usage: python scripts/serve_load.py --model BUNDLE_OR_HF_DIR [--cameras 8] [--fps 10]
       [--seconds 60] [--warmup 10] [--change-threshold 2] [--max-reuse 1] [--json FILE]

Bars (issue #14): every camera at >= 0.95 x --fps, and p95 latency <= 2 x the encoder's
batch-1 time. Exit 0 when both hold, 1 when not.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from _common import REPO, videos


def encoder_batch1_ms(model_path: str, frame_source: Path) -> float:
    """Median ms of one image through the image encoder (after warm-up), as serve runs it."""
    import numpy as np

    import scenecls
    from scenecls.video.sources import sample_frames

    model = scenecls.load_model(model_path)
    pixels = model.preprocess(sample_frames(frame_source, 1))
    for _ in range(3):
        model.image_encoder(pixels)
    times = []
    for _ in range(20):
        t = time.perf_counter()
        model.image_encoder(pixels)
        times.append(time.perf_counter() - t)
    return 1000 * float(np.median(times))


def _status(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status", timeout=5) as reply:
        return json.loads(reply.read())


def run_service(args: argparse.Namespace, sources: list[Path]) -> dict[str, Any]:
    """Start ``scenecls serve`` on the cameras, wait ``warmup`` s, sample for ``seconds``."""
    cmd = [
        sys.executable, "-m", "scenecls", "serve", *map(str, sources),
        "--model", args.model, "--loop", "--fps", str(args.fps), "--port", "0",
        "--change-threshold", str(args.change_threshold), "--max-reuse", str(args.max_reuse),
    ]  # fmt: skip
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stderr=subprocess.PIPE, text=True)
    try:
        port = None
        assert proc.stderr is not None
        deadline = time.monotonic() + 300
        while port is None and time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line and proc.poll() is not None:
                sys.exit(f"scenecls serve ended: exit {proc.returncode}")
            found = re.search(r"on http://[^:]+:(\d+)/", line)
            if found:
                port = int(found.group(1))
        if port is None:
            sys.exit("scenecls serve did not start within 300 s")
        time.sleep(args.warmup)
        first = _status(port)
        samples = []
        end = time.monotonic() + args.seconds
        while time.monotonic() < end:
            time.sleep(min(5.0, max(0.1, end - time.monotonic())))
            samples.append(_status(port))
        last = samples[-1]
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
    cams = []
    for before, after in zip(first["cameras"], last["cameras"], strict=True):
        analysed = after["frames_analysed"] - before["frames_analysed"]
        encoded = after["frames_encoded"] - before["frames_encoded"]
        cams.append(
            {
                "name": after["name"],
                "source": after["source"],
                "fps": analysed / (last["uptime"] - first["uptime"]),
                "fps_min_5s": min(
                    c["fps"] for s in samples for c in s["cameras"] if c["name"] == after["name"]
                ),
                "encoded_share": encoded / analysed if analysed else None,
                "latency_p50_ms": after["latency_p50_ms"],
                "latency_p95_ms": after["latency_p95_ms"],
                "dropped": after["dropped"] - before["dropped"],
            }
        )
    return {"seconds": last["uptime"] - first["uptime"], "cameras": cams,
            "model": last["model"]}  # fmt: skip


def main() -> None:
    from scenecls.model.runtimes.cpu import cpu_info

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="bundle or Hugging Face folder")
    ap.add_argument("--cameras", type=int, default=8)
    ap.add_argument("--fps", type=float, default=10.0, help="frames a second per camera")
    ap.add_argument("--seconds", type=float, default=60.0, help="measured time")
    ap.add_argument("--warmup", type=float, default=10.0)
    ap.add_argument("--change-threshold", type=float, default=2.0)
    ap.add_argument("--max-reuse", type=float, default=1.0)
    ap.add_argument("--json", type=Path, help="write the figures here")
    args = ap.parse_args()
    media = videos()
    sources = [media[i % len(media)] for i in range(args.cameras)]
    batch1 = encoder_batch1_ms(args.model, media[0])
    result = run_service(args, sources)
    bar_fps = 0.95 * args.fps
    bar_latency = 2 * batch1
    ok = all(
        c["fps"] >= bar_fps and (c["latency_p95_ms"] or 1e9) <= bar_latency
        for c in result["cameras"]
    )
    report = {
        "machine": cpu_info().describe(),
        "cameras": args.cameras,
        "fps_per_camera": args.fps,
        "gate": {"change_threshold": args.change_threshold, "max_reuse": args.max_reuse},
        "encoder_batch1_ms": batch1,
        "bars": {"fps": bar_fps, "latency_p95_ms": bar_latency},
        "meets_bars": ok,
        **result,
    }
    print(f"machine {report['machine']}")
    print(f"encoder batch 1: {batch1:.1f} ms; bars: >= {bar_fps:.1f} fps per camera, "
          f"p95 <= {bar_latency:.1f} ms")  # fmt: skip
    print(f"{'camera':8s} {'source':34s} {'fps':>6s} {'min 5s':>6s} {'encoded':>7s} "
          f"{'p50 ms':>7s} {'p95 ms':>7s} {'dropped':>7s}")  # fmt: skip
    for c in result["cameras"]:
        print(
            f"{c['name']:8s} {Path(c['source']).name[:34]:34s} {c['fps']:6.2f} "
            f"{c['fps_min_5s']:6.2f} {c['encoded_share'] or 0:7.1%} "
            f"{c['latency_p50_ms'] or 0:7.1f} {c['latency_p95_ms'] or 0:7.1f} {c['dropped']:7d}"
        )
    print("meets the bars" if ok else "below a bar")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
