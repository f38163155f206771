"""The HTTP and MQTT references are generated from the tables the service is built from
(scenecls/serve/routes.py, scenecls/serve/mqtt_topics.py): the app registers exactly the
routes of its table, each route's access is what the service enforces, the MQTT bridge
publishes and subscribes only to topics of its table, and the reference pages render
every entry."""

from __future__ import annotations

import ast
import asyncio
import inspect
import json
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from scenecls.model.labels import resolve_labels
from scenecls.model.scene_model import load_model
from scenecls.serve import mqtt as mqtt_module
from scenecls.serve.app import create_app
from scenecls.serve.history_api import HistoryApi
from scenecls.serve.metrics import metric_reference, metrics_registry, prometheus_text
from scenecls.serve.mqtt import MqttBridge, MqttConfig, topic_name
from scenecls.serve.mqtt_topics import PUBLISHED, SUBSCRIBED, TOPICS, Topic, check_topics_table
from scenecls.serve.routes import (
    ACCESS,
    ROUTES,
    SECTIONS,
    Route,
    RouteTableError,
    check_router,
    check_table,
    route_defs,
)
from scenecls.serve.service import Service

REPO = Path(__file__).resolve().parents[1]
MODEL = Path(__file__).parent / "fixtures" / "shapes-clip"
TOKEN = "reference-token-0123456789"
CAMERA = "pass"


@pytest.fixture(scope="module")
def service() -> Service:
    """A service that is never started: enough to build the app (nothing is served that
    needs a frame)."""
    model = load_model(MODEL, device="cpu", precision="fp32")
    return Service(model, resolve_labels("a,b"), [(CAMERA, "/nowhere.mp4")])


def _routes_of(app: web.Application) -> set[tuple[str, str]]:
    """(method, path) of every route the app answers, but aiohttp's HEAD of each GET."""
    found = {(r.method, r.resource.canonical) for r in app.router.routes() if r.resource}
    return {(m, p) for m, p in found if m != "HEAD"}


# -- the HTTP routes ------------------------------------------------------------------


def test_every_route_has_a_summary_access_and_section() -> None:
    check_table()
    for route in ROUTES:
        assert route.summary.strip() and route.access.strip(), route.request
        assert route.access in ACCESS and route.section in SECTIONS, route.request
    assert set(ACCESS) == {r.access for r in ROUTES}, "an access level no route has"
    assert set(SECTIONS) == {r.section for r in ROUTES}, "a section without routes"


def test_the_app_registers_exactly_the_routes_of_the_table(service: Service) -> None:
    app = create_app(service, TOKEN)
    assert _routes_of(app) == {(r.method, r.path) for r in ROUTES}
    # every GET also answers HEAD, as aiohttp's add_get did
    heads = {p for r in app.router.routes() if r.method == "HEAD" for p in [r.resource.canonical]}
    assert heads == {r.path for r in ROUTES if r.method == "GET"}


def test_a_route_without_a_handler_or_a_handler_without_a_route_fails_loudly(
    service: Service,
) -> None:
    app = create_app(service, TOKEN)
    ghost = Route("GET", "/api/ghost", "ghost", "token", "live", "nothing")
    with pytest.raises(RouteTableError, match="without a handler: GET /api/ghost"):
        check_router(app.router, (*ROUTES, ghost))
    with pytest.raises(RouteTableError, match="outside the table: GET /healthz"):
        check_router(app.router, tuple(r for r in ROUTES if r.path != "/healthz"))

    async def handler(request: web.Request) -> web.Response:
        return web.Response()

    with pytest.raises(RouteTableError, match="handlers ghost serve no route"):
        route_defs({"ghost": handler})

    class Wider(HistoryApi):
        HANDLERS = (*HistoryApi.HANDLERS, "_camera")

    with pytest.raises(RouteTableError, match="camera serve no route"):
        Wider(service).routes()
    # a malformed entry
    with pytest.raises(RouteTableError, match="access"):
        check_table((replace(ROUTES[0], access="anyone"),))
    with pytest.raises(RouteTableError, match="twice"):
        check_table((ROUTES[0], ROUTES[0]))


