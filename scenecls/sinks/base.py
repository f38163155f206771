"""The sink interface: where predictions go (files, a window, a video)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..cache import write_bytes_atomic
from ..errors import UsageError
from ..types import Frame, Prediction, Segment


@dataclass(frozen=True)
class RunInfo:
    """What sinks know about a run: the source, its size and nominal rate, the labels."""

    source: str
    labels: tuple[str, ...]
    size: tuple[int, int] | None  # (width, height)
    fps: float | None
    live: bool


class Sink:
    """Receives every frame in order. Subclasses override what they need.

    :meth:`on_frame` gets every input frame (``analysed`` tells whether this frame was
    scored or carries the last prediction); :meth:`finish` is always called once, also
    after an error or Ctrl-C, and must leave the output complete and valid.
    ``needs_overlay`` sinks receive the annotated image in ``annotated_bgr``.
    """

    needs_overlay = False

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

    def finish(self, segments: Sequence[Segment]) -> None:
        """Called once at the end with all closed segments."""

    @property
    def stop_requested(self) -> bool:
        """A sink (for example a window) may ask the run to stop."""
        return False


def check_writable(path: Path, option: str) -> Path:
    """Refuse, before any work starts, an output whose folder is missing or read-only."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise UsageError(f"{option} {path} is a folder: give a file name")
    if not parent.is_dir():
        raise UsageError(f"{option} {path}: folder {parent} does not exist: create it first")
    if not os.access(parent, os.W_OK):
        raise UsageError(f"{option} {path}: folder {parent} is not writable")
    return path


def write_text_atomic(path: Path, text: str) -> None:
    """UTF-8 ``text`` to ``path`` atomically: never half a file."""
    write_bytes_atomic(Path(path), text.encode("utf-8"))
