"""Expanding ``scenecls annotate`` INPUTS (files, folders, glob patterns) into videos.

Folders are searched recursively for files with a video extension; hidden files and
folders, the output folder and other annotated archives (folders holding a scenecls
``manifest.jsonl``) are left out. Files named explicitly are taken whatever their
extension. Each video gets the path its outputs mirror under the output folder: its
path relative to the common root of the inputs (a folder given, the folder of a file
given, the fixed leading part of a pattern).
"""

from __future__ import annotations

import glob
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath

from ..errors import UsageError
from .manifest import is_archive_dir

log = logging.getLogger("scenecls")

VIDEO_EXTENSIONS: frozenset[str] = frozenset(
    {
        ".3gp",
        ".avi",
        ".flv",
        ".gif",
        ".m2ts",
        ".m4v",
        ".mkv",
        ".mov",
        ".mp4",
        ".mpeg",
        ".mpg",
        ".mts",
        ".ogv",
        ".ts",
        ".webm",
        ".wmv",
    }
)
"""File name endings (lower case) taken from folders and patterns."""

_MAGIC = frozenset("*?[")


@dataclass(frozen=True)
class VideoInput:
    """One video to annotate. ``path``: absolute, symbolic links resolved (what the
    manifest records and workers open). ``rel``: POSIX path relative to the inputs'
    common root, where its outputs go under the output folder."""

    path: Path
    rel: str


def is_video_name(name: str) -> bool:
    return PurePath(name).suffix.lower() in VIDEO_EXTENSIONS


def _has_magic(text: str) -> bool:
    return any(c in _MAGIC for c in text)


def _under(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _static_prefix(pattern: str) -> Path:
    """The leading folders of a glob pattern that contain no wildcard."""
    parts = Path(pattern).parts
    fixed: list[str] = []
    for part in parts[:-1]:
        if _has_magic(part):
            break
        fixed.append(part)
    return Path(os.path.abspath(Path(*fixed) if fixed else Path(".")))


def _walk(folder: Path, out_dir: Path) -> list[Path]:
    """Video files under ``folder`` (absolute, not resolved), hidden entries, the output
    folder and other annotated archives left out."""
    found: list[Path] = []

    def complain(error: OSError) -> None:
        log.warning("cannot read folder %s: %s; its videos are left out", error.filename, error)

    for top, dirs, files in os.walk(folder, onerror=complain):
        here = Path(top)
        keep = []
        for d in sorted(dirs):
            sub = here / d
            if d.startswith("."):
                continue
            if _under(sub.resolve(), out_dir):
                continue
            if is_archive_dir(sub):
                log.info("leaving out %s: it holds the outputs of another scenecls annotate", sub)
                continue
            keep.append(d)
        dirs[:] = keep
        found += [here / f for f in sorted(files) if not f.startswith(".") and is_video_name(f)]
    return found


def expand_inputs(specs: Sequence[str], out_dir: Path) -> list[VideoInput]:
    """The videos named by ``specs`` (files, folders, glob patterns; ``**`` matches any
    depth), without duplicates, sorted by their mirrored path.

    Raises :class:`UsageError` when a path does not exist, a pattern matches nothing, or
    no video is found at all.
    """
    out_dir = Path(out_dir).resolve()
    anchors: list[Path] = []
    candidates: list[Path] = []  # absolute, not resolved
    for spec in specs:
        path = Path(spec).expanduser()
        if path.is_dir():
            folder = Path(os.path.abspath(path))
            if _under(folder.resolve(), out_dir):
                raise UsageError(
                    f"input folder {spec} is the output folder or inside it: "
                    "choose another --out, outside the inputs"
                )
            videos = _walk(folder, out_dir)
            if not videos:
                log.warning("no videos in %s (looked for %s)", spec, _extensions())
            anchors.append(folder)
            candidates += videos
        elif path.is_file():
            absolute = Path(os.path.abspath(path))
            anchors.append(absolute.parent)
            candidates.append(absolute)
        elif _has_magic(spec):
            matches = sorted(glob.glob(str(path), recursive=True))
            if not matches:
                raise UsageError(f"pattern {spec} matches nothing: check it (quote it for **)")
            videos = []
            for m in matches:
                mp = Path(os.path.abspath(m))
                if mp.is_dir():
                    videos += _walk(mp, out_dir)
                elif is_video_name(m):
                    videos.append(mp)
            if not videos:
                raise UsageError(f"pattern {spec} matches no video (looked for {_extensions()})")
            anchors.append(_static_prefix(str(path)))
            candidates += videos
        else:
            raise UsageError(f"{spec} does not exist: give video files, folders or glob patterns")
    root = Path(os.path.commonpath([str(a) for a in anchors])) if anchors else Path("/")
    seen: set[Path] = set()
    result: list[VideoInput] = []
    for c in candidates:
        real = c.resolve()
        if real in seen or _under(real, out_dir):
            continue
        seen.add(real)
        result.append(VideoInput(real, c.relative_to(root).as_posix()))
    if not result:
        raise UsageError(
            f"no videos found in {' '.join(specs)} (looked for {_extensions()}, "
            "outside the output folder)"
        )
    return sorted(result, key=lambda v: v.rel)


def _extensions() -> str:
    return " ".join(sorted(VIDEO_EXTENSIONS))
