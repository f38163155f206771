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


def main(argv: list[str] | None = None) -> int:
    import scenecls
    from scenecls.video.pipeline import Pipeline
    from scenecls.video.sources import LiveCaptureSource

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
        pixels = model.preprocess([np.zeros((432, 768, 3), np.uint8)])
        times = []
        for _ in range(12):
            t0 = time.perf_counter()
            model.image_encoder(pixels)
            times.append(time.perf_counter() - t0)
        batch1 = float(np.median(times[2:]))
        stop = threading.Event()
        threading.Timer(args.seconds, stop.set).start()
        source = LiveCaptureSource(f"rtsp://127.0.0.1:{port}/pass", rtsp_transport=args.transport)
        stats = Pipeline(model, "car,road,person", source).run(stop)
    finally:
        server.terminate()
        server.wait(10)
    lat = np.asarray(stats.latencies) * 1000
    third = len(lat) // 3
    p95, bar = float(np.percentile(lat, 95)), 2 * batch1 * 1000 + 50
    first, last = float(lat[:third].mean()), float(lat[-third:].mean())
    print(f"batch-1 encoder {batch1 * 1000:.1f} ms; p50 {np.percentile(lat, 50):.1f} ms, "
          f"p95 {p95:.1f} ms (bar {bar:.1f}); mean first third {first:.1f} ms, last third "
          f"{last:.1f} ms; frames read {stats.frames_read}, analysed {stats.frames_analysed}, "
          f"dropped {stats.frames_dropped}")  # fmt: skip
    ok = p95 <= bar and last <= first * 1.10 + 2
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
