"""Secrets kept in: credentials are removed from every URL before it leaves the process.

A camera's address often carries its password (``rtsp://admin:secret@10.0.0.7/...``) and
error messages of FFmpeg, OpenCV and our own sources repeat it. :func:`redact_url`
removes them from any text: the user information of every ``scheme://user:password@``
becomes ``***`` (user name included: it is half of the login), and the values of query
parameters that hold logins (``?user=admin&pwd=secret``, as some MJPEG cameras take them)
become ``***``. Everything the service shows or sends (its status, the page, events,
MQTT, webhooks, files' metadata) passes a source through it, and a filter on the
``scenecls`` logger (:func:`install_log_filter`, installed when this module is imported)
does the same to every log line, tracebacks included.

:func:`url_origin` is for URLs whose path is the secret (a Slack-style webhook): only
``scheme://host[:port]`` is shown.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import urlsplit

REDACTED = "***"

# scheme://USERINFO@ : the user information runs to the last "@" before the path (a
# password may hold an unencoded "@"), never across white space
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^\s/]*@")
# ?pwd=... &password=... ;token=... : query parameters that carry a login
_QUERY_SECRET = re.compile(
    r"(?P<key>[?&;](?:user|usr|username|login|password|passwd|pass|pwd|pw|token|"
    r"access_token|auth|key|api_key|apikey|secret|sig|signature)=)[^&;#\s]*",
    re.IGNORECASE,
)


def redact_url(text: str) -> str:
    """``text`` with the credentials of every URL in it replaced by ``***``:
    ``rtsp://admin:secret@cam/live`` -> ``rtsp://***@cam/live``, ``...?usr=a&pwd=b`` ->
    ``...?usr=***&pwd=***``. Text without credentials comes back unchanged; a URL
    anywhere in the text (an error message) is found."""
    if "@" not in text and "=" not in text:
        return text
    text = _USERINFO.sub(lambda m: f"{m.group('scheme')}{REDACTED}@", text)
    if "://" in text:
        text = _QUERY_SECRET.sub(lambda m: f"{m.group('key')}{REDACTED}", text)
    return text


def url_origin(url: str) -> str:
    """``scheme://host[:port]`` of ``url``: its user information, path, query and
    fragment left out (for URLs whose path is a secret, such as Slack webhooks)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "(a URL that cannot be parsed)"
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}{f':{port}' if port else ''}"


class RedactingFilter(logging.Filter):
    """Removes URL credentials (:func:`redact_url`) from a record's message, its
    traceback and its stack before any handler formats it."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: the handler reports it as it would
            return True
        redacted = redact_url(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and not record.exc_text:
            text = logging.Formatter().formatException(record.exc_info)
            record.exc_text = redact_url(text)
        elif record.exc_text:
            record.exc_text = redact_url(record.exc_text)
        if record.stack_info:
            record.stack_info = redact_url(record.stack_info)
        return True


def install_log_filter(logger: logging.Logger | None = None) -> None:
    """Add a :class:`RedactingFilter` to ``logger`` (default: the ``scenecls`` logger),
    once. Logger filters see every record logged on it, whatever the handlers."""
    logger = logger or logging.getLogger("scenecls")
    if not any(isinstance(f, RedactingFilter) for f in logger.filters):
        logger.addFilter(RedactingFilter())


install_log_filter()
