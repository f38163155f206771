"""`scenecls bench` measures every figure it promises, in one run (tiny model: fast)."""

from __future__ import annotations

import json
from pathlib import Path

from scenecls.cli import main
from scenecls.model.runtimes.openvino import cpu_has_bf16

from .conftest import MEDIA
from .outputs import one_line_error


def test_bench_reports_all_figures(tiny_hf: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "bench.json"
    code = main(
        [
            "bench",
            "--model",
            str(tiny_hf),
            "--source",
            str(MEDIA / "car-detection.mp4"),
            "--live-seconds",
            "1",
            "--baseline",
            "--baseline-frames",
            "3",
            "--batch",
            "8",
            "--precisions",
            "fp32,int8,fp16",
            "--json",
            str(out),
        ]
    )
    text = capsys.readouterr().out
    assert code == 0
    r = json.loads(out.read_text())
    e = r["end_to_end"]
    assert e["frames"] == 377 and e["fps"] > 0
    assert set(e["stage_ms"]) == {"decode", "preprocess", "encode", "smooth", "sinks"}
    assert 0 <= e["overhead_fraction"] <= 1
    assert r["encoder"]["batch"] == 8 and r["encoder"]["batch1_ms"] > 0
    assert r["live"]["frames"] >= 25 and r["live"]["latency_p95_ms"] >= r["live"]["latency_p50_ms"]
    assert r["baseline"]["frames"] == 3 and r["baseline"]["fps"] > 0
    if cpu_has_bf16():  # the default where the CPU has bf16 instructions
        assert (r["precision"], r["runtime"]) == ("bf16", "openvino")
    else:
        assert (r["precision"], r["runtime"]) == ("fp32", "onnxruntime")
    assert r["fidelity"]["frames"] == 24 and 0.999 <= r["fidelity"]["cosine_min"] <= 1.000001
    p = r["precisions"]
    assert p["fp32"]["fidelity"]["cosine_min"] > 0.999999 and p["fp32"]["runtime"] == "onnxruntime"
    assert 0.999 <= p["int8"]["fidelity"]["cosine_min"] < 0.999999
    assert p["int8"]["batch1_ms"] > 0 and p["int8"]["batched_ms_per_image"] > 0
    assert "fp16 bundle" in p["fp16"]["skipped"]  # an fp32 bundle cannot run fp16
    assert "ratio" in text and "end to end" in text and "baseline" in text


def test_unknown_precision_to_compare_is_a_usage_error(tiny_bundle: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    code = main(["bench", "--model", str(tiny_bundle), "--precisions", "fp32,fp8"])
    assert code == 2
    assert "fp8" in one_line_error(capsys.readouterr().err)


def test_baseline_needs_a_checkpoint(tiny_bundle: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    code = main(
        [
            "bench",
            "--model",
            str(tiny_bundle),
            "--source",
            str(MEDIA / "car-detection.mp4"),
            "--live-seconds",
            "0",
            "--baseline",
        ]
    )
    assert code == 2
    assert "--hf-model" in one_line_error(capsys.readouterr().err)
