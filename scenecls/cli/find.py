"""``scenecls find``: the segments with a label across an annotated archive."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .options import Example, examples_epilog

EXAMPLES: list[Example] = [
    Example(
        "every segment labelled cars in the archive that annotate wrote",
        "scenecls find archive cars",
    ),
    Example(
        "only those lasting 2 seconds or more, one JSON line each",
        "scenecls find archive cars --min-duration 2 --json",
    ),
]


def add_find_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "find",
        parents=[common],
        help="list the segments with a label across an annotated archive",
        description="List every segment labelled LABEL (case-insensitive) in the videos "
        "that 'scenecls annotate' wrote into DIR, sorted by file and start time: file, "
        "start, end, duration, confidence.",
        epilog=examples_epilog(EXAMPLES),
    )
    p.add_argument("dir", type=Path, metavar="DIR", help="the --out folder of scenecls annotate")
    p.add_argument("label", metavar="LABEL", help="the label to look for")
    p.add_argument(
        "--min-duration",
        type=float,
        default=0.0,
        metavar="S",
        help="only segments lasting at least S seconds (default 0)",
    )
    p.add_argument("--json", action="store_true", help="one JSON object per segment per line")


def run_find(args: argparse.Namespace) -> int:
    from ..archive import find_segments
    from ..archive.search import clock

    hits = find_segments(args.dir, args.label, args.min_duration)
    if args.json:
        for h in hits:
            print(json.dumps(h.to_json(), ensure_ascii=False))
    else:
        width = max((len(h.file) for h in hits), default=0)
        for h in hits:
            print(
                f"{h.file:<{width}}  {clock(h.start)} - {clock(h.end)}  "
                f"{h.duration:8.2f} s  {h.confidence:4.0%}"
            )
    if not args.quiet:
        videos = len({h.file for h in hits})
        total = sum(h.duration for h in hits)
        print(
            f"{len(hits)} segment{'s' * (len(hits) != 1)} labelled {args.label!r} in "
            f"{videos} video{'s' * (videos != 1)}, {clock(total)} in all",
            file=sys.stderr,
        )
    return 0
