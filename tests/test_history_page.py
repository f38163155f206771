"""The page's history in headless Chromium (Debian's chromium, driven by Playwright) against
a real ``scenecls serve --data DIR`` on a looped sample video, its recordings rotating every
6 s: each camera's timeline draws its label bands and marks an alert; a search typed on the
page returns moments of the camera, "More like this" on a hit returns that very moment, and
clicking a hit, a moment on the timeline or an alert in the event list plays the recording
in the page's player from that moment (the video element's ``currentTime`` starts at the
moment's offset in its file and advances)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import synthetic_shapes  # scripts/ is on the path (conftest)
from _common import MEDIA

from .serving import ServeProcess, wait_for
from .test_serve_browser import FLAGS, MODEL, TOKEN, _chromium

CAMERA = "lot"
SEGMENT_MINUTES = 0.1  # 6 s recordings: a file closes (and becomes playable) quickly
PLAYER = "document.getElementById('player')"


def _s(text: str) -> float:
    """ISO 8601 UTC (``...Z``) -> UNIX seconds."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _recordings(server: ServeProcess) -> list[dict[str, Any]]:
    """The camera's closed (playable) recordings, oldest first."""
    code, body = server.request("GET", f"/api/recordings?camera={CAMERA}")
    assert code == 200, body
    rows = [r for r in body["recordings"] if r.get("end") and _s(r["end"]) > _s(r["start"])]
    return sorted(rows, key=lambda r: _s(r["start"]))


def _history(server: ServeProcess) -> dict[str, Any]:
    code, body = server.request("GET", f"/api/history?camera={CAMERA}")
    assert code == 200, body
    return body


# every seek of the player: [its file, the time it went to]
WATCH_SEEKS = f"""() => {{ const v = {PLAYER}; window.seeks = [];
  v.addEventListener('seeked', () => window.seeks.push([v.getAttribute('src'), v.currentTime]));
}}"""


def _plays_from(
    page: Any, server: ServeProcess, click: Any, url: str, offset: float, what: str
) -> None:
    """``click()`` makes the player seek in ``url`` to about ``offset`` s, and play on:
    the time it shows advances (on into the next file, when this one ends)."""

    def later() -> bool:  # a closed file after this one: playing goes on into it
        urls = [r["url"] for r in _recordings(server)]
        return url in urls[:-1]

    wait_for(later, timeout=30)
    page.evaluate("() => { window.seeks = []; }")
    click()
    seek = page.wait_for_function(
        "(url) => window.seeks.find((s) => s[0] === url)", arg=url, timeout=20_000
    ).json_value()
    assert offset - 1.0 <= seek[1] <= offset + 2.5, f"{what}: seeked to {seek[1]} s, not {offset} s"
    shown = page.wait_for_function(
        "() => document.getElementById('playing').dataset.time", timeout=10_000
    ).json_value()
    page.wait_for_function(
        "(t) => Number(document.getElementById('playing').dataset.time) > t + 500",
        arg=float(shown),
        timeout=10_000,
    )
    assert page.evaluate(f"{PLAYER}.error") is None, what


