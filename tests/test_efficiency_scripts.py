"""scripts/bench_efficiency.py and scripts/bench_contention.py, run short on the tiny
model: they measure what they say, name the machine, and write their JSON. (Their
figures are for the full-size model; these runs only keep the scripts working.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _script(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], cwd=REPO / "scripts", capture_output=True, text=True,
        timeout=600, env=dict(os.environ, HF_HUB_OFFLINE="1"),
    )  # fmt: skip


def test_the_efficiency_benchmark_compares_end_to_end_with_its_parts(
    tiny_bundle: Path, tmp_path: Path
) -> None:
    out = tmp_path / "eff.json"
    done = _script("bench_efficiency.py", "--model", str(tiny_bundle), "--skip-serve",
                   "--skip-every-frame", "--live-seconds", "2", "--json", str(out))  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith("machine     ") and "AVX2 " in done.stdout
    r = json.loads(out.read_text())
    a = r["annotate"]
    assert a["frames"] == 3143 and 0 < a["encoded"] < a["frames"]  # the six sample videos
    assert a["wall_s"] > 0 and a["parts_s"] > 0 and a["ratio"] == a["wall_s"] / a["parts_s"]
    assert r["run"]["frames"] == 1394 and r["run"]["fps"] > 0 and r["run"]["encoded"] > 0
    assert r["live"]["encoder_batch1_ms"] > 0 and r["live"]["ratio"] > 0
    assert set(r["decode_s"]) == {
        "bottle-detection.mp4", "car-detection.mp4", "classroom.gif",
        "one-by-one-person-detection.mp4", "store-aisle-detection.gif",
        "worker-zone-detection.gif",
    }  # fmt: skip
    assert r["cpu"]["isa"].keys() == {"AVX2", "AVX-512", "BF16", "VNNI", "AMX"}


def test_the_contention_benchmark_runs_every_configuration(
    tiny_bundle: Path, tmp_path: Path
) -> None:
    out = tmp_path / "c.json"
    done = _script("bench_contention.py", "--model", str(tiny_bundle), "--frames", "6",
                   "--json", str(out))  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    rows = json.loads(out.read_text())["rows"]
    assert [(r["spinning"], r["blas_threads"]) for r in rows] == [
        (True, "all"),
        (False, "all"),
        (True, 1),
        (False, 1),
    ]
    assert all(r["encode_ms"] > 0 and r["alone_ms"] > 0 and r["preprocess_ms"] > 0 for r in rows)


def test_the_corrections_benchmark_teaches_a_camera_through_the_api(tmp_path: Path) -> None:
    out = tmp_path / "corrections.json"
    fixture = REPO / "tests" / "fixtures" / "shapes-clip"  # tiny and trained: fast
    done = _script("bench_corrections.py", "--model", str(fixture), "--precision", "fp32",
                   "--corrections", "2", "--base", "100", "--warmup", "5", "--gap", "0.2",
                   "--json", str(out))  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith("machine     ") and "POST -> first frame labelled" in done.stdout
    r = json.loads(out.read_text())
    assert r["base_examples"] == 100 and [c["correction"] for c in r["corrections"]] == [1, 2]
    assert 0 < r["swap_s"]["p50"] <= r["label_s"]["p50"] < 30 and r["train_s"]["max"] > 0
    assert r["fps"]["before"] > 5 and r["fps"]["ratio"] > 0 and r["label_s"]["target"] == 2.0
