"""Access control for ``scenecls serve --token``: every route but ``/healthz`` needs the
token (``/metrics`` too, unless ``--metrics-open``).

- Scripts send ``Authorization: Bearer TOKEN`` on any route.
- People log in once at ``/login``, a small form; the reply sets an HttpOnly,
  SameSite=Strict session cookie (``Secure`` when the request came over HTTPS, also
  through a proxy that says so in ``X-Forwarded-Proto``), valid for 30 days. The cookie
  (``EXPIRES.SESSION_ID.SIGNATURE``) holds neither the token nor anything keyed by it:
  it is signed (HMAC-SHA256) with a per-install secret, 32 random bytes kept in the data
  folder (``--data DIR``: ``DIR/session-secret``, mode 600; without ``--data`` made anew
  at each start, so sessions end on a restart), so a sniffed cookie allows no offline
  guessing of the token. What is signed includes a fingerprint of the token (an HMAC
  of it under the secret): changing the token logs everyone out.
- Logging out ends the session on the server: its id is revoked until it would have
  expired (kept in ``DIR/sessions-revoked.json`` with ``--data``, so a restart does not
  bring it back). The revocation list is bounded: when it is full, every session ends.
- Every try of the token (a login, an ``Authorization`` header) counts per client address
  (a whole IPv6 /64 as one), before the token is checked or the form's body read, so
  concurrent tries cannot overtake the count: after 5 wrong ones within a minute, every
  try from that address (right token or not) is answered 429 with ``Retry-After`` until
  the oldest of them is a minute old. Other addresses are not affected; a session cookie
  already held keeps working. Wrong tokens are logged once per burst, not per try.
- Every comparison is constant-time (``hmac.compare_digest``); a cookie is parsed
  strictly (ASCII digits and hex of bounded length), so no cookie can cause an error.
- A browser's request that changes something, sent by another site's page, is refused
  (:func:`cross_site`): the cookie is SameSite=Strict, and without ``--token`` there is
  no cookie to withhold.
- After logging in, the form only ever sends the browser to a path of this server
  (:func:`safe_next`).

Without ``--token`` nothing is checked (the CLI warns when that is not loopback-only).
"""

from __future__ import annotations

import hashlib
import hmac
import html
import ipaddress
import json
import logging
import re
import secrets
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple
from urllib.parse import quote, unquote, urlsplit

from aiohttp import web

from ..atomic import write_bytes_atomic
from ..errors import OutputError

log = logging.getLogger("scenecls")

COOKIE = "scenecls_session"
SESSION_SECONDS = 30 * 24 * 3600
MAX_FAILURES = 5
FAILURE_WINDOW = 60.0
OPEN_PATHS = frozenset({"/healthz", "/login", "/logout"})
SECRET_FILE = "session-secret"
REVOKED_FILE = "sessions-revoked.json"
MAX_REVOKED = 10_000
"""Sessions ended by logging out that are remembered; past that, every session ends."""
MAX_CLIENTS = 10_000
"""Addresses whose failed tries are remembered at once (a flood: the oldest forgotten)."""
LOG_AGAIN = 600.0
"""Seconds after which an address that keeps trying while locked out is logged again."""

# EXPIRES.SESSION_ID.SIGNATURE: ASCII digits (12 at most: year 33658) and lowercase hex
_SESSION = re.compile(r"([0-9]{1,12})\.([0-9a-f]{32})\.([0-9a-f]{64})")
_HEX_SECRET = re.compile(r"[0-9a-f]{64}")


def _same(a: str, b: str) -> bool:
    """Constant-time equality of two texts (as UTF-8 bytes: ``compare_digest`` refuses
    non-ASCII ``str``)."""
    return hmac.compare_digest(a.encode("utf-8", "surrogatepass"), b.encode("utf-8"))


