"""The embeddings file: every encoded frame's CLIP embedding with the time it stands for.

One ``.npz`` file (a ZIP of ``.npy`` arrays, stored uncompressed), so ``numpy.load``
reads it with nothing else installed, and the embedding matrix can be memory-mapped for
search without reading it into memory. Members:

``meta``        0-d unicode array: a JSON object (:data:`FORMAT`, version, model id,
                fingerprint, precision, source, ...; see :func:`store_meta`)
``embeddings``  (R, D) float16 (or float32) unit rows, one per encoded frame, time order
``times``       (R,) float64: the time (s) of each encoded frame
``spans``       (R, 2) float64: [start, end) seconds each row stands for: the analysed
                frames that reused it or lie nearer to it than to its neighbour
``frames``      (N,) structured, one per analysed frame: ``index`` (int64, frame number
                in the source), ``time`` (float64 s), ``left``/``right`` (int32 rows),
                ``weight`` (float64), ``encoded`` (bool). The frame's embedding is
                ``normalise((1 - weight) * E[left] + weight * E[right])`` (the change
                gate's reuse and interpolation); an encoded frame has
                ``left == right`` = its own row and weight 0.
``gaps``        (G, 2) float64: live input lost from ``[0]`` s, resumed at ``[1]`` s

Version 1 (earlier scenecls) wrote that ``.npz`` file whole at the end of a run.
Version 2, written now, is a *store folder* with the same arrays as growing ``.npy``
files, written as the run goes (:mod:`.store_writer`), so that a crash loses only what
came after the last flush::

    STORE/meta.json       the ``meta`` object; "complete": false until the writer closes
    STORE/embeddings.npy  (R, D) rows        STORE/times.npy   (R,)
    STORE/spans.npy       (R, 2), or R - 1 while written (the last row's span is open)
    STORE/frames.npy      (N,) FRAME_DTYPE   STORE/gaps.npy    (G, 2)
    STORE/summary.npy     (R // 16, D) unit means of each 16 consecutive rows (search)
    STORE/.writer.lock    held (flock) by a live writer

Each ``.npy`` header holds the row count of the last flush, so
``numpy.load(STORE + "/embeddings.npy", mmap_mode="r")`` alone reads every flushed row
(the bytes after it are ignored). :func:`open_embeddings` reads both versions; it cuts a
torn tail (rows written but not flushed, frames pointing past the rows) and says so in
:attr:`EmbeddingsFile.notes`, never failing for it. A damaged file is reported by name.
"""

from __future__ import annotations

import fcntl
import json
import mmap
import os
import struct
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import default_file_mode
from ..errors import InputError
from ..interrupts import track_partial, untrack_partial
from .growing_npy import HEADER_BYTES, fast_header, read_header
from .scoring import mix_rows

FORMAT = "scenecls-embeddings"
VERSION = 1
"""Format version of the ``.npz`` files (read, no longer written)."""
STORE_VERSION = 2
"""Format version of store folders (:mod:`.store_writer`)."""
SUFFIX = ".npz"
META_NAME = "meta.json"
LOCK_NAME = ".writer.lock"
DTYPES = ("float16", "float32")

FRAME_DTYPE = np.dtype(
    [
        ("index", "<i8"),
        ("time", "<f8"),
        ("left", "<i4"),
        ("right", "<i4"),
        ("weight", "<f8"),
        ("encoded", "?"),
    ]
)
"""One analysed frame in the ``frames`` member (see the module docstring)."""

_MEMBERS = ("meta", "embeddings", "times", "spans", "frames", "gaps")
_ALIGN = 64  # the embedding matrix starts on a 64-byte boundary of the file


class StoreError(InputError):
    """An embeddings file is missing, damaged, truncated, or not an embeddings file."""


