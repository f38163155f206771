"""A minute of a real RTSP camera: capture-to-label latency, steady or growing?

    python scripts/rtsp_latency.py --model BUNDLE [--video ../shared/media/car-detection.mp4]
                                   [--seconds 60] [--transport tcp|udp]

Serves VIDEO (H.264) with GStreamer's RTSP server on loopback (``tests/rtsp_server.py``,
run by /usr/bin/python3 with python3-gi and gir1.2-gst-rtsp-server-1.0), runs the
pipeline on ``rtsp://127.0.0.1:PORT/pass`` for SECONDS, and prints the image encoder's
batch-1 time, the capture-to-label latency p50/p95, the mean latency of the first and the
last third of the run, and the frames read, analysed and dropped. The bars of issue #16
(and of ``tests/test_rtsp.py``): p95 at most 2x batch-1 + 50 ms; last third within 10 %
of the first.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def measure(model: object, url: str, seconds: float, transport: str = "tcp") -> dict:
    """Run ``model`` (a loaded SceneModel) on the RTSP stream ``url`` for ``seconds``:
    the encoder's batch-1 time and the capture-to-label latencies (ms), judged by the
    bars of the module docstring."""
    from scenecls.video.pipeline import Pipeline
    from scenecls.video.sources import LiveCaptureSource

    pixels = model.preprocess([np.zeros((432, 768, 3), np.uint8)])  # type: ignore[attr-defined]
    times = []
    for _ in range(12):
        t0 = time.perf_counter()
        model.image_encoder(pixels)  # type: ignore[attr-defined]
        times.append(time.perf_counter() - t0)
    batch1 = float(np.median(times[2:])) * 1000
    stop = threading.Event()
    threading.Timer(seconds, stop.set).start()
    source = LiveCaptureSource(url, rtsp_transport=transport)
    stats = Pipeline(model, "car,road,person", source).run(stop)  # type: ignore[arg-type]
    lat = np.asarray(stats.latencies) * 1000
    third = len(lat) // 3
    result = {
        "batch1_ms": batch1,
        "bar_ms": 2 * batch1 + 50,
        "p50_ms": float(np.percentile(lat, 50)),
        "p95_ms": float(np.percentile(lat, 95)),
        "first_third_ms": float(lat[:third].mean()),
        "last_third_ms": float(lat[-third:].mean()),
        "frames_read": stats.frames_read,
        "frames_analysed": stats.frames_analysed,
        "frames_dropped": stats.frames_dropped,
    }
    result["steady"] = result["last_third_ms"] <= result["first_third_ms"] * 1.10 + 2
    result["ok"] = result["p95_ms"] <= result["bar_ms"] and result["steady"]
    return result


def main(argv: list[str] | None = None) -> int:
    import scenecls

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True)
    p.add_argument("--video", type=Path, default=REPO.parent / "shared/media/car-detection.mp4")
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--transport", choices=["tcp", "udp"], default="tcp")
    args = p.parse_args(argv)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        ["/usr/bin/python3", str(REPO / "tests/rtsp_server.py"), str(port), str(args.video)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        if (server.stdout.readline() if server.stdout else "").strip() != "ready":
            print("the RTSP server did not start", file=sys.stderr)
            return 1
        model = scenecls.load_model(args.model, device="cpu")
        r = measure(model, f"rtsp://127.0.0.1:{port}/pass", args.seconds, args.transport)
    finally:
        server.terminate()
        server.wait(10)
    print(
        f"batch-1 encoder {r['batch1_ms']:.1f} ms; p50 {r['p50_ms']:.1f} ms, p95 "
        f"{r['p95_ms']:.1f} ms (bar {r['bar_ms']:.1f}); mean first third "
        f"{r['first_third_ms']:.1f} ms, last third {r['last_third_ms']:.1f} ms; frames "
        f"read {r['frames_read']}, analysed {r['frames_analysed']}, "
        f"dropped {r['frames_dropped']}"
    )
    print("PASS" if r["ok"] else "FAIL")
    return 0 if r["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
