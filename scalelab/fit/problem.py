"""A fitting problem: law + data + objective + parametrization, evaluated in batches."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from scalelab.fit.objectives import Objective
from scalelab.fit.parametrization import Parametrization
from scalelab.laws.base import Law

__all__ = ["Problem"]


@dataclass(frozen=True)
class Problem:
    """Residuals and their Jacobian for a batch of free-parameter vectors ``u`` (S, F)."""

    law: Law
    X: Mapping[str, np.ndarray]
    y: np.ndarray
    objective: Objective
    param: Parametrization
    weights: np.ndarray  # (n,) point weights

    @property
    def n(self) -> int:
        return int(self.y.shape[0])

    @property
    def target(self) -> np.ndarray:
        return np.log(self.y) if self.objective.space == "log" else self.y

    def predict_space(self, theta: np.ndarray) -> np.ndarray:
        """Predictions in the residual space (log or linear), shape (S, n)."""
        with np.errstate(all="ignore"):
            if self.objective.space == "log":
                return self.law.log_evaluate(theta, self.X)
            return self.law.evaluate(theta, self.X)

    def residuals(self, u: np.ndarray) -> np.ndarray:
        """``prediction - observation`` in the residual space, shape (S, n)."""
        return self.predict_space(self.param.to_natural(u)) - self.target

    def objective_value(self, u: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        w = self.weights if weights is None else weights
        return self.objective.total(self.residuals(u), w)

    def jacobian(self, u: np.ndarray) -> np.ndarray:
        """``d residual / d u``, shape (S, n, F)."""
        u = np.atleast_2d(u)
        theta = self.param.to_natural(u)
        with np.errstate(all="ignore"):
            if self.objective.space == "log":
                jt = self.law.log_jacobian(theta, self.X)
            else:
                jt = self.law.jacobian(theta, self.X)
        if jt is None:
            return self._fd_jacobian(u)
        if not self.param.tied:  # d theta / d u is diagonal on the free parameters
            free = [self.law.param_names.index(n) for n in self.param.free]
            logs = np.array([self.param.is_log(n) for n in self.param.free])
            factor = np.where(logs, theta[:, free], 1.0)  # d theta / d log theta = theta
            # work parameter-major (S, F, n): contiguous for the normal equations
            jt_t = np.moveaxis(jt, -1, -2)
            if free != list(range(self.law.n_params)):
                jt_t = jt_t[:, free, :]
            with np.errstate(all="ignore"):  # diverged starts give inf * 0; the solver drops them
                return np.moveaxis(jt_t * factor[:, :, None], -2, -1)
        with np.errstate(all="ignore"):
            return np.matmul(jt, self.param.dtheta_du(u))

    def _fd_jacobian(self, u: np.ndarray) -> np.ndarray:
        """Central finite differences in ``u`` (for laws without an analytic Jacobian)."""
        cols = []
        for k in range(u.shape[-1]):
            h = 1e-6 * np.maximum(1.0, np.abs(u[:, k]))
            du = np.zeros_like(u)
            du[:, k] = h
            cols.append((self.residuals(u + du) - self.residuals(u - du)) / (2 * h[:, None]))
        return np.stack(cols, axis=-1)