def _concrete(path: str) -> str:
    """A path of the pattern ``path`` that reaches the route (``/stream/NAME.mjpg``)."""
    return (
        path.replace("/stream/{camera}", f"/stream/{CAMERA}.mjpg")
        .replace("/snapshot/{camera}", f"/snapshot/{CAMERA}.jpg")
        .replace("{camera}", CAMERA)
        .replace("{name}", "pass-20260101-000000.webm")
    )


def _statuses(service: Service, metrics_open: bool) -> dict[Route, tuple[int, str, str]]:
    """(status, Location, body) of each route asked without the token, of an app with
    one."""

    async def ask() -> dict[Route, tuple[int, str, str]]:
        app = create_app(service, TOKEN, metrics_open=metrics_open)
        async with TestClient(TestServer(app)) as client:
            found = {}
            for route in ROUTES:
                reply = await client.request(
                    route.method, _concrete(route.path), allow_redirects=False
                )
                body = await reply.text() if reply.status != 200 else ""
                found[route] = (reply.status, reply.headers.get("Location", ""), body)
                reply.close()
            return found

    return asyncio.run(ask())


def test_each_routes_access_is_what_the_service_enforces(service: Service) -> None:
    """Without the token: an open route is answered, a token route refused (401), the
    page sends a browser to the login form, /metrics is open only with --metrics-open."""
    for metrics_open in (False, True):
        for route, (status, location, body) in _statuses(service, metrics_open).items():
            shown = f"{route.request} (metrics_open={metrics_open}): {status} {body[:80]}"
            # (the token check's own refusal: the login form's "wrong token" is no refusal)
            refused = status == 401 and "missing or wrong token" in body
            if route.access == "open":
                assert not refused, shown
            elif route.access == "token":
                assert refused, shown
            elif route.access == "token, else the login form":
                assert status == 303 and location.startswith("/login"), shown
            elif route.access == "token unless --metrics-open":
                assert refused != metrics_open, shown
            else:  # pragma: no cover - check_table refuses it
                raise AssertionError(f"unknown access {route.access!r}")


# -- the MQTT topics --------------------------------------------------------------------


class FakeClient:
    """Stands in for paho's client: records what the bridge publishes and subscribes."""

    def __init__(self) -> None:
        self.published: list[tuple[str, str, bool]] = []
        self.subscribed: list[str] = []

    def publish(self, topic: str, payload: str, qos: int = 0, retain: bool = False) -> Any:
        assert qos == 1, topic
        self.published.append((topic, payload, retain))
        return SimpleNamespace(rc=0, wait_for_publish=lambda timeout=None: None)

    def subscribe(self, topics: list[tuple[str, int]]) -> None:
        assert all(qos == 1 for _, qos in topics)
        self.subscribed += [t for t, _ in topics]

    def is_connected(self) -> bool:
        return True

    def disconnect(self) -> None:
        pass

    def loop_stop(self) -> None:
        pass


class FakeService:
    """What the bridge asks of the service, for one camera whose name is no topic level."""

    names = ("red circle", "blue ring")

    def __init__(self) -> None:
        self.model = SimpleNamespace(bundle=None)
        self.states: dict[str, Any] = {}
        self.events = SimpleNamespace(add_listener=print, remove_listener=lambda fn: None)
        self.expected: list[tuple[str, str, str | None]] = []

    def camera_names(self) -> list[str]:
        return ["k.1"]

    def status(self) -> dict[str, Any]:
        camera = {"name": "k.1", "status": "running", "alert": None, "label": "red circle"}
        return {"cameras": [camera]}

    def wall(self, t: float) -> str:
        return "2026-12-02T12:00:00.000Z"

    def expect(self, camera: str, label: str, order: str | None) -> None:
        self.expected.append((camera, label, order))

    def clear_expectation(self, camera: str) -> None:
        self.expected.append((camera, "", None))


PREFIXES = {"prefix": "kitchen/one", "discovery_prefix": "ha"}


