"""Evaluation: the log-spaced eval schedule and per-skill loss and exact-match accuracy.

Loss is the mean cross-entropy (nats, computed in fp32) over the ``loss_mask`` tokens of an eval
set. For a task, an example is correct when every ``answer_mask`` token is the argmax under
teacher forcing, which equals greedy decoding's exact match of the answer; text domains report
loss only.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from scalelab.errors import DataError
from scalelab.harness.device import autocast

__all__ = ["EvalData", "eval_steps", "evaluate", "prepare_eval_sets", "token_losses"]


def eval_steps(steps: int, count: int) -> list[int]:
    """``count`` log-spaced steps from 0 to ``steps``, dense early: 0, 1, 2, 4, ..., ``steps``.

    Each point after 0 and 1 multiplies the previous one by the ratio that would reach ``steps``
    evenly in log space with the points left (rounded, at least one step apart), so the result
    has exactly ``min(count, steps + 1)`` distinct steps and always ends at ``steps``.

    Examples
    --------
    >>> eval_steps(1000, 12)
    [0, 1, 2, 4, 8, 16, 32, 64, 127, 253, 503, 1000]
    >>> eval_steps(3, 10)
    [0, 1, 2, 3]
    """
    if steps < 1 or count < 2:
        raise DataError(f"eval schedule needs steps >= 1 and count >= 2, got steps={steps}, count={count}")
    if count >= steps + 1:
        return list(range(steps + 1))
    out = [0]
    for i in range(1, count):
        left = count - i  # points still to place, this one included
        prev = out[-1]
        if left == 1:
            nxt = steps
        elif prev == 0:
            nxt = 1
        else:
            nxt = round(prev * (steps / prev) ** (1.0 / left))
        out.append(min(max(prev + 1, nxt), steps - (left - 1)))
    return out


@dataclass(frozen=True)
class EvalData:
    """One held-out eval set, on the device: a skill name, its kind and its rows."""

    skill: str
    kind: str  # "task" (loss and accuracy) or "text" (loss)
    tokens: torch.Tensor  # (N, T) int64; input tokens[:, :-1], targets tokens[:, 1:]
    loss_mask: torch.Tensor  # (N, T-1) bool: tokens whose loss counts
    answer_mask: torch.Tensor  # (N, T-1) bool: tokens that must all be argmax-correct (tasks)


def prepare_eval_sets(eval_sets: Mapping[str, Any], max_examples: int, device: torch.device) -> list[EvalData]:
    """Move eval sets to ``device`` as tensors, keeping at most ``max_examples`` rows of each.

    A larger set is cut to ``max_examples`` rows spread evenly over it (rows
    ``round(i * (n - 1) / (max_examples - 1))``), not its first rows: sources store their
    held-out examples in a fixed order (often sorted by key, e.g. addition by first operand),
    so the first rows alone would be a biased sample.

    Parameters
    ----------
    eval_sets : mapping of str to EvalSet
        Skill name -> :class:`~scalelab.harness.sources.base.EvalSet` (``kind`` and ``batch``),
        as returned by :meth:`~scalelab.harness.mixture.DataStream.eval_sets`.
    max_examples : int
        Rows kept per eval set.
    device : torch.device
        Where evaluation runs.
    """
    out: list[EvalData] = []
    for skill, es in eval_sets.items():
        batch = es.batch
        rows = spread_rows(len(batch.tokens), max_examples)
        tokens = torch.from_numpy(np.ascontiguousarray(batch.tokens[rows], dtype=np.int64))
        loss = torch.from_numpy(np.ascontiguousarray(batch.loss_mask[rows], dtype=bool))
        answer = torch.from_numpy(np.ascontiguousarray(batch.answer_mask[rows], dtype=bool))
        out.append(EvalData(skill, str(es.kind), tokens.to(device), loss.to(device), answer.to(device)))
    return out


def spread_rows(n: int, keep: int) -> slice | np.ndarray:
    """All ``n`` rows when ``n <= keep``, else ``keep`` row indices spread evenly over them."""
    if n <= keep:
        return slice(None)
    if keep <= 1:
        return np.zeros(max(keep, 0), dtype=np.int64)
    return np.unique(np.round(np.linspace(0, n - 1, keep)).astype(np.int64))


def token_losses(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-token cross-entropy in fp32.

    Parameters
    ----------
    logits : torch.Tensor
        ``(B, T, V)`` in any float dtype (cast to fp32 here).
    targets : torch.Tensor
        ``(B, T)`` int64.

    Returns
    -------
    torch.Tensor
        ``(B, T)`` float32 losses in nats.
    """
    B, T, V = logits.shape
    ce = F.cross_entropy(logits.float().reshape(B * T, V), targets.reshape(B * T), reduction="none")
    return ce.view(B, T)  # (B, T)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    eval_sets: Iterable[EvalData],
    *,
    batch_size: int = 256,
    device: torch.device | None = None,
    precision: str = "fp32",
) -> dict[str, dict[str, float]]:
    """Loss (and accuracy for tasks) of ``model`` on every eval set.

    The model is put in eval mode for the call and restored to its previous mode after.

    Returns
    -------
    dict
        ``{skill: {"loss": float, "acc": float}}``; text sets have only ``"loss"``. A set with no
        loss-mask tokens gets NaN.
    """
    was_training = model.training
    model.eval()
    dev = device or next(model.parameters()).device
    results: dict[str, dict[str, float]] = {}
    try:
        for es in eval_sets:
            loss_sum = torch.zeros((), dtype=torch.float64, device=dev)
            n_tokens = torch.zeros((), dtype=torch.int64, device=dev)
            n_correct = torch.zeros((), dtype=torch.int64, device=dev)
            n_rows = torch.zeros((), dtype=torch.int64, device=dev)
            for lo in range(0, es.tokens.shape[0], batch_size):
                tok = es.tokens[lo : lo + batch_size]  # (b, T)
                mask = es.loss_mask[lo : lo + batch_size]  # (b, T-1)
                answer = es.answer_mask[lo : lo + batch_size]  # (b, T-1)
                x, y = tok[:, :-1], tok[:, 1:]  # (b, T-1) each
                with autocast(dev, precision):
                    logits = model(x)  # (b, T-1, V)
                ce = token_losses(logits, y)  # (b, T-1) fp32
                loss_sum += (ce.double() * mask).sum()
                n_tokens += mask.sum()
                if es.kind == "task":
                    right = (logits.argmax(dim=-1) == y) | ~answer  # (b, T-1)
                    has_answer = answer.any(dim=1)  # (b,)
                    n_correct += (right.all(dim=1) & has_answer).sum()
                    n_rows += has_answer.sum()
            metrics = {"loss": _ratio(loss_sum.item(), int(n_tokens.item()))}
            if es.kind == "task":
                metrics["acc"] = _ratio(float(n_correct.item()), int(n_rows.item()))
            results[es.skill] = metrics
    finally:
        model.train(was_training)
    return results


def _ratio(num: float, den: int) -> float:
    return num / den if den else math.nan


def as_records(results: Mapping[str, Mapping[str, float]]) -> list[tuple[str, str, float]]:
    """Flatten :func:`evaluate` output to ``(skill, metric, value)`` triples in a stable order."""
    return [(skill, metric, value) for skill, ms in results.items() for metric, value in ms.items()]
