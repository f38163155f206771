"""Model bundles: a folder with ``bundle.json``, ``visual.onnx``, ``textual.onnx`` and
``tokenizer.json``. This module reads and verifies them; it never imports torch.

``bundle.json`` is the single source of model facts (image size, mean/std, resize rule,
logit scale, tensor names): preprocessing and scoring read them from here.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import BundleError

BUNDLE_FORMAT = 1
MANIFEST = "bundle.json"
VISUAL = "visual.onnx"
TEXTUAL = "textual.onnx"
TOKENIZER = "tokenizer.json"
REQUIRED_FILES = (VISUAL, TEXTUAL, TOKENIZER)
PRECISIONS = ("fp32", "fp16")


@dataclass(frozen=True)
class Preprocessing:
    """How a frame becomes the model's input; read from ``bundle.json``.

    The rule is CLIP's: scale so the shortest side is ``shortest_edge`` with an
    antialiased ``resample`` filter (Pillow semantics), centre-crop ``crop_size``
    (height, width), multiply by ``rescale_factor``, subtract ``mean`` and divide by
    ``std`` per RGB channel.
    """

    shortest_edge: int
    crop_size: tuple[int, int]
    resample: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    rescale_factor: float

    def __post_init__(self) -> None:
        if self.resample != "bicubic":
            raise BundleError(
                f"bundle asks for resample={self.resample!r}; this scenecls supports "
                "'bicubic' only: re-export the model with this version"
            )
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise BundleError("bundle.json has a bad mean/std: re-export the model")

    def to_json(self) -> dict[str, Any]:
        return {
            "shortest_edge": self.shortest_edge,
            "crop_size": list(self.crop_size),
            "resample": self.resample,
            "mean": list(self.mean),
            "std": list(self.std),
            "rescale_factor": self.rescale_factor,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Preprocessing:
        return cls(
            shortest_edge=int(d["shortest_edge"]),
            crop_size=(int(d["crop_size"][0]), int(d["crop_size"][1])),
            resample=str(d["resample"]),
            mean=tuple(float(x) for x in d["mean"]),  # type: ignore[arg-type]
            std=tuple(float(x) for x in d["std"]),  # type: ignore[arg-type]
            rescale_factor=float(d["rescale_factor"]),
        )


@dataclass(frozen=True)
class Bundle:
    """A verified bundle on disk and the facts from its ``bundle.json``."""

    path: Path
    model_id: str
    revision: str | None
    embed_dim: int
    context_length: int
    logit_scale: float
    precision: str
    preprocessing: Preprocessing
    tensors: dict[str, Any]
    files: dict[str, str]
    manifest: dict[str, Any]

    @property
    def visual_path(self) -> Path:
        return self.path / VISUAL

    @property
    def textual_path(self) -> Path:
        return self.path / TEXTUAL

    @property
    def tokenizer_path(self) -> Path:
        return self.path / TOKENIZER

    @property
    def fingerprint(self) -> str:
        """A short hash identifying the bundle's exact weights and tokenizer."""
        h = hashlib.sha256()
        for name in sorted(self.files):
            h.update(f"{name}={self.files[name]};".encode())
        return h.hexdigest()[:16]


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    """Hex SHA-256 of a file's bytes, read in 4 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def is_bundle_dir(path: Path) -> bool:
    return path.is_dir() and (path / MANIFEST).is_file()


def load_bundle(path: str | os.PathLike[str], *, verify: bool = True) -> Bundle:
    """Read ``bundle.json`` in ``path`` and (by default) check every file's SHA-256.

    Raises :class:`BundleError` naming the missing or altered file and what to do.
    """
    root = Path(path)
    fix = f"delete {root} and export again (scenecls export)"
    manifest_path = root / MANIFEST
    if not manifest_path.is_file():
        raise BundleError(f"{root} is not a scenecls bundle (no {MANIFEST}): {fix}")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BundleError(f"{manifest_path} is unreadable ({e}): {fix}") from e
    if not isinstance(manifest, dict):
        raise BundleError(f"{manifest_path} is not a JSON object: {fix}")
    fmt = manifest.get("format")
    if fmt != BUNDLE_FORMAT:
        raise BundleError(
            f"{root} has bundle format {fmt!r}, this scenecls reads format {BUNDLE_FORMAT}: "
            "re-export it with this version (scenecls export)"
        )
    try:
        files = {str(k): str(v) for k, v in manifest["files"].items()}
        bundle = Bundle(
            path=root,
            model_id=str(manifest["model_id"]),
            revision=manifest.get("revision"),
            embed_dim=int(manifest["embed_dim"]),
            context_length=int(manifest["context_length"]),
            logit_scale=float(manifest["logit_scale"]),
            precision=str(manifest["precision"]),
            preprocessing=Preprocessing.from_json(manifest["preprocessing"]),
            tensors=dict(manifest["tensors"]),
            files=files,
            manifest=manifest,
        )
    except (KeyError, TypeError, ValueError, IndexError) as e:
        raise BundleError(f"{manifest_path} lacks or mangles field {e}: {fix}") from e
    if bundle.precision not in PRECISIONS:
        raise BundleError(f"{manifest_path}: unknown precision {bundle.precision!r}: {fix}")
    for name in REQUIRED_FILES:
        if name not in files:
            raise BundleError(f"{manifest_path} does not list {name}: {fix}")
    for name, digest in files.items():
        file = root / name
        if not file.is_file():
            raise BundleError(f"bundle {root} is missing {name}: {fix}")
        if verify and sha256_file(file) != digest:
            raise BundleError(
                f"bundle file {file} does not match the sha256 in {MANIFEST} "
                f"(corrupted or altered): {fix}"
            )
    return bundle
