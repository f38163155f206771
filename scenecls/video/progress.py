"""Progress bars on stderr (tqdm), shown only on a terminal so logs and pipes stay clean.

While a bar is open, the ``scenecls`` logger writes through tqdm, so a warning appears
above the bar instead of breaking it.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from typing import Any, TextIO

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

log = logging.getLogger("scenecls")


class ProgressBar:
    """A tqdm bar with the conventions of every scenecls command: on ``stream`` (stderr)
    only when ``enabled`` and the stream is a terminal, redrawn at most 5 times a second,
    and logging routed around it. Subclasses turn their own counters into the bar."""

    def __init__(
        self, enabled: bool = True, stream: TextIO | None = None, **bar_options: Any
    ) -> None:
        self.stream = stream or sys.stderr
        self.enabled = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.bar: tqdm | None = None
        self._logging = contextlib.ExitStack()
        if self.enabled:
            self.bar = tqdm(
                file=self.stream, mininterval=0.2, dynamic_ncols=True, leave=False, **bar_options
            )
            self._logging.enter_context(logging_redirect_tqdm(loggers=[log]))

    def close(self) -> None:
        """Remove the bar and give the logger its own handlers back."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        self._logging.close()


class Progress(ProgressBar):
    """``frames:  32%|███▏      | 120/377 [00:02<00:05, 45.1 frames/s]`` for one video
    (count, elapsed time and rate when the frame count is unknown)."""

    def __init__(self, enabled: bool = True, stream: TextIO | None = None) -> None:
        super().__init__(enabled, stream, desc="frames", unit=" frames", unit_scale=False)

    def update(self, frames: int, total: int | None = None, force: bool = False) -> None:
        """Report ``frames`` done out of ``total`` (None: unknown)."""
        if self.bar is None:
            return
        if total and self.bar.total != total:
            self.bar.total = total
        self.bar.update(frames - self.bar.n)
        if force:
            self.bar.refresh()
