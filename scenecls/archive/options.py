"""What an archive run is asked to do, the file names of its outputs, and the hash that
decides whether a finished video can be skipped."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import UsageError
from ..model.labels import LabelSet
from ..model.taught import TaughtSet
from ..region import Region
from ..video.gate import GateConfig
from ..video.smoothing import SmoothingConfig

OUTPUT_KINDS: tuple[str, ...] = ("jsonl", "segments", "csv", "srt", "vtt", "video", "embeddings")
"""``--outputs`` choices: per-frame JSON Lines, segments as JSON and as CSV, SubRip and
WebVTT captions, the annotated video, the embeddings (for search and relabel)."""
DEFAULT_OUTPUTS: tuple[str, ...] = ("jsonl", "segments", "srt")

# appended to the video's own file name (with its extension, so clip.mp4 and clip.mov
# in one folder never share an output)
_SUFFIXES = {
    "jsonl": ".jsonl",
    "segments": ".segments.json",
    "csv": ".segments.csv",
    "srt": ".srt",
    "vtt": ".vtt",
    "video": ".annotated.mp4",
    "embeddings": ".embeddings",  # a store folder (format 2)
}


def parse_outputs(text: str, kinds: tuple[str, ...] = OUTPUT_KINDS) -> tuple[str, ...]:
    """``--outputs``: some of ``kinds`` separated by commas, or ``all``; in ``kinds`` order."""
    words = [w.strip().lower() for w in text.split(",") if w.strip()]
    if words == ["all"]:
        return kinds
    unknown = [w for w in words if w not in kinds]
    if unknown or not words:
        raise UsageError(
            f"--outputs {text!r}: choose from {','.join(kinds)} (comma separated) or all"
        )
    return tuple(k for k in kinds if k in words)


def output_name(video_name: str, kind: str) -> str:
    """The file name of output ``kind`` of the video named ``video_name``
    (``clip.mp4`` -> ``clip.mp4.segments.json``)."""
    return video_name + _SUFFIXES[kind]


@dataclass(frozen=True)
class ModelIdentity:
    """The model as a worker really runs it: which weights, and how the image tower
    computes (outputs depend on all of these)."""

    model_id: str
    fingerprint: str
    precision: str
    device: str
    runtime: str


@dataclass(frozen=True)
class ArchiveOptions:
    """Everything a worker needs to annotate a video of the archive (picklable).

    ``model``: what workers load (a bundle folder for the local engine, the ``--model``
    text for Ray, resolved on each node). ``fps``: analysed frames per second of video
    (None: every frame). ``batch``: frames per encoder call. ``top_k``: bars drawn on
    the annotated video. ``gate``: the change gate before the encoder. ``region``: the
    region of interest the gate and the encoder see (None: the whole frame).
    """

    out_dir: Path
    model: str
    labels: LabelSet | TaughtSet
    smoothing: SmoothingConfig
    outputs: tuple[str, ...] = DEFAULT_OUTPUTS
    device: str = "auto"
    precision: str = "auto"
    fps: float | None = None
    batch: int = 16
    gate: GateConfig = field(default_factory=GateConfig)
    embeddings_dtype: str = "float16"
    region: Region | None = None
    flush_seconds: float = 10.0  # how often the embeddings store is flushed (not hashed)

    def __post_init__(self) -> None:
        if self.batch < 1:
            raise UsageError(f"--batch must be at least 1, not {self.batch}")
        if self.fps is not None and self.fps <= 0:
            raise UsageError(f"--fps must be more than 0, not {self.fps}")
        if not self.flush_seconds > 0:
            raise UsageError(f"--flush-seconds must be more than 0, not {self.flush_seconds:g}")
        if not self.outputs or any(k not in OUTPUT_KINDS for k in self.outputs):
            raise UsageError(f"outputs must be some of {', '.join(OUTPUT_KINDS)}")

    def labels_hash(self) -> str:
        """16 hex digits identifying the label set: names, phrasings, templates (a
        taught set: its classifier and examples)."""
        if isinstance(self.labels, TaughtSet):
            return _digest({"taught": self.labels.digest()})
        payload = {
            "labels": [[lb.name, list(lb.phrasings)] for lb in self.labels.labels],
            "templates": list(self.labels.templates),
        }
        return _digest(payload)

    def options_hash(self, identity: ModelIdentity) -> str:
        """16 hex digits over everything that changes a video's outputs: the model's
        weights and the precision and device it really ran at, the label set, sampling,
        batching, smoothing, the region of interest, and which outputs are written (the
        overlay's top-k only when the annotated video is one of them)."""
        smoothing = asdict(self.smoothing)
        if "video" not in self.outputs:
            smoothing.pop("top_k")
        payload = {
            "model": identity.fingerprint,
            "precision": identity.precision,
            "device": identity.device,
            "labels": self.labels_hash(),
            "fps": self.fps,
            "batch": self.batch,
            "gate": asdict(self.gate),
            "smoothing": smoothing,
            "outputs": sorted(self.outputs),
        }
        if "embeddings" in self.outputs:
            payload["embeddings_dtype"] = self.embeddings_dtype
        if self.region is not None:  # (absent when unset: earlier manifests stay valid)
            payload["region"] = self.region.to_json()
        return _digest(payload)


def _digest(payload: object) -> str:
    text = json.dumps(payload, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
