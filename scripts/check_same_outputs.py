"""Check that two versions of scenecls write the same outputs (apart from timings).

Runs ``scenecls run`` on one sample video with every output and ``scenecls annotate`` on
the whole sample-media folder with every output, once with the code of git revision
BEFORE (checked out into a temporary worktree) and once with the working tree, then
compares: JSONL (frames and manifests) line by line as JSON, without the keys that hold
timings or process ids, numbers to the sixth decimal; segments, captions and CSV byte
for byte; annotated videos by frame count and size. Exit 0 when all are the same, 1
otherwise.

usage: python scripts/check_same_outputs.py --before REV [--model BUNDLE] [--video FILE]
       [--media DIR] [--keep DIR]

The default model is the trained fixture bundle in tests/fixtures (small and fast); fp32
on one thread is used so that both sides compute exactly the same arithmetic.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import MEDIA, REPO

# manifest keys that hold the wall time, the clock or the process
VOLATILE = {"seconds", "finished", "worker"}


def _run(root: Path, out: Path, model: str, video: Path, media: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(root), HF_HUB_OFFLINE="1")
    env["SCENECLS_HOME"] = str(out / ".home")
    # one thread: ONNX Runtime's multi-threaded kernels may differ in the last digit
    # from one run to the next, even with the same code
    env["SCENECLS_THREADS"] = "1"
    base = [sys.executable, "-m", "scenecls"]
    common = ["--model", model, "--precision", "fp32", "--labels", "scenes"]
    run_dir = out / "run"
    run_dir.mkdir(parents=True)
    commands = [
        [
            *base, "run", str(video), *common, "--no-progress",
            "--jsonl", str(run_dir / "frames.jsonl"),
            "--segments", str(run_dir / "segments.json"),
            "--srt", str(run_dir / "captions.srt"),
            "--vtt", str(run_dir / "captions.vtt"),
            "--out", str(run_dir / "annotated.mp4"),
        ],
        [
            *base, "run", str(video), *common, "--no-progress",
            "--segments", str(run_dir / "segments.csv"),
        ],
        [
            *base, "annotate", str(media), "--out", str(out / "archive"), *common,
            "--outputs", "all", "--workers", "1", "--no-progress",
        ],
    ]  # fmt: skip
    for cmd in commands:
        done = subprocess.run(cmd, env=env, cwd=root, capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(f"{' '.join(cmd)} failed under {root}:\n{done.stderr}")
    # which code ran must be the code asked for
    probe = subprocess.run(
        [sys.executable, "-c", "import scenecls; print(scenecls.__file__)"],
        env=env, cwd=root, capture_output=True, text=True, check=True,
    )  # fmt: skip
    if not Path(probe.stdout.strip()).is_relative_to(root):
        sys.exit(f"expected scenecls from {root}, imported {probe.stdout.strip()}")


def _json_lines(path: Path) -> list[dict]:  # type: ignore[type-arg]
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        for key in VOLATILE & row.keys():
            row[key] = None
        rows.append(row)
    return rows


def _same(a: object, b: object) -> bool:
    """Equal, with floats allowed to differ by one unit in the sixth decimal (the outputs
    round to 6 places; the archive's GIF frames come out that far apart even between two
    runs of the same code)."""
    if isinstance(a, float) and isinstance(b, float):
        return abs(a - b) <= 1.5e-6
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def _video_facts(path: Path) -> tuple[int, int, int]:
    import cv2

    cap = cv2.VideoCapture(str(path))
    frames = 0
    while cap.read()[0]:
        frames += 1
    size = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    cap.release()
    return (frames, *size)


def _compared(path: Path) -> bool:
    """Output files, without the model cache and the archive's lock (it holds a pid)."""
    return path.is_file() and ".home" not in path.parts and path.name != ".scenecls.lock"


def compare(a: Path, b: Path) -> list[str]:
    """Differences between output trees ``a`` and ``b`` (empty: the same)."""
    files_a = {p.relative_to(a) for p in a.rglob("*") if _compared(p)}
    files_b = {p.relative_to(b) for p in b.rglob("*") if _compared(p)}
    problems = [f"only in before: {p}" for p in sorted(files_a - files_b)]
    problems += [f"only in after: {p}" for p in sorted(files_b - files_a)]
    for rel in sorted(files_a & files_b):
        pa, pb = a / rel, b / rel
        if pa.suffix == ".jsonl":
            rows_a, rows_b = _json_lines(pa), _json_lines(pb)
            if len(rows_a) != len(rows_b):
                problems.append(f"{rel}: {len(rows_a)} lines before, {len(rows_b)} after")
                continue
            for i, (ra, rb) in enumerate(zip(rows_a, rows_b, strict=True)):
                if not _same(ra, rb):
                    problems.append(f"{rel}: line {i + 1} differs:\n  {ra}\n  {rb}")
                    break
        elif pa.suffix in {".mp4", ".avi", ".mkv", ".mov"}:
            if _video_facts(pa) != _video_facts(pb):
                problems.append(f"{rel}: {_video_facts(pa)} before, {_video_facts(pb)} after")
        elif pa.read_bytes() != pb.read_bytes():
            problems.append(f"{rel}: contents differ")
    return problems


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--before", required=True, help="git revision of the old code")
    ap.add_argument("--model", default=str(REPO / "tests" / "fixtures" / "shapes-clip"))
    ap.add_argument("--video", type=Path, default=MEDIA / "car-detection.mp4")
    ap.add_argument("--media", type=Path, default=MEDIA)
    ap.add_argument("--keep", type=Path, help="keep both output trees in this folder")
    args = ap.parse_args()
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="scenecls-same-"))
    worktree = work / "before-tree"
    shutil.rmtree(work / "before", ignore_errors=True)
    shutil.rmtree(work / "after", ignore_errors=True)
    subprocess.run(
        ["git", "worktree", "add", "--detach", "--force", str(worktree), args.before],
        cwd=REPO, check=True, capture_output=True,
    )  # fmt: skip
    try:
        _run(worktree, work / "before", args.model, args.video, args.media)
        _run(REPO, work / "after", args.model, args.video, args.media)
    finally:
        subprocess.run(
            ["git", "worktree", "remove", "--force", str(worktree)], cwd=REPO, check=False
        )
    problems = compare(work / "before", work / "after")
    count = sum(1 for p in (work / "after").rglob("*") if _compared(p))
    if problems:
        print("\n".join(problems))
        print(f"{len(problems)} difference(s) in {count} files")
        sys.exit(1)
    print(f"same outputs: {count} files compared (before {args.before}, after: working tree)")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
