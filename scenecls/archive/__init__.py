"""Video archives: annotate many files in one resumable command, locally or on Ray.

``scenecls annotate`` expands its inputs (:mod:`.inputs`), reads what is already done
from ``DIR/manifest.jsonl`` (:mod:`.manifest`), and hands the rest to an engine: a local
process pool (:mod:`.local`) or Ray actors (:mod:`.ray_engine`). Each worker loads the
model once (:mod:`.worker`) and annotates one video at a time with the same function
(:mod:`.job`), so both engines write identical outputs. The driver (:mod:`.driver`)
records every finished video in the manifest as it comes back. ``scenecls find`` searches
the segments of an annotated archive (:mod:`.search`).
"""

from .driver import ArchiveSummary, annotate_archive
from .inputs import VIDEO_EXTENSIONS, VideoInput, expand_inputs
from .manifest import Manifest
from .options import OUTPUT_KINDS, ArchiveOptions
from .search import SegmentHit, find_segments

__all__ = [
    "OUTPUT_KINDS",
    "VIDEO_EXTENSIONS",
    "ArchiveOptions",
    "ArchiveSummary",
    "Manifest",
    "SegmentHit",
    "VideoInput",
    "annotate_archive",
    "expand_inputs",
    "find_segments",
]