def store_meta(
    *,
    model: Mapping[str, Any],
    source: str,
    input_path: str | None,
    dtype: str,
    end_time: float,
    settings: Mapping[str, Any],
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``meta`` object: ``model`` holds ``model``, ``model_fingerprint``,
    ``bundle_precision``, ``precision``, ``device``, ``runtime``, ``embed_dim``,
    ``logit_scale`` and ``bundle`` (its folder); ``source`` is the name ``run`` gives
    the source (the path as typed, a URL, a camera index); ``input`` its absolute path
    when it is a file (with ``input_size`` and ``input_mtime_ns`` when known); ``end``
    the end of the last frame (s); ``settings`` the change gate and analysis rate."""
    from ..version import __version__

    meta: dict[str, Any] = {"format": FORMAT, "version": VERSION, **dict(model)}
    meta.update(
        source=source,
        input=input_path,
        dtype=dtype,
        end=float(end_time),
        settings=dict(settings),
        scenecls=__version__,
    )
    if input_path:
        try:
            st = os.stat(input_path)
            meta.update(input_size=st.st_size, input_mtime_ns=st.st_mtime_ns)
        except OSError:
            pass
    meta.update(extra or {})
    return meta


def row_spans(frames: np.ndarray, rows: int, end_time: float, gaps: np.ndarray) -> np.ndarray:
    """``(rows, 2)`` float64 [start, end) seconds each row stands for: every analysed
    frame belongs to the nearer of its two rows (``weight`` under 0.5: ``left``), and
    lasts until the next analysed frame (the last one until ``end_time``; one before a
    gap until the input was lost). Every row belongs at least to its own encoded frame."""
    spans = np.zeros((rows, 2), np.float64)
    if rows == 0:
        return spans
    times = frames["time"]
    ends = np.empty_like(times)
    ends[:-1] = times[1:]
    if len(times):
        ends[-1] = max(end_time, times[-1])
    for lost, resumed in np.asarray(gaps, np.float64).reshape(-1, 2):
        before = np.searchsorted(times, resumed, side="left") - 1
        if 0 <= before < len(times) and ends[before] > lost >= times[before]:
            ends[before] = lost
    owner = np.where(frames["weight"] < 0.5, frames["left"], frames["right"])
    spans[:, 0] = np.inf
    spans[:, 1] = -np.inf
    np.minimum.at(spans[:, 0], owner, times)
    np.maximum.at(spans[:, 1], owner, ends)
    spans[~np.isfinite(spans)] = 0.0  # no frame of its own: only in files not ours
    return spans


def _npy_header(dtype: np.dtype, shape: tuple[int, ...], start: int) -> bytes:
    """An ``.npy`` version 1.0 header for an array whose file bytes begin at ``start``:
    padded so that the data begins on a :data:`_ALIGN` boundary of the file."""
    descr = np.lib.format.dtype_to_descr(dtype)
    text = f"{{'descr': {descr!r}, 'fortran_order': False, 'shape': {shape!r}, }}"
    fixed = 6 + 2 + 2  # magic, version, header length
    length = fixed + len(text) + 1
    pad = (-(start + length)) % _ALIGN
    text = text + " " * pad + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text.encode("latin1")


def _member_data_start(zf: zipfile.ZipFile, name: str) -> int:
    """Where the bytes of a stored member begin that is about to be written: after its
    local header (30 bytes, the name, and the 20-byte ZIP64 extra field)."""
    return zf.fp.tell() + 30 + len(name.encode()) + 20  # type: ignore[union-attr]


def write_embeddings(
    path: Path,
    meta: Mapping[str, Any],
    embeddings: np.ndarray | Iterable[np.ndarray],
    rows: int,
    dim: int,
    dtype: str,
    times: np.ndarray,
    spans: np.ndarray,
    frames: np.ndarray,
    gaps: np.ndarray,
) -> None:
    """Write an embeddings file at ``path`` atomically (a synced temporary file renamed
    into place). ``embeddings``: the ``(rows, dim)`` matrix, or chunks of it in order
    (read from a spill file, so memory stays bounded), already of ``dtype``."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
    track_partial(tmp)
    try:
        with open(tmp, "wb") as raw, zipfile.ZipFile(raw, "w", zipfile.ZIP_STORED) as zf:
            text = json.dumps(dict(meta), ensure_ascii=False, sort_keys=True)
            _write_array(zf, "meta", np.array(text))
            name = "embeddings.npy"
            out_dtype = np.dtype(dtype).newbyteorder("<")
            header = _npy_header(out_dtype, (rows, dim), _member_data_start(zf, name))
            written = 0
            with zf.open(name, "w", force_zip64=True) as f:
                f.write(header)
                chunks = [embeddings] if isinstance(embeddings, np.ndarray) else embeddings
                for chunk in chunks:
                    block = np.ascontiguousarray(chunk, dtype=out_dtype).reshape(-1, dim)
                    f.write(block.tobytes())
                    written += len(block)
            if written != rows:
                raise ValueError(f"{written} embedding rows written, {rows} expected")
            _write_array(zf, "times", np.asarray(times, "<f8"))
            _write_array(zf, "spans", np.asarray(spans, "<f8").reshape(-1, 2))
            _write_array(zf, "frames", np.asarray(frames, FRAME_DTYPE))
            _write_array(zf, "gaps", np.asarray(gaps, "<f8").reshape(-1, 2))
            raw.flush()
            os.fsync(raw.fileno())
        os.chmod(tmp, default_file_mode())
        os.replace(tmp, path)
    finally:
        untrack_partial(tmp)
        tmp.unlink(missing_ok=True)


def _write_array(zf: zipfile.ZipFile, name: str, array: np.ndarray) -> None:
    with zf.open(name + ".npy", "w", force_zip64=True) as f:
        array = array if array.flags.c_contiguous else np.ascontiguousarray(array)
        np.lib.format.write_array(f, array, allow_pickle=False)


class MetaFacts:
    """The model facts of an embeddings file's ``meta`` object."""

    meta: dict[str, Any]

    @property
    def fingerprint(self) -> str:
        return str(self.meta.get("model_fingerprint"))

    @property
    def model_id(self) -> str:
        return str(self.meta.get("model"))


@dataclass
class EmbeddingsFile(MetaFacts):
    """An embeddings file opened for reading (see the module docstring).

    ``embeddings`` is memory-mapped (read-only, never loaded whole); the other arrays
    are small and read into memory. ``meta`` is the JSON object. ``notes``: one line
    each about what was cut after a crash; ``writing``: a live writer is still
    adding to it (what is here is everything up to its last flush); ``summary``:
    ``(S, D)`` unit means of each ``meta["summary_group"]`` consecutive rows (a store
    folder; None for ``.npz`` files), for :func:`~.vector_scan.coarse_scan`.
    """

    path: Path
    meta: dict[str, Any]
    embeddings: np.ndarray
    times: np.ndarray
    spans: np.ndarray
    frames: np.ndarray
    gaps: np.ndarray
    notes: list[str] = field(default_factory=list)
    writing: bool = False
    summary: np.ndarray | None = None

    @property
    def rows(self) -> int:
        return int(self.embeddings.shape[0])

    def frame_embeddings(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """``(n, D)`` float32 unit embeddings of analysed frames ``start:stop``, rebuilt
        as the change gate made them: a copy of a row, or the blend of two."""
        frames = self.frames[start:stop]
        left, right = frames["left"], frames["right"]
        out = np.asarray(self.embeddings[left], np.float32)
        blend = np.flatnonzero(left != right)
        if len(blend):
            out[blend] = mix_rows(
                self.embeddings[left[blend]], self.embeddings[right[blend]], frames["weight"][blend]
            )
        return out

    @property
    def end(self) -> float:
        return float(self.meta.get("end") or 0.0)


def _damaged(path: Path, why: str) -> StoreError:
    return StoreError(
        f"{path}: damaged or truncated embeddings file ({why}): write it again "
        "(scenecls run --embeddings, or annotate with the embeddings output)"
    )


def read_meta(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Only the ``meta`` object of the embeddings file at ``path``."""
    return open_embeddings(path, arrays=False).meta


def open_embeddings(
    path: str | os.PathLike[str], *, arrays: bool = True, frames: bool = True
) -> EmbeddingsFile:
    """Open and check the embeddings file at ``path``. ``arrays=False`` reads the meta
    only (the arrays are empty); ``frames=False`` leaves out the per-frame records (a
    search needs only the rows, their times and spans). Raises :class:`StoreError`
    naming the file when it is missing, not an embeddings file, or damaged."""
    path = Path(path)
    if path.is_dir():
        return _open_folder(path, arrays=arrays, frames=frames)
    if not path.is_file():
        raise StoreError(f"{path}: no such embeddings file or store")
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as e:
        raise StoreError(f"cannot read {path}: {e.strerror or e}") from e
    if head != b"PK\x03\x04":  # not even the start of a ZIP file
        raise StoreError(
            f"{path} is not a scenecls embeddings file: give the folder that scenecls run "
            "--embeddings wrote (or an .npz of an earlier version), an annotate --out folder, "
            "or a serve --data folder"
        )
    try:
        size = path.stat().st_size
        with zipfile.ZipFile(path) as zf:
            infos = {i.filename: i for i in zf.infolist()}
            missing = [m for m in _MEMBERS if m + ".npy" not in infos]
            if "meta.npy" not in infos:
                raise StoreError(
                    f"{path} is not a scenecls embeddings file (no meta): give a file "
                    "written by scenecls run --embeddings or annotate"
                )
            with zf.open("meta.npy") as f:
                meta = json.loads(str(np.lib.format.read_array(f, allow_pickle=False)))
            _check_format(path, meta, VERSION, "file")
            if missing:
                raise _damaged(path, f"no {', '.join(missing)}")
            if not arrays:
                return _meta_only(path, meta)
            small = {"frames": np.zeros(0, FRAME_DTYPE)}
            for name in (
                ("times", "spans", "frames", "gaps") if frames else ("times", "spans", "gaps")
            ):
                with zf.open(name + ".npy") as f:
                    small[name] = np.lib.format.read_array(f, allow_pickle=False)
            embeddings = _map_member(path, zf, infos["embeddings.npy"], size)
    except StoreError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError, KeyError) as e:
        raise _damaged(path, str(e) or type(e).__name__) from e
    except OSError as e:
        raise StoreError(f"cannot read {path}: {e.strerror or e}") from e
    _check(path, meta, embeddings, small)
    return EmbeddingsFile(path, meta, embeddings, **small)


def _map_member(path: Path, zf: zipfile.ZipFile, info: zipfile.ZipInfo, size: int) -> np.ndarray:
    """Memory-map a stored (uncompressed) ``.npy`` member of the ZIP file at ``path``."""
    if info.compress_type != zipfile.ZIP_STORED:
        raise ValueError("the embeddings member is compressed; it must be stored")
    fp = zf.fp
    assert fp is not None
    fp.seek(info.header_offset)
    local = fp.read(30)
    if len(local) < 30 or local[:4] != b"PK\x03\x04":
        raise ValueError("bad local header of the embeddings member")
    name_len, extra_len = struct.unpack("<HH", local[26:30])
    start = info.header_offset + 30 + name_len + extra_len
    fp.seek(start)
    version = np.lib.format.read_magic(fp)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(fp)
    else:
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(fp)
    offset = fp.tell()
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if fortran or len(shape) != 2 or dtype.kind != "f":
        raise ValueError(f"embeddings of shape {shape} and type {dtype}")
    if offset + nbytes > size or offset + nbytes > start + info.file_size:
        raise ValueError("the file ends inside the embeddings")
    if nbytes == 0:
        return np.zeros(shape, dtype)
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape)


def _check(path: Path, meta: dict[str, Any], emb: np.ndarray, small: dict[str, np.ndarray]) -> None:
    rows, dim = emb.shape
    frames = small["frames"]
    problems = []
    if int(meta.get("embed_dim", dim)) != dim:
        problems.append(f"rows of {dim} values, the model has {meta.get('embed_dim')}")
    if small["times"].shape != (rows,) or small["spans"].shape != (rows, 2):
        problems.append("times or spans do not match the embeddings")
    if frames.dtype != FRAME_DTYPE:
        problems.append("frames have the wrong fields")
    elif len(frames) and (
        int(min(frames["left"].min(), frames["right"].min())) < 0
        or int(max(frames["left"].max(), frames["right"].max())) >= rows
    ):
        problems.append("frames point at rows that are not there")
    if small["gaps"].ndim != 2 or small["gaps"].shape[1:] != (2,):
        problems.append("gaps are not pairs")
    if problems:
        raise _damaged(path, "; ".join(problems))


def writer_alive(folder: Path) -> bool:
    """Whether a live writer holds the store folder at ``folder`` (its lock is taken)."""
    try:
        fd = os.open(Path(folder) / LOCK_NAME, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)  # also drops the lock taken just now
    return False


def _read_folder_meta(path: Path) -> dict[str, Any]:
    file = path / META_NAME
    if not file.is_file():
        raise StoreError(
            f"{path} is not a scenecls embeddings store (no {META_NAME}): give stores "
            "written by scenecls run --embeddings, annotate, or a serve --data folder"
        )
    try:
        meta = json.loads(file.read_text(encoding="utf-8"))
    except OSError as e:
        raise StoreError(f"cannot read {file}: {e.strerror or e}") from e
    except ValueError as e:
        raise _damaged(path, f"{META_NAME}: {e}") from e
    _check_format(path, meta, STORE_VERSION, "store")
    return meta


def _meta_only(path: Path, meta: dict[str, Any]) -> EmbeddingsFile:
    """An opened store of ``meta`` alone: its arrays empty."""
    empty2 = np.zeros((0, 2))
    return EmbeddingsFile(
        path, meta, np.zeros((0, 0), np.float16), np.zeros(0), empty2,
        np.zeros(0, FRAME_DTYPE), empty2,
    )  # fmt: skip


def _check_format(path: Path, meta: object, version: int, kind: str) -> None:
    """Refuse a ``meta`` that is not ours, or of a format version after ``version``."""
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise StoreError(f"{path} is not a scenecls embeddings {kind}")
    if int(meta.get("version", 0)) > version:
        raise StoreError(
            f"{path} has embeddings format version {meta.get('version')}; this scenecls "
            f"reads up to version {version}: upgrade scenecls"
        )


def _grown(path: Path, *, mapped: bool) -> tuple[np.ndarray, int]:
    """The flushed rows of the growing ``.npy`` file at ``path`` (memory-mapped when
    ``mapped``) and how many bytes follow them (written but never flushed)."""
    with open(path, "rb", buffering=0) as f:
        size = os.fstat(f.fileno()).st_size
        dtype, shape, offset = fast_header(f.read(HEADER_BYTES))
        if offset < 0:  # not a header of ours: numpy's own reading
            dtype, shape, offset = read_header(f)
        row_bytes = dtype.itemsize * int(np.prod(shape[1:], dtype=np.int64))
        count = shape[0]
        have = (size - offset) // row_bytes if row_bytes else 0
        if have < count:
            raise ValueError(f"{path.name} ends inside its flushed rows")
        extra = size - offset - count * row_bytes
        if count == 0:
            return np.zeros(shape, dtype), int(extra)
        if mapped:  # the pages are read when touched
            view = mmap.mmap(f.fileno(), offset + count * row_bytes, access=mmap.ACCESS_READ)
            array = np.frombuffer(
                view, dtype=dtype, count=count * (row_bytes // dtype.itemsize), offset=offset
            )
        else:
            f.seek(offset)
            array = np.frombuffer(f.read(count * row_bytes), dtype=dtype)
    return array.reshape(shape), int(extra)


def _open_folder(path: Path, *, arrays: bool, frames: bool) -> EmbeddingsFile:
    """Open the store folder at ``path`` (version 2), cutting a torn tail."""
    meta = _read_folder_meta(path)
    if not arrays:
        return _meta_only(path, meta)
    missing = [m for m in _MEMBERS[1:] if not (path / f"{m}.npy").is_file()]
    if missing:
        raise _damaged(path, f"no {', '.join(m + '.npy' for m in missing)}")
    writing = not meta.get("complete") and writer_alive(path)
    unflushed = 0
    try:
        emb, extra = _grown(path / "embeddings.npy", mapped=True)
        unflushed += extra // max(1, emb.dtype.itemsize * max(1, emb.shape[1]))
        times, _ = _grown(path / "times.npy", mapped=True)  # a search reads a few of them
        spans, _ = _grown(path / "spans.npy", mapped=True)
        gaps, _ = _grown(path / "gaps.npy", mapped=False)
        summary = None
        if (path / "summary.npy").is_file():
            summary, _ = _grown(path / "summary.npy", mapped=True)
        if frames:
            records, _ = _grown(path / "frames.npy", mapped=False)
        else:
            records = np.zeros(0, FRAME_DTYPE)
    except (ValueError, OSError, EOFError) as e:
        raise _damaged(path, str(e) or type(e).__name__) from e
    if emb.ndim != 2 or emb.dtype.kind != "f":
        raise _damaged(path, f"embeddings of shape {emb.shape} and type {emb.dtype}")
    notes: list[str] = []
    rows = min(len(emb), len(times))
    cut = len(emb) - rows
    emb, times = emb[:rows], np.asarray(times[:rows], np.float64)
    if len(records) and records.dtype == FRAME_DTYPE:
        beyond = np.flatnonzero(np.maximum(records["left"], records["right"]) >= rows)
        if len(beyond):
            records = records[: beyond[0]]
    last_time = float(records["time"][-1]) if len(records) else (float(times[-1]) if rows else 0.0)
    spans = np.asarray(spans, np.float64).reshape(-1, 2)[:rows]
    if len(spans) < rows:  # the open span(s): from the row's time to the next row or the end
        fill = np.empty((rows - len(spans), 2))
        fill[:, 0] = times[len(spans) :]
        fill[:-1, 1] = times[len(spans) + 1 :]
        fill[-1, 1] = max(float(times[-1]), last_time)
        spans = np.concatenate([spans, fill])
    if not meta.get("complete"):
        end = max(float(spans[-1, 1]) if rows else 0.0, last_time)
        meta = {**meta, "end": end, "rows": rows}
        if not writing:
            lost = unflushed + cut
            when = f"{end:.1f} s"
            if meta.get("clock") == "unix":  # a service's history
                when = datetime.fromtimestamp(end, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
            notes.append(
                f"{path}: its writer ended without closing it (a crash or kill): read up to "
                f"the last flush ({when})"
                + (f"; {lost} row{'s' * (lost != 1)} after it cut" if lost else "")
            )
    group = int(meta.get("summary_group") or 0)
    if (
        summary is not None
        and group > 0
        and summary.ndim == 2
        and summary.shape[1:] == emb.shape[1:]
    ):
        summary = summary[: rows // group]
    else:
        summary = None
    store = EmbeddingsFile(
        path, meta, emb, times, spans, records, np.asarray(gaps), notes, writing, summary
    )
    _check(path, meta, emb, {"times": times, "spans": spans, "frames": records, "gaps": gaps})
    return store
