"""``scenecls.teach``: a taught label set from examples, in one call."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..model.classifier import KINDS
from ..model.labels import label_texts
from ..model.taught import ExampleSet, TaughtSet, teach_embeddings
from ..region import Region, parse_region
from .examples import DEFAULT_FPS, gather, parse_inputs

CLASSIFIERS = ("auto", *KINDS)


def teach(
    examples: str | Path | Sequence[str | Path] | ExampleSet,
    model: Any = "openai/clip-vit-base-patch32",
    labels: str | Sequence[str] | None = None,
    *,
    templates: str | Sequence[str] | None = None,
    region: Region | str | None = None,
    fps: float = DEFAULT_FPS,
    classifier: str = "auto",
    text_from_names: bool = True,
    unknown_quantile: float | None = None,
    stop: threading.Event | None = None,
) -> TaughtSet:
    """Learn labels from examples; returns the taught set (``.save(path)`` writes it,
    ``.report`` holds its cross-validated accuracy).

    ``examples``: a folder of label folders, ``"VIDEO=MOMENTS.csv"``,
    ``"EMBEDDINGS=MOMENTS.csv"`` (an embeddings store), a list of these, or an
    :class:`ExampleSet` of embeddings made by ``model``. ``model``: a loaded
    :class:`~scenecls.SceneModel` or what :func:`~scenecls.load_model` takes.
    ``labels``: text for labels (any ``--labels`` form; in a TOML file ``name = []``
    means examples only), and labels with text only. Labels only the examples name get
    their name as text when ``text_from_names``. ``region``: the part of the frame to
    learn from (a :class:`~scenecls.region.Region` or ``"x,y,w,h"``). ``fps``: frames
    per second of a moment taken as examples. ``classifier``: ``auto`` (chosen by
    cross-validation) or one of ``means``, ``cache``, ``linear``. ``unknown_quantile``:
    the share of held-out examples that may fall below the ``unknown`` threshold
    (default 0.01; 0: never unknown)."""
    if classifier not in CLASSIFIERS:
        raise UsageError(
            f"--classifier must be one of {', '.join(CLASSIFIERS)}, not {classifier!r}"
        )
    if unknown_quantile is not None and not 0 <= unknown_quantile < 0.5:
        raise UsageError(f"--unknown-quantile must be in [0, 0.5), not {unknown_quantile}")
    if isinstance(region, str):
        region = parse_region(region)
    texts: list[tuple[str, tuple[str, ...]]] = []
    chosen_templates = None
    if labels is not None:
        texts, chosen_templates = label_texts(labels, templates)
    elif templates is not None:
        _, chosen_templates = label_texts("x", templates)
    inputs = None
    if not isinstance(examples, ExampleSet):
        specs = [examples] if isinstance(examples, str | Path) else list(examples)
        inputs = parse_inputs([str(s) for s in specs])
    if isinstance(model, str | Path):
        from ..model.scene_model import load_model

        model = load_model(model)
    if inputs is not None:
        gathered = gather(model, inputs, region=region, fps=fps, stop=stop)
    else:
        gathered = examples  # type: ignore[assignment]
        if region is not None:
            gathered.region = region.to_json()
    return teach_embeddings(
        model,
        gathered,
        texts,
        templates=chosen_templates,
        text_from_names=text_from_names,
        only=None if classifier == "auto" else classifier,
        unknown_quantile=unknown_quantile,
    )
