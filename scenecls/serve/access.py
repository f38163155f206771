"""Access control for ``scenecls serve --token``: every route but ``/healthz`` needs the
token (``/metrics`` too, unless ``--metrics-open``).

- Scripts send ``Authorization: Bearer TOKEN`` on any route.
- People log in once at ``/login``, a small form; the reply sets an HttpOnly,
  SameSite=Strict session cookie (``Secure`` when the request came over HTTPS, also
  through a proxy that says so in ``X-Forwarded-Proto``), valid for 30 days. The cookie
  holds an expiry time and an HMAC of it keyed by the token, not the token: changing the
  token logs everyone out, and the server keeps no session state.
- Failed logins are rate-limited per client address: after 5 failures within a minute,
  the form answers 429 for a minute (right token or not).
- Every comparison is constant-time (``hmac.compare_digest``).
- A browser's request that changes something, sent by another site's page, is refused
  (:func:`cross_site`): the cookie is SameSite=Strict, and without ``--token`` there is
  no cookie to withhold.

Without ``--token`` nothing is checked (the CLI warns when that is not loopback-only).
"""

from __future__ import annotations

import hashlib
import hmac
import html
import time
from collections import deque
from collections.abc import Callable
from urllib.parse import quote, urlsplit

from aiohttp import web

COOKIE = "scenecls_session"
SESSION_SECONDS = 30 * 24 * 3600
MAX_FAILURES = 5
FAILURE_WINDOW = 60.0
OPEN_PATHS = frozenset({"/healthz", "/login", "/logout"})


def _same(a: str, b: str) -> bool:
    """Constant-time equality of two texts (as UTF-8 bytes: ``compare_digest`` refuses
    non-ASCII ``str``)."""
    return hmac.compare_digest(a.encode("utf-8", "surrogatepass"), b.encode("utf-8"))


class Access:
    """The token check of one server. ``clock``: seconds (tests move it)."""

    def __init__(
        self, token: str, *, metrics_open: bool = False, clock: Callable[[], float] = time.time
    ) -> None:
        self.token = token
        self.metrics_open = metrics_open
        self.clock = clock
        self._failures: dict[str, deque[float]] = {}

    @property
    def enabled(self) -> bool:
        return bool(self.token)

    def _signature(self, expires: int) -> str:
        key = self.token.encode("utf-8")
        return hmac.new(key, f"scenecls-session:{expires}".encode(), hashlib.sha256).hexdigest()

    def session_cookie(self) -> str:
        """A new session cookie value: ``EXPIRES.SIGNATURE``."""
        expires = int(self.clock()) + SESSION_SECONDS
        return f"{expires}.{self._signature(expires)}"

    def valid_session(self, value: str) -> bool:
        expires, _, signature = value.partition(".")
        if not expires.isdigit() or int(expires) < self.clock():
            return False
        return _same(signature, self._signature(int(expires)))

    def bearer_ok(self, header: str) -> bool:
        scheme, _, value = header.partition(" ")
        return scheme.lower() == "bearer" and _same(value.strip(), self.token)

    def allowed(self, request: web.Request) -> bool:
        """Whether ``request`` may pass: open route, bearer token or session cookie."""
        if not self.enabled or request.path in OPEN_PATHS:
            return True
        if request.path == "/metrics" and self.metrics_open:
            return True
        header = request.headers.get("Authorization")
        if header is not None:
            return self.bearer_ok(header)
        return self.valid_session(request.cookies.get(COOKIE, ""))

    # -- the login form's rate limit -------------------------------------------------

    def blocked_for(self, client: str) -> float:
        """Seconds until ``client`` may try to log in again (0: now)."""
        failures = self._failures.get(client)
        if not failures:
            return 0.0
        now = self.clock()
        while failures and now - failures[0] > FAILURE_WINDOW:
            failures.popleft()
        if len(failures) < MAX_FAILURES:
            return 0.0
        return max(0.0, failures[0] + FAILURE_WINDOW - now)

    def failed(self, client: str) -> None:
        if len(self._failures) > 10_000:  # a flood of addresses: forget the oldest
            self._failures.pop(next(iter(self._failures)))
        self._failures.setdefault(client, deque(maxlen=MAX_FAILURES)).append(self.clock())


def cross_site(request: web.Request) -> bool:
    """Whether a browser sent ``request`` from another site's (or another origin's) page:
    by ``Sec-Fetch-Site`` (every current browser sends it), else by ``Origin`` against the
    host asked for (``X-Forwarded-Host`` behind a proxy). A request with neither (a
    script, curl) is not cross-site."""
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None:
        return site.strip().lower() not in ("same-origin", "none")
    origin = request.headers.get("Origin")
    if origin is None:
        return False
    try:
        asked = urlsplit(origin.strip()).netloc.lower()
    except ValueError:
        return True
    host = request.headers.get("X-Forwarded-Host") or request.host
    return not asked or asked != host.strip().lower()


def secure_request(request: web.Request) -> bool:
    """Whether the browser reached us over HTTPS (directly, or through a proxy)."""
    return request.secure or request.headers.get("X-Forwarded-Proto", "").lower() == "https"


def safe_next(target: str | None) -> str:
    """A local path to go to after logging in (never another site)."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return "/"
    return target


def login_page(next_path: str = "/", message: str = "") -> str:
    """The login form, HTML."""
    note = f'<p class="err">{html.escape(message)}</p>' if message else ""
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width,initial-scale=1'>"
        "<title>scenecls: log in</title><style>body{font-family:sans-serif;display:flex;"
        "justify-content:center;margin-top:15vh}form{display:flex;flex-direction:column;"
        "gap:.6em;width:18em}.err{color:#b00}</style></head><body>"
        "<form method='post' action='/login'><h1>scenecls</h1>"
        f"{note}<label>Token <input type='password' name='token' "
        "autocomplete='current-password' autofocus required></label>"
        f"<input type='hidden' name='next' value='{html.escape(safe_next(next_path))}'>"
        "<button type='submit'>Log in</button></form></body></html>\n"
    )


def login_redirect(request: web.Request) -> web.Response:
    """Send a browser that is not logged in to the form (coming back here after)."""
    target = quote(request.path_qs, safe="/?=&")
    return web.Response(status=303, headers={"Location": f"/login?next={target}"})
