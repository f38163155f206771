"""Sphinx extension: the ``cli-examples`` directive of the CLI reference.

``cli-examples COMMAND`` shows what ``scenecls COMMAND --help`` says before its options
(the command's description) and the examples that end it, read from
``scenecls.cli.main.COMMANDS[COMMAND].examples``, as one shell block: a ``#`` comment
over each command, as in the help. sphinx-argparse prints a sub-command's epilog as a
paragraph, which runs the examples together, so the reference shows each command with
``:path: COMMAND``, ``:nodescription:`` and ``:noepilog:`` after this directive.

Option names must read as typed, so the command descriptions and sphinx-argparse's
option lists are kept out of smart quotes (which would turn ``--out`` into an en dash
and ``'`` into curly quotes).
"""

from __future__ import annotations

import argparse
from typing import Any

from docutils import nodes
from sphinx.transforms import SphinxTransform
from sphinx.util.docutils import SphinxDirective


def command_parser(name: str) -> argparse.ArgumentParser:
    """The parser of ``scenecls NAME``, as ``build_parser`` makes it."""
    from scenecls.cli.main import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[name]


class CliExamples(SphinxDirective):
    """``cli-examples COMMAND``: the command's description, then its examples."""

    required_arguments = 1
    has_content = False

    def run(self) -> list[nodes.Node]:
        from scenecls.cli.main import COMMANDS

        name = self.arguments[0]
        if name not in COMMANDS:
            raise self.error(f"cli-examples: no command {name!r}: one of {', '.join(COMMANDS)}")
        found: list[nodes.Node] = []
        description = command_parser(name).description
        if description:
            paragraph = nodes.paragraph(text=" ".join(description.split()))
            paragraph["support_smartquotes"] = False
            found.append(paragraph)
        examples = COMMANDS[name].examples
        if examples:
            code = "\n\n".join(f"# {e.what}\n{e.command}" for e in examples)
            block = nodes.literal_block(code, code, language="bash")
            self.set_source_info(block)
            found += [nodes.rubric(text="Examples"), block]
        return found


class OptionsAsTyped(SphinxTransform):
    """Keep option lists (sphinx-argparse's options and their help) out of smart quotes."""

    default_priority = 700  # before SphinxSmartQuotes (750)

    def apply(self, **kwargs: Any) -> None:
        for option_list in self.document.findall(nodes.option_list):
            option_list["support_smartquotes"] = False


def setup(app: Any) -> dict[str, Any]:
    app.add_directive("cli-examples", CliExamples)
    app.add_transform(OptionsAsTyped)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
