"""UTC times as the service and the history show them: ISO 8601 with a ``Z``."""

from __future__ import annotations

from datetime import datetime, timezone

from .errors import UsageError

_FIRST = datetime(1, 1, 1, tzinfo=timezone.utc).timestamp()
_LAST = datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=timezone.utc).timestamp()


def utc_iso(seconds: float, digits: int = 3) -> str:
    """UNIX ``seconds`` as ISO 8601 UTC, e.g. ``2026-12-02T15:04:05.123Z`` (``digits``
    decimals of the second: 0, 3 or 6)."""
    spec = {0: "seconds", 3: "milliseconds", 6: "microseconds"}[digits]
    seconds = min(max(float(seconds), _FIRST), _LAST)  # (what a datetime can show)
    stamp = datetime.fromtimestamp(seconds, timezone.utc).isoformat(timespec=spec)
    return stamp.replace("+00:00", "Z")


def parse_utc(text: str, what: str = "time") -> float:
    """UNIX seconds of an ISO 8601 time (``Z``, an offset, or none: UTC). Raises
    :class:`UsageError` in one line naming ``what`` when ``text`` is not one."""
    raw = str(text).strip()
    try:
        stamp = datetime.fromisoformat(raw[:-1] + "+00:00" if raw.endswith(("Z", "z")) else raw)
    except ValueError:
        raise UsageError(
            f"{what} {raw[:40]!r} is not an ISO 8601 time: give e.g. 2026-12-02T12:31:00Z"
        ) from None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=timezone.utc)
    try:  # in its own zone it may be a valid date whose UTC is not (year 0 or 10000)
        stamp.astimezone(timezone.utc)
    except (ValueError, OverflowError):
        raise UsageError(
            f"{what} {raw[:40]!r} is out of range: give a time between years 1 and 9999"
        ) from None
    return stamp.timestamp()
