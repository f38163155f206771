"""Searching an annotated archive: the segments with a label, across every video."""

from __future__ import annotations

import csv
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..model.labels import UNKNOWN
from .manifest import MANIFEST_NAME, read_manifest

log = logging.getLogger("scenecls")


@dataclass(frozen=True)
class SegmentHit:
    """One segment of one video: ``file`` (the video's path in the archive), ``input``
    (its absolute path), ``start``/``end`` in seconds of that video, ``confidence`` (mean
    smoothed probability)."""

    file: str
    input: str
    label: str
    start: float
    end: float
    confidence: float

    @property
    def duration(self) -> float:
        return self.end - self.start

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "input": self.input,
            "label": self.label,
            "start": round(self.start, 3),
            "end": round(self.end, 3),
            "duration": round(self.duration, 3),
            "confidence": round(self.confidence, 4),
        }


def clock(seconds: float) -> str:
    """``H:MM:SS.ss``."""
    cs = max(0, round(seconds * 100))
    h, rest = divmod(cs, 360_000)
    m, rest = divmod(rest, 6_000)
    return f"{h}:{m:02d}:{rest / 100:05.2f}"


def _read_segments(path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """The segments of a ``.segments.json`` or ``.segments.csv`` file, and the label set
    it names (the JSON form lists it; for CSV, the labels that occur)."""
    if path.suffix == ".csv":
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        segments = [
            {
                "label": r["label"],
                "start": float(r["start"]),
                "end": float(r["end"]),
                "confidence": float(r["confidence"]),
            }
            for r in rows
        ]
        return segments, sorted({s["label"] for s in segments})
    doc = json.loads(path.read_text(encoding="utf-8"))
    return list(doc["segments"]), [str(x) for x in doc.get("labels", [])]


def find_segments(out_dir: Path, label: str, min_duration: float = 0.0) -> list[SegmentHit]:
    """Every segment labelled ``label`` (case-insensitive) lasting at least
    ``min_duration`` seconds, in the videos the manifest of ``out_dir`` lists as done,
    sorted by file and start time.

    Raises :class:`UsageError` when ``out_dir`` is no annotated archive, has no segment
    files, or no video in it was annotated with that label.
    """
    out_dir = Path(out_dir)
    if min_duration < 0:
        raise UsageError(f"--min-duration must be 0 seconds or more, not {min_duration}")
    if not (out_dir / MANIFEST_NAME).is_file():
        raise UsageError(
            f"{out_dir} has no {MANIFEST_NAME}: give the --out folder of a scenecls annotate run"
        )
    wanted = label.strip().casefold()
    hits: list[SegmentHit] = []
    known: set[str] = {UNKNOWN}
    searched = 0
    for entry in read_manifest(out_dir / MANIFEST_NAME).values():
        outputs = entry.get("outputs") or {}
        rel = outputs.get("segments") or outputs.get("csv")
        if entry.get("status") != "done" or not rel:
            continue
        try:
            segments, labels = _read_segments(out_dir / rel)
        except (OSError, ValueError, KeyError, TypeError) as e:
            log.warning("cannot read %s (%s): its video is left out", out_dir / rel, e)
            continue
        searched += 1
        known.update(labels)
        for s in segments:
            name = str(s["label"])
            known.add(name)
            start, end = float(s["start"]), float(s["end"])
            if name.casefold() == wanted and end - start >= min_duration:
                hits.append(
                    SegmentHit(
                        str(entry.get("file")),
                        str(entry["input"]),
                        name,
                        start,
                        end,
                        float(s["confidence"]),
                    )
                )
    if not searched:
        raise UsageError(
            f"{out_dir} lists no annotated video with segments: annotate with --outputs "
            "including segments (or csv)"
        )
    if wanted not in {k.casefold() for k in known}:
        shown = ", ".join(sorted(known - {UNKNOWN})[:30])
        raise UsageError(
            f"no video in {out_dir} was annotated with label {label!r}: labels there: {shown}"
        )
    return sorted(hits, key=lambda h: (h.file, h.start))
