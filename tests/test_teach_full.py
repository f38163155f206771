"""Teaching on real frames with the full-size model: each sample video of ../shared/media
is a label, taught from moments of its first part and tested on its last part."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ["HF_HUB_OFFLINE"] = "1"

import scenecls
from scenecls.cli import main

from .conftest import MEDIA

VIDEOS = {
    "bottles": (MEDIA / "bottle-detection.mp4", 39.8),
    "cars": (MEDIA / "car-detection.mp4", 30.1),
    "people": (MEDIA / "one-by-one-person-detection.mp4", 139.4),
}


@pytest.mark.slow
def test_moments_of_real_videos_teach_the_full_model(full_bundle: Path, tmp_path: Path) -> None:
    specs = []
    for label, (video, seconds) in VIDEOS.items():
        moments = tmp_path / f"{label}.csv"
        first = 0.6 * seconds
        # three moments in the first 60 % of the video
        rows = [f"{label},{first * i / 3:.2f},{first * i / 3 + 2:.2f}" for i in range(3)]
        moments.write_text("label,start,end\n" + "\n".join(rows) + "\n")
        specs.append(f"{video}={moments}")
    out = tmp_path / "media.npz"
    assert main(["teach", *specs, "--model", str(full_bundle), "--out", str(out),
                 "--example-fps", "1", "--precision", "fp32", "-q"]) == 0  # fmt: skip
    taught = scenecls.load_taught(out)
    assert taught.report["examples"] == 18 and taught.report["groups"] == 9
    cv = taught.report["cross_validation"]["accuracy"]
    model = scenecls.load_model(full_bundle, device="cpu", precision="fp32")
    from scenecls.video.sources import VideoFileSource

    hits = []
    for label, (video, seconds) in VIDEOS.items():
        src = VideoFileSource(video)
        src.open()
        frames = []
        try:
            while (f := src.read()) is not None:
                if f.timestamp > 0.7 * seconds and len(frames) < 4 and f.index % 15 == 0:
                    frames.append(f.image_bgr)
        finally:
            src.close()
        hits += [r.label == label for r in model.classify(frames, taught)]
    measured = float(np.mean(hits))
    assert measured >= 0.75, measured
    # cross-validation must not promise much more than the held-out part gives
    assert cv <= measured + 0.35, (cv, measured)
