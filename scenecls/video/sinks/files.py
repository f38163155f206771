"""File outputs: per-frame JSON Lines, segment files (JSON, CSV) and captions (SRT, VTT)."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np

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
        keys = self._keys or _keys(self._labels)
        self._keys = keys
        time, confidence, *probs = numbers(
            [frame.timestamp, prediction.confidence, *prediction.raw.scores.probabilities.tolist()]
        )
        line = jsonl_line(
            frame.index,
            time,
            _json(prediction.label),
            confidence,
            _json(prediction.raw_label),
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
        encoded_names = {name: _json(name) for name in {*labels, *raw_labels}}
        k = len(keys)
        probs = numbers([p for row in probabilities for p in row])
        text = "".join(
            [
                jsonl_line(
                    i, t, encoded_names[lb], c, encoded_names[raw], e, keys,
                    probs[n * k : n * k + k],
                )
                for n, (i, t, lb, c, raw, e) in enumerate(
                    zip(
                        indices, numbers(times), labels, numbers(confidences), raw_labels,
                        encoded, strict=True,
                    )
                )
            ]
        )  # fmt: skip
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


def numbers(values: Sequence[float]) -> list[str]:
    """Each value rounded to 6 decimals and written as ``json.dumps`` writes it
    (``repr`` of ``round(value, 6)``), for many values at once: ``%.6f`` rounds the same
    way as ``round``, and without its trailing zeros it is the shortest form ``repr``
    gives, except under 1e-4 (``1e-05``) and for NaN and infinities, done one by one."""
    count = len(values)
    if not count:
        return []
    text = ("%.6f\n" * count) % tuple(values)
    text = _DOT_END.sub(".0", _ZEROS_END.sub("", text))
    out = text.split("\n", count - 1)
    out[-1] = out[-1].rstrip("\n")
    array = np.asarray(values, np.float64)
    odd = np.flatnonzero(~np.isfinite(array) | ((array != 0) & (np.abs(array) < 1e-4)))
    for i in odd.tolist():
        out[i] = json.dumps(round(float(array[i]), 6))
    return out


_ZEROS_END = re.compile(r"0+$", re.M)
_DOT_END = re.compile(r"\.$", re.M)


def jsonl_line(
    index: int,
    time: str,
    label_json: str,
    confidence: str,
    raw_label_json: str,
    encoded: bool,
    keys: Sequence[str],
    probabilities: Sequence[str],
) -> str:
    """One line of :class:`JsonlSink`'s file, exactly as ``json.dumps`` writes the
    record. ``time``, ``confidence``, ``probabilities``: formatted by :func:`numbers`;
    ``label_json``, ``raw_label_json``: the labels JSON-encoded; ``keys``: each label of
    the set JSON-encoded and followed by ``": "``."""
    scores = ", ".join([k + p for k, p in zip(keys, probabilities, strict=True)])
    return (
        f'{{"frame": {int(index)}, "time": {time}, "label": {label_json}, '
        f'"confidence": {confidence}, "raw_label": {raw_label_json}, '
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
