"""``.npy`` files that grow: rows are appended, and the header's shape is rewritten in
place once they are on disk, so that a reader (``numpy.load``, memory-mapped or not)
sees every row up to the last :meth:`GrowingNpy.commit` and never a half-written one.

The header has a fixed size (:data:`HEADER_BYTES`, format version 1.0, the shape padded
with spaces), so rewriting it never moves the data. Bytes after the committed rows (a
write the process did not commit before it was killed) are ignored by ``numpy.load``
and cut by :func:`read_header`'s callers.
"""

from __future__ import annotations

import ast
import os
import re
import struct
from pathlib import Path
from typing import BinaryIO

import numpy as np

HEADER_BYTES = 256
"""Size of every growing file's header: the data starts at this offset (64-aligned)."""

_MAGIC = b"\x93NUMPY\x01\x00"


def header(dtype: np.dtype, shape: tuple[int, ...]) -> bytes:
    """The :data:`HEADER_BYTES`-byte ``.npy`` 1.0 header of an array of ``dtype`` and
    ``shape`` (C order)."""
    descr = np.lib.format.dtype_to_descr(np.dtype(dtype))
    text = f"{{'descr': {descr!r}, 'fortran_order': False, 'shape': {tuple(shape)!r}, }}"
    room = HEADER_BYTES - len(_MAGIC) - 2 - 1
    if len(text) > room:
        raise ValueError(f"an .npy header of {len(text)} characters does not fit")
    text = text.ljust(room) + "\n"
    return _MAGIC + struct.pack("<H", len(text)) + text.encode("latin1")


def read_header(f: BinaryIO) -> tuple[np.dtype, tuple[int, ...], int]:
    """``(dtype, shape, data offset)`` of the ``.npy`` file open at ``f`` (any header
    size). Raises ``ValueError`` when it is not an ``.npy`` file."""
    f.seek(0)
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
    elif version == (2, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
    else:
        raise ValueError(f"unsupported .npy version {version}")
    if fortran:
        raise ValueError("a Fortran-order array")
    return dtype, tuple(int(s) for s in shape), f.tell()


_OURS = re.compile(
    r"\{'descr': '(?P<descr>[<|][a-z]\d+)', 'fortran_order': False, "
    r"'shape': \((?P<shape>[\d, ]*)\), \}"
)


def fast_header(raw: bytes) -> tuple[np.dtype, tuple[int, ...], int]:
    """``(dtype, shape, data offset)`` of a :func:`header` of a plain (not structured)
    dtype, parsed without :mod:`ast` (a search opens hundreds of files); offset -1 when
    ``raw`` is not such a header (then read it with :func:`read_header`)."""
    if len(raw) < 10 or raw[:8] != _MAGIC:
        return np.dtype("u1"), (), -1
    (length,) = struct.unpack("<H", raw[8:10])
    m = _OURS.match(raw[10 : 10 + length].decode("latin1"))
    if m is None:
        return np.dtype("u1"), (), -1
    shape = tuple(int(s) for s in m.group("shape").replace(" ", "").split(",") if s)
    return np.dtype(m.group("descr")), shape, 10 + length


def committed_shape(raw: bytes) -> tuple[int, ...]:
    """The shape in a :func:`header` (``raw``: its bytes); ``ValueError`` if it is not one."""
    if len(raw) < 10 or raw[:8] != _MAGIC:
        raise ValueError("not an .npy header")
    (length,) = struct.unpack("<H", raw[8:10])
    meta = ast.literal_eval(raw[10 : 10 + length].decode("latin1"))
    return tuple(int(s) for s in meta["shape"])


class GrowingNpy:
    """An ``.npy`` file at ``path`` of ``dtype`` rows of shape ``row_shape``, created
    empty (0 rows committed). :meth:`append` writes rows after the committed ones;
    :meth:`sync` makes them durable; :meth:`commit` then rewrites the header's row
    count (and syncs it), the moment they become visible to readers."""

    def __init__(self, path: Path, dtype: np.dtype | str, row_shape: tuple[int, ...] = ()):
        self.path = Path(path)
        self.dtype = np.dtype(dtype).newbyteorder("<")
        self.row_shape = tuple(row_shape)
        self.rows = 0  # appended
        self.committed = 0  # visible to readers
        self._f: BinaryIO = open(self.path, "wb")  # noqa: SIM115 - closed in close()
        self._f.write(header(self.dtype, (0, *self.row_shape)))
        self._f.flush()

    def append(self, rows: np.ndarray) -> None:
        """Append ``rows`` (``(n, *row_shape)``, converted to the file's dtype)."""
        block = np.ascontiguousarray(rows, dtype=self.dtype).reshape(-1, *self.row_shape)
        if len(block):
            self._f.write(block.tobytes())
            self.rows += len(block)

    def sync(self) -> None:
        """Push the appended rows to the disk (``fsync``)."""
        self._f.flush()
        os.fsync(self._f.fileno())

    def commit(self) -> None:
        """Rewrite the header so that readers see every appended row; synced. Call after
        :meth:`sync` (of this file and of any file whose rows these refer to)."""
        if self.committed == self.rows:
            return
        fd = self._f.fileno()
        os.pwrite(fd, header(self.dtype, (self.rows, *self.row_shape)), 0)
        os.fsync(fd)
        self.committed = self.rows

    def close(self) -> None:
        """Close the file (what was not committed stays invisible)."""
        self._f.close()
