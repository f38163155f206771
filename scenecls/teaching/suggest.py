"""What to label next: the most distinct moments of videos, as pictures to sort.

``scenecls teach --suggest VIDEO|EMBEDDINGS... --count N --out DIR`` samples candidate
moments from each input at ``fps`` per second, keeps the ``N`` most distinct of them
(spread over the embedding space, and over time within a video) and writes each as a
JPEG of the whole frame into ``DIR/unsorted/``, named by its video and time
(``bottle-detection_01m02.5s.jpg``). The user sorts them into one folder per label
beside ``unsorted/`` and teaches from ``DIR``.

Candidates of a video file are decoded and encoded (the region crop, as the classifier
will see it); those of an embeddings store (``scenecls run --embeddings``: a folder, or a
``.npz`` file of earlier versions) come from its stored frame embeddings, so nothing is
encoded and only the chosen frames are decoded, from the video the store names
(``meta["input"]``).

The choice is greedy farthest-point selection on cosine distance: first the most
typical candidate (nearest the mean), then again and again the candidate farthest from
everything chosen so far. A candidate's distance to a chosen moment of the same video is
shrunk by up to :data:`TIME_PENALTY` when they are close in time (scale
:data:`TIME_SCALE_S`), so picks spread over the video; candidates that are
near-duplicates of a chosen one (cosine at least
:data:`~scenecls.model.classifier.NEAR_DUPLICATE`) are never chosen. Ties go to the
earlier candidate: the result is deterministic.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from ..atomic import write_bytes_atomic
from ..errors import InputError, UsageError
from ..model.classifier import NEAR_DUPLICATE
from ..model.embeddings_store import EmbeddingsFile, StoreError, open_embeddings
from ..region import Region, region_crop
from ..video.sources import VideoFileSource
from .examples import is_store

log = logging.getLogger("scenecls")

UNSORTED = "unsorted"
"""The folder of ``out_dir`` the suggested pictures go to."""
README = "README.txt"
TIME_PENALTY = 0.3
"""At most this share of the cosine distance to a chosen moment of the same video is
taken off when the two are at the same time (less as they lie further apart)."""
TIME_SCALE_S = 5.0
"""Seconds over which the time penalty falls to ``1/e`` of its full size."""
TIME_TOLERANCE_S = 1e-3
"""A decoded frame is the one asked for when its presentation time is this close."""
ENCODE_BATCH = 32
JPEG_QUALITY = 92
_GIVE = (
    "give video files or embeddings stores (scenecls run --embeddings; .npz of earlier versions)"
)


class Encoder(Protocol):
    """What :func:`suggest` needs of a model: ``encode_images`` (HxWx3 uint8 BGR images
    -> ``(N, D)`` float32 unit rows); ``bundle`` (fingerprint, model id) and
    ``embed_dim`` are used when present."""

    def encode_images(self, images_bgr: Sequence[np.ndarray]) -> np.ndarray: ...


@dataclass
class Candidates:
    """The candidate moments of one input: ``times`` ``(n,)`` float64 presentation times
    (s) in ``video`` and their ``embeddings`` ``(n, D)`` float32 unit rows."""

    input: str
    video: Path
    times: np.ndarray
    embeddings: np.ndarray


# -- frames ------------------------------------------------------------------------------


class _Every:
    """A sampler of frame times: True for the first frame at or after each step of
    ``step`` seconds from the first frame (called with times in increasing order)."""

    def __init__(self, step: float) -> None:
        self.step = step
        self.next: float | None = None

    def __call__(self, t: float) -> bool:
        if self.next is not None and t < self.next - TIME_TOLERANCE_S:
            return False
        base = t if self.next is None else self.next
        steps = max(0, math.floor((t - base) / self.step + 1e-9)) + 1
        self.next = base + self.step * steps
        return True


def _retrieve(cap: cv2.VideoCapture) -> np.ndarray | None:
    """The frame ``cap`` grabbed last as HxWx3 uint8 BGR, or None."""
    ok, image = cap.retrieve()
    if not ok or image is None:
        return None
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return image


def _position(cap: cv2.VideoCapture) -> float:
    """The presentation time (s) of the frame ``cap`` grabbed last."""
    return cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0


def _grab_to(cap: cv2.VideoCapture, target: float, exact: bool) -> np.ndarray | None:
    """Grab forward from where ``cap`` stands to the frame at ``target`` s (HxWx3 uint8
    BGR): the one at that time, or when not ``exact`` the first at or after it. None when
    the first frame reached lies after it (``exact``), or the file ends first."""
    while cap.grab():
        t = _position(cap)
        if t < target - TIME_TOLERANCE_S:
            continue
        if exact and t > target + TIME_TOLERANCE_S:
            return None
        return _retrieve(cap)
    return None


def frames_at(
    path: str | Path, times_s: Sequence[float], *, exact: bool = True
) -> list[np.ndarray | None]:
    """The frames of the video at ``path`` whose presentation times (as
    :class:`~scenecls.video.sources.VideoFileSource` reports them, and as embeddings
    files store them) are ``times_s`` (or, when not ``exact``, the first frame at or
    after each time): HxWx3 uint8 BGR each, None where there is no such frame (or the
    file cannot be read). Seeks shortly before each time and decodes forward to it;
    times it cannot reach that way come from one pass through the file."""
    out: list[np.ndarray | None] = [None] * len(times_s)
    order = sorted(range(len(times_s)), key=lambda i: times_s[i])
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    duration = math.inf  # from the header (approximate), when it says
    try:
        count, fps = cap.get(cv2.CAP_PROP_FRAME_COUNT), cap.get(cv2.CAP_PROP_FPS)
        if count > 0 and 0 < fps < 1000:
            duration = count / fps
        for i in order if cap.isOpened() else ():
            target = float(times_s[i])
            for back in (1.0, 10.0):
                start = max(0.0, target - back)
                cap.set(cv2.CAP_PROP_POS_MSEC, start * 1000.0)
                if not cap.grab():
                    break  # past the end
                t = _position(cap)
                if t > target + TIME_TOLERANCE_S:
                    if start == 0.0:
                        break
                    continue  # the seek overshot: start further back
                out[i] = (
                    _retrieve(cap)
                    if t >= target - TIME_TOLERANCE_S
                    else _grab_to(cap, target, exact)
                )
                break
    finally:
        cap.release()
    # no usable seeking, or times counted by frame index: read it through (not for
    # times past the end, which would cost a pass through the whole file for nothing)
    missing = [i for i in order if out[i] is None and times_s[i] <= duration + 1.0]
    if missing:
        source = VideoFileSource(path)
        try:
            source.open()
            while missing and (frame := source.read()) is not None:
                while missing and frame.timestamp >= times_s[missing[0]] - TIME_TOLERANCE_S:
                    near = abs(frame.timestamp - times_s[missing[0]]) <= TIME_TOLERANCE_S
                    if near or not exact:
                        out[missing[0]] = frame.image_bgr
                    missing.pop(0)
        except InputError:
            pass
        finally:
            source.close()
    return out


# -- inputs ------------------------------------------------------------------------------


def _is_text(path: Path) -> bool:
    """Whether FFmpeg reads ``path`` as text rendered into pictures (its tty demuxer
    takes any ``.txt`` file for a video)."""
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    try:
        return cap.isOpened() and int(cap.get(cv2.CAP_PROP_FOURCC)) == _ANSI
    finally:
        cap.release()


_ANSI = int.from_bytes(b"ansi", "little")


def _open_video(path: Path, name: str) -> np.ndarray:
    """The first frame (HxWx3 uint8 BGR) of the video at ``path``; :class:`UsageError`
    naming ``name`` when it is no readable video."""
    what = f"{name} is neither a video nor an embeddings store: {_GIVE}"
    source = VideoFileSource(path)
    try:
        source.open()
        frame = source.read()
    except InputError as e:
        raise UsageError(f"{what} ({e})") from None
    finally:
        source.close()
    if frame is None or _is_text(path):
        raise UsageError(what)
    return frame.image_bgr


def _model_facts(model: Encoder | None) -> tuple[str | None, str | None, int | None]:
    bundle = getattr(model, "bundle", None)
    fingerprint = getattr(bundle, "fingerprint", None)
    model_id = getattr(bundle, "model_id", None)
    dim = getattr(model, "embed_dim", None)
    return (
        None if fingerprint is None else str(fingerprint),
        None if model_id is None else str(model_id),
        None if dim is None else int(dim),
    )


@dataclass
class _Plan:
    """One checked input: a video to decode and encode, or an embeddings store."""

    input: str
    video: Path
    store: EmbeddingsFile | None = None


def _plan(model: Encoder | None, spec: str | Path, region: Region | None) -> _Plan:
    """Check one input before anything is decoded in earnest or written."""
    name = str(spec)
    path = Path(spec)
    if not path.exists():
        raise UsageError(f"{name} does not exist: {_GIVE}")
    if path.is_dir() and not is_store(path):
        raise UsageError(f"{name} is a folder but no embeddings store: {_GIVE}")
    if is_store(path):
        try:
            store = open_embeddings(path)
        except StoreError as e:
            raise UsageError(str(e)) from None
        for note in store.notes:  # cut after a crash: what was flushed is used
            log.warning("%s", note)
        video = store.meta.get("input")
        if not video:
            raise UsageError(
                f"{name} does not name the video it was made from (a live source?): "
                "give the video file itself"
            )
        video_path = Path(str(video))
        if not video_path.is_file():
            raise UsageError(
                f"{name}: its video {video_path} is missing: put it back, or give the "
                "video file itself"
            )
        size = store.meta.get("input_size")
        if size is not None and video_path.stat().st_size != int(size):
            raise UsageError(
                f"{name}: its video {video_path} has changed since the embeddings were "
                "written: give the video file itself, or write the embeddings again"
            )
        if not len(store.frames):
            raise UsageError(f"{name} holds no analysed frames: give the video file itself")
        if region is not None:
            log.info(
                "%s: stored embeddings are used as they were made; --region is not applied", name
            )
        return _Plan(name, video_path, store)
    if model is None:
        raise ValueError("a model is needed to encode the frames of a video")
    first = _open_video(path, name)
    if region is not None:
        try:
            region_crop(region, first, name)
        except InputError as e:
            raise UsageError(str(e)) from None
    return _Plan(name, path)


def _check_one_model(plans: Sequence[_Plan], model: Encoder | None) -> None:
    """Embeddings of one model only: every stored file's must be the model's (when it
    is known), or else all the same."""
    fingerprint, model_id, dim = _model_facts(model)
    first: tuple[str, str] | None = None  # (input, fingerprint) of the first file
    for plan in plans:
        store = plan.store
        if store is None:
            continue
        fp = store.fingerprint
        width = int(store.embeddings.shape[1])
        if fingerprint is not None and fp != fingerprint:
            raise UsageError(
                f"{plan.input} was written with model {store.model_id} (fingerprint "
                f"{fp[:12]}), not {model_id or 'this model'} (fingerprint {fingerprint[:12]}): "
                "pass that --model, or give the video file itself"
            )
        if dim is not None and width != dim:
            raise UsageError(
                f"{plan.input} holds embeddings of {width} values, the model's have {dim}: "
                "pass the --model it was written with, or give the video file itself"
            )
        if first is not None and fp != first[1]:
            raise UsageError(
                f"{plan.input} and {first[0]} were written with different models: give "
                "embeddings stores of one model"
            )
        first = first or (plan.input, fp)


def _sample_video(
    model: Encoder, plan: _Plan, region: Region | None, fps: float, stop: threading.Event | None
) -> Candidates | None:
    """Decode ``plan``'s video at ``fps`` and encode the region of each sampled frame."""
    source = VideoFileSource(plan.video)
    source.wanted = _Every(1.0 / fps)
    times: list[float] = []
    rows: list[np.ndarray] = []
    batch: list[np.ndarray] = []

    def flush() -> None:
        if batch:
            rows.append(np.asarray(model.encode_images(batch), np.float32))
            batch.clear()

    try:
        source.open()
        while (frame := source.read()) is not None:
            if stop is not None and stop.is_set():
                return None
            batch.append(
                region_crop(region, frame.image_bgr, f"{plan.input} at {frame.timestamp:.2f} s")
            )
            times.append(frame.timestamp)
            if len(batch) >= ENCODE_BATCH:
                flush()
        flush()
    except InputError as e:
        raise UsageError(f"{plan.input}: {e}") from None
    finally:
        source.close()
    dim = rows[0].shape[1] if rows else 0
    emb = np.concatenate(rows) if rows else np.zeros((0, dim), np.float32)
    return Candidates(plan.input, plan.video, np.asarray(times, np.float64), emb)


