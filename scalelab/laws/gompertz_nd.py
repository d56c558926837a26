"""Accuracy as a function of parameters and tokens: ``-log`` of the covered fraction is a sum of
power laws in ``N`` and ``D`` (a Gompertz surface)."""

from __future__ import annotations

import itertools
import math
from typing import ClassVar

import numpy as np

from scalelab.errors import LawError
from scalelab.laws.base import Inputs, Law, Param, as_theta

__all__ = ["GompertzND"]


class GompertzND(Law):
    r"""Downstream accuracy over the ``(N, D)`` surface, floored at chance.

    .. math:: y = \mathrm{floor} + (\mathrm{ceiling} - \mathrm{floor})
              \exp\left(-\left(\frac{A}{N^\alpha} + \frac{B}{D^\beta}\right)\right)

    With ``floor = 0`` and ``ceiling = 1`` this is ``-log y = A / N^alpha + B / D^beta``, the
    parameters-and-tokens law Krajewski et al. fit to benchmark accuracy: the *negative log*
    accuracy takes the Chinchilla form (without its irreducible term). ``floor`` is the value
    of an untrained model (for multiple choice, chance; fix it when fitting with
    ``fixed={"floor": 0.25}``) and ``ceiling`` the value of an infinitely large, infinitely
    trained one. Fitted to intermediate checkpoints of several model sizes, it predicts the
    accuracy of a larger model from the same ``(N, D)`` surface. With ``B = 0`` it reduces to
    :class:`~scalelab.laws.gompertz.Gompertz` in ``N``.

    References
    ----------
    Krajewski et al. 2025, "Revisiting the Scaling Properties of Downstream Metrics in Large
    Language Model Training", arXiv:2512.08894; Hoffmann et al. 2022, arXiv:2203.15556 (the
    ``A / N^alpha + B / D^beta`` form).

    Examples
    --------
    >>> law = GompertzND()
    >>> y = law(N=[1e8, 1e10], D=[3e11, 3e11], floor=0.25, ceiling=0.9, A=30.0, B=20.0,
    ...         alpha=0.2, beta=0.15)
    >>> [round(float(v), 4) for v in y]
    [0.4593, 0.5794]
    """

    name: ClassVar[str] = "gompertz_nd"
    equation: ClassVar[str] = "y = floor + (ceiling - floor) * exp(-(A / N^alpha + B / D^beta))"
    reference: ClassVar[str] = (
        "Krajewski et al. 2025, arXiv:2512.08894; Hoffmann et al. 2022, arXiv:2203.15556"
    )

    _params = (
        Param(
            "floor", 0.0, math.inf, init=(0.0, 0.5), description="value at small scale (chance)"
        ),
        Param("ceiling", 0.0, math.inf, init=(0.5, 1.0), description="value at infinite scale"),
        Param("A", 0.0, math.inf, log=True, init=(1e-2, 1e6), description="model-size coefficient"),
        Param("B", 0.0, math.inf, log=True, init=(1e-2, 1e8), description="data coefficient"),
        Param("alpha", 0.0, 5.0, init=(0.05, 1.0), description="model-size exponent"),
        Param("beta", 0.0, 5.0, init=(0.05, 1.0), description="data exponent"),
    )

    @property
    def inputs(self) -> tuple[str, ...]:
        return ("N", "D")

    @property
    def params(self) -> tuple[Param, ...]:
        return self._params

    # ----------------------------------------------------------------- evaluation
    def _log_terms(self, theta: np.ndarray, X: Inputs) -> tuple[np.ndarray, np.ndarray]:
        """``log(A N^-alpha)`` and ``log(B D^-beta)``, each shaped ``(..., n)``."""
        with np.errstate(divide="ignore"):
            l_n = np.log(theta[..., 2, None]) - theta[..., 4, None] * np.log(X["N"])
            l_d = np.log(theta[..., 3, None]) - theta[..., 5, None] * np.log(X["D"])
        return l_n, l_d

    def _s(self, theta: np.ndarray, X: Inputs) -> np.ndarray:
        """``s = A N^-alpha + B D^-beta`` (``inf`` when a term overflows)."""
        l_n, l_d = self._log_terms(theta, X)
        with np.errstate(over="ignore"):
            return np.exp(l_n) + np.exp(l_d)

    def evaluate(self, theta: np.ndarray, X: Inputs) -> np.ndarray:
        theta = as_theta(theta, 6)
        lo, hi = theta[..., 0, None], theta[..., 1, None]
        return lo + (hi - lo) * np.exp(-self._s(theta, X))

    def log_evaluate(self, theta: np.ndarray, X: Inputs) -> np.ndarray:
        """``LSE(log floor, log(ceiling - floor) - s)`` when rising, direct otherwise."""
        theta = as_theta(theta, 6)
        lo, hi = theta[..., 0, None], theta[..., 1, None]
        s = self._s(theta, X)
        with np.errstate(divide="ignore", invalid="ignore"):
            rising = np.logaddexp(np.log(lo), np.log(hi - lo) - s)
            direct = np.log(lo + (hi - lo) * np.exp(-s))
        return np.where(hi >= lo, rising, direct)

    def jacobian(self, theta: np.ndarray, X: Inputs) -> np.ndarray:
        """``d y / d theta``, computed directly so it stays finite where ``y`` is 0."""
        theta = as_theta(theta, 6)
        lo, hi = theta[..., 0, None], theta[..., 1, None]
        log_n, log_d = np.log(X["N"]), np.log(X["D"])
        l_n, l_d = self._log_terms(theta, X)
        s = self._s(theta, X)
        covered = np.exp(-s)
        finite = np.isfinite(s)
        s_safe = np.where(finite, s, 0.0)

        def times_covered(log_factor: np.ndarray) -> np.ndarray:
            """``exp(log_factor) * covered``, 0 where s overflows (t e^-t -> 0)."""
            with np.errstate(over="ignore", invalid="ignore"):
                return np.where(finite, np.exp(np.where(finite, log_factor - s_safe, 0.0)), 0.0)

        span = hi - lo  # d y / d s = -span * covered
        cols = [
            1.0 - covered,
            covered,
            -span * times_covered(-theta[..., 4, None] * log_n),  # d s / d A = N^-alpha
            -span * times_covered(-theta[..., 5, None] * log_d),  # d s / d B = D^-beta
            span * times_covered(l_n) * log_n,
            span * times_covered(l_d) * log_d,
        ]
        return np.stack(np.broadcast_arrays(*cols), axis=-1)

    def log_jacobian(self, theta: np.ndarray, X: Inputs) -> np.ndarray:
        with np.errstate(over="ignore", invalid="ignore"):
            inv_y = np.exp(-self.log_evaluate(theta, X))
            return self.jacobian(theta, X) * inv_y[..., None]

    # ----------------------------------------------------------------- starts
    def _data(self, X: Inputs, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n = np.asarray(X["N"], dtype=float)
        d = np.asarray(X["D"], dtype=float)
        y = np.asarray(y, dtype=float)
        keep = np.isfinite(n) & np.isfinite(d) & np.isfinite(y) & (n > 0) & (d > 0)
        if not np.any(keep):
            raise LawError("gompertz_nd: no point has positive, finite N and D; the law needs both")
        return n[keep], d[keep], y[keep]

    @staticmethod
    def _levels(scale: np.ndarray, y: np.ndarray) -> tuple[float, float]:
        """Median y over the smallest and largest fifth of ``N D``: floor and ceiling seen."""
        order = np.argsort(scale, kind="stable")
        k = max(1, scale.size // 5)
        lo = max(float(np.median(y[order[:k]])), 0.0)
        hi = max(float(np.median(y[order[-k:]])), 0.0)
        if abs(hi - lo) < 1e-6 * max(abs(lo), 1.0):  # flat data: give the curve some range
            hi = lo + max(0.1 * abs(lo), 1e-3)
        return lo, hi

    def _typical_s(self, n: np.ndarray, d: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
        """Floor, ceiling, and the median of ``s = -log covered`` over points inside the range."""
        lo, hi = self._levels(np.log(n) + np.log(d), y)
        covered = (y - lo) / (hi - lo)
        inside = (covered > 0.02) & (covered < 0.98)
        s_med = float(np.median(-np.log(covered[inside]))) if inside.any() else 1.0
        return lo, hi, min(max(s_med, 1e-3), 50.0)

    def guess(self, X: Inputs, y: np.ndarray) -> np.ndarray:
        """Floor and ceiling from the smallest and largest fifth of ``N D``; exponents 0.3, and
        ``A``, ``B`` putting half of the median ``s = -log covered`` on each term at the median
        ``N`` and ``D``."""
        n, d, y = self._data(X, y)
        lo, hi, s_med = self._typical_s(n, d, y)
        alpha = beta = 0.3
        a_coef = 0.5 * s_med * float(np.median(n)) ** alpha
        b_coef = 0.5 * s_med * float(np.median(d)) ** beta
        return self.clip(np.array([lo, hi, a_coef, b_coef, alpha, beta]))

    def start_grid(self, X: Inputs, y: np.ndarray) -> np.ndarray:
        """Exponents in {0.15, 0.3, 0.6, 1} each, term shares of the median ``s`` in
        {0.25, 0.5, 1} each, and (floor, ceiling) from the guess and, for data in [0, 1], a
        ceiling of 1 (up to 288 starts)."""
        n, d, y = self._data(X, y)
        lo, hi, s_med = self._typical_s(n, d, y)
        med_n, med_d = float(np.median(n)), float(np.median(d))
        pairs = {(lo, hi)}
        if float(np.min(y)) >= 0.0 and float(np.max(y)) <= 1.0 and hi >= lo:
            pairs.add((lo, 1.0))
        exps = (0.15, 0.3, 0.6, 1.0)
        shares = (0.25, 0.5, 1.0)
        rows = [
            (f, c, sa * s_med * med_n**a, sb * s_med * med_d**b, a, b)
            for (f, c), a, b, sa, sb in itertools.product(sorted(pairs), exps, exps, shares, shares)
        ]
        return self.clip(np.array(rows))
