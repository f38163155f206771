"""File outputs: per-frame JSON Lines, segment files (JSON, CSV) and captions (SRT, VTT)."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

from ...errors import OutputError, UsageError
from ...types import Frame, Prediction, Segment
from .base import DiskWatch, RunInfo, Sink, check_writable, write_text_atomic


class JsonlSink(Sink):
    """One line per analysed frame::

        {"frame": INDEX, "time": SECONDS, "label": L, "confidence": C, "raw_label": L0,
         "encoded": true, "scores": {LABEL: PROB, ...}}

    ``label``/``confidence`` are smoothed, ``scores`` the frame's own probabilities.
    ``encoded``: whether the image encoder ran on this frame (false: the change gate
    found it unchanged and it took the embedding of encoded frames).
    Each line is written whole and flushed, so the file is valid JSONL at any moment.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = check_writable(Path(path), "--jsonl")
        self._file: BinaryIO | None = None
        self._labels: tuple[str, ...] = ()
        self._keys: list[str] = []  # '"label": ' per label, JSON-encoded once
        self._good = 0  # bytes of whole lines written
        self._disk = DiskWatch(self.path)

    def start(self, info: RunInfo) -> None:
        self._labels = info.labels
        self._keys = []
        self._file = open(self.path, "wb")  # noqa: SIM115 - closed in finish
        self._good = 0

    def on_frame(
        self,
        frame: Frame,
        prediction: Prediction | None,
        analysed: bool,
        annotated_bgr: object | None = None,
    ) -> None:
        if not analysed or prediction is None or self._file is None:
            return
        probs = prediction.raw.scores.probabilities.tolist()
        keys = self._keys or _keys(self._labels)
        self._keys = keys
        line = jsonl_line(
            frame.index,
            frame.timestamp,
            prediction.label,
            prediction.confidence,
            prediction.raw_label,
            prediction.encoded,
            keys,
            probs,
        )
        self._write(line.encode("utf-8"))

    def write_many(
        self,
        indices: Sequence[int],
        times: Sequence[float],
        labels: Sequence[str],
        confidences: Sequence[float],
        raw_labels: Sequence[str],
        encoded: Sequence[bool],
        probabilities: Sequence[Sequence[float]],
    ) -> None:
        """Many analysed frames at once (what ``scenecls relabel`` writes): the same
        lines :meth:`on_frame` would write for them, one write for all."""
        if self._file is None:
            return
        keys = self._keys or _keys(self._labels)
        self._keys = keys
        text = "".join(
            jsonl_line(*row, keys, probs)
            for row, probs in zip(
                zip(indices, times, labels, confidences, raw_labels, encoded, strict=True),
                probabilities,
                strict=True,
            )
        )
        self._write(text.encode("utf-8"))

    def _write(self, data: bytes) -> None:
        self._disk.check()
        try:
            self._file.write(data)  # type: ignore[union-attr]
            self._file.flush()  # type: ignore[union-attr]
        except OSError as e:
            self._abandon()
            raise OutputError(f"writing {self.path} failed: {e.strerror or e}") from e
        self._good += len(data)

    def _abandon(self) -> None:
        """After a failed write (disk full): close, and cut the file back to its last
        whole line, so it stays valid JSON Lines."""
        f, self._file = self._file, None
        with contextlib.suppress(OSError):
            f.close()  # type: ignore[union-attr]  # flushing the rest fails again: fine
        with contextlib.suppress(OSError):
            os.truncate(self.path, self._good)

    def finish(self, segments: Sequence[Segment]) -> None:
        if self._file is not None:
            try:
                self._file.close()
            except OSError as e:
                raise OutputError(f"closing {self.path} failed: {e}") from e
            self._file = None


def _json(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _keys(labels: Sequence[str]) -> list[str]:
    return [f"{_json(label)}: " for label in labels]


def _number(value: float, digits: int = 6) -> str:
    """``value`` rounded to ``digits`` decimals, as ``json.dumps`` writes it."""
    x = round(value, digits)
    return repr(x) if math.isfinite(x) else json.dumps(x)


def jsonl_line(
    index: int,
    time: float,
    label: str,
    confidence: float,
    raw_label: str,
    encoded: bool,
    keys: Sequence[str],
    probabilities: Sequence[float],
) -> str:
    """One line of :class:`JsonlSink`'s file, exactly as ``json.dumps`` writes the
    record (``keys``: each label JSON-encoded and followed by ``": "``)."""
    scores = ", ".join(k + _number(p) for k, p in zip(keys, probabilities, strict=True))
    return (
        f'{{"frame": {int(index)}, "time": {_number(time)}, "label": {_json(label)}, '
        f'"confidence": {_number(confidence)}, "raw_label": {_json(raw_label)}, '
        f'"encoded": {"true" if encoded else "false"}, "scores": {{{scores}}}}}\n'
    )


class SegmentsSink(Sink):
    """All segments, written once at the end (atomically): ``.json`` as
    ``{"source", "labels", "segments": [{"label", "start", "end", "confidence"}]}``,
    ``.csv`` with columns ``label,start,end,confidence``."""

    def __init__(self, path: str | Path) -> None:
        self.path = check_writable(Path(path), "--segments")
        if self.path.suffix.lower() not in (".json", ".csv"):
            raise UsageError(f"--segments {path}: use a .json or .csv file name")
        self._info: RunInfo | None = None

    def start(self, info: RunInfo) -> None:
        self._info = info

    def finish(self, segments: Sequence[Segment]) -> None:
        if self.path.suffix.lower() == ".csv":
            buf = io.StringIO()
            w = csv.writer(buf, lineterminator="\n")
            w.writerow(["label", "start", "end", "confidence"])
            for s in segments:
                d = s.to_json()
                w.writerow([d["label"], d["start"], d["end"], d["confidence"]])
            text = buf.getvalue()
        else:
            info = self._info
            doc = {
                "source": info.source if info else None,
                "labels": list(info.labels) if info else [],
                "segments": [s.to_json() for s in segments],
            }
            text = json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
        try:
            write_text_atomic(self.path, text)
        except OSError as e:
            raise OutputError(f"writing {self.path} failed: {e}") from e


def _timecode(seconds: float, sep: str) -> str:
    ms = max(0, round(seconds * 1000))
    h, rem = divmod(ms, 3_600_000)
    m, rem = divmod(rem, 60_000)
    s, ms = divmod(rem, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def captions_text(segments: Sequence[Segment], fmt: str) -> str:
    """SRT or WebVTT text with one caption per segment ("label (87%)")."""
    blocks = ["WEBVTT\n"] if fmt == "vtt" else []
    sep = "." if fmt == "vtt" else ","
    n = 0
    for s in segments:
        if _timecode(s.end, sep) == _timecode(s.start, sep):
            continue  # zero-length captions are invalid in both formats
        n += 1
        text = f"{s.label} ({s.confidence:.0%})"
        timing = f"{_timecode(s.start, sep)} --> {_timecode(s.end, sep)}"
        blocks.append(f"{n}\n{timing}\n{text}\n")
    return "\n".join(blocks)


class CaptionSink(Sink):
    """Captions, one per segment, as SubRip (``.srt``) or WebVTT (``.vtt``)."""

    def __init__(self, path: str | Path, fmt: str) -> None:
        self.fmt = fmt
        self.path = check_writable(Path(path), f"--{fmt}")

    def finish(self, segments: Sequence[Segment]) -> None:
        try:
            write_text_atomic(self.path, captions_text(segments, self.fmt))
        except OSError as e:
            raise OutputError(f"writing {self.path} failed: {e}") from e
