"""Examples for teaching, as embeddings: from pictures sorted into label folders, from
moments of videos, and from moments of stored embeddings (no video decoded).

``EXAMPLES`` on the command line is any mix of:

- ``DIR``: one sub-folder per label (``DIR/margherita/*.jpg``); ``DIR/unsorted/`` (what
  ``teach --suggest`` writes) is left out. Every picture is its own moment.
- ``VIDEO=MOMENTS.csv``: the label of stretches of a video, in the CSV that ``scenecls
  eval --truth`` reads (``label,start,end`` in seconds). Frames are taken at
  ``fps`` inside each moment; the frames of one moment are one group for
  cross-validation, so neighbouring frames never sit on both sides of a fold.
- ``EMBEDDINGS=MOMENTS.csv``: the same moments of an embeddings store written by
  ``scenecls run --embeddings`` or ``annotate`` (a folder; or a ``.npz`` file of earlier
  versions; it must come from the same model). Nothing is decoded.

Every problem with an input is found before anything is written, and reported in one
line naming the input (exit 2).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError, RegionError, UsageError
from ..evaluation.evaluate import read_truth_csv
from ..model.embeddings_store import META_NAME, SUFFIX, StoreError, open_embeddings
from ..model.taught import ExampleSet
from ..region import Region, region_crop
from ..types import Segment
from ..video.sources.images import IMAGE_EXTENSIONS, read_image
from ..video.sources.opencv import VideoFileSource

log = logging.getLogger("scenecls")

DEFAULT_FPS = 2.0
"""Frames per second of a moment taken as examples."""
UNSORTED = "unsorted"


def is_store(path: str | Path) -> bool:
    """Whether ``path`` names stored embeddings: a store folder (one holding
    ``meta.json``, as ``scenecls run --embeddings`` and ``annotate`` write it), or a
    ``.npz`` file of earlier versions (told by its name alone: it may not exist)."""
    p = Path(path)
    if p.is_dir():
        return (p / META_NAME).is_file()
    return p.suffix.lower() == SUFFIX


class ExampleError(UsageError):
    """An example input is missing, unreadable, or asks for what is not there (exit 2)."""


@dataclass(frozen=True)
class ExampleInput:
    """One ``EXAMPLES`` argument: ``kind`` ``images`` (a folder of label folders),
    ``video`` or ``stored`` (with ``moments``, read from a CSV)."""

    kind: str
    path: Path
    moments: tuple[Segment, ...] = ()
    text: str = ""


def parse_inputs(specs: Sequence[str]) -> list[ExampleInput]:
    """Check every ``EXAMPLES`` argument (paths exist, moments readable) before any work."""
    out = []
    for spec in specs:
        text = str(spec)
        target, sep, csv = text.rpartition("=") if "=" in text else (text, "", "")
        path = Path(target)
        stored = is_store(path)
        if sep:
            if not (path.is_file() or (stored and path.is_dir())):
                raise ExampleError(
                    f"{text}: {target} is neither a video nor an embeddings store: give "
                    "VIDEO=MOMENTS.csv or EMBEDDINGS=MOMENTS.csv"
                )
            moments = tuple(read_truth_csv(Path(csv)))
            out.append(ExampleInput("stored" if stored else "video", path, moments, text))
        elif path.is_file() or (stored and path.is_dir()):
            raise ExampleError(
                f"{text}: say which moments of it show which label: {text}=MOMENTS.csv "
                "(label,start,end per line, as scenecls eval --truth reads)"
            )
        elif path.is_dir():
            out.append(ExampleInput("images", path, text=text))
        else:
            raise ExampleError(
                f"{text} does not exist: give a folder of label folders, VIDEO=MOMENTS.csv "
                "or EMBEDDINGS=MOMENTS.csv (an embeddings store)"
            )
    if not out:
        raise ExampleError("no examples given")
    return out


def label_folders(folder: Path) -> list[tuple[str, list[Path]]]:
    """``(label, picture paths)`` of ``folder``'s sub-folders (``unsorted`` left out),
    sorted by name; folders without pictures are left out."""
    out = []
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        if sub.name == UNSORTED or sub.name.startswith("."):
            continue
        files = sorted(f for f in sub.rglob("*") if f.suffix.lower() in IMAGE_EXTENSIONS)
        if files:
            out.append((sub.name, files))
    return out


def gather(
    model: Any,
    inputs: Sequence[ExampleInput],
    *,
    region: Region | None = None,
    fps: float = DEFAULT_FPS,
    stop: threading.Event | None = None,
) -> ExampleSet:
    """The embeddings of every example of ``inputs`` (``model``: a SceneModel; pictures
    and video frames are cropped to ``region``). Stored embeddings are used as they are:
    they must come from ``model``'s bundle and the same region."""
    if fps <= 0:
        raise UsageError(f"--example-fps must be more than 0, not {fps}")
    examples = ExampleSet.empty(int(model.embed_dim), None if region is None else region.to_json())
    for item in inputs:
        if stop is not None and stop.is_set():
            break
        if item.kind == "images":
            part = _from_folder(model, item, region)
        elif item.kind == "video":
            part = _from_video(model, item, region, fps, stop)
        else:
            part = _from_store(model, item, region, fps)
        examples.extend(part)
    return examples


def _from_folder(model: Any, item: ExampleInput, region: Region | None) -> ExampleSet:
    folders = label_folders(item.path)
    if not folders:
        raise ExampleError(
            f"{item.path} has no label folders with pictures: sort pictures into "
            f"{item.path}/<label>/ (one folder per label)"
        )
    part = ExampleSet.empty(int(model.embed_dim))
    for label, files in folders:
        images = []
        for f in files:
            try:
                images.append(region_crop(region, read_image(f), str(f)))
            except RegionError as e:
                raise ExampleError(f"example {e}") from None
            except InputError as e:
                raise ExampleError(
                    f"example picture {f} cannot be read ({e}): fix or remove it"
                ) from None
        embs = model.encode_images(images)
        part.add(embs, [label] * len(files), [str(f) for f in files])
    return part


