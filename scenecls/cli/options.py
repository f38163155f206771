"""The option groups that several commands share (model, labels, smoothing), the
argument parser class every command uses, and the examples that end each command's
``--help``."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from ..errors import RegionError, UsageError
from ..model.runtimes import DEVICES, PRECISIONS
from ..video.smoothing import MODES

if TYPE_CHECKING:
    from ..region import Region

DEFAULT_MODEL = "openai/clip-vit-base-patch32"

EXAMPLES_HEADING = "examples:"


class Example(NamedTuple):
    """One example at the end of ``scenecls COMMAND --help``.

    The documentation tests run every example (all commands' examples in one folder, in
    the order of ``scenecls --help``, so an example may use the files an earlier one
    wrote), except those with a ``not_run`` reason.
    """

    what: str
    """What it does: a short line, shown as a ``#`` comment above the command."""
    command: str
    """One shell command line, starting with ``scenecls COMMAND``."""
    background: str | None = None
    """For a command that runs until stopped (serve): the URL that answers once it is up;
    the tests start it, wait for that URL, and stop it with SIGTERM."""
    not_run: str | None = None
    """Why the tests cannot run it (e.g. "needs a webcam"); None: they run it."""


def examples_epilog(examples: Sequence[Example]) -> str:
    """The epilog of a command's parser: an ``examples:`` block that :class:`HelpFormatter`
    prints line for line, each example a ``#`` comment over its command::

        examples:
          # label a video, and write the annotated copy and its segments
          scenecls run video.mp4 --labels "street,parking lot" --out annotated.mp4
    """
    blocks = [f"  # {e.what}\n  {e.command}" for e in examples]
    return EXAMPLES_HEADING + "\n" + "\n\n".join(blocks)


