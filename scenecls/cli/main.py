"""Command line: the ``scenecls`` parser, dispatch to one module per command, exit codes.

Parsing (:func:`build_parser`) is separate from running (:func:`run`); :func:`main` is
the one place that turns a :class:`SceneclsError` into a line on stderr and an exit code.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from ..errors import SceneclsError, UsageError
from ..redact import redact_url
from ..version import __version__
from . import annotate, bench, classify, export, find, relabel, search, serve, teach
from . import eval as eval_command
from . import run as run_command
from .options import Example, Parser

log = logging.getLogger("scenecls")


class Command(NamedTuple):
    """One ``scenecls`` command: how to add its parser, how to run it, and the examples
    that end its ``--help`` (the parser's epilog is made from them)."""

    add_parser: Callable[[Any, argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
    examples: list[Example]


COMMANDS: dict[str, Command] = {  # in the order of ``scenecls --help``
    "export": Command(export.add_export_parser, export.run_export, export.EXAMPLES),
    "classify": Command(classify.add_classify_parser, classify.run_classify, classify.EXAMPLES),
    "run": Command(run_command.add_run_parser, run_command.run_video, run_command.EXAMPLES),
    "eval": Command(eval_command.add_eval_parser, eval_command.run_eval, eval_command.EXAMPLES),
    "bench": Command(bench.add_bench_parser, bench.run_bench, bench.EXAMPLES),
    "serve": Command(serve.add_serve_parser, serve.run_serve, serve.EXAMPLES),
    "annotate": Command(annotate.add_annotate_parser, annotate.run_annotate, annotate.EXAMPLES),
    "find": Command(find.add_find_parser, find.run_find, find.EXAMPLES),
    "search": Command(search.add_search_parser, search.run_search, search.EXAMPLES),
    "relabel": Command(relabel.add_relabel_parser, relabel.run_relabel, relabel.EXAMPLES),
    "teach": Command(teach.add_teach_parser, teach.run_teach, teach.EXAMPLES),
}


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    verbosity = common.add_mutually_exclusive_group()
    verbosity.add_argument("-v", "--verbose", action="store_true", help="log debug details")
    verbosity.add_argument("-q", "--quiet", action="store_true", help="log warnings only")

    parser = Parser(prog="scenecls", description="Real-time video scene classification with CLIP.")
    parser.add_argument("--version", action="version", version=f"scenecls {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    for command in COMMANDS.values():
        command.add_parser(sub, common)
    return parser


def run(args: argparse.Namespace) -> int:
    """Run a parsed command; returns the exit code."""
    command = COMMANDS.get(args.command)
    if command is None:  # pragma: no cover - argparse allows only known commands
        raise UsageError(f"unknown command {args.command!r}")
    return command.run(args)


def _setup_logging(args: argparse.Namespace) -> None:
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("scenecls: %(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(level)
    log.propagate = False


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``scenecls`` console script.

    Every failure ends as one line on stderr and an exit code: 2 for a usage error, 1
    for a failure at run time, 130 when interrupted. ``--debug`` shows the traceback.
    """
    from ..interrupts import Interrupted, SignalGuard

    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        args = build_parser().parse_args(argv)
        _setup_logging(args)
        with SignalGuard() as guard:
            args.guard = guard
            return run(args)
    except SceneclsError as e:
        if debug:
            raise
        if isinstance(e, Interrupted):
            print("scenecls: interrupted", file=sys.stderr)
        else:
            print(f"scenecls: error: {_one_line(e)}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        if debug:
            raise
        print("scenecls: interrupted", file=sys.stderr)
        return 130
    except OSError as e:  # a file or device failed in a way no check foresaw
        if debug:
            raise
        print(f"scenecls: error: {_one_line(e)}", file=sys.stderr)
        return 1
    except Exception as e:  # a bug: say so in one line, the traceback is one flag away
        if debug:
            raise
        print(
            f"scenecls: internal error: {type(e).__name__}: {_one_line(e)} "
            "(run again with --debug for the traceback, and please report it)",
            file=sys.stderr,
        )
        return 1


def _one_line(error: BaseException) -> str:
    """An exception's message on one line (library messages sometimes span several),
    without the credentials of any URL in it."""
    text = redact_url(" ".join(str(error).split()))
    return text if len(text) <= 400 else text[:397] + "..."


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
