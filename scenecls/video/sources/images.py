"""A folder of images, sorted by name, played at ``image_fps`` frames per second."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import cv2
import numpy as np

from ...errors import InputError
from ...types import Frame
from .base import FrameSource

log = logging.getLogger("scenecls")

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}
)


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Decode an image file to HxWx3 uint8 BGR (first frame of an animated GIF)."""
    path = Path(path)
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as e:
        raise InputError(f"cannot read {path}: {e}") from e
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None and data.size and path.suffix.lower() == ".gif":
        cap = cv2.VideoCapture(str(path))
        ok, frame = cap.read()
        cap.release()
        image = frame if ok else None
    if image is None:
        raise InputError(f"cannot decode {path}: not an image file OpenCV can read")
    return image


class ImageFolderSource(FrameSource):
    """Every image file in a folder (not recursive), in name order. Frame ``i`` has
    timestamp ``i / image_fps``. Unreadable files are skipped with a warning and counted
    in ``skipped``."""

    live = False

    def __init__(self, folder: str | os.PathLike[str], image_fps: float = 1.0) -> None:
        super().__init__(str(folder))
        if image_fps <= 0:
            raise InputError(f"--image-fps must be more than 0, not {image_fps}")
        self.folder = Path(folder)
        self.fps = float(image_fps)
        self.files: list[Path] = []
        self._pos = 0
        self._index = 0

    def open(self) -> None:
        if not self.folder.is_dir():
            raise InputError(f"image folder {self.folder} does not exist")
        self.files = sorted(
            p for p in self.folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()
        )
        if not self.files:
            raise InputError(
                f"folder {self.folder} holds no images ({', '.join(sorted(IMAGE_EXTENSIONS))})"
            )
        self.frame_count = len(self.files)

    def read(self) -> Frame | None:
        while self._pos < len(self.files):
            path = self.files[self._pos]
            self._pos += 1
            try:
                image = read_image(path)
            except InputError as e:
                self.skipped += 1
                log.warning("skipping %s", e)
                continue
            if self.size is None:
                self.size = (image.shape[1], image.shape[0])
            frame = Frame(image, self._index, self._index / self.fps, time.monotonic())
            self._index += 1
            return frame
        return None
