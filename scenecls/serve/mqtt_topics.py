"""The MQTT topics of ``scenecls serve --mqtt``, as one table: :mod:`.mqtt` builds every
topic it publishes to or subscribes to from these patterns, and the documentation's
MQTT reference is generated from them, so neither can drift from the other.

A pattern's placeholders: ``{prefix}`` is ``--mqtt-prefix`` (default ``scenecls``),
``{discovery_prefix}`` is ``--mqtt-discovery-prefix`` (default ``homeassistant``) and
``{camera}`` a camera's name as one topic level (:func:`.mqtt.topic_name`: anything but
letters, digits, ``_`` and ``-`` made ``_``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PUBLISHED = "published"
SUBSCRIBED = "subscribed"
PLACEHOLDERS = ("prefix", "discovery_prefix", "camera")
EXAMPLE = {"prefix": "scenecls", "discovery_prefix": "homeassistant", "camera": "pass"}
"""The placeholders' defaults (and a camera named ``pass``), for the reference."""

_FIELD = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True)
class Topic:
    """One topic: its ``pattern`` (placeholders in braces), whether the service
    ``direction`` publishes to it or subscribes to it, whether what it publishes is
    ``retained`` by the broker, and the ``payload`` (for the reference; text in
    backquotes is code). Everything is sent and subscribed with QoS 1."""

    pattern: str
    direction: str
    retained: bool
    payload: str

    @property
    def fields(self) -> tuple[str, ...]:
        """The placeholders of the pattern, in order."""
        return tuple(_FIELD.findall(self.pattern))

    def format(self, **values: str) -> str:
        """The topic with ``values`` put in for its placeholders (extra values are
        ignored; a missing one is a ``KeyError``)."""
        return self.pattern.format(**{k: values[k] for k in self.fields})

    def match(self, topic: str, **values: str) -> dict[str, str] | None:
        """The placeholders of ``topic`` when it is one of this pattern's topics (those in
        ``values`` must be as given; each other one is one topic level); else None."""
        parts = []
        last = 0
        for m in _FIELD.finditer(self.pattern):
            parts.append(re.escape(self.pattern[last : m.start()]))
            name = m.group(1)
            parts.append(re.escape(values[name]) if name in values else f"(?P<{name}>[^/]+)")
            last = m.end()
        parts.append(re.escape(self.pattern[last:]))
        found = re.fullmatch("".join(parts), topic)
        return None if found is None else found.groupdict()


TOPICS: dict[str, Topic] = {
    "available": Topic(
        "{prefix}/available", PUBLISHED, True,
        "`online` when the service connects; `offline` when it stops, and as the broker's "
        "last will when it dies or loses the connection.",
    ),
    "status": Topic(
        "{prefix}/{camera}/status", PUBLISHED, True,
        "`online` while the camera's source delivers frames, else `offline`.",
    ),
    "label": Topic(
        "{prefix}/{camera}/label", PUBLISHED, True,
        "The camera's smoothed label, on each change.",
    ),
    "alert": Topic(
        "{prefix}/{camera}/alert", PUBLISHED, True,
        "`ON` while a mismatch alert is active, `OFF` otherwise.",
    ),
    "events": Topic(
        "{prefix}/events", PUBLISHED, False,
        "Every event as JSON, as `/api/events` has them (segments, expectations set and "
        "cleared, alerts and their resolutions, sources lost and restored, regions "
        "changed, cameras taught), plus `at`: the UTC time of the frame or request that "
        "caused it.",
    ),
    "expect": Topic(
        "{prefix}/{camera}/expect/set", SUBSCRIBED, False,
        'Sets the camera\'s expectation: a label (any case), or `{"label": "margherita", '
        '"order": "1042"}`; an empty payload, `null` or `{"label": null}` clears it. A '
        "payload over 4 KB or not UTF-8, an unknown camera or label, or a label or order "
        "that is not printable text of at most 200 characters is dropped and counted "
        "(`mqtt.refused` in `/api/status`).",
    ),
    "discovery_label": Topic(
        "{discovery_prefix}/sensor/scenecls_{camera}/label/config", PUBLISHED, True,
        "Home Assistant discovery: the camera's label sensor (JSON), part of a device per "
        "camera.",
    ),
    "discovery_alert": Topic(
        "{discovery_prefix}/binary_sensor/scenecls_{camera}/alert/config", PUBLISHED, True,
        "Home Assistant discovery: the camera's alert, a binary sensor of class `problem` "
        "(JSON).",
    ),
    "discovery_status": Topic(
        "{discovery_prefix}/status", SUBSCRIBED, False,
        "Home Assistant's own availability: on `online` (it restarted) the discovery "
        "messages are sent again. At most 64 bytes.",
    ),
}  # fmt: skip
"""Every topic of the MQTT bridge, by the name :mod:`.mqtt` uses, in the reference's
order."""


def check_topics_table(topics: dict[str, Topic] | None = None) -> None:
    """Raise ``ValueError`` when an entry is not well formed: an unknown direction or
    placeholder, no payload, a wildcard (``+``, ``#``) or an empty level in a pattern."""
    for name, topic in (TOPICS if topics is None else topics).items():
        problems = []
        if topic.direction not in (PUBLISHED, SUBSCRIBED):
            problems.append(f"direction {topic.direction!r}")
        unknown = set(topic.fields) - set(PLACEHOLDERS)
        if unknown:
            problems.append(f"placeholders {sorted(unknown)}")
        if not topic.payload.strip():
            problems.append("no payload description")
        if re.search(r"[+#]|//|^/|/$", topic.pattern):
            problems.append("a wildcard or an empty level in the pattern")
        if topic.direction == SUBSCRIBED and topic.retained:
            problems.append("a subscribed topic is not published, so not retained")
        if problems:
            raise ValueError(f"MQTT topic {name} ({topic.pattern}): {'; '.join(problems)}")
