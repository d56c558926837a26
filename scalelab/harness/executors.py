"""Run the cells of a grid: local processes (default), Ray for clusters, SLURM via submitit.

Every executor calls the same top-level function, :func:`execute_unit`, in a worker. A unit is
one run id (:func:`execute_run`: open the run in the store, take its lock, train it, resuming
from its checkpoint when there is one) or, with ``run_grid(..., ensemble=...)``, a tuple of run
ids that train together as one batched ensemble (:func:`execute_ensemble`, see
:mod:`scalelab.harness.ensemble`). The store is the only shared state, so a grid can be
interrupted at any point and the same command resumes it: finished runs are skipped,
interrupted ones resume.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from scalelab.errors import DataError, ScalelabError

__all__ = [
    "Executor",
    "GridSummary",
    "LocalExecutor",
    "RayExecutor",
    "RunOutcome",
    "SubmititExecutor",
    "Unit",
    "execute_ensemble",
    "execute_run",
    "execute_unit",
    "make_executor",
    "run_grid",
]


#: What a worker trains: one run id, or the run ids of one ensemble.
Unit: TypeAlias = str | tuple[str, ...]


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


def execute_ensemble(root: str, run_ids: Sequence[str], threads: int | None = None,
                     device: str | None = None) -> list[RunOutcome]:
    """Train stored runs together as batched ensembles (resuming them from their checkpoints).

    Each run's lock is taken first; a run that is busy, or whose config or data cannot be
    built, fails alone and the others go on. The rest are split by vocabulary size (which
    depends on the sources) and each part trains as one ensemble
    (:func:`scalelab.harness.ensemble.train_ensemble`), a part of one run with the sequential
    trainer. A failure fails every run of its part. Outcomes come back in ``run_ids`` order;
    ``seconds`` is the wall time of the run's part.
    """
    t0 = time.perf_counter()
    outcomes: dict[str, RunOutcome] = {}

    def failed(rid: str, error: str) -> None:
        outcomes[rid] = RunOutcome(rid, "failed", time.perf_counter() - t0, error)

    try:
        import torch

        if threads:
            torch.set_num_threads(threads)
        from scalelab.harness.config import RunConfig
        from scalelab.harness.ensemble import train_ensemble
        from scalelab.harness.trainer import build_data, train
        from scalelab.store.runs import RunStore

        store = RunStore(root)
        with contextlib.ExitStack() as held:
            parts: dict[int, list[tuple[str, Any, Any]]] = {}
            for rid in run_ids:
                try:
                    run = store.run(rid)
                    config = RunConfig.from_dict(run.config())
                    if device:
                        config = config.with_device(device)
                    held.enter_context(run.lock())
                    parts.setdefault(build_data(config).vocab_size, []).append((rid, run, config))
                except ScalelabError as exc:
                    failed(rid, str(exc))
            for part in parts.values():
                ids = [rid for rid, _, _ in part]
                try:
                    if len(part) == 1:
                        train(part[0][2], part[0][1])
                    else:
                        train_ensemble([c for _, _, c in part], [r for _, r, _ in part])
                except ScalelabError as exc:
                    for rid in ids:
                        failed(rid, str(exc))
                    continue
                except Exception:  # a bug or an environment failure: keep the traceback
                    for rid in ids:
                        failed(rid, traceback.format_exc(limit=8))
                    continue
                for rid in ids:
                    outcomes[rid] = RunOutcome(rid, "finished", time.perf_counter() - t0)
    except Exception:  # the worker itself failed (imports, the store)
        error = traceback.format_exc(limit=8)
        for rid in run_ids:
            if rid not in outcomes:
                failed(rid, error)
    return [outcomes[rid] for rid in run_ids]


def execute_unit(root: str, unit: Unit, threads: int | None = None, device: str | None = None) -> list[RunOutcome]:
    """Train one unit in a worker: a run id (:func:`execute_run`) or an ensemble's run ids
    (:func:`execute_ensemble`). A module-level function so it pickles for pools, Ray and submitit."""
    if isinstance(unit, str):
        return [execute_run(root, unit, threads, device)]
    return execute_ensemble(root, list(unit), threads, device)


def _unit_ids(unit: Unit) -> list[str]:
    return [unit] if isinstance(unit, str) else list(unit)


class Executor:
    """Submits :func:`execute_unit` calls and yields their runs' outcomes as they finish."""

    name = "base"

    def map(self, root: str, units: Sequence[Unit]) -> Iterable[RunOutcome]:
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

    def map(self, root: str, units: Sequence[Unit]) -> Iterable[RunOutcome]:
        threads = self.threads
        if self.workers == 1:
            for unit in units:  # in this process: no pool start-up cost
                yield from execute_unit(root, unit, threads, self.device)
            return
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor, as_completed

        with ProcessPoolExecutor(self.workers, mp_context=mp.get_context("spawn")) as pool:
            futures: list[Future[list[RunOutcome]]] = [
                pool.submit(execute_unit, root, unit, threads, self.device) for unit in units
            ]
            for fut in as_completed(futures):
                yield from fut.result()


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

    def map(self, root: str, units: Sequence[Unit]) -> Iterable[RunOutcome]:
        ray = self._ray
        started_here = not ray.is_initialized()
        if started_here:
            ray.init(address=self.address, include_dashboard=False, log_to_driver=False,
                     num_cpus=None if self.address else os.cpu_count())
        try:
            remote = ray.remote(num_cpus=self.cpus_per_run)(execute_unit)
            threads = max(1, int(self.cpus_per_run))
            pending = [remote.remote(root, unit, threads, self.device) for unit in units]
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                yield from ray.get(done[0])
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

    def map(self, root: str, units: Sequence[Unit]) -> Iterable[RunOutcome]:
        jobs = {self.executor.submit(execute_unit, root, unit, self.threads, self.device): unit for unit in units}
        remaining = list(jobs)
        while remaining:
            for job in list(remaining):
                if job.done():
                    remaining.remove(job)
                    try:
                        outcomes = job.result()
                    except Exception as exc:  # the job itself died (killed, out of time)
                        outcomes = [RunOutcome(rid, "failed", 0.0, f"job {job.job_id} died: {exc}")
                                    for rid in _unit_ids(jobs[job])]
                    yield from outcomes
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
    ensemble: bool | int = False,
) -> GridSummary:
    """Register every run in the store, skip the finished ones, run the rest.

    ``runs`` are :class:`scalelab.harness.grid.GridRun`. Every config is validated before any
    run starts, so a bad cell fails the whole grid up front.

    ``ensemble`` trains pending runs that share the architecture
    (:func:`scalelab.harness.ensemble.ensemble_key`) together as batched ensembles, each in one
    worker: ``True`` for groups of up to
    :data:`~scalelab.harness.ensemble.DEFAULT_MAX_MEMBERS`, an integer for groups of up to that
    many runs (1: none), ``False`` (default) to train every run on its own. Runs with dropout or
    ``compile``, and runs that share their architecture with no other pending run, train on
    their own as before. Their records and checkpoints are those of sequential training (to
    float tolerance), so a grid may be resumed with or without ensembles.

    Raises
    ------
    DataError
        For a bad cell config or an ``ensemble`` size below 1.
    """
    from scalelab.harness.config import RunConfig
    from scalelab.store.runs import RunStore

    say = progress or (lambda _m: None)
    size = _ensemble_size(ensemble)
    configs = {r.run_id: RunConfig.from_dict(r.config) for r in runs}  # raises DataError naming the bad field
    store = RunStore(root)
    summary = GridSummary()
    pending = []
    status = {info.run_id: info.status for info in store.runs()}
    for r in runs:
        if status.get(r.run_id) == "finished":
            summary.outcomes.append(RunOutcome(r.run_id, "skipped"))
            continue
        pending.append(r)
    units: list[Unit] = [r.run_id for r in pending]
    if size > 1:
        from scalelab.harness.ensemble import plan_groups

        groups = plan_groups([configs[r.run_id] for r in pending], size)
        units = [pending[g[0]].run_id if len(g) == 1 else tuple(pending[i].run_id for i in g) for g in groups]
    planned = {rid: unit for unit in units if isinstance(unit, tuple) for rid in unit}
    for r in pending:
        extra = {"ensemble": {"members": len(planned[r.run_id]), "runs": list(planned[r.run_id])}} if r.run_id in planned else {}
        store.run(r.run_id).start(r.config, {**_provenance(), **extra})
    total = len(runs)
    done = summary.count("skipped")
    note = f"{done} already finished" if done else "starting"
    n_ens = sum(isinstance(u, tuple) for u in units)
    if n_ens:
        note += f"; {len(planned)} runs in {n_ens} ensemble{'s' if n_ens > 1 else ''}"
    say(_bar(done, total, note))
    for outcome in executor.map(root, units):
        summary.outcomes.append(outcome)
        done += 1
        note = outcome.run_id if outcome.status == "finished" else f"FAILED {outcome.run_id}: {outcome.error.splitlines()[-1] if outcome.error else ''}"
        say(_bar(done, total, note))
    return summary


def _ensemble_size(ensemble: bool | int) -> int:
    """Largest ensemble for ``run_grid(ensemble=...)`` (1: every run on its own)."""
    if ensemble is True:
        from scalelab.harness.ensemble import DEFAULT_MAX_MEMBERS

        return DEFAULT_MAX_MEMBERS
    if ensemble is False or ensemble is None:
        return 1
    if not isinstance(ensemble, int) or ensemble < 1:
        raise DataError(f"ensemble must be True, False or a number of runs per ensemble >= 1, got {ensemble!r}")
    return ensemble


def _bar(done: int, total: int, note: str, width: int = 24) -> str:
    filled = int(width * done / total) if total else width
    return f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total} {note}"


def _provenance() -> dict[str, Any]:
    import platform

    from scalelab._version import __version__

    return {"scalelab": __version__, "python": platform.python_version(), "argv": list(sys.argv)}
