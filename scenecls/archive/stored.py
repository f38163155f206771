"""Finding stored embeddings: stores named on the command line (folders, or ``.npz``
files of earlier versions), the embeddings outputs that ``scenecls annotate`` recorded
in an output folder's manifest, or the history of a ``scenecls serve --data`` folder;
and the model that wrote them."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import SceneclsError, UsageError
from ..model.bundle import Bundle, is_bundle_dir, load_bundle
from ..model.embeddings_store import (
    META_NAME,
    SUFFIX,
    EmbeddingsFile,
    MetaFacts,
    StoreError,
    open_embeddings,
    read_meta,
)
from ..model.growing_npy import HEADER_BYTES
from ..model.history_layout import HISTORY_DIR, history_chunks
from ..model.resolve import resolve_model
from ..utc import utc_iso
from .manifest import MANIFEST_NAME, read_manifest

log = logging.getLogger("scenecls")


@dataclass
class StoredVideo(MetaFacts):
    """The stored embeddings of one video, found but not opened (an archive may hold more
    files than a process may keep open): ``path`` of the file, its ``meta``, ``name``
    (how it is shown: its path in the archive, or the video's file name), ``rel`` (where
    outputs made from it go under an output folder, POSIX), ``video`` (the video's
    absolute path when it was a file). :meth:`open` maps the file for reading."""

    path: Path
    meta: dict[str, Any]
    name: str
    rel: str
    video: str | None

    def approx_rows(self) -> int:
        """About how many rows the store holds (from its size; no file is opened)."""
        width = int(self.meta.get("embed_dim") or 512)
        size = 2 if self.meta.get("dtype") == "float16" else 4
        try:
            if self.path.is_dir():
                return max(0, (self.path / "embeddings.npy").stat().st_size - HEADER_BYTES) // (
                    width * size
                )
            return self.path.stat().st_size // (width * size)
        except OSError:
            return 0

    def open(self, *, frames: bool = True) -> EmbeddingsFile:
        """The file, checked, its rows memory-mapped (``frames=False``: without the
        per-frame records, which search does not need). Raises :class:`StoreError`."""
        return open_embeddings(self.path, frames=frames)


@dataclass(frozen=True)
class Problem:
    """A file that could not be used, and why (one line)."""

    path: str
    message: str

    @property
    def line(self) -> str:
        """The message, naming the file (once)."""
        return self.message if self.path in self.message else f"{self.path}: {self.message}"


def _from_file(path: Path) -> StoredVideo:
    meta = read_meta(path)
    video = meta.get("input")
    if video:
        rel = Path(str(video)).name
    else:
        rel = path.name.removesuffix(SUFFIX).removesuffix(".embeddings")
    return StoredVideo(path, meta, rel, rel, str(video) if video else None)


def _from_history(folder: Path) -> tuple[list[StoredVideo], list[Problem]]:
    """The history chunks of a ``scenecls serve --data`` folder, each a stored "video"
    named ``CAMERA YYYY-mm-ddTHH:MM:SSZ`` (its start); readable while the service runs."""
    found: list[StoredVideo] = []
    problems: list[Problem] = []
    for chunk in history_chunks(folder):
        try:
            meta = read_meta(chunk.path)
        except StoreError as e:
            problems.append(Problem(str(chunk.path), str(e)))
            continue
        camera = str(meta.get("camera") or chunk.camera)
        name = f"{camera} {utc_iso(chunk.start, 0)}"
        rel = f"{chunk.stem}/{chunk.path.name}"
        found.append(StoredVideo(chunk.path, meta, name, rel, None))
    return found, problems


def collect(paths: Sequence[str | Path]) -> tuple[list[StoredVideo], list[Problem]]:
    """The stored videos of ``paths`` (embeddings stores, annotate output folders, serve
    data folders), and
    the files that are damaged or unreadable (reported, left out). Raises
    :class:`UsageError` for a path that is neither, or a folder without embeddings."""
    found: list[StoredVideo] = []
    problems: list[Problem] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir() and (path / META_NAME).is_file():  # a store folder
            try:
                found.append(_from_file(path))
            except StoreError as e:
                problems.append(Problem(str(path), str(e)))
        elif path.is_dir() and (path / HISTORY_DIR).is_dir():  # a serve --data folder
            chunks, trouble = _from_history(path)
            if not chunks and not trouble:
                raise UsageError(
                    f"{path}: the service has not stored any history yet: search it once "
                    "a camera has been analysed for a few seconds"
                )
            found.extend(chunks)
            problems.extend(trouble)
        elif path.is_dir():
            manifest = path / MANIFEST_NAME
            if not manifest.is_file():
                raise UsageError(
                    f"{path} is no embeddings store and has no {MANIFEST_NAME}: give "
                    "embeddings stores (run --embeddings), the --out folder of a scenecls "
                    "annotate run, or the --data folder of scenecls serve"
                )
            entries = [
                e
                for e in read_manifest(manifest).values()
                if e.get("status") == "done" and (e.get("outputs") or {}).get("embeddings")
            ]
            if not entries:
                raise UsageError(
                    f"{path}: no video there has stored embeddings: annotate with "
                    "--outputs including embeddings (e.g. --outputs jsonl,segments,embeddings)"
                )
            for entry in entries:
                file = path / entry["outputs"]["embeddings"]
                try:
                    meta = read_meta(file)
                except StoreError as e:
                    problems.append(Problem(str(file), str(e)))
                    continue
                rel = str(entry.get("file") or Path(str(entry["input"])).name)
                found.append(StoredVideo(file, meta, rel, rel, str(entry["input"])))
        elif path.is_file() or path.suffix.lower() == SUFFIX:
            try:
                found.append(_from_file(path))
            except StoreError as e:
                problems.append(Problem(str(path), str(e)))
        else:
            raise UsageError(
                f"{path}: no such file or folder: give embeddings stores (run --embeddings), "
                "the --out folder of a scenecls annotate run, or the --data folder of "
                "scenecls serve"
            )
    return found, problems


def one_model(videos: Sequence[StoredVideo]) -> str:
    """The fingerprint all ``videos`` share; :class:`UsageError` naming the models when
    they come from several (their embeddings are not comparable)."""
    by_fp: dict[str, list[StoredVideo]] = {}
    for v in videos:
        by_fp.setdefault(v.fingerprint, []).append(v)
    if len(by_fp) > 1:
        parts = [
            f"{vs[0].model_id} ({fp}) in {len(vs)} file{'s' * (len(vs) != 1)}, e.g. {vs[0].path}"
            for fp, vs in by_fp.items()
        ]
        raise UsageError(
            f"these embeddings come from {len(by_fp)} different models, whose embeddings "
            f"cannot be compared: {'; '.join(parts)}: search or relabel one model's files "
            "at a time"
        )
    return next(iter(by_fp))


def bundle_for(videos: Sequence[StoredVideo], model: str | None) -> Bundle:
    """The bundle that wrote ``videos`` (all of one model): ``model`` when given (refused
    when its fingerprint is another), else the bundle folder recorded in the files, else
    the recorded model id resolved through the cache."""
    fingerprint = one_model(videos)
    meta = videos[0].meta
    stored = f"{meta.get('model')} (fingerprint {fingerprint})"
    if model is not None:
        bundle = load_bundle(resolve_model(model, str(meta.get("bundle_precision") or "fp32")))
        if bundle.fingerprint != fingerprint:
            raise UsageError(
                f"{videos[0].path} holds embeddings of {stored}, but --model {model} "
                f"is {bundle.model_id} (fingerprint {bundle.fingerprint}): give the model "
                "that wrote them" + (f" (--model {meta['bundle']})" if meta.get("bundle") else "")
            )
        return bundle
    folder = meta.get("bundle")
    if folder and is_bundle_dir(Path(folder)):
        try:
            bundle = load_bundle(folder)
            if bundle.fingerprint == fingerprint:
                return bundle
        except SceneclsError as e:
            log.info("the recorded bundle %s cannot be used: %s", folder, e)
    try:
        bundle = load_bundle(
            resolve_model(str(meta.get("model")), str(meta.get("bundle_precision") or "fp32"))
        )
    except SceneclsError as e:
        raise UsageError(
            f"the model that wrote {videos[0].path}, {stored}, is not here ({e}): "
            "give it with --model BUNDLE_OR_FOLDER"
        ) from e
    if bundle.fingerprint != fingerprint:
        raise UsageError(
            f"{videos[0].path} holds embeddings of {stored}; the cached "
            f"{bundle.model_id} has fingerprint {bundle.fingerprint}: give the model that "
            "wrote them with --model"
        )
    return bundle
