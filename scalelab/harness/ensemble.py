"""Train several runs of one architecture together, as one batched ensemble.

``train_ensemble(configs, runs)`` trains K runs that share the model shape and the step
schedule (see :func:`ensemble_key`) in one process: the K models' parameters are stacked into
one matrix (:class:`~scalelab.harness._stacked_gpt.StackedGPT`), every step runs one batched
forward and backward pass over the K batches -- each drawn from the member's own
:class:`~scalelab.harness.mixture.DataStream` -- and one AdamW update of all members
(:class:`~scalelab.harness._batched_adamw.BatchedAdamW`), each with its own learning-rate
schedule, betas, eps, weight decay and gradient clipping. Members may differ in everything
else: init and data seeds, sources, formats, mixtures and curricula, optimiser settings.
Evaluation is batched too: every distinct eval set is run through all the members that have it
at once. Sources with the same name, kind and options are built once and shared.

Each member is an ordinary run of the store. It gets exactly the records the sequential
trainer (:func:`scalelab.harness.trainer.train`) writes -- the same steps, keys and counters,
``online_loss`` every step, evaluations at the log-spaced steps, ``lr`` and ``tokens_per_s`` at
eval, checkpoint and last steps -- and checkpoints in the same format (model, ``torch.optim.AdamW``
and ``LambdaLR`` state dicts, RNG states, step), written at the same steps. So ``scalelab runs``,
export, fits and curves see ordinary runs; a member can be resumed by the sequential trainer
and the other way round. The values equal the sequential trainer's to float tolerance: the
forward pass is bit-identical, but batched matrix products and the per-member gradient norm sum
in another order, and training amplifies the last bits slowly (measured over 24 steps of four
members: records within 2e-7 relative, final parameters within 9.4e-7 in relative norm, the
same as running the sequential trainer with two threads instead of one; the tests allow 1e-5).
What differs: ``tokens_per_s`` is the member's tokens over the wall clock of the ensemble's
steps, and the run's status (and its provenance, when the ensemble registers it) names the
ensemble.

Interruption and resumption: every member checkpoints at the same steps. On restart each
member is loaded from its checkpoint; members that already finished are left alone, and when
the others are at different steps (a crash between two members' checkpoint writes, or a member
trained on its own meanwhile) the ones behind are first brought to the most advanced member's
step by the sequential trainer (``train(..., stop_after=step)``), then all continue together.
No record is lost or duplicated: each member drops its records past its checkpoint, as in
sequential training.

Not supported: models other than the GPT (``model.kind = "mlp"``: only GPTs are stacked),
dropout (the sequential trainer's dropout masks come from one global RNG stream per run, which a
batched pass cannot reproduce), ``compile``, and data-parallel launches; such cells train on
their own (:func:`plan_groups` leaves them out, :func:`train_ensemble` refuses them).
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from scalelab.errors import DataError
from scalelab.harness import distributed
from scalelab.harness._batched_adamw import BatchedAdamW, MemberHyper, clip_grad_norms
from scalelab.harness._stacked_gpt import StackedGPT
from scalelab.harness.config import RunConfig
from scalelab.harness.device import autocast, resolve_precision, select_device
from scalelab.harness.evaluation import EvalData, eval_steps, prepare_eval_sets, token_losses
from scalelab.harness.model import GPT, count_params
from scalelab.harness.recording import (
    GuardedObserver,
    Recorder,
    config_observer,
    identity,
    provenance,
    start_run,
)
from scalelab.harness.trainer import (
    CHECKPOINT_FORMAT,
    Observer,
    Progress,
    RunHandle,
    TrainSummary,
    build_data,
    build_model,
    build_optimizer,
    lr_multiplier,
    rng_state,
    train,
)

__all__ = [
    "DEFAULT_MAX_MEMBERS",
    "ensemble_key",
    "ensemble_problem",
    "plan_groups",
    "train_ensemble",
]

#: Members per ensemble when a grid asks for ensembles without a size. Throughput per member
#: hardly changes beyond this on CPU (docs/ensemble.md), while memory grows with every member.
DEFAULT_MAX_MEMBERS = 8

#: Activations (floats of the widest layer, over all members) one evaluation pass may hold.
_EVAL_ACTIVATION_BUDGET = 1 << 24


# ----------------------------------------------------------------------------- grouping
def ensemble_key(config: RunConfig) -> tuple[tuple[str, Any], ...]:
    """What runs must share to train in one ensemble, as ``(field, value)`` pairs.

    The model's shape, the batch shape, the step count and the step schedule of evaluations and
    checkpoints, the device and the precision. (The vocabulary size, which depends on the
    sources, must match too; it is checked when the data is built.)

    Examples
    --------
    >>> cfg = RunConfig.from_dict({"steps": 10, "data": {"seq_len": 8, "batch_size": 4,
    ...     "sources": {"m": {"kind": "modular", "options": {"p": 7}}}}})
    >>> dict(ensemble_key(cfg))["model.d_model"]
    24
    """
    dims = config.model.dims()
    return (
        ("model.n_layer", dims.n_layer),
        ("model.n_head", dims.n_head),
        ("model.d_model", dims.d_model),
        ("model.block_size", config.block_size),
        ("data.seq_len", config.data.seq_len),
        ("data.batch_size", config.data.batch_size),
        ("steps", config.steps),
        ("checkpoint_every", config.checkpoint_every),
        ("eval.count", config.eval.count),
        ("eval.batch_size", config.eval.batch_size),
        ("eval.max_examples", config.eval.max_examples),
        ("device", config.device),
        ("precision", config.precision),
    )


def ensemble_problem(config: RunConfig) -> str | None:
    """Why ``config`` cannot train in an ensemble (one line), or ``None`` if it can."""
    if config.model.kind != "gpt":  # StackedGPT stacks GPTs only
        return (f"model.kind is {config.model.kind!r}: the ensemble trainer stacks GPTs only; "
                "train the run on its own (a grid does so by itself)")
    if config.model.dropout:
        return (f"model.dropout is {config.model.dropout:g}: the ensemble cannot reproduce the sequential "
                "trainer's dropout masks; set model.dropout = 0 or train the run on its own")
    if config.compile:
        return "compile = true is not supported by the ensemble trainer; set compile = false or train the run on its own"
    return None


def plan_groups(configs: Sequence[RunConfig], max_members: int | None = DEFAULT_MAX_MEMBERS) -> list[list[int]]:
    """Split runs into ensembles: indices grouped by :func:`ensemble_key`, in first-seen order.

    Runs that cannot train in an ensemble (:func:`ensemble_problem`) and runs whose key no other
    run shares come back alone. Groups larger than ``max_members`` are cut into the fewest
    groups of at most that size, as equal as possible.

    Parameters
    ----------
    configs : sequence of RunConfig
    max_members : int or None
        Largest ensemble (``None``: no limit). 1 puts every run alone.

    Raises
    ------
    DataError
        If ``max_members`` is below 1.

    Examples
    --------
    >>> base = {"steps": 10, "data": {"seq_len": 8, "batch_size": 4,
    ...         "sources": {"m": {"kind": "modular", "options": {"p": 7}}}}}
    >>> cfgs = [RunConfig.from_dict({**base, "init_seed": s}) for s in range(5)]
    >>> plan_groups(cfgs, 2)
    [[0, 1], [2, 3], [4]]
    >>> plan_groups(cfgs, 4)
    [[0, 1, 2], [3, 4]]
    >>> plan_groups([*cfgs[:2], RunConfig.from_dict({**base, "model": {"dropout": 0.1}})], None)
    [[0, 1], [2]]
    """
    if max_members is not None and (isinstance(max_members, bool) or max_members < 1):
        raise DataError(f"ensemble size must be at least 1 member, got {max_members!r}")
    buckets: dict[tuple[tuple[str, Any], ...], list[int]] = {}
    alone: list[list[int]] = []
    firsts: list[tuple[int, Any]] = []  # (first index, bucket key or group) to keep the input order
    for i, cfg in enumerate(configs):
        if ensemble_problem(cfg) is not None:
            alone.append([i])
            firsts.append((i, alone[-1]))
            continue
        key = ensemble_key(cfg)
        if key not in buckets:
            buckets[key] = []
            firsts.append((i, key))
        buckets[key].append(i)
    out: list[list[int]] = []
    for _, what in sorted(firsts, key=lambda t: t[0]):
        members = what if isinstance(what, list) else buckets[what]
        limit = len(members) if max_members is None else max_members
        n = max(1, math.ceil(len(members) / limit))
        size, extra = divmod(len(members), n)
        at = 0
        for j in range(n):
            take = size + (1 if j < extra else 0)
            out.append(members[at : at + take])
            at += take
    return out


def check_members(configs: Sequence[RunConfig], labels: Sequence[str] | None = None) -> None:
    """Raise a one-line :class:`DataError` unless ``configs`` can train as one ensemble."""
    labels = list(labels) if labels is not None else [f"member {i}" for i in range(len(configs))]
    if not configs:
        raise DataError("an ensemble needs at least one run; pass one config and run handle per member")
    for cfg, label in zip(configs, labels, strict=True):
        problem = ensemble_problem(cfg)
        if problem is not None:
            raise DataError(f"{label} cannot train in an ensemble: {problem}")
    first = dict(ensemble_key(configs[0]))
    for cfg, label in zip(configs[1:], labels[1:], strict=True):
        for name, value in ensemble_key(cfg):
            if first[name] != value:
                raise DataError(
                    f"ensemble members must share the architecture: {label} has {name} = {value!r} but "
                    f"{labels[0]} has {first[name]!r}; train them in separate ensembles "
                    "(plan_groups / run_grid group runs by architecture)")


# ----------------------------------------------------------------------------- evaluation
class _EvalPlan:
    """The distinct eval sets of the members, each with the members that evaluate on it."""

    def __init__(self, member_sets: Sequence[Sequence[EvalData]]) -> None:
        self.entries: list[tuple[EvalData, list[int]]] = []
        self.order = [[es.skill for es in sets] for sets in member_sets]
        for k, sets in enumerate(member_sets):
            for es in sets:
                for known, members in self.entries:
                    if (known.skill == es.skill and known.kind == es.kind and known.tokens.shape == es.tokens.shape
                            and torch.equal(known.tokens, es.tokens) and torch.equal(known.loss_mask, es.loss_mask)
                            and torch.equal(known.answer_mask, es.answer_mask)):
                        members.append(k)
                        break
                else:
                    self.entries.append((es, [k]))

    @torch.no_grad()
    def evaluate(self, stack: StackedGPT, batch_size: int, device: torch.device,
                 precision: str) -> list[dict[str, dict[str, float]]]:
        """Every member's ``{skill: {"loss", "acc"}}``, as :func:`~scalelab.harness.evaluation.evaluate`
        with ``batch_size`` rows per member and pass (fewer if the activations would not fit)."""
        found: list[dict[str, dict[str, float]]] = [{} for _ in self.order]
        for es, members in self.entries:
            params = stack.subset(members)  # (m, ...) per name
            m = len(members)
            n, width = es.tokens.shape  # (N, T)
            vocab = stack.cfg.vocab_size
            widest = max(4 * stack.cfg.d_model, vocab)
            rows = max(1, min(batch_size, _EVAL_ACTIVATION_BUDGET // (m * (width - 1) * widest)))
            loss_sum = torch.zeros(m, dtype=torch.float64, device=device)
            n_correct = torch.zeros(m, dtype=torch.int64, device=device)
            n_tokens = n_rows = 0
            for lo in range(0, n, rows):
                tok = es.tokens[lo : lo + rows]  # (b, T)
                mask = es.loss_mask[lo : lo + rows]  # (b, T-1)
                answer = es.answer_mask[lo : lo + rows]  # (b, T-1)
                b = tok.shape[0]
                x, y = tok[:, :-1], tok[:, 1:]  # (b, T-1) each
                with autocast(device, precision):
                    hidden = stack.hidden(params, x.unsqueeze(0).expand(m, b, width - 1))  # (m, b*(T-1), C)
                has_answer = answer.any(dim=1)  # (b,)
                for j in range(m):  # output layer, loss and accuracy one member at a time
                    with autocast(device, precision):
                        logits = stack.head(params, hidden, j).view(b, width - 1, vocab)  # (b, T-1, V)
                    ce = token_losses(logits, y)  # (b, T-1) fp32
                    loss_sum[j] += (ce.double() * mask).sum()
                    if es.kind == "task":
                        right = (logits.argmax(dim=-1) == y) | ~answer  # (b, T-1)
                        n_correct[j] += (right.all(dim=1) & has_answer).sum()
                n_tokens += int(mask.sum().item())
                n_rows += int(has_answer.sum().item())
            for j, k in enumerate(members):
                metrics = {"loss": _ratio(float(loss_sum[j].item()), n_tokens)}
                if es.kind == "task":
                    metrics["acc"] = _ratio(float(n_correct[j].item()), n_rows)
                found[k][es.skill] = metrics
        return [{skill: found[k][skill] for skill in order} for k, order in enumerate(self.order)]


def _ratio(num: float, den: int) -> float:
    return num / den if den else math.nan


def _stored_eval(run: RunHandle, step: int) -> dict[str, dict[str, float]]:
    """The evaluation a run recorded at ``step`` (for a session that did not evaluate there)."""
    out: dict[str, dict[str, float]] = {}
    for r in run.read_metrics():
        if r["step"] == step and r.get("split") == "eval":
            value = r["value"]
            out.setdefault(r["source"], {})[r["metric"]] = math.nan if value is None else value
    return out


# ----------------------------------------------------------------------------- the session
class _Member:
    """One run of the ensemble: its config, store handle, data, records and torch containers."""

    def __init__(self, index: int, config: RunConfig, run: RunHandle, stream: Any, eval_sets: list[EvalData],
                 observer: GuardedObserver | None) -> None:
        self.index = index
        self.config = config
        self.run = run
        self.stream = stream
        self.eval_sets = eval_sets
        self.observer = observer
        self.source_names = list(stream.names)
        self.label = f"run {getattr(run, 'run_id', index)}"
        self.state: dict[str, Any] | None = None  # its checkpoint, if any
        self.step = 0  # the checkpoint's step (0: fresh)

    def lr(self, update: int) -> float:
        """The learning rate of ``update`` (0-based), as the sequential trainer's LambdaLR gives it."""
        o = self.config.optim
        return o.lr * lr_multiplier(update, steps=self.config.steps, warmup_steps=o.warmup_steps,
                                    min_lr_ratio=o.min_lr_ratio)


