"""The training report of a taught label set as one self-contained HTML page
(``scenecls teach --report DIR`` writes it as ``DIR/index.html``).

The page shows what a user needs before relying on the set: the classifier chosen and
its cross-validated accuracy next to text-only zero-shot on the same examples (what the
examples bought), per-label precision and recall, the confusion matrix, the warnings
about the examples, the candidates tried, and the worst examples as thumbnails of what
the classifier saw (the region's crop when the set has one), captioned with where each
came from, its given and predicted label and its margin. Pictures are embedded as
``data:`` URIs; an example whose picture cannot be read (file gone, video missing) gets
a placeholder saying why. All text from the set is escaped.
"""

from __future__ import annotations

import base64
import html
import math
import threading
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..archive.moments import write_html
from ..archive.search import clock
from ..errors import InputError
from ..model.embeddings_store import StoreError, read_meta
from ..model.taught import TaughtSet
from ..region import Region, region_crop
from ..video.sources.images import read_image
from .examples import is_store
from .suggest import frames_at

THUMB_SIDE = 240
"""Thumbnails fit in a square of this many pixels."""
MAX_WORST = 24
JPEG_QUALITY = 80
PAGE = "index.html"

_STYLE = (
    "body{font-family:sans-serif;margin:1.5em;background:#fafafa;color:#222}"
    "table{border-collapse:collapse;margin:.5em 0 1.2em;background:#fff}"
    "th,td{border:1px solid #ddd;padding:.25em .6em;text-align:right}"
    "th:first-child,td:first-child{text-align:left}"
    ".figures td{text-align:left}.big{font-size:1.4em;font-weight:bold}"
    ".confusion td{min-width:2.5em;text-align:center}"
    ".warn li{color:#8a4b00}.chosen{font-weight:bold;background:#eef6ee}"
    ".grid{display:flex;flex-wrap:wrap;gap:.8em}"
    ".card{width:240px;background:#fff;border:1px solid #ddd;border-radius:6px;"
    "padding:.4em;font-size:.85em;overflow-wrap:anywhere}"
    ".card img{display:block;max-width:240px;max-height:240px;margin:auto}"
    ".missing{width:240px;height:160px;display:flex;flex-direction:column;"
    "align-items:center;justify-content:center;background:#eee;color:#777;"
    "text-align:center}.wrong{color:#b00020}.card.bad{border:2px solid #b00020}"
)


def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _pct(value: Any) -> str:
    """A share (0..1) as a percentage; a dash when there is none."""
    if value is None or not isinstance(value, int | float) or not math.isfinite(value):
        return "&ndash;"
    return f"{100.0 * value:.1f} %"


# -- pictures ----------------------------------------------------------------------------


def _moment(source: str) -> tuple[str, float] | None:
    """``PATH@SECONDS`` -> (PATH, seconds); None for an image file's path."""
    if Path(source).is_file():
        return None
    path, sep, tail = source.rpartition("@")
    if not sep or not path:
        return None
    try:
        seconds = float(tail)
    except ValueError:
        return None
    return (path, seconds) if math.isfinite(seconds) else None


def _there(p: Path) -> bool:
    """A file, or a store folder (the stored embeddings of an example's moment)."""
    return p.is_file() or (p.is_dir() and is_store(p))


def _find(path: str, base: Path | None) -> Path | None:
    """``path`` as given, else relative to ``base`` (the taught set's folder)."""
    p = Path(path)
    if _there(p):
        return p
    if base is not None and not p.is_absolute() and _there(base / p):
        return base / p
    return None


def example_image(
    source: str, region: Region | None, base: Path | None = None
) -> tuple[np.ndarray | None, str]:
    """What the classifier saw of the example ``source`` (an image file, or
    ``PATH@SECONDS`` of a video or embeddings store): ``(image, "")`` with ``image``
    HxWx3 uint8 BGR (``region``'s crop when given), or ``(None, reason)`` when it cannot
    be read. Relative paths are tried as given, then under ``base``."""
    moment = _moment(source)
    if moment is None:
        found = _find(source, base)
        if found is None:
            return None, f"image {source} not found"
        try:
            image = read_image(found)
        except InputError:
            return None, f"image {source} cannot be read"
        where = source
    else:
        path, seconds = moment
        found = _find(path, base)
        if found is None:
            stored = is_store(path) or path.endswith(".embeddings")
            kind = "embeddings store" if stored else "video"
            return None, f"{kind} {path} not found"
        video = found
        if is_store(found):
            try:
                named = read_meta(found).get("input")
            except StoreError:
                return None, f"{path} is no readable embeddings store"
            if not named or not Path(str(named)).is_file():
                return None, f"video {named or 'of ' + path} not found"
            video = Path(str(named))
        frame = frames_at(video, [seconds], exact=False)[0]
        if frame is None:
            return None, f"no frame at {clock(seconds)} in {video}"
        image, where = frame, f"{video} at {clock(seconds)}"
    try:
        return region_crop(region, image, where), ""
    except InputError as e:
        return None, f"the region does not fit: {e}"