def _which(topic: str, direction: str) -> str | None:
    """The name of the table's topic of ``direction`` that ``topic`` is, or None."""
    for name, entry in TOPICS.items():
        if entry.direction == direction and entry.match(topic, **PREFIXES) is not None:
            return name
    return None


@pytest.fixture
def bridge() -> tuple[MqttBridge, FakeClient, FakeService]:
    service = FakeService()
    config = MqttConfig("127.0.0.1", prefix="kitchen/one", discovery_prefix="ha")
    made = MqttBridge(service, config)  # type: ignore[arg-type]
    # the last will, set on paho's own client
    will = made.client._will_topic.decode()  # (paho keeps no public handle)
    assert _which(will, PUBLISHED) == "available" and TOPICS["available"].retained
    client = FakeClient()
    made.client = client  # type: ignore[assignment]
    return made, client, service


def test_the_bridge_publishes_and_subscribes_only_to_topics_of_the_table(bridge) -> None:  # type: ignore[no-untyped-def]
    made, client, _ = bridge
    check_topics_table()
    made._on_connect(client, None, None, SimpleNamespace(is_failure=False), None)
    for kind in ("segment", "alert", "alert_resolved", "expectation_set"):
        event = {"id": 1, "type": kind, "time": 1.0, "camera": "k.1", "label": "blue ring"}
        made._on_event(event)
    made.stop()
    assert made.trouble.count() == 0, made.trouble.last

    seen = {}
    for topic, payload, retain in client.published:
        name = _which(topic, PUBLISHED)
        assert name is not None, f"{topic} is not in the table TOPICS (mqtt_topics.py)"
        assert retain == TOPICS[name].retained, topic
        seen[name] = payload
    published = {n for n, t in TOPICS.items() if t.direction == PUBLISHED}
    assert set(seen) == published, "a published topic of the table the bridge never sends"
    assert "kitchen/one/k_1/label" in {t for t, _, _ in client.published}
    assert json.loads(seen["discovery_alert"])["state_topic"] == "kitchen/one/k_1/alert"

    subscribed = {n: t for n, t in TOPICS.items() if t.direction == SUBSCRIBED}
    wanted = {t.format(**PREFIXES, camera="+") for t in subscribed.values()}
    assert set(client.subscribed) == wanted


def test_an_expectation_comes_in_on_the_tables_topic(bridge) -> None:  # type: ignore[no-untyped-def]
    made, client, service = bridge
    topic = TOPICS["expect"].format(**PREFIXES, camera=topic_name("k.1"))
    made._on_message(client, None, SimpleNamespace(topic=topic, payload=b"Blue Ring"))
    assert service.expected == [("k.1", "blue ring", None)]
    other = TOPICS["expect"].format(**PREFIXES, camera="oven")
    made._on_message(client, None, SimpleNamespace(topic=other, payload=b"blue ring"))
    assert made.trouble.count("refused") == 1 and "no camera 'oven'" in str(made.trouble.last)
    status = TOPICS["discovery_status"].format(**PREFIXES)
    made._on_message(client, None, SimpleNamespace(topic=status, payload=b"online"))
    assert any(_which(t, PUBLISHED) == "discovery_label" for t, _, _ in client.published)


def test_topic_patterns_format_and_match() -> None:
    topic = Topic("{prefix}/{camera}/expect/set", SUBSCRIBED, False, "x")
    assert topic.format(prefix="a/b", camera="c", discovery_prefix="ha") == "a/b/c/expect/set"
    assert topic.match("a/b/c/expect/set", prefix="a/b") == {"camera": "c"}
    assert topic.match("a/b/c/d/expect/set", prefix="a/b") is None
    assert topic.match("x/c/expect/set", prefix="a/b") is None
    with pytest.raises(ValueError, match="wildcard"):
        check_topics_table({"bad": Topic("{prefix}/#", PUBLISHED, False, "x")})


