"""How long `scenecls run FILE --show` takes on screen, against the video's own length.

Runs the command in a real window on a virtual X display (Xvfb), watches the screen with
xwd from the moment the window's dark placeholder gives way to the first frame (one that
is not all black) until the window closes, and compares that with the video's duration
over --speed. Also reports the run's own summary line for the window (frames shown,
waits for the analysis).
Needs Debian's xvfb, xdotool and x11-apps.

usage: python scripts/window_playback.py VIDEO [--model M] [--labels L] [--speed X]
           [--json FILE] [-- EXTRA scenecls run OPTIONS]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

import cv2

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import REPO

sys.path.insert(0, str(REPO))

from tests.xdisplay import Xvfb


def video_seconds(path: Path) -> float:
    """Presentation length of ``path``: the last frame's time plus one frame time."""
    cap = cv2.VideoCapture(str(path))
    last, step = 0.0, 0.0
    while cap.grab():
        t = cap.get(cv2.CAP_PROP_POS_MSEC) / 1000
        step, last = (t - last if t > last else step), t
    cap.release()
    return last + step


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("video", type=Path)
    ap.add_argument("--model", default=str(REPO / "tests" / "fixtures" / "shapes-clip"))
    ap.add_argument("--labels", default="scenes")
    ap.add_argument("--speed", default="1")
    ap.add_argument("--json", type=Path)
    argv = sys.argv[1:]
    split = argv.index("--") if "--" in argv else len(argv)
    args = ap.parse_args(argv[:split])
    args.extra = argv[split + 1 :]  # more `scenecls run` options, after --
    length = video_seconds(args.video)
    x = Xvfb()
    try:
        cmd = [
            sys.executable, "-m", "scenecls", "run", str(args.video), "--model", args.model,
            "--labels", args.labels, "--show", "--speed", args.speed, "--no-progress",
            *args.extra,
        ]  # fmt: skip
        launched = time.monotonic()
        proc = subprocess.Popen(cmd, env=x.env, stderr=subprocess.PIPE, text=True)
        name = "^" + re.escape(f"scenecls: {args.video.name}") + "$"
        window = x.wait_window(name, timeout=300, proc=proc)
        _, _, _, height = x.geometry(window)
        started = x.wait_picture(window, height * 3 // 4, timeout=300)  # the first frame
        while x.windows(name):
            time.sleep(0.02)
        played = time.monotonic() - started
        _, err = proc.communicate(timeout=60)
    finally:
        x.close()
    if proc.returncode != 0:
        sys.exit(f"scenecls run failed (exit {proc.returncode}):\n{err}")
    speed = None if args.speed == "max" else float(args.speed)
    expected = length / speed if speed else None
    window_line = next((line for line in err.splitlines() if line.startswith("window")), "")
    result = {
        "video": args.video.name,
        "video_seconds": round(length, 3),
        "speed": args.speed,
        "expected_seconds": round(expected, 3) if expected else None,
        "on_screen_seconds": round(played, 3),
        "ratio": round(played / expected, 4) if expected else None,
        "start_seconds": round(started - launched, 2),
        "model": args.model,
        "extra": args.extra,
        "summary": err.strip().splitlines()[-8:],
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "date": time.strftime("%Y-%m-%d"),
    }
    print(window_line)
    print(
        f"{args.video.name}: {length:.2f} s of video at --speed {args.speed} was on screen "
        f"{played:.2f} s"
        + (f" (expected {expected:.2f} s, ratio {played / expected:.3f})" if expected else "")
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
