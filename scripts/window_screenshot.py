"""Screenshot of the `scenecls run --show` window for the docs (docs/img/window.png).

Plays a synthetic video (a red circle, then a blue ring) with the trained fixture model in
a real window on a virtual X display (Xvfb), grabs the window from the screen with xwd
while it plays, then quits it with q. Needs Debian's xvfb, xdotool and x11-apps.

usage: python scripts/window_screenshot.py [--out docs/img/window.png] [--at SECONDS]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import synthetic_shapes
from _common import REPO

sys.path.insert(0, str(REPO))

from tests.xdisplay import Xvfb, save_png


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "img" / "window.png")
    ap.add_argument("--at", type=float, default=6.0, help="seconds of playback to grab at")
    args = ap.parse_args()
    x = Xvfb()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            video = Path(tmp) / "pass.mp4"
            synthetic_shapes.make_video(
                video, [("red circle", 0, 4), ("blue ring", 4, 10)], fps=25, size=(640, 360)
            )
            cmd = [
                sys.executable, "-m", "scenecls", "run", str(video),
                "--model", str(REPO / "tests" / "fixtures" / "shapes-clip"),
                "--labels", ",".join(synthetic_shapes.CLASSES), "--show", "--no-progress",
            ]  # fmt: skip
            proc = subprocess.Popen(cmd, env=x.env)
            window = x.wait_window(r"^scenecls: pass\.mp4$", proc=proc)
            time.sleep(args.at)
            image = x.grab_window(window)
            x.key(window, "q")
            if proc.wait(30) != 0:
                sys.exit(f"scenecls run failed (exit {proc.returncode})")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        save_png(image, args.out)
        print(f"wrote {args.out} ({image.shape[1]}x{image.shape[0]})")
    finally:
        x.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
