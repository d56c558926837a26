"""Train one run: the step loop, its metric records, checkpoints and exact resumption.

``train(config, run)`` builds the data stream, the model (from ``init_seed``) and AdamW, then
runs ``config.steps`` updates. Step ``k`` (1-based) trains on batch ``k - 1`` of the
:class:`~scalelab.harness.mixture.DataStream`, which is a pure function of ``(data_seed, k - 1)``.
Every record carries the counters of the run after step ``k``: ``step = k``,
``examples = k * batch_size``, ``tokens = k * batch_size * (seq_len - 1)`` (positions the model
processed) and ``flops = 6 * non_embedding_params * tokens``.

Records of step ``k``:

* ``train/online_loss`` for ``all`` and for each source in the batch: the loss of batch ``k``
  under the model *before* the update on it (the code length of the data, for compression
  scores);
* ``eval/loss`` (and ``eval/acc`` for tasks) per skill at the log-spaced eval steps (and step 0,
  before training);
* ``train/lr`` (the rate used for update ``k``) and ``train/tokens_per_s`` (tokens over the
  wall clock of the training steps since the previous such record, evaluation excluded) at eval
  steps, checkpoint steps and the last step.

Records are appended to the store at eval steps, at checkpoints and at the end. A checkpoint at
step ``k`` is written after every record of steps ``<= k`` is on disk, so on restart the trainer
loads it, drops the records past ``k`` (``run.truncate_metrics``) and continues; every record
except the wall-clock ``tokens_per_s`` is then identical, bit for bit on CPU, to an uninterrupted
run's (all RNG states are restored, and batches depend only on the step) -- provided torch uses
the same number of CPU threads, since that sets the order of floating-point reductions.

Observers (live tracking, e.g. W&B in :mod:`scalelab.tracking.live`): rank 0 hands an
:class:`Observer` the run's config and provenance when a session starts, every batch of records
right after it is written to the store, and the outcome at the end. The store stays the source of
truth: an observer that raises is warned about once and dropped, and training goes on.

``train`` takes the run's lock itself; the lock is re-entrant through the same handle, so a
caller may already hold it (``with run.lock(): train(config, run)``).

Data parallel (``torchrun``, see :mod:`scalelab.harness.distributed`): when the process is one of
``world_size > 1`` ranks, every rank builds the step's global batch of ``data.batch_size`` rows
and trains a :class:`~torch.nn.parallel.DistributedDataParallel` replica on its contiguous shard.
Each rank's loss is ``world_size * (sum of its rows' masked token losses) / (masked tokens of
the global batch)``; DDP averages gradients over ranks, so the update is that of one process on
the global batch (the count comes from the global batch's mask, which every rank holds). Rank 0
alone holds the run's lock and writes the store; it evaluates (on the unwrapped model) while the
other ranks wait at a barrier. The per-row losses are gathered so ``online_loss`` is the global
batch's. Checkpoints hold the unwrapped model and every rank's RNG state, so a run resumes on
any number of processes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import random
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from scalelab.errors import DataError, ScalelabError
from scalelab.harness import distributed
from scalelab.harness.config import RunConfig
from scalelab.harness.device import (
    autocast,
    maybe_compile,
    rank_device,
    resolve_precision,
    select_device,
)
from scalelab.harness.evaluation import (
    EvalData,
    eval_steps,
    evaluate,
    prepare_eval_sets,
    token_losses,
)
from scalelab.harness.mlp import CausalMLP, MLPConfig
from scalelab.harness.model import GPT, GPTConfig, count_params
from scalelab.harness.recording import (
    GuardedObserver,
    Observer,
    Recorder,
    RunHandle,
    config_observer,
    identity,
    start_run,
)

__all__ = ["CHECKPOINT_FORMAT", "Observer", "Progress", "RunHandle", "TrainSummary", "lr_multiplier", "train"]

CHECKPOINT_FORMAT = "scalelab.checkpoint/1"


@dataclass(frozen=True)
class Progress:
    """What a ``progress`` callback receives after every training step (and after the step-0
    evaluation of a fresh run, with ``online_loss`` NaN).

    ``eval`` holds ``{skill: {metric: value}}`` at eval steps and is empty otherwise;
    ``tokens_per_s`` is set where it was logged (eval and checkpoint steps).
    """

    step: int
    steps: int
    online_loss: float
    eval: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    tokens_per_s: float | None = None


@dataclass(frozen=True)
class TrainSummary:
    """The outcome of :func:`train`.

    ``final_eval`` is the evaluation at the last step trained (empty if training stopped between
    eval steps); ``resumed_from`` is the checkpoint step training continued from (None: fresh).
    ``world_size`` is the number of data-parallel processes (1: a single process); every rank
    returns rank 0's summary (with its own ``device``), and ``tokens_per_s`` counts the global
    batch.
    """

    step: int
    steps: int
    finished: bool
    resumed_from: int | None
    params: int
    non_embedding_params: int
    tokens: int
    flops: float
    final_eval: Mapping[str, Mapping[str, float]]
    seconds: float
    tokens_per_s: float
    device: str
    world_size: int = 1


def lr_multiplier(update: int, *, steps: int, warmup_steps: int, min_lr_ratio: float) -> float:
    """Learning-rate factor for ``update`` (0-based): linear warmup, then cosine to ``min_lr_ratio``.

    Examples
    --------
    >>> [round(lr_multiplier(u, steps=10, warmup_steps=2, min_lr_ratio=0.1), 3) for u in (0, 1, 2, 9)]
    [0.5, 1.0, 1.0, 0.134]
    """
    if update < warmup_steps:
        return (update + 1) / warmup_steps
    progress = (update - warmup_steps) / max(1, steps - warmup_steps)
    return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


# ----------------------------------------------------------------------------- building blocks
def build_data(config: RunConfig) -> Any:
    """The run's :class:`~scalelab.harness.mixture.DataStream` (sources built, schedule checked).

    Raises
    ------
    DataError
        A bad source option, a schedule that does not fit the run, or a ``seq_len`` too short
        for some source's examples.
    """
    from scalelab.harness.mixture import DataStream, schedule_from_config
    from scalelab.harness.sources import make_source

    data = config.data
    sources = {name: make_source(spec.kind, name=name, **dict(spec.options)) for name, spec in data.sources.items()}
    stream = DataStream(sources, schedule_from_config(data.schedule.config()), config.data_seed,
                        total_steps=config.steps)
    need = stream.min_seq_len()
    if data.seq_len < need:
        worst = max(sources, key=lambda n: int(getattr(sources[n], "min_seq_len", lambda: 2)()))
        raise DataError(f"data.seq_len is {data.seq_len} but source {worst!r} needs {need} "
                        "(BOS + longest example + EOS); raise data.seq_len")
    return stream


def build_model(config: RunConfig, vocab_size: int) -> GPT | CausalMLP:
    """The run's model (``model.kind``: the GPT or the causal MLP), initialised from a generator
    seeded with ``init_seed``."""
    dims = config.model.dims()
    generator = torch.Generator().manual_seed(config.init_seed)
    if config.model.kind == "mlp":
        mlp = MLPConfig(dims.n_layer, dims.d_model, vocab_size, config.block_size, config.model.dropout)
        return CausalMLP(mlp, generator=generator)
    cfg = GPTConfig(dims.n_layer, dims.n_head, dims.d_model, vocab_size, config.block_size, config.model.dropout)
    return GPT(cfg, generator=generator)


def build_optimizer(model: nn.Module, config: RunConfig) -> tuple[torch.optim.AdamW, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW with weight decay on matrices only (>= 2-D tensors) and the warmup + cosine schedule."""
    o = config.optim
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": o.weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    opt = torch.optim.AdamW(groups, lr=o.lr, betas=o.betas, eps=o.eps)

    def factor(update: int) -> float:
        return lr_multiplier(update, steps=config.steps, warmup_steps=o.warmup_steps, min_lr_ratio=o.min_lr_ratio)

    return opt, torch.optim.lr_scheduler.LambdaLR(opt, factor)


