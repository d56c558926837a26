"""Chinchilla's parametric loss L(N, D) = E + A / N^alpha + B / D^beta."""

from __future__ import annotations

import itertools
import math
from typing import ClassVar

import numpy as np

from scalelab.laws._allocation import FLOPS_PER_PARAM_TOKEN
from scalelab.laws.base import Inputs, Law, Param, as_theta

__all__ = ["Chinchilla"]


class Chinchilla(Law):
    r"""Chinchilla's parametric loss (Hoffmann et al. 2022, "Approach 3").

    .. math:: L(N, D) = E + \frac{A}{N^\alpha} + \frac{B}{D^\beta}

    ``N`` is the number of parameters, ``D`` the number of training tokens, ``E`` the
    irreducible loss. Evaluated in log space as
    ``log L = LSE(log A - alpha log N, log B - beta log D, log E)`` for stability, the form
    Hoffmann et al. fit with a Huber loss (delta 1e-3) on log residuals from a grid of starts.

    References
    ----------
    Hoffmann et al. 2022, "Training Compute-Optimal Large Language Models", arXiv:2203.15556,
    Sec. 3.3 and App. D.2. Besiroglu et al. 2024, "Chinchilla Scaling: A replication attempt",
    arXiv:2404.10102 (the refit scalelab's regression test pins).

    Examples
    --------
    >>> law = Chinchilla()
    >>> float(law(N=70e9, D=1.4e12, E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28)[0])  # doctest: +ELLIPSIS
    1.93...
    """

    name: ClassVar[str] = "chinchilla"
    equation: ClassVar[str] = "L = E + A / N^alpha + B / D^beta"
    reference: ClassVar[str] = "Hoffmann et al. 2022, arXiv:2203.15556 (Approach 3)"

    _params = (
        Param("E", 0.0, math.inf, log=True, init=(0.3, 3.0), description="irreducible loss"),
        Param("A", 0.0, math.inf, log=True, init=(1.0, 1e8), description="model-size coefficient"),
        Param("B", 0.0, math.inf, log=True, init=(1.0, 1e8), description="data coefficient"),
        Param("alpha", 0.0, 5.0, init=(0.05, 1.0), description="model-size exponent"),
        Param("beta", 0.0, 5.0, init=(0.05, 1.0), description="data exponent"),
    )

    @property
    def inputs(self) -> tuple[str, ...]:
        return ("N", "D")

    @property
    def params(self) -> tuple[Param, ...]:
        return self._params

    # theta order: E, A, B, alpha, beta
    def _terms(self, theta: np.ndarray, X: Inputs) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The three log-terms (log A - alpha log N, log B - beta log D, log E), each (..., n)."""
        theta = as_theta(theta, 5)
        with np.errstate(divide="ignore"):
            log_e, log_a, log_b = (np.log(theta[..., i, None]) for i in range(3))
        t_n = log_a - theta[..., 3, None] * np.log(X["N"])
        t_d = log_b - theta[..., 4, None] * np.log(X["D"])
        return t_n, t_d, log_e

    def evaluate(self, theta: np.ndarray, X: Inputs) -> np.ndarray:
        return np.exp(self.log_evaluate(theta, X))

    def log_evaluate(self, theta: np.ndarray, X: Inputs) -> np.ndarray:
        t_n, t_d, t_e = self._terms(theta, X)
        top = np.maximum(np.maximum(t_n, t_d), t_e)
        return top + np.log(np.exp(t_n - top) + np.exp(t_d - top) + np.exp(t_e - top))

    def log_jacobian(self, theta: np.ndarray, X: Inputs) -> np.ndarray:
        theta = as_theta(theta, 5)
        log_n, log_d = np.log(X["N"]), np.log(X["D"])
        neg_log_l = -self.log_evaluate(theta, X)
        # d log L / d theta_k in natural units: d/dE = 1/L, d/dA = N^-alpha / L,
        # d/dB = D^-beta / L, d/dalpha = -A N^-alpha log N / L, d/dbeta likewise.
        # Built parameter-major, so the engine's transposed view is contiguous.
        jac = np.empty((5, *neg_log_l.shape))
        np.exp(neg_log_l, out=jac[0])
        np.exp(neg_log_l - theta[..., 3, None] * log_n, out=jac[1])
        np.exp(neg_log_l - theta[..., 4, None] * log_d, out=jac[2])
        np.multiply(jac[1], -theta[..., 1, None] * log_n, out=jac[3])
        np.multiply(jac[2], -theta[..., 2, None] * log_d, out=jac[4])
        return np.moveaxis(jac, 0, -1)

    # ----------------------------------------------------------------- starts
    def guess(self, X: Inputs, y: np.ndarray) -> np.ndarray:
        y = np.asarray(y, dtype=float)
        e = 0.8 * float(np.min(y))
        excess = max(float(np.median(y)) - e, 1e-3)
        # put half of the median excess loss on each term at the median N and D
        alpha = beta = 0.3
        a = 0.5 * excess * float(np.median(X["N"])) ** alpha
        b = 0.5 * excess * float(np.median(X["D"])) ** beta
        return np.array([e, a, b, alpha, beta])

    def start_grid(self, X: Inputs, y: np.ndarray) -> np.ndarray:
        """Hoffmann et al.'s grid of 4,500 starts.

        alpha, beta in {0, 0.5, ..., 2}; log E in {-1, -0.5, ..., 1}; log A, log B in
        {0, 5, ..., 25} (Hoffmann et al. 2022, App. D.2).
        """
        exps = np.arange(0.0, 2.01, 0.5)
        log_e = np.arange(-1.0, 1.01, 0.5)
        log_ab = np.arange(0.0, 25.01, 5.0)
        rows = [
            (math.exp(e), math.exp(a), math.exp(b), al, be)
            for al, be, e, a, b in itertools.product(exps, exps, log_e, log_ab, log_ab)
        ]
        return np.array(rows)

    # ----------------------------------------------------------------- derived
    def derived(self, theta: np.ndarray) -> dict[str, np.ndarray]:
        theta = as_theta(theta, 5)
        alpha, beta = theta[..., 3], theta[..., 4]
        with np.errstate(divide="ignore", invalid="ignore"):
            return {
                # N_opt ~ C^a, D_opt ~ C^b (Hoffmann et al. 2022, Eq. 4)
                "a": beta / (alpha + beta),
                "b": alpha / (alpha + beta),
            }

    def compute_optimal(self, theta: np.ndarray, compute: float | np.ndarray) -> dict[str, np.ndarray]:
        """Closed form of Hoffmann et al. 2022, Eq. 4, with C = 6 N D.

        ``N* = G (C/6)^a``, ``D* = G^-1 (C/6)^b``, ``G = (alpha A / (beta B))^(1/(alpha+beta))``.
        """
        theta = as_theta(theta, 5)
        e, a_coef, b_coef, alpha, beta = np.moveaxis(theta, -1, 0)
        c = np.asarray(compute, dtype=float)
        s = alpha + beta
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            log_g = (np.log(alpha * a_coef) - np.log(beta * b_coef)) / s
            log_c6 = np.log(c / FLOPS_PER_PARAM_TOKEN)
            n = np.exp(log_g + beta / s * log_c6)
            d = np.exp(-log_g + alpha / s * log_c6)
            loss = e + a_coef * n**-alpha + b_coef * d**-beta
        return {"N": n, "D": d, "loss": loss}
