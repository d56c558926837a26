"""Compute-optimal allocation for any law of (N, D) under the budget C = 6 N D."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from scalelab.laws.base import Law

__all__ = ["FLOPS_PER_PARAM_TOKEN", "numeric_compute_optimal"]

#: training FLOPs per parameter per token (forward + backward), as in Kaplan et al. 2020
FLOPS_PER_PARAM_TOKEN = 6.0

_GOLDEN = (np.sqrt(5.0) - 1.0) / 2.0


def numeric_compute_optimal(
    law: Law, theta: np.ndarray, compute: float | np.ndarray, *, iterations: int = 200
) -> dict[str, np.ndarray]:
    """Minimise ``law(N, C / 6N)`` over ``log N`` by golden-section search, batched over theta.

    The search brackets N between 1 parameter and C/6 (one token), which holds every
    allocation a real budget allows; the loss along the budget line is unimodal for the
    laws scalelab ships. Returns ``N``, ``D`` and the predicted ``loss``.
    """
    theta = np.asarray(theta, dtype=float)
    batch = theta.shape[:-1]
    c = np.broadcast_to(np.asarray(compute, dtype=float), batch).astype(float)
    flat_theta = theta.reshape(-1, theta.shape[-1])
    flat_c = c.reshape(-1)
    lo = np.zeros_like(flat_c)
    hi = np.log(flat_c / FLOPS_PER_PARAM_TOKEN)

    def loss_at(log_n: np.ndarray) -> np.ndarray:
        n = np.exp(log_n)
        d = flat_c / (FLOPS_PER_PARAM_TOKEN * n)
        # paired evaluation: theta row i with point i (laws broadcast theta[..., k, None])
        return law.evaluate(flat_theta, {"N": n[:, None], "D": d[:, None]})[:, 0]

    x1 = hi - _GOLDEN * (hi - lo)
    x2 = lo + _GOLDEN * (hi - lo)
    f1, f2 = loss_at(x1), loss_at(x2)
    for _ in range(iterations):
        left = f1 < f2
        hi = np.where(left, x2, hi)
        lo = np.where(left, lo, x1)
        new_x1 = hi - _GOLDEN * (hi - lo)
        new_x2 = lo + _GOLDEN * (hi - lo)
        x1, x2 = np.where(left, new_x1, x2), np.where(left, x1, new_x2)
        f_new = loss_at(np.where(left, x1, x2))
        f1, f2 = np.where(left, f_new, f2), np.where(left, f1, f_new)
        if np.all(hi - lo < 1e-10):
            break
    log_n = (lo + hi) / 2
    n = np.exp(log_n)
    d = flat_c / (FLOPS_PER_PARAM_TOKEN * n)
    return {
        "N": n.reshape(batch),
        "D": d.reshape(batch),
        "loss": loss_at(log_n).reshape(batch),
    }