def rng_state() -> dict[str, Any]:
    """The torch, numpy and Python global RNG states as tensors (loadable with ``weights_only``)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": str(kind), "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
                  "pos": int(pos), "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": {"version": int(version), "state": torch.tensor(internal, dtype=torch.int64),
                   "gauss_next": gauss_next},
    }
    if torch.cuda.is_available():  # CUDA
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore what :func:`rng_state` saved."""
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    keys = n["keys"].numpy().astype(np.uint32)
    np.random.set_state((n["kind"], keys, n["pos"], n["has_gauss"], n["cached_gaussian"]))
    p = state["python"]
    random.setstate((p["version"], tuple(int(v) for v in p["state"].tolist()), p["gauss_next"]))
    if "cuda" in state and torch.cuda.is_available():  # CUDA
        torch.cuda.set_rng_state_all(state["cuda"])


# ----------------------------------------------------------------------------- the loop
def _on_main(group: distributed.Group | None, fn: Callable[[], Any]) -> Any:
    """Call ``fn`` on rank 0 only and hand its result, or its failure, to every rank.

    Other ranks raise a :class:`DataError` with rank 0's message when rank 0's error was a
    :class:`~scalelab.errors.ScalelabError` (a bad store, a busy run, a config mismatch), and a
    ``RuntimeError`` naming it otherwise, instead of waiting for a rank that has given up.
    """
    if group is None:
        return fn()
    result: Any = None
    error: BaseException | None = None
    if group.is_main:
        try:
            result = fn()
        except Exception as exc:
            error = exc
    if error is None:
        outcome = group.broadcast(("ok", result))
    else:
        outcome = group.broadcast(("error", isinstance(error, ScalelabError), f"{type(error).__name__}: {error}"))
    if error is not None:
        raise error
    if outcome[0] == "error":
        _, user_error, message = outcome
        if user_error:
            raise DataError(message.split(": ", 1)[1])
        raise RuntimeError(f"rank 0 failed: {message}")
    return outcome[1]


