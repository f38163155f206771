"""The model layer: bundles (export, resolve, cache), preprocessing, labels and text
embeddings, image-encoder runtimes, scoring, and :class:`SceneModel` with :func:`load_model`.

Imports only :mod:`scenecls.types`, :mod:`scenecls.errors` and the shared helpers beside
them (:mod:`scenecls.atomic`, :mod:`scenecls.interrupts`).
"""

from .labels import UNKNOWN, Label, LabelSet, resolve_labels
from .scene_model import LabelsLike, SceneModel, load_model

__all__ = [
    "UNKNOWN",
    "Label",
    "LabelSet",
    "LabelsLike",
    "SceneModel",
    "load_model",
    "resolve_labels",
]
