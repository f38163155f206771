"""Stopping on SIGINT/SIGTERM within two seconds, whatever the command is doing.

A command runs inside a :class:`SignalGuard`. The first signal sets ``guard.stop``:
the pipeline sees it between batches and finishes its outputs. Long native calls
(exporting, loading a model) run through :meth:`SignalGuard.call` on a worker thread,
so the main thread stays free to notice the signal and give up on them at once. If the
outputs are not finished within ``grace`` seconds, or a second signal arrives, the
process exits immediately; files still being written under temporary names (registered
with :func:`partial_file`) are removed first, so no half-written output is ever left
behind.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from .errors import SceneclsError

log = logging.getLogger("scenecls")

T = TypeVar("T")

_partials: set[Path] = set()
_partials_lock = threading.Lock()


class Interrupted(SceneclsError):
    """The user stopped the command (Ctrl-C or SIGTERM). Exit code 130."""

    exit_code = 130


@contextlib.contextmanager
def partial_file(path: Path) -> Iterator[Path]:
    """Register ``path`` (a temporary file or folder being written) for removal if the
    process is forced to exit before the ``with`` block ends."""
    path = Path(path)
    with _partials_lock:
        _partials.add(path)
    try:
        yield path
    finally:
        with _partials_lock:
            _partials.discard(path)


def track_partial(path: Path) -> None:
    """Register ``path`` as being written (see :func:`partial_file`)."""
    with _partials_lock:
        _partials.add(Path(path))


def untrack_partial(path: Path) -> None:
    """``path`` is complete (renamed into place) or already removed."""
    with _partials_lock:
        _partials.discard(Path(path))


def remove_partials() -> None:
    """Remove every registered temporary output (before a forced exit)."""
    with _partials_lock:
        paths = list(_partials)
        _partials.clear()
    for p in paths:
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                p.unlink()


def force_exit(code: int = 130) -> None:
    """Leave now: remove temporary outputs, say so in one line, exit with ``code``."""
    remove_partials()
    with contextlib.suppress(Exception):
        sys.stdout.flush()
    with contextlib.suppress(Exception):
        sys.stderr.write("scenecls: interrupted\n")
        sys.stderr.flush()
    os._exit(code)


class SignalGuard:
    """Handles SIGINT and SIGTERM while a command runs (a context manager; handlers are
    installed only in the main thread, and restored on exit).

    ``stop`` is set by the first signal; ``grace``: seconds the command then has to
    finish its outputs before the process exits by force; a second signal forces the
    exit at once.
    """

    def __init__(self, grace: float = 1.5) -> None:
        self.grace = grace
        self.stop = threading.Event()
        self._previous: dict[int, object] = {}
        self._timer: threading.Timer | None = None

    def __enter__(self) -> SignalGuard:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._on_signal)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._timer is not None:
            self._timer.cancel()
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]
        self._previous.clear()

    def _on_signal(self, signum: int, _frame: object) -> None:
        if self.stop.is_set():
            force_exit(128 + signum)  # second signal: leave now
        self.stop.set()
        log.warning("stopping: finishing the outputs (press Ctrl-C again to quit at once)")
        self._timer = threading.Timer(self.grace, force_exit, args=(130,))
        self._timer.daemon = True
        self._timer.start()

    def check(self) -> None:
        """Raise :class:`Interrupted` if a signal has arrived."""
        if self.stop.is_set():
            raise Interrupted("interrupted")

    def call(self, fn: Callable[..., T], *args: object, **kwargs: object) -> T:
        """``fn(*args, **kwargs)`` on a worker thread, returning its result or raising its
        exception; raises :class:`Interrupted` as soon as a signal arrives (the worker
        is abandoned: it dies with the process, and its temporary files are removed)."""
        self.check()
        box: dict[str, object] = {}
        done = threading.Event()

        def work() -> None:
            try:
                box["result"] = fn(*args, **kwargs)
            except BaseException as e:  # re-raised in the caller
                box["error"] = e
            finally:
                done.set()

        worker = threading.Thread(target=work, name="scenecls-work", daemon=True)
        worker.start()
        while not done.wait(0.05):
            if self.stop.is_set():
                # the worker may be deep in native code that cannot be cancelled: end
                # the process now rather than wait for it or let it race the exit
                force_exit(130)
        if "error" in box:
            raise box["error"]  # type: ignore[misc]
        return box["result"]  # type: ignore[return-value]


def guard_of(args: object) -> SignalGuard:
    """The :class:`SignalGuard` the CLI put on ``args`` (a fresh, uninstalled one when a
    command function is called directly, as tests do)."""
    guard = getattr(args, "guard", None)
    return guard if isinstance(guard, SignalGuard) else SignalGuard()
