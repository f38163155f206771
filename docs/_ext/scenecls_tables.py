"""Sphinx extension: the reference tables generated from the code, so the pages cannot
drift from what the service does.

- ``scenecls-http-routes`` renders :data:`scenecls.serve.routes.ROUTES`, the table the
  service registers its routes from (option ``:section: NAME``: only that part of the
  API, a key of :data:`~scenecls.serve.routes.SECTIONS`);
- ``scenecls-http-access`` renders :data:`~scenecls.serve.routes.ACCESS`, what each
  access level of the routes table means;
- ``scenecls-mqtt-topics`` renders :data:`scenecls.serve.mqtt_topics.TOPICS`, the table
  the MQTT bridge builds its topics from (option ``:direction: published`` or
  ``subscribed``: only those);
- ``scenecls-metrics`` renders :func:`scenecls.serve.metrics.metric_reference`, every
  family ``GET /metrics`` can return, from the service's own collector.

In a Markdown (MyST) page::

    ```{scenecls-http-routes}
    :section: live
    ```

Text in backquotes in the tables' descriptions becomes code, and so do option names
(``--token``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, ClassVar

from docutils import nodes
from docutils.parsers.rst import directives
from sphinx.util.docutils import SphinxDirective

from scenecls.serve import metrics, mqtt_topics, routes
from scenecls.serve.mqtt_topics import EXAMPLE, PUBLISHED, SUBSCRIBED, TOPICS
from scenecls.serve.routes import ACCESS, ROUTES, SECTIONS

_CODE = re.compile(r"(`[^`]+`|--[a-z][a-z-]*[a-z])")
CSS_FILE = "scenecls-tables.css"
CSS = """/* the generated reference tables (docs/_ext/scenecls_tables.py): the columns keep their
   widths, and long paths and topics wrap inside them */