def client_address(request: web.Request) -> str:
    """The address whose tries of the token are counted: the peer's IP address, a whole
    IPv6 /64 as one (a machine may pick any address of its network), an IPv4 address
    mapped into IPv6 as the IPv4 address."""
    remote = request.remote or "unknown"
    try:
        ip = ipaddress.ip_address(remote)
    except ValueError:
        return remote[:100]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def load_session_secret(folder: Path) -> bytes:
    """The per-install session key, 32 bytes kept as hex in ``folder/session-secret``
    (mode 600): created when missing, made anew when damaged (logged: everyone logs in
    again), made private when others may read it (logged). Raises :class:`OutputError`
    when it can be neither read nor written."""
    path = Path(folder) / SECRET_FILE
    text: str | None
    try:
        text = path.read_bytes().decode("ascii").strip()
    except FileNotFoundError:
        text = None
    except UnicodeDecodeError:
        text = ""
    except OSError as e:
        raise OutputError(
            f"cannot read the session key {path} ({e.strerror or e}): "
            "let the service's user read it, or delete it (everyone logs in again)"
        ) from e
    if text is not None and _HEX_SECRET.fullmatch(text):
        try:
            if path.stat().st_mode & 0o077:
                path.chmod(0o600)
                log.warning("%s could be read by other users: made private (mode 600)", path)
        except OSError as e:
            log.warning("%s can be read by other users and cannot be made private: %s", path, e)
        return bytes.fromhex(text)
    if text is not None:
        log.warning("%s is damaged: a new session key is made, everyone logs in again", path)
    secret = secrets.token_bytes(32)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(path, secret.hex().encode("ascii") + b"\n", mode=0o600)
    except OSError as e:
        raise OutputError(
            f"cannot write the session key {path} ({e.strerror or e}): pick a writable --data"
        ) from e
    return secret


class Verdict(NamedTuple):
    """What :meth:`Access.check` decided about a request: ``ok`` (it may pass), else it is
    refused: 429 when ``retry_after`` (seconds) > 0, 401 otherwise."""

    ok: bool
    retry_after: float = 0.0


@dataclass
class _Tries:
    """The recent tries of the token from one address that were not right (times, in the
    clock's seconds; the newest may be still being checked) and what was logged of them."""

    times: list[float] = field(default_factory=list)  # MAX_FAILURES at most
    logged: bool = False  # the burst's first wrong try
    locked_logged: float | None = None  # when the burst's lock-out was last logged
    refused: int = 0  # tries refused since then


