"""Guards for what reaches the service from the network, and for the threads it does not
own (paho's network thread, the webhook worker).

- :func:`check_text` / :func:`check_order`: strings from a client (an order id, a label
  over MQTT) must be valid Unicode (no lone surrogates), hold no control characters or
  line breaks, and be at most :data:`MAX_TEXT` characters. The HTTP API and MQTT use the
  same checks, so what one refuses the other refuses too.
- :func:`parse_json`: a payload bounded in bytes and in nesting *before* it is parsed
  (a deeply nested document would otherwise raise ``RecursionError`` in the parser).
- :class:`Trouble`: the health of one part (MQTT, the webhook): counts problems, keeps
  the last one as a short line without URLs' secrets, and logs each kind of problem at
  most once every :data:`LOG_EVERY` seconds (with how many were not logged), so that a
  flood of bad messages cannot become a flood of log lines.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import unicodedata
from datetime import datetime, timezone
from typing import Any

from ..redact import url_origin

log = logging.getLogger("scenecls")

MAX_TEXT = 200  # characters of a label or an order id
MAX_DEPTH = 8  # nesting of a JSON payload that the service reads (it needs 1)
LOG_EVERY = 10.0  # seconds between two log lines about the same kind of problem

# bidirectional embeddings, overrides and isolates: they make a log line read otherwise
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_REFUSED_CATEGORIES = frozenset({"Cc", "Cs", "Zl", "Zp"})  # controls, surrogates, breaks
_URL = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]*")


class BadInput(ValueError):
    """A value from a client that the service refuses; the message says what to send."""


class ApiError(Exception):
    """A request the API refuses: ``status`` (4xx) and a message saying what to do (the
    app's error middleware answers it as ``{"error": message}``)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def known_camera(names: list[str], name: str | None, *, required: bool = True) -> str | None:
    """``name`` when it is one of the service's cameras ``names``; None when it is not
    given and not ``required``; else :class:`ApiError` (400: not given, 404: unknown),
    listing the cameras."""
    cameras = f"cameras: {', '.join(names)}"
    if not name:
        if not required:
            return None
        raise ApiError(400, f"give the camera: ?camera=NAME; {cameras}")
    if name not in names:
        raise ApiError(404, f"unknown camera {shown(name)}; {cameras}")
    return name


def shown(value: object, limit: int = 60) -> str:
    """``value`` for a message or a log line: its ``repr`` (control characters and lone
    surrogates escaped), cut to ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_text(value: object, what: str, limit: int = MAX_TEXT) -> str:
    """``value`` if it is a string a person could have typed: valid Unicode, no control
    characters, line breaks or bidirectional overrides, at most ``limit`` characters.
    Raises :class:`BadInput` naming ``what`` otherwise."""
    if not isinstance(value, str):
        raise BadInput(f"{what} must be a string, not {shown(value)}")
    if len(value) > limit:
        raise BadInput(f"{what} is {len(value)} characters long: at most {limit} are taken")
    for c in value:
        if unicodedata.category(c) in _REFUSED_CATEGORIES or c in _BIDI:
            kind = "a lone surrogate" if "\ud800" <= c <= "\udfff" else "a control character"
            raise BadInput(f"{what} holds {kind} (U+{ord(c):04X}): send printable UTF-8 text")
    return value


def check_order(value: object) -> str | None:
    """An order id as given: None, a string (see :func:`check_text`) or a whole number
    (made a string). Raises :class:`BadInput` otherwise."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        if abs(value) >= 10**MAX_TEXT:  # str() of a huge number costs time, and is long
            raise BadInput(f'"order" is too long a number: at most {MAX_TEXT} digits')
        return check_text(str(value), '"order"')
    if not isinstance(value, str):
        raise BadInput(f'"order" must be a string or a whole number when given, not {shown(value)}')
    return check_text(value, '"order"')


def json_depth(text: str) -> int:
    """How deeply the arrays and objects of the JSON ``text`` nest (brackets inside
    strings do not count). Linear, without recursion; ``text`` need not be valid."""
    if text.count("[") + text.count("{") <= 1:
        return text.count("[") + text.count("{")
    depth = deepest = 0
    in_string = escaped = False
    for c in text:
        if in_string:
            if escaped:
                escaped = False
            elif c == "\\":
                escaped = True
            elif c == '"':
                in_string = False
        elif c == '"':
            in_string = True
        elif c in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif c in "]}":
            depth -= 1
    return deepest


def parse_json(text: str, *, depth: int = MAX_DEPTH) -> Any:
    """``text`` as JSON, refused (:class:`BadInput`) when it is not JSON or nests deeper
    than ``depth``. The caller bounds its size first (the depth check reads all of it)."""
    if json_depth(text) > depth:
        raise BadInput(f"the JSON nests more than {depth} deep: send a flat object")
    try:
        return json.loads(text)
    except RecursionError:  # pragma: no cover - the depth check comes first
        raise BadInput("the JSON nests too deeply: send a flat object") from None
    except ValueError as e:  # not JSON, or a number longer than Python converts
        raise BadInput(f"not JSON ({shown(str(e), 80)})") from None


def without_secrets(text: str) -> str:
    """``text`` with every URL in it cut to its scheme and host (the user, password,
    path and query, where webhooks and cameras keep secrets, removed)."""
    return _URL.sub(lambda m: url_origin(m.group(0)), text)


def describe(error: BaseException, limit: int = 160) -> str:
    """One short line about ``error``: its type and message, URLs' secrets removed."""
    message = " ".join(str(error).split())
    name = type(error).__name__
    text = f"{name}: {without_secrets(message)}" if message else name
    return text if len(text) <= limit else text[: limit - 3] + "..."


class Trouble:
    """The health of one part of the service (``name``: "MQTT", "webhook"), shared by
    the threads that report to it. :meth:`report` counts a problem under a ``kind``,
    keeps it as :attr:`last` and logs it unless the same kind was logged in the last
    ``every`` seconds (the next line then says how many were not)."""

    def __init__(self, name: str, every: float = LOG_EVERY) -> None:
        self.name = name
        self.every = every
        self.counts: dict[str, int] = {}
        self.last: str | None = None
        self.last_at: float | None = None  # UNIX time
        self._logged: dict[str, tuple[float, int]] = {}  # kind -> (when, count then)
        self._lock = threading.Lock()

    def report(
        self,
        kind: str,
        message: str,
        *,
        error: BaseException | None = None,
        level: int = logging.WARNING,
    ) -> bool:
        """Count one problem of ``kind`` described by ``message`` (one line, no secrets);
        log it unless rate-limited. ``error``: the exception, whose traceback goes to the
        debug log. Returns whether it was logged. Never raises."""
        now = time.monotonic()
        with self._lock:
            count = self.counts.get(kind, 0) + 1
            self.counts[kind] = count
            self.last, self.last_at = message, time.time()
            when, then = self._logged.get(kind, (None, 0))
            if when is not None and now - when < self.every:
                return False
            self._logged[kind] = (now, count)
        skipped = count - then - 1
        more = ""
        if when is not None and skipped:
            more = f" ({skipped} more like it in the last {now - when:.0f} s)"
        try:
            log.log(level, "%s: %s%s", self.name, message, more)
            if error is not None:
                log.debug("%s: %s", self.name, kind, exc_info=error)
        except Exception:  # pragma: no cover - a broken log handler
            return False
        return True

    def count(self, *kinds: str) -> int:
        """Problems reported of ``kinds`` (all kinds when none is given); a kind's first
        word is its group: ``count("refused")`` counts ``"refused payload"`` too."""
        with self._lock:
            return sum(n for k, n in self.counts.items() if not kinds or k.split(" ")[0] in kinds)

    def status(self) -> dict[str, Any]:
        """The last problem (a short line) and when (ISO 8601 UTC), for ``/api/status``."""
        with self._lock:
            last, at = self.last, self.last_at
        stamp = None
        if at is not None:
            stamp = datetime.fromtimestamp(at, timezone.utc).isoformat(timespec="seconds")
            stamp = stamp.replace("+00:00", "Z")
        return {"last_error": last, "last_error_at": stamp}