def _check_state(member: _Member, state: Mapping[str, Any]) -> int:
    """The checkpoint's step, after the format and config checks of the sequential trainer."""
    if state.get("format") != CHECKPOINT_FORMAT:
        raise DataError(f"the checkpoint of {member.label} has format {state.get('format')!r}, expected "
                        f"{CHECKPOINT_FORMAT!r}; start a new run id")
    saved = RunConfig.from_dict(json.loads(state["config"]))
    if identity(saved) != identity(member.config):
        raise DataError(f"the checkpoint of {member.label} was written with a different config; use a new run id "
                        "or the same config")
    return int(state["step"])


class _Torch:
    """A member's own GPT, ``torch.optim.AdamW`` and ``LambdaLR``: filled from and into its
    checkpoints (the training itself runs on the stacked parameters), its records and the torch
    RNG state its checkpoints hold."""

    def __init__(self, mb: _Member, vocab: int, device: torch.device) -> None:
        torch.manual_seed(mb.config.init_seed)  # as train(); building the modules draws from it
        model = build_model(mb.config, vocab).to(device)
        if not isinstance(model, GPT):  # check_members keeps other kinds out; never stack them
            raise DataError(f"{mb.label} has model.kind {mb.config.model.kind!r}; the ensemble trainer stacks "
                            "GPTs only, so train the run on its own")
        self.model: GPT = model
        # Without dropout nothing else draws from the torch RNG, so the sequential trainer's
        # checkpoints all hold this state (or the one restored from its checkpoint).
        self.torch_rng = torch.get_rng_state() if mb.state is None else mb.state["rng"]["torch"]
        self.optimizer, self.scheduler = build_optimizer(self.model, mb.config)
        if mb.state is not None:
            self.model.load_state_dict(mb.state["model"])
            self.optimizer.load_state_dict(mb.state["optimizer"])
            self.scheduler.load_state_dict(mb.state["scheduler"])


