"""The public model object: image and text encoders of one bundle, plus zero-shot
classification. Built by :func:`load_model`."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..atomic import save_npy_atomic
from ..types import Classification, Scores
from .bundle import Bundle, load_bundle
from .cache import text_cache_dir
from .labels import LabelSet, resolve_labels
from .preprocess import Preprocessor
from .resolve import resolve_model
from .runtimes.base import normalize_rows
from .runtimes.cores import share_cores
from .runtimes.onnx import TextEncoder
from .runtimes.select import bundle_precision_for, create_image_encoder, describe_encoder
from .scoring import classify_scores, score
from .taught import SUFFIX as TAUGHT_SUFFIX
from .taught import (
    Scorer,
    TaughtScorer,
    TaughtSet,
    TextScorer,
    is_taught_file,
    load_taught,
    scores_of,
)

log = logging.getLogger("scenecls")

DEFAULT_MODEL = "openai/clip-vit-base-patch32"
LabelsLike = LabelSet | str | Sequence[str]
LabelSource = LabelSet | TaughtSet | str | Sequence[str]
"""What ``--labels`` and the API take: text labels in any form, or a taught set (a
:class:`~.taught.TaughtSet` or the path of its ``.npz`` file)."""


def load_labels(
    spec: LabelSource, templates: str | Sequence[str] | None = None
) -> LabelSet | TaughtSet:
    """Text labels (see :func:`~.labels.resolve_labels`) or a taught set: a ``.npz``
    file written by ``scenecls teach``. ``templates`` cannot re-phrase a taught set."""
    if isinstance(spec, TaughtSet):
        taught: TaughtSet | None = spec
    elif is_taught_file(spec) or (
        isinstance(spec, str | Path) and str(spec).strip().endswith(TAUGHT_SUFFIX)
    ):  # a missing .npz is named as such, not taken for a label called "x.npz"
        taught = load_taught(str(spec).strip())  # type: ignore[arg-type]
    else:
        return resolve_labels(spec, templates)  # type: ignore[arg-type]
    if templates is not None:
        from ..errors import UsageError

        raise UsageError(
            "--templates does not apply to a taught label set: its text was embedded when "
            "it was taught (teach it again with --templates)"
        )
    return taught


def make_scorer(model: TextModel | SceneModel, labels: LabelSource) -> Scorer:
    """What scores frame embeddings for ``labels``: zero-shot text, or a taught set
    (checked to belong to ``model``'s bundle)."""
    source = load_labels(labels)
    if isinstance(source, TaughtSet):
        source.check_model(model.bundle.fingerprint, model.bundle.model_id)
        return TaughtScorer(source)
    return TextScorer(source.names, model.embed_labels(source), model.logit_scale)


class TextModel:
    """The text tower of a bundle alone: label and query embeddings without loading the
    image tower (``scenecls search`` and ``relabel`` need nothing else).

    ``bundle``: the bundle; ``device``: where the text tower runs ('cpu' or 'cuda')."""

    def __init__(self, bundle: Bundle, device: str = "cpu") -> None:
        self.bundle = bundle
        self.device = device
        self.embed_dim = bundle.embed_dim
        self.logit_scale = bundle.logit_scale
        self._encoder: TextEncoder | None = None

    @property
    def text_encoder(self) -> TextEncoder:
        """Created on first use: label embeddings found in the cache never need it."""
        if self._encoder is None:
            self._encoder = TextEncoder(self.bundle, self.device)
        return self._encoder

    def release(self) -> None:
        """Free the text tower's session; it is created again when needed."""
        self._encoder = None

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Texts, used verbatim (no template) -> (K, D) float32 unit rows."""
        return self.text_encoder(texts)

    def scorer(self, labels: LabelSource) -> Scorer:
        """What scores embeddings for ``labels`` (text or a taught set): see
        :func:`make_scorer`."""
        return make_scorer(self, labels)

    def embed_labels(
        self, labels: LabelsLike, templates: str | Sequence[str] | None = None
    ) -> np.ndarray:
        """(K, D) float32 unit rows: per label, the normalised mean of its phrasings x
        templates. Cached on disk by bundle fingerprint + texts + templates."""
        labelset = resolve_labels(labels, templates)
        key = _label_key(self.bundle, labelset)
        path = text_cache_dir() / f"{key}.npy"
        if path.is_file():
            try:
                cached = np.load(path)
                if cached.shape == (len(labelset.labels), self.embed_dim):
                    return cached.astype(np.float32, copy=False)
            except (OSError, ValueError):
                log.warning("ignoring unreadable text-embedding cache file %s", path)
        prompts = labelset.prompts()
        flat = [p for group in prompts for p in group]
        embs = self.encode_texts(flat)
        means = np.empty((len(prompts), self.embed_dim), np.float32)
        row = 0
        for i, group in enumerate(prompts):
            means[i] = embs[row : row + len(group)].mean(axis=0)
            row += len(group)
        means = normalize_rows(means)
        try:
            save_npy_atomic(path, means)
        except OSError as e:
            log.warning("cannot cache label embeddings in %s: %s", path.parent, e)
        return means


class SceneModel:
    """A CLIP bundle on ONNX Runtime or OpenVINO. Thread-compatible: use one per thread.

    Attributes: ``bundle`` (facts from bundle.json), ``device`` ('cpu' or 'cuda'),
    ``precision`` of the image tower as run ('fp32', 'fp16', 'bf16' or 'int8'),
    ``runtime`` ('onnxruntime' or 'openvino'), ``embed_dim`` (D), ``logit_scale``.
    The text tower always runs on ONNX Runtime in the bundle's precision.
    """

    def __init__(
        self,
        bundle: Bundle,
        device: str = "auto",
        batch_size: int = 32,
        *,
        precision: str = "auto",
    ) -> None:
        self.bundle = bundle
        self.preprocessor = Preprocessor(bundle.preprocessing)
        self.image_encoder = create_image_encoder(bundle, device, precision)
        if self.image_encoder.device == "cpu":
            share_cores()  # the encoder owns the cores: helper pools must not spin
        self.text = TextModel(bundle, "cpu" if self.image_encoder.device == "cpu" else device)
        self.device: str = self.image_encoder.device
        self.precision: str = self.image_encoder.precision
        self.runtime: str = self.image_encoder.runtime
        self.embed_dim = bundle.embed_dim
        self.logit_scale = bundle.logit_scale
        self.batch_size = max(1, batch_size)
        self.encoder_description = describe_encoder(self.image_encoder)
        """The image encoder in one line: runtime, precision, device, how it was chosen."""
        log.info("model %s: %s", bundle.model_id, self.encoder_description.split(", ")[0])
        if self.device == "cpu" and bundle.precision == "fp16":
            log.warning("fp16 bundles are meant for CUDA; on the CPU an fp32 bundle is faster")

    @property
    def text_encoder(self) -> TextEncoder:
        """Created on first use: a live run with cached label embeddings never needs it."""
        return self.text.text_encoder

    def release_text_encoder(self) -> None:
        """Free the text tower's session (its memory) once the label embeddings are made;
        it is created again if texts need encoding later."""
        self.text.release()

    def preprocess(self, images_bgr: Sequence[np.ndarray]) -> np.ndarray:
        """HxWx3 uint8 BGR images of any size -> (N, 3, 224, 224) float32 RGB normalised."""
        return self.preprocessor.batch(images_bgr)

    def encode_images(self, images_bgr: Sequence[np.ndarray]) -> np.ndarray:
        """HxWx3 uint8 BGR images (as OpenCV delivers) -> (N, D) float32 unit rows."""
        if isinstance(images_bgr, np.ndarray) and images_bgr.ndim == 3:
            images_bgr = [images_bgr]
        out = np.empty((len(images_bgr), self.embed_dim), np.float32)
        for start in range(0, len(images_bgr), self.batch_size):
            chunk = images_bgr[start : start + self.batch_size]
            out[start : start + len(chunk)] = self.image_encoder(self.preprocess(chunk))
        return out

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Texts, used verbatim (no template) -> (K, D) float32 unit rows."""
        return self.text.encode_texts(texts)

    def embed_labels(
        self, labels: LabelsLike, templates: str | Sequence[str] | None = None
    ) -> np.ndarray:
        """(K, D) float32 unit rows: per label, the normalised mean of its phrasings x
        templates. Cached on disk by bundle fingerprint + texts + templates."""
        return self.text.embed_labels(labels, templates)

    def scorer(self, labels: LabelSource) -> Scorer:
        """What scores embeddings for ``labels`` (text or a taught set): see
        :func:`make_scorer`."""
        return make_scorer(self, labels)

    def score(
        self,
        images_bgr: Sequence[np.ndarray],
        labels: LabelSource,
        templates: str | Sequence[str] | None = None,
    ) -> list[Scores]:
        """Per image (HxWx3 uint8 BGR), every label's probability and similarity.
        ``labels``: text labels in any form, or a taught set."""
        source = load_labels(labels, templates)
        if isinstance(source, TaughtSet):
            return scores_of(self.scorer(source), self.encode_images(images_bgr))
        text = self.embed_labels(source)
        return score(self.encode_images(images_bgr), text, source.names, self.logit_scale)

    def classify(
        self,
        images_bgr: Sequence[np.ndarray],
        labels: LabelSource,
        top_k: int = 5,
        *,
        templates: str | Sequence[str] | None = None,
        min_confidence: float = 0.0,
    ) -> list[Classification]:
        """One :class:`Classification` per image (HxWx3 uint8 BGR): the best label (or
        ``unknown`` below ``min_confidence``) and the ``top_k`` label probabilities."""
        return [
            classify_scores(s, top_k=top_k, min_confidence=min_confidence)
            for s in self.score(images_bgr, labels, templates)
        ]


def model_meta(model: object) -> dict[str, object]:
    """What identifies the embeddings ``model`` computes (for files that store them):
    ``model`` (id), ``model_fingerprint``, ``bundle_precision``, ``bundle`` (folder),
    ``precision``, ``device`` and ``runtime`` of the image tower as run, ``embed_dim``,
    ``logit_scale``. Tolerates stand-in models (missing facts are None)."""
    bundle = getattr(model, "bundle", None)
    return {
        "model": getattr(bundle, "model_id", None),
        "model_fingerprint": getattr(bundle, "fingerprint", None),
        "bundle_precision": getattr(bundle, "precision", None),
        "bundle": str(Path(bundle.path).resolve()) if bundle is not None else None,
        "precision": getattr(model, "precision", None),
        "device": getattr(model, "device", None),
        "runtime": getattr(model, "runtime", None),
        "embed_dim": getattr(model, "embed_dim", None),
        "logit_scale": getattr(model, "logit_scale", None),
    }


def _label_key(bundle: Bundle, labelset: LabelSet) -> str:
    payload = {
        "bundle": bundle.fingerprint,
        "labels": [[lb.name, list(lb.phrasings)] for lb in labelset.labels],
        "templates": list(labelset.templates),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:32]


def load_model(
    model: str | Path = DEFAULT_MODEL,
    device: str = "auto",
    *,
    precision: str = "auto",
    verify: bool = True,
    batch_size: int = 32,
) -> SceneModel:
    """Load (exporting on first use if needed) a CLIP model for zero-shot classification.

    ``model``: a bundle folder, a local Hugging Face CLIP folder, or a hub id.
    ``device``: ``auto`` (CUDA when it works, else CPU), ``cpu`` or ``cuda``.
    ``precision``: ``auto`` (fp16 on CUDA; on a CPU the fastest runtime that agrees with
    fp32, measured once per bundle and machine: see ``runtimes.trial``), ``fp32``,
    ``fp16``, ``bf16`` or ``int8`` (opt-in); see ``runtimes.PRECISIONS``.
    """
    path = resolve_model(str(model), precision=bundle_precision_for(precision, device))
    return SceneModel(
        load_bundle(path, verify=verify), device=device, batch_size=batch_size, precision=precision
    )


def load_text_model(model: str | Path = DEFAULT_MODEL, *, verify: bool = True) -> TextModel:
    """The text tower of ``model`` alone (see :func:`load_model`), on the CPU: label and
    query embeddings are a few texts, and the image tower is never loaded."""
    path = resolve_model(str(model), precision="fp32")
    return TextModel(load_bundle(path, verify=verify), "cpu")
