"""The folder the documentation's commands run in (docs/writing-docs.md lists it).

A *world* is what a reader following the docs would have: short recordings, pictures,
a moments file, the sample media at ``../shared/media``, and the default model
(``openai/clip-vit-base-patch32``) already in the model cache and in the Hugging Face
hub cache, so that commands naming no ``--model`` and ``scenecls export`` work with no
network. The model is a tiny random-weight CLIP of the real layout: its labels mean
nothing, every step around it is real.

Layout of one world (``root``)::

    root/checkout/   the reader's working folder (cwd of the commands)
    root/shared  ->  the real ../shared (sample media, tools)
    root/home/       $HOME
    root/cache/      $SCENECLS_HOME (bundles/openai--clip-vit-base-patch32-fp32 in it)
    root/hf/         $HF_HOME (hub/models--openai--clip-vit-base-patch32/...)
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parent.parent
DEFAULT_MODEL = "openai/clip-vit-base-patch32"
FAKE_COMMIT = "0" * 39 + "1"

# (file in the world, sample video, start second, seconds)
CLIPS = [
    ("video.mp4", "car-detection.mp4", 0.0, 6.0),
    ("videos/cars.mp4", "car-detection.mp4", 8.0, 3.0),
    ("videos/bottles.mp4", "bottle-detection.mp4", 0.0, 3.0),
    ("videos/people.mp4", "one-by-one-person-detection.mp4", 10.0, 3.0),
]
# label folder of examples/ -> the sample video its pictures come from
EXAMPLES = {
    "bottles": "bottle-detection.mp4",
    "cars": "car-detection.mp4",
    "people": "one-by-one-person-detection.mp4",
}
TEXT_FILES = {
    "moments.csv": "label,start,end\nstreet,0,3\nparking lot,3,6\n",
}
WIDTH = 640  # clips are scaled to this width: quick to decode, big enough to look at


def _frames(video: Path, start: float, seconds: float) -> tuple[list[np.ndarray], float]:
    """BGR uint8 frames (H, W, 3) of ``video`` from ``start`` for ``seconds``, scaled to
    WIDTH, and the video's frame rate."""
    cap = cv2.VideoCapture(str(video))
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    cap.set(cv2.CAP_PROP_POS_MSEC, start * 1000.0)
    frames = []
    while len(frames) < round(seconds * fps):
        ok, frame = cap.read()
        if not ok:
            break
        h, w = frame.shape[:2]
        frames.append(cv2.resize(frame, (WIDTH, round(h * WIDTH / w / 2) * 2)))
    cap.release()
    if not frames:
        raise RuntimeError(f"{video}: no frames from {start} s")
    return frames, fps


def _write_clip(path: Path, frames: list[np.ndarray], fps: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = frames[0].shape[:2]
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    for frame in frames:
        out.write(frame)
    out.release()


def build_base(root: Path, media: Path, tiny_hf: Path, tiny_bundle: Path) -> Path:
    """Build the template world in ``root`` (once per test session); returns ``root``."""
    checkout = root / "checkout"
    for name, source, start, seconds in CLIPS:
        frames, fps = _frames(media / source, start, seconds)
        _write_clip(checkout / name, frames, fps)
        if name == "video.mp4":
            cv2.imwrite(str(checkout / "photo.jpg"), frames[len(frames) // 2])
    photos = checkout / "photos"
    photos.mkdir()
    for i, (label, source) in enumerate(EXAMPLES.items()):
        frames, _ = _frames(media / source, 1.0, 12.0)
        folder = checkout / "examples" / label
        folder.mkdir(parents=True)
        picks = np.linspace(0, len(frames) - 1, 6).astype(int)
        for j, k in enumerate(picks[:4]):
            cv2.imwrite(str(folder / f"{label}-{j + 1}.jpg"), frames[k])
        for j, k in enumerate(picks[4:]):
            cv2.imwrite(str(photos / f"{2 * i + j + 1:04d}.jpg"), frames[k])
    for name, text in TEXT_FILES.items():
        (checkout / name).write_text(text, encoding="utf-8")
    # the model cache, as after a first run that exported the default model
    shutil.copytree(
        tiny_bundle, root / "cache" / "bundles" / f"{DEFAULT_MODEL.replace('/', '--')}-fp32"
    )
    # the hub cache, as after a download of the default model
    repo = root / "hf" / "hub" / f"models--{DEFAULT_MODEL.replace('/', '--')}"
    shutil.copytree(tiny_hf, repo / "snapshots" / FAKE_COMMIT)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(FAKE_COMMIT)
    return root


def make_world(base: Path, root: Path, shared: Path) -> Path:
    """A fresh copy of the template world ``base`` in ``root``; returns ``root``."""
    shutil.copytree(base, root, symlinks=True)
    (root / "shared").symlink_to(shared.resolve(), target_is_directory=True)
    (root / "home").mkdir()
    return root


def world_env(root: Path) -> dict[str, str]:
    """The environment the docs' commands run with in world ``root``."""
    venv_bin = str(Path(sys.executable).parent)
    keep = {k: v for k, v in os.environ.items() if k in {"LANG", "LC_ALL", "TMPDIR", "CI"}}
    return {
        **keep,
        "PATH": f"{venv_bin}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(root / "home"),
        "SCENECLS_HOME": str(root / "cache"),
        "HF_HOME": str(root / "hf"),
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "PYTHONUNBUFFERED": "1",
    }
