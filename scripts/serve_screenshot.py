"""Screenshot of the kitchen page for the docs (docs/img/serve.png).

Starts `scenecls serve` on two cameras (a synthetic red-circle video and a sample video)
with the trained fixture model, sets an expectation that is wrong on the first camera
and right on the second, waits for the alert, and photographs the page in headless
Chromium (Debian's chromium, driven by Playwright). The service keeps its history
(``--data``, recordings closed every 6 s), so the page shows the timelines of the last
10 minutes and the answer to a search ("red circle").

usage: python scripts/serve_screenshot.py [--out docs/img/serve.png] [--chromium PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import synthetic_shapes
from _common import MEDIA, REPO


def _post(url: str, body: dict) -> None:
    req = urllib.request.Request(
        url, json.dumps(body).encode(), method="POST", headers={"Content-Type": "application/json"}
    )
    urllib.request.urlopen(req, timeout=10).close()


def main() -> int:
    from playwright.sync_api import sync_playwright

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "img" / "serve.png")
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        video = Path(tmp) / "pass.mp4"
        synthetic_shapes.make_video(video, [("red circle", 0, 20)], fps=10)
        cmd = [
            sys.executable, "-m", "scenecls", "serve",
            str(video), str(MEDIA / "bottle-detection.mp4"),
            "--name", "pass", "--name", "oven", "--model", str(REPO / "tests/fixtures/shapes-clip"),
            "--labels", ",".join(synthetic_shapes.CLASSES), "--loop", "--port", "0",
            "--alert-after", "1", "--data", str(Path(tmp) / "data"), "--segment-minutes", "0.1",
            "--flush-seconds", "1",
        ]  # fmt: skip
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "SCENECLS_HOME": tmp}
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stderr=subprocess.PIPE, text=True)
        try:
            assert proc.stderr is not None
            for line in proc.stderr:
                m = re.search(r"on (http://\S+?)/?$", line.strip())
                if m:
                    url = m.group(1)
                    break
            else:
                sys.exit("the server did not start")
            time.sleep(3)
            _post(url + "/api/expect", {"camera": "pass", "label": "blue ring", "order": "A17"})
            _post(url + "/api/expect", {"camera": "oven", "label": "blue ring"})
            time.sleep(12)  # a few recordings closed, label bands and the alert stored
            with sync_playwright() as p:
                flags = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
                browser = p.chromium.launch(executable_path=args.chromium, args=flags)
                page = browser.new_page(viewport={"width": 1500, "height": 1000})
                page.goto(url + "/")
                page.wait_for_selector("#cam-pass.alerting", timeout=15_000)
                page.select_option("#span", "10")
                page.fill("#q", "red circle")
                page.click("#search button[type=submit]")
                page.wait_for_selector("#results li", timeout=15_000)
                page.wait_for_timeout(2500)
                args.out.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(args.out), full_page=True)
                browser.close()
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(10)
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
