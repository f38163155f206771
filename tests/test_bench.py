"""`scenecls bench` measures every figure it promises, in one run (tiny model: fast)."""

from __future__ import annotations

import json
from pathlib import Path

from scenecls.cli import main

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
    assert "ratio" in text and "end to end" in text and "baseline" in text


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