table.scenecls-table { table-layout: fixed; width: 100%; }
table.scenecls-table td:first-child code.literal,
table.scenecls-table td:first-child code.literal .pre {
  white-space: normal; overflow-wrap: anywhere;
}
"""


def inline(text: str) -> list[nodes.Node]:
    """``text`` as docutils inline nodes: what is in backquotes, and option names such as
    ``--token``, as code; the rest as plain text."""
    found: list[nodes.Node] = []
    for part in _CODE.split(text):
        if not part:
            continue
        if part.startswith("`") and part.endswith("`") and len(part) > 1:
            found.append(nodes.literal(part[1:-1], part[1:-1]))
        elif _CODE.fullmatch(part):
            found.append(nodes.literal(part, part))
        else:
            found.append(nodes.Text(part))
    return found


def paragraph(text: str, lead: str = "") -> nodes.paragraph:
    """A paragraph of ``text`` (see :func:`inline`), after ``lead`` in bold when given."""
    para = nodes.paragraph()
    if lead:
        para += nodes.strong(lead, lead)
        para += nodes.Text(" ")
    para.extend(inline(text))
    return para


def table(
    headers: list[str], rows: list[list[list[nodes.Node]]], widths: list[int], name: str
) -> nodes.table:
    """A docutils table: ``headers``, then ``rows`` (each a list of cells, each cell a
    list of body nodes), columns of relative ``widths``; ``name`` is its CSS class."""
    tab = nodes.table(classes=["scenecls-table", name, "colwidths-given"])
    group = nodes.tgroup(cols=len(headers))
    tab += group
    for width in widths:
        group += nodes.colspec(colwidth=width)
    head = nodes.thead()
    group += head
    head_row = nodes.row()
    for title in headers:
        entry = nodes.entry()
        entry += nodes.paragraph(title, title)
        head_row += entry
    head += head_row
    body = nodes.tbody()
    group += body
    for cells in rows:
        row = nodes.row()
        for cell in cells:
            entry = nodes.entry()
            entry.extend(cell)
            row += entry
        body += row
    return tab


def routes_table(section: str | None = None) -> nodes.table:
    """The routes of :data:`~scenecls.serve.routes.ROUTES` (those of ``section``, or all)
    as a table: request, who may call it, what it takes and answers."""
    rows = []
    for route in ROUTES:
        if section is not None and route.section != section:
            continue
        request = nodes.paragraph()
        request += nodes.literal(route.request, route.request)
        answer: list[nodes.Node] = [paragraph(route.summary)]
        if route.params:
            answer.append(paragraph(route.params, "Takes:"))
        if route.errors:
            answer.append(paragraph(route.errors, "Errors:"))
        rows.append([[request], [paragraph(route.access)], answer])
    return table(["Request", "Access", "What it answers"], rows, [26, 14, 60], "scenecls-http")


def access_table() -> nodes.table:
    """What each access level of the routes table means."""
    rows = [
        [[nodes.paragraph("", "", nodes.literal(key, key))], [paragraph(meaning)]]
        for key, meaning in ACCESS.items()
    ]
    return table(["Access", "Who may call the route"], rows, [25, 75], "scenecls-access")


def topics_table(direction: str | None = None) -> nodes.table:
    """The topics of :data:`~scenecls.serve.mqtt_topics.TOPICS` (those of ``direction``,
    or all) as a table: the pattern and an example; ``out`` (published, and whether
    retained) or ``in`` (subscribed); the payload."""
    rows = []
    for topic in TOPICS.values():
        if direction is not None and topic.direction != direction:
            continue
        example = topic.format(**EXAMPLE)
        pattern = nodes.paragraph()
        pattern += nodes.literal(topic.pattern, topic.pattern)
        shown = nodes.paragraph()
        shown += nodes.Text("e.g. ")
        shown += nodes.literal(example, example)
        if topic.direction == PUBLISHED:
            direction_text = "out, retained" if topic.retained else "out"
        else:
            direction_text = "in"
        rows.append(
            [
                [pattern, shown],
                [nodes.paragraph(direction_text, direction_text)],
                [paragraph(topic.payload)],
            ]
        )
    headers = ["Topic", "Direction", "Payload"]
    return table(headers, rows, [40, 12, 48], "scenecls-mqtt")


def metrics_table() -> nodes.table:
    """Every Prometheus family of ``GET /metrics``: name, type, labels, what it counts."""
    rows = []
    for name, kind, labels, help_ in metrics.metric_reference():
        shown = nodes.paragraph()
        shown += nodes.literal(name, name)
        label_cell = nodes.paragraph()
        for i, label in enumerate(labels):
            if i:
                label_cell += nodes.Text(", ")
            label_cell += nodes.literal(label, label)
        rows.append([[shown], [nodes.paragraph(kind, kind)], [label_cell], [paragraph(help_)]])
    headers = ["Metric", "Type", "Labels", "What it is"]
    return table(headers, rows, [38, 10, 16, 36], "scenecls-metrics")


class HttpRoutes(SphinxDirective):
    """``scenecls-http-routes``: the service's HTTP routes."""

    has_content = False
    option_spec: ClassVar[dict[str, Any]] = {
        "section": lambda arg: directives.choice(arg, tuple(SECTIONS))
    }

    def run(self) -> list[nodes.Node]:
        self.env.note_dependency(routes.__file__)  # the page is read again when it changes
        return [routes_table(self.options.get("section"))]


class HttpAccess(SphinxDirective):
    """``scenecls-http-access``: what the access levels of the routes mean."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        self.env.note_dependency(routes.__file__)
        return [access_table()]


class MqttTopics(SphinxDirective):
    """``scenecls-mqtt-topics``: the MQTT bridge's topics."""

    has_content = False
    option_spec: ClassVar[dict[str, Any]] = {
        "direction": lambda arg: directives.choice(arg, (PUBLISHED, SUBSCRIBED))
    }

    def run(self) -> list[nodes.Node]:
        self.env.note_dependency(mqtt_topics.__file__)
        return [topics_table(self.options.get("direction"))]


class Metrics(SphinxDirective):
    """``scenecls-metrics``: the service's Prometheus metrics."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        self.env.note_dependency(metrics.__file__)
        return [metrics_table()]


def _write_css(app: Any, error: Exception | None) -> None:
    """After an HTML build: the tables' style sheet, in the site's ``_static``."""
    if error is None and getattr(app.builder, "format", "") == "html":
        static = Path(app.outdir) / "_static"
        static.mkdir(parents=True, exist_ok=True)
        (static / CSS_FILE).write_text(CSS, encoding="utf-8")


def setup(app: Any) -> dict[str, Any]:
    """Register the directives and the tables' style sheet."""
    app.add_directive("scenecls-http-routes", HttpRoutes)
    app.add_directive("scenecls-http-access", HttpAccess)
    app.add_directive("scenecls-mqtt-topics", MqttTopics)
    app.add_directive("scenecls-metrics", Metrics)
    app.add_css_file(CSS_FILE)
    app.connect("build-finished", _write_css)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