def train(
    config: RunConfig,
    run: RunHandle,
    *,
    progress: Callable[[Progress], None] | None = None,
    stop_after: int | None = None,
    observer: Observer | None = None,
) -> TrainSummary:
    """Train (or resume) one run, writing metrics, checkpoints and status to ``run``.

    Launched by ``torchrun`` with more than one process (``RANK``, ``WORLD_SIZE`` and
    ``LOCAL_RANK`` set), or called inside an initialised process group of more than one
    process, every rank must call ``train`` with the same arguments: the run is then trained
    data-parallel (see the module docstring) and rank 0 alone uses ``run`` and ``progress``. The
    default process group (``nccl`` on CUDA, ``gloo`` on CPU) is initialised here unless it
    exists, and then kept for later calls until the process exits
    (:func:`scalelab.harness.distributed.process_group`).

    Parameters
    ----------
    config : RunConfig
        The run. Sources, schedule and model are built (and fail with a DataError) before
        anything is written.
    run : RunHandle
        The run's handle in a :class:`~scalelab.store.runs.RunStore` (registered here if new;
        an existing run must have the same config, the device aside). A run that has a
        checkpoint is resumed from it; a finished run is left as it is.
    progress : callable, optional
        Called with a :class:`Progress` after every step (an exception it raises stops
        training like a crash: the run is marked failed and resumes from its last checkpoint).
    stop_after : int, optional
        Pause after this step: flush records, write a checkpoint and return with the status left
        ``running`` (a later call resumes). ``None`` trains to ``config.steps``.
    observer : Observer, optional
        Also receives the records (rank 0). Default: the W&B observer when the config has a
        ``[tracking.wandb]`` table or ``$SCALELAB_WANDB`` names a project, else none.

    Returns
    -------
    TrainSummary

    Raises
    ------
    DataError
        For a bad config, source or store, and, data-parallel, a ``data.batch_size`` that is not
        a multiple of the world size (checked before anything is built or written); W&B
        tracking asked for without the wandb package.
    """
    t_start = time.perf_counter()
    launch = distributed.current_launch()
    if launch is not None:
        distributed.check_batch_size(config.data.batch_size, launch.world_size)
    device = select_device(config.device)
    if launch is not None:
        device = rank_device(device, launch.local_rank)
    precision = resolve_precision(config.precision, device)
    if stop_after is not None and stop_after < 0:
        raise DataError(f"stop_after must be >= 0, got {stop_after}")
    main = launch is None or launch.is_main
    world_size = 1 if launch is None else launch.world_size
    stream = build_data(config)  # bad sources or schedules fail here, before any write
    eval_sets = prepare_eval_sets(stream.eval_sets(config.data.seq_len), config.eval.max_examples, device) if main else []
    source_names = list(stream.names)  # batch source_ids index into these
    if main and observer is None:
        observer = config_observer(config)
    watcher = GuardedObserver(observer) if main and observer is not None else None
    cuda = [torch.cuda.current_device()] if device.type == "cuda" else []  # CUDA
    with distributed.process_group(launch, device) as group, contextlib.ExitStack() as held:

        def open_run() -> None:  # rank 0: one writer per run
            held.enter_context(run.lock())  # re-entrant: a caller may already hold it through the same handle
            start_run(config, run, device, precision, world_size)

        _on_main(group, open_run)
        with torch.random.fork_rng(devices=cuda):  # the caller's global torch RNG is left alone
            loop: _Loop | None = None
            try:
                # dropout's stream (restored from checkpoints); ranks > 0 get streams of their own
                torch.manual_seed(config.init_seed if launch is None or main else
                                  distributed.rank_seed(config.init_seed, launch.rank, 0))
                model = build_model(config, stream.vocab_size).to(device)
                state = _on_main(group, run.load_checkpoint)
                loop = _Loop(config, run, model, stream, source_names, eval_sets, device, precision,
                             progress if main else None, group, watcher)
                return loop.run(state, stop_after, t_start)
            except BaseException as exc:
                if watcher is not None:
                    watcher.call("finish", "failed")
                if main:
                    msg = "interrupted" if isinstance(exc, KeyboardInterrupt) else f"{type(exc).__name__}: {exc}"
                    with contextlib.suppress(Exception):  # the store itself may be what failed
                        run.set_status("failed", error=(msg.splitlines() or [type(exc).__name__])[0])
                if group is not None:  # the traceback's frames must not keep the DDP wrapper alive
                    traceback.clear_frames(exc.__traceback__)
                raise
            finally:
                # Drop the DistributedDataParallel wrapper now: alive at exit, it can make the
                # process abort when the process group goes (see distributed.shutdown).
                loop = None


