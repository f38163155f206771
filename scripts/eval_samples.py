"""Regenerate the sample evaluation outputs shown in the docs (docs/img/, on docs/evaluation.md).

usage: python scripts/eval_samples.py [--out docs/img]
Builds a held-out synthetic image folder and a 24 s synthetic video with truth segments
and 15 % glitch frames
(scripts/synthetic_shapes.py), then runs `scenecls eval` on both with the trained
fixture model tests/fixtures/shapes-clip. Takes about 20 s.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import synthetic_shapes as shapes
from _common import REPO

TRUTH = [("red circle", 0.0, 6.0), ("blue ring", 6.0, 12.0), ("green circle", 12.0, 18.0),
         ("yellow ring", 18.0, 24.0)]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    from scenecls.cli import main as scenecls

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "img")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    model = str(REPO / "tests" / "fixtures" / "shapes-clip")
    with tempfile.TemporaryDirectory() as tmp:
        images, video, truth = Path(tmp) / "shapes", Path(tmp) / "clip.mp4", Path(tmp) / "truth.csv"
        shapes.make_dataset(images, per_class=25, seed=31337)
        shapes.make_video(video, TRUTH, fps=10, seed=5, flicker=0.15)
        shapes.write_truth_csv(truth, TRUTH)
        code = scenecls(
            [
                "eval",
                str(images),
                "--model",
                model,
                "--min-confidence",
                "0.5",
                "--report",
                str(args.out / "eval-images.json"),
                "--confusion",
                str(args.out / "confusion.png"),
            ]
        )
        code |= scenecls(
            [
                "eval",
                str(video),
                "--truth",
                str(truth),
                "--model",
                model,
                "--labels",
                ",".join(shapes.CLASSES),
                "--report",
                str(args.out / "eval-video.json"),
                "--timeline",
                str(args.out / "timeline.png"),
            ]
        )
    return code


if __name__ == "__main__":
    sys.exit(main())
