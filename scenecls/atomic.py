"""Atomic file writes: readers see the old file or the whole new one, never half a file,
also after an error or Ctrl-C (the temporary file is tracked by :mod:`.interrupts`)."""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

import numpy as np

from .interrupts import partial_file


def default_file_mode() -> int:
    """Permissions a newly created file gets under the current umask (0o644 usually)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def write_bytes_atomic(path: Path, data: bytes, *, mode: int | None = None) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same folder, synced, then
    renamed: readers see the old file or the whole new one, never half a file.
    ``mode``: the file's permissions (e.g. ``0o600`` for a secret: it never exists with
    wider ones); default: what the umask gives a new file."""
    path = Path(path)

    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    try:
        with partial_file(Path(tmp)):
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, default_file_mode() if mode is None else mode)
            os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_npy_atomic(path: Path, array: np.ndarray) -> None:
    """Write ``array`` as .npy to ``path`` atomically (see :func:`write_bytes_atomic`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    np.save(buf, array)
    write_bytes_atomic(path, buf.getvalue())
