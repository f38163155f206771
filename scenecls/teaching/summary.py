"""The training report of a taught set as text: what ``scenecls teach`` prints."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..model.taught import TaughtSet


def _pct(value: float | None) -> str:
    return "   -  " if value is None else f"{100 * value:5.1f}%"


def format_report(taught: TaughtSet) -> str:
    """Accuracy before use: the chosen classifier, cross-validated accuracy beside
    text-only zero-shot on the same examples, per-label precision and recall, the
    confusion matrix and the ``unknown`` threshold. Warnings are not included (see
    ``report["warnings"]``)."""
    r: dict[str, Any] = taught.report
    cv, zs = r["cross_validation"], r["zero_shot"]
    names = taught.names
    width = max(8, *(len(n) for n in names))
    lines = [
        f"taught {len(names)} labels from {r['examples']} examples ({r['groups']} moments or "
        f"pictures) in {r['seconds']:.2f} s",
        f"classifier: {r['chosen']['description']}, chosen by cross-validation over "
        f"{len(r['candidates'])} candidates",
        f"cross-validated over {r['folds']} folds (the frames of one moment never on both sides):",
        f"  accuracy {_pct(cv['accuracy'])}  balanced {_pct(cv['balanced_accuracy'])}   "
        f"text only (zero-shot): accuracy {_pct(zs['accuracy'])}  balanced "
        f"{_pct(zs['balanced_accuracy'])}",
        "",
        f"  {'label':<{width}}  examples  precision  recall   | zero-shot precision  recall",
    ]
    for n in names:
        a, b = cv["labels"][n], zs["labels"][n]
        lines.append(
            f"  {n:<{width}}  {a['support']:8d}  {_pct(a['precision']):>9}  "
            f"{_pct(a['recall']):>6}   | {_pct(b['precision']):>19}  {_pct(b['recall']):>6}"
        )
    lines += ["", "  confusion (rows: given label, columns: predicted)"]
    short = [n[:8] for n in names]
    lines.append(f"  {'':<{width}}  " + " ".join(f"{s:>8}" for s in short))
    for n, row in zip(names, cv["confusion"], strict=True):
        lines.append(f"  {n:<{width}}  " + " ".join(f"{v:8d}" for v in row))
    groups = taught.example_groups
    single = [
        n for i, n in enumerate(names) if len(np.unique(groups[taught.example_labels == i])) == 1
    ]
    if single:
        lines += [
            "",
            f"note: {', '.join(single)} {'has' if len(single) == 1 else 'have'} one moment or "
            "picture: held out, nothing of it is left to learn from, so its figures above are "
            "what its text alone gives; add examples for an estimate",
        ]
    if taught.unknown_below is not None:
        lines += [
            "",
            f"unknown: a frame whose cosine to its nearest example is below "
            f"{taught.unknown_below:.3f}, halfway between how near held-out examples came "
            "to the others and how near examples are to another label's",
        ]
    else:
        lines += ["", "unknown: never (some label has no examples)"]
    return "\n".join(lines)