def _sample_store(plan: _Plan, store: EmbeddingsFile, fps: float) -> Candidates:
    """The stored frame embeddings of ``plan``'s file at ``fps`` (nothing encoded)."""
    frame_times = np.asarray(store.frames["time"], np.float64)
    every = _Every(1.0 / fps)
    picked = [i for i, t in enumerate(frame_times.tolist()) if every(t)]
    width = int(store.embeddings.shape[1])
    emb = (
        np.concatenate([store.frame_embeddings(i, i + 1) for i in picked])
        if picked
        else np.zeros((0, width), np.float32)
    )
    return Candidates(plan.input, plan.video, frame_times[picked], emb)


# -- choosing ----------------------------------------------------------------------------


def pick_distinct(
    embeddings: np.ndarray,
    videos: np.ndarray,
    times: np.ndarray,
    count: int,
    *,
    time_penalty: float = TIME_PENALTY,
    time_scale: float = TIME_SCALE_S,
) -> np.ndarray:
    """Indices (in order of choice) of up to ``count`` of the ``(n, D)`` ``embeddings``
    (float unit rows; ``videos`` ``(n,)`` int which video each is from, ``times`` ``(n,)``
    float seconds) chosen by greedy farthest-point selection on cosine distance, with
    the time penalty and near-duplicate rule of the module docstring. Deterministic."""
    e = np.asarray(embeddings, np.float64)
    n = len(e)
    if n == 0 or count < 1:
        return np.zeros(0, np.int64)
    e = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
    videos = np.asarray(videos)
    times = np.asarray(times, np.float64)
    nearest = np.full(n, np.inf)  # penalised distance to the nearest chosen moment
    eligible = np.ones(n, bool)
    chosen: list[int] = []

    def take(j: int) -> None:
        cos = e @ e[j]
        shrink = np.where(
            videos == videos[j],
            1.0 - time_penalty * np.exp(-np.abs(times - times[j]) / max(time_scale, 1e-9)),
            1.0,
        )
        np.minimum(nearest, np.clip(1.0 - cos, 0.0, None) * shrink, out=nearest)
        eligible[cos >= NEAR_DUPLICATE] = False
        eligible[j] = False
        chosen.append(j)

    mean = e.mean(axis=0)
    take(int(np.argmax(e @ mean)))  # the most typical moment first
    while len(chosen) < count and eligible.any():
        take(int(np.argmax(np.where(eligible, nearest, -np.inf))))
    return np.asarray(chosen, np.int64)


