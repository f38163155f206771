"""``scenecls search``: moments of stored videos that match a text or a picture."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from ..errors import InputError, UsageError
from .options import Example, examples_epilog

EXAMPLES: list[Example] = [
    Example(
        "the moments of the annotated archive that best match a description",
        'scenecls search archive "a person walking past"',
    ),
    Example(
        "the three moments that look most like a picture, on a page with thumbnails",
        "scenecls search archive --image photo.jpg --top 3 --html moments.html",
    ),
    Example(
        "one video's embeddings (run --embeddings), one JSON line per moment",
        'scenecls search video.embeddings "a car parking" --json',
    ),
]


def add_search_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "search",
        parents=[common],
        help="find the moments of stored videos that match a text or a picture",
        usage="%(prog)s PATH... QUERY [options]\n       %(prog)s PATH... --image FILE [options]",
        description="Rank the moments of the videos whose embeddings PATH holds by how "
        "well they match QUERY (a text, embedded with the label templates; with --labels "
        "SET.npz, a label taught by example) or --image. "
        "PATH: embeddings stores (scenecls run --embeddings), scenecls annotate folders "
        "(annotated with the embeddings output), or the --data folder of scenecls serve "
        "(its cameras' history, also while the service runs). No video is decoded.",
        epilog=examples_epilog(EXAMPLES),
    )
    p.add_argument(
        "items",
        nargs="+",
        metavar="PATH",
        help="embeddings stores, annotate folders or serve data folders, then the query "
        "text (leave the text out with --image)",
    )
    p.add_argument(
        "--image", type=Path, metavar="FILE", help="find moments that look like this picture"
    )
    p.add_argument(
        "--model",
        help="the model that wrote the embeddings (default: the one recorded in them)",
    )
    p.add_argument(
        "--templates",
        help="prompt templates for the query text (default: the label templates; '{}': "
        "the text as it is)",
    )
    p.add_argument(
        "--labels",
        metavar="SET.npz",
        help="a taught label set (scenecls teach): QUERY is one of its labels, and moments "
        "are ranked by their cosine to that label's prototype (its examples' mean, mixed "
        "with its text as the set learned)",
    )
    p.add_argument("--top", type=int, default=10, metavar="K", help="moments to list (default 10)")
    p.add_argument(
        "--min-gap",
        type=float,
        default=2.0,
        metavar="S",
        help="hits of one video at most S seconds apart form one moment (default 2)",
    )
    p.add_argument(
        "--spread",
        type=float,
        default=0.02,
        metavar="COS",
        help="a moment holds the frames scoring within COS of its best one (default 0.02)",
    )
    p.add_argument(
        "--exact",
        action="store_true",
        help="score every stored row (default: exact up to a million rows; beyond, the "
        "stores' summary rows are scanned first and only the best groups of rows exactly, "
        "4x faster)",
    )
    p.add_argument("--json", action="store_true", help="one JSON object per moment per line")
    p.add_argument(
        "--html", type=Path, metavar="FILE", help="also write a page of the moments with thumbnails"
    )


def run_search(args: argparse.Namespace) -> int:
    from ..archive.moments import html_page, search, write_html
    from ..archive.search import clock
    from ..archive.stored import bundle_for, collect
    from ..model.labels import LabelSet, parse_templates
    from ..model.runtimes.base import normalize_rows
    from ..model.scene_model import SceneModel, TextModel
    from ..utc import utc_iso
    from ..video.sinks import check_writable

    items = list(args.items)
    if args.image is None:
        if len(items) < 2:
            raise UsageError(
                "give one or more PATHs and then the QUERY text, e.g. scenecls search "
                "out/ 'a forklift' (or --image FILE)"
            )
        paths, text = items[:-1], items[-1]
        if not text.strip():
            raise UsageError("the query text is empty: say what to look for")
        if text.endswith(".npz") or Path(text).is_dir():
            raise UsageError(
                f"the last argument, {text}, is a path: give the QUERY text after the "
                "PATHs (quote it), or --image FILE"
            )
    else:
        if args.labels is not None:
            raise UsageError("--labels takes a label name as QUERY, not --image: give one")
        paths, text = items, None
        if not Path(items[-1]).exists():
            raise UsageError(
                f"{items[-1]} is no file or folder: give either a QUERY text or --image, not both"
            )
        if not args.image.is_file():
            raise InputError(f"--image {args.image}: no such file")
    if args.html is not None:
        check_writable(args.html, "--html")
    videos, problems = collect(paths)
    if not videos:
        raise InputError("no usable embeddings: " + "; ".join(p.line for p in problems))
    bundle = bundle_for(videos, args.model)
    t0 = time.perf_counter()
    if text is not None and args.labels is not None:
        query, shown = _taught_query(args.labels, text, bundle)
    elif text is not None:
        templates = parse_templates(args.templates) if args.templates else None
        labelset = LabelSet.from_names([text], templates)
        query = TextModel(bundle).embed_labels(labelset)[0]
        shown = text
    else:
        import cv2

        image = cv2.imread(str(args.image), cv2.IMREAD_COLOR)
        if image is None:
            raise InputError(f"--image {args.image}: not a picture OpenCV can read (JPEG, PNG...)")
        model = SceneModel(bundle, device="cpu", precision="fp32")
        query = normalize_rows(model.encode_images([image]))[0]
        shown = f"like {args.image.name}"
    t1 = time.perf_counter()
    result = search(
        videos,
        query,
        top=args.top,
        spread=args.spread,
        min_gap=args.min_gap,
        problems=problems,
        exact=True if args.exact else None,
    )
    t2 = time.perf_counter()
    if args.json:
        for m in result.moments:
            print(json.dumps(m.to_json(), ensure_ascii=False))
    else:
        width = max((len(m.video) for m in result.moments), default=0)
        for m in result.moments:
            when = utc_iso if m.unix else clock  # a service's history: UTC times
            print(
                f"{m.score:6.3f}  {m.video:<{width}}  {when(m.start)} - {when(m.end)}  "
                f"best {when(m.best)}"
            )
    if args.html is not None:
        write_html(args.html, html_page(shown, result, videos, stop=args.guard.stop))
    if not args.quiet:
        print(
            f"{len(result.moments)} moment{'s' * (len(result.moments) != 1)} for {shown!r} "
            f"in {result.searched} video{'s' * (result.searched != 1)} "
            f"({result.rows} stored embeddings, searched in {t2 - t1:.3f} s; query "
            f"embedded in {t1 - t0:.2f} s)",
            file=sys.stderr,
        )
        for note in result.notes:
            print(f"note: {note}", file=sys.stderr)
        for p in result.problems:
            print(f"left out: {p.line}", file=sys.stderr)
        if args.html is not None:
            print(f"page: {args.html}", file=sys.stderr)
    return 1 if result.problems else 0


def _taught_query(spec: str, name: str, bundle: object) -> tuple[object, str]:
    """The ``(D,)`` float32 unit prototype of label ``name`` of the taught set ``spec``
    (checked to belong to ``bundle``), and how the query is shown."""
    from ..model.taught import is_taught_file, load_taught

    if not is_taught_file(spec):
        raise UsageError(f"--labels {spec}: not a taught label set (.npz from scenecls teach)")
    taught = load_taught(spec)
    taught.check_model(bundle.fingerprint, bundle.model_id)  # type: ignore[attr-defined]
    if name not in taught.names:
        raise UsageError(
            f"{name!r} is not a label of {spec}: give one of {', '.join(taught.names)}"
        )
    row = taught.fitted.prototypes[taught.names.index(name)]
    return row, f"{name} (taught)"
