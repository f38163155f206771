"""scripts/serve_load.py: a short run on the trained fixture reports every camera's rate,
encoded share and latency from a real ``scenecls serve``, and exits as its bars say."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests" / "fixtures" / "shapes-clip"


def test_short_load_run_reports_each_camera(tmp_path: Path) -> None:
    report_path = tmp_path / "load.json"
    proc = subprocess.run(
        [sys.executable, "serve_load.py", "--model", str(FIXTURE), "--cameras", "3",
         "--fps", "5", "--seconds", "6", "--warmup", "3", "--json", str(report_path)],
        cwd=REPO / "scripts", capture_output=True, text=True, timeout=180,
        env=dict(os.environ, HF_HUB_OFFLINE="1"),
    )  # fmt: skip
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    report = json.loads(report_path.read_text())
    cams = report["cameras"]
    assert [c["name"] for c in cams] == ["cam1", "cam2", "cam3"]
    assert report["encoder_batch1_ms"] > 0 and report["bars"]["fps"] == 4.75
    for c in cams:
        assert 3.0 <= c["fps"] <= 5.5, c  # a 5 frames/s camera, analysed (nearly) all
        assert 0 < c["encoded_share"] <= 1 and c["latency_p95_ms"] >= c["latency_p50_ms"]
    meets = all(
        c["fps"] >= 4.75 and c["latency_p95_ms"] <= report["bars"]["latency_p95_ms"] for c in cams
    )
    assert report["meets_bars"] == meets and proc.returncode == (0 if meets else 1)
    assert ("meets the bars" if meets else "below a bar") in proc.stdout
