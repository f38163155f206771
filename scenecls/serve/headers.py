"""Security headers of ``scenecls serve``'s responses.

Every response says ``X-Content-Type-Options: nosniff`` (a browser never takes JSON or a
JPEG for a page). Every HTML response (the page, the login form) also gets:

- ``Content-Security-Policy``: only this server's own resources; scripts and style
  sheets only as shipped, allowed by their SHA-256 hashes (computed from the page and the
  form, so an edit of either keeps the policy right, and anything injected is refused);
  images from here, ``data:`` and ``blob:``; no plugins, no ``<base>``, forms only post
  here, and no other site may frame it;
- ``X-Frame-Options: DENY`` (older browsers' ``frame-ancestors``);
- ``Referrer-Policy: no-referrer`` (no path of ours leaves in a ``Referer``).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
from importlib import resources

from aiohttp import web

from .access import login_page

_INLINE = {tag: re.compile(rf"<{tag}>(.*?)</{tag}>", re.DOTALL) for tag in ("script", "style")}


@functools.cache
def page_html() -> str:
    """The kitchen page (``scenecls/serve/page.html``), read once."""
    return resources.files("scenecls.serve").joinpath("page.html").read_text("utf-8")


def inline_hashes(html: str, tag: str) -> list[str]:
    """CSP source expressions (``'sha256-...'``) of each inline ``<tag>`` block (``script``
    or ``style``, without attributes) of ``html``, in order, without repeats."""
    found = []
    for block in _INLINE[tag].findall(html):
        digest = base64.b64encode(hashlib.sha256(block.encode("utf-8")).digest()).decode()
        if f"'sha256-{digest}'" not in found:
            found.append(f"'sha256-{digest}'")
    return found


@functools.cache
def content_security_policy() -> str:
    """The policy of every HTML response: the page's and the login form's inline script
    and style blocks by hash, nothing else inline."""
    shipped = (page_html(), login_page())
    scripts = [h for html in shipped for h in inline_hashes(html, "script")]
    styles = [h for html in shipped for h in inline_hashes(html, "style")]
    return "; ".join(
        [
            "default-src 'self'",
            "script-src " + (" ".join(scripts) or "'none'"),
            " ".join(["style-src 'self'", *styles]),
            "img-src 'self' data: blob:",
            "connect-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


async def add_security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: the headers above, on every response of the app."""
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    if response.content_type == "text/html":
        response.headers.setdefault("Content-Security-Policy", content_security_policy())
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
