"""``GET /metrics``: the service's figures for Prometheus, through ``prometheus_client``.

A collector reads :meth:`Service.status` at each scrape (nothing is counted twice, and
the service keeps no metric objects of its own); ``prometheus_client`` writes the text
exposition format. Every family, with its type, labels and help, is listed in
docs/reference/http.md, generated from :func:`metric_reference` (which runs this
collector), so the list cannot drift from what a scrape returns.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from .service import Service

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# (name, kind, help, status key, scale): one sample per camera whose value is known
_PER_CAMERA: tuple[tuple[str, str, str, str], ...] = (
    ("scenecls_camera_fps", "gauge", "Frames analysed per second (last 5 s).", "fps"),
    ("scenecls_camera_frames_read_total", "counter", "Frames read from the source.",
     "frames_read"),
    ("scenecls_camera_frames_analysed_total", "counter", "Frames classified.",
     "frames_analysed"),
    ("scenecls_camera_frames_encoded_total", "counter",
     "Frames the image encoder ran on (the change gate let the others reuse one).",
     "frames_encoded"),
    ("scenecls_camera_encoded_ratio", "gauge",
     "Share of analysed frames that were encoded, since the start.", "encoded_share"),
    ("scenecls_camera_dropped_frames_total", "counter",
     "Frames dropped to keep latency low (a newer frame was ready).", "dropped"),
    ("scenecls_camera_reconnects_total", "counter", "Times the source was reopened.",
     "reconnects"),
    ("scenecls_alerts_total", "counter", "Mismatch alerts raised.", "alerts"),
)  # fmt: skip


# (part, name, kind, help, status key): the health of MQTT and the webhook
_HEALTH: tuple[tuple[str, str, str, str, str], ...] = (
    ("mqtt", "scenecls_mqtt_connections_total", "counter",
     "Connections made to the broker (reconnects + 1).", "connections"),
    ("mqtt", "scenecls_mqtt_published_total", "counter", "Messages queued for the broker.",
     "published"),
    ("mqtt", "scenecls_mqtt_dropped_total", "counter",
     "Messages to the broker dropped: it was away too long (queue full).", "dropped"),
    ("mqtt", "scenecls_mqtt_refused_total", "counter",
     "Messages from the broker refused (too large, not UTF-8, bad JSON, label or camera).",
     "refused"),
    ("mqtt", "scenecls_mqtt_errors_total", "counter",
     "Failures caught in the MQTT client's callbacks.", "errors"),
    ("webhook", "scenecls_webhook_delivered_total", "counter", "Alert posts delivered.",
     "delivered"),
    ("webhook", "scenecls_webhook_failed_total", "counter",
     "Alert posts given up after all tries.", "failed"),
    ("webhook", "scenecls_webhook_dropped_total", "counter",
     "Alert posts dropped: the queue was full.", "dropped"),
    ("webhook", "scenecls_webhook_errors_total", "counter",
     "Failures caught in the webhook worker.", "errors"),
    ("webhook", "scenecls_webhook_queued", "gauge", "Alert posts waiting to be sent.",
     "queued"),
)  # fmt: skip


def _family(name: str, kind: str, help_: str, labels: list[str]) -> Any:
    if kind == "counter":  # prometheus_client adds the _total suffix itself
        return CounterMetricFamily(name.removesuffix("_total"), help_, labels=labels)
    return GaugeMetricFamily(name, help_, labels=labels)


class ServiceCollector(Collector):
    """Turns one :meth:`Service.status` into metric families, at each scrape."""

    def __init__(self, service: Service) -> None:
        self.service = service

    def collect(self) -> Iterator[Metric]:
        status = self.service.status()
        cams = status["cameras"]
        for name, kind, help_, key in _PER_CAMERA:
            family = _family(name, kind, help_, ["camera"])
            for c in cams:
                if c[key] is not None:
                    family.add_metric([c["name"]], float(c[key]))
            yield family
        up = GaugeMetricFamily(
            "scenecls_camera_up", "1 when the camera's source is delivering frames.",
            labels=["camera"],
        )  # fmt: skip
        mismatch = GaugeMetricFamily(
            "scenecls_camera_mismatch",
            "1 while an alert is active (the label differs from the expected one).",
            labels=["camera"],
        )
        latency = GaugeMetricFamily(
            "scenecls_capture_to_label_seconds",
            "Capture-to-label latency quantiles over the last 300 frames.",
            labels=["camera", "quantile"],
        )
        for c in cams:
            up.add_metric([c["name"]], 1.0 if c["status"] == "running" else 0.0)
            mismatch.add_metric([c["name"]], 1.0 if c["alert"] else 0.0)
            for q, key in (("0.5", "latency_p50_ms"), ("0.95", "latency_p95_ms")):
                if c[key] is not None:
                    latency.add_metric([c["name"], q], c[key] / 1000)
        yield up
        yield mismatch
        yield latency
        yield GaugeMetricFamily(
            "scenecls_uptime_seconds", "Seconds since the service started.",
            value=float(status["uptime"]),
        )  # fmt: skip
        yield from _health(status)


def _health(status: dict[str, Any]) -> Iterator[Metric]:
    """The MQTT and webhook families, for the parts the service has."""
    mqtt = status.get("mqtt")
    if mqtt is not None:
        yield GaugeMetricFamily(
            "scenecls_mqtt_connected", "1 while connected to the MQTT broker.",
            value=1.0 if mqtt["connected"] else 0.0,
        )  # fmt: skip
    for part, name, kind, help_, key in _HEALTH:
        figures = status.get(part)
        if figures is not None and figures.get(key) is not None:
            family = _family(name, kind, help_, [])
            family.add_metric([], float(figures[key]))
            yield family
    for part in ("mqtt", "webhook"):
        at = (status.get(part) or {}).get("last_error_at")
        if at is not None:
            yield GaugeMetricFamily(
                f"scenecls_{part}_last_error_timestamp_seconds",
                f"UNIX time of the last {part} problem (its text: /api/status).",
                value=datetime.fromisoformat(at.replace("Z", "+00:00")).timestamp(),
            )


def metrics_registry(service: Service) -> CollectorRegistry:
    """A registry of its own (not the process-wide default) holding the service's
    collector, so two services in one process never mix their figures."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ServiceCollector(service))
    return registry