class _Session:
    """One training session of the ensemble's unfinished members, from their common step."""

    def __init__(self, members: list[_Member], device: torch.device, precision: str, ensemble_info: dict[str, Any],
                 progress: Callable[[int, Progress], None] | None) -> None:
        self.members = members
        self.device, self.precision = device, precision
        self.ensemble_info = ensemble_info
        self.progress = progress
        cfg = members[0].config
        self.steps = cfg.steps
        self.batch_size, self.seq_len = cfg.data.batch_size, cfg.data.seq_len
        self.every = cfg.checkpoint_every
        self.eval_at = set(eval_steps(cfg.steps, cfg.eval.count))
        self.eval_batch = cfg.eval.batch_size
        self.torch = [_Torch(mb, members[0].stream.vocab_size, device) for mb in members]
        self.start = members[0].step
        self.params, self.non_embedding = count_params(self.torch[0].model)
        self.stack = StackedGPT([t.model for t in self.torch])
        hyper = [MemberHyper(mb.config.optim.betas, mb.config.optim.eps, mb.config.optim.weight_decay) for mb in members]
        self.adam = BatchedAdamW(self.stack.flat, self.stack.n_decay, hyper)
        if self.start > 0:
            self._load_moments()
        self.clips = [mb.config.optim.grad_clip for mb in members]
        self.plan = _EvalPlan([mb.eval_sets for mb in members])
        self.recs = [Recorder(self.batch_size, self.seq_len, self.non_embedding) for _ in members]
        for rec, mb in zip(self.recs, members, strict=True):
            rec.observer = mb.observer

    # -- optimiser state <-> the members' torch.optim.AdamW
    def _moment_slices(self, k: int) -> list[tuple[torch.Tensor, int, int]]:
        """Member ``k``'s parameters with their columns in the stacked matrices."""
        named = dict(self.torch[k].model.named_parameters())
        return [(named[n], *self.stack.offsets[n]) for n in self.stack.names]

    def _load_moments(self) -> None:
        for k, mb in enumerate(self.members):
            for param, lo, hi in self._moment_slices(k):
                st = self.torch[k].optimizer.state.get(param, {})
                if "exp_avg" in st:
                    self.adam.exp_avg[k, lo:hi].copy_(st["exp_avg"].reshape(-1))
                    self.adam.exp_avg_sq[k, lo:hi].copy_(st["exp_avg_sq"].reshape(-1))
                    if int(float(st["step"])) != self.start:
                        raise DataError(f"the checkpoint of {mb.label} has AdamW at update {int(float(st['step']))} "
                                        f"but step {self.start}; delete its checkpoint.pt to restart the run")
        self.adam.step_count = self.start

    def _member_state(self, k: int, step: int) -> dict[str, Any]:
        """Member ``k``'s checkpoint, in the sequential trainer's format."""
        mb, own = self.members[k], self.torch[k]
        model, opt, sched = own.model, own.optimizer, own.scheduler
        self.stack.store_member(k, model)
        scalar = torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32
        for param, lo, hi in self._moment_slices(k):
            opt.state[param] = {
                "step": torch.tensor(float(self.adam.step_count), dtype=scalar),
                "exp_avg": self.adam.exp_avg[k, lo:hi].view(param.shape).clone(),
                "exp_avg_sq": self.adam.exp_avg_sq[k, lo:hi].view(param.shape).clone(),
            }
        nxt = mb.lr(step)  # what LambdaLR holds after `step` updates
        for group in opt.param_groups:
            group["lr"] = nxt
        sched.load_state_dict({**sched.state_dict(), "last_epoch": step, "_step_count": step + 1,
                               "_last_lr": [nxt] * len(opt.param_groups)})
        rng = rng_state()
        rng["torch"] = own.torch_rng.clone()  # what a dropout-free sequential run holds
        return {
            "format": CHECKPOINT_FORMAT,
            "step": step,
            "data_cursor": step,
            "config": json.dumps(mb.config.to_dict(), sort_keys=True),
            "model": model.state_dict(),
            "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict(),
            "rng": rng,
        }

    def _checkpoint(self, step: int) -> None:
        for k, mb in enumerate(self.members):
            self.recs[k].flush(mb.run)  # every record of steps <= step first
            mb.run.save_checkpoint(self._member_state(k, step))

    # -- records
    def _evaluate(self, step: int) -> list[dict[str, dict[str, float]]]:
        results = self.plan.evaluate(self.stack, self.eval_batch, self.device, self.precision)
        for rec, res in zip(self.recs, results, strict=True):
            for skill, metrics in res.items():
                for metric, value in metrics.items():
                    rec.add(step, "eval", skill, metric, value)
        return results

    def _online_losses(self, k: int, step: int, row_loss: torch.Tensor, row_count: torch.Tensor,
                       source_ids: np.ndarray, loss: float) -> None:
        """Member ``k``'s ``online_loss`` records of ``step``, as the sequential trainer's."""
        mb, rec = self.members[k], self.recs[k]
        sums = row_loss.detach().double().cpu().numpy()  # (B,)
        counts = row_count.detach().cpu().numpy()  # (B,)
        n = len(mb.source_names)
        by_src = np.bincount(source_ids, weights=sums, minlength=n)  # (S,)
        tok_src = np.bincount(source_ids, weights=counts, minlength=n)  # (S,)
        rec.add(step, "train", "all", "online_loss", loss)
        for i in np.flatnonzero(tok_src):
            rec.add(step, "train", mb.source_names[i], "online_loss", by_src[i] / tok_src[i])

    def _batches(self, step: int) -> tuple[torch.Tensor, torch.Tensor, list[np.ndarray]]:
        """Batch ``step`` of every member: tokens (K, B, T), loss mask (K, B, T-1), source ids."""
        tokens, masks, ids = [], [], []
        for mb in self.members:
            batch, source_ids = mb.stream.batch(step - 1, self.batch_size, self.seq_len)
            tokens.append(batch.tokens)
            masks.append(batch.loss_mask)
            ids.append(np.asarray(source_ids))
        tok = torch.from_numpy(np.stack(tokens)).to(self.device, non_blocking=True)  # (K, B, T)
        mask = torch.from_numpy(np.stack(masks)).to(self.device, non_blocking=True)  # (K, B, T-1)
        return tok, mask, ids

    def _step(self, step: int) -> tuple[torch.Tensor, torch.Tensor, list[float], list[float], list[np.ndarray]]:
        """Train every member on its batch ``step``: per-row masked loss sums and loss-token
        counts (K, B), each member's loss before the update, the learning rates used, source ids."""
        stack, K = self.stack, len(self.members)
        tokens, mask, source_ids = self._batches(step)
        x, y = tokens[:, :, :-1], tokens[:, :, 1:]  # (K, B, T-1) each
        B, T1, V = self.batch_size, self.seq_len - 1, stack.cfg.vocab_size
        with autocast(self.device, self.precision):
            hidden = stack.hidden(stack.params, x)  # (K, B*(T-1), C)
        per_member = []
        for k in range(K):  # the output layer and loss one member at a time (memory: one (N, V) at a time)
            with autocast(self.device, self.precision):
                logits = stack.head(stack.params, hidden, k)  # (B*(T-1), V)
            per_member.append(token_losses(logits.view(B, T1, V), y[k]))  # (B, T-1) fp32
        ce = torch.stack(per_member)  # (K, B, T-1)
        row_loss = (ce * mask).sum(dim=2)  # (K, B)
        row_count = mask.sum(dim=2)  # (K, B)
        losses = row_loss.sum(dim=1) / row_count.sum(dim=1).clamp(min=1)  # (K,) mean over loss tokens
        stack.backward(losses.sum())  # members are independent: each gets its own gradient
        if any(c > 0 for c in self.clips):
            clip_grad_norms(stack.grad, self.clips)
        lrs = [mb.lr(step - 1) for mb in self.members]
        self.adam.step(stack.grad, lrs)
        return row_loss.detach(), row_count, losses.detach().tolist(), lrs, source_ids

    # -- the loop
    def run(self, stop_after: int | None, t_start: float) -> list[TrainSummary]:
        start, K = self.start, len(self.members)
        for k, mb in enumerate(self.members):
            mb.run.truncate_metrics(after_step=start if mb.state is not None else -1)
            mb.run.set_status("running", step=start, device=str(self.device), precision=self.precision,
                              torch_threads=torch.get_num_threads(), world_size=1, n_params=self.params,
                              n_params_nonembedding=self.non_embedding, ensemble={**self.ensemble_info, "index": k})
            if mb.observer is not None:
                provenance = getattr(mb.run, "provenance", None)
                mb.observer.call("start", run_id=str(getattr(mb.run, "run_id", "run")), config=mb.run.config(),
                                 provenance=provenance() if provenance else {}, start_step=start,
                                 facts={"n_params": self.params, "n_params_nonembedding": self.non_embedding})
        last_eval: list[dict[str, dict[str, float]]] = [{} for _ in self.members]
        last_eval_step = -1
        if start == 0:
            last_eval, last_eval_step = self._evaluate(0), 0
            for k, mb in enumerate(self.members):
                self.recs[k].flush(mb.run)
                if self.progress is not None:
                    self.progress(k, Progress(0, self.steps, math.nan, last_eval[k]))
        end = self.steps if stop_after is None else min(self.steps, max(stop_after, start))
        positions = self.batch_size * (self.seq_len - 1)  # per member
        window_tokens, window_time = 0, 0.0  # per member; the wall clock is the ensemble's
        total_tokens, total_time = 0, 0.0
        for step in range(start + 1, end + 1):
            t0 = time.perf_counter()
            row_loss, row_count, loss_values, lrs, source_ids = self._step(step)
            dt = time.perf_counter() - t0
            window_tokens += positions
            window_time += dt
            for k in range(K):
                self._online_losses(k, step, row_loss[k], row_count[k], source_ids[k], loss_values[k])
            is_eval = step in self.eval_at
            evals: list[dict[str, dict[str, float]]] = [{} for _ in self.members]
            if is_eval:
                evals = last_eval = self._evaluate(step)
                last_eval_step = step
            scheduled = step == self.steps or (self.every > 0 and step % self.every == 0)
            tps = None
            if is_eval or scheduled:
                tps = window_tokens / window_time if window_time > 0 else math.nan
                for rec, lr in zip(self.recs, lrs, strict=True):
                    rec.add(step, "train", "all", "lr", lr)
                    rec.add(step, "train", "all", "tokens_per_s", tps)
                total_tokens += window_tokens
                total_time += window_time
                window_tokens, window_time = 0, 0.0
            if scheduled or step == end:
                self._checkpoint(step)
            elif is_eval:
                for rec, mb in zip(self.recs, self.members, strict=True):
                    rec.flush(mb.run)
            if self.progress is not None:
                for k in range(K):
                    self.progress(k, Progress(step, self.steps, loss_values[k], evals[k], tps))
        final = max(end, start)
        finished = final >= self.steps
        summaries = []
        for k, mb in enumerate(self.members):
            ev = last_eval[k] if last_eval_step == final else _stored_eval(mb.run, final)
            if finished and start < self.steps:
                mb.run.set_status("finished", step=final, seconds=round(time.perf_counter() - t_start, 3))
            if mb.observer is not None:
                mb.observer.call("finish", "finished" if finished else "paused")
            tokens_done = final * positions
            summaries.append(TrainSummary(
                step=final, steps=self.steps, finished=finished, resumed_from=start if mb.state is not None else None,
                params=self.params, non_embedding_params=self.non_embedding, tokens=tokens_done,
                flops=6.0 * self.non_embedding * tokens_done, final_eval=ev, seconds=time.perf_counter() - t_start,
                tokens_per_s=total_tokens / total_time if total_time > 0 else math.nan,
                device=str(self.device), world_size=1))
        return summaries


