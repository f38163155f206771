"""Train the tiny CLIP behind the test fixture tests/fixtures/shapes-clip/ and export it.

The model is a Hugging Face ``CLIPModel`` with small towers (vision: ViT 224 px, 32 px
patches, 64 wide, 3 layers; text: 12 wide, 2 layers, the real CLIP tokenizer and
77-token context) trained from scratch with a CLIP contrastive loss on the synthetic
coloured shapes of ``synthetic_shapes.py`` ("red circle", "blue square", ...), captioned
with many prompt templates (scenecls' default zero-shot templates among them). Captions
of the same class in a batch count as positives of each other, otherwise CLIP's
symmetric image-to-text / text-to-image cross-entropy.

Training images are preprocessed exactly as scenecls does at run time
(``scenecls.model.preprocess.Preprocessor``: BGR -> RGB, shortest side 224 with Pillow's
bicubic filter, centre crop, CLIP mean/std), then flipped and rotated by multiples of
90 degrees at random (class-preserving). The tokenizer and preprocessor files come from
``../shared/tools/make_ref_model.py --tiny``; the trained weights are saved over its
folder and exported with ``scenecls.model.export.export_bundle``. Token-embedding rows of ids
that no caption uses are set to zero before export (they never influence a prompt built
from the training templates), so the fixture compresses well in git.

At the end the script classifies a held-out synthetic set (another seed) through the
exported bundle and the public API (``scenecls.load_model(...).classify``, default
templates), as-is and with the colour channels swapped, and prints both accuracies and
the bundle's file sizes.

usage: python scripts/train_fixture_model.py [--out DIR] [--steps N] [--seed S]
Takes about 3 minutes on 2 CPU cores (PyTorch CPU build) and needs the [export] extras;
reaches about 99 % held-out accuracy (about 25 % with the channels swapped: only the
green classes survive), and the bundle is about 7.4 MB, half of it tokenizer.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import REPO, ensure_ref_model
from synthetic_shapes import CLASSES, make_image

DEFAULT_OUT = REPO / "tests" / "fixtures" / "shapes-clip"
# Extra caption templates beside scenecls' defaults (DEFAULT_TEMPLATES are all used too).
EXTRA_TEMPLATES = (
    "{}",
    "a {}.",
    "a {}",
    "the {}.",
    "a drawing of a {}.",
    "a picture of a {}.",
    "an image of a {}.",
    "a rendering of a {}.",
    "a {} on a grey background.",
    "a photo of a small {}.",
    "a photo of a large {}.",
    "there is a {} in the picture.",
)
VISION = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 3,
    "num_attention_heads": 4,
    "image_size": 224,
    "patch_size": 32,
}
TEXT = {
    "hidden_size": 12,  # the 49408-row token table dominates the bundle's size
    "intermediate_size": 48,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "vocab_size": 49408,
    "max_position_embeddings": 77,
}
PROJECTION_DIM = 64


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="bundle folder to (over)write")
    p.add_argument("--steps", type=int, default=700, help="optimiser steps (default 700)")
    p.add_argument("--seed", type=int, default=0, help="seed of data, weights and order")
    p.add_argument("--batch", type=int, default=64, help="images per step (default 64)")
    p.add_argument(
        "--train-per-class", type=int, default=300, help="training images per class (300)"
    )
    p.add_argument("--eval-per-class", type=int, default=40, help="held-out images per class (40)")
    p.add_argument("--lr", type=float, default=2e-3, help="peak learning rate (2e-3)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="shapes-clip-") as tmp:
        normal = train_and_export(args, Path(tmp))
    return 0 if normal >= 0.9 else 1


def train_and_export(args: argparse.Namespace, work: Path) -> float:
    """Train, export to ``args.out`` and return the held-out accuracy of the bundle.
    ``work`` is a scratch folder (the Hugging Face model and a scenecls cache)."""
    import torch
    from transformers import CLIPConfig, CLIPModel, CLIPTokenizerFast

    import scenecls
    from scenecls.model.export import export_bundle, read_preprocessing
    from scenecls.model.labels import DEFAULT_TEMPLATES
    from scenecls.model.preprocess import Preprocessor

    t_start = time.perf_counter()
    torch.set_num_threads(2)
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    rng = np.random.default_rng(args.seed)
    os.environ["SCENECLS_HOME"] = str(work / "home")  # keep the user's cache clean
    hf_dir = ensure_ref_model(work / "shapes-clip", tiny=True)  # tokenizer + processor files
    tokenizer = CLIPTokenizerFast.from_pretrained(hf_dir)
    prep = read_preprocessing(hf_dir)

    # --- captions: every class in every template, tokenised once -------------------------
    templates = list(dict.fromkeys([*DEFAULT_TEMPLATES, *EXTRA_TEMPLATES]))
    captions = [[t.replace("{}", c) for t in templates] for c in CLASSES]
    flat = [cap for group in captions for cap in group]
    enc = tokenizer(flat, padding=True, return_tensors="pt")
    cap_ids = enc["input_ids"].view(len(CLASSES), len(templates), -1)
    cap_mask = enc["attention_mask"].view(len(CLASSES), len(templates), -1)
    used_ids = torch.unique(enc["input_ids"])

    # --- images: generated and preprocessed once, kept as uint8 RGB levels ----------------
    # Preprocessing with mean 0, std 1, rescale 1 yields the rounded 0..255 levels of the
    # resized crop; normalising them later with CLIP's values gives exactly scenecls' input.
    levels_prep = dataclasses.replace(prep, mean=(0.0,) * 3, std=(1.0,) * 3, rescale_factor=1.0)
    pre = Preprocessor(levels_prep, cache_size=1024)
    n_train = args.train_per_class * len(CLASSES)
    pixels = torch.empty((n_train, 3, *prep.crop_size), dtype=torch.uint8)
    labels = torch.empty(n_train, dtype=torch.long)
    for i in range(n_train):
        k = i % len(CLASSES)
        pixels[i] = torch.from_numpy(pre(make_image(CLASSES[k], rng)).astype(np.uint8))
        labels[i] = k
    mean = torch.tensor(prep.mean).view(1, 3, 1, 1)
    std = torch.tensor(prep.std).view(1, 3, 1, 1)
    print(f"{n_train} training images in {time.perf_counter() - t_start:.0f} s", flush=True)

    # --- model ----------------------------------------------------------------------------
    base = CLIPConfig.from_pretrained(hf_dir)
    config = CLIPConfig(
        text_config={**base.text_config.to_dict(), **TEXT},
        vision_config={**base.vision_config.to_dict(), **VISION},
        projection_dim=PROJECTION_DIM,
    )
    model = CLIPModel(config).train()
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embedding" not in n]
    rest = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "embedding" not in n)]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.05}, {"params": rest, "weight_decay": 0.0}],
        lr=args.lr,
        betas=(0.9, 0.98),
    )
    warmup = max(1, args.steps // 20)

    def lr_at(step: int) -> float:
        if step < warmup:
            return args.lr * (step + 1) / warmup
        progress = (step - warmup) / max(1, args.steps - warmup)
        return args.lr * 0.5 * (1 + math.cos(math.pi * progress))

    gen = torch.Generator().manual_seed(args.seed)
    t_train = time.perf_counter()
    for step in range(args.steps):
        for group in opt.param_groups:
            group["lr"] = lr_at(step)
        idx = torch.randint(0, n_train, (args.batch,), generator=gen)
        x = pixels[idx].float()
        if torch.rand(1, generator=gen) < 0.5:
            x = x.flip(3)
        if torch.rand(1, generator=gen) < 0.5:
            x = x.flip(2)
        x = torch.rot90(x, int(torch.randint(0, 4, (1,), generator=gen)), dims=(2, 3))
        x = (x * prep.rescale_factor - mean) / std
        y = labels[idx]
        tpl = torch.randint(0, len(templates), (args.batch,), generator=gen)
        out = model(input_ids=cap_ids[y, tpl], attention_mask=cap_mask[y, tpl], pixel_values=x)
        logits = out.logits_per_image  # (B, B), scaled cosine
        same = (y[:, None] == y[None, :]).float()
        target = same / same.sum(1, keepdim=True)
        loss = 0.5 * (
            torch.sum(-target * logits.log_softmax(1), 1).mean()
            + torch.sum(-target * logits.t().log_softmax(1), 1).mean()
        )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        if step % 50 == 0 or step == args.steps - 1:
            # share of images whose best caption in the batch is of their own class
            hit = same[torch.arange(len(y)), logits.argmax(1)].mean()
            print(
                f"step {step:4d}/{args.steps}  loss {loss.item():.3f}  "
                f"batch accuracy {hit.item():.2f}  "
                f"logit scale {model.logit_scale.exp().item():.1f}  "
                f"{time.perf_counter() - t_train:.0f} s",
                flush=True,
            )
    train_s = time.perf_counter() - t_train

    # --- save over the reference folder (keeping its tokenizer), zero unused rows, export ---
    model.eval()
    with torch.no_grad():
        table = model.text_model.embeddings.token_embedding.weight
        keep = torch.zeros(table.shape[0], dtype=torch.bool)
        keep[used_ids] = True
        table[~keep] = 0.0
    model.save_pretrained(hf_dir)
    out = export_bundle(str(hf_dir), args.out, force=True)
    manifest_path = out / "bundle.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    # The exported id is the temporary folder's path, meaningless once it is gone.
    manifest["model_id"] = "scenecls-shapes-clip (scripts/train_fixture_model.py)"
    manifest["revision"] = f"seed {args.seed}, {args.steps} steps"
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")

    # --- held-out accuracy through the exported bundle and the public API --------------
    eval_rng = np.random.default_rng(args.seed + 1_000_003)
    images = [make_image(c, eval_rng) for c in CLASSES for _ in range(args.eval_per_class)]
    truth = [c for c in CLASSES for _ in range(args.eval_per_class)]
    sm = scenecls.load_model(out, device="cpu")
    normal = _accuracy(sm.classify(images, list(CLASSES), top_k=1), truth)
    swapped_images = [np.ascontiguousarray(im[:, :, ::-1]) for im in images]
    swapped = _accuracy(sm.classify(swapped_images, list(CLASSES), top_k=1), truth)
    total_s = time.perf_counter() - t_start
    print(f"trained {args.steps} steps in {train_s:.0f} s; {total_s:.0f} s in all")
    print(f"held-out accuracy ({len(images)} images): {normal:.3f}; channels swapped {swapped:.3f}")
    total = 0
    for f in sorted(out.iterdir()):
        size = f.stat().st_size
        total += size
        print(f"  {f.name:16s} {size / 1e6:7.2f} MB")
    print(f"  {'total':16s} {total / 1e6:7.2f} MB in {out}")
    return normal


def _accuracy(results: list, truth: list[str]) -> float:  # type: ignore[type-arg]
    return float(np.mean([r.label == t for r, t in zip(results, truth, strict=True)]))


if __name__ == "__main__":
    sys.exit(main())