class _Loop:
    """One training session of a run (from scratch or from its checkpoint).

    With a process ``group`` (data parallel), ``model`` is wrapped in DistributedDataParallel for
    training, each rank trains on its shard of the global batch, and only rank 0 records,
    evaluates and writes; the other ranks meet it at barriers after its work at eval, flush and
    checkpoint steps.
    """

    def __init__(self, config: RunConfig, run: RunHandle, model: nn.Module, stream: Any, source_names: list[str],
                 eval_sets: list[EvalData], device: torch.device, precision: str,
                 progress: Callable[[Progress], None] | None, group: distributed.Group | None = None,
                 observer: GuardedObserver | None = None) -> None:
        self.config, self.handle, self.raw_model, self.stream = config, run, model, stream
        self.source_names = source_names
        self.eval_sets = eval_sets
        self.device, self.precision, self.progress = device, precision, progress
        self.group = group
        self.main = group is None or group.is_main
        self.rows: slice | None = None  # this rank's rows of the global batch (data parallel)
        if group is None:
            self.model = self.eval_model = maybe_compile(model, config.compile)
        else:
            self.rows = distributed.shard(config.data.batch_size, group.launch)
            ids = [device.index] if device.type == "cuda" else None  # CUDA
            ddp = DistributedDataParallel(model, device_ids=ids)  # broadcasts rank 0's weights
            self.model = maybe_compile(ddp, config.compile)
            self.eval_model = maybe_compile(model, config.compile)  # rank 0 evaluates alone
        self.optimizer, self.scheduler = build_optimizer(model, config)
        self.params, self.non_embedding = count_params(model)
        self.rec = Recorder(config.data.batch_size, config.data.seq_len, self.non_embedding, enabled=self.main)
        self.rec.observer = self.observer = observer
        self.eval_at = set(eval_steps(config.steps, config.eval.count))

    @property
    def rank(self) -> int:
        return 0 if self.group is None else self.group.rank

    @property
    def world_size(self) -> int:
        return 1 if self.group is None else self.group.world_size

    # -- checkpoints
    def _state(self, step: int, rng: dict[str, Any]) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT,
            "step": step,
            "data_cursor": step,  # batches are a pure function of (data_seed, step)
            "config": json.dumps(self.config.to_dict(), sort_keys=True),
            "model": self.raw_model.state_dict(),  # unwrapped: no DDP "module." prefix
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": rng,  # rank 0's (the only one of a single process)
        }

    def _restore(self, state: Mapping[str, Any]) -> int:
        if state.get("format") != CHECKPOINT_FORMAT:
            raise DataError(f"the run's checkpoint has format {state.get('format')!r}, expected {CHECKPOINT_FORMAT!r}; start a new run id")
        saved = RunConfig.from_dict(json.loads(state["config"]))
        if identity(saved) != identity(self.config):
            raise DataError("the run's checkpoint was written with a different config; use a new run id or the same config")
        self.raw_model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        step = int(state["step"])
        per_rank = state.get("rng_ranks")  # a data-parallel checkpoint: every rank's RNG states
        if per_rank is not None and len(per_rank) == self.world_size:
            set_rng_state(per_rank[self.rank])
        elif self.rank == 0:
            set_rng_state(state["rng"])
        else:  # resumed on another world size: this rank's dropout stream starts afresh
            torch.manual_seed(distributed.rank_seed(self.config.init_seed, self.rank, step))
        return step

    def _checkpoint(self, step: int) -> None:
        rng = rng_state()
        per_rank = self.group.gather(rng) if self.group is not None else None  # every rank takes part
        if not self.main:
            return
        self.rec.flush(self.handle)  # every record of steps <= step is on disk first
        state = self._state(step, rng)
        if per_rank is not None:
            state["rng_ranks"] = per_rank
        self.handle.save_checkpoint(state)

    # -- evaluation and records
    def _evaluate(self, step: int) -> dict[str, dict[str, float]]:
        results = evaluate(self.eval_model, self.eval_sets, batch_size=self.config.eval.batch_size,
                           device=self.device, precision=self.precision)
        for skill, metrics in results.items():
            for metric, value in metrics.items():
                self.rec.add(step, "eval", skill, metric, value)
        return results

    def _stored_eval(self, step: int) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = {}
        for r in self.handle.read_metrics():
            if r["step"] == step and r.get("split") == "eval":
                value = r["value"]
                out.setdefault(r["source"], {})[r["metric"]] = math.nan if value is None else value
        return out

    def _batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor, np.ndarray, torch.Tensor | None]:
        """This rank's rows of batch ``step`` (all of them in a single process): ``tokens`` (b, T),
        ``loss_mask`` (b, T-1), the global batch's ``source_ids`` (B,) and, data parallel, the
        global batch's per-row masked-token counts (B,) (``None`` in a single process)."""
        cfg = self.config.data
        batch, source_ids = self.stream.batch(step - 1, cfg.batch_size, cfg.seq_len)
        tokens_np, mask_np = batch.tokens, batch.loss_mask  # (B, T), (B, T-1)
        counts = None
        if self.rows is not None:
            counts = torch.from_numpy(mask_np.sum(axis=1, dtype=np.int64)).to(self.device)  # (B,)
            tokens_np, mask_np = tokens_np[self.rows], mask_np[self.rows]  # (b, T), (b, T-1)
        tokens = torch.from_numpy(np.ascontiguousarray(tokens_np)).to(self.device, non_blocking=True)
        mask = torch.from_numpy(np.ascontiguousarray(mask_np)).to(self.device, non_blocking=True)
        return tokens, mask, np.asarray(source_ids), counts

    def _online_losses(self, step: int, row_loss: torch.Tensor, row_count: torch.Tensor,
                       source_ids: np.ndarray, loss: float) -> None:
        sums = row_loss.detach().double().cpu().numpy()  # (B,)
        counts = row_count.detach().cpu().numpy()  # (B,)
        n = len(self.source_names)
        by_src = np.bincount(source_ids, weights=sums, minlength=n)  # (S,)
        tok_src = np.bincount(source_ids, weights=counts, minlength=n)  # (S,)
        self.rec.add(step, "train", "all", "online_loss", loss)
        for i in np.flatnonzero(tok_src):
            self.rec.add(step, "train", self.source_names[i], "online_loss", by_src[i] / tok_src[i])

    def _sync(self) -> None:
        """Data parallel: wait for rank 0's evaluation and store writes of this step."""
        if self.group is not None:
            self.group.barrier()

    def run(self, state: Mapping[str, Any] | None, stop_after: int | None, t_start: float) -> TrainSummary:
        cfg = self.config
        start = self._restore(state) if state is not None else 0
        if self.main:
            self.handle.truncate_metrics(after_step=start if state is not None else -1)
        # Thread count is recorded because CPU reductions (and so the last bits) depend on it.
        if self.main and start < cfg.steps:  # a finished run keeps its status as it is
            self.handle.set_status("running", step=start, device=str(self.device), precision=self.precision,
                                   torch_threads=torch.get_num_threads(), world_size=self.world_size,
                                   n_params=self.params, n_params_nonembedding=self.non_embedding)
        if self.observer is not None and start < cfg.steps:
            provenance = getattr(self.handle, "provenance", None)  # the store's handle has it
            self.observer.call("start", run_id=str(getattr(self.handle, "run_id", "run")),
                               config=self.handle.config(), provenance=provenance() if provenance else {},
                               start_step=start,
                               facts={"n_params": self.params, "n_params_nonembedding": self.non_embedding})
        last_eval: dict[str, dict[str, float]] = {}
        last_eval_step = -1
        if start == 0:
            if self.main:
                last_eval, last_eval_step = self._evaluate(0), 0
                self.rec.flush(self.handle)
                if self.progress is not None:
                    self.progress(Progress(0, cfg.steps, math.nan, last_eval))
            self._sync()
        end = cfg.steps if stop_after is None else min(cfg.steps, max(stop_after, start))
        every = cfg.checkpoint_every
        window_tokens, window_time = 0, 0.0
        total_tokens, total_time = 0, 0.0
        positions = cfg.data.batch_size * (cfg.data.seq_len - 1)  # of the global batch
        self.model.train()
        for step in range(start + 1, end + 1):
            t0 = time.perf_counter()
            tokens, mask, source_ids, global_counts = self._batch(step)
            x, y = tokens[:, :-1], tokens[:, 1:]  # (b, T-1) each
            with autocast(self.device, self.precision):
                logits = self.model(x)  # (b, T-1, V)
            ce = token_losses(logits, y)  # (b, T-1) fp32
            row_loss = (ce * mask).sum(dim=1)  # (b,)
            row_count = mask.sum(dim=1)  # (b,)
            if global_counts is None:
                loss = row_loss.sum() / row_count.sum().clamp(min=1)  # mean over loss tokens
            else:  # DDP averages gradients over ranks: world_size * this rank's share of the global mean
                loss = row_loss.sum() / global_counts.sum().clamp(min=1) * self.world_size
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.optim.grad_clip > 0:  # gradients are already averaged over ranks here
                torch.nn.utils.clip_grad_norm_(self.raw_model.parameters(), cfg.optim.grad_clip)
            lr = self.optimizer.param_groups[0]["lr"]
            self.optimizer.step()
            self.scheduler.step()
            if self.group is not None and global_counts is not None:  # the global batch's losses
                row_loss = self.group.all_gather_rows(row_loss.detach())  # (B,)
                row_count = global_counts  # (B,)
                loss = row_loss.sum() / row_count.sum().clamp(min=1)
            loss_value = loss.item()
            dt = time.perf_counter() - t0
            window_tokens += positions
            window_time += dt
            if self.main:
                self._online_losses(step, row_loss, row_count, source_ids, loss_value)
            is_eval = step in self.eval_at
            evals: dict[str, dict[str, float]] = {}
            if is_eval and self.main:
                evals = last_eval = self._evaluate(step)
                last_eval_step = step
            # Flush points depend on the config only (so a paused run logs what a straight one
            # does): eval steps, checkpoint steps and the last step. A pause adds a checkpoint.
            scheduled = step == cfg.steps or (every > 0 and step % every == 0)
            tps = None
            if is_eval or scheduled:
                tps = window_tokens / window_time if window_time > 0 else math.nan
                self.rec.add(step, "train", "all", "lr", lr)
                self.rec.add(step, "train", "all", "tokens_per_s", tps)
                total_tokens += window_tokens
                total_time += window_time
                window_tokens, window_time = 0, 0.0
            if scheduled or step == end:
                self._checkpoint(step)
            elif is_eval and self.main:
                self.rec.flush(self.handle)
            if self.progress is not None:
                self.progress(Progress(step, cfg.steps, loss_value, evals, tps))
            if is_eval or scheduled or step == end:
                self._sync()
        final = max(end, start)
        if self.main and last_eval_step != final:  # not evaluated in this session: read what was stored
            last_eval = self._stored_eval(final)
        finished = final >= cfg.steps
        if self.main and finished and start < cfg.steps:
            self.handle.set_status("finished", step=final, seconds=round(time.perf_counter() - t_start, 3))
        if self.observer is not None and start < cfg.steps:
            self.observer.call("finish", "finished" if finished else "paused")
        tokens_done = final * positions
        summary = TrainSummary(
            step=final,
            steps=cfg.steps,
            finished=finished,
            resumed_from=start if state is not None else None,
            params=self.params,
            non_embedding_params=self.non_embedding,
            tokens=tokens_done,
            flops=6.0 * self.non_embedding * tokens_done,
            final_eval=last_eval,
            seconds=time.perf_counter() - t_start,
            tokens_per_s=total_tokens / total_time if total_time > 0 else math.nan,
            device=str(self.device),
            world_size=self.world_size,
        )
        if self.group is not None:  # rank 0's evaluation and timings, this rank's device
            summary = dataclasses.replace(self.group.broadcast(summary), device=str(self.device))
        return summary
