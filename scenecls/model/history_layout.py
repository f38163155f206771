"""Where the kitchen service keeps its history in its data folder (``serve --data DIR``),
shared by the service (which writes and serves it) and ``scenecls search`` /
``relabel`` (which read it, also while the service runs)::

    DATA/history/<stem>/<YYYYmmdd-HHMMSS>[-N]/   one chunk: an embeddings store (v2
                                                 folder) of one camera's hour, times
                                                 in UNIX seconds (UTC), plus
        labels.jsonl                             its closed label segments, one JSON
                                                 object a line (times UNIX s)
        events.jsonl                             its alerts and other events, likewise
    DATA/recordings/<stem>-<YYYYmmdd-HHMMSS>[-N].webm   the annotated recordings

``<stem>`` is the camera's name made file-safe (``serve.settings.camera_file_stem``);
a chunk is named by the UTC time of its first frame (second resolution, so the name is
never after it) and holds the frames up to the next full hour (:data:`CHUNK_SECONDS`);
a restart starts a new chunk (``-2``, ``-3``... when one of that second exists).

Listing reads names only, plus one ``meta.json`` per camera (for the camera's name).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

HISTORY_DIR = "history"
RECORDINGS_DIR = "recordings"
LABELS_FILE = "labels.jsonl"
EVENTS_FILE = "events.jsonl"
META_FILE = "meta.json"
CHUNK_SECONDS = 3600.0
"""A chunk holds the frames from its start up to the next multiple of this (UTC)."""
STAMP = "%Y%m%d-%H%M%S"
RECORDING_SUFFIXES = (".webm", ".mp4")

_CHUNK = re.compile(r"(\d{8}-\d{6})(?:-(\d+))?")
_RECORDING = re.compile(r"(?P<stem>.+)-(?P<stamp>\d{8}-\d{6})(?:-(?P<n>\d+))?(?P<ext>\.webm|\.mp4)")


def stamp_of(unix: float) -> str:
    """``YYYYmmdd-HHMMSS`` (UTC) of ``unix`` seconds, rounded down to the second."""
    return datetime.fromtimestamp(math.floor(unix), timezone.utc).strftime(STAMP)


def unix_of(stamp: str) -> float | None:
    """UNIX seconds of a ``YYYYmmdd-HHMMSS`` (UTC) stamp; None when it is not one."""
    try:
        return datetime.strptime(stamp, STAMP).replace(tzinfo=timezone.utc).timestamp()
    except ValueError:
        return None


def chunk_bound(start: float, chunk_seconds: float = CHUNK_SECONDS) -> float:
    """The end of the chunk that starts at ``start`` (UNIX s): the next multiple of
    ``chunk_seconds`` after it; its frames are all before this."""
    return (math.floor(start / chunk_seconds) + 1) * chunk_seconds


def history_dir(data: Path) -> Path:
    """``DATA/history``."""
    return Path(data) / HISTORY_DIR


def camera_history_dir(data: Path, camera_stem: str) -> Path:
    """``DATA/history/<stem>``: one camera's chunks."""
    return history_dir(data) / camera_stem


def new_chunk_path(data: Path, camera_stem: str, start: float) -> Path:
    """The folder for a new chunk of ``camera_stem`` starting at ``start`` (UNIX s): named
    by its UTC second, with ``-2``, ``-3``... when that name is taken (not created)."""
    base = camera_history_dir(data, camera_stem) / stamp_of(start)
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path


@dataclass(frozen=True)
class HistoryChunk:
    """One chunk of a camera's history: ``camera`` (its name, as recorded in the chunks'
    meta; the stem when that cannot be read), ``stem`` (its folder name), ``start``
    (UNIX s, from the chunk's name: never after its first frame), ``path`` (the store
    folder), ``end`` (UNIX s: a bound its frames are all before: the next chunk's start
    or the hour's end, whichever comes first)."""

    camera: str
    stem: str
    start: float
    path: Path
    end: float

    @property
    def labels(self) -> Path:
        return self.path / LABELS_FILE

    @property
    def events(self) -> Path:
        return self.path / EVENTS_FILE

    def overlaps(self, since: float, until: float) -> bool:
        """Whether the chunk may hold times in ``[since, until]`` (UNIX s)."""
        return self.start <= until and self.end >= since


def _chunk_key(name: str) -> tuple[float, int] | None:
    m = _CHUNK.fullmatch(name)
    if m is None:
        return None
    start = unix_of(m.group(1))
    if start is None:
        return None
    return start, int(m.group(2) or 1)


def _camera_name(folder: Path, stem: str) -> str:
    """The camera's name in the newest readable chunk meta of ``folder`` (else ``stem``)."""
    try:
        meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return stem
    name = meta.get("camera") if isinstance(meta, dict) else None
    return name if isinstance(name, str) and name else stem


def history_chunks(
    data: Path, camera_stem: str | None = None, *, chunk_seconds: float = CHUNK_SECONDS
) -> list[HistoryChunk]:
    """The chunks under ``DATA/history`` (only ``camera_stem``'s when given), sorted by
    (camera, start). Folders whose names are not chunk names are left out. Reads the
    folder names and one ``meta.json`` per camera."""
    root = history_dir(data)
    stems = [camera_stem] if camera_stem is not None else None
    if stems is None:
        try:
            stems = sorted(p.name for p in root.iterdir() if p.is_dir())
        except OSError:
            return []
    found: list[HistoryChunk] = []
    for stem in stems:
        folder = root / stem
        try:
            names = [p.name for p in folder.iterdir() if p.is_dir()]
        except OSError:
            continue
        keyed = sorted((k, n) for n in names if (k := _chunk_key(n)) is not None)
        if not keyed:
            continue
        camera = None
        for _, name in reversed(keyed):
            camera = _camera_name(folder / name, "")
            if camera:
                break
        camera = camera or stem
        for i, ((start, _), name) in enumerate(keyed):
            end = chunk_bound(start, chunk_seconds)
            if i + 1 < len(keyed):
                end = min(end, max(start, keyed[i + 1][0][0] + 1.0))
            found.append(HistoryChunk(camera, stem, start, folder / name, end))
    found.sort(key=lambda c: (c.camera, c.start, c.path.name))
    return found


@dataclass(frozen=True)
class RecordingFile:
    """A closed recording: ``name`` (file name), ``stem`` (the camera's), ``start`` (UNIX
    s, from the name: to the second), ``path``."""

    name: str
    stem: str
    start: float
    path: Path


def parse_recording_name(name: str, stem: str | None = None) -> tuple[str, float] | None:
    """``(camera stem, start UNIX s)`` of a recording's file name
    (``STEM-YYYYmmdd-HHMMSS[-N].webm|.mp4``), or None when it is not one (also when it
    is not of ``stem``, when given)."""
    m = _RECORDING.fullmatch(name)
    if m is None or (stem is not None and m.group("stem") != stem):
        return None
    start = unix_of(m.group("stamp"))
    if start is None:
        return None
    return m.group("stem"), start


def recording_files(folder: Path, stem: str) -> list[RecordingFile]:
    """The recordings of ``stem`` in ``folder`` (closed files only: one being written has
    a hidden temporary name), oldest first."""
    found = []
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return []
    for p in entries:
        parsed = parse_recording_name(p.name, stem)
        if parsed is not None and p.is_file():
            found.append(RecordingFile(p.name, stem, parsed[1], p))
    found.sort(key=lambda r: (r.start, r.name))
    return found
