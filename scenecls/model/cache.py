"""Where scenecls keeps exported bundles and text embeddings."""

from __future__ import annotations

import os
from pathlib import Path


def scenecls_home() -> Path:
    """``$SCENECLS_HOME``, default ``~/.cache/scenecls``."""
    env = os.environ.get("SCENECLS_HOME")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "scenecls"


def bundles_dir() -> Path:
    return scenecls_home() / "bundles"


def text_cache_dir() -> Path:
    return scenecls_home() / "text-embeddings"
