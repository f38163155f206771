"""Fidelity of scenecls to the reference (transformers CLIPModel + CLIPProcessor).

Measures, on real frames from every sample video in shared/media:
  * preprocessing: mean |ours - CLIPProcessor| on the normalised (3, 224, 224) tensors;
  * images: cosine of our encode_images vs get_image_features(CLIPProcessor output);
  * texts: cosine of our encode_texts vs get_text_features (label prompts, one over-long);
  * ONNX vs PyTorch on identical pixel tensors;
  * the reduced-precision CPU paths (OpenVINO bf16, the default on CPUs with bf16, and
    int8, opt-in) vs our fp32 path, on the same frames.
Exits 1 when a figure misses the issue's bar.

usage: python scripts/fidelity.py [--hf-model DIR] [--frames N] [--json FILE]
Without --hf-model it builds the full-size random-weight reference model
(shared/tools/make_ref_model.py, about 600 MB) into models/ref-clip-vit-b32-random.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from _common import REPO, ensure_ref_model, videos

BARS = {
    "image_cosine_mean": 0.9999,
    "image_cosine_min": 0.9995,
    "text_cosine_min": 0.9999,
    "onnx_vs_torch_cosine_min": 0.99999,
    "preprocess_mean_abs_diff_max": 0.005,
    "bf16_vs_fp32_cosine_min": 0.999,
    "int8_vs_fp32_cosine_min": 0.999,
}


def measure(hf_model: Path, frames_per_video: int, bundle_dir: Path | None = None) -> dict:
    import numpy as np
    import torch
    from transformers import CLIPModel, CLIPProcessor

    import scenecls
    from scenecls.model.export import export_bundle
    from scenecls.model.fidelity import cosine_rows
    from scenecls.model.labels import resolve_labels
    from scenecls.model.runtimes.select import create_image_encoder
    from scenecls.video.sources import sample_frames

    with tempfile.TemporaryDirectory() as tmp:
        bundle = bundle_dir or export_bundle(str(hf_model), Path(tmp) / "bundle")
        model = scenecls.load_model(bundle, device="cpu", precision="fp32")
        ref = CLIPModel.from_pretrained(hf_model).eval()
        proc = CLIPProcessor.from_pretrained(hf_model)
        frames, names = [], []
        for v in videos():
            got = sample_frames(v, frames_per_video)
            frames += got
            names += [v.name] * len(got)
        rgb = [np.ascontiguousarray(f[:, :, ::-1]) for f in frames]
        with torch.inference_mode():
            ref_pix = proc(images=rgb, return_tensors="pt")["pixel_values"]
            ref_img = ref.get_image_features(pixel_values=ref_pix).numpy()
        ours_pix = model.preprocess(frames)
        pre_diff = np.abs(ours_pix - ref_pix.numpy()).mean(axis=(1, 2, 3))
        img_cos = cosine_rows(model.encode_images(frames), ref_img)
        onnx_cos = cosine_rows(model.image_encoder(ref_pix.numpy()), ref_img)
        texts = [p for group in resolve_labels("scenes").prompts() for p in group][:40]
        texts += [p for group in resolve_labels("pizza").prompts() for p in group][:20]
        texts.append("a photo of " + "a very long description " * 20)
        with torch.inference_mode():
            tok = proc.tokenizer(
                texts, padding=True, truncation=True, max_length=77, return_tensors="pt"
            )
            ref_txt = ref.get_text_features(**tok).numpy()
        txt_cos = cosine_rows(model.encode_texts(texts), ref_txt)
        fp32_img = model.image_encoder(ours_pix)
        reduced = {}
        for precision in ("bf16", "int8"):
            enc = create_image_encoder(model.bundle, "cpu", precision)
            reduced[precision] = cosine_rows(enc(ours_pix), fp32_img)
            del enc
    per_video = {}
    for name in sorted(set(names)):
        idx = [i for i, n in enumerate(names) if n == name]
        per_video[name] = {
            "frames": len(idx),
            "image_cosine_min": float(img_cos[idx].min()),
            "preprocess_mean_abs_diff": float(pre_diff[idx].mean()),
        }
    return {
        "model": str(hf_model),
        "frames": len(frames),
        "texts": len(texts),
        "image_cosine_mean": float(img_cos.mean()),
        "image_cosine_min": float(img_cos.min()),
        "text_cosine_mean": float(txt_cos.mean()),
        "text_cosine_min": float(txt_cos.min()),
        "onnx_vs_torch_cosine_min": float(onnx_cos.min()),
        "preprocess_mean_abs_diff_mean": float(pre_diff.mean()),
        "preprocess_mean_abs_diff_max": float(pre_diff.max()),
        **{f"{p}_vs_fp32_cosine_min": float(c.min()) for p, c in reduced.items()},
        **{f"{p}_vs_fp32_cosine_mean": float(c.mean()) for p, c in reduced.items()},
        "per_video": per_video,
    }


def failures(report: dict) -> list[str]:
    bad = []
    for key, bar in BARS.items():
        ok = report[key] <= bar if key.startswith("preprocess") else report[key] >= bar
        if not ok:
            bad.append(f"{key} = {report[key]:.6f} misses {bar}")
    return bad


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--hf-model", type=Path, help="Hugging Face CLIP folder (default: full-size random)"
    )
    ap.add_argument("--frames", type=int, default=4, help="frames per sample video (default 4)")
    ap.add_argument("--json", type=Path, help="also write the report here")
    args = ap.parse_args(argv)
    hf = args.hf_model or ensure_ref_model(REPO / "models" / "ref-clip-vit-b32-random")
    t0 = time.perf_counter()
    report = measure(hf, args.frames)
    report["seconds"] = round(time.perf_counter() - t0, 1)
    for key, value in report.items():
        if key != "per_video":
            print(f"{key:32s} {value}")
    for name, row in report["per_video"].items():
        print(f"  {name:36s} {row}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    bad = failures(report)
    for line in bad:
        print("FAIL", line)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
