"""Every command in the README and the docs runs as written (docs/writing-docs.md).

Each page runs, block after block, in a fresh world (tests/docs_world.py): the sample
clips and pictures, and the default model in the caches (tiny, random weights). A block
that cannot run here carries its reason (``<!-- not run: ... -->``) and is listed in the
summary; no copyable block escapes: a fence without a language, or a ```sh/```console
one, fails the collection test. The examples that end each ``scenecls COMMAND --help``
run the same way, all commands in one world, in the order of ``scenecls --help``.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from scenecls.cli.main import COMMANDS

from .docs_blocks import REPO, blocks, documents, without_installs
from .docs_world import build_base, make_world, world_env

SHARED = REPO.parent / "shared"
ALL_BLOCKS = [b for doc in documents() for b in blocks(doc)]
RUN_PAGES = sorted({b.path for b in ALL_BLOCKS if b.runs}, key=lambda p: str(p))


@pytest.fixture(scope="session")
def world_base(tiny_hf: Path, tiny_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The template world, built once."""
    if not (SHARED / "media").is_dir():
        pytest.fail(f"{SHARED}/media is missing: the docs run on the sample videos", pytrace=False)
    return build_base(tmp_path_factory.mktemp("world-base"), SHARED / "media", tiny_hf, tiny_bundle)


@pytest.fixture
def world(world_base: Path, tmp_path: Path) -> Path:
    return make_world(world_base, tmp_path / "world", SHARED)


def _tail(text: str, n: int = 3000) -> str:
    return text if len(text) <= n else "..." + text[-n:]


class Runner:
    """Runs blocks in order in one world, carrying exported variables from block to block
    and keeping background services until :meth:`close`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.env = world_env(root)
        self.state = root / "exported.sh"
        self.background: list[tuple[str, subprocess.Popen[bytes], Path]] = []
        self.display: object | None = None
        self.report: list[str] = []

    def _display_env(self) -> dict[str, str]:
        if self.display is None:
            from .xdisplay import Xvfb, need_x_tools

            need_x_tools()
            self.display = Xvfb()
        return {"DISPLAY": self.display.display}  # type: ignore[attr-defined]

    def _script(self, code: str, *, background: bool) -> str:
        load = (
            f"if [ -f {shlex.quote(str(self.state))} ]; then . {shlex.quote(str(self.state))}; fi\n"
        )
        if background:
            # one command, exec'd: the signal at the end reaches scenecls itself
            command = " ".join(ln for ln in code.splitlines() if not ln.lstrip().startswith("#"))
            return f"set -e\n{load}exec {command.strip()}\n"
        save = f"export -p > {shlex.quote(str(self.state))}\n"
        return f"set -eo pipefail\n{load}{code}\n{save}"

    def run(self, where: str, language: str, code: str, *, exit_code: int = 0,
            background: str | None = None, display: bool = False, checkout: bool = False,
            timeout: float = 120.0) -> str:  # fmt: skip
        """Run one block; fails the test with its output when it does not do as marked.
        Returns what it printed (stdout, then stderr); a background block returns ""."""
        env = dict(self.env)
        if display:
            env.update(self._display_env())
        cwd = REPO if checkout else self.root / "checkout"
        if language == "python":
            argv = [sys.executable, "-c", code]
            if background:
                pytest.fail(f"{where}: a python block cannot run in the background")
        else:
            code, installs = without_installs(code)
            self.report += [f"{where}: install step left to .ci/run: {s}" for s in installs]
            argv = ["bash", "-c", self._script(code, background=bool(background))]
        if background:
            log = self.root / f"background-{len(self.background)}.log"
            with log.open("wb") as out:
                proc = subprocess.Popen(
                    argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT
                )
            self.background.append((where, proc, log))
            self._wait_up(where, background, proc, log, timeout)
            return ""
        started = time.monotonic()
        try:
            done = subprocess.run(
                argv, cwd=cwd, env=env, capture_output=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired as e:
            out = (e.stdout or b"").decode(errors="replace") + (e.stderr or b"").decode(
                errors="replace"
            )
            pytest.fail(
                f"{where}: still running after {timeout:.0f} s\n{code}\n{_tail(out)}", pytrace=False
            )
        out = done.stdout.decode(errors="replace") + done.stderr.decode(errors="replace")
        if done.returncode != exit_code:
            pytest.fail(
                f"{where}: exit {done.returncode}, expected {exit_code}\n--- block:\n{code}\n"
                f"--- output:\n{_tail(out)}",
                pytrace=False,
            )
        self.report.append(f"{where}: ran in {time.monotonic() - started:.1f} s")
        return out

    @staticmethod
    def _wait_up(
        where: str, url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float
    ) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"{where}: exited ({proc.returncode}) before {url} answered\n"
                            f"{_tail(log.read_text(errors='replace'))}", pytrace=False)  # fmt: skip
            try:
                with urllib.request.urlopen(url, timeout=2):
                    return
            except urllib.error.HTTPError:
                return  # it answers (401, 404...): it is up
            except OSError:
                time.sleep(0.3)
        pytest.fail(f"{where}: {url} did not answer within {timeout:.0f} s\n"
                    f"{_tail(log.read_text(errors='replace'))}", pytrace=False)  # fmt: skip

    def close(self, *, check: bool) -> None:
        """Stop the background services with SIGTERM; with ``check``, each must exit 0."""
        failures = []
        for where, proc, log in reversed(self.background):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                code = proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                code = None
            if check and code != 0:
                failures.append(f"{where}: stopped with SIGTERM, it exited {code} (expected 0)\n"
                                f"{_tail(log.read_text(errors='replace'))}")  # fmt: skip
        self.background.clear()
        if self.display is not None:
            self.display.close()  # type: ignore[attr-defined]
            self.display = None
        if failures:
            pytest.fail("\n".join(failures), pytrace=False)


@contextlib.contextmanager
def running(root: Path) -> Iterator[Runner]:
    runner = Runner(root)
    ok = False
    try:
        yield runner
        ok = True
    finally:
        runner.close(check=ok)
        print("\n".join(runner.report))


def test_every_block_is_run_or_says_why_not() -> None:
    """Each fence has a language; ```bash and ```python blocks run unless a marker above
    says why not; markers are ones the runner knows."""
    problems = [f"{b.where}: {p}" for b in ALL_BLOCKS for p in b.problems]
    assert not problems, "\n".join(problems)
    copyable = [b for b in ALL_BLOCKS if b.language in {"bash", "python"}]
    skipped = [b for b in copyable if not b.runs]
    assert copyable, "no command blocks found: is the collection broken?"
    for block in skipped:
        print(f"not run: {block.where}: {block.not_run}")
    print(f"{len(copyable) - len(skipped)} of {len(copyable)} command blocks run")


@pytest.mark.parametrize("page", RUN_PAGES, ids=[str(p.relative_to(REPO)) for p in RUN_PAGES])
def test_page_commands_run(page: Path, world: Path) -> None:
    """The page's command blocks, in order, in a fresh world."""
    shown: list[str] = []  # error lines of the page's last ```text block
    with running(world) as runner:
        for block in blocks(page):
            if block.language == "text":
                shown = [ln.strip() for ln in block.code.splitlines() if ERROR in ln]
            if not block.runs:
                if block.not_run:
                    runner.report.append(f"{block.where}: not run: {block.not_run}")
                continue
            out = runner.run(block.where, block.language, block.code, exit_code=block.exit_code,
                             background=block.background, display=block.display,
                             checkout=block.checkout, timeout=block.timeout)  # fmt: skip
            if block.exit_code != 0:
                check_failure_output(block.where, out, shown, usage=block.exit_code == 2)