# -- writing -----------------------------------------------------------------------------


def moment_name(stem: str, seconds: float) -> str:
    """``<stem>_<MMmSS.Ss>``: the video's stem and the time to a tenth of a second
    (minutes go past 59 in long videos: ``75m02.5s``)."""
    tenths = max(0, round(seconds * 10))
    minutes, rest = divmod(tenths, 600)
    return f"{stem}_{minutes:02d}m{rest / 10:04.1f}s"


def readme_text(out_dir: Path) -> str:
    """What to do with the suggested pictures (``out_dir/unsorted/README.txt``)."""
    return (
        "Pictures to sort: the most distinct moments of your videos, chosen by scenecls.\n"
        "Each is named by its video and time (video_MMmSS.Ss.jpg).\n\n"
        f"1. Make one folder per label beside unsorted/: {out_dir}/<label>/\n"
        f"   (for example {out_dir}/margherita/ and {out_dir}/quattro-formaggi/).\n"
        "2. Move each picture into its label's folder. Delete the ones that fit no\n"
        f"   label, or make a 'none' folder ({out_dir}/none/) for the empty scene.\n"
        "3. Teach from the folder:\n\n"
        f"   scenecls teach {out_dir} --out set.npz\n\n"
        "Pictures left in unsorted/ are not used.\n"
    )


