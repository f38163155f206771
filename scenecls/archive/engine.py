"""What the driver needs from an engine (local processes or Ray), and helpers both share."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

from ..errors import SceneclsError
from .job import VideoTask
from .options import ModelIdentity

log = logging.getLogger("scenecls")


class Engine(Protocol):
    """Runs :func:`~scenecls.archive.job.annotate_video` on workers that each load the
    model once.

    - :meth:`start` starts the workers (or the first of them) and returns what each
      reported (:meth:`WorkerState.describe`);
    - :meth:`run` annotates ``tasks`` in the given order and yields each manifest entry as
      its video finishes, and ``None`` about five times a second in between (so the
      driver can redraw progress and notice signals);
    - :meth:`fractions` says how far each video in progress is (task index -> 0..1);
    - :meth:`stop` asks the workers to drop their current videos (they come back as
      ``interrupted``) and hands out no more;
    - :meth:`close` ends the workers.
    """

    name: str
    workers: int

    def start(self) -> list[dict[str, Any]]: ...

    def run(self, tasks: Sequence[VideoTask]) -> Iterator[dict[str, Any] | None]: ...

    def fractions(self) -> dict[int, float]: ...

    def stop(self) -> None: ...

    def close(self) -> None: ...


def identities(reports: Sequence[dict[str, Any]]) -> list[ModelIdentity]:
    """The distinct model identities of the workers that started; raises one line when
    none did (the first worker's error: a damaged bundle, a missing model...)."""
    found: list[ModelIdentity] = []
    for r in reports:
        if "identity" in r:
            ident = ModelIdentity(**r["identity"])
            if ident not in found:
                found.append(ident)
    if not found:
        error = next((r["error"] for r in reports if "error" in r), "no worker started")
        raise SceneclsError(f"the workers could not load the model: {error}")
    failed = [r["error"] for r in reports if "error" in r]
    if failed:
        log.warning(
            "%d worker(s) could not load the model (%s); going on without them",
            len(failed),
            failed[0],
        )
    return found
