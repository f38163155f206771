"""How fast can this CPU multiply matrices, per precision? A ceiling for the image encoder.

Times matrix products on OpenVINO's CPU plugin in fp32, bf16 and int8 (int8 weights,
activations quantised at run time, as scenecls's int8 path does): the shape that
dominates CLIP ViT-B/32's image tower (the MLP's first layer at batch 16: (800, 768) x
(768, 3072)) and a large square one, which runs closer to the machine's peak. The best
rate becomes a ceiling: the fastest the encoder could run if all of its 4.4 G
multiply-adds per image went at that rate and nothing else took any time.

usage: python scripts/matmul_peak.py [--threads N] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


SHAPES = ((800, 768, 3072), (2048, 2048, 2048))
"""(m, k, n) of the products timed: ViT-B/32's MLP at batch 16, and a large square one."""


def vit_b32_macs() -> int:
    """Multiply-adds of one 224x224 image through CLIP ViT-B/32's image tower."""
    tokens, width, mlp, layers, patches = 50, 768, 3072, 12, 49
    per_layer = tokens * width * width * 4 + 2 * tokens * width * mlp + 2 * tokens * tokens * width
    return patches * 3 * 32 * 32 * width + layers * per_layer + width * 512


def measure(precision: str, threads: int, m: int = 800, k: int = 768, n: int = 3072) -> float:
    """Sustained multiply-adds per second of an (m, k) x (k, n) product."""
    import openvino as ov
    import openvino.opset13 as ops

    from scenecls.model.runtimes.openvino import INT8_GROUP_SIZE, compress_linear_weights

    rng = np.random.default_rng(0)
    x = ops.parameter([m, k], ov.Type.f32)
    w = ops.constant(rng.standard_normal((k, n)).astype(np.float32))
    model = ov.Model([ops.matmul(x, w, False, False)], [x])
    config = {
        "PERFORMANCE_HINT": "LATENCY",
        "INFERENCE_NUM_THREADS": threads,
        "INFERENCE_PRECISION_HINT": "f32" if precision == "fp32" else "bf16",
    }
    if precision == "int8":
        compress_linear_weights(model)
        config["DYNAMIC_QUANTIZATION_GROUP_SIZE"] = INT8_GROUP_SIZE
    request = ov.Core().compile_model(model, "CPU", config).create_infer_request()
    data = rng.standard_normal((m, k)).astype(np.float32)
    request.infer({0: data})
    t = time.perf_counter()
    request.infer({0: data})
    reps = max(1, int(0.2 / max(time.perf_counter() - t, 1e-6)))  # about 0.2 s per try
    best = float("inf")
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(reps):
            request.infer({0: data})
        best = min(best, (time.perf_counter() - t) / reps)
    return m * k * n / best


def main() -> int:
    from scenecls.model.runtimes.base import cpu_threads

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=cpu_threads())
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    macs = vit_b32_macs()
    report: dict = {"threads": args.threads, "vit_b32_macs_per_image": macs, "precisions": {}}
    print(f"ViT-B/32 image tower: {macs / 1e9:.2f} G multiply-adds per image")
    for precision in ("fp32", "bf16", "int8"):
        rates = {shape: measure(precision, args.threads, *shape) for shape in SHAPES}
        rate = max(rates.values())
        floor_ms = 1000 * macs / rate
        report["precisions"][precision] = {
            "gmacs_per_s_by_shape": {"x".join(map(str, k)): v / 1e9 for k, v in rates.items()},
            "gmacs_per_s": rate / 1e9,
            "encoder_floor_ms": floor_ms,
            "encoder_ceiling_fps": 1000 / floor_ms,
        }
        print(
            f"{precision:5s} {rate / 1e9:7.1f} G multiply-adds/s -> encoder at least "
            f"{floor_ms:5.1f} ms/image, at most {1000 / floor_ms:5.1f} images/s"
        )
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
