"""Which requests a browser may have been tricked into sending, refused before anything
else looks at them.

- **DNS rebinding.** A web page on ``evil.example`` can make its name point at this
  service's address; the browser then takes the service for part of that page's site
  and lets its scripts read the cameras. Such requests carry ``Host: evil.example``: a
  request whose ``Host`` (and ``X-Forwarded-Host``, when a proxy or anyone else sent one)
  is not one of this service's own names is refused (:class:`HostPolicy`). Allowed:

  - the address the connection reached (an IP literal), with any port; on a loopback
    address also the other loopback forms (``127.0.0.1``, ``[::1]``, ``localhost``);
  - when bound to every address (``--host 0.0.0.0`` or ``::``): any IP literal (a page
    whose origin is an IP address cannot rebind it: it is that address) and the
    machine's own host name;
  - the name given to ``--host`` when it is a name;
  - every ``--allowed-host NAME`` (the name a reverse proxy or the kitchen's DNS gives
    the service; ``*`` turns the check off, for a proxy that checks ``Host`` itself).

  The port is not compared: DNS rebinding changes what a name means, not a port, and a
  proxy or a port mapping (Docker) may show another port than the one we listen on.
  ``/healthz`` (which says only ``ok``) is exempt: health checkers reach the service by
  names it cannot know.
- **Cross-site requests** (a page of another site making the browser ``POST``): a
  request that changes something (any method but GET, HEAD and OPTIONS under ``/api/``)
  must come from the service's own page or from a script (see
  :func:`.access.cross_site`), and must say ``Content-Type: application/json``
  (:func:`json_content`): a browser sends that type to another site only after asking it
  first (a CORS preflight, which this service never answers yes to), so a form or a
  ``text/plain`` ``fetch`` from another site can never be taken for JSON.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass

from aiohttp import web

from ..errors import UsageError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

WILDCARDS = frozenset({"", "0.0.0.0", "::"})
"""``--host`` values that mean every address of the machine."""

EXEMPT_PATHS = frozenset({"/healthz"})
"""Paths served whatever the ``Host`` (they say nothing worth reading)."""

_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-._")
_IP_CHARS = frozenset("0123456789abcdef:.%")
_SCOPE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-._%:")


def _ip(text: str | None) -> IPAddress | None:
    """``text`` as an IP address (an IPv4 address mapped into IPv6 as the IPv4 one), or
    None when it is not one."""
    if not text:
        return None
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def host_name(value: str) -> str | None:
    """The host of a ``Host`` header value, lowercase, without port, brackets or a final
    dot (``"[::1]:8000"`` -> ``"::1"``, ``"Kitchen.local.:80"`` -> ``"kitchen.local"``);
    None when ``value`` is not a plain host (user info, a path, odd characters, a port
    that is not a number)."""
    text = value.strip().lower()
    port = ""
    if text.startswith("["):  # an IPv6 literal
        end = text.find("]")
        if end < 0:
            return None
        name, rest = text[1:end], text[end + 1 :]
        if rest:
            if not rest.startswith(":"):
                return None
            port = rest[1:]
        if not name or not set(name) <= _SCOPE_CHARS or _ip(name) is None:
            return None
    elif text.count(":") > 1:  # an IPv6 literal without brackets (not valid HTTP; tolerated)
        name = text
        if not set(name) <= _IP_CHARS | _SCOPE_CHARS or _ip(name) is None:
            return None
    else:
        name, _, port = text.partition(":")
        if name.endswith("."):
            name = name[:-1]
        if not name or not set(name) <= _NAME_CHARS:
            return None
    if port and not (port.isascii() and port.isdigit() and len(port) <= 5):
        return None
    return name


def allowed_host(value: str) -> str:
    """An ``--allowed-host`` value, checked and normalised (lowercase, no brackets);
    ``*`` stays ``*``. Raises :class:`UsageError` saying what to give instead."""
    text = value.strip()
    if text == "*":
        return "*"
    has_port = not text.endswith("]") if text.startswith("[") else text.count(":") == 1
    name = host_name(text)
    if name is None or has_port:
        raise UsageError(
            f"--allowed-host {value!r}: give a host name or IP address without a port "
            "(such as kitchen.local), or '*' to allow any Host"
        )
    return name


def machine_names() -> frozenset[str]:
    """This machine's own names: its host name, and its first label when that is a
    dotted name (``oven.kitchen.lan`` -> also ``oven``), and ``NAME.local`` (mDNS)."""
    try:
        name = socket.gethostname().strip().lower().rstrip(".")
    except OSError:  # pragma: no cover - no host name at all
        return frozenset()
    if not name or not set(name) <= _NAME_CHARS:
        return frozenset()
    short = name.split(".")[0]
    return frozenset({name, short, f"{short}.local"})


@dataclass(frozen=True)
class HostPolicy:
    """Which ``Host`` header values this server answers (see the module's text).

    ``names``: names (and IP literals) allowed wherever the connection came in;
    ``any_ip``: any IP literal is allowed (bound to every address); ``any_host``: the
    check is off (``--allowed-host '*'``)."""

    names: frozenset[str] = frozenset()
    any_ip: bool = False
    any_host: bool = False

    @classmethod
    def for_bind(cls, bind: str | None, allowed: Iterable[str] = ()) -> HostPolicy:
        """The policy of a server listening on ``bind`` (``--host``; None: only the address
        each connection reached) with ``--allowed-host`` values ``allowed``."""
        names = {allowed_host(a) for a in allowed}
        any_host = "*" in names
        names.discard("*")
        wildcard = bind is not None and bind.strip().strip("[]") in WILDCARDS
        if wildcard:
            names |= machine_names()
        elif bind and _ip(bind.strip("[]")) is None:
            name = host_name(bind)
            if name is not None:
                names.add(name)
        return cls(frozenset(names), any_ip=wildcard, any_host=any_host)

    def allows(self, value: str, local: str | None) -> bool:
        """Whether a request with ``Host: value`` that reached local address ``local``
        (None: not known) is for this server."""
        if self.any_host:
            return True
        name = host_name(value)
        if name is None:
            return False
        if name in self.names:
            return True
        here = _ip(local)
        ip = _ip(name)
        if ip is not None:
            if self.any_ip:
                return True
            if here is None:
                return ip.is_loopback
            return ip == here or (ip.is_loopback and here.is_loopback)
        loopback = here.is_loopback if here is not None else False
        return name == "localhost" and loopback


def local_address(request: web.Request) -> str | None:
    """The IP address of this server that ``request``'s connection reached."""
    transport = request.transport
    if transport is None:
        return None
    sockname = transport.get_extra_info("sockname")
    if isinstance(sockname, tuple | list) and sockname and isinstance(sockname[0], str):
        return sockname[0]
    return None


def refused_host(request: web.Request, policy: HostPolicy) -> str | None:
    """The ``Host`` (or ``X-Forwarded-Host``) value of ``request`` that ``policy`` refuses,
    None when every one is allowed or the path is exempt. A request without ``Host`` (an
    HTTP/1.0 script; every browser sends one) passes."""
    if request.path in EXEMPT_PATHS or policy.any_host:
        return None
    local = local_address(request)
    for header in ("Host", "X-Forwarded-Host"):
        for value in request.headers.getall(header, ()):
            for part in value.split(","):  # a chain of proxies lists each
                if not policy.allows(part, local):
                    return part.strip()
    return None


def json_content(request: web.Request) -> bool:
    """Whether ``request`` says its body is JSON (``application/json``, any charset)."""
    return request.content_type == "application/json"
