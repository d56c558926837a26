"""Vectorised Levenberg-Marquardt over many starts (or bootstrap resamples) at once.

Every start is one row of a batch; residuals, Jacobians and the small normal equations of all
rows are computed together with numpy, so 4,500 Chinchilla starts cost a few dozen array
passes rather than 4,500 scipy calls. Robust losses are handled by iteratively reweighted
least squares: at each step the per-point loss is replaced by the quadratic that touches it
with the same slope (for Huber this quadratic lies above the loss, so accepted steps decrease
the true objective), and each row keeps its own Marquardt damping.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from scalelab.fit.problem import Problem

__all__ = ["BatchResult", "default_workers", "minimize_batched", "minimize_batched_parallel"]


@dataclass(frozen=True)
class BatchResult:
    u: np.ndarray  # (S, F) final free-parameter vectors
    objective: np.ndarray  # (S,) final objective values
    converged: np.ndarray  # (S,) bool: met the tolerance before max_iter
    iterations: int


def minimize_batched(
    problem: Problem,
    u0: np.ndarray,
    *,
    weights: np.ndarray | None = None,
    max_iter: int = 200,
    ftol: float = 1e-12,
    xtol: float = 1e-10,
    keep: float | None = None,
    prune_after: int = 15,
) -> BatchResult:
    """Minimise ``sum_i w_i rho(r_i(u))`` for every row of ``u0`` simultaneously.

    Parameters
    ----------
    problem : Problem
        The fitting problem.
    u0 : (S, F) array
        Starting points in internal coordinates.
    weights : (S, n) or (n,) array, optional
        Per-row point weights (bootstrap resamples are rows of counts). Defaults to the
        problem's point weights.
    max_iter : int
        Maximum number of Levenberg-Marquardt iterations per row.
    ftol, xtol : float
        A row stops when an accepted step lowers its objective by less than ``ftol`` relative
        and moves ``u`` by less than ``xtol`` relative, or when its damping saturates.
    keep : float, optional
        Successive halving: after ``prune_after`` iterations only the best ``keep`` fraction
        of the rows (at least 8) keeps iterating, and from then on, every 5 iterations, rows
        within ``1e-3`` (internal units) of a better row are dropped too, since they are
        descending into the same optimum. Dropped rows are returned as they are, marked
        not converged. ``None`` iterates every row to the end.
    """
    u = np.array(np.atleast_2d(u0), dtype=float)
    s, f = u.shape
    lo, hi = problem.param.internal_bounds()
    u = np.clip(u, lo, hi)
    w = problem.weights if weights is None else np.asarray(weights, dtype=float)
    shared_w = w.ndim == 1  # one weight vector for every row: broadcast, never copy
    obj = problem.objective

    r = problem.residuals(u)
    fval = obj.total(r, w)
    lam = np.full(s, 1e-3)
    active = np.isfinite(fval)
    converged = np.zeros(s, dtype=bool)
    eye = np.eye(f)
    it = 0
    for it in range(1, max_iter + 1):
        if keep is not None and it == prune_after + 1:
            n_keep = max(8, int(np.ceil(keep * s)))
            order = np.argsort(np.where(active | converged, fval, np.inf))
            dropped = np.ones(s, dtype=bool)
            dropped[order[:n_keep]] = False
            active &= ~dropped
        if keep is not None and it > prune_after and it % 5 == 0:
            active &= ~_duplicates(u, fval, active)
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        if idx.size == s:  # every row active: views, no copies
            ua, ra, wa = u, r, w
        else:
            ua, ra, wa = u[idx], r[idx], (w if shared_w else w[idx])
        jac = problem.jacobian(ua)  # (a, n, F)
        if not np.isfinite(jac).all():
            np.nan_to_num(jac, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
        omega = wa * obj.irls(ra)  # IRLS weights (a, n)
        jac_t = jac.transpose(0, 2, 1)  # (a, F, n)
        grad = np.matmul(jac_t, (wa * obj.psi(ra))[..., None])[..., 0]
        hess = np.matmul(jac_t, jac * omega[..., None])
        diag = np.einsum("aff->af", hess)
        scale = np.maximum(diag, 1e-12 * (1.0 + diag.max(axis=1, keepdims=True)))
        system = hess + lam[idx, None, None] * scale[:, :, None] * eye
        try:
            step = -np.linalg.solve(system, grad[..., None])[..., 0]
        except np.linalg.LinAlgError:
            step = -np.einsum("afg,ag->af", np.linalg.pinv(system), grad)
        u_new = np.clip(ua + step, lo, hi)
        r_new = problem.residuals(u_new)
        f_new = obj.total(r_new, wa)
        f_old = fval[idx]
        better = f_new < f_old
        # accept improving steps
        acc = idx[better]
        moved = np.abs(u_new[better] - ua[better]).max(axis=1) if acc.size else np.zeros(0)
        u[acc], r[acc] = u_new[better], r_new[better]
        fval[acc] = f_new[better]
        lam[acc] = np.maximum(lam[acc] / 3.0, 1e-12)
        rej = idx[~better]
        lam[rej] = lam[rej] * 4.0
        # convergence tests
        if acc.size:
            small_f = (f_old[better] - f_new[better]) <= ftol * np.maximum(np.abs(f_old[better]), 1e-300)
            small_x = moved <= xtol * (1.0 + np.abs(u[acc]).max(axis=1))
            done = acc[small_f & small_x]
            converged[done] = True
            active[done] = False
        stuck = rej[lam[rej] > 1e12]  # no descent direction left: a (local) optimum
        converged[stuck] = True
        active[stuck] = False
    return BatchResult(u=u, objective=fval, converged=converged, iterations=it)


def _duplicates(u: np.ndarray, fval: np.ndarray, active: np.ndarray, tol: float = 1e-3) -> np.ndarray:
    """Active rows within ``tol`` (max-abs, internal units) of an active row with a lower objective."""
    idx = np.flatnonzero(active)
    out = np.zeros(active.shape, dtype=bool)
    if idx.size < 2:
        return out
    order = idx[np.argsort(fval[idx], kind="stable")]
    pts = u[order]
    dist = np.abs(pts[:, None, :] - pts[None, :, :]).max(axis=-1)  # (a, a)
    close_to_better = np.tril(dist < tol, k=-1).any(axis=1)  # a better-ranked row is close
    out[order[close_to_better]] = True
    return out


def default_workers() -> int:
    """Threads used for batched optimisation: the usable cores, at most 8."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, 8))


