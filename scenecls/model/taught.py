"""The taught label set file: labels learned from examples, with their accuracy.

One ``.npz`` file (a ZIP of ``.npy`` arrays, uncompressed), readable with ``numpy.load``
alone. Members:

``meta``            0-d unicode array, a JSON object: ``format`` (:data:`FORMAT`),
                    ``version``, ``model`` (id), ``model_fingerprint``, ``embed_dim``,
                    ``logit_scale``, ``region`` (the part of the frame the examples show,
                    or null), ``labels`` (per label: ``name``, ``phrasings`` (may be
                    empty), ``examples``), ``templates``, ``classifier`` (``kind``,
                    ``lam``, ``alpha``, ``beta``, ``reg``), ``unknown_below`` (or null),
                    ``report`` (the training report: cross-validated accuracy, per-label
                    precision and recall, confusion matrix, the same for text-only
                    zero-shot, warnings), ``created``, ``scenecls``
``text``            (K, D) float32 unit text embeddings (zero rows where a label has none)
``examples``        (M, D) float32 unit example embeddings
``example_labels``  (M,) int32 label index of each example
``example_groups``  (M,) int32 moment of each example (frames of one moment share one)
``example_sources`` (M,) unicode: where each example came from (``file`` or
                    ``video@seconds``)
``weights``         (K, D) float32 and ``bias`` (K,) float32: the linear part of the
                    logits; ``prototypes`` (K, D) float32 unit rows (the similarities
                    reported per label)

Scoring a frame embedding ``f`` (a unit row): ``logits = f @ weights.T + bias``, plus for
the ``cache`` classifier ``logit_scale * alpha * mean_k exp(-beta * (1 - f @
examples_k.T))``; probabilities are the softmax of the logits, and all zero (the frame is
``unknown``) when ``max(f @ examples.T) < unknown_below``. Similarities are ``f @
prototypes.T``.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import write_bytes_atomic
from ..errors import UsageError
from ..types import Scores
from .classifier import Candidate, Fitted
from .scoring import blended_similarities, mix_rows, similarities, softmax

FORMAT = "scenecls-taught-labels"
VERSION = 1
SUFFIX = ".npz"


class TaughtSetError(UsageError):
    """A taught label set is unreadable, damaged, or belongs to another model."""


@dataclass(frozen=True)
class TaughtLabel:
    """One label of a taught set: ``phrasings`` (empty: examples only) and how many
    ``examples`` it was taught with."""

    name: str
    phrasings: tuple[str, ...]
    examples: int


@dataclass
class TaughtSet:
    """A label set learned from examples (and text); see the module docstring for the
    file. ``region``: the region's JSON (``scenecls.region.Region.to_json``) or None."""

    labels: tuple[TaughtLabel, ...]
    templates: tuple[str, ...]
    model_id: str
    fingerprint: str
    logit_scale: float
    region: dict[str, Any] | None
    text: np.ndarray
    examples: np.ndarray
    example_labels: np.ndarray
    example_groups: np.ndarray
    example_sources: tuple[str, ...]
    fitted: Fitted
    unknown_below: float | None
    report: dict[str, Any]
    path: Path | None = None

    @property
    def names(self) -> list[str]:
        return [lb.name for lb in self.labels]

    @property
    def embed_dim(self) -> int:
        return int(self.text.shape[1])

    def digest(self) -> str:
        """sha256 (hex) over what decides this set's scores: labels, classifier,
        examples, threshold."""
        import hashlib

        h = hashlib.sha256()
        head = {
            "labels": [lb.name for lb in self.labels],
            "classifier": self.fitted.candidate.to_json(),
            "unknown_below": self.unknown_below,
            "fingerprint": self.fingerprint,
        }
        h.update(json.dumps(head, sort_keys=True).encode())
        for arr in (self.fitted.weights, self.fitted.bias, self.fitted.prototypes, self.examples):
            h.update(np.ascontiguousarray(arr, np.float32).tobytes())
        h.update(np.ascontiguousarray(self.example_labels, np.int32).tobytes())
        return h.hexdigest()

    def check_model(self, fingerprint: str | None, model_id: str | None = None) -> None:
        """Raise :class:`TaughtSetError` naming both fingerprints when ``fingerprint``
        (the bundle's) is not the one this set was taught with."""
        if fingerprint is not None and fingerprint != self.fingerprint:
            where = f" {self.path}" if self.path else ""
            raise TaughtSetError(
                f"taught label set{where} belongs to model {self.model_id} (fingerprint "
                f"{self.fingerprint[:12]}), not {model_id or 'this model'} (fingerprint "
                f"{fingerprint[:12]}): teach it again with this --model, or use that model"
            )

    def score_rows(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(N, D)`` unit rows -> ``(N, K)`` float32 similarities (to the prototypes)
        and probabilities (all zero for an ``unknown`` row). Row by row in float64:
        a row's scores do not depend on the rows scored with it."""
        f = np.asarray(rows, np.float64)
        if f.ndim != 2 or f.shape[1] != self.embed_dim:
            raise ValueError(f"rows must be (N, {self.embed_dim}), got {f.shape}")
        key_sims = None
        cache = self.fitted.candidate.kind == "cache"
        if len(self.examples) and (cache or self.unknown_below is not None):
            key_sims = self.fitted.key_sims(f)
        logits = self.fitted.logits(f, key_sims=key_sims)
        probs = softmax(logits).astype(np.float32)
        if self.unknown_below is not None and key_sims is not None and key_sims.shape[1]:
            far = key_sims.max(axis=1) < self.unknown_below
            probs[far] = 0.0
        sims = similarities(np.asarray(rows, np.float32), self.fitted.prototypes)
        return sims, probs

    def meta(self) -> dict[str, Any]:
        from ..version import __version__

        return {
            "format": FORMAT,
            "version": VERSION,
            "model": self.model_id,
            "model_fingerprint": self.fingerprint,
            "embed_dim": self.embed_dim,
            "logit_scale": self.logit_scale,
            "region": self.region,
            "labels": [
                {"name": lb.name, "phrasings": list(lb.phrasings), "examples": lb.examples}
                for lb in self.labels
            ],
            "templates": list(self.templates),
            "classifier": self.fitted.candidate.to_json(),
            "unknown_below": self.unknown_below,
            "report": self.report,
            "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "scenecls": __version__,
        }

    def save(self, path: str | Path) -> Path:
        """Write the set to ``path`` (``.npz``) whole or not at all."""
        path = Path(path)
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
            arrays = {
                "meta": np.array(json.dumps(self.meta(), ensure_ascii=False)),
                "text": np.asarray(self.text, np.float32),
                "examples": np.asarray(self.examples, np.float32),
                "example_labels": np.asarray(self.example_labels, np.int32),
                "example_groups": np.asarray(self.example_groups, np.int32),
                "example_sources": np.array(list(self.example_sources), dtype=np.str_)
                if self.example_sources
                else np.zeros(0, "<U1"),
                "weights": np.asarray(self.fitted.weights, np.float32),
                "bias": np.asarray(self.fitted.bias, np.float32),
                "prototypes": np.asarray(self.fitted.prototypes, np.float32),
            }
            for name, arr in arrays.items():
                member = io.BytesIO()
                np.save(member, arr, allow_pickle=False)
                zf.writestr(f"{name}.npy", member.getvalue())
        if path.parent and not path.parent.exists():
            raise TaughtSetError(f"cannot write {path}: folder {path.parent} does not exist")
        write_bytes_atomic(path, buf.getvalue())
        self.path = path
        return path


def is_taught_file(spec: object) -> bool:
    """Whether ``spec`` (a ``--labels`` value) names a taught set: an existing ``.npz``."""
    if not isinstance(spec, str | Path):
        return False
    text = str(spec).strip()
    try:
        return text.endswith(SUFFIX) and Path(text).is_file()
    except (OSError, ValueError):
        return False


def load_taught(path: str | Path) -> TaughtSet:
    """Read a taught label set; every problem is one :class:`TaughtSetError` line."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {name: z[name] for name in z.files}
    except FileNotFoundError as e:
        raise TaughtSetError(f"taught label set {path} does not exist: check the path") from e
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise TaughtSetError(
            f"{path} is not a readable taught label set ({type(e).__name__}): "
            "make it again with scenecls teach"
        ) from e
    try:
        meta = json.loads(str(arrays["meta"][()]))
        if meta.get("format") != FORMAT:
            raise TaughtSetError(
                f"{path} is not a taught label set (format {meta.get('format')!r}): pass one "
                "written by scenecls teach"
            )
        if int(meta.get("version", 0)) > VERSION:
            raise TaughtSetError(
                f"{path} was written by a newer scenecls (format version {meta['version']}): "
                "upgrade scenecls"
            )
        labels = tuple(
            TaughtLabel(str(d["name"]), tuple(d.get("phrasings") or ()), int(d["examples"]))
            for d in meta["labels"]
        )
        k, d = len(labels), int(meta["embed_dim"])
        text = np.asarray(arrays["text"], np.float32)
        examples = np.asarray(arrays["examples"], np.float32).reshape(-1, d)
        fitted = Fitted(
            Candidate.from_json(meta["classifier"]),
            np.asarray(arrays["weights"], np.float32),
            np.asarray(arrays["bias"], np.float32),
            np.asarray(arrays["prototypes"], np.float32),
            float(meta["logit_scale"]),
            examples,
            np.asarray(arrays["example_labels"], np.int32),
            np.ones(k, bool),
        )
        fitted.present = np.isfinite(fitted.bias) & (np.abs(fitted.prototypes).sum(axis=1) > 0)
        shapes = {
            "text": (text.shape, (k, d)),
            "weights": (fitted.weights.shape, (k, d)),
            "bias": (fitted.bias.shape, (k,)),
            "prototypes": (fitted.prototypes.shape, (k, d)),
            "example_labels": (arrays["example_labels"].shape, (len(examples),)),
            "example_groups": (arrays["example_groups"].shape, (len(examples),)),
        }
        for name, (got, want) in shapes.items():
            if tuple(got) != want:
                raise TaughtSetError(f"{path} is damaged: {name} is {got}, expected {want}")
        labels_ok = fitted.key_labels is not None and (
            not len(fitted.key_labels) or int(fitted.key_labels.max()) < k
        )
        if not labels_ok or not np.isfinite(fitted.weights).all():
            raise TaughtSetError(f"{path} is damaged: bad classifier arrays")
        sources = tuple(str(s) for s in arrays["example_sources"].tolist())
        unknown = meta.get("unknown_below")
        return TaughtSet(
            labels,
            tuple(meta.get("templates") or ()),
            str(meta.get("model")),
            str(meta["model_fingerprint"]),
            float(meta["logit_scale"]),
            meta.get("region"),
            text,
            examples,
            np.asarray(arrays["example_labels"], np.int32),
            np.asarray(arrays["example_groups"], np.int32),
            sources,
            fitted,
            None if unknown is None else float(unknown),
            dict(meta.get("report") or {}),
            path,
        )
    except TaughtSetError:
        raise
    except (KeyError, TypeError, ValueError, json.JSONDecodeError) as e:
        raise TaughtSetError(
            f"{path} is damaged ({type(e).__name__}: {e}): make it again with scenecls teach"
        ) from e


# -- scorers: what every command scores frames with ---------------------------------------


class TextScorer:
    """Zero-shot text labels: ``logit_scale * cos(frame, text)``, softmax."""

    region: dict[str, Any] | None = None

    def __init__(self, names: Sequence[str], text: np.ndarray, logit_scale: float) -> None:
        self.names = tuple(names)
        self.text = np.asarray(text, np.float32)
        self.logit_scale = float(logit_scale)

    def score_rows(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(N, D)`` unit rows -> ``(N, K)`` float32 similarities and probabilities."""
        sims = similarities(np.asarray(rows, np.float32), self.text)
        return sims, softmax(sims * np.float32(self.logit_scale))

    def score_blends(
        self, anchors: np.ndarray, left: np.ndarray, right: np.ndarray, weight: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Frames made of ``(A, D)`` encoded rows (the change gate's reuse and
        interpolation, see :func:`~.scoring.blended_similarities`) -> ``(N, K)``."""
        sims = blended_similarities(anchors, self.text, left, right, weight)
        return sims, softmax(sims * np.float32(self.logit_scale))


class TaughtScorer:
    """A taught label set's classifier (see :class:`TaughtSet`)."""

    def __init__(self, taught: TaughtSet) -> None:
        self.taught = taught
        self.names = tuple(taught.names)
        self.region = taught.region

    def score_rows(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.taught.score_rows(rows)

    def score_blends(
        self, anchors: np.ndarray, left: np.ndarray, right: np.ndarray, weight: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """As :meth:`TextScorer.score_blends`: each anchor is scored once and frames that
        reuse it copy its scores; only frames between two anchors are mixed (``mix_rows``)
        and scored. Rows are scored independently, so a run and ``relabel`` agree."""
        a = np.asarray(anchors, np.float32)
        left, right = np.asarray(left, np.int64), np.asarray(right, np.int64)
        used = np.unique(left)
        sims_a, probs_a = self.score_rows(a[used])
        at = np.searchsorted(used, left)
        sims, probs = sims_a[at], probs_a[at]
        blend = np.flatnonzero(left != right)
        if len(blend):
            rows = mix_rows(a[left[blend]], a[right[blend]], np.asarray(weight)[blend])
            sims[blend], probs[blend] = self.score_rows(rows)
        return sims, probs


Scorer = TextScorer | TaughtScorer


def scores_of(scorer: Scorer, rows: np.ndarray) -> list[Scores]:
    """One :class:`Scores` per ``(N, D)`` unit row."""
    sims, probs = scorer.score_rows(rows)
    return [Scores(scorer.names, sims[i], probs[i]) for i in range(len(sims))]


# -- teaching: examples in, a taught set out ---------------------------------------------


@dataclass
class ExampleSet:
    """Examples as embeddings: ``embeddings`` ``(M, D)`` float32 unit rows, the label
    name of each (``labels``), ``groups`` ``(M,)`` int (rows of one moment share a group,
    so cross-validation keeps them on one side), ``sources`` (where each came from:
    ``file`` or ``video@seconds``), and the ``region`` (JSON) they were cropped to."""

    embeddings: np.ndarray
    labels: list[str]
    groups: np.ndarray
    sources: list[str]
    region: dict[str, Any] | None = None

    @classmethod
    def empty(cls, dim: int, region: dict[str, Any] | None = None) -> ExampleSet:
        return cls(np.zeros((0, dim), np.float32), [], np.zeros(0, np.int64), [], region)

    def __len__(self) -> int:
        return len(self.labels)

    def _next_group(self) -> int:
        return int(self.groups.max()) + 1 if len(self.groups) else 0

    def _append(
        self,
        embeddings: np.ndarray,
        labels: Sequence[str],
        sources: Sequence[str],
        groups: np.ndarray,
    ) -> None:
        emb = np.asarray(embeddings, np.float32).reshape(len(labels), -1)
        self.embeddings = np.concatenate([self.embeddings, emb]) if len(self.embeddings) else emb
        self.labels.extend(labels)
        self.sources.extend(sources)
        self.groups = np.concatenate([self.groups, np.asarray(groups, np.int64)])

    def add(
        self,
        embeddings: np.ndarray,
        labels: Sequence[str],
        sources: Sequence[str],
        group: object = None,
    ) -> None:
        """Append ``(n, D)`` rows with their label names and sources. Each row is a group
        of its own, or, with ``group``, they join the group of that name: rows added under
        one name, in any number of calls, share one group (the frames of one moment)."""
        if group is None:
            groups = self._next_group() + np.arange(len(labels))
        else:
            keys: dict[object, int] = self.__dict__.setdefault("_keys", {})
            if group not in keys:
                keys[group] = self._next_group()
            groups = np.full(len(labels), keys[group])
        self._append(embeddings, labels, sources, groups)

    def extend(self, other: ExampleSet) -> None:
        """Append ``other``'s rows, keeping its groups apart from these."""
        if len(other):
            _, inverse = np.unique(other.groups, return_inverse=True)
            groups = self._next_group() + inverse.reshape(-1)
            self._append(other.embeddings, other.labels, other.sources, groups)


def teach_embeddings(
    model: Any,
    examples: ExampleSet,
    texts: Sequence[tuple[str, Sequence[str]]] = (),
    *,
    templates: Sequence[str] | None = None,
    text_from_names: bool = True,
    only: str | None = None,
    unknown_quantile: float | None = None,
) -> TaughtSet:
    """Learn a taught set from ``examples`` (embeddings made by ``model``'s image tower).

    ``model``: a :class:`~.scene_model.SceneModel` or :class:`~.scene_model.TextModel`
    (text embeddings, fingerprint, logit scale). ``texts``: ``(name, phrasings)`` pairs
    of labels with text (phrasings may be empty: examples only); they come first, in
    order, and may have no examples (text-only labels). Labels that only the examples
    name follow, in order of first appearance; their text is their name when
    ``text_from_names``, else none. ``only``: one of the classifier kinds to force it."""
    from .classifier import UNKNOWN_QUANTILE, learn
    from .labels import DEFAULT_TEMPLATES, UNKNOWN, Label, LabelSet

    templates = tuple(templates) if templates is not None else DEFAULT_TEMPLATES
    order: list[str] = []
    phrasings: dict[str, tuple[str, ...]] = {}
    for name, texts_of in texts:
        if name in phrasings:
            raise TaughtSetError(f"label {name!r} is given twice: merge its phrasings")
        order.append(name)
        phrasings[name] = tuple(p for p in texts_of if p.strip())
    for name in examples.labels:
        if name not in phrasings:
            order.append(name)
            phrasings[name] = (name,) if text_from_names else ()
    for name in order:
        if name.strip().casefold() == UNKNOWN:
            raise TaughtSetError(
                f"'{UNKNOWN}' is reserved for frames far from every label: rename that label"
            )
    counts = {n: 0 for n in order}
    for name in examples.labels:
        counts[name] += 1
    for name in order:
        if not phrasings[name] and not counts[name]:
            raise TaughtSetError(
                f"label {name!r} has neither text nor examples: give it phrasings or "
                "example pictures"
            )
    if len(order) < 2:
        raise TaughtSetError(
            f"only one label ({order[0] if order else 'none'}): a classifier needs at least two; "
            "add examples of another label, e.g. 'none' for the empty scene"
        )
    if not len(examples):
        raise TaughtSetError(
            "no examples: give a folder of label sub-folders, VIDEO=MOMENTS.csv or "
            "EMBEDDINGS=MOMENTS.csv"
        )
    index = {n: i for i, n in enumerate(order)}
    k, d = len(order), int(model.embed_dim)
    text = np.zeros((k, d), np.float32)
    has_text = np.array([bool(phrasings[n]) for n in order])
    with_text = [n for n in order if phrasings[n]]
    if with_text:
        ls = LabelSet(tuple(Label(n, phrasings[n]) for n in with_text), templates)
        text[has_text] = model.embed_labels(ls)
    named = LabelSet(tuple(Label(n, phrasings[n] or (n,)) for n in order), templates)
    zero_shot = model.embed_labels(named)
    y = np.array([index[n] for n in examples.labels], np.int64)
    x = np.asarray(examples.embeddings, np.float32)
    if x.ndim != 2 or x.shape[1] != d:
        raise TaughtSetError(f"example embeddings are {x.shape}, the model's are (M, {d})")
    learned = learn(
        order, text, has_text, zero_shot, x, y, examples.groups, float(model.logit_scale),
        sources=examples.sources, only=only,
        unknown_quantile=UNKNOWN_QUANTILE if unknown_quantile is None else unknown_quantile,
    )  # fmt: skip
    bundle = model.bundle
    return TaughtSet(
        tuple(TaughtLabel(n, phrasings[n], counts[n]) for n in order),
        templates,
        str(bundle.model_id),
        str(bundle.fingerprint),
        float(model.logit_scale),
        examples.region,
        text,
        x,
        y.astype(np.int32),
        np.asarray(examples.groups, np.int32),
        tuple(examples.sources),
        learned.fitted,
        learned.unknown_below,
        learned.report,
    )
