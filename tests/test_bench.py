"""`scenecls bench` measures every figure it promises, in one run (tiny model: fast)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from scenecls.bench import agreement, meets_bars
from scenecls.cli import main

from .conftest import MEDIA
from .outputs import one_line_error


def test_bench_reports_all_figures(tiny_hf: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "bench.json"
    folder = tmp_path / "more"
    folder.mkdir()
    shutil.copy(MEDIA / "classroom.gif", folder / "classroom.gif")
    code = main(
        [
            "bench",
            "--model",
            str(tiny_hf),
            "--source",
            str(MEDIA / "car-detection.mp4"),
            "--source",
            str(folder),
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
    g = r["sources"]
    assert [Path(row["source"]).name for row in g["sources"]] == [
        "car-detection.mp4",
        "classroom.gif",
    ]
    assert g["frames"] == 377 + 45 and g["every_frame_fps"] > 0 and g["gated_fps"] > 0
    assert g["gate"] == {"change_threshold": 2.0, "max_reuse": 1.0}
    for row in g["sources"]:
        assert 0 < row["encoded"] < row["frames"] and row["decode_ms"] > 0
        a = row["agreement"]
        assert a["frames"] == row["frames"] and 0.9 < a["cosine_p1"] <= a["cosine_mean"] <= 1.0001
        assert 0 <= a["labels_same"] <= 1 and a["boundaries_found"] <= a["boundaries"]
    # the tiny model encodes in well under a millisecond, so the gate saves encodes, not
    # time, here (the full-size model's speed-up is measured by scenecls bench itself)
    assert g["encoded_share"] < 0.5 and g["speedup"] > 0
    assert r["encoder"]["batch"] == 8 and r["encoder"]["batch1_ms"] > 0
    assert r["live"]["frames"] >= 25 and r["live"]["latency_p95_ms"] >= r["live"]["latency_p50_ms"]
    assert r["baseline"]["frames"] == 3 and r["baseline"]["fps"] > 0
    # auto: the tiny model is too fast for a runtime trial to save anything
    assert (r["precision"], r["runtime"]) == ("fp32", "onnxruntime")
    assert "no trial" in r["encoder_description"] and r["runtime_trial"]["cached"] is False
    cpu = r["cpu"]  # the machine beside every figure: model and instruction sets
    assert cpu["model"] and set(cpu["isa"]) == {"AVX2", "AVX-512", "BF16", "VNNI", "AMX"}
    assert text.splitlines()[0].startswith("machine     ") and "AVX2 " in text.splitlines()[0]
    assert r["live"]["encoder_calls"] > 0 and r["live"]["encoder_batch1_ms"] > 0
    for row in g["sources"]:  # files go through the encoder in batches
        calls = {int(n): c for n, c in row["encoder_calls"]["calls"].items()}
        assert sum(n * c for n, c in calls.items()) == row["encoded"]
        assert max(calls) > 1
    assert r["fidelity"]["frames"] == 24 and 0.999 <= r["fidelity"]["cosine_min"] <= 1.000001
    p = r["precisions"]
    assert p["fp32"]["fidelity"]["cosine_min"] > 0.999999 and p["fp32"]["runtime"] == "onnxruntime"
    assert 0.999 <= p["int8"]["fidelity"]["cosine_min"] < 0.999999
    assert p["int8"]["batch1_ms"] > 0 and p["int8"]["batched_ms_per_image"] > 0
    assert "fp16 bundle" in p["fp16"]["skipped"]  # an fp32 bundle cannot run fp16
    assert "ratio" in text and "end to end" in text and "baseline" in text
    assert "every fps" in text and "gated fps" in text and "classroom.gif" in text


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


def _unit(rows: list[list[float]]) -> dict[int, np.ndarray]:
    a = np.asarray(rows, np.float32)
    return dict(enumerate(a / np.linalg.norm(a, axis=1, keepdims=True)))


@pytest.mark.parametrize(
    ("gated_labels", "labels_same", "found"),
    [
        ("aaabbbbccc", 1.0, 2),  # the same
        ("aaaabbbccc", 0.9, 2),  # one boundary a frame late: still found
        ("aaaaaabccc", 0.7, 1),  # three frames late: missed
        ("aaaaaaaaaa", 0.3, 0),  # never switched
    ],
)
def test_agreement_counts_labels_and_boundaries(gated_labels, labels_same, found) -> None:  # type: ignore[no-untyped-def]
    ref = _unit([[1, 0.01 * i] for i in range(10)])
    got = _unit([[1, 0.01 * (i - i % 3)] for i in range(10)])  # reused every third frame
    a = agreement(ref, got, dict(enumerate("aaabbbbccc")), dict(enumerate(gated_labels)))
    assert a["frames"] == 10 and a["boundaries"] == 2 and a["boundaries_found"] == found
    assert a["labels_same"] == pytest.approx(labels_same)
    assert 0.9997 < a["cosine_min"] < 1.0 and a["cosine_p1"] >= a["cosine_min"]
    assert meets_bars(a) == (found == 2 and labels_same == 1.0)


def test_agreement_sees_a_frame_given_the_wrong_embedding() -> None:
    ref = _unit([[1, 0], [1, 0], [0, 1], [0, 1]])
    got = _unit([[1, 0], [1, 0], [1, 0], [0, 1]])  # the cut reused the old embedding
    a = agreement(ref, got, dict(enumerate("aabb")), dict(enumerate("aabb")))
    assert a["cosine_min"] == pytest.approx(0.0, abs=1e-6) and not meets_bars(a)
