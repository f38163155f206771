"""``scenecls serve``: the kitchen verification service from the command line."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import sys
from pathlib import Path
from urllib.parse import urlparse

from ..errors import OutputError, UsageError
from ..interrupts import guard_of
from ..redact import redact_url
from ..region import Region
from .options import Example, check_region, examples_epilog, labels_of

log = logging.getLogger("scenecls")


EXAMPLES: list[Example] = [
    Example(
        "a camera (here a video in a loop) on the live page http://127.0.0.1:8000",
        'scenecls serve video.mp4 --loop --labels "street,parking lot"',
        background="http://127.0.0.1:8000/healthz",
    ),
    Example(
        "the kitchen pass on port 8001: pizza labels, history kept in kitchen-data/",
        "scenecls serve videos/bottles.mp4 --loop --name pass --labels pizza --data kitchen-data "
        "--port 8001",
        background="http://127.0.0.1:8001/healthz",
    ),
    Example(
        "a network camera at the pass, its login in cams.txt (pass USER:PASSWORD)",
        "scenecls serve rtsp://192.168.1.20/stream1 --name pass --labels pizza "
        "--camera-credentials-file cams.txt",
        not_run="needs a network camera",
    ),
]


def add_serve_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    from .options import (
        add_gate_options,
        add_label_options,
        add_model_options,
        add_region_options,
        add_smoothing_options,
    )

    p = sub.add_parser(
        "serve",
        parents=[common],
        help="watch cameras and serve a live page, an HTTP API and expected-label alerts",
        description="Run the pipeline on one or more cameras (batched through one model) "
        "and serve a live web page, a JSON API, server-sent events and Prometheus metrics. "
        "POST /api/expect sets the label that should be at the pass; a mismatch that lasts "
        "longer than --alert-after raises one alert (event, snapshot, webhook). With --data "
        "DIR every camera's history is kept (searchable: GET /api/search, the page, "
        "scenecls search DIR) and its recordings are played back on the page.",
        epilog=examples_epilog(EXAMPLES),
    )
    p.add_argument(
        "sources",
        nargs="+",
        metavar="SOURCE",
        help="camera: webcam index, stream URL, video file (played in real time) or folder",
    )
    p.add_argument(
        "--name",
        action="append",
        default=[],
        help="camera name, once per SOURCE in order (default: cam1, cam2, ...)",
    )
    add_model_options(p)
    add_label_options(p)
    add_region_options(p, per_camera=True)
    add_gate_options(p)
    add_smoothing_options(p)
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="TCP port (default 8000; 0: any free)")
    p.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        metavar="NAME",
        help="also answer requests for this host name (the Host header; repeatable), such "
        "as the name a reverse proxy or the kitchen's DNS gives the service; others are "
        "refused (DNS rebinding). Always answered: the address it listens on (any IP "
        "address when --host is 0.0.0.0 or ::, and the machine's name), and localhost on "
        "loopback. '*' turns the check off",
    )
    p.add_argument("--webhook", help="POST each alert (and its resolution) as JSON to this URL")
    p.add_argument("--snapshots", type=Path, help="folder for a JPEG of each alert")
    p.add_argument(
        "--data",
        type=Path,
        metavar="DIR",
        help="the service's data folder (created when missing): each camera's settings "
        "(a region set on the page), its examples ('This is: X' on the page) and the "
        "label set taught from them are kept there and survive a restart; so is each "
        "camera's history (DIR/history: every analysed frame's embedding, the labels and "
        "the alerts, written as it goes; searchable on the page, by GET /api/search and by "
        "'scenecls search DIR TEXT'), and the recordings go to DIR/recordings (WebM, played "
        "on the page) unless --record says otherwise",
    )
    p.add_argument(
        "--flush-seconds",
        type=float,
        default=10.0,
        metavar="S",
        help="with --data: the history is made durable at least every S seconds (default "
        "10): a crash or power cut loses at most the last S seconds of it",
    )
    g = p.add_argument_group("recordings")
    g.add_argument(
        "--record",
        type=Path,
        metavar="DIR",
        help="record each camera's annotated video into DIR, as CAMERA-YYYYmmdd-HHMMSS.webm "
        "files that rotate (UTC start times); with --data the default DIR is DATA/recordings",
    )
    g.add_argument(
        "--record-format",
        choices=["webm", "mp4"],
        default="webm",
        help="recording files: webm (VP8; the page and any browser play it; the default) or "
        "mp4 (MPEG-4 part 2: smaller, for desktop players; browsers do not play it)",
    )
    g.add_argument(
        "--segment-minutes",
        type=float,
        default=10.0,
        metavar="M",
        help="minutes per recording file (default 10); each file is complete and "
        "playable as soon as the next starts",
    )
    g.add_argument(
        "--keep-hours",
        type=float,
        default=24.0,
        metavar="H",
        help="delete recordings and history older than H hours (default 24; 0: keep all)",
    )
    p.add_argument(
        "--token",
        help="require this token on every route but /healthz: scripts send "
        "'Authorization: Bearer TOKEN', people log in once at /login (default: "
        "$SCENECLS_TOKEN, which other users cannot read in the process list)",
    )
    p.add_argument(
        "--metrics-open",
        action="store_true",
        help="with --token: leave /metrics open (for a Prometheus server without the token)",
    )
    g = p.add_argument_group("MQTT (labels, alerts and events out; expectations in)")
    g.add_argument(
        "--mqtt",
        metavar="HOST[:PORT]",
        help="publish to this MQTT broker (port 1883 unless given), with Home Assistant discovery",
    )
    g.add_argument("--mqtt-user", help="user name at the broker")
    g.add_argument(
        "--mqtt-password",
        help="password at the broker (better: set SCENECLS_MQTT_PASSWORD, which other users "
        "of the machine cannot read in the process list)",
    )
    g.add_argument("--mqtt-tls", action="store_true", help="connect with TLS (port 8883 usually)")
    g.add_argument("--mqtt-ca", type=Path, metavar="FILE", help="CA certificate for TLS")
    g.add_argument(
        "--mqtt-insecure", action="store_true", help="TLS without checking the certificate"
    )
    g.add_argument("--mqtt-prefix", default="scenecls", help="topic prefix (default scenecls)")
    g.add_argument(
        "--mqtt-discovery-prefix",
        default="homeassistant",
        help="Home Assistant discovery prefix (default homeassistant)",
    )
    p.add_argument(
        "--alert-after",
        type=float,
        default=2.0,
        help="seconds a mismatch must last before it alerts (default 2)",
    )
    p.add_argument("--loop", action="store_true", help="replay video files when they end")
    p.add_argument(
        "--camera-credentials-file",
        type=Path,
        metavar="FILE",
        help="camera logins, one 'CAMERA USER:PASSWORD' line per --name (chmod 600), put "
        "into that camera's stream URL only when it is opened, so no password is in the "
        "command line (default: $SCENECLS_CAMERA_CREDENTIALS, naming such a file)",
    )
    p.add_argument(
        "--rtsp-transport",
        choices=["tcp", "udp"],
        help="how rtsp:// cameras send video: tcp (through firewalls and NAT, no lost "
        "packets) or udp (the default of most cameras; FFmpeg's choice when not given)",
    )
    p.add_argument(
        "--fps",
        type=float,
        help="analyse at most N frames per second of each camera (default: every frame)",
    )
    p.add_argument(
        "--image-fps",
        type=float,
        default=1.0,
        help="frames per second for image-folder sources (default 1)",
    )


def _camera_names(sources: list[str], names: list[str]) -> list[str]:
    if names and len(names) != len(sources):
        raise UsageError(
            f"{len(names)} --name for {len(sources)} sources: give one --name per SOURCE, "
            "in order, or none"
        )
    names = names or [f"cam{i + 1}" for i in range(len(sources))]
    for n in names:
        if not n or not all(c.isalnum() or c in "-_." for c in n):
            raise UsageError(f"camera name {n!r}: use letters, digits, '-', '_' and '.' only")
    if len(set(names)) != len(names):
        raise UsageError(f"camera names must differ: {', '.join(names)}")
    return names


def _camera_regions(names: list[str], regions: list[Region]) -> dict[str, Region | None]:
    """``--region``: none, one for every camera, or one per SOURCE in order."""
    if len(regions) > 1 and len(regions) != len(names):
        raise UsageError(
            f"{len(regions)} --region for {len(names)} sources: give one --region per SOURCE, "
            "in order, one for all, or none"
        )
    if len(regions) == 1:
        return dict.fromkeys(names, regions[0])
    return dict(zip(names, regions or [None] * len(names), strict=True))


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check(args: argparse.Namespace) -> list[str]:
    names = _camera_names(args.sources, args.name)
    args.regions = _camera_regions(names, args.region)
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port must be 0..65535, not {args.port}")
    if not args.alert_after > 0:
        raise UsageError(f"--alert-after must be more than 0 seconds, not {args.alert_after}")
    if args.image_fps <= 0:
        raise UsageError(f"--image-fps must be more than 0, not {args.image_fps}")
    if args.fps is not None and not args.fps > 0:
        raise UsageError(f"--fps must be more than 0, not {args.fps}")
    if args.webhook:
        url = urlparse(args.webhook)
        try:
            port_ok = url.port != 0
        except ValueError:  # not a number, or out of range
            port_ok = False
        if url.scheme not in ("http", "https") or not url.hostname or not port_ok:
            raise UsageError(
                f"--webhook must be an http:// or https:// URL, not {redact_url(args.webhook)!r}"
            )
    _camera_credentials(args, names)
    if args.token is None:
        args.token = os.environ.get("SCENECLS_TOKEN") or None
    if args.token is not None and not args.token.strip():
        raise UsageError("--token must not be empty")
    args.mqtt_config = None
    if args.mqtt is not None:
        from ..serve.mqtt import MqttConfig, check_topics

        check_topics(names)  # k.1 and k_1 would be one topic
        args.mqtt_config = MqttConfig.parse(
            args.mqtt,
            username=args.mqtt_user,
            password=args.mqtt_password or os.environ.get("SCENECLS_MQTT_PASSWORD"),
            tls=args.mqtt_tls,
            ca_file=args.mqtt_ca,
            insecure=args.mqtt_insecure,
            prefix=args.mqtt_prefix,
            discovery_prefix=args.mqtt_discovery_prefix,
        )
    elif any(getattr(args, a) for a in ("mqtt_user", "mqtt_password", "mqtt_tls", "mqtt_ca")):
        raise UsageError("the --mqtt-... options need --mqtt HOST[:PORT]")
    if not args.segment_minutes > 0:
        raise UsageError(f"--segment-minutes must be more than 0, not {args.segment_minutes}")
    if not args.keep_hours >= 0:
        raise UsageError(f"--keep-hours must be 0 (keep all) or more, not {args.keep_hours}")
    if not args.flush_seconds > 0:
        raise UsageError(f"--flush-seconds must be more than 0, not {args.flush_seconds:g}")
    if args.record is not None and not args.record.is_dir():
        raise UsageError(f"--record {args.record}: no such folder: create it first")
    if args.snapshots is not None:
        try:
            args.snapshots.mkdir(parents=True, exist_ok=True)
            probe = args.snapshots / ".scenecls-write-test"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as e:
            raise OutputError(
                f"--snapshots {args.snapshots}: cannot write there ({e.strerror}): "
                "pick a writable folder"
            ) from e
    if args.data is not None:
        from ..serve.settings import open_data_folder

        open_data_folder(args.data)
    from ..serve.hosts import HostPolicy

    args.hosts = HostPolicy.for_bind(args.host, args.allowed_host)
    if not _is_loopback(args.host) and not args.token:
        log.warning(
            "serving on %s without --token: anyone on the network can watch the cameras "
            "and change the expected labels; add --token",
            args.host,
        )
    if args.token and len(args.token.strip()) < 16:
        log.warning(
            "--token is short: use 16 or more random characters (openssl rand -hex 16); "
            "only the login form is rate-limited"
        )
    return names


def _camera_credentials(args: argparse.Namespace, names: list[str]) -> None:
    """``--camera-credentials-file`` (else ``$SCENECLS_CAMERA_CREDENTIALS``): read and
    checked against the cameras into ``args.credentials`` (``{}`` without a file)."""
    from ..serve.credentials import ENV, check_camera_credentials, load_camera_credentials

    path = args.camera_credentials_file or os.environ.get(ENV) or None
    args.credentials = {}
    if path is None:
        return
    args.credentials = load_camera_credentials(Path(path))
    cameras = dict(zip(names, args.sources, strict=True))
    check_camera_credentials(args.credentials, cameras, Path(path))


def run_serve(args: argparse.Namespace) -> int:
    import asyncio

    from ..model.scene_model import load_model
    from ..video.gate import GateConfig
    from ..video.smoothing import SmoothingConfig
    from ..video.sources import open_source

    names = _check(args)
    smoothing = SmoothingConfig.from_args(args)
    gate = GateConfig.from_args(args)
    labelset = labels_of(args)  # a taught set's region, when --region gives none
    args.regions = _camera_regions(names, args.region)
    for name, spec in zip(names, args.sources, strict=True):
        # a typo'd path or URL scheme fails now, in one line
        source = open_source(spec, image_fps=args.image_fps)
        if args.regions[name] is not None and not source.live:
            source.open()  # a file's size is known: a region outside it fails now too
            source.close()
            check_region(args.regions[name], source.size, f"camera {name} ({redact_url(spec)})")
    model = guard_of(args).call(
        load_model, args.model, device=args.device, precision=args.precision, batch_size=8
    )
    return asyncio.run(_serve(args, names, labelset, model, smoothing, gate))


async def _serve(args, names, labelset, model, smoothing, gate) -> int:  # type: ignore[no-untyped-def]
    import asyncio
    import signal

    from aiohttp import web

    from ..serve.app import create_app
    from ..serve.connections import listen, runner_options
    from ..serve.service import Service
    from ..serve.webhook import WebhookSender

    webhook = WebhookSender(args.webhook) if args.webhook else None
    service = Service(
        model,
        labelset,
        list(zip(names, args.sources, strict=True)),
        loop=args.loop,
        alert_after=args.alert_after,
        smoothing=smoothing,
        snapshots=args.snapshots,
        webhook=webhook,
        image_fps=args.image_fps,
        gate=gate,
        max_fps=args.fps,
        rtsp_transport=args.rtsp_transport,
        record=args.record,
        segment_minutes=args.segment_minutes,
        keep_hours=args.keep_hours or None,
        regions=args.regions,
        data=args.data,
        credentials=args.credentials,
        flush_seconds=args.flush_seconds,
        record_format=args.record_format,
    )
    loop = asyncio.get_running_loop()
    service.events.bind(loop)
    runner = web.AppRunner(
        create_app(service, args.token or "", metrics_open=args.metrics_open, hosts=args.hosts),
        handle_signals=False,
        shutdown_timeout=1.0,
        **runner_options(),  # the idle timeout; malformed requests logged in one line
    )
    await runner.setup()
    try:  # (not aiohttp's TCPSite: the connection cap and the head timeout are ours)
        listening, _ = await listen(runner, args.host, args.port)
    except OSError as e:
        await runner.cleanup()
        if webhook is not None:
            webhook.close()
        import errno

        why = "the port is in use" if e.errno == errno.EADDRINUSE else (e.strerror or str(e))
        raise UsageError(
            f"cannot listen on {args.host}:{args.port}: {why}: pick another --port or --host"
        ) from e
    bridge = None
    if args.mqtt_config is not None:
        from ..serve.mqtt import MqttBridge

        bridge = MqttBridge(service, args.mqtt_config).start()
    service.start()
    sockets = listening.sockets
    port = sockets[0].getsockname()[1] if sockets else args.port
    host = f"[{args.host}]" if ":" in args.host else args.host
    # one write, line and newline together: print() writes them apart, and a thread's
    # log line (MQTT, the history) could land between them
    sys.stderr.write(f"scenecls: serving {len(names)} camera(s) on http://{host}:{port}/\n")
    sys.stderr.flush()
    stop = asyncio.Event()
    signals = 0

    def on_signal() -> None:
        nonlocal signals
        signals += 1
        if signals > 1:
            import os

            os._exit(130)
        log.warning("stopping (press Ctrl-C again to quit at once)")
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        listening.close()  # no new connections; those open end below
        await runner.shutdown()
        await runner.cleanup()
        await asyncio.to_thread(service.stop)
        if bridge is not None:
            await asyncio.to_thread(bridge.stop)
    return 0
