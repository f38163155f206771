"""The documentation site builds as CI builds it, and reads as a reader sees it.

One Sphinx build per session, warnings as errors, into the docs' own build folder
(``docs/_build/html``, what ``docs/writing-docs.md`` tells a reader to open). Then: every
internal link and anchor of the built pages leads somewhere; the generated CLI reference
holds every option of every command; and real Chromium (Debian's, driven by Playwright)
opens the start page and the CLI reference over HTTP and finds a title, the navigation,
loaded images, no console error and no failed request. Its screenshots, with the build's
figures (``build.json``), go to ``docs/_build/html/_review/`` for review.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import os
import platform
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from scenecls.cli.main import COMMANDS, build_parser

from .test_serve_browser import FLAGS, _chromium

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
SITE = DOCS / "_build" / "html"
REVIEW = SITE / "_review"


@dataclass
class Build:
    """One finished build: where it is and what it took."""

    root: Path
    seconds: float
    output: str
    fresh: bool  # built from nothing (as in CI), not on top of an earlier build


def _cpu() -> str:
    """The CPU's model name and its widest vector extension (what a figure ran on)."""
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    model = next((ln.split(":", 1)[1].strip() for ln in info.splitlines()
                  if ln.startswith("model name")), platform.machine())  # fmt: skip
    flags = set(next((ln.split(":", 1)[1].split() for ln in info.splitlines()
                      if ln.startswith("flags")), []))  # fmt: skip
    widest = "avx512f" if "avx512f" in flags else "avx2" if "avx2" in flags else "no avx2"
    return f"{model} ({widest})"


@pytest.fixture(scope="session")
def site() -> Build:
    """``sphinx -W --keep-going`` of docs/ into docs/_build/html; fails on any warning."""
    pytest.importorskip("sphinx", reason="pip install -e '.[docs]' (the test extra has it)")
    fresh = not (DOCS / "_build" / "doctrees").exists()
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
         "-d", str(DOCS / "_build" / "doctrees"), str(DOCS), str(SITE)],
        cwd=REPO, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    seconds = time.monotonic() - started
    output = done.stdout + done.stderr
    if done.returncode != 0:
        pytest.fail(
            f"the docs build failed (warnings are errors):\n{output[-6000:]}", pytrace=False
        )
    REVIEW.mkdir(parents=True, exist_ok=True)
    return Build(SITE, seconds, output, fresh)


class _Page(HTMLParser):
    """The ids a page defines and the local addresses it points to."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()
        self.links: list[tuple[str, str]] = []  # (tag, address)
        self.title = ""
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        for key in ("id", "name"):
            if a.get(key) and (key == "id" or tag == "a"):
                self.ids.add(a[key])
        for key in ("href", "src"):
            if a.get(key):
                self.links.append((tag, a[key]))
        self._in_title = tag == "title"

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False


@functools.cache
def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def _pages(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.html") if "_review" not in p.parts)


def _broken_links(root: Path) -> list[str]:
    """Every local href/src of every built page, with its #anchor, checked."""
    broken = []
    for page in _pages(root):
        for tag, address in _parse(page).links:
            parts = urlsplit(address)
            if parts.scheme or address.startswith("//") or address.startswith("mailto:"):
                continue  # outside the site: not ours to check offline
            target = (page.parent / unquote(parts.path)).resolve() if parts.path else page
            if target.is_dir():
                target = target / "index.html"
            where = f"{page.relative_to(root)}: <{tag}> {address}"
            if not target.is_file() or root.resolve() not in target.parents:
                broken.append(f"{where}: no such file in the site")
            elif (
                parts.fragment
                and target.suffix == ".html"
                and unquote(parts.fragment) not in _parse(target).ids
            ):
                broken.append(f"{where}: no #{parts.fragment} on that page")
    return broken


def test_the_site_builds_with_no_warning(site: Build) -> None:
    """The build passed with -W; its figures are kept for review."""
    pages = _pages(site.root)
    names = {p.relative_to(site.root).as_posix() for p in pages}
    for page in ("index.html", "getting-started.html", "reference/cli.html",
                 "reference/api.html", "reference/http.html", "reference/mqtt.html",
                 "kitchen/index.html", "troubleshooting.html"):  # fmt: skip
        assert page in names, f"{page} was not built"
    (REVIEW / "build.json").write_text(
        json.dumps(
            {"seconds": round(site.seconds, 1), "fresh": site.fresh, "pages": len(pages),
             "warnings": 0, "cpu": _cpu(), "cores": os.cpu_count()},
            indent=2,
        )
        + "\n",
        encoding="utf-8",
    )  # fmt: skip
    kind = "from nothing" if site.fresh else "on an earlier build"
    print(f"docs built {kind} in {site.seconds:.1f} s, {len(pages)} pages")


def test_every_internal_link_and_anchor_resolves(site: Build) -> None:
    broken = _broken_links(site.root)
    assert not broken, "\n".join(broken)