def minimize_batched_parallel(
    problem: Problem,
    u0: np.ndarray,
    *,
    weights: np.ndarray | None = None,
    workers: int | None = None,
    min_rows: int = 256,
    **options: Any,
) -> BatchResult:
    """:func:`minimize_batched` on row blocks in parallel threads (numpy releases the GIL).

    Rows are independent, so splitting them changes nothing but speed, except that
    successive halving (``keep``) then keeps the best fraction of each block.
    """
    u0 = np.atleast_2d(u0)
    n_workers = default_workers() if workers is None else max(1, int(workers))
    n_blocks = min(n_workers, max(1, len(u0) // min_rows))
    if n_blocks == 1:
        return minimize_batched(problem, u0, weights=weights, **options)
    rows = np.array_split(np.arange(len(u0)), n_blocks)
    per_row_w = weights is not None and np.ndim(weights) == 2

    def run(idx: np.ndarray) -> BatchResult:
        w = weights[idx] if per_row_w else weights  # type: ignore[index]
        return minimize_batched(problem, u0[idx], weights=w, **options)

    with ThreadPoolExecutor(n_blocks) as pool:
        parts = list(pool.map(run, rows))
    return BatchResult(
        u=np.concatenate([p.u for p in parts]),
        objective=np.concatenate([p.objective for p in parts]),
        converged=np.concatenate([p.converged for p in parts]),
        iterations=max(p.iterations for p in parts),
    )
