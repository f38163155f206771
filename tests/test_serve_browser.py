"""The kitchen page in headless Chromium (Debian's chromium, driven by Playwright): a
person logs in through the form, the live view updates, and the current label, the
expected label and alerts are shown; "This is: X" teaches the camera from its current
picture and the accuracy line shows the result ("Undo last example" takes it back); a
rectangle dragged on the live picture becomes the camera's region of interest (kept in
--data), and a button clears it."""

from __future__ import annotations

import json
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
         "--token", TOKEN, "--data", str(tmp_path / "data")],
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

            # "This is: red circle": the current picture becomes an example, the camera
            # learns from it, and the accuracy line says how right it is
            taught = card.locator(".taught")
            assert "cross-validated" not in taught.inner_text()
            buttons = card.locator(".this-is button")
            assert buttons.all_inner_texts() == list(synthetic_shapes.CLASSES)
            card.locator(".this-is button[data-label='red circle']").click()
            taught.filter(has_text="(cross-validated, 1 example; too few").wait_for(timeout=10_000)
            assert "taught: 100 % right" in taught.inner_text()
            assert "text only:" in taught.inner_text()
            card.locator(".this-is button[data-label='red circle']").click()
            taught.filter(has_text="2 examples").wait_for(timeout=10_000)
            assert server.request("GET", "/api/cameras/pass/examples")[1]["examples"] == 2
            card.locator(".undo").click()
            taught.filter(has_text="(cross-validated, 1 example;").wait_for(timeout=10_000)
            index = json.loads((tmp_path / "data" / "examples" / "pass" / "index.json").read_text())
            assert [e["label"] for e in index["examples"]] == ["red circle"]
            assert card.locator(".note").inner_text() == ""

            # drag a rectangle on the live picture: the middle half of its width, the
            # middle 80 % of its height (the 4:3 picture is pillarboxed in a 16:9 box)
            assert server.camera("pass")["region"] is None
            page.evaluate("window.scrollTo(0, 0)")  # the whole picture in the viewport
            box = view.bounding_box()
            assert box is not None
            natural = view.evaluate("(img) => [img.naturalWidth, img.naturalHeight]")
            scale = min(box["width"] / natural[0], box["height"] / natural[1])
            w, h = natural[0] * scale, natural[1] * scale
            left = box["x"] + (box["width"] - w) / 2
            top = box["y"] + (box["height"] - h) / 2
            page.mouse.move(left + 0.25 * w, top + 0.1 * h)
            page.mouse.down()
            page.mouse.move(left + 0.5 * w, top + 0.5 * h, steps=4)
            assert card.locator(".drag").is_visible()  # the rectangle follows the mouse
            page.mouse.move(left + 0.75 * w, top + 0.9 * h, steps=4)
            page.mouse.up()
            region = wait_for(lambda: server.camera("pass")["region"])
            assert region["unit"] == "fraction"
            for key, value in (("x", 0.25), ("y", 0.1), ("w", 0.5), ("h", 0.8)):
                assert abs(region[key] - value) < 0.02, region
            card.locator(".roi").filter(has_text="region: 50×80 %").wait_for(timeout=10_000)
            stored = json.loads((tmp_path / "data" / "cameras" / "pass.json").read_text())
            assert stored["region"] == region
            # a click is not a drag: the region stays
            page.mouse.click(left + 0.5 * w, top + 0.5 * h)
            page.wait_for_timeout(300)
            assert server.camera("pass")["region"] == region

            card.locator(".clear-region").click()
            wait_for(lambda: server.camera("pass")["region"] is None)
            card.locator(".roi").filter(has_text="whole picture").wait_for(timeout=10_000)
            assert card.locator(".note").inner_text() == ""
            browser.close()
    finally:
        assert server.stop() == 0, "".join(server.log)