def _unique(name: str, taken: set[str]) -> str:
    candidate, n = name, 2
    while candidate in taken:
        candidate = f"{name}-{n}"
        n += 1
    taken.add(candidate)
    return candidate


def suggest(
    model: Encoder | None,
    inputs: Sequence[str | Path],
    count: int,
    out_dir: Path,
    *,
    region: Region | None = None,
    fps: float = 1.0,
    stop: threading.Event | None = None,
) -> list[Path]:
    """Write the ``count`` most distinct moments of ``inputs`` (video files, or
    embeddings stores whose video still exists) as JPEGs of the whole frame
    (HxWx3 BGR as decoded, nothing drawn) into ``out_dir/unsorted/``, named
    ``<video stem>_<MMmSS.Ss>.jpg``, plus a ``README.txt`` saying how to sort them.

    Candidates are sampled at ``fps`` per second; those of a video are encoded by
    ``model`` (``region``'s crop of each frame when given), those of an embeddings store
    are its stored rows (``model`` may then be None; the region is not applied). See the
    module docstring for the choice. Returns the paths written, in input order and time
    order within each video; fewer than ``count`` when the inputs hold fewer distinct
    moments. Raises :class:`UsageError` (one line naming the input and what to do)
    before anything is written when an input is no readable video or embeddings store,
    an embeddings store's video is missing, or ``count`` is under 1. When ``stop`` is set
    while candidates are gathered, returns ``[]`` and writes nothing."""
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise UsageError(f"--count must be a whole number, 1 or more, not {count!r}")
    if not (isinstance(fps, int | float) and math.isfinite(fps) and fps > 0):
        raise UsageError(f"--fps must be more than 0, not {fps!r}")
    if not inputs:
        raise UsageError(f"nothing to suggest from: {_GIVE}")
    plans = [_plan(model, spec, region) for spec in inputs]
    _check_one_model(plans, model)

    pools: list[Candidates] = []
    for plan in plans:
        if stop is not None and stop.is_set():
            return []
        if plan.store is not None:
            pools.append(_sample_store(plan, plan.store, fps))
        else:
            assert model is not None  # _plan refused videos without a model
            pool = _sample_video(model, plan, region, fps, stop)
            if pool is None:
                return []
            pools.append(pool)
    pools = [p for p in pools if len(p.times)]
    if not pools:
        raise UsageError("the inputs hold no frames to suggest: give other videos")
    widths = {p.embeddings.shape[1] for p in pools}
    if len(widths) > 1:
        raise UsageError(
            "the inputs' embeddings differ in size (another model wrote an embeddings "
            "file): give the video files themselves"
        )
    video_ids: dict[Path, int] = {}
    ids = np.concatenate(
        [
            np.full(len(p.times), video_ids.setdefault(p.video.resolve(), len(video_ids)))
            for p in pools
        ]
    )
    owner = np.concatenate([np.full(len(p.times), i) for i, p in enumerate(pools)])
    row = np.concatenate([np.arange(len(p.times)) for p in pools])
    times = np.concatenate([p.times for p in pools])
    chosen = pick_distinct(np.concatenate([p.embeddings for p in pools]), ids, times, count)
    if len(chosen) < count:
        log.info(
            "only %d distinct moments in the inputs (of %d asked for): the rest would be "
            "near-duplicates",
            len(chosen),
            count,
        )

    folder = Path(out_dir) / UNSORTED
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    taken: set[str] = set()
    for i, pool in enumerate(pools):
        mine = sorted(int(row[c]) for c in chosen if owner[c] == i)
        if not mine:
            continue
        wanted = [float(pool.times[r]) for r in mine]
        images = frames_at(pool.video, wanted)
        for t, image in zip(wanted, images, strict=True):
            if image is None:
                log.warning("%s: the frame at %.2f s could not be decoded, left out", pool.input, t)
                continue
            ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
            if not ok:
                log.warning("%s: the frame at %.2f s could not be encoded, left out", pool.input, t)
                continue
            name = _unique(moment_name(pool.video.stem, t), taken) + ".jpg"
            path = folder / name
            write_bytes_atomic(path, data.tobytes())
            written.append(path)
    write_bytes_atomic(folder / README, readme_text(Path(out_dir)).encode("utf-8"))
    return written
