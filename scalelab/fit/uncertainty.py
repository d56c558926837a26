"""Uncertainty: Hessian (asymptotic) covariance and the nonparametric bootstrap."""

from __future__ import annotations

import dataclasses

import numpy as np

from scalelab.errors import DataError
from scalelab.fit.batched import minimize_batched_parallel
from scalelab.fit.polish import polish
from scalelab.fit.problem import Problem

__all__ = ["bootstrap_refit", "bootstrap_weights", "hessian_covariance"]


def hessian_covariance(problem: Problem, u: np.ndarray) -> np.ndarray:
    """Asymptotic covariance of the free parameters ``u`` (F, F) at the optimum.

    Uses Huber's (1981, Sec. 7.6) covariance for M-estimators, the ``H1`` form that
    statsmodels' robust linear models also use, applied to the Jacobian of the residuals::

        cov = K^2 * [sum w psi(r)^2 / (n - p)] / m^2 * (J' W J)^-1,
        m = mean psi'(r),   K = 1 + (p / n) * var(psi'(r)) / m^2

    For squared error (``psi' = 1``) this is the usual ``s^2 (J'J)^-1``. For Huber with a
    small ``delta`` the curvature rests on the few points inside ``delta``, so these standard
    errors are rougher than the bootstrap's; prefer the bootstrap when it matters.
    Returns a matrix of NaN when the Jacobian is singular or no point lies in the curved part.
    """
    u = np.asarray(u, dtype=float)[None]
    r = problem.residuals(u)[0]
    jac = problem.jacobian(u)[0]
    w = problem.weights
    n, p = jac.shape
    obj = problem.objective
    nan = np.full((p, p), np.nan)
    if n <= p:
        return nan
    curv = obj.curvature(r)
    m = float(np.sum(w * curv) / np.sum(w))
    if not m > 0:
        return nan
    var_curv = float(np.sum(w * (curv - m) ** 2) / np.sum(w))
    k = 1.0 + (p / n) * var_curv / m**2
    s2 = float(np.sum(w * obj.psi(r) ** 2) / (n - p))
    jtj = jac.T @ (jac * w[:, None])
    try:
        inv = np.linalg.inv(jtj)
    except np.linalg.LinAlgError:
        return nan
    cov = k**2 * s2 / m**2 * inv
    return 0.5 * (cov + cov.T)


def bootstrap_weights(
    n: int,
    n_resamples: int,
    rng: np.random.Generator,
    *,
    groups: np.ndarray | None = None,
) -> np.ndarray:
    """Resampling counts, shape (B, n).

    By rows: each resample draws ``n`` rows with replacement. By group (``groups`` gives each
    row's run): each resample draws runs with replacement and every row of a drawn run comes
    with it, which keeps the checkpoints of one run together.
    """
    if groups is None:
        return rng.multinomial(n, np.full(n, 1.0 / n), size=n_resamples).astype(float)
    labels, index = np.unique(np.asarray(groups), return_inverse=True)
    if labels.size < 2:
        raise DataError("bootstrap by group needs at least 2 groups; the data has 1")
    counts = rng.multinomial(labels.size, np.full(labels.size, 1.0 / labels.size), size=n_resamples)
    return counts[:, index].astype(float)


def bootstrap_refit(
    problem: Problem,
    u_best: np.ndarray,
    counts: np.ndarray,
    *,
    max_iter: int = 400,
    chunk: int = 2000,
    workers: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Refit every resample (rows of ``counts``) from the full-data optimum, all at once.

    Returns the free-parameter vectors (B, F) and a converged flag (B,).
    """
    us, oks = [], []
    for start in range(0, counts.shape[0], chunk):
        block = counts[start : start + chunk] * problem.weights
        u0 = np.repeat(np.asarray(u_best, dtype=float)[None], block.shape[0], axis=0)
        res = minimize_batched_parallel(
            problem, u0, weights=block, workers=workers, max_iter=max_iter, ftol=1e-12, xtol=1e-9
        )
        u, ok = res.u.copy(), res.converged & np.isfinite(res.objective)
        # the few resamples the batch left unfinished are polished one at a time
        for i in np.flatnonzero(~ok):
            sub = dataclasses.replace(problem, weights=block[i])
            pol = polish(sub, u[i])
            if pol.success and np.isfinite(pol.objective):
                u[i], ok[i] = pol.u, True
        us.append(u)
        oks.append(ok)
    return np.concatenate(us), np.concatenate(oks)
