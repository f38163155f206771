"""Preprocessing speed: scenecls' Preprocessor vs transformers' CLIPProcessor, same run.

usage: python scripts/bench_preprocess.py [--repeat N]
Times both on one real frame (shared/media/car-detection.mp4) scaled to 1920x1080 and
at its native 768x432, and prints milliseconds per frame and the ratio, beside the CPU
and its instruction sets. Ours runs as in a run: NumPy's BLAS and OpenCV on one thread
(:func:`scenecls.model.runtimes.cores.share_cores`).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from _common import MEDIA, ensure_ref_model


def best_ms(fn, frame, repeat: int) -> float:  # type: ignore[no-untyped-def]
    fn(frame)
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn(frame)
        times.append(time.perf_counter() - t)
    times.sort()
    return 1000 * times[len(times) // 2]  # median


def main(argv: list[str] | None = None) -> int:
    import cv2
    import numpy as np
    from transformers import CLIPImageProcessor

    from scenecls.model.export import read_preprocessing
    from scenecls.model.preprocess import Preprocessor
    from scenecls.model.runtimes.cores import share_cores
    from scenecls.model.runtimes.cpu import cpu_info
    from scenecls.video.sources import sample_frames

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeat", type=int, default=30)
    args = ap.parse_args(argv)
    share_cores()  # one BLAS and OpenCV thread, as in a run (the encoder owns the cores)
    print(f"machine    {cpu_info().describe()}")
    with tempfile.TemporaryDirectory() as tmp:
        hf = ensure_ref_model(Path(tmp) / "tiny", tiny=True)
        proc = CLIPImageProcessor.from_pretrained(hf)
        ours = Preprocessor(read_preprocessing(hf))
    frame = sample_frames(MEDIA / "car-detection.mp4", 1)[0]
    worst = 0.0
    for label, image in [
        ("1920x1080", cv2.resize(frame, (1920, 1080), interpolation=cv2.INTER_CUBIC)),
        ("768x432", frame),
    ]:

        def reference(img):  # type: ignore[no-untyped-def]
            # what users write: BGR->RGB, then the processor
            return proc(images=np.ascontiguousarray(img[:, :, ::-1]), return_tensors="np")

        t_ref = best_ms(reference, image, args.repeat)
        t_ours = best_ms(ours, image, args.repeat)
        ratio = t_ours / t_ref
        worst = max(worst, ratio) if label == "1920x1080" else worst
        print(
            f"{label:10s} CLIPProcessor {t_ref:7.2f} ms   scenecls {t_ours:6.2f} ms   "
            f"ours/reference = {ratio:.3f}"
        )
    print("PASS" if worst <= 1 / 3 else "FAIL", "(bar: 1920x1080 at most 1/3 of CLIPProcessor)")
    return 0 if worst <= 1 / 3 else 1


if __name__ == "__main__":
    sys.exit(main())
