"""Every ``scenecls COMMAND --help`` ends with examples a reader can copy.

The examples are data (``COMMANDS[name].examples``, :class:`scenecls.cli.options.Example`):
here they are checked to be shown as written, to parse, and to be runnable (the
documentation runner, tests/test_docs_commands.py, runs them); the CLI reference
(docs/reference/cli.md) shows every command.
"""

from __future__ import annotations

import argparse
import re
import shlex
import textwrap
from pathlib import Path

import pytest

from scenecls.cli.main import COMMANDS, build_parser, main
from scenecls.cli.options import EXAMPLES_HEADING, Example, examples_epilog

REPO = Path(__file__).resolve().parent.parent
NAMES = list(COMMANDS)


def _help(name: str, capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exit_:
        main([name, "--help"])
    assert exit_.value.code == 0
    return capsys.readouterr().out


def _sub_parser(name: str) -> argparse.ArgumentParser:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[name]


@pytest.mark.parametrize("columns", ["50", "200"])
@pytest.mark.parametrize("name", NAMES)
def test_help_ends_with_the_examples_as_written(
    name: str, columns: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The help ends with ``examples:`` and, per example, its comment and its command,
    each on one line however narrow the terminal (commands are never re-wrapped)."""
    monkeypatch.setenv("COLUMNS", columns)
    text = _help(name, capsys)
    examples = COMMANDS[name].examples
    assert 2 <= len(examples) <= 3, f"{name}: give two or three examples"
    block = text[text.rindex("\n" + EXAMPLES_HEADING + "\n") + 1 :]
    assert block.rstrip("\n") == examples_epilog(examples)
    lines = [ln for ln in block.splitlines()[1:] if ln]
    assert lines == [ln for e in examples for ln in (f"  # {e.what}", f"  {e.command}")]


@pytest.mark.parametrize("name", NAMES)
def test_descriptions_still_wrap(
    name: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only the examples keep their lines: the description wraps to the terminal."""
    monkeypatch.setenv("COLUMNS", "60")
    text = _help(name, capsys)
    description = _sub_parser(name).description
    assert description
    assert textwrap.fill(" ".join(description.split()), 58) in text


@pytest.mark.parametrize("name", NAMES)
def test_examples_are_commands_of_their_command(name: str) -> None:
    """Each example is one line, ``scenecls NAME ...``, that the parser accepts as that
    command; its comment is one short line."""
    for example in COMMANDS[name].examples:
        assert isinstance(example, Example)
        assert "\n" not in example.command and "\n" not in example.what
        assert re.fullmatch(rf"scenecls {name}( .*)?", example.command), example.command
        assert example.what.strip() == example.what and not example.what.startswith("#")
        assert 0 < len(example.what) <= 76, f"{name}: shorten {example.what!r}"
        argv = shlex.split(example.command)[1:]
        args = build_parser().parse_args(argv)  # a usage error raises UsageError
        assert args.command == name


@pytest.mark.parametrize("name", NAMES)
def test_examples_run_in_the_docs_world(name: str) -> None:
    """At least two examples run (the docs runner runs them); at most one cannot, and it
    says why; a service says where it answers, on a port of its own; the default model is
    in the world, so a runnable example names no --model."""
    examples = COMMANDS[name].examples
    runnable = [e for e in examples if e.not_run is None]
    skipped = [e for e in examples if e.not_run is not None]
    assert len(runnable) >= 2, f"{name}: give at least two examples that run"
    assert len(skipped) <= 1, f"{name}: at most one example that does not run"
    for example in skipped:
        assert example.not_run and example.not_run.strip(), f"{name}: say why it is not run"
        assert example.background is None
    for example in runnable:
        assert "--model" not in shlex.split(example.command)
    urls = [e.background for e in examples if e.background is not None]
    for url in urls:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/\S*", url), url
    ports = [url.split(":")[2].split("/")[0] for url in urls]
    assert len(set(ports)) == len(ports), f"{name}: services run together: one port each"
    for example in examples:
        if example.background is not None:
            port = example.background.split(":")[2].split("/")[0]
            given = re.search(r"--port (\d+)", example.command)
            assert (given.group(1) if given else "8000") == port, example.command


def test_every_example_that_is_not_run_says_why() -> None:
    for name, command in COMMANDS.items():
        for example in command.examples:
            if example.not_run is not None:
                assert example.not_run.strip(), f"{name}: {example.command}: empty reason"


def test_examples_epilog_format() -> None:
    text = examples_epilog(
        [Example("label a video", "scenecls run video.mp4"), Example("two", "scenecls run 0")]
    )
    assert text == (
        "examples:\n  # label a video\n  scenecls run video.mp4\n\n  # two\n  scenecls run 0"
    )


def test_the_cli_reference_shows_every_command() -> None:
    """docs/reference/cli.md has a section per command: its examples and its options."""
    page = (REPO / "docs" / "reference" / "cli.md").read_text(encoding="utf-8")
    for name in COMMANDS:
        assert f"\n## scenecls {name}\n" in page, name
        assert f"```{{cli-examples}} {name}\n" in page, name
        assert f"\n:path: {name}\n" in page, name