# ----------------------------------------------------------------------------- entry point
def train_ensemble(
    configs: Sequence[RunConfig],
    runs: Sequence[RunHandle],
    *,
    progress: Callable[[int, Progress], None] | None = None,
    stop_after: int | None = None,
    observers: Sequence[Observer | None] | None = None,
) -> list[TrainSummary]:
    """Train (or resume) K runs of one architecture together, each into its own run.

    Parameters
    ----------
    configs : sequence of RunConfig
        One per member; they must share :func:`ensemble_key` and the vocabulary size, and have
        no dropout and no ``compile``. Everything else may differ. Sources, schedules and
        models are built (and fail with a DataError) before anything is written.
    runs : sequence of RunHandle
        One store handle per member, distinct runs (registered here if new; an existing run
        must have the same config, the device aside). Each run's lock is held while training.
    progress : callable, optional
        Called as ``progress(member_index, Progress)`` after every step for every member (and
        after the step-0 evaluation of a fresh start). An exception it raises stops the
        ensemble like a crash: the members are marked failed and resume from their checkpoints.
    stop_after : int, optional
        Pause after this step: every member flushes its records and writes a checkpoint, status
        left ``running``. ``None`` trains to ``steps``.
    observers : sequence of Observer or None, optional
        One per member (``None`` entries: none). Default: each member's W&B observer when its
        config or ``$SCALELAB_WANDB`` asks for one, as in :func:`~scalelab.harness.trainer.train`.

    Returns
    -------
    list of TrainSummary
        One per member, in order; ``tokens_per_s`` is the member's tokens over the ensemble's
        training wall clock.

    Raises
    ------
    DataError
        Members that do not share the architecture (naming the first differing field), dropout
        or compile, a data-parallel launch, the same run twice, a bad config, source, store or
        checkpoint.

    Examples
    --------
    >>> from scalelab.harness.config import load_config
    >>> from scalelab.store.runs import RunStore
    >>> base = load_config("modadd.toml").to_dict()  # doctest: +SKIP
    >>> cfgs = [RunConfig.from_dict({**base, "init_seed": s}) for s in range(4)]  # doctest: +SKIP
    >>> store = RunStore("runs")  # doctest: +SKIP
    >>> summaries = train_ensemble(cfgs, [store.run(f"seed{s}") for s in range(4)])  # doctest: +SKIP
    """
    t_start = time.perf_counter()
    configs, runs = list(configs), list(runs)
    if len(configs) != len(runs):
        raise DataError(f"train_ensemble got {len(configs)} configs but {len(runs)} runs; pass one run per config")
    labels = [f"run {getattr(r, 'run_id', i)}" for i, r in enumerate(runs)]
    if len(set(labels)) != len(labels):
        twice = next(lab for lab in labels if labels.count(lab) > 1)
        raise DataError(f"{twice} appears twice in the ensemble; give every member its own run")
    check_members(configs, labels)
    if distributed.current_launch() is not None:
        raise DataError("ensembles train in one process; launch without torchrun, or train the runs on their own")
    if stop_after is not None and stop_after < 0:
        raise DataError(f"stop_after must be >= 0, got {stop_after}")
    if observers is not None and len(observers) != len(configs):
        raise DataError(f"train_ensemble got {len(observers)} observers for {len(configs)} runs; pass one per run (or None)")
    device = select_device(configs[0].device)
    precision = resolve_precision(configs[0].precision, device)
    streams = _build_streams(configs)  # bad sources or schedules fail here, before any write
    vocab = [s.vocab_size for s in streams]
    if len(set(vocab)) > 1:
        j = next(i for i, v in enumerate(vocab) if v != vocab[0])
        raise DataError(f"ensemble members must share the vocabulary: {labels[j]}'s sources need {vocab[j]} token ids "
                        f"but {labels[0]}'s need {vocab[0]}; train them in separate ensembles")
    prepared: dict[str, list[EvalData]] = {}  # members with the same sources share eval sets
    eval_sets = []
    for s, c in zip(streams, configs, strict=True):
        key = json.dumps([_sources_key(c), c.data.seq_len, c.eval.max_examples])
        if key not in prepared:
            prepared[key] = prepare_eval_sets(s.eval_sets(c.data.seq_len), c.eval.max_examples, device)
        eval_sets.append(prepared[key])
    chosen = list(observers) if observers is not None else [config_observer(c) for c in configs]
    members = [_Member(i, c, r, s, e, GuardedObserver(o) if o is not None else None)
               for i, (c, r, s, e, o) in enumerate(zip(configs, runs, streams, eval_sets, chosen, strict=True))]
    info = {"members": len(members), "runs": [str(getattr(r, "run_id", i)) for i, r in enumerate(runs)]}
    cuda = [torch.cuda.current_device()] if device.type == "cuda" else []  # CUDA
    with contextlib.ExitStack() as held:
        for mb in members:
            held.enter_context(mb.run.lock())  # re-entrant: a caller may already hold it
            _register(mb, device, precision, info)
        with torch.random.fork_rng(devices=cuda):  # the caller's global torch RNG is left alone
            active: list[_Member] = []
            try:
                for mb in members:
                    mb.state = mb.run.load_checkpoint()
                    mb.step = _check_state(mb, mb.state) if mb.state is not None else 0
                active = [mb for mb in members if mb.step < mb.config.steps]
                if active:
                    _common_step(active)
                    session = _Session(active, device, precision, info, progress)
                    trained = dict(zip((mb.index for mb in active), session.run(stop_after, t_start), strict=True))
                else:
                    trained = {}
            except BaseException as exc:
                msg = "interrupted" if isinstance(exc, KeyboardInterrupt) else f"{type(exc).__name__}: {exc}"
                for mb in active:
                    if mb.observer is not None:
                        mb.observer.call("finish", "failed")
                    with contextlib.suppress(Exception):  # the store itself may be what failed
                        mb.run.set_status("failed", error=(msg.splitlines() or [type(exc).__name__])[0])
                raise
    return [trained[mb.index] if mb.index in trained else _finished_summary(mb, vocab[0], device, t_start)
            for mb in members]


