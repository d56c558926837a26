"""What a training run records besides its weights: the run's entry in the store and its metrics.

Shared by the sequential trainer (:mod:`scalelab.harness.trainer`) and the batched ensemble
(:mod:`scalelab.harness.ensemble`), so both register runs, check a resumed run's config, build
metric records with the same counters and hand them to live observers in the same way.

* :class:`RunHandle`: what a trainer needs from :class:`scalelab.store.runs.RunHandle`.
* :class:`Observer`: receives the records as they are written (live tracking, e.g. W&B);
  :class:`GuardedObserver` calls one and drops it, with one warning, at its first exception.
* :class:`Recorder`: builds records with the step counters (``examples``, ``tokens``,
  ``flops = 6 * non_embedding * tokens``) and buffers them until the next flush.
* :func:`start_run`: registers a run, or checks that an existing run has the same config
  (:func:`identity`: the config without the device and tracking fields).
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import torch

from scalelab.errors import DataError
from scalelab.harness.config import RunConfig

__all__ = [
    "GuardedObserver",
    "Observer",
    "Recorder",
    "RunHandle",
    "config_observer",
    "identity",
    "provenance",
    "start_run",
]


class RunHandle(Protocol):
    """What the trainer needs from :class:`scalelab.store.runs.RunHandle`."""

    @property
    def exists(self) -> bool: ...
    def lock(self) -> contextlib.AbstractContextManager[Any]: ...
    def start(self, config: dict[str, Any], provenance: dict[str, Any]) -> None: ...
    def config(self) -> dict[str, Any]: ...
    def append_metrics(self, records: Sequence[Mapping[str, Any]]) -> None: ...
    def save_checkpoint(self, state: dict[str, Any]) -> None: ...
    def load_checkpoint(self) -> dict[str, Any] | None: ...
    def truncate_metrics(self, after_step: int) -> Any: ...
    def set_status(self, status: str, **info: Any) -> None: ...
    def read_metrics(self) -> list[dict[str, Any]]: ...



class Observer(Protocol):
    """Receives what the trainer records, e.g. to log it live to W&B (rank 0 only).

    ``start`` is called once per training session (fresh or resumed from ``start_step``),
    ``log`` with each batch of records just written to the store (the records of a step always
    arrive in one batch), ``finish`` with ``"finished"``, ``"paused"`` (``stop_after``) or
    ``"failed"``. Exceptions are caught by the trainer (warned once; the observer is dropped).
    """

    def start(self, *, run_id: str, config: Mapping[str, Any], provenance: Mapping[str, Any],
              start_step: int, facts: Mapping[str, Any]) -> None: ...
    def log(self, records: Sequence[Mapping[str, Any]]) -> None: ...
    def finish(self, status: str) -> None: ...


class GuardedObserver:
    """Calls an observer; its first exception is warned about once and the observer dropped."""

    def __init__(self, observer: Observer) -> None:
        self.observer: Observer | None = observer

    def call(self, method: str, *args: Any, **kwargs: Any) -> None:
        if self.observer is None:
            return
        try:
            getattr(self.observer, method)(*args, **kwargs)
        except Exception as exc:
            self.observer = None
            warnings.warn(f"run observer {type(exc).__name__} in {method}: {exc}; training goes on "
                          "without it (the store has every record)", RuntimeWarning, stacklevel=2)


def config_observer(config: RunConfig) -> Observer | None:
    """The W&B observer asked for by ``[tracking.wandb]`` or ``$SCALELAB_WANDB`` (else None).

    Raises
    ------
    DataError
        If W&B tracking is asked for but the wandb package is not installed.
    """
    import os

    if (config.tracking is None or config.tracking.wandb is None) and not os.environ.get("SCALELAB_WANDB"):
        return None
    from scalelab.tracking.live import observer_for

    return observer_for(config)


def provenance(config: RunConfig, device: torch.device, precision: str, world_size: int) -> dict[str, Any]:
    """What the trainer adds to the store's provenance (versions, host, git, argv)."""
    return {
        "device": str(device),
        "precision": precision,
        "seeds": {"init": config.init_seed, "data": config.data_seed},
        "torch_threads": torch.get_num_threads(),
        "world_size": world_size,
    }


def identity(config: RunConfig) -> dict[str, Any]:
    """The config fields that define the experiment (the device a run uses may change)."""
    d = config.to_dict()
    d.pop("device", None)
    d.pop("tracking", None)  # where a run is also logged does not change the run
    return d


class Recorder:
    """Builds records with the step counters and buffers them until the next flush."""

    def __init__(self, batch_size: int, seq_len: int, non_embedding: int, *, enabled: bool = True) -> None:
        self.batch_size = batch_size
        self.positions = seq_len - 1
        self.non_embedding = non_embedding
        self.enabled = enabled  # False on data-parallel ranks other than 0: they record nothing
        self.pending: list[dict[str, Any]] = []
        self.observer: GuardedObserver | None = None

    def counters(self, step: int) -> dict[str, Any]:
        tokens = step * self.batch_size * self.positions
        return {"step": step, "examples": step * self.batch_size, "tokens": tokens,
                "flops": 6.0 * self.non_embedding * tokens}

    def add(self, step: int, split: str, source: str, metric: str, value: float) -> None:
        if not self.enabled:
            return
        v = None if value is None or not math.isfinite(value) else float(value)
        self.pending.append({**self.counters(step), "split": split, "source": source, "metric": metric, "value": v})

    def flush(self, run: RunHandle) -> None:
        if self.pending:
            run.append_metrics(self.pending)
            if self.observer is not None:
                self.observer.call("log", self.pending)
            self.pending = []


def start_run(config: RunConfig, run: RunHandle, device: torch.device, precision: str, world_size: int) -> None:
    """Register the run, or check that an existing run (e.g. from a grid) has this config.

    A grid stores the config as written; it is compared after validation and with defaults
    filled in, ignoring the device (a run may resume on another device).
    """
    if not run.exists:
        run.start(config.to_dict(), provenance(config, device, precision, world_size))
        return
    try:
        stored = RunConfig.from_dict(run.config())
    except DataError as exc:
        raise DataError(f"the run's stored config is not valid ({exc}); use a new run id") from None
    new, old = identity(config), identity(stored)
    if new != old:
        first = next(k for k in [*new, *old] if new.get(k) != old.get(k))
        raise DataError(f"the run already exists with a different config (it differs in {first!r}); "
                        "use a new run id or the stored config")
