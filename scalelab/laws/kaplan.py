"""Kaplan et al.'s joint law L(N, D) = [(Nc/N)^(alpha_N/alpha_D) + Dc/D]^alpha_D."""

from __future__ import annotations

import itertools
import math
from typing import ClassVar

import numpy as np

from scalelab.errors import LawError
from scalelab.laws._allocation import numeric_compute_optimal
from scalelab.laws.base import Inputs, Law, Param, as_theta, geometric_mean

__all__ = ["Kaplan"]

#: typical exponents (Kaplan et al. 2020, Eq. 1.5), used when the data cannot pin them down
_ALPHA_N, _ALPHA_D = 0.076, 0.095


class Kaplan(Law):
    r"""Kaplan et al.'s joint dependence of loss on model and data size.

    .. math:: L(N, D) = \left[\left(\frac{N_c}{N}\right)^{\alpha_N/\alpha_D}
              + \frac{D_c}{D}\right]^{\alpha_D}

    ``N`` is the number of non-embedding parameters and ``D`` the number of training tokens.
    There is no irreducible term: the loss tends to zero as both grow. Evaluated in log space,
    ``log L = alpha_D * LSE((alpha_N/alpha_D) log(Nc/N), log(Dc/D))``. Kaplan et al. report
    ``Nc = 8.8e13``, ``alpha_N = 0.076``, ``Dc = 5.4e13``, ``alpha_D = 0.095``.

    References
    ----------
    Kaplan et al. 2020, "Scaling Laws for Neural Language Models", arXiv:2001.08361, Eq. 1.5
    and Table 2.

    Examples
    --------
    >>> law = Kaplan()
    >>> float(law(N=1e9, D=1e10, Nc=8.8e13, Dc=5.4e13, alpha_N=0.076, alpha_D=0.095)[0])  # doctest: +ELLIPSIS
    2.48...
    """

    name: ClassVar[str] = "kaplan"
    equation: ClassVar[str] = "L = [(Nc / N)^(alpha_N / alpha_D) + Dc / D]^alpha_D"
    reference: ClassVar[str] = "Kaplan et al. 2020, arXiv:2001.08361 (Eq. 1.5)"

    _params = (
        Param("Nc", 0.0, math.inf, log=True, init=(1e9, 1e18), description="model-size scale"),
        Param("Dc", 0.0, math.inf, log=True, init=(1e9, 1e18), description="data-size scale"),
        Param("alpha_N", 0.0, 5.0, init=(0.02, 1.0), description="model-size exponent"),
        Param("alpha_D", 1e-4, 5.0, init=(0.02, 1.0), description="data exponent (outer power)"),
    )

    @property
    def inputs(self) -> tuple[str, ...]:
        return ("N", "D")

    @property
    def params(self) -> tuple[Param, ...]:
        return self._params

    # ----------------------------------------------------------------- evaluation
    def _parts(self, theta: np.ndarray, X: Inputs) -> tuple[np.ndarray, ...]:
        """``u = p log(Nc/N)``, ``v = log(Dc/D)``, ``S = LSE(u, v)`` and ``p = alpha_N/alpha_D``."""
        theta = as_theta(theta, 4)
        with np.errstate(divide="ignore", invalid="ignore"):
            log_nc = np.log(theta[..., 0, None])
            log_dc = np.log(theta[..., 1, None])
            p = theta[..., 2, None] / theta[..., 3, None]
            u = p * (log_nc - np.log(X["N"]))
            v = log_dc - np.log(X["D"])
        u, v = np.broadcast_arrays(u, v)
        return u, v, np.logaddexp(u, v), p

    def evaluate(self, theta: np.ndarray, X: Inputs) -> np.ndarray:
        return np.exp(self.log_evaluate(theta, X))

    def log_evaluate(self, theta: np.ndarray, X: Inputs) -> np.ndarray:
        theta = as_theta(theta, 4)
        _, _, s, _ = self._parts(theta, X)
        return theta[..., 3, None] * s

    def log_jacobian(self, theta: np.ndarray, X: Inputs) -> np.ndarray:
        theta = as_theta(theta, 4)
        u, v, s, _ = self._parts(theta, X)
        w_u = np.exp(u - s)  # share of the N-term inside the bracket
        w_v = np.exp(v - s)
        nc, dc = theta[..., 0, None], theta[..., 1, None]
        alpha_n, alpha_d = theta[..., 2, None], theta[..., 3, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            log_ratio_n = np.log(nc) - np.log(X["N"])
            return np.stack(
                [
                    alpha_n * w_u / nc,
                    alpha_d * w_v / dc,
                    w_u * log_ratio_n,
                    s - w_u * u,
                ],
                axis=-1,
            )

    # ----------------------------------------------------------------- starts
    @staticmethod
    def _scales(
        log_y_mid: float,
        log_n_mid: float,
        log_d_mid: float,
        alpha_n: float,
        alpha_d: float,
        share: float,
    ) -> tuple[float, float]:
        """``(Nc, Dc)`` giving loss ``exp(log_y_mid)`` at the mid point, a ``share`` of the
        bracket on the N-term."""
        log_t = log_y_mid / alpha_d  # the bracket equals L^(1/alpha_D)
        log_nc = log_n_mid + alpha_d / alpha_n * (log_t + math.log(share))
        log_dc = log_d_mid + log_t + math.log(1.0 - share)
        return math.exp(min(log_nc, 700.0)), math.exp(min(log_dc, 700.0))

    def _exponents(self, X: Inputs, y: np.ndarray) -> tuple[float, float]:
        """Exponents from a log-linear regression of log y on log N and log D.

        For this law ``d log L / d log N = -alpha_N w_N`` and ``d log L / d log D =
        -alpha_D w_D`` with ``w_N + w_D = 1``; an even split gives twice the regression slopes.
        Falls back to Kaplan's values for an input that does not vary.
        """
        log_n, log_d, log_y = np.log(X["N"]), np.log(X["D"]), np.log(y)
        cols = [np.ones_like(log_y)]
        varies = [np.ptp(log_n) > 1e-9, np.ptp(log_d) > 1e-9]
        for ok, col in zip(varies, (log_n, log_d), strict=True):
            if ok:
                cols.append(col)
        coef = np.linalg.lstsq(np.stack(cols, axis=-1), log_y, rcond=None)[0]
        slopes = iter(coef[1:])
        out = []
        for ok, default in zip(varies, (_ALPHA_N, _ALPHA_D), strict=True):
            value = -2.0 * float(next(slopes)) if ok else default
            out.append(min(max(value, 0.02), 1.0) if math.isfinite(value) else default)
        return out[0], out[1]

    def _check(self, X: Inputs, y: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
        y = np.asarray(y, dtype=float)
        keep = (y > 0) & np.isfinite(y) & (X["N"] > 0) & (X["D"] > 0)
        if not np.any(keep):
            raise LawError(
                "kaplan: no point has positive N, D and loss; the law needs positive data"
            )
        return {"N": X["N"][keep], "D": X["D"][keep]}, y[keep]

    def guess(self, X: Inputs, y: np.ndarray) -> np.ndarray:
        X, y = self._check(X, y)
        alpha_n, alpha_d = self._exponents(X, y)
        nc, dc = self._scales(
            math.log(geometric_mean(y)),
            math.log(geometric_mean(X["N"])),
            math.log(geometric_mean(X["D"])),
            alpha_n,
            alpha_d,
            0.5,
        )
        return self.clip(np.array([nc, dc, alpha_n, alpha_d]))

    def start_grid(self, X: Inputs, y: np.ndarray) -> np.ndarray:
        """Exponent pairs x shares of the bracket on the N-term, scales matched to the data.

        ``alpha_N, alpha_D`` in {0.04, 0.08, 0.15, 0.3, 0.6} plus the regression guess; for each
        pair and share in {0.1, 0.5, 0.9}, ``Nc`` and ``Dc`` reproduce the geometric-mean loss at
        the geometric-mean ``N`` and ``D`` (108 starts).
        """
        X, y = self._check(X, y)
        mids = (
            math.log(geometric_mean(y)),
            math.log(geometric_mean(X["N"])),
            math.log(geometric_mean(X["D"])),
        )
        g_n, g_d = self._exponents(X, y)
        exps_n = sorted({0.04, 0.08, 0.15, 0.3, 0.6, g_n})
        exps_d = sorted({0.04, 0.08, 0.15, 0.3, 0.6, g_d})
        rows = []
        for a_n, a_d, share in itertools.product(exps_n, exps_d, (0.1, 0.5, 0.9)):
            nc, dc = self._scales(*mids, a_n, a_d, share)
            rows.append((nc, dc, a_n, a_d))
        return self.clip(np.array(rows))

    # ----------------------------------------------------------------- derived
    def derived(self, theta: np.ndarray) -> dict[str, np.ndarray]:
        """Allocation exponents ``N* ~ C^a``, ``D* ~ C^b`` under ``C = 6 N D``.

        Minimising the bracket along ``D = C / 6N`` gives ``N*^(p+1) ∝ C`` with
        ``p = alpha_N / alpha_D``, so ``a = alpha_D / (alpha_N + alpha_D)`` and ``b = 1 - a``.
        """
        theta = as_theta(theta, 4)
        alpha_n, alpha_d = theta[..., 2], theta[..., 3]
        with np.errstate(divide="ignore", invalid="ignore"):
            return {"a": alpha_d / (alpha_n + alpha_d), "b": alpha_n / (alpha_n + alpha_d)}

    def compute_optimal(
        self, theta: np.ndarray, compute: float | np.ndarray
    ) -> dict[str, np.ndarray]:
        """Compute-optimal ``N``, ``D`` and loss for ``C = 6 N D`` (golden-section search)."""
        return numeric_compute_optimal(self, as_theta(theta, 4), compute)