def _sources_key(config: RunConfig) -> str:
    return json.dumps({n: [spec.kind, dict(spec.options)] for n, spec in config.data.sources.items()},
                      sort_keys=True, default=repr)


def _build_streams(configs: Sequence[RunConfig]) -> list[Any]:
    """Each member's data stream, as :func:`~scalelab.harness.trainer.build_data` builds it, with
    sources of the same name, kind and options built once and shared (sampling is a pure
    function of the generator it is given, so members can share a source)."""
    from scalelab.harness.mixture import DataStream, schedule_from_config
    from scalelab.harness.sources import make_source

    built: dict[str, Any] = {}
    streams = []
    for config in configs:
        sources = {}
        for name, spec in config.data.sources.items():
            key = json.dumps([name, spec.kind, dict(spec.options)], sort_keys=True, default=repr)
            if key not in built:
                built[key] = make_source(spec.kind, name=name, **dict(spec.options))
            sources[name] = built[key]
        stream = DataStream(sources, schedule_from_config(config.data.schedule.config()), config.data_seed,
                            total_steps=config.steps)
        if config.data.seq_len < stream.min_seq_len():
            build_data(config)  # raises the trainer's error naming the source and the length it needs
            raise DataError(f"data.seq_len {config.data.seq_len} is shorter than the sources need "
                            f"({stream.min_seq_len()}); raise data.seq_len")
        streams.append(stream)
    return streams