def test_mqtt_py_builds_no_topic_by_hand() -> None:
    """Drift guard: every topic in mqtt.py comes from TOPICS, none from an f-string or a
    literal."""
    source = inspect.getsource(mqtt_module)
    wrong = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.JoinedStr):
            text = ast.get_source_segment(source, node) or ""
            constants = "".join(
                v.value
                for v in node.values
                if isinstance(v, ast.Constant) and isinstance(v.value, str)
            )
            if "/" in constants and ("prefix" in text or "base" in text or "cam" in text):
                wrong.append(f"line {node.lineno}: {text}")
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in {"publish", "_send", "will_set", "subscribe"}
            and node.args
            and isinstance(node.args[0], ast.Constant | ast.JoinedStr | ast.BinOp)
        ):
            wrong.append(f"line {node.lineno}: {node.func.attr} of a literal topic")
    assert not wrong, "topics built outside mqtt_topics.TOPICS:\n" + "\n".join(wrong)


# -- the rendered reference -------------------------------------------------------------


def test_the_directives_render_every_route_and_topic(tmp_path: Path) -> None:
    pytest.importorskip("sphinx")
    pytest.importorskip("myst_parser")
    from sphinx.cmd.build import build_main

    src = tmp_path / "src"
    src.mkdir()
    ext = REPO / "docs" / "_ext"
    (src / "conf.py").write_text(
        f"import sys\nsys.path[:0] = [{str(ext)!r}, {str(REPO)!r}]\n"
        "extensions = ['myst_parser', 'scenecls_tables']\n"
        "source_suffix = {'.md': 'markdown'}\nroot_doc = 'index'\nsmartquotes = False\n"
    )
    (src / "index.md").write_text(
        "# Reference\n\n```{scenecls-http-access}\n```\n\n```{scenecls-http-routes}\n```\n\n"
        "```{scenecls-http-routes}\n:section: live\n```\n\n```{scenecls-mqtt-topics}\n```\n\n"
        "```{scenecls-metrics}\n```\n"
    )
    out = tmp_path / "xml"
    argv = ["-W", "-q", "-b", "xml", "-d", str(tmp_path / "doctrees"), str(src), str(out)]
    assert build_main(argv) == 0
    tree = ET.parse(out / "index.xml")
    literals = [el.text or "" for el in tree.iter("literal")]
    tables = list(tree.iter("table"))
    assert len(tables) == 5
    all_routes = [el.text for el in tables[1].iter("literal")]
    for route in ROUTES:
        assert route.request in all_routes, route.request
    live = {el.text for el in tables[2].iter("literal")}
    assert {r.request for r in ROUTES if r.section == "live"} <= live
    assert not {r.request for r in ROUTES if r.section != "live"} & live
    for topic in TOPICS.values():
        assert topic.pattern in literals, topic.pattern
    for key in ACCESS:
        assert key in literals, key
    metric_names = [el.text for el in tables[4].iter("literal")]
    for name, *_ in metric_reference():
        assert name in metric_names, name
    text = "".join(tree.getroot().itertext())
    for route in ROUTES:
        assert " ".join(route.summary.replace("`", "").split())[:40] in " ".join(text.split())


def test_the_metrics_reference_is_what_a_scrape_returns(service: Service) -> None:
    """Every family a real scrape of the service returns is in the reference, with its
    type; and the reference lists each family once."""
    reference = {name: kind for name, kind, _, _ in metric_reference()}
    assert len(reference) == len(metric_reference())
    text = prometheus_text(metrics_registry(service)).decode()
    scraped = dict(line.split()[2:4] for line in text.splitlines() if line.startswith("# TYPE "))
    assert scraped, text
    for name, kind in scraped.items():
        # a counter is named with _total in the TYPE line or not, by prometheus_client version
        grows = kind == "counter" and not name.endswith("_total")
        documented = name + "_total" if grows else name
        assert reference.get(documented) == kind, f"{documented} ({kind}) is not in the reference"


def test_the_reference_pages_show_every_section_and_the_topics() -> None:
    http = (REPO / "docs" / "reference" / "http.md").read_text(encoding="utf-8")
    for section in SECTIONS:
        assert f":section: {section}\n" in http, section
    assert "```{scenecls-http-access}" in http
    mqtt = (REPO / "docs" / "reference" / "mqtt.md").read_text(encoding="utf-8")
    assert "```{scenecls-mqtt-topics}\n```" in mqtt
