"""What float16 storage costs: real embeddings of real videos, stored as float32 and as
float16, relabelled, and compared with the run.

    python scripts/embeddings_float16_cost.py --model BUNDLE [VIDEO_OR_FOLDER ...]
                                              [--labels scenes] [--json FILE]

Annotates the videos (default ``../shared/media``) once with JSONL, segments and float32
embeddings, then for each video: the cosine between every stored row and its float16
rounding; and ``scenecls relabel`` from the float32 store and from a float16 copy of it,
compared with the run's own JSONL and segments (labels, segment boundaries, largest
probability difference). With float32 the relabelled files must be byte-identical.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from scenecls.cli import main as scenecls
from scenecls.model.embeddings_store import open_embeddings
from scenecls.model.store_writer import StoreWriter

REPO = Path(__file__).resolve().parents[1]


def as_float16(src: Path, dst: Path) -> None:
    """A copy of the store ``src`` at ``dst`` with its rows stored as float16."""
    s = open_embeddings(src)
    meta = {k: v for k, v in s.meta.items() if k not in ("complete", "rows", "frames")}
    w = StoreWriter(dst, meta, s.embeddings.shape[1], "float16")
    w.add(np.asarray(s.embeddings, np.float32), s.frames, s.times)
    for lost, resumed in s.gaps:
        w.add_gap(float(lost), float(resumed))
    w.close(s.end)
    copy = open_embeddings(dst)
    if not np.array_equal(copy.spans, s.spans) or not np.array_equal(copy.frames, s.frames):
        raise SystemExit(f"{dst}: the float16 copy of {src} has other spans or frames")


def lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def compare(run_dir: Path, mine_dir: Path, rel: str) -> dict:
    a, b = lines(run_dir / f"{rel}.jsonl"), lines(mine_dir / f"{rel}.jsonl")
    same = sum(x["label"] == y["label"] for x, y in zip(a, b, strict=True)) / max(1, len(a))
    worst = max(
        (abs(p - q) for x, y in zip(a, b, strict=True)
         for p, q in zip(x["scores"].values(), y["scores"].values(), strict=True)),
        default=0.0,
    )  # fmt: skip
    seg = [json.loads((d / f"{rel}.segments.json").read_text())["segments"]
           for d in (run_dir, mine_dir)]  # fmt: skip
    bounds = [[(s["label"], s["start"]) for s in x] for x in seg]
    return {
        "labels_same": round(same, 6),
        "max_probability_difference": worst,
        "segments_same": bounds[0] == bounds[1],
        "bytes_identical": all(
            (run_dir / f"{rel}.{k}").read_bytes() == (mine_dir / f"{rel}.{k}").read_bytes()
            for k in ("jsonl", "segments.json", "srt")
        ),
    }


def run(args: argparse.Namespace) -> dict:
    inputs = args.inputs or [str(REPO.parent / "shared" / "media")]
    common = ["--model", args.model, "--labels", args.labels, "-q"]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        annotated = root / "annotated"
        code = scenecls(["annotate", *inputs, "--out", str(annotated), "--outputs",
                         "jsonl,segments,srt,embeddings", "--embeddings-dtype", "float32",
                         "--no-progress", *common])  # fmt: skip
        if code:
            raise SystemExit(f"annotate failed ({code})")
        entries = [json.loads(x) for x in (annotated / "manifest.jsonl").read_text().splitlines()]
        half = root / "half"
        report: dict = {"videos": {}}
        for e in entries:
            src = annotated / e["outputs"]["embeddings"]
            dst = half / e["outputs"]["embeddings"]
            dst.parent.mkdir(parents=True, exist_ok=True)
            as_float16(src, dst)
            rows = np.asarray(open_embeddings(src).embeddings, np.float32)
            back = rows.astype(np.float16).astype(np.float32)
            cos = (rows * back).sum(1) / np.linalg.norm(rows, axis=1) / np.linalg.norm(back, axis=1)
            report["videos"][e["file"]] = {"rows": len(rows), "frames": e["analysed"],
                                           "cosine_min": float(cos.min())}  # fmt: skip
        for name, folder in (("float32", annotated), ("float16", half)):
            files = [str(folder / e["outputs"]["embeddings"]) for e in entries]
            out = root / f"relabel-{name}"
            if scenecls(["relabel", *files, "--out", str(out), "--labels", args.labels,
                         "--model", args.model, "-q"]):  # fmt: skip
                raise SystemExit(f"relabel failed ({name})")
            for e in entries:
                report["videos"][e["file"]][name] = compare(annotated, out, e["file"])
    return report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("inputs", nargs="*", help="videos or folders (default ../shared/media)")
    p.add_argument("--model", required=True, help="the bundle to annotate with")
    p.add_argument("--labels", default="scenes", help="labels (default scenes)")
    p.add_argument("--json", type=Path, help="also write the report here")
    args = p.parse_args(argv)
    report = run(args)
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
