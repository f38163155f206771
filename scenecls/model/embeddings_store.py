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

Files are written whole or not at all (a temporary file renamed into place), so a file
that exists is complete; a damaged or truncated one is reported by name by
:func:`open_embeddings`.
"""

from __future__ import annotations

import json
import os
import struct
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import default_file_mode
from ..errors import InputError
from ..interrupts import track_partial, untrack_partial
from .scoring import mix_rows

FORMAT = "scenecls-embeddings"
VERSION = 1
SUFFIX = ".npz"
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
    are small and read into memory. ``meta`` is the JSON object.
    """

    path: Path
    meta: dict[str, Any]
    embeddings: np.ndarray
    times: np.ndarray
    spans: np.ndarray
    frames: np.ndarray
    gaps: np.ndarray

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
    if not path.is_file():
        raise StoreError(f"{path}: no such embeddings file")
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as e:
        raise StoreError(f"cannot read {path}: {e.strerror or e}") from e
    if head != b"PK\x03\x04":  # not even the start of a ZIP file
        raise StoreError(
            f"{path} is not a scenecls embeddings file: give .npz files written by "
            "scenecls run --embeddings, or annotate folders"
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
            if not isinstance(meta, dict) or meta.get("format") != FORMAT:
                raise StoreError(f"{path} is not a scenecls embeddings file")
            if int(meta.get("version", 0)) > VERSION:
                raise StoreError(
                    f"{path} has embeddings format version {meta.get('version')}; this "
                    f"scenecls reads version {VERSION}: upgrade scenecls"
                )
            if missing:
                raise _damaged(path, f"no {', '.join(missing)}")
            empty2 = np.zeros((0, 2))
            if not arrays:
                return EmbeddingsFile(
                    path, meta, np.zeros((0, 0), np.float16), np.zeros(0), empty2,
                    np.zeros(0, FRAME_DTYPE), empty2,
                )  # fmt: skip
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
