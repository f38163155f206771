"""Soak of the kitchen service with its history on, beside the same service without it.

usage: python scripts/soak_serve.py --model BUNDLE [--minutes 30] [--fps 15]
       [--video bottle-detection.mp4] [--json docs/perf/soak-history-DATE.json]

Two real ``scenecls serve`` processes run at the same time for ``--minutes``, each on
one camera (a sample video looped at ``--fps``) and pinned to a core of its own (so
both see the same machine, noise included; SCENECLS_THREADS=1):

- history: ``--data DIR`` (history and recordings in the data folder),
- baseline: ``--record DIR`` (recordings only, no history).

Every 10 s it reads each service's ``/api/status`` (frames analysed) and its resident
memory (VmRSS from /proc). Reports the analysed frame rate of each over the run after
the warm-up (the first 5 minutes, or 1/6 of a shorter run), their ratio, the history
run's RSS growth after the warm-up, and the history written (MB). Bars (issue #25): RSS
growth under 20 MB, frame rate within 5 % of the baseline. Exit 1 when one fails.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import MEDIA, REPO

RSS_BAR_MB = 20.0
FPS_BAR = 0.95


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def status(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status", timeout=10) as reply:
        return json.loads(reply.read())


def start(name: str, core: int, video: Path, args: argparse.Namespace, extra: list[str]):
    cmd = [
        "taskset", "-c", str(core), sys.executable, "-m", "scenecls", "serve", str(video),
        "--model", args.model, "--loop", "--fps", str(args.fps), "--port", "0", *extra,
    ]  # fmt: skip
    env = dict(os.environ, HF_HUB_OFFLINE="1", SCENECLS_THREADS="1")
    log = open(Path(args.work) / f"{name}.log", "w")  # noqa: SIM115 - closed at the end
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        log.write(line)
        if not line and proc.poll() is not None:
            sys.exit(f"{name}: scenecls serve ended: exit {proc.returncode}")
        found = re.search(r"on http://[^:]+:(\d+)/", line)
        if found:
            # keep reading its log so that the pipe never fills
            import threading

            def drain() -> None:
                for rest in proc.stderr:  # type: ignore[union-attr]
                    log.write(rest)
                log.close()

            threading.Thread(target=drain, daemon=True).start()
            return proc, int(found.group(1))
    sys.exit(f"{name}: scenecls serve did not start within 300 s")


def folder_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--fps", type=float, default=15.0)
    ap.add_argument("--video", default="bottle-detection.mp4")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    args.work = tempfile.mkdtemp(prefix="scenecls-soak-serve-")
    work = Path(args.work)
    data, record = work / "data", work / "recordings"
    record.mkdir()
    video = MEDIA / args.video
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model_name = re.search(r"Model name:\s*(.+)", lscpu)
    flags = re.search(r"Flags:\s*(.+)", lscpu)
    runs = {
        "history": start("history", 0, video, args, ["--data", str(data)]),
        "baseline": start("baseline", 1, video, args, ["--record", str(record)]),
    }
    total = args.minutes * 60
    warm = min(300.0, total / 6)
    samples: dict[str, list[dict[str, float]]] = {k: [] for k in runs}
    t0 = time.monotonic()
    try:
        while (now := time.monotonic() - t0) < total:
            for name, (proc, port) in runs.items():
                if proc.poll() is not None:
                    sys.exit(f"{name}: scenecls serve ended early: exit {proc.returncode}")
                cam = status(port)["cameras"][0]
                samples[name].append(
                    {"t": round(now, 1), "analysed": cam["frames_analysed"],
                     "encoded": cam["frames_encoded"], "rss_mb": round(rss_mb(proc.pid), 1)}
                )  # fmt: skip
            time.sleep(10.0)
    except KeyboardInterrupt:
        print("interrupted: reporting what was measured", file=sys.stderr)
    finally:
        for proc, _ in runs.values():
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
    result: dict[str, Any] = {
        "cpu": {"model": model_name.group(1) if model_name else None,
                "flags": sorted(set(flags.group(1).split()) & {"avx2", "avx512f", "avx512_bf16",
                                "avx512_vnni", "amx_tile", "f16c"}) if flags else None},
        "command": " ".join(sys.argv),
        "minutes": args.minutes,
        "fps_asked": args.fps,
        "video": args.video,
    }  # fmt: skip
    for name, rows in samples.items():
        after = [r for r in rows if r["t"] >= warm]
        if len(after) < 2:
            continue
        span = after[-1]["t"] - after[0]["t"]
        result[name] = {
            "analysed_fps": round((after[-1]["analysed"] - after[0]["analysed"]) / span, 3),
            "encoded_share": round(
                (after[-1]["encoded"] - after[0]["encoded"])
                / max(1, after[-1]["analysed"] - after[0]["analysed"]),
                4,
            ),
            "rss_after_warmup_mb": after[0]["rss_mb"],
            "rss_end_mb": after[-1]["rss_mb"],
            "rss_max_mb": max(r["rss_mb"] for r in after),
            "rss_growth_mb": round(after[-1]["rss_mb"] - after[0]["rss_mb"], 1),
            "samples": rows,
        }
    ok = True
    if "history" in result and "baseline" in result:
        h, b = result["history"], result["baseline"]
        ratio = h["analysed_fps"] / b["analysed_fps"] if b["analysed_fps"] else float("nan")
        result["fps_ratio_history_vs_baseline"] = round(ratio, 4)
        result["history_mb"] = round(folder_mb(data / "history"), 1) if data.exists() else 0.0
        result["recordings_mb"] = round(folder_mb(data / "recordings"), 1)
        ok = h["rss_growth_mb"] < RSS_BAR_MB and ratio >= FPS_BAR
        result["pass"] = ok
        cpu = result["cpu"]
        print(f"CPU {cpu['model']} {cpu['flags']}: history {h['analysed_fps']:.2f} fps vs "
              f"baseline {b['analysed_fps']:.2f} fps (ratio {ratio:.3f}); history RSS "
              f"{h['rss_after_warmup_mb']:.0f} -> {h['rss_end_mb']:.0f} MB (growth "
              f"{h['rss_growth_mb']:+.1f} MB); history {result['history_mb']} MB in "
              f"{args.minutes:g} min")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
