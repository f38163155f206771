"""Thread pools fighting over cores: the encoder's time inside a preprocess-then-encode
loop, with ONNX Runtime's spinning on or off and NumPy's BLAS on 1 or all threads.

usage: python scripts/bench_contention.py --model BUNDLE [--frames 40] [--json FILE]

Each configuration runs in a fresh process (thread pools are process-wide): 40 frames of
car-detection.mp4 scaled to 1920x1080, each preprocessed (NumPy, BLAS) and then encoded
at batch 1 by ONNX Runtime fp32 with every CPU, as a live run does. Printed: median ms
of preprocessing and of the encoder call, against the encoder alone (same session, same
input, nothing before it). ``scenecls`` runs with spinning off and one BLAS thread
(``scenecls.model.runtimes.cores``); this shows why.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import MEDIA

CHILD = r"""
import json, sys, time
import numpy as np, cv2, onnxruntime as ort
from threadpoolctl import threadpool_limits
spin, blas, model, frames_n = sys.argv[1] == "1", int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
if blas:
    threadpool_limits(blas, user_api="blas")
from scenecls.model.bundle import load_bundle
from scenecls.model.preprocess import Preprocessor
from scenecls.model.runtimes.base import cpu_threads
bundle = load_bundle(model, verify=False)
pre = Preprocessor(bundle.preprocessing)
so = ort.SessionOptions()
so.intra_op_num_threads = cpu_threads()
so.inter_op_num_threads = 1
if not spin:
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
session = ort.InferenceSession(str(bundle.visual_path), so, providers=["CPUExecutionProvider"])
name = session.get_inputs()[0].name
cap = cv2.VideoCapture(sys.argv[5])
frames = []
while len(frames) < frames_n:
    ok, f = cap.read()
    if not ok:
        break
    frames.append(cv2.resize(f, (1920, 1080)))
x = pre.batch(frames[:1])
alone = []
for _ in range(12):
    t0 = time.perf_counter(); session.run(None, {name: x}); alone.append(time.perf_counter() - t0)
prep, enc = [], []
for f in frames:
    t0 = time.perf_counter(); x = pre.batch([f]); t1 = time.perf_counter()
    session.run(None, {name: x}); t2 = time.perf_counter()
    prep.append(t1 - t0); enc.append(t2 - t1)
print(json.dumps({"alone_ms": 1000 * float(np.median(alone[2:])),
                  "preprocess_ms": 1000 * float(np.median(prep)),
                  "encode_ms": 1000 * float(np.median(enc))}))
"""


def main(argv: list[str] | None = None) -> int:
    from scenecls.model.runtimes.cpu import cpu_info

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="fp32 bundle folder")
    ap.add_argument("--frames", type=int, default=40)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    print(f"machine  {cpu_info().describe()}")
    rows = []
    for spin, blas in ((1, 0), (0, 0), (1, 1), (0, 1)):
        done = subprocess.run(
            [sys.executable, "-c", CHILD, str(spin), str(blas), args.model, str(args.frames),
             str(MEDIA / "car-detection.mp4")],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        r = json.loads(done.stdout.strip().splitlines()[-1])
        r.update(spinning=bool(spin), blas_threads="all" if blas == 0 else blas)
        rows.append(r)
        print(
            f"spinning {'on ' if spin else 'off'}  BLAS {r['blas_threads']!s:>3}  "
            f"preprocess {r['preprocess_ms']:5.2f} ms  encode {r['encode_ms']:5.1f} ms  "
            f"alone {r['alone_ms']:5.1f} ms  ratio {r['encode_ms'] / r['alone_ms']:.2f}"
        )
    if args.json:
        args.json.write_text(
            json.dumps({"cpu": cpu_info().describe(), "rows": rows}, indent=2) + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
