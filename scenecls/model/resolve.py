"""Resolution of ``--model``: a bundle folder, a local Hugging Face folder (exported on
the fly into the cache), or a hub id (looked up in the cache, exported on first use)."""

from __future__ import annotations

import hashlib
import logging
import re
from pathlib import Path

from ..errors import ModelNotFoundError, UsageError
from .bundle import PRECISIONS, is_bundle_dir
from .cache import bundles_dir

log = logging.getLogger("scenecls")

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def _local_key(folder: Path) -> str:
    """Identity of a local checkpoint: its path and its files' sizes and mtimes."""
    h = hashlib.sha256(str(folder.resolve()).encode())
    for f in sorted(folder.iterdir()):
        if f.is_file():
            st = f.stat()
            h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns};".encode())
    return h.hexdigest()[:12]


def cached_bundle_path(model: str, precision: str = "fp32", revision: str | None = None) -> Path:
    """Where the bundle of ``model`` lives in the cache (it may not exist yet)."""
    folder = Path(model).expanduser()
    if folder.is_dir():
        return bundles_dir() / "local" / f"{folder.resolve().name}-{_local_key(folder)}-{precision}"
    rev = f"@{revision}" if revision else ""
    return bundles_dir() / f"{model.replace('/', '--')}{rev}-{precision}"


def resolve_model(model: str, precision: str = "fp32", revision: str | None = None) -> Path:
    """Return the bundle folder for ``model``, exporting it into the cache if needed.

    Raises :class:`ModelNotFoundError` (or its subclass ``NetworkError``) with one line
    saying what to do.
    """
    if precision not in PRECISIONS:
        raise UsageError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    path = Path(model).expanduser()
    if path.is_dir():
        if is_bundle_dir(path):
            return path
        if not (path / "config.json").is_file():
            raise ModelNotFoundError(
                f"{path} is neither a scenecls bundle (bundle.json) nor a Hugging Face model "
                "folder (config.json): pass one of those, or a hub id"
            )
    elif path.exists():
        raise ModelNotFoundError(f"--model {model}: is a file; pass a folder or a hub id")
    elif not _HUB_ID.match(model) or model.startswith((".", "/", "~")):
        raise ModelNotFoundError(
            f"--model {model}: no such folder, and not a Hugging Face hub id (owner/name)"
        )
    target = cached_bundle_path(model, precision, revision)
    if is_bundle_dir(target):
        return target
    from .export import export_bundle  # torch is imported only when exporting

    step = "exporting" if path.is_dir() else "downloading from the Hugging Face hub and exporting"
    log.info("%s is not in the cache yet: %s it to %s (once)", model, step, target)
    try:
        return export_bundle(model, target, precision=precision, revision=revision, force=True)
    except FileExistsError:  # pragma: no cover - another process finished first
        return target
