"""``GET /metrics``: the service's figures in Prometheus' text exposition format (0.0.4)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .service import Service


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def prometheus_text(service: Service) -> str:
    """One gauge or counter per camera and figure, with HELP and TYPE lines."""
    status = service.status()
    cams = status["cameras"]
    rows: list[tuple[str, str, str, list[tuple[dict[str, str], float]]]] = []

    def per_camera(name: str, kind: str, help_: str, key: str, scale: float = 1.0) -> None:
        values = [
            ({"camera": c["name"]}, float(c[key]) * scale) for c in cams if c[key] is not None
        ]
        rows.append((name, kind, help_, values))

    per_camera("scenecls_camera_fps", "gauge", "Frames analysed per second (last 5 s).", "fps")
    per_camera(
        "scenecls_camera_frames_read_total", "counter", "Frames read from the source.",
        "frames_read",
    )  # fmt: skip
    per_camera(
        "scenecls_camera_frames_analysed_total", "counter", "Frames classified.",
        "frames_analysed",
    )  # fmt: skip
    per_camera(
        "scenecls_camera_frames_encoded_total", "counter",
        "Frames the image encoder ran on (the change gate let the others reuse one).",
        "frames_encoded",
    )  # fmt: skip
    per_camera(
        "scenecls_camera_encoded_ratio", "gauge",
        "Share of analysed frames that were encoded, since the start.", "encoded_share",
    )  # fmt: skip
    per_camera(
        "scenecls_camera_dropped_frames_total", "counter",
        "Frames dropped to keep latency low (a newer frame was ready).", "dropped",
    )  # fmt: skip
    per_camera(
        "scenecls_camera_reconnects_total", "counter", "Times the source was reopened.",
        "reconnects",
    )  # fmt: skip
    per_camera("scenecls_alerts_total", "counter", "Mismatch alerts raised.", "alerts")
    rows.append(
        (
            "scenecls_camera_up",
            "gauge",
            "1 when the camera's source is delivering frames.",
            [({"camera": c["name"]}, 1.0 if c["status"] == "running" else 0.0) for c in cams],
        )
    )
    rows.append(
        (
            "scenecls_camera_mismatch",
            "gauge",
            "1 while an alert is active (the label differs from the expected one).",
            [({"camera": c["name"]}, 1.0 if c["alert"] else 0.0) for c in cams],
        )
    )
    latency = []
    for c in cams:
        for q, key in (("0.5", "latency_p50_ms"), ("0.95", "latency_p95_ms")):
            if c[key] is not None:
                latency.append(({"camera": c["name"], "quantile": q}, c[key] / 1000))
    rows.append(
        (
            "scenecls_capture_to_label_seconds",
            "gauge",
            "Capture-to-label latency quantiles over the last 300 frames.",
            latency,
        )
    )
    rows.append(
        ("scenecls_uptime_seconds", "gauge", "Seconds since the service started.",
         [({}, float(status["uptime"]))])
    )  # fmt: skip
    out = []
    for name, kind, help_, values in rows:
        out.append(f"# HELP {name} {help_}")
        out.append(f"# TYPE {name} {kind}")
        for labels, value in values:
            lab = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
            out.append(f"{name}{{{lab}}} {value:g}" if lab else f"{name} {value:g}")
    return "\n".join(out) + "\n"