class Access:
    """The token check of one server. ``data``: the data folder, where the session key and
    the ended sessions are kept (None: in memory, for this process only). ``clock``:
    seconds (tests move it)."""

    def __init__(
        self,
        token: str,
        *,
        metrics_open: bool = False,
        data: Path | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.token = token
        self.metrics_open = metrics_open
        self.clock = clock
        self._tries: dict[str, _Tries] = {}
        self._revoked: dict[str, int] = {}  # session id -> its expiry
        self._epoch = "0"  # signed into every session: a new one ends them all
        self._revoked_path = None if data is None else Path(data) / REVOKED_FILE
        if not self.enabled:
            self._secret = b""
        elif data is None:
            self._secret = secrets.token_bytes(32)
            log.info(
                "no --data: the session key is made anew at each start, so people who "
                "logged in at the page log in again after a restart"
            )
        else:
            self._secret = load_session_secret(Path(data))
            self._load_revoked()
        token_bytes = token.encode("utf-8", "surrogatepass")
        self._fingerprint = hmac.new(
            self._secret, b"scenecls-token:" + token_bytes, hashlib.sha256
        ).hexdigest()

    @property
    def enabled(self) -> bool:
        return bool(self.token)

    # -- sessions --------------------------------------------------------------------

    def _signature(self, expires: int, session_id: str) -> str:
        text = f"scenecls-session:{self._epoch}:{self._fingerprint}:{expires}:{session_id}"
        return hmac.new(self._secret, text.encode("ascii"), hashlib.sha256).hexdigest()

    def session_cookie(self) -> str:
        """A new session cookie value: ``EXPIRES.SESSION_ID.SIGNATURE``."""
        expires = int(self.clock()) + SESSION_SECONDS
        session_id = secrets.token_hex(16)
        return f"{expires}.{session_id}.{self._signature(expires, session_id)}"

    def _session(self, value: str) -> tuple[str, int] | None:
        """(session id, expiry) of a valid, unexpired, not ended session cookie; else None.
        Parsed strictly: anything but the exact form is refused before any arithmetic."""
        if not self.enabled or len(value) > 120:
            return None
        m = _SESSION.fullmatch(value)
        if m is None:
            return None
        expires, session_id, signature = int(m[1]), m[2], m[3]
        if expires < self.clock() or session_id in self._revoked:
            return None
        if not hmac.compare_digest(signature, self._signature(expires, session_id)):
            return None
        return session_id, expires

    def valid_session(self, value: str) -> bool:
        """Whether ``value`` is a session cookie this server gave, not expired, not ended."""
        return self._session(value) is not None

    def end_session(self, value: str) -> bool:
        """Log out: the session of cookie ``value`` ends here and now (also after a restart
        when there is a data folder). False when it was no valid session."""
        session = self._session(value)
        if session is None:
            return False
        session_id, expires = session
        now = self.clock()
        self._revoked = {s: e for s, e in self._revoked.items() if e >= now}
        if len(self._revoked) >= MAX_REVOKED:
            self._epoch = secrets.token_hex(8)
            self._revoked = {}
            log.warning(
                "%d sessions were ended by logging out within %d days: every session ends "
                "now, everyone logs in again",
                MAX_REVOKED,
                SESSION_SECONDS // 86400,
            )
        else:
            self._revoked[session_id] = expires
        self._save_revoked()
        return True

    def _load_revoked(self) -> None:
        path = self._revoked_path
        if path is None:
            return
        try:
            doc = json.loads(path.read_bytes())
            epoch, revoked = doc["epoch"], doc["revoked"]
            if not (isinstance(epoch, str) and re.fullmatch(r"[0-9a-f]{1,16}", epoch)):
                raise ValueError("bad epoch")
            if not isinstance(revoked, dict) or len(revoked) > MAX_REVOKED:
                raise ValueError("bad list of sessions")
            now = self.clock()
            kept: dict[str, int] = {}
            for session_id, expires in revoked.items():
                if not (re.fullmatch(r"[0-9a-f]{32}", session_id) and type(expires) is int):
                    raise ValueError(f"bad session {session_id!r}")
                if expires >= now:
                    kept[session_id] = expires
        except FileNotFoundError:
            return
        except (OSError, ValueError, RecursionError, KeyError, TypeError) as e:
            # what was ended is not known: end every session, to be safe
            self._epoch = secrets.token_hex(8)
            log.warning("%s cannot be read (%s): every session ends, log in again", path, e)
            self._save_revoked()
            return
        self._epoch, self._revoked = epoch, kept

    def _save_revoked(self) -> None:
        path = self._revoked_path
        if path is None:
            return
        doc = {"version": 1, "epoch": self._epoch, "revoked": self._revoked}
        try:
            write_bytes_atomic(path, json.dumps(doc).encode("ascii"), mode=0o600)
        except OSError as e:
            log.warning("cannot save %s (%s): a restart brings ended sessions back", path, e)

    # -- the token -------------------------------------------------------------------

    def bearer_ok(self, header: str) -> bool:
        scheme, _, value = header.partition(" ")
        return scheme.lower() == "bearer" and _same(value.strip(), self.token)

    def check(self, request: web.Request) -> Verdict:
        """Whether ``request`` may pass: open route, bearer token or session cookie. A
        request with an ``Authorization`` header is a try of the token (see
        :meth:`begin_try`); a session cookie is not (a wrong one is no guess of the token,
        and a person logged in keeps working while others guess from the same address)."""
        if not self.enabled or request.path in OPEN_PATHS:
            return Verdict(True)
        if request.path == "/metrics" and self.metrics_open:
            return Verdict(True)
        header = request.headers.get("Authorization")
        if header is None:
            return Verdict(self.valid_session(request.cookies.get(COOKIE, "")))
        client = client_address(request)
        wait = self.begin_try(client)
        if wait > 0:
            return Verdict(False, wait)
        if self.bearer_ok(header):
            self.right_try(client)
            return Verdict(True)
        self.wrong_try(client, "an Authorization header")
        return Verdict(False)

    def allowed(self, request: web.Request) -> bool:
        """Whether ``request`` may pass (:meth:`check`)."""
        return self.check(request).ok

    # -- counting tries --------------------------------------------------------------

    def _recent(self, client: str, now: float) -> _Tries | None:
        """``client``'s tries within the window (None, and forgotten, when there are none:
        the burst is over)."""
        tries = self._tries.get(client)
        if tries is None:
            return None
        while tries.times and now - tries.times[0] > FAILURE_WINDOW:
            del tries.times[0]
        if not tries.times:
            del self._tries[client]
            return None
        return tries

    def blocked_for(self, client: str) -> float:
        """Seconds until ``client`` may try the token again (0: now)."""
        now = self.clock()
        tries = self._recent(client, now)
        if tries is None or len(tries.times) < MAX_FAILURES:
            return 0.0
        return max(1e-3, tries.times[0] + FAILURE_WINDOW - now)

    def begin_try(self, client: str) -> float:
        """A try of the token from ``client`` starts: 0 when it may go ahead (it is counted
        as wrong from now on, before the token is checked or a body read; a right one is
        taken back by :meth:`right_try`); else the seconds until ``client`` may try again
        (the try is refused; the lock-out is logged once)."""
        wait = self.blocked_for(client)
        if wait > 0:
            tries, now = self._tries[client], self.clock()
            tries.refused += 1
            if tries.locked_logged is None:
                tries.locked_logged, tries.refused = now, 0
                log.warning(
                    "%d wrong tokens from %s within %d s: its tries are refused (429) for "
                    "%d s; not logged again until it stops (or every %d min while it goes on)",
                    MAX_FAILURES,
                    client,
                    FAILURE_WINDOW,
                    wait,
                    LOG_AGAIN // 60,
                )
            elif now - tries.locked_logged >= LOG_AGAIN:
                log.warning(
                    "%s keeps trying the token: %d tries refused in the last %d min",
                    client,
                    tries.refused,
                    (now - tries.locked_logged) // 60,
                )
                tries.locked_logged, tries.refused = now, 0
            return wait
        tries = self._tries.get(client)
        if tries is None:
            if len(self._tries) >= MAX_CLIENTS:  # a flood of addresses: forget the oldest
                self._tries.pop(next(iter(self._tries)))
            tries = self._tries[client] = _Tries()
        tries.times.append(self.clock())
        return 0.0

    def right_try(self, client: str) -> None:
        """The try :meth:`begin_try` counted had the right token: it does not count."""
        tries = self._tries.get(client)
        if tries is not None and tries.times:
            tries.times.pop()
            if not tries.times:
                del self._tries[client]

    def wrong_try(self, client: str, via: str) -> None:
        """The try :meth:`begin_try` counted had a wrong token (it stays counted): logged
        once per burst."""
        tries = self._tries.get(client)
        if tries is not None and not tries.logged:
            tries.logged = True
            log.warning(
                "wrong token from %s (%s); more from there are not logged one by one",
                client,
                via,
            )

    def failed(self, client: str) -> None:
        """Count one wrong try of the token from ``client``."""
        if self.begin_try(client) == 0:
            self.wrong_try(client, "a login")

    def forget_tries(self) -> None:
        """Forget every counted try (tests that guess on purpose, then carry on)."""
        self._tries.clear()


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


def _path_only(text: str) -> bool:
    """Whether ``text`` can only be read, by any browser, as a path of this server: it
    starts with one ``/`` (not ``//``, not ``/\\``: browsers read a backslash as a slash),
    holds no backslash, no whitespace, no control or invisible format character (browsers
    drop TAB, CR and LF from URLs: ``/<TAB>/x`` is ``//x``), and has no scheme or host."""
    if not text.startswith("/") or text.startswith("//") or "\\" in text:
        return False
    if any(c.isspace() or unicodedata.category(c) in ("Cc", "Cf", "Cs", "Zl", "Zp") for c in text):
        return False
    try:
        parts = urlsplit(text)
    except ValueError:
        return False
    return not parts.scheme and not parts.netloc


def safe_next(target: str | None) -> str:
    """A local path to go to after logging in (never another site): ``target`` itself when
    it is printable ASCII and a path of this server however often it is percent-decoded
    (a path that decodes to ``//host``, ``/\\host`` or a TAB is refused); else ``/``."""
    if not target or len(target) > 2000:
        return "/"
    if not all(0x21 <= ord(c) <= 0x7E for c in target):
        return "/"
    text = target
    for _ in range(5):  # "%255C" -> "%5C" -> a backslash
        if not _path_only(text):
            return "/"
        try:
            decoded = unquote(text, errors="strict")
        except UnicodeDecodeError:  # not UTF-8 once decoded: no path of ours
            return "/"
        if decoded == text:
            return target
        text = decoded
    return "/"  # encoded over and over: nobody's real path


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
