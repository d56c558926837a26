"""Run the cells of a grid: local processes (default), Ray for clusters, SLURM via submitit.

Every executor calls the same top-level function, :func:`execute_run`, in a worker: it opens
the run in the store, takes the run's lock, and trains (resuming from the run's checkpoint when
there is one). The store is the only shared state, so a grid can be interrupted at any point
and the same command resumes it: finished runs are skipped, interrupted ones resume.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from scalelab.errors import DataError, ScalelabError

__all__ = [
    "Executor",
    "GridSummary",
    "LocalExecutor",
    "RayExecutor",
    "RunOutcome",
    "SubmititExecutor",
    "execute_run",
    "make_executor",
    "run_grid",
]


@dataclass(frozen=True)
class RunOutcome:
    run_id: str
    status: str  # finished | failed | skipped
    seconds: float = 0.0
    error: str = ""


@dataclass
class GridSummary:
    outcomes: list[RunOutcome] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(o.status == status for o in self.outcomes)

    @property
    def ok(self) -> bool:
        return self.count("failed") == 0


def execute_run(root: str, run_id: str, threads: int | None = None, device: str | None = None) -> RunOutcome:
    """Train one stored run to completion (resuming it if it has a checkpoint).

    A module-level function so it pickles for process pools, Ray and submitit. User errors come
    back as a failed outcome with their one-line message; other exceptions with a traceback.
    """
    t0 = time.perf_counter()
    try:
        import torch

        if threads:
            torch.set_num_threads(threads)
        from scalelab.harness.config import RunConfig
        from scalelab.harness.trainer import train
        from scalelab.store.runs import RunStore

        run = RunStore(root).run(run_id)
        config = RunConfig.from_dict(run.config())
        if device:
            config = config.with_device(device)
        with run.lock():
            train(config, run)
        return RunOutcome(run_id, "finished", time.perf_counter() - t0)
    except ScalelabError as exc:
        return RunOutcome(run_id, "failed", time.perf_counter() - t0, str(exc))
    except Exception:  # a bug or an environment failure: keep the traceback for the user
        return RunOutcome(run_id, "failed", time.perf_counter() - t0, traceback.format_exc(limit=8))


class Executor:
    """Submits :func:`execute_run` calls and yields their outcomes as they finish."""

    name = "base"

    def map(self, root: str, run_ids: Sequence[str]) -> Iterable[RunOutcome]:
        raise NotImplementedError


class LocalExecutor(Executor):
    """Worker processes on this machine (``spawn``, so each worker starts clean)."""

    name = "local"

    def __init__(self, workers: int = 1, device: str | None = None, threads: int = 1) -> None:
        if workers < 1:
            raise DataError(f"--workers must be at least 1, got {workers}")
        if threads < 1:
            raise DataError(f"--threads must be at least 1, got {threads}")
        self.workers = workers
        self.device = device
        # one torch thread per run by default: small models gain little from more, results
        # then do not depend on the machine's core count, and workers do not oversubscribe
        self.threads = threads

    def map(self, root: str, run_ids: Sequence[str]) -> Iterable[RunOutcome]:
        threads = self.threads
        if self.workers == 1:
            for rid in run_ids:  # in this process: no pool start-up cost
                yield execute_run(root, rid, threads, self.device)
            return
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor, as_completed

        with ProcessPoolExecutor(self.workers, mp_context=mp.get_context("spawn")) as pool:
            futures: list[Future[RunOutcome]] = [
                pool.submit(execute_run, root, rid, threads, self.device) for rid in run_ids
            ]
            for fut in as_completed(futures):
                yield fut.result()


class RayExecutor(Executor):
    """Ray tasks, one per run; ``address=None`` starts a local Ray instance.

    On a cluster, pass the head's address (``"auto"`` inside a Ray job) and make the store a
    shared filesystem path visible to every node.
    """

    name = "ray"

    def __init__(self, address: str | None = None, cpus_per_run: float = 1.0, device: str | None = None) -> None:
        try:
            import ray
        except ImportError:
            raise DataError("the ray executor needs Ray: pip install 'scalelab[ray]'") from None
        self._ray = ray
        self.address = address
        self.cpus_per_run = cpus_per_run
        self.device = device

    def map(self, root: str, run_ids: Sequence[str]) -> Iterable[RunOutcome]:
        ray = self._ray
        started_here = not ray.is_initialized()
        if started_here:
            ray.init(address=self.address, include_dashboard=False, log_to_driver=False,
                     num_cpus=None if self.address else os.cpu_count())
        try:
            remote = ray.remote(num_cpus=self.cpus_per_run)(execute_run)
            threads = max(1, int(self.cpus_per_run))
            pending = [remote.remote(root, rid, threads, self.device) for rid in run_ids]
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                yield ray.get(done[0])
        finally:
            if started_here:
                ray.shutdown()


class SubmititExecutor(Executor):
    """SLURM jobs through submitit (``cluster="local"`` runs them as local processes)."""

    name = "slurm"

    def __init__(
        self, folder: str, cluster: str | None = None, device: str | None = None, threads: int = 1, **slurm: Any
    ) -> None:
        try:
            import submitit
        except ImportError:
            raise DataError("the slurm executor needs submitit: pip install 'scalelab[slurm]'") from None
        self.executor = submitit.AutoExecutor(folder=folder, cluster=cluster)
        params = {"timeout_min": 60, **slurm}
        self.executor.update_parameters(**params)
        self.device = device
        self.threads = threads

    def map(self, root: str, run_ids: Sequence[str]) -> Iterable[RunOutcome]:
        jobs = [self.executor.submit(execute_run, root, rid, self.threads, self.device) for rid in run_ids]
        remaining = list(jobs)
        while remaining:
            for job in list(remaining):
                if job.done():
                    remaining.remove(job)
                    try:
                        yield job.result()
                    except Exception as exc:  # the job itself died (killed, out of time)
                        yield RunOutcome(str(job.job_id), "failed", 0.0, f"job {job.job_id} died: {exc}")
            if remaining:
                time.sleep(0.5)


def make_executor(
    name: str, *, workers: int = 1, device: str | None = None, threads: int = 1, **options: Any
) -> Executor:
    if name == "local":
        return LocalExecutor(workers=workers, device=device, threads=threads)
    if name == "ray":
        return RayExecutor(device=device, **options)
    if name == "slurm":
        return SubmititExecutor(device=device, **options)
    raise DataError(f"unknown executor {name!r}; choose local, ray or slurm")


def run_grid(
    runs: Sequence[Any],
    root: str,
    executor: Executor,
    *,
    progress: Callable[[str], None] | None = None,
) -> GridSummary:
    """Register every run in the store, skip the finished ones, run the rest.

    ``runs`` are :class:`scalelab.harness.grid.GridRun`. Every config is validated before any
    run starts, so a bad cell fails the whole grid up front.
    """
    from scalelab.harness.config import RunConfig
    from scalelab.store.runs import RunStore

    say = progress or (lambda _m: None)
    for r in runs:
        RunConfig.from_dict(r.config)  # raises DataError naming the bad field
    store = RunStore(root)
    summary = GridSummary()
    todo = []
    status = {info.run_id: info.status for info in store.runs()}
    for r in runs:
        if status.get(r.run_id) == "finished":
            summary.outcomes.append(RunOutcome(r.run_id, "skipped"))
            continue
        store.run(r.run_id).start(r.config, _provenance())
        todo.append(r.run_id)
    total = len(runs)
    done = summary.count("skipped")
    say(_bar(done, total, f"{done} already finished" if done else "starting"))
    for outcome in executor.map(root, todo):
        summary.outcomes.append(outcome)
        done += 1
        note = outcome.run_id if outcome.status == "finished" else f"FAILED {outcome.run_id}: {outcome.error.splitlines()[-1] if outcome.error else ''}"
        say(_bar(done, total, note))
    return summary


def _bar(done: int, total: int, note: str, width: int = 24) -> str:
    filled = int(width * done / total) if total else width
    return f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total} {note}"


def _provenance() -> dict[str, Any]:
    import platform

    from scalelab._version import __version__

    return {"scalelab": __version__, "python": platform.python_version(), "argv": list(sys.argv)}
