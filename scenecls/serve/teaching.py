"""Corrections in the kitchen: "this is X" on a camera's current frame stores that frame
and its embedding as an example of X for the camera; a background worker learns the
camera's classifier again (:func:`~scenecls.model.taught.teach_embeddings`, from the
base label set's own examples when ``--labels`` was a taught set, plus the camera's
corrections, each its own group) and hands it to the service, which swaps it in between
two frames.

One worker thread serves every camera and coalesces: corrections that arrive while a
camera is being trained cause one more run after it, not one each. A run that fails
(a label set that cannot be learned yet) keeps the classifier in use and reports why.
The worker runs at a lower priority than the video (Linux: ``nice`` 10 for its thread
alone) and its work is NumPy (BLAS limited to one thread by
:func:`~scenecls.model.runtimes.cores.share_cores`).

In the data folder (``--data DIR``), per camera (``<camera>``: the camera name made
filename-safe, as for its settings file)::

    DIR/examples/<camera>/index.json        the examples in order: id, label, UTC time,
                                            picture file, region; the model (fingerprint)
                                            that made the embeddings, and which file holds them
    DIR/examples/<camera>/embeddings-N.npy  (M, D) float32 unit rows, in index order
    DIR/examples/<camera>/000007.jpg        each example's picture: HxWx3 BGR as the encoder
                                            saw it (the region's crop), JPEG
    DIR/taught/<camera>.npz                 the camera's taught label set
                                            (:mod:`scenecls.model.taught`)

Every file is written atomically (:mod:`scenecls.atomic`). The index is written after
the pictures and the embeddings file it names, and an embeddings file is replaced by a
new name, never rewritten, so a crash or kill at any point leaves an index whose files
are whole. At the start, files that no index names (written before a crash) and
temporary files are removed; embeddings made by another model, or unreadable, are made
again from the pictures; a taught set that is damaged, from another model, or not
taught from exactly the stored examples is ignored (logged) and taught again.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..atomic import save_npy_atomic, write_bytes_atomic
from ..errors import SceneclsError
from ..model.classifier import FEW_EXAMPLES
from ..model.labels import Label, LabelSet
from ..model.taught import (
    ExampleSet,
    Scorer,
    TaughtScorer,
    TaughtSet,
    TaughtSetError,
    load_taught,
    teach_embeddings,
)
from .settings import camera_file_stem

log = logging.getLogger("scenecls")

EXAMPLES_DIR = "examples"
TAUGHT_DIR = "taught"
INDEX = "index.json"
INDEX_FORMAT = "scenecls-camera-examples"
INDEX_VERSION = 1
JPEG_QUALITY = 95
WORKER_NICE = 10
_PICTURE = re.compile(r"^\d{6,}\.jpg$")
_EMBEDDINGS = re.compile(r"^embeddings-(\d+)\.npy$")


class TeachingRefused(Exception):
    """A correction or an undo that cannot be done now (no frame analysed yet, nothing to
    undo): the API answers 409 with the message."""


def utc_now() -> str:
    """The current UTC time, ISO 8601 to the millisecond."""
    stamp = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


@dataclass(frozen=True)
class Example:
    """One correction: ``label`` given at ``time`` (UTC, ISO 8601), its picture ``file``
    in the camera's examples folder (None without ``--data``), and the camera's region
    then (JSON, or None for the whole frame)."""

    id: int
    label: str
    time: str
    file: str | None = None
    region: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "label": self.label, "time": self.time, "file": self.file,
                "region": self.region}  # fmt: skip

    @classmethod
    def from_json(cls, d: Any) -> Example:
        """Raises ValueError when ``d`` is not an example as :meth:`to_json` writes it."""
        if not isinstance(d, dict):
            raise ValueError("an example is not a JSON object")
        ident, label, when, file = d.get("id"), d.get("label"), d.get("time"), d.get("file")
        if isinstance(ident, bool) or not isinstance(ident, int) or ident < 1:
            raise ValueError(f"bad example id {ident!r}")
        if not isinstance(label, str) or not label or not isinstance(when, str):
            raise ValueError(f"example {ident} has no label or time")
        if file is not None and (not isinstance(file, str) or not _PICTURE.match(file)):
            raise ValueError(f"example {ident} names an odd file {file!r}")
        region = d.get("region")
        if region is not None and not isinstance(region, dict):
            raise ValueError(f"example {ident} has a bad region")
        return cls(ident, label, when, file, region)


class ExampleFolder:
    """One camera's examples and taught set in the data folder (see the module
    docstring). Not thread-safe: :class:`Teacher` serialises the writes of a camera."""

    def __init__(self, data: Path, camera: str) -> None:
        stem = camera_file_stem(camera)
        self.camera = camera
        self.folder = Path(data) / EXAMPLES_DIR / stem
        self.relative = f"{EXAMPLES_DIR}/{stem}"
        self.taught_path = Path(data) / TAUGHT_DIR / f"{stem}.npz"
        self.generation = 0

    @staticmethod
    def picture_name(example_id: int) -> str:
        return f"{example_id:06d}.jpg"

    def source(self, example: Example) -> str:
        """What a taught set names this example by: its picture's path in the data
        folder."""
        return f"{self.relative}/{example.file}"

    # -- reading ---------------------------------------------------------------------

    def load(self, model: Any) -> tuple[list[Example], np.ndarray, int]:
        """The stored examples, their ``(M, D)`` float32 embeddings by ``model`` and the
        next free id. Embeddings from another model, or unreadable, are made again from
        the pictures (an unreadable picture drops its example; logged). A damaged index
        is logged and ignored (nothing is deleted)."""
        dim = int(model.embed_dim)
        none: tuple[list[Example], np.ndarray, int] = ([], np.zeros((0, dim), np.float32), 1)
        path = self.folder / INDEX
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return none
        except (OSError, UnicodeDecodeError) as e:
            log.warning("camera %s: ignoring its stored examples, %s cannot be read: %s",
                        self.camera, path, e)  # fmt: skip
            return none
        try:
            meta = json.loads(text)
            if not isinstance(meta, dict) or meta.get("format") != INDEX_FORMAT:
                raise ValueError(f"not a {INDEX_FORMAT} index")
            examples = [Example.from_json(d) for d in meta["examples"]]
            if len({e.id for e in examples}) != len(examples):
                raise ValueError("two examples share an id")
            next_id = max([int(meta.get("next_id", 1)), *(e.id + 1 for e in examples)])
            name = meta.get("embeddings")
            match = _EMBEDDINGS.match(name) if isinstance(name, str) else None
            self.generation = int(match.group(1)) if match else 0
        except (ValueError, KeyError, TypeError, RecursionError) as e:
            log.warning("camera %s: ignoring its stored examples, %s is damaged: %s",
                        self.camera, path, e)  # fmt: skip
            return none
        embeddings, why = self._embeddings(meta, len(examples), model)
        if embeddings is None:
            log.warning("camera %s: making the embeddings of its %d stored example(s) again "
                        "from their pictures: %s", self.camera, len(examples), why)  # fmt: skip
            examples, embeddings = self._encode_pictures(examples, model)
            try:
                self.commit(examples, embeddings, next_id, model)
            except (OSError, SceneclsError) as e:
                log.error("camera %s: cannot store the new embeddings: %s", self.camera, e)
        self.tidy(examples)
        return examples, embeddings, next_id

    def _embeddings(
        self, meta: dict[str, Any], count: int, model: Any
    ) -> tuple[np.ndarray | None, str]:
        """The stored ``(count, D)`` embeddings when they are whole and made by ``model``;
        else None and why not."""
        fingerprint = model.bundle.fingerprint
        if meta.get("model_fingerprint") != fingerprint:
            return None, (
                f"they were made by model {meta.get('model')} (fingerprint "
                f"{str(meta.get('model_fingerprint'))[:12]}), not {model.bundle.model_id} "
                f"(fingerprint {fingerprint[:12]})"
            )
        name = meta.get("embeddings")
        if not isinstance(name, str) or not _EMBEDDINGS.match(name):
            return None, "the index names no embeddings file"
        try:
            rows = np.load(self.folder / name, allow_pickle=False)
        except (OSError, ValueError, EOFError) as e:
            return None, f"{name} cannot be read ({type(e).__name__})"
        if rows.shape != (count, int(model.embed_dim)) or not np.isfinite(rows).all():
            return None, f"{name} holds {rows.shape}, not ({count}, {model.embed_dim}) rows"
        return np.asarray(rows, np.float32), ""

    def _encode_pictures(
        self, examples: list[Example], model: Any
    ) -> tuple[list[Example], np.ndarray]:
        kept: list[Example] = []
        images: list[np.ndarray] = []
        for e in examples:
            image = None
            if e.file is not None:
                try:
                    data = np.fromfile(self.folder / e.file, np.uint8)
                    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
                except OSError:
                    image = None
            if image is None:
                log.warning("camera %s: dropping stored example %d (%s): its picture %s "
                            "cannot be read", self.camera, e.id, e.label,
                            self.folder / str(e.file))  # fmt: skip
                continue
            kept.append(e)
            images.append(image)
        if not images:
            return kept, np.zeros((0, int(model.embed_dim)), np.float32)
        return kept, np.asarray(model.encode_images(images), np.float32)

    def load_taught(self) -> tuple[TaughtSet | None, str]:
        """The stored taught set, or None and why not (no file: empty reason)."""
        if not self.taught_path.is_file():
            return None, ""
        try:
            return load_taught(self.taught_path), ""
        except TaughtSetError as e:
            return None, str(e)

    # -- writing ---------------------------------------------------------------------

    def write_picture(self, example_id: int, jpeg: bytes) -> str:
        """Store an example's picture (JPEG bytes); its file name."""
        self.folder.mkdir(parents=True, exist_ok=True)
        name = self.picture_name(example_id)
        write_bytes_atomic(self.folder / name, jpeg)
        return name

    def commit(
        self, examples: Sequence[Example], embeddings: np.ndarray, next_id: int, model: Any
    ) -> None:
        """Write ``embeddings`` ``(M, D)`` to a new file, then the index naming it, then
        remove the embeddings files it replaces."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self.generation += 1
        name = f"embeddings-{self.generation:06d}.npy"
        save_npy_atomic(self.folder / name, np.asarray(embeddings, np.float32))
        index = {
            "format": INDEX_FORMAT,
            "version": INDEX_VERSION,
            "camera": self.camera,
            "model": model.bundle.model_id,
            "model_fingerprint": model.bundle.fingerprint,
            "embed_dim": int(model.embed_dim),
            "embeddings": name,
            "next_id": int(next_id),
            "examples": [e.to_json() for e in examples],
        }
        text = json.dumps(index, indent=1, ensure_ascii=False) + "\n"
        write_bytes_atomic(self.folder / INDEX, text.encode("utf-8"))
        for old in self.folder.glob("embeddings-*.npy"):
            if old.name != name:
                old.unlink(missing_ok=True)

    def remove_picture(self, name: str | None) -> None:
        if name is not None:
            (self.folder / name).unlink(missing_ok=True)

    def tidy(self, examples: Sequence[Example]) -> None:
        """Remove what no index names: pictures and embeddings written before a crash,
        a picture whose undo was cut short, temporary files. Other files are left."""
        keep = {e.file for e in examples}
        current = f"embeddings-{self.generation:06d}.npy"
        for folder, ours in ((self.folder, True), (self.taught_path.parent, False)):
            if not folder.is_dir():
                continue
            for path in folder.iterdir():
                name = path.name
                partial = name.startswith(".") and name.endswith(".partial")
                stray = ours and (
                    (_PICTURE.match(name) and name not in keep)
                    or (_EMBEDDINGS.match(name) and name != current)
                )
                if not stray and not (
                    partial and (ours or name.startswith(f".{self.taught_path.name}."))
                ):
                    continue
                try:
                    path.unlink()
                    log.info("camera %s: removed %s (left by an interrupted write)",
                             self.camera, path)  # fmt: skip
                except OSError as e:
                    log.warning("camera %s: cannot remove %s: %s", self.camera, path, e)

    def save_taught(self, taught: TaughtSet | None) -> None:
        """Store the camera's taught set (atomically); None removes it."""
        if taught is None:
            self.taught_path.unlink(missing_ok=True)
            return
        self.taught_path.parent.mkdir(parents=True, exist_ok=True)
        taught.save(self.taught_path)