def _register(mb: _Member, device: torch.device, precision: str, info: Mapping[str, Any]) -> None:
    """Register a new member (its provenance names the ensemble) or check an existing one's config."""
    if not mb.run.exists:
        mb.run.start(mb.config.to_dict(), {**provenance(mb.config, device, precision, 1), "ensemble": dict(info)})
    else:
        start_run(mb.config, mb.run, device, precision, 1)


def _common_step(active: list[_Member]) -> None:
    """Bring members behind the most advanced one to its step with the sequential trainer."""
    target = max(mb.step for mb in active)
    for mb in active:
        if mb.step < target:
            train(mb.config, mb.run, stop_after=target)
            mb.state = mb.run.load_checkpoint()
            mb.step = _check_state(mb, mb.state) if mb.state is not None else 0
            if mb.step != target:
                raise RuntimeError(f"{mb.label} was trained to step {target} but its checkpoint is at {mb.step}")


def _finished_summary(mb: _Member, vocab: int, device: torch.device, t_start: float) -> TrainSummary:
    """The summary of a member that had already finished (nothing trained), as ``train`` gives it."""
    cfg = mb.config
    params, non_embedding = count_params(build_model(cfg, vocab))
    tokens = mb.step * cfg.data.batch_size * (cfg.data.seq_len - 1)
    return TrainSummary(step=mb.step, steps=cfg.steps, finished=True, resumed_from=mb.step, params=params,
                        non_embedding_params=non_embedding, tokens=tokens, flops=6.0 * non_embedding * tokens,
                        final_eval=_stored_eval(mb.run, mb.step), seconds=time.perf_counter() - t_start, tokens_per_s=math.nan,
                        device=str(device), world_size=1)
