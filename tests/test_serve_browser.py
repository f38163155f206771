"""The kitchen page in headless Chromium (Debian's chromium, driven by Playwright): a
person logs in through the form, the live view updates, and the current label, the
expected label and alerts are shown."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import synthetic_shapes  # scripts/ is on the path (conftest)

from .serving import ServeProcess, wait_for

MODEL = Path(__file__).parent / "fixtures" / "shapes-clip"
TOKEN = "pass-token-0123456789"
CHROMIUM = os.environ.get("SCENECLS_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]

# a frame of the live view as a number: the sum of its pixels, drawn through a canvas
FRAME_SUM = """(img) => {
  const c = document.createElement("canvas");
  c.width = img.naturalWidth; c.height = img.naturalHeight;
  const g = c.getContext("2d"); g.drawImage(img, 0, 0);
  const d = g.getImageData(0, 0, c.width, c.height).data;
  let s = 0; for (let i = 0; i < d.length; i += 4) s += d[i] + d[i + 1] + d[i + 2];
  return s;
}"""


def _chromium() -> str:
    if Path(CHROMIUM).is_file():
        return CHROMIUM
    if os.environ.get("CI"):
        pytest.fail(f"CI must install Debian's chromium (no {CHROMIUM}): apt-get install chromium")
    pytest.skip(f"no Chromium at {CHROMIUM}: apt-get install chromium (CI installs it)")


def test_page_shows_live_view_label_expectation_and_alert(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    chromium = _chromium()
    video = tmp_path / "pass.mp4"
    synthetic_shapes.make_video(video, [("red circle", 0, 30)], fps=10)
    server = ServeProcess(
        [str(video), "--name", "pass", "--model", str(MODEL),
         "--labels", ",".join(synthetic_shapes.CLASSES), "--loop", "--alert-after", "0.5",
         "--token", TOKEN],
        home=tmp_path / "home",
    )  # fmt: skip
    try:
        wait_for(lambda: server.camera("pass")["label"] == "red circle")
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=FLAGS)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(server.url + "/")  # not logged in: the login form
            assert "/login" in page.url
            page.fill("input[name=token]", TOKEN)
            page.click("button[type=submit]")
            page.wait_for_url(server.url + "/")
            card = page.locator("#cam-pass")
            card.locator(".label").filter(has_text="red circle").wait_for(timeout=15_000)
            assert card.locator(".name").inner_text() == "pass"
            assert card.locator(".state").inner_text().startswith("running")

            view = card.locator("img.view")
            page.wait_for_function(
                "() => document.querySelector('#cam-pass img.view').naturalWidth > 0",
                timeout=15_000,
            )
            first = view.evaluate(FRAME_SUM)
            page.wait_for_timeout(1000)
            assert view.evaluate(FRAME_SUM) != first, "the live view did not change in 1 s"

            # the page's own buttons: the POST goes with the session cookie
            card.locator(".pick").select_option("blue ring")
            card.locator(".set").click()
            card.locator(".exp").filter(has_text="blue ring").wait_for(timeout=10_000)
            page.wait_for_selector("#cam-pass.mismatch.alerting", timeout=10_000)
            assert "WRONG" in card.locator(".verdict").inner_text()
            alert = card.locator(".alerts li.open")
            alert.wait_for(timeout=10_000)
            assert "expected blue ring, saw red circle" in alert.inner_text()
            browser.close()
    finally:
        assert server.stop() == 0, "".join(server.log)
