"""The sink interface: where predictions go (files, a window, a video)."""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ...atomic import write_bytes_atomic
from ...errors import OutputError, UsageError
from ...types import Frame, Prediction, Segment
from ..lookahead import Provenance

# a run stops when an output's disk has less than this left, so every file can still be
# finished (an mp4's index, the segment and caption files) and stay valid
MIN_FREE_BYTES = 64 * 2**20


@dataclass(frozen=True)
class RunInfo:
    """What sinks know about a run: the source, its size and nominal rate, the labels;
    ``model``: the model as run (see :func:`~scenecls.model.scene_model.model_meta`);
    ``settings``: the change gate's and sampling settings."""

    source: str
    labels: tuple[str, ...]
    size: tuple[int, int] | None  # (width, height)
    fps: float | None
    live: bool
    model: Mapping[str, Any] = field(default_factory=dict)
    settings: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class EmbeddingBatch:
    """The analysed frames of one batch and their embeddings: ``embeddings`` ``(N, D)``
    float32 unit rows; ``encoded`` ``(N,)`` bool (the image encoder ran on the frame);
    ``provenance``: how the other frames' embeddings were made from the encoded ones."""

    frames: Sequence[Frame]
    embeddings: np.ndarray
    encoded: np.ndarray
    provenance: Provenance


class Sink:
    """Receives every frame in order. Subclasses override what they need.

    :meth:`on_frame` gets every input frame (``analysed`` tells whether this frame was
    scored or carries the last prediction); :meth:`finish` is always called once, also
    after an error or Ctrl-C, and must leave the output complete and valid.
    ``needs_overlay`` sinks receive the annotated image in ``annotated_bgr``. When a file
    is analysed at a lower rate (``analysis_fps``) and no sink sets
    ``needs_every_frame``, the frames in between are never converted to images and sinks
    see only the analysed frames. ``paces``: :meth:`on_frame` may wait for a clock (a
    window playing a file), so the run goes no faster than that.
    """

    needs_overlay = False
    needs_every_frame = False
    # on_frame waits for a clock (a window playing a file at its own speed)
    paces = False

    def start(self, info: RunInfo) -> None:
        """Called once before the first frame."""

    def on_frame(
        self,
        frame: Frame,
        prediction: Prediction | None,
        analysed: bool,
        annotated_bgr: object | None = None,
    ) -> None:
        """Called for every input frame, in order."""

    def on_embeddings(self, batch: EmbeddingBatch) -> None:
        """Called with each batch's embeddings, before its frames' :meth:`on_frame`."""

    def on_gap(self, lost_at: float, resumed_at: float) -> None:
        """A live source was lost at ``lost_at`` s and resumed at ``resumed_at`` s."""

    def finish(self, segments: Sequence[Segment]) -> None:
        """Called once at the end with all closed segments."""

    @property
    def stop_requested(self) -> bool:
        """A sink (for example a window) may ask the run to stop."""
        return False


def check_writable(path: Path, option: str) -> Path:
    """Refuse, before any work starts, an output whose folder is missing or cannot be
    written (read-only, no permission, a read-only file system): the check creates and
    removes a small file there, so it holds for root and for network mounts too."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise UsageError(f"{option} {path} is a folder: give a file name")
    if not parent.is_dir():
        raise UsageError(f"{option} {path}: folder {parent} does not exist: create it first")
    try:
        fd, probe = tempfile.mkstemp(prefix=".scenecls-probe-", dir=parent)
        os.close(fd)
        os.unlink(probe)
        if path.exists() and not os.access(path, os.W_OK):
            raise PermissionError(errno.EACCES, "the file is read-only")
    except OSError as e:
        raise UsageError(
            f"{option} {path}: cannot write there ({e.strerror or e}): choose a writable folder"
        ) from e
    return path


class DiskWatch:
    """Stops a run while its output can still be finished: :meth:`check` raises
    :class:`OutputError` once the file system holding ``path`` has less than
    ``min_free`` bytes left (looked at most once per ``every`` seconds)."""

    def __init__(self, path: Path, min_free: int = MIN_FREE_BYTES, every: float = 1.0) -> None:
        self.path = Path(path)
        self.folder = self.path.parent if str(self.path.parent) else Path(".")
        self.min_free = min_free
        self.every = every
        self._next = 0.0

    def check(self) -> None:
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + self.every
        try:
            free = shutil.disk_usage(self.folder).free
        except OSError:
            return  # cannot tell: the writes themselves will report a failure
        if free < self.min_free:
            raise OutputError(
                f"writing {self.path} stopped: the disk is nearly full ({free / 2**20:.0f} MB "
                "left); the outputs so far are complete: free some space and run again"
            )


def write_text_atomic(path: Path, text: str) -> None:
    """UTF-8 ``text`` to ``path`` atomically: never half a file."""
    write_bytes_atomic(Path(path), text.encode("utf-8"))
