"""``scenecls classify``: zero-shot labels for image files."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from ..errors import InputError, UsageError
from ..interrupts import guard_of
from ..region import region_crop
from ..video.sources.images import IMAGE_EXTENSIONS as SOURCE_IMAGE_EXTENSIONS
from ..video.sources.images import read_image
from .options import (
    Example,
    add_label_options,
    add_model_options,
    add_region_options,
    examples_epilog,
    labels_of,
)

log = logging.getLogger("scenecls")


EXAMPLES: list[Example] = [
    Example(
        "the three most likely labels of a picture",
        'scenecls classify photo.jpg --labels "street,parking lot,kitchen"',
    ),
    Example(
        "the best label of each picture in a folder, as one JSON line each",
        'scenecls classify photos/ --labels "bottles,cars,people" --top-k 1 --json',
    ),
]


def add_classify_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    cls = sub.add_parser(
        "classify",
        parents=[common],
        help="zero-shot classify images",
        description="Print the top-k labels of each image.",
        epilog=examples_epilog(EXAMPLES),
    )
    cls.add_argument("images", nargs="+", metavar="IMAGE", help="image files or folders of images")
    add_model_options(cls)
    add_label_options(cls)
    add_region_options(cls)
    cls.add_argument("--top-k", type=int, default=3, help="labels to show per image (default 3)")
    cls.add_argument("--json", action="store_true", help="one JSON object per image per line")


IMAGE_EXTENSIONS = SOURCE_IMAGE_EXTENSIONS | {".gif"}


def _image_paths(items: Sequence[str]) -> list[Path]:
    paths: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_EXTENSIONS)
            if not found:
                raise UsageError(
                    f"folder {p} holds no images ({', '.join(sorted(IMAGE_EXTENSIONS))})"
                )
            paths.extend(found)
        elif p.is_file():
            paths.append(p)
        else:
            raise UsageError(f"image {p} does not exist: check the path")
    return paths


def _batches(paths: list[Path], size: int) -> Iterator[list[tuple[Path, np.ndarray | InputError]]]:
    batch: list[tuple[Path, np.ndarray | InputError]] = []
    for p in paths:
        try:
            batch.append((p, read_image(p)))
        except InputError as e:
            batch.append((p, e))
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def run_classify(args: argparse.Namespace) -> int:
    from ..model.scene_model import load_model
    from ..model.scoring import check_min_confidence

    if args.top_k < 1:
        raise UsageError(f"--top-k must be at least 1, not {args.top_k}")
    check_min_confidence(args.min_confidence)
    paths = _image_paths(args.images)
    labelset = labels_of(args)
    model = guard_of(args).call(
        load_model, args.model, device=args.device, precision=args.precision
    )
    scorer = model.scorer(labelset)
    from ..model.scoring import classify_scores
    from ..model.taught import scores_of

    failures = 0
    # with a region, the results are printed once it fitted every image (an image it does
    # not fit stops the command with nothing printed)
    held: list[str] | None = None if args.region is None else []

    def emit(line: str) -> None:
        if held is None:
            print(line)
        else:
            held.append(line)

    for batch in _batches(paths, model.batch_size):
        good = [(p, img) for p, img in batch if isinstance(img, np.ndarray)]
        embs = model.encode_images([region_crop(args.region, img, str(p)) for p, img in good])
        results = iter(scores_of(scorer, embs))
        for path, img in batch:
            if isinstance(img, InputError):
                failures += 1
                print(f"scenecls: error: {img}", file=sys.stderr)
                continue
            c = classify_scores(next(results), args.top_k, args.min_confidence)
            if args.json:
                record = {
                    "image": str(path),
                    "label": c.label,
                    "confidence": c.confidence,
                    "predictions": [t.to_json() for t in c.top],
                }
                emit(json.dumps(record, ensure_ascii=False))
            else:
                emit(f"{path}: {c.label} ({c.confidence:.1%})")
                for t in c.top:
                    emit(f"  {t.probability:7.2%}  {t.label}  (cosine {t.similarity:+.3f})")
        sys.stdout.flush()
    if held:
        print("\n".join(held), flush=True)
    if failures:
        log.error("%d of %d images could not be read", failures, len(paths))
        return 1
    return 0
