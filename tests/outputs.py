"""Validators for the run outputs, shared by the pipeline and signal tests."""

from __future__ import annotations

import csv
import json
import re
from itertools import pairwise
from pathlib import Path

_SRT_TIME = r"(\d\d):(\d\d):(\d\d),(\d\d\d)"
_VTT_TIME = r"(\d\d):(\d\d):(\d\d)\.(\d\d\d)"


def _secs(m: tuple[str, ...]) -> float:
    h, mi, s, ms = (int(x) for x in m)
    return h * 3600 + mi * 60 + s + ms / 1000


def read_jsonl(path: Path) -> list[dict]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]  # every line must parse


def check_segments(
    segments: list[dict], first_time: float | None = None, end_time: float | None = None
) -> None:
    """Sorted, contiguous, positive; optionally anchored at the first and last frame."""
    assert segments, "no segments"
    for s in segments:
        assert set(s) == {"label", "start", "end", "confidence"}
        assert s["end"] >= s["start"]
        assert 0.0 <= s["confidence"] <= 1.0
    for a, b in pairwise(segments):
        assert abs(a["end"] - b["start"]) < 1e-6, (a, b)
        assert a["label"] != b["label"]
    if first_time is not None:
        assert abs(segments[0]["start"] - first_time) < 1e-6
    if end_time is not None:
        assert abs(segments[-1]["end"] - end_time) < 1e-3


def read_segments(path: Path) -> list[dict]:
    if path.suffix == ".csv":
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        assert rows and list(rows[0]) == ["label", "start", "end", "confidence"]
        return [
            {
                "label": r["label"],
                "start": float(r["start"]),
                "end": float(r["end"]),
                "confidence": float(r["confidence"]),
            }
            for r in rows
        ]
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert set(doc) >= {"source", "labels", "segments"}
    return doc["segments"]


def parse_captions(path: Path) -> list[tuple[float, float, str]]:
    """Parse SRT or VTT strictly enough to catch malformed output."""
    text = path.read_text(encoding="utf-8")
    vtt = path.suffix == ".vtt"
    if vtt:
        assert text.startswith("WEBVTT\n")
        text = text[len("WEBVTT\n") :]
    pattern = _VTT_TIME if vtt else _SRT_TIME
    cues = []
    blocks = [b for b in text.strip("\n").split("\n\n") if b.strip()]
    for n, block in enumerate(blocks, 1):
        lines = block.split("\n")
        assert lines[0] == str(n), block
        m = re.fullmatch(f"{pattern} --> {pattern}", lines[1])
        assert m, lines[1]
        start, end = _secs(m.groups()[:4]), _secs(m.groups()[4:])
        assert end > start
        assert lines[2]
        cues.append((start, end, lines[2]))
    for a, b in pairwise(cues):
        assert a[1] <= b[0] + 1e-3
    return cues


def one_line_error(err: str) -> str:
    """The single 'scenecls: error:' line of a failed command; no traceback."""
    lines = [ln for ln in err.splitlines() if ln.startswith("scenecls: error:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]
