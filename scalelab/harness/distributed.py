"""Data parallelism inside one run: torchrun's environment, the process group, the collectives.

``torchrun --nproc_per_node N -m scalelab train CONFIG --store ROOT`` starts ``N`` processes with
``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` in their environment. The trainer then (see
:func:`scalelab.harness.trainer.train`):

* joins the default process group (``nccl`` on CUDA, ``gloo`` on CPU) unless it exists already,
  and keeps it for later calls until the process exits;
* builds every step's *global* batch (``data.batch_size`` rows, a pure function of
  ``(data_seed, step)``) on every rank and trains on its contiguous shard of
  ``batch_size / world_size`` rows (:func:`shard`);
* keeps the store, evaluation and progress on rank 0; the other ranks never open the store.

This module holds the parts of that which do not depend on the training loop: reading the
launch environment (:func:`current_launch`), the batch-size check, the process-group context
(:func:`process_group`) and :class:`Group`, the few collectives the trainer needs. A world of
size 1 is the single-process path (``None`` throughout), so ``torchrun --nproc_per_node 1``
trains exactly like a plain ``scalelab train``.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from scalelab.errors import DataError

__all__ = [
    "LAUNCH_VARIABLES",
    "Group",
    "Launch",
    "check_batch_size",
    "current_launch",
    "launch_from_env",
    "process_group",
    "rank_seed",
    "shard",
    "shutdown",
]

#: The environment variables torchrun sets in every worker that the trainer reads.
LAUNCH_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


@dataclass(frozen=True)
class Launch:
    """Where this process sits in a data-parallel run.

    Attributes
    ----------
    rank : int
        Global rank, ``0 <= rank < world_size``; rank 0 writes the run store.
    world_size : int
        Number of processes (at least 2: a world of one is the single-process path).
    local_rank : int
        Rank on this host; selects the GPU on CUDA.
    """

    rank: int
    world_size: int
    local_rank: int

    @property
    def is_main(self) -> bool:
        """Whether this is rank 0, the only rank that touches the run store."""
        return self.rank == 0


def _int_var(environ: Mapping[str, str], name: str) -> int:
    raw = environ[name]
    try:
        value = int(raw)
    except ValueError:
        raise DataError(f"environment variable {name}={raw!r} is not an integer; launch with torchrun") from None
    if value < 0:
        raise DataError(f"environment variable {name}={value} is negative; launch with torchrun")
    return value


def launch_from_env(environ: Mapping[str, str] | None = None) -> Launch | None:
    """The data-parallel launch described by torchrun's environment variables.

    Parameters
    ----------
    environ : mapping, optional
        Defaults to ``os.environ``.

    Returns
    -------
    Launch or None
        ``None`` when none of ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` is set, or the world has one
        process (the single-process path).

    Raises
    ------
    DataError
        When only some of the three are set, or a value is not a valid rank.

    Examples
    --------
    >>> launch_from_env({"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"})
    Launch(rank=1, world_size=2, local_rank=1)
    >>> launch_from_env({}) is None
    True
    """
    env = os.environ if environ is None else environ
    present = [name for name in LAUNCH_VARIABLES if name in env]
    if not present:
        return None
    if len(present) < len(LAUNCH_VARIABLES):
        missing = ", ".join(name for name in LAUNCH_VARIABLES if name not in env)
        raise DataError(f"data-parallel training needs {', '.join(LAUNCH_VARIABLES)} in the environment but "
                        f"{missing} is missing; launch with torchrun")
    rank, world, local = (_int_var(env, name) for name in LAUNCH_VARIABLES)
    if world < 1 or rank >= world:
        raise DataError(f"RANK={rank} is not below WORLD_SIZE={world}; launch with torchrun")
    return None if world == 1 else Launch(rank, world, local)


def current_launch(environ: Mapping[str, str] | None = None) -> Launch | None:
    """The launch this process belongs to: an initialised process group, else the environment.

    A process group that the caller initialised (with more than one process) wins over the
    environment; its local rank is ``LOCAL_RANK`` if set, else the global rank.
    """
    env = os.environ if environ is None else environ
    if dist.is_available() and dist.is_initialized():
        world = dist.get_world_size()
        if world == 1:
            return None
        rank = dist.get_rank()
        local = _int_var(env, "LOCAL_RANK") if "LOCAL_RANK" in env else rank
        return Launch(rank, world, local)
    return launch_from_env(env)


def check_batch_size(batch_size: int, world_size: int) -> None:
    """Check that the global batch splits evenly over ``world_size`` processes.

    Raises
    ------
    DataError
        When ``batch_size`` is not a multiple of ``world_size``.

    Examples
    --------
    >>> check_batch_size(64, 4)
    >>> check_batch_size(6, 4)
    Traceback (most recent call last):
    ...
    scalelab.errors.DataError: data.batch_size 6 is not divisible by the world size 4 (torchrun processes); use a multiple of 4, e.g. 8
    """
    if batch_size % world_size:
        suggestion = -(-batch_size // world_size) * world_size
        raise DataError(f"data.batch_size {batch_size} is not divisible by the world size {world_size} "
                        f"(torchrun processes); use a multiple of {world_size}, e.g. {suggestion}")


def shard(batch_size: int, launch: Launch) -> slice:
    """The contiguous rows of the global batch that ``launch.rank`` trains on.

    Examples
    --------
    >>> shard(8, Launch(rank=1, world_size=4, local_rank=1))
    slice(2, 4, None)
    """
    check_batch_size(batch_size, launch.world_size)
    rows = batch_size // launch.world_size
    return slice(launch.rank * rows, (launch.rank + 1) * rows)


def rank_seed(init_seed: int, rank: int, step: int) -> int:
    """The torch seed of rank ``rank``'s dropout stream when it starts (or, without a saved state
    for it, resumes) at ``step``; rank 0 uses ``init_seed`` itself, like a single process.

    Distinct ranks get distinct streams, so the shards of a batch are not dropped out with the
    same masks.

    Examples
    --------
    >>> rank_seed(0, 1, 0) == rank_seed(0, 1, 0) != rank_seed(0, 2, 0)
    True
    """
    return int(np.random.SeedSequence([init_seed, rank, step]).generate_state(1, dtype=np.uint64)[0] >> 1)


class Group:
    """The collectives the trainer uses, over the default process group.

    Parameters
    ----------
    launch : Launch
        This process's place in the run.
    device : torch.device
        Where this rank computes (``cuda:LOCAL_RANK`` or ``cpu``); collectives of tensors run
        there.
    """

    def __init__(self, launch: Launch, device: torch.device) -> None:
        self.launch = launch
        self.device = device

    @property
    def rank(self) -> int:
        """Global rank of this process."""
        return self.launch.rank

    @property
    def world_size(self) -> int:
        """Number of processes."""
        return self.launch.world_size

    @property
    def is_main(self) -> bool:
        """Whether this is rank 0."""
        return self.launch.is_main

    def barrier(self) -> None:
        """Wait until every rank gets here."""
        if self.device.type == "cuda":  # CUDA
            dist.barrier(device_ids=[self.device.index or 0])
        else:
            dist.barrier()

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank (pickled; other ranks' ``obj`` is ignored)."""
        box = [obj if self.is_main else None]
        dist.broadcast_object_list(box, src=0, device=self.device if self.device.type == "cuda" else None)
        return box[0]

    def gather(self, obj: Any) -> list[Any] | None:
        """Every rank's ``obj`` in rank order on rank 0; ``None`` on the other ranks."""
        out: list[Any] | None = [None] * self.world_size if self.is_main else None
        dist.gather_object(obj, out, dst=0)
        return out

    def all_gather_rows(self, tensor: torch.Tensor) -> torch.Tensor:
        """Concatenate every rank's ``tensor`` (same shape on every rank) along dim 0, in rank order.

        Parameters
        ----------
        tensor : torch.Tensor
            ``(b, ...)``, on this rank's device.

        Returns
        -------
        torch.Tensor
            ``(world_size * b, ...)``.
        """
        tensor = tensor.contiguous()
        parts = [torch.empty_like(tensor) for _ in range(self.world_size)]
        dist.all_gather(parts, tensor)
        return torch.cat(parts, dim=0)


_owned = False  # whether this module initialised the default process group


def shutdown() -> None:
    """Destroy the default process group if :func:`process_group` initialised it (else nothing).

    Registered with :mod:`atexit` when the group is made. Objects that hold the group (a
    ``DistributedDataParallel`` wrapper) must be gone by then: the garbage collector runs first,
    because with gloo, a group torn down while such objects live on into interpreter
    finalisation aborts the process (``terminate called without an active exception``; seen
    here in about 1 exit in 5 with torch 2.13 and ``DistributedDataParallel``).
    """
    global _owned
    if _owned and dist.is_initialized():
        gc.collect()
        dist.destroy_process_group()
    _owned = False


@contextlib.contextmanager
def process_group(launch: Launch | None, device: torch.device) -> Iterator[Group | None]:
    """The default process group for ``launch``, joined if needed (``None``: yield ``None``).

    The backend is ``nccl`` on CUDA and ``gloo`` on CPU; rendezvous is torchrun's (``env://``).
    A group that exists (the caller's, or one made by an earlier call) is used as it is. One made
    here lives until the process exits (:func:`shutdown` runs at exit, or call it): torchrun's
    rendezvous store keeps the first group's addresses, so destroying the group and joining a
    new one in the same process is not reliable (gloo then fails to connect).

    Raises
    ------
    DataError
        When an existing process group disagrees with ``launch``.
    """
    global _owned
    if launch is None:
        yield None
        return
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        kwargs: dict[str, Any] = {"device_id": device} if device.type == "cuda" else {}  # CUDA
        dist.init_process_group(backend, rank=launch.rank, world_size=launch.world_size, **kwargs)
        if not _owned:
            atexit.register(shutdown)
        _owned = True
    elif (dist.get_rank(), dist.get_world_size()) != (launch.rank, launch.world_size):
        raise DataError(f"the initialised process group has rank {dist.get_rank()} of {dist.get_world_size()} "
                        f"but the environment says rank {launch.rank} of {launch.world_size}")
    yield Group(launch, device)