def test_the_link_check_finds_a_broken_link(tmp_path: Path) -> None:
    """The checker above is not a rubber stamp: a missing page and a missing anchor are found."""
    (tmp_path / "index.html").write_text(
        '<h1 id="top">x</h1><a href="#top">ok</a><a href="gone.html">a</a>'
        '<a href="other.html#nowhere">b</a><img src="img/none.png">'
    )
    (tmp_path / "other.html").write_text('<p id="here">y</p><a href="index.html#top">ok</a>')
    broken = _broken_links(tmp_path)
    assert len(broken) == 3, broken
    assert any("gone.html" in b for b in broken)
    assert any("#nowhere" in b for b in broken)
    assert any("none.png" in b for b in broken)


def _options(parser: argparse.ArgumentParser) -> list[str]:
    return [s for a in parser._actions for s in a.option_strings if s.startswith("--")]


def test_the_cli_reference_has_every_option_of_every_command(site: Build) -> None:
    """Generated from the parsers: a new option appears without anyone writing it down."""
    text = (site.root / "reference" / "cli.html").read_text(encoding="utf-8")
    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    missing = []
    for name in COMMANDS:
        for option in _options(subparsers.choices[name]):
            if option not in text:
                missing.append(f"scenecls {name} {option}")
    assert not missing, "not in reference/cli.html: " + ", ".join(missing)


def test_the_readme_links_to_files_that_exist() -> None:
    """The README's relative links (to docs pages and pictures) point at real files."""
    import re

    text = (REPO / "README.md").read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)\s]+)\)", text)
    local = [t for t in targets if not urlsplit(t).scheme and not t.startswith("#")]
    assert local, "the README links to no page of the docs"
    missing = [t for t in local if not (REPO / urlsplit(t).path).exists()]
    assert not missing, missing


# -- in a browser ---------------------------------------------------------------------


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def served(site: Build) -> Iterator[str]:
    """The built site over HTTP on a free loopback port, as a reader's browser gets it."""
    handler = functools.partial(_Quiet, directory=str(site.root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class _Seen:
    """What the browser reported while a page loaded."""

    console_errors: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


@pytest.mark.parametrize(
    ("path", "heading", "shot"),
    [("index.html", "scenecls", "index.png"),
     ("reference/cli.html", "Command line", "reference-cli.png")],
)  # fmt: skip
def test_a_page_renders_in_chromium(served: str, path: str, heading: str, shot: str) -> None:
    from playwright.sync_api import sync_playwright

    chromium = _chromium()
    seen = _Seen()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on(
                "console",
                lambda m: (
                    m.type == "error"
                    and seen.console_errors.append(f"{m.text} ({m.location.get('url')})")
                ),
            )
            page.on("pageerror", lambda e: seen.console_errors.append(str(e)))
            page.on("requestfailed", lambda r: seen.failed.append(f"{r.url}: {r.failure}"))
            page.on(
                "response",
                lambda r: r.status >= 400 and seen.failed.append(f"{r.url}: {r.status}"),
            )
            response = page.goto(f"{served}/{path}", wait_until="networkidle")
            assert response is not None and response.status == 200

            title = page.title()
            assert "scenecls" in title, title
            h1 = page.locator("article h1").first.inner_text()
            assert heading.lower() in h1.lower(), h1
            # the navigation: the sidebar lists the site's sections and pages
            nav = page.locator(".sidebar-tree")
            assert nav.count() >= 1, "no navigation sidebar"
            captions = [c.strip().lower() for c in nav.first.locator(".caption").all_inner_texts()]
            assert captions == ["using scenecls", "reference", "behind the scenes"], captions
            links = nav.first.locator("a.reference").all_inner_texts()
            assert len(links) >= 15, links
            # every picture loaded (a broken one has no natural width)
            images = page.evaluate(
                "() => [...document.images].map(i => [i.currentSrc, i.complete, i.naturalWidth])"
            )
            broken = [src for src, complete, width in images if not (complete and width > 0)]
            assert not broken, f"images that did not load: {broken}"
            if path == "index.html":
                assert any(src.endswith("window.png") for src, _, _ in images), images
            # the page is readable at a phone's width too: the sidebar folds away
            page.screenshot(path=str(REVIEW / shot), full_page=False)
            page.set_viewport_size({"width": 390, "height": 844})
            page.wait_for_timeout(300)
            wide = page.evaluate("() => document.documentElement.scrollWidth")
            assert wide <= 390 + 1, f"the page scrolls sideways on a phone ({wide} px wide)"
            page.screenshot(path=str(REVIEW / shot.replace(".png", "-narrow.png")))
        finally:
            browser.close()
    assert not seen.console_errors, seen.console_errors
    assert not seen.failed, seen.failed
    assert (REVIEW / shot).stat().st_size > 10_000
