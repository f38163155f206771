"""Camera logins kept out of the command line: ``serve --camera-credentials-file FILE``
(or ``$SCENECLS_CAMERA_CREDENTIALS`` naming the file).

A password in a camera's URL on the command line can be read by every user of the
machine (``ps``, ``/proc/PID/cmdline``) and ends up in shell histories and unit files.
The file holds one camera a line, by its ``--name``::

    # CAMERA  USER:PASSWORD
    pass      admin:s3cret
    oven      viewer:p@ss word:with colons

The camera's SOURCE is then its URL without a login (``rtsp://10.0.0.7/Streaming/...``);
the login is put into it only when the camera is opened (percent-encoded, so any
character works). The password is the rest of the line after the first ``:`` (spaces
inside it are kept, those around it are not). Blank lines and lines starting with ``#``
are ignored.

The file should be readable by the service's user only (``chmod 600``): when group or
others may read it, a warning says so. Mistakes are one line naming the file and the
line number, never the line's text (it holds a password).
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from ..errors import UsageError
from ..redact import redact_url

log = logging.getLogger("scenecls")

ENV = "SCENECLS_CAMERA_CREDENTIALS"
LINE_FORM = "CAMERA USER:PASSWORD"
LOGIN_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https", "srt")


def load_camera_credentials(path: Path) -> dict[str, tuple[str, str]]:
    """``{camera: (user, password)}`` from ``path`` (see the module docstring). Raises
    :class:`UsageError` in one line (without the secrets) when the file cannot be read or
    a line is not ``CAMERA USER:PASSWORD``; warns when others may read the file."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"camera credentials file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as e:
        why = e.strerror if isinstance(e, OSError) and e.strerror else "not UTF-8 text"
        raise UsageError(f"camera credentials file {path} cannot be read: {why}") from None
    if os.name == "posix" and mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning(
            "camera credentials file %s can be read by other users (mode %03o): chmod 600 %s",
            path,
            stat.S_IMODE(mode),
            path,
        )
    found: dict[str, tuple[str, str]] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split(None, 1)
        user, colon, password = (fields[1] if len(fields) == 2 else "").partition(":")
        user, password = user.strip(), password.strip()
        if not colon or not user:
            raise UsageError(f"camera credentials file {path}, line {number}: write {LINE_FORM}")
        camera = fields[0]
        if camera in found:
            raise UsageError(
                f"camera credentials file {path}, line {number}: camera {camera!r} has a "
                "login already"
            )
        found[camera] = (user, password)
    return found


def check_camera_credentials(
    credentials: dict[str, tuple[str, str]], cameras: dict[str, str], path: Path
) -> None:
    """Raise :class:`UsageError` in one line unless every camera named in
    ``credentials`` is one of ``cameras`` (name -> SOURCE), a stream URL without a login
    of its own."""
    for camera in credentials:
        if camera not in cameras:
            raise UsageError(
                f"camera credentials file {path} names camera {camera!r}, which is not one "
                f"of this service's: {', '.join(cameras)} (--name)"
            )
        spec = cameras[camera]
        scheme, sep, rest = spec.partition("://")
        if not sep or scheme.lower() not in LOGIN_SCHEMES:
            raise UsageError(
                f"camera credentials file {path}: camera {camera!r} ({redact_url(spec)}) is "
                f"not a stream URL ({', '.join(s + '://' for s in LOGIN_SCHEMES)}) that "
                "takes a login"
            )
        if "@" in rest.split("/", 1)[0]:
            raise UsageError(
                f"camera {camera!r}: its URL ({redact_url(spec)}) has a login and the "
                f"credentials file {path} gives another: keep the one in the file"
            )