class HelpFormatter(argparse.HelpFormatter):
    """argparse's formatter, but an :func:`examples_epilog` block keeps its lines as they
    are (commands are not re-wrapped); descriptions and help still wrap to the terminal."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if text.startswith(EXAMPLES_HEADING + "\n"):
            return "\n".join(indent + line if line else line for line in text.splitlines())
        return super()._fill_text(text, width, indent)


class Parser(argparse.ArgumentParser):
    """argparse that raises UsageError instead of exiting, so main() owns exit codes, and
    takes no abbreviated options (a typo must not silently mean another option). Its help
    keeps an ``examples:`` epilog line for line (:class:`HelpFormatter`)."""

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        kwargs.setdefault("allow_abbrev", False)
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(
            f"{message} (see 'scenecls {self.prog.split()[-1]} --help')"
            if " " in self.prog
            else f"{message} (see 'scenecls --help')"
        )


def add_smoothing_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("smoothing (times in seconds)")
    g.add_argument(
        "--smoothing",
        choices=list(MODES),
        default="ema+hysteresis",
        help="default ema+hysteresis: EMA on probabilities plus min-dwell/margin",
    )
    g.add_argument("--half-life", type=float, default=0.25, help="EMA half-life (default 0.25 s)")
    g.add_argument(
        "--min-dwell",
        type=float,
        default=0.5,
        help="a new label must lead this long to take over (default 0.5 s)",
    )
    g.add_argument(
        "--switch-margin",
        type=float,
        default=0.05,
        help="... by at least this probability (default 0.05)",
    )


def add_output_folder_options(
    p: argparse.ArgumentParser, kinds: tuple[str, ...], default: tuple[str, ...]
) -> None:
    """``--out DIR`` and ``--outputs KINDS`` of the commands that write a folder of
    outputs per video (annotate, relabel)."""
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder")
    p.add_argument(
        "--outputs",
        default=",".join(default),
        help=f"what to write per video, comma separated: {','.join(kinds)} or all "
        f"(default {','.join(default)})",
    )


def add_embeddings_options(g: argparse._ActionsContainer, *, run: bool = True) -> None:
    """``--embeddings FILE`` (``run`` only) and ``--embeddings-dtype``."""
    if run:
        g.add_argument(
            "--embeddings",
            type=Path,
            metavar="STORE",
            help="keep every encoded frame's embedding in the folder STORE (e.g. "
            "video.embeddings), for scenecls search, relabel and teach; written as the run "
            "goes, so a crash loses only the last --flush-seconds",
        )
    g.add_argument(
        "--embeddings-dtype",
        choices=["float16", "float32"],
        default="float16",
        help="how embeddings are stored: float16 (default, half the size; cosine to "
        "float32 >= 0.9999) or float32 (relabel reproduces the run bit for bit)",
    )
    g.add_argument(
        "--flush-seconds",
        type=float,
        default=10.0,
        metavar="S",
        help="flush the stored embeddings to the disk at least every S seconds (default "
        "10): what a crash or power cut can lose",
    )


def add_gate_options(p: argparse.ArgumentParser) -> None:
    """``--change-threshold`` and ``--max-reuse``: the change gate before the encoder."""
    g = p.add_argument_group("change gate (the encoder runs only on frames that changed)")
    g.add_argument(
        "--change-threshold",
        type=float,
        default=2.0,
        metavar="LEVELS",
        help="mean grey-level difference (of 255) of a small thumbnail from the last encoded "
        "frame that counts as a change; a region 1/32 of the frame counts at 4x this "
        "(default 2; 0: encode every frame)",
    )
    g.add_argument(
        "--max-reuse",
        type=float,
        default=1.0,
        metavar="S",
        help="encode a frame at least every S seconds of video (default 1; 0: every frame)",
    )


def add_model_options(
    p: argparse.ArgumentParser, default: str | None = DEFAULT_MODEL, model_help: str | None = None
) -> None:
    p.add_argument(
        "--model",
        default=default,
        help=model_help
        or f"bundle folder, Hugging Face folder or hub id (default {DEFAULT_MODEL})",
    )
    p.add_argument(
        "--device",
        choices=list(DEVICES),
        default="auto",
        help="auto: CUDA when it works here, else CPU (default)",
    )
    p.add_argument(
        "--precision",
        choices=list(PRECISIONS),
        default="auto",
        help="image encoder precision. auto (default): fp16 on CUDA; on a CPU, the fastest "
        "runtime that agrees with fp32, measured once on this machine (ONNX Runtime or "
        "OpenVINO fp32, OpenVINO bf16). fp32: exact. int8 (CPU, opt-in): fastest, check its "
        "agreement with scenecls bench",
    )


def add_label_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--labels",
        default="scenes",
        help="inline 'a,b,c', a preset (scenes, pizza, cars, cups), a TOML file, or a taught "
        "label set (.npz from scenecls teach) (default scenes)",
    )
    p.add_argument(
        "--templates",
        help="prompt templates: 'default', '{}' (labels as they are), "
        "'a photo of a {}.|a picture of a {}.' or a .txt/.toml file",
    )
    p.add_argument(
        "--min-confidence",
        type=float,
        default=0.0,
        help="below this probability the label is 'unknown' (default 0: never)",
    )


REGION_HELP = (
    "classify only this part of the frame: fractions (0.25,0,0.5,1) or pixels (320,0,640,720)"
)


def add_region_options(p: argparse._ActionsContainer, *, per_camera: bool = False) -> None:
    """``--region x,y,w,h``: the region of interest the change gate and the encoder see
    (parsed into a :class:`~scenecls.region.Region`). ``per_camera`` (serve): repeatable,
    once per SOURCE in order, or once for all; ``args.region`` is then a list."""
    from ..region import parse_region

    if per_camera:
        p.add_argument(
            "--region",
            type=parse_region,
            action="append",
            default=[],
            metavar="X,Y,W,H",
            help=REGION_HELP + "; once per SOURCE in order, or once for all cameras",
        )
    else:
        p.add_argument("--region", type=parse_region, metavar="X,Y,W,H", help=REGION_HELP)


def check_region(region: Region | None, size: tuple[int, int] | None, name: str) -> None:
    """Refuse (:class:`~scenecls.errors.RegionError`, naming ``name``) a region that does
    not fit a ``size`` = (width, height) frame; nothing to check without one of them."""
    if region is not None and size is not None:
        try:
            region.box(*size)
        except RegionError as e:
            raise RegionError(f"{name}: {e}") from None


def labels_of(args: argparse.Namespace) -> object:
    """``args.labels`` (with ``args.templates``) as a LabelSet or a taught set. A taught
    set made from a region of the frame sets ``args.region`` when the command line gives
    none; a different ``--region`` wins, with a warning."""
    import logging

    from ..model.scene_model import load_labels
    from ..model.taught import TaughtSet
    from ..region import Region

    labels = load_labels(args.labels, getattr(args, "templates", None))
    if isinstance(labels, TaughtSet) and labels.region is not None and hasattr(args, "region"):
        taught = Region.from_json(labels.region)
        given = args.region
        if given is None or given == []:
            args.region = [taught] if isinstance(given, list) else taught
        elif not isinstance(given, list) and given != taught:
            logging.getLogger("scenecls").warning(
                "%s was taught on region %s; --region %s looks elsewhere, so its accuracy "
                "figures may not hold",
                args.labels,
                taught,
                given,
            )
    return labels
