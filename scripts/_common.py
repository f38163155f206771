"""Helpers shared by the scripts: locating ../shared and building reference models."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SCENECLS_SHARED", REPO.parent / "shared"))
MEDIA = SHARED / "media"


def videos() -> list[Path]:
    found = sorted(p for p in MEDIA.glob("*") if p.suffix in {".mp4", ".gif"})
    if not found:
        sys.exit(f"no sample videos in {MEDIA}: set SCENECLS_SHARED to the shared folder")
    return found


def ensure_ref_model(folder: Path, tiny: bool = False) -> Path:
    """Build a random-weight CLIP in the hub layout with shared/tools/make_ref_model.py,
    unless ``folder`` already holds one."""
    if (folder / "model.safetensors").is_file():
        return folder
    cmd = [sys.executable, str(SHARED / "tools" / "make_ref_model.py"), str(folder)]
    if tiny:
        cmd.append("--tiny")
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return folder