def _due_times(moment: Segment, fps: float) -> np.ndarray:
    """Times (s) at which a moment is sampled: from its start every ``1/fps`` s."""
    n = max(1, int(np.ceil((moment.end - moment.start) * fps - 1e-9)))
    return moment.start + np.arange(n) / fps


def _from_video(
    model: Any, item: ExampleInput, region: Region | None, fps: float, stop: threading.Event | None
) -> ExampleSet:
    """Decode ``item``'s video once, up to its last moment, keeping the frame nearest each
    sampled time of each moment (the frame shown at that time)."""
    moments = item.moments
    wanted: list[tuple[float, int]] = sorted(
        (float(t), i) for i, m in enumerate(moments) for t in _due_times(m, fps)
    )
    source = VideoFileSource(item.path)
    try:
        source.open()
    except InputError as e:
        raise ExampleError(f"{item.text}: {e}") from None
    if region is not None and source.size is not None:
        try:
            region.box(*source.size)
        except RegionError as e:
            raise ExampleError(f"{item.path}: {e}") from None
    picked: list[tuple[int, float, np.ndarray]] = []
    part = ExampleSet.empty(int(model.embed_dim))
    w = 0
    previous = None
    ended = False
    try:
        while w < len(wanted):
            if stop is not None and stop.is_set():
                return part
            frame = source.read()
            if frame is None:
                ended = True
                break
            # the frame on show at time t is the last one whose timestamp is <= t
            while w < len(wanted) and wanted[w][0] < frame.timestamp - 1e-9:
                t, i = wanted[w]
                picked.append((i, t, (previous or frame).image_bgr))
                w += 1
            previous = frame
            if len(picked) >= 32:
                _encode(model, picked, region, part, moments, item)
                picked = []
        step = 1.0 / source.fps if source.fps else 0.0
        duration = previous.timestamp + step if previous is not None else 0.0
    finally:
        source.close()
    if ended:
        outside = [m for m in moments if m.start >= duration - 1e-6 or m.end > duration + 0.5]
        if outside:
            m = outside[0]
            raise ExampleError(
                f"{item.text}: moment {m.label} {m.start:g}-{m.end:g} s is outside the video "
                f"(it lasts {duration:.2f} s): fix the moments"
            )
        while w < len(wanted) and previous is not None:  # the last frame stays on show
            t, i = wanted[w]
            picked.append((i, t, previous.image_bgr))
            w += 1
    if picked:
        _encode(model, picked, region, part, moments, item)
    return part


def _encode(
    model: Any,
    picked: list[tuple[int, float, np.ndarray]],
    region: Region | None,
    part: ExampleSet,
    moments: Sequence[Segment],
    item: ExampleInput,
) -> None:
    """Encode the picked frames (region crops) and add them to ``part``; one group per
    moment of this video."""
    crops = [region_crop(region, image, f"{item.path} at {t:.2f} s") for _, t, image in picked]
    embs = model.encode_images(crops)
    for (i, t, _), row in zip(picked, embs, strict=True):
        part.add(row[None], [moments[i].label], [f"{item.path}@{t:.3f}"], group=i)


def _from_store(model: Any, item: ExampleInput, region: Region | None, fps: float) -> ExampleSet:
    """Frames of ``item``'s moments from its embeddings store: the analysed frame on show
    at each sampled time, rebuilt as the run built it."""
    try:
        store = open_embeddings(item.path)
    except StoreError as e:
        raise ExampleError(f"{item.text}: {e}") from None
    for note in store.notes:  # cut after a crash: what was flushed is used
        log.warning("%s", note)
    mine = getattr(getattr(model, "bundle", None), "fingerprint", None)
    theirs = store.meta.get("model_fingerprint")
    if mine is not None and theirs != mine:
        raise ExampleError(
            f"{item.path} holds embeddings of model {store.meta.get('model')} (fingerprint "
            f"{str(theirs)[:12]}), not of {model.bundle.model_id} (fingerprint {mine[:12]}): "
            "teach with that --model, or run the video again with this one"
        )
    stored_region = (store.meta.get("settings") or {}).get("region")
    wanted_region = None if region is None else region.to_json()
    if stored_region != wanted_region:
        raise ExampleError(
            f"{item.path} was analysed with region {_shown(stored_region)}, not "
            f"{_shown(wanted_region)}: give teach the same --region as that run"
        )
    times = store.frames["time"]
    part = ExampleSet.empty(int(model.embed_dim))
    for i, m in enumerate(item.moments):
        if m.start >= store.end - 1e-6 or m.end > store.end + 0.5:
            raise ExampleError(
                f"{item.text}: moment {m.label} {m.start:g}-{m.end:g} s is outside the stored "
                f"video (it lasts {store.end:.2f} s): fix the moments"
            )
        due = _due_times(m, fps)
        at = np.searchsorted(times, due + 1e-9, side="right") - 1  # the frame on show
        at = np.unique(at[at >= 0])
        if not len(at):
            continue
        lo, hi = int(at.min()), int(at.max()) + 1
        rows = np.asarray(store.frame_embeddings(lo, hi), np.float32)[at - lo]
        sources = [f"{item.path}@{float(times[j]):.3f}" for j in at]
        part.add(rows, [m.label] * len(at), sources, group=i)
    return part


def _shown(region: dict[str, Any] | None) -> str:
    return "none (the whole frame)" if region is None else str(Region.from_json(region))