ERROR = "scenecls: error:"


def check_failure_output(where: str, out: str, shown: list[str], *, usage: bool = True) -> None:
    """A command that fails prints no traceback, and a wrong command line (``usage``, exit
    2) says why in one ``scenecls: error:`` line. When the page shows error lines (a
    ```text block above the command), the line it printed is one of them, word for word.
    (A run-time failure of some inputs among many lists them instead: no such line.)"""
    errors = [ln.strip() for ln in out.splitlines() if ln.startswith(ERROR)]
    assert "Traceback" not in out, f"{where}: a traceback:\n{_tail(out)}"
    if usage or errors:
        assert len(errors) == 1, f"{where}: expected one '{ERROR}' line:\n{_tail(out)}"
    if shown and errors:
        assert errors[0] in shown, (
            f"{where}: the page shows\n  " + "\n  ".join(shown)
            + f"\nabove this command, which printed\n  {errors[0]}"
        )  # fmt: skip


def test_help_examples_run(world: Path) -> None:
    """The examples that end each ``scenecls COMMAND --help``, all in one world."""
    with running(world) as runner:
        for name, command in COMMANDS.items():
            for i, example in enumerate(command.examples):
                where = f"scenecls {name} --help, example {i + 1}"
                if example.not_run:
                    runner.report.append(f"{where}: not run: {example.not_run}")
                    continue
                runner.run(where, "bash", example.command, background=example.background)
            runner.close(check=True)  # a command's service ends before the next command


def test_the_runner_fails_a_failing_block(world: Path) -> None:
    """The runner is not a rubber stamp: a wrong exit status, and a background service
    that never answers, fail."""
    with running(world) as runner, pytest.raises(pytest.fail.Exception, match="exit 2, expected 0"):
        runner.run("bad", "bash", "scenecls run missing.mp4 --labels a,b\n")
    with running(world) as runner:
        out = runner.run("bad", "bash", "scenecls run missing.mp4 --labels a,b\n", exit_code=2)
        check_failure_output("bad", out, [])
        with pytest.raises(AssertionError, match="the page shows"):
            check_failure_output("bad", out, ["scenecls: error: some other message"])
    with running(world) as runner:
        runner.run("exported", "bash", "export SECRET=abc\n")
        runner.run("sees it", "bash", 'test "$SECRET" = abc\n')
        with pytest.raises(pytest.fail.Exception, match="before"):
            runner.run("dies", "bash", "scenecls serve missing.mp4 --labels a,b\n",
                       background="http://127.0.0.1:9/healthz", timeout=30)  # fmt: skip
        runner.background.clear()
    assert os.environ.get("HF_HUB_OFFLINE") == "1"


def test_blocks_are_read_as_markdown_reads_them(tmp_path: Path) -> None:
    """Fences, languages and markers as a reader's Markdown sees them: inline code that
    starts a line is no fence, a fence needs a language, a marker needs its reason."""
    page = tmp_path / "page.md"
    page.write_text(
        "- ```` ```bash ````: inline code, not a fence\n\n"
        "<!-- run: exit 2; timeout 5 -->\n```bash\nscenecls run missing.mp4\n```\n\n"
        "<!-- not run: -->\n```python\nprint(1)\n```\n\n"
        "```\nno language\n```\n\n```{toctree}\nintro\n```\n",
        encoding="utf-8",
    )
    found = blocks(page)
    assert [b.language for b in found] == ["bash", "python", ""]
    assert (found[0].exit_code, found[0].timeout, found[0].problems) == (2, 5.0, [])
    assert found[0].code == "scenecls run missing.mp4\n"
    assert not found[1].runs and "reason" in found[1].problems[0]
    assert "needs a language" in found[2].problems[0]