@dataclass
class CameraTeaching:
    """One camera's corrections and the classifier taught from them (guarded by the
    teacher's lock; ``io`` serialises the camera's writes to the data folder)."""

    camera: str
    folder: ExampleFolder | None
    embeddings: np.ndarray  # (M, D) float32 unit rows, one per example
    examples: list[Example] = field(default_factory=list)
    next_id: int = 1
    version: int = 0  # changes with every correction or undo
    taught: TaughtSet | None = None  # the classifier in use; None: the service's own
    pending: bool = False  # queued for the worker
    running: bool = False  # being taught now
    trainings: int = 0
    trained_at: str | None = None
    seconds: float | None = None
    error: str | None = None
    saved: bool | None = None
    io: threading.Lock = field(default_factory=threading.Lock)


@dataclass(frozen=True)
class _Snapshot:
    version: int
    examples: tuple[Example, ...]
    embeddings: np.ndarray


class _TextMemo:
    """The text side of a model for :func:`teach_embeddings`, with each label set's
    embeddings kept in memory after the first time (no disk cache read per run)."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.bundle = model.bundle
        self.embed_dim = model.embed_dim
        self.logit_scale = model.logit_scale
        self._memo: dict[Any, np.ndarray] = {}
        self._lock = threading.Lock()

    def embed_labels(self, labels: LabelSet, templates: Any = None) -> np.ndarray:
        key = (tuple((lb.name, lb.phrasings) for lb in labels.labels), labels.templates,
               templates)  # fmt: skip
        with self._lock:
            rows = self._memo.get(key)
        if rows is None:
            rows = self.model.embed_labels(labels, templates)
            with self._lock:
                self._memo[key] = rows
        return rows


class Teacher:
    """The corrections of every camera of a service and the worker that learns from
    them. ``source``: the service's labels (text, or a taught set whose examples every
    camera's classifier keeps); ``base_scorer``: what the service scores with when a
    camera has no corrections; ``data``: the data folder (None: corrections last until
    the service stops). ``on_taught(camera, scorer, event)`` is called from the worker
    thread with each camera's new classifier (the service swaps it in and publishes
    ``event``)."""

    def __init__(
        self,
        model: Any,
        source: LabelSet | TaughtSet,
        base_scorer: Scorer,
        cameras: Sequence[str],
        data: Path | None,
        on_taught: Callable[[str, Scorer | None, dict[str, Any]], None],
    ) -> None:
        self.model = model
        self.base_scorer = base_scorer
        self.names = list(base_scorer.names)
        self.on_taught = on_taught
        self.data = data
        self.base: TaughtSet | None = source if isinstance(source, TaughtSet) else None
        if isinstance(source, TaughtSet):
            self.texts = [(lb.name, lb.phrasings) for lb in source.labels]
            self.templates = tuple(source.templates)
            self.base_examples: ExampleSet | None = ExampleSet(
                np.asarray(source.examples, np.float32),
                [source.names[int(i)] for i in source.example_labels],
                np.asarray(source.example_groups, np.int64),
                list(source.example_sources),
                source.region,
            )
        else:
            self.texts = [(lb.name, lb.phrasings) for lb in source.labels]
            self.templates = tuple(source.templates)
            self.base_examples = None
        self._text = _TextMemo(model)
        self._cond = threading.Condition()
        self._queue: dict[str, None] = {}  # cameras to teach, in order (a set)
        self._stop = False
        self._thread: threading.Thread | None = None
        self.cameras: dict[str, CameraTeaching] = {}
        for name in cameras:
            self.cameras[name] = self._open(name)

    # -- the start: stored examples and sets -------------------------------------------

    def _open(self, camera: str) -> CameraTeaching:
        dim = int(self.model.embed_dim)
        if self.data is None:
            return CameraTeaching(camera, None, np.zeros((0, dim), np.float32))
        folder = ExampleFolder(self.data, camera)
        examples, embeddings, next_id = folder.load(self.model)
        ct = CameraTeaching(camera, folder, embeddings, examples, next_id, saved=True)
        taught, why = folder.load_taught()
        if taught is not None:
            why = self._unfit(ct, taught)
        if why:
            log.warning("camera %s: ignoring its taught label set: %s", camera, why)
        if taught is not None and not why:
            ct.taught = taught  # as stored: nothing to learn
            ct.trained_at = taught.report.get("trained_at")
        elif self._active(examples):
            if taught is not None or why:
                log.warning("camera %s: teaching it again from its %d stored example(s)",
                            camera, len(examples))  # fmt: skip
            ct.pending = True
            self._queue[camera] = None
        return ct

    def _unfit(self, ct: CameraTeaching, taught: TaughtSet) -> str:
        """Why ``taught`` is not the set this camera's stored examples make ('' if it is)."""
        try:
            taught.check_model(self.model.bundle.fingerprint, self.model.bundle.model_id)
        except TaughtSetError as e:
            return str(e)
        texts = [(lb.name, tuple(p for p in lb.phrasings if p.strip())) for lb in taught.labels]
        wanted = [(n, tuple(p for p in ps if p.strip())) for n, ps in self.texts]
        if texts != wanted or tuple(taught.templates) != self.templates:
            return f"{taught.path} was taught with other labels: {', '.join(taught.names)}"
        sources, labels = self._expected(ct)
        if (
            tuple(taught.example_sources) != tuple(sources)
            or [int(i) for i in taught.example_labels] != labels
        ):
            return f"{taught.path} was not taught from the stored examples"
        return ""

    def _active(self, examples: Sequence[Example]) -> list[int]:
        """Indices of the examples whose label is one of the service's (a label dropped
        from --labels keeps its examples stored, unused)."""
        names = set(self.names)
        return [i for i, e in enumerate(examples) if e.label in names]

    def _source(self, ct: CameraTeaching, example: Example) -> str:
        if ct.folder is not None and example.file is not None:
            return ct.folder.source(example)
        return f"{ct.camera}@{example.time}"

    def _expected(self, ct: CameraTeaching) -> tuple[list[str], list[int]]:
        """The example sources and label indices a taught set of this camera must have."""
        index = {n: i for i, n in enumerate(self.names)}
        sources = list(self.base_examples.sources) if self.base_examples is not None else []
        labels = [index[n] for n in self.base_examples.labels] if self.base_examples else []
        for i in self._active(ct.examples):
            sources.append(self._source(ct, ct.examples[i]))
            labels.append(index[ct.examples[i].label])
        return sources, labels

    def scorer(self, camera: str) -> Scorer:
        """What ``camera`` scores with now."""
        with self._cond:
            taught = self.cameras[camera].taught
        return self.base_scorer if taught is None else TaughtScorer(taught)

    # -- life cycle --------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._work, name="scenecls-teach", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    # -- corrections -------------------------------------------------------------------

    def add(
        self,
        camera: str,
        label: str,
        image_bgr: np.ndarray,
        embedding: np.ndarray,
        region: dict[str, Any] | None,
    ) -> dict[str, Any]:
        """Store ``image_bgr`` (HxWx3 uint8 BGR, what the encoder saw) with its ``(D,)``
        float32 unit ``embedding`` as an example of ``label`` for ``camera``, and queue
        the camera for teaching. The reply: :meth:`summary` plus ``added``."""
        if label not in self.names:
            raise ValueError(f"label {label!r} is not one of the service's")
        ct = self.cameras[camera]
        jpeg = None
        if ct.folder is not None:
            ok, buf = cv2.imencode(".jpg", image_bgr, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
            jpeg = buf.tobytes() if ok else None
        row = np.asarray(embedding, np.float32).reshape(1, -1)
        with ct.io:
            with self._cond:
                ident = ct.next_id
                ct.next_id += 1
                file = ct.folder.picture_name(ident) if ct.folder is not None else None
                example = Example(ident, label, utc_now(), file, region)
                ct.examples.append(example)
                ct.embeddings = np.concatenate([ct.embeddings, row])
                examples, embeddings, next_id = list(ct.examples), ct.embeddings, ct.next_id
                self._changed(ct)
            if ct.folder is not None:
                saved = False
                try:
                    if jpeg is None:
                        raise OSError("the picture could not be encoded as JPEG")
                    ct.folder.write_picture(ident, jpeg)
                    ct.folder.commit(examples, embeddings, next_id, self.model)
                    saved = True
                except (OSError, SceneclsError) as e:
                    log.error(
                        "camera %s: example %d (%s) holds until a restart: cannot store it "
                        "in %s: %s", camera, ident, label, ct.folder.folder, e,
                    )  # fmt: skip
                with self._cond:
                    ct.saved = saved
        return {**self.summary(camera), "added": example.to_json()}

    def undo(self, camera: str) -> dict[str, Any]:
        """Remove ``camera``'s newest example and queue the camera for teaching. Raises
        :class:`TeachingRefused` when it has none. The reply: :meth:`summary` plus
        ``removed``."""
        ct = self.cameras[camera]
        with ct.io:
            with self._cond:
                if not ct.examples:
                    raise TeachingRefused(f"camera {camera} has no examples to undo")
                example = ct.examples.pop()
                ct.embeddings = ct.embeddings[:-1]
                examples, embeddings, next_id = list(ct.examples), ct.embeddings, ct.next_id
                self._changed(ct)
            if ct.folder is not None:
                saved = False
                try:
                    ct.folder.commit(examples, embeddings, next_id, self.model)
                    ct.folder.remove_picture(example.file)
                    saved = True
                except (OSError, SceneclsError) as e:
                    log.error("camera %s: undoing example %d holds until a restart: %s",
                              camera, example.id, e)  # fmt: skip
                with self._cond:
                    ct.saved = saved
        return {**self.summary(camera), "removed": example.to_json()}

    def _changed(self, ct: CameraTeaching) -> None:
        """(Holding the lock.) The camera's examples changed: queue it."""
        ct.version += 1
        ct.pending = True
        self._queue[ct.camera] = None
        self._cond.notify_all()

    # -- what the API shows ------------------------------------------------------------

    def _figures(self, ct: CameraTeaching) -> dict[str, Any]:
        """The classifier in use: ``accuracy`` (cross-validated), ``zero_shot`` (the label
        texts alone on the same examples), ``few_examples`` (a label has examples of fewer
        than :data:`~scenecls.model.classifier.FEW_EXAMPLES` moments: the figure is not to
        be trusted yet), ``classifier`` and the training report's ``warnings``."""
        taught = ct.taught if ct.taught is not None else self.base
        report = taught.report if taught is not None else {}
        cv = report.get("cross_validation") or {}
        zs = report.get("zero_shot") or {}
        chosen = report.get("chosen") or {}
        few = False
        if taught is not None and len(taught.example_labels):
            few = taught.__dict__.get("_few_examples")  # made once per set (status polls)
            if few is None:
                labels, groups = taught.example_labels, taught.example_groups
                moments = [len(np.unique(groups[labels == i])) for i in np.unique(labels)]
                few = taught.__dict__["_few_examples"] = min(moments) < FEW_EXAMPLES
        return {
            "accuracy": cv.get("accuracy"),
            "zero_shot": zs.get("accuracy"),
            "few_examples": few,
            "classifier": chosen.get("description"),
            "warnings": list(report.get("warnings") or []),
        }

    def status(self, camera: str) -> dict[str, Any]:
        """The camera's ``teaching`` object in ``/api/status``."""
        with self._cond:
            ct = self.cameras[camera]
            return {
                "examples": len(ct.examples),
                **{
                    k: v
                    for k, v in self._figures(ct).items()
                    if k not in ("classifier", "warnings")
                },
                "training": ct.pending or ct.running,
                "error": ct.error,
            }

    def summary(self, camera: str) -> dict[str, Any]:
        """``GET /api/cameras/NAME/examples``: the camera's examples per label, the
        classifier's cross-validated and text-only accuracy, and the worker's state."""
        with self._cond:
            ct = self.cameras[camera]
            per_label = dict.fromkeys(self.names, 0)
            other = 0
            for e in ct.examples:
                if e.label in per_label:
                    per_label[e.label] += 1
                else:
                    other += 1
            return {
                "camera": camera,
                "examples": len(ct.examples),
                "per_label": per_label,
                **({"other_labels": other} if other else {}),
                "base_examples": 0 if self.base_examples is None else len(self.base_examples),
                "last": ct.examples[-1].to_json() if ct.examples else None,
                **self._figures(ct),
                "training": ct.pending or ct.running,
                "trainings": ct.trainings,
                "trained_at": ct.trained_at,
                "seconds": ct.seconds,
                "error": ct.error,
                "saved": ct.saved,
            }

    # -- the worker --------------------------------------------------------------------

    def _work(self) -> None:
        _lower_priority()
        self._warm()
        while True:
            with self._cond:
                while not self._queue and not self._stop:
                    self._cond.wait()
                if self._stop:
                    return
                camera = next(iter(self._queue))
                del self._queue[camera]
                ct = self.cameras[camera]
                ct.pending, ct.running = False, True
                snap = _Snapshot(ct.version, tuple(ct.examples), ct.embeddings)
            try:
                self._teach(ct, snap)
            except Exception as e:  # pragma: no cover - a bug: the camera keeps its classifier
                log.exception("camera %s: teaching failed", camera)
                with self._cond:
                    ct.error = f"internal error: {type(e).__name__}: {e}"
            finally:
                with self._cond:
                    ct.running = False

    def _warm(self) -> None:
        """Embed the labels' text once, before the first correction needs it."""
        try:
            named = LabelSet(
                tuple(Label(n, tuple(ps) or (n,)) for n, ps in self.texts), self.templates
            )
            self._text.embed_labels(named)
            with_text = tuple(Label(n, tuple(ps)) for n, ps in self.texts if ps)
            if with_text:
                self._text.embed_labels(LabelSet(with_text, self.templates))
        except Exception:  # the first run embeds them instead (and reports any error)
            log.debug("embedding the labels ahead of teaching failed", exc_info=True)

    def _teach(self, ct: CameraTeaching, snap: _Snapshot) -> None:
        """Teach ``ct`` from ``snap`` and hand the new classifier to the service; an error
        keeps the classifier in use and is reported."""
        t0 = time.perf_counter()
        active = self._active(snap.examples)
        taught: TaughtSet | None = None
        error: str | None = None
        if active:
            region = snap.examples[active[-1]].region
            ex = ExampleSet.empty(int(self.model.embed_dim), region)
            if self.base_examples is not None:
                ex.extend(self.base_examples)
            ex.add(
                snap.embeddings[active],
                [snap.examples[i].label for i in active],
                [self._source(ct, snap.examples[i]) for i in active],
            )
            try:
                taught = teach_embeddings(self._text, ex, self.texts, templates=self.templates)
            except SceneclsError as e:
                error = str(e)
        seconds = round(time.perf_counter() - t0, 4)
        with self._cond:
            ct.trainings += 1
            ct.seconds = seconds
            current = snap.version == ct.version
            if error is not None:
                ct.error = error
                log.warning("camera %s: keeping its classifier: %s", ct.camera, error)
            else:
                ct.taught = taught
                ct.error = None
                ct.trained_at = utc_now()
                if taught is not None:
                    taught.report["trained_at"] = ct.trained_at
            event = {
                "examples": len(snap.examples),
                **{k: v for k, v in self._figures(ct).items() if k != "warnings"},
                "seconds": seconds,
                "error": error,
            }
        if error is None:
            scorer = self.base_scorer if taught is None else TaughtScorer(taught)
            self.on_taught(ct.camera, scorer, event)
            if ct.folder is not None and current:
                try:
                    ct.folder.save_taught(taught)
                except (OSError, SceneclsError) as e:
                    log.error("camera %s: cannot store its taught label set: %s", ct.camera, e)
        else:
            self.on_taught(ct.camera, None, event)


def _lower_priority() -> None:
    """Linux: nice this thread alone (not the process), so the video's threads win the
    cores while it teaches."""
    if not sys.platform.startswith("linux"):
        return
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + WORKER_NICE)
    except (AttributeError, OSError):
        log.debug("cannot lower the teaching thread's priority", exc_info=True)
