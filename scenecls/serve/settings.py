"""Per-camera settings of the kitchen service, kept in its data folder (``--data DIR``).

Each camera's settings are one JSON object in ``DIR/cameras/<name>.json`` (the camera
name made filename-safe), written atomically (:func:`~scenecls.atomic.write_bytes_atomic`:
a reader or a crash sees the old file or the whole new one) and read when the service
starts. A file that cannot be read or parsed is logged and ignored (the camera starts
with the command line's settings), never fatal. Settings this version does not know
are kept when the file is rewritten.

The file::

    {"version": 1, "camera": "pass", "region": {"x": 0.25, "y": 0, "w": 0.5, "h": 1,
     "unit": "fraction"}}

``region`` null: no region of interest (the user cleared it); absent: never set.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
from pathlib import Path
from typing import Any

from ..atomic import write_bytes_atomic
from ..errors import InputError, OutputError
from ..region import Region

log = logging.getLogger("scenecls")

VERSION = 1
CAMERAS_DIR = "cameras"
UNSET = object()
""":meth:`CameraSettings.region`: no region was ever stored for the camera."""


def camera_file_name(camera: str) -> str:
    """The settings file name of ``camera``: the name with anything but ASCII letters,
    digits, ``-``, ``_`` and inner ``.`` replaced by ``_``; when anything was replaced
    (or the name is reserved), a short hash of the name is appended so that two cameras
    never share a file."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", camera).strip(".") or "_"
    if safe != camera:
        digest = hashlib.sha256(camera.encode("utf-8", "surrogatepass")).hexdigest()[:8]
        safe = f"{safe[:64]}-{digest}"
    return f"{safe}.json"


def camera_file_stem(camera: str) -> str:
    """:func:`camera_file_name` without ``.json``: how ``camera`` is named in the data
    folder's other files and folders (its examples, its taught label set)."""
    return camera_file_name(camera).removesuffix(".json")


def open_data_folder(folder: Path) -> Path:
    """``--data DIR``: create the folder (and its ``cameras/``) when missing and check that
    it is writable; raises :class:`OutputError` in one line when not."""
    folder = Path(folder)
    try:
        (folder / CAMERAS_DIR).mkdir(parents=True, exist_ok=True)
        probe = folder / CAMERAS_DIR / ".scenecls-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise OutputError(
            f"--data {folder}: cannot write there ({e.strerror or e}): pick a writable folder"
        ) from e
    return folder


class CameraSettings:
    """The per-camera settings files of one data folder (see the module docstring).
    Thread-safe: the web server and the engine may save at the same time."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self._lock = threading.Lock()

    def path(self, camera: str) -> Path:
        """The settings file of ``camera``."""
        return self.folder / CAMERAS_DIR / camera_file_name(camera)

    def load(self, camera: str) -> dict[str, Any]:
        """The stored settings of ``camera``; ``{}`` when there are none, or when the file
        is damaged (logged)."""
        path = self.path(camera)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except (OSError, UnicodeDecodeError) as e:
            log.warning("camera %s: ignoring its settings, %s cannot be read: %s", camera, path, e)
            return {}
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as e:
            log.warning("camera %s: ignoring its damaged settings file %s: %s", camera, path, e)
            return {}
        if not isinstance(data, dict):
            log.warning("camera %s: ignoring %s: it holds no JSON object", camera, path)
            return {}
        return data

    def region(self, camera: str) -> Region | object | None:
        """The stored region of ``camera``: a :class:`Region`, None (cleared), or
        :data:`UNSET` (never stored, or unreadable: logged)."""
        data = self.load(camera)
        if "region" not in data:
            return UNSET
        if data["region"] is None:
            return None
        try:
            return Region.from_json(data["region"])
        except InputError as e:
            log.warning(
                "camera %s: ignoring the stored region in %s: %s", camera, self.path(camera), e
            )
            return UNSET

    def update(self, camera: str, **settings: Any) -> None:
        """Store ``settings`` (JSON-able values) for ``camera``, keeping its other stored
        settings; atomic. Raises :class:`OutputError` when the file cannot be written."""
        with self._lock:
            data = self.load(camera)
            data.update(settings, version=VERSION, camera=camera)
            text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
            path = self.path(camera)
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                write_bytes_atomic(path, text.encode("utf-8"))
            except OSError as e:
                raise OutputError(
                    f"cannot save the settings of camera {camera} to {path}: {e}"
                ) from e

    def save_region(self, camera: str, region: Region | None) -> None:
        """Store ``camera``'s region (None: cleared)."""
        self.update(camera, region=None if region is None else region.to_json())
