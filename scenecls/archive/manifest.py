"""``DIR/manifest.jsonl``: one JSON line per finished video, the archive's record.

A line is appended (flushed and fsynced) only once a video's outputs are all in place,
so the manifest never lists unfinished work. Reading is tolerant: a last line torn by a
crash is ignored (and cut off before anything is appended), and where an input has
several lines the newest wins. Opening for a run rewrites the file atomically with one
line per input when it holds superseded or torn lines.

A line (keys in this order)::

    {"input": "/abs/path/clip.mp4", "file": "cams/clip.mp4", "size": 1234567,
     "mtime": 1700000000.123, "mtime_ns": 1700000000123456789, "status": "done",
     "error": null, "model": "openai/clip-vit-base-patch32", "model_fingerprint": "...",
     "precision": "bf16", "device": "cpu", "labels_hash": "...", "options_hash": "...",
     "outputs": {"jsonl": "cams/clip.mp4.jsonl", ...}, "frames": 377, "analysed": 377,
     "encoded": 52, "duration": 30.16, "seconds": 9.8, "finished": "2026-11-23T10:00:00Z",
     "worker": "host:1234", "warnings": []}

``status`` is ``done`` or ``failed`` (``error`` says why); ``outputs`` are relative to
DIR; ``encoded``: analysed frames the image encoder ran on (the change gate gave the
others embeddings of encoded frames); ``duration`` is seconds of video, ``seconds`` the
time its annotation took.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from pathlib import Path
from typing import Any, BinaryIO

from ..atomic import write_bytes_atomic
from ..errors import OutputError

log = logging.getLogger("scenecls")

MANIFEST_NAME = "manifest.jsonl"
REQUIRED_KEYS = ("input", "status")


def is_archive_dir(folder: Path) -> bool:
    """Whether ``folder`` holds the manifest of a ``scenecls annotate`` output folder."""
    path = Path(folder) / MANIFEST_NAME
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError:
        return False
    return b'"options_hash"' in head or (head == b"" and path.is_file())


def _parse(lines: list[bytes], path: Path) -> tuple[list[dict[str, Any]], int]:
    """The entries of ``lines`` and how many lines were unusable (warned about, except
    an unterminated last line: a write cut short by a crash)."""
    entries: list[dict[str, Any]] = []
    bad = 0
    for number, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            entry = json.loads(raw)
        except ValueError:
            entry = None
        if not isinstance(entry, dict) or any(k not in entry for k in REQUIRED_KEYS):
            bad += 1
            if number < len(lines) or raw.endswith(b"\n"):
                log.warning("%s: line %d is not a manifest entry; it is ignored", path, number)
            continue
        entries.append(entry)
    return entries, bad


def read_manifest(path: Path) -> dict[str, dict[str, Any]]:
    """The newest entry per input path of the manifest at ``path`` ({} when it does not
    exist). Never modifies the file."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as e:
        raise OutputError(f"cannot read {path}: {e.strerror or e}") from e
    entries, _ = _parse(data.splitlines(keepends=True), Path(path))
    return {str(e["input"]): e for e in entries}


class Manifest:
    """The manifest of output folder ``out_dir``, open for appending during a run.

    ``entries``: the newest entry per input (updated by :meth:`append`).
    """

    def __init__(self, out_dir: Path) -> None:
        self.path = Path(out_dir) / MANIFEST_NAME
        self.entries: dict[str, dict[str, Any]] = {}
        self._file: BinaryIO | None = None
        self._lines = 0  # lines in the file: more than entries when some are superseded

    def open(self) -> Manifest:
        """Read the manifest, rewrite it with one line per input if needed, and open it
        for appending."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            data = b""
        except OSError as e:
            raise OutputError(f"cannot read {self.path}: {e.strerror or e}") from e
        lines = data.splitlines(keepends=True)
        entries, bad = _parse(lines, self.path)
        newest: dict[str, dict[str, Any]] = {}
        for e in entries:  # each input where its newest line was: order of finishing
            newest.pop(str(e["input"]), None)
            newest[str(e["input"])] = e
        self.entries = newest
        self._lines = len(lines)
        if bad or len(newest) != len(entries) or (data and not data.endswith(b"\n")):
            self._rewrite()
        try:
            self._file = open(self.path, "ab")  # noqa: SIM115 - closed in close()
        except OSError as e:
            raise OutputError(f"cannot write {self.path}: {e.strerror or e}") from e
        return self

    def append(self, entry: dict[str, Any]) -> None:
        """Record ``entry`` durably: one line, flushed and fsynced. A second entry for
        an input supersedes the first (in :attr:`entries` at once, in the file when it
        is closed)."""
        if self._file is None:
            raise OutputError(f"{self.path} is not open")
        line = _line(entry)
        try:
            self._file.write(line)
            self._file.flush()
            os.fsync(self._file.fileno())
        except OSError as e:
            raise OutputError(
                f"writing {self.path} failed ({e.strerror or e}): free some space and run "
                "again; finished videos are kept"
            ) from e
        self.entries.pop(str(entry["input"]), None)  # newest last: the order of finishing
        self.entries[str(entry["input"])] = entry
        self._lines += 1

    def _rewrite(self) -> None:
        """One line per input, newest entries, atomically."""
        write_bytes_atomic(self.path, b"".join(_line(e) for e in self.entries.values()))
        log.debug(
            "%s rewritten: %d entries from %d lines", self.path, len(self.entries), self._lines
        )
        self._lines = len(self.entries)

    def close(self) -> None:
        """Close the file, leaving one line per input (videos retried this run replaced
        their earlier line)."""
        if self._file is None:
            return
        with contextlib.suppress(OSError):
            self._file.close()
        self._file = None
        if self._lines > len(self.entries):
            try:
                self._rewrite()
            except OSError as e:  # the appended lines are valid: the next run compacts
                log.warning("could not compact %s: %s", self.path, e)

    def __enter__(self) -> Manifest:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()


def _line(entry: dict[str, Any]) -> bytes:
    return (json.dumps(entry, ensure_ascii=False) + "\n").encode("utf-8")
