"""Polish one start to tight tolerances with scipy.

scipy's default tolerances stop early on these flat objectives, and a point short of the
optimum gives falsely narrow Hessian intervals. Polishing uses
:func:`scipy.optimize.least_squares` (trust-region reflective, bounds respected) with its
Huber loss (``loss="huber"``, ``f_scale=delta`` is exactly ``scipy.special.huber(delta, r)``
summed) and the analytic Jacobian, at tolerances close to machine precision.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import optimize

from scalelab.fit.objectives import Asymmetric, Huber
from scalelab.fit.problem import Problem

__all__ = ["PolishResult", "polish"]


@dataclass(frozen=True)
class PolishResult:
    u: np.ndarray
    objective: float
    success: bool
    message: str
    nfev: int


def polish(problem: Problem, u0: np.ndarray, *, tol: float = 1e-15, max_nfev: int = 2000) -> PolishResult:
    """Refine ``u0`` (F,) to tight tolerances; never returns a worse point than ``u0``."""
    lo, hi = problem.param.internal_bounds()
    u0 = np.clip(np.asarray(u0, dtype=float), lo, hi)
    # least_squares needs starts strictly inside finite bounds
    span = np.where(np.isfinite(hi - lo), hi - lo, 1.0)
    u0 = np.clip(u0, lo + 1e-12 * span, hi - 1e-12 * span)
    sw = np.sqrt(problem.weights)
    f0 = float(problem.objective_value(u0[None])[0])
    obj = problem.objective

    if isinstance(obj, Asymmetric):
        # piecewise-quadratic: scale residuals by sqrt(penalty) where they are positive
        def fun(u: np.ndarray) -> np.ndarray:
            r = problem.residuals(u[None])[0]
            return sw * np.sqrt(obj.irls(r)) * r

        def jac(u: np.ndarray) -> np.ndarray:
            r = problem.residuals(u[None])[0]
            return (sw * np.sqrt(obj.irls(r)))[:, None] * problem.jacobian(u[None])[0]

        loss, f_scale = "linear", 1.0
    else:

        def fun(u: np.ndarray) -> np.ndarray:
            return sw * problem.residuals(u[None])[0]

        def jac(u: np.ndarray) -> np.ndarray:
            return sw[:, None] * problem.jacobian(u[None])[0]

        if isinstance(obj, Huber):
            # weights scale residuals by sqrt(w); Huber(sqrt(w) r) != w Huber(r) unless w == 1,
            # so polish with the exact objective only for unit weights
            if np.allclose(problem.weights, 1.0):
                loss, f_scale = "huber", obj.delta
            else:
                return _polish_minimize(problem, u0, f0, tol)
        else:
            loss, f_scale = "linear", 1.0

    with np.errstate(all="ignore"):
        try:
            sol = optimize.least_squares(
                fun,
                u0,
                jac=jac,
                bounds=(lo, hi),
                method="trf",
                loss=loss,
                f_scale=f_scale,
                ftol=max(tol, 1e-15),
                xtol=max(tol, 1e-15),
                gtol=max(tol, 1e-15),
                x_scale="jac",
                max_nfev=max_nfev,
            )
        except (ValueError, np.linalg.LinAlgError) as exc:
            # least_squares stops at the first trial point whose residuals or Jacobian are not
            # finite (e.g. a floor E driven past the smallest loss on log residuals); L-BFGS-B
            # treats such a point as an infinite objective and backtracks
            fallback = _polish_minimize(problem, u0, f0, tol)
            if fallback.success:
                return fallback
            return PolishResult(u0, f0, False, f"polish failed: {exc}", 0)
    f1 = float(problem.objective_value(sol.x[None])[0])
    if not f1 <= f0:
        return PolishResult(u0, f0, True, "polish found no improvement; kept the start", sol.nfev)
    # status 0 = max_nfev reached; > 0 = a tolerance was met
    return PolishResult(sol.x, f1, sol.status > 0, str(sol.message), int(sol.nfev))


def _polish_minimize(problem: Problem, u0: np.ndarray, f0: float, tol: float) -> PolishResult:
    """L-BFGS-B on the exact weighted objective with an analytic gradient."""
    lo, hi = problem.param.internal_bounds()
    obj = problem.objective

    def fg(u: np.ndarray) -> tuple[float, np.ndarray]:
        r = problem.residuals(u[None])[0]
        j = problem.jacobian(u[None])[0]
        val = float(np.sum(problem.weights * obj.rho(r)))
        grad = j.T @ (problem.weights * obj.psi(r))
        return (val if np.isfinite(val) else np.inf), grad

    with np.errstate(all="ignore"):
        sol = optimize.minimize(
            fg,
            u0,
            jac=True,
            method="L-BFGS-B",
            bounds=list(zip(lo, hi, strict=True)),
            options={"ftol": tol, "gtol": 1e-12, "maxiter": 20000, "maxcor": 30},
        )
    f1 = float(sol.fun)
    if not f1 <= f0:
        return PolishResult(u0, f0, True, "polish found no improvement; kept the start", sol.nfev)
    success = bool(sol.success)
    if not success and np.isfinite(f1):
        # L-BFGS-B reports ABNORMAL when its line search cannot decrease the objective any
        # further at machine precision. That is a converged optimum when the projected
        # gradient vanishes (relative to the objective's scale); otherwise it is a failure.
        g = np.asarray(sol.jac, dtype=float)
        at_lo, at_hi = sol.x <= lo, sol.x >= hi
        g = np.where((at_lo & (g > 0)) | (at_hi & (g < 0)), 0.0, g)
        success = bool(np.max(np.abs(g)) <= 1e-6 * max(1.0, abs(f1)))
    return PolishResult(sol.x, f1, success, str(sol.message), int(sol.nfev))
