"""AdamW and gradient clipping for K models at once, each with its own hyperparameters.

Works on the ``(K, P)`` parameter and gradient matrices of
:class:`~scalelab.harness._stacked_gpt.StackedGPT` (row ``k`` = member ``k``; the first
``n_decay`` columns are the matrices that get weight decay). Every operation mirrors one line of
``torch.optim.AdamW``'s single-tensor update (the implementation PyTorch uses on CPU), with each
member's scalars (learning rate, betas, eps, weight decay, bias corrections) as a ``(K, 1)``
column instead of a Python number, so member ``k`` follows the sequence of float32 operations
of a ``torch.optim.AdamW`` of its own (the tests check it to float tolerance):

.. code-block:: text

    param  *= 1 - lr * weight_decay                     (matrices only)
    m       = lerp(m, grad, 1 - beta1)
    v       = v * beta2 + (1 - beta2) * grad * grad
    denom   = sqrt(v) / sqrt(1 - beta2**t) + eps
    param  += (-lr / (1 - beta1**t)) * m / denom

Clipping matches ``torch.nn.utils.clip_grad_norm_`` per member: the global 2-norm of the
member's gradient, and a factor ``min(1, max_norm / (norm + 1e-6))``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

__all__ = ["BatchedAdamW", "MemberHyper", "clip_grad_norms"]


@dataclass(frozen=True)
class MemberHyper:
    """One member's AdamW settings (its ``optim`` table, less the schedule)."""

    betas: tuple[float, float]
    eps: float
    weight_decay: float


def _column(values: Sequence[float], like: torch.Tensor) -> torch.Tensor:
    """``(K, 1)`` tensor of Python floats, rounded to ``like``'s dtype as AdamW's scalars are."""
    return torch.tensor(list(values), dtype=like.dtype, device=like.device).view(-1, 1)


class BatchedAdamW:
    """Decoupled-weight-decay Adam over a ``(K, P)`` parameter matrix, member by member.

    Parameters
    ----------
    params : torch.Tensor
        ``(K, P)`` parameters, updated in place.
    n_decay : int
        The first ``n_decay`` columns are weight-decayed (matrices); the rest are not.
    hyper : sequence of MemberHyper
        One per row.

    Attributes
    ----------
    step_count : int
        Updates taken (AdamW's ``step`` state, the same for every member).
    exp_avg, exp_avg_sq : torch.Tensor
        ``(K, P)`` first and second moments.
    """

    def __init__(self, params: torch.Tensor, n_decay: int, hyper: Sequence[MemberHyper]) -> None:
        if params.dim() != 2 or params.shape[0] != len(hyper):
            raise ValueError(f"params must be (K, P) with K = {len(hyper)} members, got {tuple(params.shape)}")
        self.params = params
        self.n_decay = n_decay
        self.hyper = list(hyper)
        self.step_count = 0
        self.exp_avg = torch.zeros_like(params)  # (K, P)
        self.exp_avg_sq = torch.zeros_like(params)  # (K, P)
        self._one_minus_beta1 = _column([1 - h.betas[0] for h in hyper], params)  # (K, 1)
        self._beta2 = _column([h.betas[1] for h in hyper], params)  # (K, 1)
        self._one_minus_beta2 = _column([1 - h.betas[1] for h in hyper], params)  # (K, 1)
        self._eps = _column([h.eps for h in hyper], params)  # (K, 1)
        self._decays = any(h.weight_decay != 0 for h in hyper)

    @torch.no_grad()
    def step(self, grad: torch.Tensor, lrs: Sequence[float]) -> None:
        """One update of every member with its gradient row and learning rate.

        Parameters
        ----------
        grad : torch.Tensor
            ``(K, P)`` gradients (already clipped).
        lrs : sequence of float
            Each member's learning rate for this update.
        """
        p, m, v = self.params, self.exp_avg, self.exp_avg_sq
        self.step_count += 1
        t = self.step_count
        if self._decays:  # param *= 1 - lr * wd (Python doubles, rounded to float32 like AdamW's)
            factor = _column([1 - lr * h.weight_decay for lr, h in zip(lrs, self.hyper, strict=True)], p)
            p[:, : self.n_decay].mul_(factor)
        m.lerp_(grad, self._one_minus_beta1)
        v.mul_(self._beta2).addcmul_(grad.mul(self._one_minus_beta2), grad)
        bc2_sqrt = _column([(1 - h.betas[1] ** t) ** 0.5 for h in self.hyper], p)  # (K, 1)
        neg_step = _column([-lr / (1 - h.betas[0] ** t) for lr, h in zip(lrs, self.hyper, strict=True)], p)
        denom = (v.sqrt() / bc2_sqrt).add_(self._eps)  # (K, P)
        p.add_(m.mul(neg_step).div_(denom))


@torch.no_grad()
def clip_grad_norms(grad: torch.Tensor, max_norms: Sequence[float]) -> torch.Tensor:
    """Scale each member's gradient row to a 2-norm of at most its ``max_norm`` (0: no clipping).

    Parameters
    ----------
    grad : torch.Tensor
        ``(K, P)`` gradients, scaled in place.
    max_norms : sequence of float
        One bound per member, as ``optim.grad_clip``.

    Returns
    -------
    torch.Tensor
        ``(K,)`` norms before clipping.
    """
    norms = torch.linalg.vector_norm(grad, 2, dim=1)  # (K,)
    bound = torch.tensor(list(max_norms), dtype=grad.dtype, device=grad.device)  # (K,)
    coef = (bound / (norms + 1e-6)).clamp(max=1.0)
    coef = torch.where(bound > 0, coef, torch.ones_like(coef))  # grad_clip 0: off
    grad.mul_(coef.unsqueeze(1))
    return norms
