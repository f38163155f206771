"""The Ray engine: the archive job on a Ray cluster (or a local Ray instance).

One actor per worker loads the model once; the driver hands each idle actor the next
video (largest first), gathers results with ``ray.wait`` as they finish and writes the
manifest itself. When the cluster has GPUs, every actor gets a share of one
(``num_gpus``), so the model runs on CUDA there. Inputs and the output folder must be
reachable under the same paths on every node (shared storage), and every node needs
scenecls installed and the model available (a bundle folder at the same path, or the
hub cache).

Ray is imported only here, and only when this engine is chosen.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import SceneclsError, UsageError
from ..interrupts import Interrupted
from .job import VideoTask, failed_entry
from .worker import WorkerConfig, WorkerState, worker_environment

log = logging.getLogger("scenecls")

TICK = 0.2
START_WAIT_S = 600.0  # for the first actor to load the model (exporting it on first use)
MORE_WAIT_S = 60.0  # then for the others; those not up by then are given up


def import_ray() -> Any:
    try:
        import ray
    except ImportError as e:
        raise UsageError(
            "--engine ray needs Ray, which is not installed: pip install 'scenecls[ray]'"
        ) from e
    return ray


@dataclass(frozen=True)
class ActorPlan:
    """``count`` actors, each reserving ``num_cpus`` and ``num_gpus`` (fractions share
    a device); ``threads``: numerical threads per actor."""

    count: int
    num_cpus: float
    num_gpus: float
    threads: int


def plan_actors(nodes: Sequence[dict[str, float]], workers: int | None) -> ActorPlan:
    """How many actors to start and what each reserves, from the resources of the alive
    ``nodes`` (``{"CPU": 16, "GPU": 2, ...}`` each).

    Without GPUs: one actor per CPU by default; with ``workers``, the CPUs shared out
    between them (at most one node's worth each). With GPUs: four actors per GPU by
    default (decoding and preprocessing are on the CPU, so one process rarely keeps a GPU
    busy), each with an equal share of a GPU and of the CPUs.
    """
    cpus = sum(n.get("CPU", 0.0) for n in nodes)
    gpus = sum(n.get("GPU", 0.0) for n in nodes)
    biggest = max((n.get("CPU", 0.0) for n in nodes), default=0.0)
    if cpus < 1:
        raise SceneclsError("the Ray cluster has no CPUs available")
    if workers is not None and workers < 1:
        raise UsageError(f"--workers must be at least 1, not {workers}")
    if gpus > 0:
        count = workers or max(1, int(min(cpus, 4 * gpus)))
        num_gpus = min(1.0, math.floor(100 * gpus / count) / 100) or 0.01
    else:
        count = workers or int(cpus)
        num_gpus = 0.0
    share = cpus / count
    num_cpus = min(float(math.floor(share)) if share >= 1 else round(share, 2), biggest) or 0.01
    return ActorPlan(count, num_cpus, num_gpus, max(1, int(num_cpus)))


class RayWorker:
    """The actor: a :class:`WorkerState` whose methods Ray calls remotely (two at a time,
    so ``stop`` and ``progress`` are answered while a video is being annotated)."""

    def __init__(self, config: WorkerConfig) -> None:
        self.state = WorkerState(config)

    def describe(self) -> dict[str, Any]:
        return self.state.describe()

    def annotate(self, task: VideoTask) -> dict[str, Any]:
        return self.state.annotate(task)

    def progress(self) -> tuple[int, float] | None:
        return self.state.progress()

    def stop(self) -> None:
        self.state.stop.set()


class RayEngine:
    """Runs the job on Ray: ``address`` of a running cluster (``auto``, ``HOST:6379``,
    ``ray://HOST:10001``) or None to use the instance this process already joined, else
    to start a local one. ``workers``: actors to start (default: see
    :func:`plan_actors`)."""

    name = "ray"

    def __init__(
        self,
        config: WorkerConfig,
        workers: int | None = None,
        address: str | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        self.ray = import_ray()
        self.config = config
        self.address = address
        self.requested = workers
        self.workers = 0
        self.plan: ActorPlan | None = None
        self._stop_event = stop or threading.Event()
        self._owns_ray = False
        self._actors: list[Any] = []
        self._busy: dict[Any, int] = {}  # actor -> task index
        self._fractions: dict[int, float] = {}
        self._stopping = False
        self._next_poll = 0.0

    def _connect(self) -> None:
        ray = self.ray
        if ray.is_initialized():
            return
        try:
            ray.init(
                address=self.address,
                include_dashboard=False,
                logging_level=logging.ERROR,
                log_to_driver=self.config.log_level <= logging.DEBUG,
            )
        except (ConnectionError, RuntimeError, ValueError, TimeoutError) as e:
            where = f"at {self.address}" if self.address else "here"
            hint = (
                "is 'ray start --head' running there, and is the address HOST:6379 or auto?"
                if self.address
                else "check that Ray works here (ray start --head), or use --engine local"
            )
            raise SceneclsError(f"cannot start or join a Ray cluster {where}: {e}: {hint}") from e
        self._owns_ray = True

    def start(self) -> list[dict[str, Any]]:
        ray = self.ray
        self._connect()
        nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
        plan = plan_actors(nodes, self.requested)
        self.plan = plan
        env = worker_environment(plan.threads, self.config.env)
        config = WorkerConfig(self.config.options, self.config.log_level, env)
        actor_class = ray.remote(RayWorker).options(
            num_cpus=plan.num_cpus,
            num_gpus=plan.num_gpus,
            max_concurrency=2,
            scheduling_strategy="SPREAD",
            runtime_env={"env_vars": env},
        )
        self._actors = [actor_class.remote(config) for _ in range(plan.count)]
        log.debug("Ray plan: %s", plan)
        refs = {a.describe.remote(): a for a in self._actors}
        reports: dict[Any, dict[str, Any]] = {}
        t0 = time.monotonic()
        first_at: float | None = None
        while refs:
            if self._stop_event.is_set():
                raise Interrupted("interrupted")
            ready, _ = ray.wait(list(refs), num_returns=len(refs), timeout=TICK)
            for ref in ready:
                actor = refs.pop(ref)
                try:
                    reports[actor] = ray.get(ref)
                except self.ray.exceptions.RayError as e:
                    reports[actor] = {"error": " ".join(str(e).split())[:400]}
                first_at = first_at or time.monotonic()
            now = time.monotonic()
            if refs and (
                (first_at is not None and now - first_at > MORE_WAIT_S)
                or (first_at is None and now - t0 > START_WAIT_S)
            ):
                log.warning(
                    "%d Ray worker(s) did not start in time (not enough free CPUs or GPUs "
                    "in the cluster?); going on without them",
                    len(refs),
                )
                for actor in refs.values():
                    ray.kill(actor)
                break
        self._actors = [a for a in self._actors if "identity" in reports.get(a, {})]
        self.workers = len(self._actors)
        return list(reports.values())

    def run(self, tasks: Sequence[VideoTask]) -> Iterator[dict[str, Any] | None]:
        ray = self.ray
        pending = deque(tasks)
        idle = list(self._actors)
        inflight: dict[Any, tuple[Any, VideoTask]] = {}
        retried: set[int] = set()
        while pending or inflight:
            while idle and pending and not self._stopping:
                actor, task = idle.pop(0), pending.popleft()
                inflight[actor.annotate.remote(task)] = (actor, task)
                self._busy[actor] = task.index
            if self._stopping:
                pending.clear()
            if not inflight:
                break
            ready, _ = ray.wait(list(inflight), num_returns=1, timeout=TICK)
            self._poll_progress()
            if not ready:
                yield None
                continue
            for ref in ready:
                actor, task = inflight.pop(ref)
                self._busy.pop(actor, None)
                self._fractions.pop(task.index, None)
                try:
                    result = ray.get(ref)
                except ray.exceptions.RayActorError as e:  # the actor (or its node) died
                    self._actors.remove(actor)
                    if task.index not in retried and not self._stopping:
                        retried.add(task.index)
                        pending.appendleft(task)
                        log.warning("a Ray worker died (%s); its video goes to another", e)
                    else:
                        yield failed_entry(task, f"its Ray worker died: {e}")
                    if not self._actors:
                        raise SceneclsError(
                            "every Ray worker died (out of memory, or nodes lost): check "
                            "the cluster (ray status) and run again; finished videos are kept"
                        ) from e
                    continue
                except ray.exceptions.RayError as e:
                    result = failed_entry(task, f"Ray: {e}")
                idle.append(actor)
                yield result

    def _poll_progress(self) -> None:
        now = time.monotonic()
        if now < self._next_poll or not self._busy:
            return
        self._next_poll = now + 0.5
        refs = [a.progress.remote() for a in self._busy]
        try:
            answers = self.ray.get(refs, timeout=1.0)
        except self.ray.exceptions.RayError:
            return
        for answer in answers:
            if answer is not None:
                self._fractions[answer[0]] = answer[1]

    def fractions(self) -> dict[int, float]:
        return dict(self._fractions)

    def stop(self) -> None:
        self._stopping = True
        for actor in list(self._busy):
            actor.stop.remote()

    def close(self) -> None:
        ray = self.ray
        for actor in self._actors:
            try:
                ray.kill(actor)
            except Exception:  # already gone
                log.debug("could not kill a Ray worker", exc_info=True)
        self._actors = []
        if self._owns_ray:
            ray.shutdown()
            self._owns_ray = False
