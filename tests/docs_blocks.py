"""The code blocks of the README and the docs, and how each is to be run.

docs/writing-docs.md is the contract: ```` ```bash ```` and ```` ```python ```` blocks are
run; any other language is shown only; a fence with no language is refused; an HTML
comment on the line above a fence says how to run the block, or why it is not run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RUN_LANGUAGES = {"bash", "python"}
# what a reader would reach for instead of ```bash: refused, so that nothing copyable
# escapes the runner
REFUSED_LANGUAGES = {"sh", "shell", "console", "zsh", "shell-session", "py", "python3"}
DEFAULT_TIMEOUT = 120.0

_FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
_MARK = re.compile(r"^\s*<!--\s*(?P<kind>not run|run)\s*:\s*(?P<text>.*?)\s*-->\s*$")


@dataclass
class Block:
    """One fenced code block of a Markdown file."""

    path: Path
    line: int  # 1-based line of the opening fence
    language: str
    code: str
    not_run: str | None = None  # the reason, when the block is not run
    exit_code: int = 0
    background: str | None = None  # URL that answers once it is up
    display: bool = False
    checkout: bool = False
    timeout: float = DEFAULT_TIMEOUT
    problems: list[str] = field(default_factory=list)

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(REPO)}:{self.line}"

    @property
    def runs(self) -> bool:
        return self.language in RUN_LANGUAGES and self.not_run is None


def documents() -> list[Path]:
    """The README and every Markdown page of the docs site."""
    docs = REPO / "docs"
    pages = sorted(p for p in docs.rglob("*.md") if "_build" not in p.relative_to(docs).parts)
    return [REPO / "README.md", *pages]


def _apply_marker(block: Block, kind: str, text: str) -> None:
    if kind == "not run":
        if not text:
            block.problems.append("'not run:' needs its reason (a camera, a GPU, the internet)")
        block.not_run = text or "?"
        return
    for part in (p.strip() for p in text.split(";")):
        word, _, arg = part.partition(" ")
        arg = arg.strip()
        if word == "exit" and arg.isdigit():
            block.exit_code = int(arg)
        elif word == "background" and arg.startswith("http"):
            block.background = arg
        elif word == "display" and not arg:
            block.display = True
        elif word == "checkout" and not arg:
            block.checkout = True
        elif word == "timeout" and re.fullmatch(r"\d+(\.\d+)?", arg):
            block.timeout = float(arg)
        else:
            block.problems.append(f"unknown marker {part!r} (docs/writing-docs.md lists them)")


def blocks(path: Path) -> list[Block]:
    """The fenced blocks of ``path``, in order, with their markers.

    MyST directives (```` ```{toctree} ````) are not code and are left out.
    """
    lines = path.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m or (m["fence"][0] == "`" and "`" in m["info"]):
            # (a backtick fence's info has no backticks: ```` ```bash ```` is inline code)
            i += 1
            continue
        indent, fence, info = m["indent"], m["fence"], m["info"].strip()
        end = i + 1
        while end < len(lines):
            close = lines[end].strip()
            if close.startswith(fence[0]) and set(close) == {fence[0]} and len(close) >= len(fence):
                break
            end += 1
        body = [
            ln[len(indent) :] if ln.startswith(indent) else ln.lstrip() for ln in lines[i + 1 : end]
        ]
        if not info.startswith("{"):
            block = Block(
                path, i + 1, info.split()[0].lower() if info else "", "\n".join(body) + "\n"
            )
            if not block.language:
                block.problems.append(
                    "a fence needs a language: bash, python, or what it shows (text, toml)"
                )
            elif block.language in REFUSED_LANGUAGES:
                block.problems.append(
                    f"```{block.language}: write ```bash or ```python, which the tests run"
                )
            previous = lines[i - 1] if i > 0 else ""
            mark = _MARK.match(previous)
            if mark:
                _apply_marker(block, mark["kind"], mark["text"])
                if block.language not in RUN_LANGUAGES:
                    block.problems.append(
                        f"a marker above a ```{block.language} block, which is not run"
                    )
            elif "<!--" in previous and ("run" in previous):
                block.problems.append(f"marker not understood: {previous.strip()}")
            found.append(block)
        i = end + 1
    return found


_PIP = re.compile(r"(?:^|(?<=&&)|(?<=;))\s*pip3? install [^&;\n]*(?:&&|;|$)", re.M)


def without_installs(code: str) -> tuple[str, list[str]]:
    """``code`` with its ``pip install`` steps taken out (a test installs nothing: the
    README's install and test commands are run verbatim by .ci/run), and those steps."""
    joined = code.replace("\\\n", " ")
    steps = [s.strip().rstrip("&;").strip() for s in _PIP.findall(joined)]
    return _PIP.sub(" ", joined), steps


def section_blocks(path: Path, heading: str, language: str | None = None) -> list[Block]:
    """The blocks of ``path`` under the heading that starts with ``heading`` (e.g.
    ``"## Teaching from the pass"``), up to the next heading of that level or above, read
    as :func:`blocks` reads them; only those of ``language`` when given. Raises
    ``LookupError`` when the page has no such heading (a test reading a page's example
    says so instead of finding nothing)."""
    level = len(heading) - len(heading.lstrip("#"))
    lines = path.read_text(encoding="utf-8").splitlines()
    start = next((i for i, ln in enumerate(lines) if ln.startswith(heading)), None)
    if start is None:
        raise LookupError(f"{path.relative_to(REPO)} has no heading {heading!r}")
    end = next(
        (i for i in range(start + 1, len(lines))
         if re.match(rf"#{{1,{level}}} ", lines[i])),
        len(lines),
    )  # fmt: skip
    return [
        b for b in blocks(path)
        if start < b.line - 1 < end and (language is None or b.language == language)
    ]  # fmt: skip
