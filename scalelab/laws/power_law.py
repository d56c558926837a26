"""The saturating power law y = E + A x^-alpha in a single input."""

from __future__ import annotations

import itertools
import math
from typing import ClassVar

import numpy as np

from scalelab.errors import LawError
from scalelab.laws.base import Inputs, Law, Param, as_theta

__all__ = ["PowerLaw"]


def _positive_data(x: np.ndarray, y: np.ndarray, law: str) -> tuple[np.ndarray, np.ndarray]:
    """Keep the points with positive, finite x and y (needed for log-log guesses)."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    keep = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    if not np.any(keep):
        raise LawError(f"{law}: no point has positive x and y; this law needs positive data")
    return x[keep], y[keep]


def _loglog_line(log_x: np.ndarray, log_r: np.ndarray) -> tuple[float, float]:
    """Least-squares ``log_r = c - alpha log_x``; returns ``(c, alpha)`` (alpha 0 if x is constant)."""
    if log_x.size < 2 or np.ptp(log_x) < 1e-12:
        return float(np.mean(log_r)), 0.0
    slope, intercept = np.polyfit(log_x, log_r, 1)
    return float(intercept), float(-slope)


class PowerLaw(Law):
    r"""Saturating power law in one input.

    .. math:: y = E + A\,x^{-\alpha}

    ``E`` is the floor the curve saturates to (irreducible loss), ``A`` the scale of the
    reducible part and ``alpha`` its decay exponent. Evaluated in log space as
    ``log y = LSE(log E, log A - alpha log x)``, which stays accurate when either term
    dominates. This is the one-variable form used for loss against parameters, data or compute.

    References
    ----------
    Kaplan et al. 2020, "Scaling Laws for Neural Language Models", arXiv:2001.08361;
    Hestness et al. 2017, "Deep Learning Scaling is Predictable, Empirically", arXiv:1712.00409.

    Examples
    --------
    >>> law = PowerLaw()
    >>> round(float(law(x=1e4, E=1.5, A=20.0, alpha=0.5)[0]), 6)
    1.7
    """

    name: ClassVar[str] = "power_law"
    equation: ClassVar[str] = "y = E + A * x^-alpha"
    reference: ClassVar[str] = (
        "Kaplan et al. 2020, arXiv:2001.08361; Hestness et al. 2017, arXiv:1712.00409"
    )

    _params = (
        Param("E", 0.0, math.inf, log=True, init=(1e-3, 10.0), description="saturation floor"),
        Param(
            "A",
            0.0,
            math.inf,
            log=True,
            init=(1e-2, 1e6),
            description="scale of the reducible term",
        ),
        Param("alpha", 0.0, 5.0, init=(0.05, 1.5), description="decay exponent"),
    )

    @property
    def inputs(self) -> tuple[str, ...]:
        return ("x",)

    @property
    def params(self) -> tuple[Param, ...]:
        return self._params

    # ----------------------------------------------------------------- evaluation
    def _terms(self, theta: np.ndarray, X: Inputs) -> tuple[np.ndarray, np.ndarray]:
        """``(log E, log A - alpha log x)`` broadcast to ``(..., n)``."""
        theta = as_theta(theta, 3)
        with np.errstate(divide="ignore"):
            log_e = np.log(theta[..., 0, None])
            log_a = np.log(theta[..., 1, None])
        t_x = log_a - theta[..., 2, None] * np.log(X["x"])
        log_e, t_x = np.broadcast_arrays(log_e, t_x)
        return log_e, t_x

    def evaluate(self, theta: np.ndarray, X: Inputs) -> np.ndarray:
        return np.exp(self.log_evaluate(theta, X))

    def log_evaluate(self, theta: np.ndarray, X: Inputs) -> np.ndarray:
        log_e, t_x = self._terms(theta, X)
        return np.logaddexp(log_e, t_x)

    def log_jacobian(self, theta: np.ndarray, X: Inputs) -> np.ndarray:
        theta = as_theta(theta, 3)
        log_e, t_x = self._terms(theta, X)
        log_y = np.logaddexp(log_e, t_x)
        w_e = np.exp(log_e - log_y)  # share of E in y
        w_x = np.exp(t_x - log_y)  # share of the power-law term
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.stack(
                [w_e / theta[..., 0, None], w_x / theta[..., 1, None], -w_x * np.log(X["x"])],
                axis=-1,
            )

    # ----------------------------------------------------------------- starts
    @staticmethod
    def _floor_guess(y: np.ndarray) -> float:
        """A floor a little below the smallest observation (half of it if the spread is large)."""
        y_min, y_max = float(np.min(y)), float(np.max(y))
        return min(max(y_min - 0.1 * (y_max - y_min), 0.5 * y_min), 0.9 * y_min)

    def guess(self, X: Inputs, y: np.ndarray) -> np.ndarray:
        x, y = _positive_data(X["x"], y, self.name)
        e = self._floor_guess(y)
        log_a, alpha = _loglog_line(np.log(x), np.log(y - e))
        alpha = min(max(alpha, 0.01), 5.0)
        if alpha == 0.01:  # data not decreasing: refit A with the clipped exponent
            log_a = float(np.mean(np.log(y - e) + alpha * np.log(x)))
        return self.clip(np.array([e, math.exp(min(log_a, 700.0)), alpha]))

    def start_grid(self, X: Inputs, y: np.ndarray) -> np.ndarray:
        """Floors at fractions of ``min(y)`` x exponents; ``A`` fitted to the data for each pair.

        For every floor ``E`` and exponent ``alpha``, ``log A`` is the least-squares value of
        ``log(y - E) + alpha log x``, then spread by a factor of 3 either way (162 starts).
        """
        x, y = _positive_data(X["x"], y, self.name)
        log_x = np.log(x)
        y_min = float(np.min(y))
        floors = [1e-3 * y_min, 0.25 * y_min, 0.5 * y_min, 0.75 * y_min, 0.9 * y_min, 0.97 * y_min]
        alphas = [0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.5]
        rows = []
        for e, alpha, scale in itertools.product(floors, alphas, (1 / 3, 1.0, 3.0)):
            log_a = float(np.mean(np.log(y - e) + alpha * log_x))
            rows.append((e, scale * math.exp(min(log_a, 700.0)), alpha))
        return self.clip(np.array(rows))