def thumbnail_uri(image_bgr: np.ndarray, side: int = THUMB_SIDE) -> str | None:
    """An HxWx3 uint8 BGR image scaled to fit a ``side`` x ``side`` square, as a JPEG
    ``data:`` URI; None when it cannot be encoded."""
    h, w = image_bgr.shape[:2]
    scale = min(1.0, side / max(h, w, 1))
    if scale < 1.0:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        image_bgr = cv2.resize(image_bgr, size, interpolation=cv2.INTER_AREA)
    ok, data = cv2.imencode(".jpg", image_bgr, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        return None
    return "data:image/jpeg;base64," + base64.b64encode(data.tobytes()).decode("ascii")


def _placeholder(reason: str) -> str:
    return f'<div class="missing">no picture<br><small>{_esc(reason)}</small></div>'


# -- sections ----------------------------------------------------------------------------


def _figures(report: dict[str, Any]) -> str:
    cv = report.get("cross_validation") or {}
    zs = report.get("zero_shot") or {}

    def bought(key: str) -> str:
        a, b = cv.get(key), zs.get(key)
        if not isinstance(a, int | float) or not isinstance(b, int | float):
            return "&ndash;"
        return f"{100.0 * (a - b):+.1f} points"

    chosen = report.get("chosen") or {}
    unknown = report.get("unknown_below")
    rows = [
        ("Classifier", _esc(chosen.get("description") or chosen.get("kind") or "unknown")),
        (
            "Examples",
            f"{_esc(report.get('examples', '?'))} in {_esc(report.get('groups', '?'))} "
            f"groups, {_esc(report.get('folds', '?'))}-fold grouped cross-validation",
        ),
        (
            "Unknown below",
            "&ndash;"
            if unknown is None
            else f"cosine {_esc(f'{float(unknown):.4f}')} to the nearest example",
        ),
    ]
    if isinstance(report.get("seconds"), int | float):
        rows.append(("Learned in", f"{float(report['seconds']):.3f} s"))
    head = "".join(f"<tr><td>{k}</td><td>{v}</td></tr>" for k, v in rows)
    return (
        f'<table class="figures">{head}</table>'
        "<table><tr><th></th><th>accuracy</th><th>balanced accuracy</th></tr>"
        f'<tr class="chosen"><td>with the examples (cross-validated)</td>'
        f'<td class="big">{_pct(cv.get("accuracy"))}</td>'
        f'<td class="big">{_pct(cv.get("balanced_accuracy"))}</td></tr>'
        f"<tr><td>text only (zero-shot), same examples</td><td>{_pct(zs.get('accuracy'))}</td>"
        f"<td>{_pct(zs.get('balanced_accuracy'))}</td></tr>"
        f"<tr><td>what the examples bought</td><td>{bought('accuracy')}</td>"
        f"<td>{bought('balanced_accuracy')}</td></tr></table>"
    )


def _per_label(names: list[str], report: dict[str, Any]) -> str:
    cv = (report.get("cross_validation") or {}).get("labels") or {}
    zs = (report.get("zero_shot") or {}).get("labels") or {}
    per_label = report.get("per_label") or {}
    rows = []
    for name in names:
        c, z = cv.get(name) or {}, zs.get(name) or {}
        support = c.get("support", z.get("support", per_label.get(name, 0)))
        rows.append(
            f"<tr><td>{_esc(name)}</td><td>{_esc(support)}</td>"
            f"<td>{_pct(c.get('precision'))}</td><td>{_pct(c.get('recall'))}</td>"
            f"<td>{_pct(z.get('precision'))}</td><td>{_pct(z.get('recall'))}</td></tr>"
        )
    return (
        '<table><tr><th rowspan="2">label</th><th rowspan="2">examples</th>'
        '<th colspan="2">with the examples</th><th colspan="2">text only</th></tr>'
        "<tr><th>precision</th><th>recall</th><th>precision</th><th>recall</th></tr>"
        + "".join(rows)
        + "</table>"
    )


def confusion_table(names: list[str], matrix: Any) -> str:
    """The ``(K, K)`` confusion matrix (rows: given label, columns: predicted) as an
    HTML table, each cell shaded by its share of the row: green on the diagonal, red
    off it."""
    try:
        cm = np.asarray(matrix, np.int64).reshape(len(names), len(names))
    except (TypeError, ValueError):
        return "<p>(no confusion matrix in the report)</p>"
    head = "".join(f"<th>{_esc(n)}</th>" for n in names)
    rows = []
    for i, name in enumerate(names):
        total = int(cm[i].sum())
        cells = []
        for j in range(len(names)):
            count = int(cm[i, j])
            share = count / total if total else 0.0
            colour = "40,150,60" if i == j else "200,40,40"
            style = f"background:rgba({colour},{0.85 * share:.3f})" if count else ""
            text = "#fff" if share > 0.55 else "#222"
            cells.append(
                f'<td style="{style};color:{text}" title="{100 * share:.1f} % of '
                f'{_esc(name)}">{count}</td>'
            )
        rows.append(f"<tr><th>{_esc(name)}</th>{''.join(cells)}<td>{total}</td></tr>")
    return (
        '<table class="confusion"><tr><th>given \\ predicted</th>'
        f"{head}<th>total</th></tr>{''.join(rows)}</table>"
    )


def _candidates(report: dict[str, Any]) -> str:
    chosen = report.get("chosen") or {}
    key = ("kind", "lam", "alpha", "beta", "reg")
    mark = ' class="chosen"'
    rows = []
    for c in report.get("candidates") or []:
        params = ", ".join(
            f"{k} {c[k]:g}" if isinstance(c[k], int | float) else f"{k} {_esc(c[k])}"
            for k in ("lam", "alpha", "beta", "reg")
            if k in c
        )
        is_chosen = all(c.get(k) == chosen.get(k) for k in key if k in c or k in chosen)
        rows.append(
            f"<tr{mark if is_chosen else ''}><td>{_esc(c.get('kind', '?'))}</td>"
            f"<td>{_esc(params)}</td><td>{_pct(c.get('cv_balanced_accuracy'))}</td></tr>"
        )
    if not rows:
        return "<p>(none listed)</p>"
    return (
        "<table><tr><th>kind</th><th>settings</th><th>balanced accuracy (CV)</th></tr>"
        + "".join(rows)
        + "</table>"
    )


def _worst(
    taught: TaughtSet, region: Region | None, region_note: str, stop: threading.Event | None
) -> str:
    worst = list(taught.report.get("worst") or [])[:MAX_WORST]
    if not worst:
        return "<p>(no examples)</p>"
    base = taught.path.parent if taught.path is not None else None
    cards = []
    for done, w in enumerate(worst):
        if stop is not None and stop.is_set():
            cards.append(f"<p>{len(worst) - done} more not drawn: stopped</p>")
            break
        source = str(w.get("source", ""))
        image, reason = (None, region_note) if region_note else example_image(source, region, base)
        uri = thumbnail_uri(image) if image is not None else None
        if uri is not None:
            picture = f'<img src="{uri}" alt="{_esc(source)}">'
        else:
            picture = _placeholder(reason or "cannot be encoded")
        given, predicted = w.get("given", "?"), w.get("predicted", "?")
        wrong = ' class="wrong"' if given != predicted else ""
        margin = w.get("margin")
        margin_text = f"{margin:+.3f}" if isinstance(margin, int | float) else "?"
        cards.append(
            f'<div class="card{" bad" if wrong else ""}">{picture}<div>{_esc(source)}</div>'
            f"<div>given <b>{_esc(given)}</b>, predicted <b{wrong}>{_esc(predicted)}</b>"
            f"</div><div>margin {margin_text}</div></div>"
        )
    return f'<div class="grid">{"".join(cards)}</div>'


def report_page(taught: TaughtSet, *, stop: threading.Event | None = None) -> str:
    """A self-contained HTML page of ``taught``'s training report (see the module
    docstring). ``stop``: when set, the thumbnails not drawn yet are left out (the page
    says how many)."""
    report = taught.report or {}
    names = list(taught.names)
    region: Region | None = None
    region_note = ""
    if taught.region is not None:
        try:
            region = Region.from_json(taught.region)
        except InputError as e:
            region_note = f"the set's region is unreadable: {e}"
    title = f"{', '.join(names)} ({taught.model_id})"
    cv = report.get("cross_validation") or {}
    zs = report.get("zero_shot") or {}
    warnings = report.get("warnings") or []
    warned = (
        '<ul class="warn">' + "".join(f"<li>{_esc(w)}</li>" for w in warnings) + "</ul>"
        if warnings
        else "<p>None.</p>"
    )
    where = f" &middot; region {_esc(region)}" if region is not None else ""
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>scenecls taught labels: {_esc(title)}</title><style>{_STYLE}</style>"
        "</head><body>"
        f"<h1>Taught labels: {_esc(', '.join(names))}</h1>"
        f"<p>model {_esc(taught.model_id)} (fingerprint {_esc(taught.fingerprint[:12])})"
        f"{where}</p>"
        "<h2>Accuracy before use</h2>"
        + _figures(report)
        + "<h2>Per label</h2>"
        + _per_label(names, report)
        + "<h2>Confusion matrix</h2><p>Cross-validated, with the examples "
        "(rows: given label, columns: predicted).</p>"
        + confusion_table(names, cv.get("confusion"))
        + "<p>Text only (zero-shot), same examples.</p>"
        + confusion_table(names, zs.get("confusion"))
        + "<h2>Warnings</h2>"
        + warned
        + "<h2>Classifiers tried</h2>"
        + _candidates(report)
        + "<h2>Worst examples</h2><p>Held out in cross-validation, lowest margin first "
        "(probability of the given label minus the best other): what the classifier "
        "saw.</p>" + _worst(taught, region, region_note, stop) + "</body></html>\n"
    )


def write_report(folder: Path, taught: TaughtSet) -> Path:
    """Write :func:`report_page` of ``taught`` as ``folder/index.html`` (creating the
    folder), whole or not at all; returns its path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / PAGE
    write_html(path, report_page(taught))
    return path