def prometheus_text(registry: CollectorRegistry) -> bytes:
    """The text exposition of ``registry`` (UTF-8)."""
    return generate_latest(registry)


class _ExampleService:
    """Stands in for a :class:`Service` whose every part is present (one camera with every
    figure known, MQTT and a webhook that both failed once): what the reference lists."""

    def status(self) -> dict[str, Any]:
        camera: dict[str, Any] = {key: 1 for *_, key in _PER_CAMERA}
        camera.update(name="pass", status="running", alert=None, latency_p50_ms=1.0,
                      latency_p95_ms=2.0)  # fmt: skip
        parts: dict[str, dict[str, Any]] = {"mqtt": {"connected": True}, "webhook": {}}
        for part, *_, key in _HEALTH:
            parts[part][key] = 1
        for figures in parts.values():
            figures["last_error_at"] = "2026-01-01T00:00:00Z"
        return {"cameras": [camera], "uptime": 1.0, **parts}


def metric_reference() -> list[tuple[str, str, list[str], str]]:
    """Every metric family a scrape can return, as ``(name, type, labels, help)``, in the
    order of the exposition: the collector run on a service that has every part. Names
    are as Prometheus sees them (counters end in ``_total``); ``labels`` are the label
    names of its samples (``[]`` for none)."""
    found = []
    for family in ServiceCollector(_ExampleService()).collect():  # type: ignore[arg-type]
        name = family.name + ("_total" if family.type == "counter" else "")
        labels = sorted({k for sample in family.samples for k in sample.labels})
        found.append((name, family.type, labels, family.documentation))
    return found