def test_timeline_search_and_playback_of_the_history(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    chromium = _chromium()
    server = ServeProcess(
        [str(MEDIA / "car-detection.mp4"), "--name", CAMERA, "--model", str(MODEL),
         "--labels", ",".join(synthetic_shapes.CLASSES), "--loop", "--alert-after", "0.5",
         "--token", TOKEN, "--data", str(tmp_path / "data"),
         "--segment-minutes", str(SEGMENT_MINUTES), "--flush-seconds", "1"],
        home=tmp_path / "home",
    )  # fmt: skip
    try:
        # history to look at: labels, and three closed recordings (some 18 s)
        wait_for(lambda: _history(server)["labels"], timeout=30)
        wait_for(lambda: len(_recordings(server)) >= 3, timeout=60)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=FLAGS)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(server.url + "/")
            page.fill("input[name=token]", TOKEN)
            page.click("button[type=submit]")
            page.wait_for_url(server.url + "/")
            page.evaluate(WATCH_SEEKS)

            # the timeline draws: label bands, coloured, with the label on hover
            card = page.locator(f"#cam-{CAMERA}")
            track = card.locator(".track")
            card.locator(".band").first.wait_for(timeout=20_000)
            page.select_option("#span", "10")  # 10 minutes: a 6 s file is some pixels wide
            page.wait_for_function(
                f"""() => {{ const t = document.querySelector('#cam-{CAMERA} .track');
                  return t.dataset.until - t.dataset.since < 11 * 60e3; }}"""
            )
            bands = card.locator(".band")
            assert bands.count() >= 1
            seen = set(bands.evaluate_all("(bs) => bs.map((b) => b.dataset.label)"))
            assert seen <= {*synthetic_shapes.CLASSES, "unknown"}, seen
            assert bands.first.evaluate("(b) => getComputedStyle(b).backgroundColor") != ""

            # a moment in the middle of the first closed file: hover says its label and
            # time, a click plays the recording from there
            rec = _recordings(server)[0]
            moment = (_s(rec["start"]) + _s(rec["end"])) / 2

            def at_moment() -> dict[str, float]:
                """Where ``moment`` is on the track now (the window moves with time)."""
                since, until = (float(track.get_attribute(k) or "nan") for k in
                                ("data-since", "data-until"))  # fmt: skip
                box = track.bounding_box()
                assert box is not None
                x = (moment * 1000 - since) / (until - since) * box["width"]
                return {"x": x, "y": box["height"] / 2}

            track.hover(position=at_moment())
            tip = card.locator(".tip")
            assert tip.is_visible()
            assert "UTC" in tip.inner_text(), tip.inner_text()
            _plays_from(
                page, server, lambda: track.click(position=at_moment()), rec["url"],
                moment - _s(rec["start"]), "timeline click",
            )  # fmt: skip
            assert CAMERA in page.locator("#playing").inner_text()
            assert card.locator(".playhead").is_visible()

            # a search typed on the page: moments of the camera within the run
            started = _s(_history(server)["labels"][0]["start"])
            page.fill("#q", "a red circle")
            page.press("#q", "Enter")
            hits = page.locator("#results .hit")
            hits.first.wait_for(timeout=10_000)
            assert "moment" in page.locator("#search-status").inner_text()
            cams = hits.evaluate_all("(hs) => hs.map((h) => [h.dataset.camera, h.dataset.best])")
            assert all(c == CAMERA for c, _ in cams), cams
            assert all(started - 1 <= _s(b) <= _s(_history(server)["until"]) for _, b in cams)

            # "More like this" on a hit: that moment comes back
            known = hits.first.get_attribute("data-best") or ""
            hits.first.locator(".like").click()
            page.locator("#search-status").filter(has_text="more like").wait_for(timeout=10_000)
            page.wait_for_function("() => !document.getElementById('results').ariaBusy")
            spans = hits.evaluate_all(
                "(hs) => hs.map((h) => [h.dataset.start, h.dataset.end, h.dataset.camera])"
            )
            assert any(
                c == CAMERA and _s(a) - 0.01 <= _s(known) <= _s(b) + 0.01 for a, b, c in spans
            ), (known, spans)

            # clicking a recorded hit plays it from its offset
            recorded = page.locator("#results .hit[data-recorded='1']")
            assert recorded.count() >= 1, "no search hit has a recording"
            hit = recorded.first
            url = hit.get_attribute("data-url") or ""
            offset = float(hit.get_attribute("data-offset") or "nan")
            _plays_from(page, server, hit.locator(".shot").click, url, offset, "search hit")
            assert "playing" in (hit.get_attribute("class") or "")

            # "More like now" on the camera's current picture
            card.locator(".like-now").click()
            page.locator("#search-status").filter(has_text=f"more like {CAMERA} now").filter(
                has_text="moment"
            ).wait_for(timeout=10_000)

            # an alert: marked on the timeline, and its button in the event list plays it
            seen = set(bands.evaluate_all("(bs) => bs.map((b) => b.dataset.label)"))
            expect = next(c for c in reversed(synthetic_shapes.CLASSES) if c not in seen)
            code, body = server.request("POST", "/api/expect", {"camera": CAMERA, "label": expect})
            assert code == 200, body
            card.locator(".mark").first.wait_for(timeout=30_000)
            alert = next(e for e in _history(server)["events"] if e["kind"] == "alert")
            at = _s(alert["moment"])
            play = card.locator(".alerts .moment").first
            wait_for(lambda: abs(float(play.get_attribute("data-at") or "nan") / 1000 - at) < 0.01)
            rec = wait_for(
                lambda: next(
                    (r for r in _recordings(server) if _s(r["start"]) <= at < _s(r["end"])), None
                ),
                timeout=30,
            )
            _plays_from(page, server, play.click, rec["url"], at - _s(rec["start"]), "alert")

            assert not errors, errors
            browser.close()
    finally:
        assert server.stop() == 0, "".join(server.log)
