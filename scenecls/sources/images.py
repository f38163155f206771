"""A folder of images, sorted by name, played at ``image_fps`` frames per second."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import cv2
import numpy as np

from ..errors import InputError
from ..types import Frame
from .base import FrameSource

log = logging.getLogger("scenecls")

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}
)


class ImageFolderSource(FrameSource):
    """Every image file in a folder (not recursive), in name order. Frame ``i`` has
    timestamp ``i / image_fps``. Unreadable files are skipped with a warning and counted
    in ``unreadable``."""

    live = False

    def __init__(self, folder: str | os.PathLike[str], image_fps: float = 1.0) -> None:
        super().__init__(str(folder))
        if image_fps <= 0:
            raise InputError(f"--image-fps must be more than 0, not {image_fps}")
        self.folder = Path(folder)
        self.fps = float(image_fps)
        self.files: list[Path] = []
        self.unreadable = 0
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
            image = cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_COLOR)
            if image is None:
                self.unreadable += 1
                log.warning("skipping %s: not an image OpenCV can read", path)
                continue
            if self.size is None:
                self.size = (image.shape[1], image.shape[0])
            frame = Frame(image, self._index, self._index / self.fps, time.monotonic())
            self._index += 1
            return frame
        return None
