"""A Gompertz curve in log x: accuracy whose ``log(-log)`` is linear in ``log x``."""

from __future__ import annotations

import itertools
import math
from typing import ClassVar

import numpy as np

from scalelab.errors import LawError
from scalelab.laws.base import Inputs, Law, Param, as_theta

__all__ = ["Gompertz"]

_LOG2 = math.log(2.0)
_LOG10 = math.log(10.0)
_LOG10_9 = math.log(10.0 / 9.0)


class Gompertz(Law):
    r"""Chance-floored Gompertz curve in ``log x``: the ``log(-log acc)`` form of accuracy.

    .. math:: y = \mathrm{floor} + (\mathrm{ceiling} - \mathrm{floor})
              \exp\left(-(x / x_0)^{-\alpha}\right)

    With ``floor = 0`` and ``ceiling = 1`` this is ``log(-log y) = alpha (log x0 - log x)``: the
    negative log accuracy falls as a power law in scale, the form Hu et al. fit to pass rates
    and Krajewski et al. to benchmark accuracy against compute. ``floor`` (the value at small
    ``x``; for multiple choice, chance, best fixed there when fitting with
    ``fixed={"floor": 0.25}``) and ``ceiling`` (the value at large ``x``) make it a sigmoid in
    ``log x`` with a long upper tail: unlike the logistic :class:`~scalelab.laws.Sigmoid` it
    approaches the ceiling as a power law, ``ceiling - y ~ (x/x0)^-alpha``. ``x0`` is where
    the curve has covered ``1/e`` (37%) of its range; ``alpha`` is the exponent.

    References
    ----------
    Krajewski et al. 2025, "Revisiting the Scaling Properties of Downstream Metrics in Large
    Language Model Training", arXiv:2512.08894 (``-log acc = A C^-alpha``, accuracy against
    training compute); Hu et al. 2023, "Predicting Emergent Abilities with Infinite Resolution
    Evaluation", arXiv:2310.03262 (``log(-log)`` of pass rates linear in log scale).

    Examples
    --------
    >>> law = Gompertz()
    >>> y = law(x=[1e18, 1e20, 1e22], floor=0.25, ceiling=0.9, x0=1e20, alpha=0.5)
    >>> [round(float(v), 4) for v in y]
    [0.25, 0.4891, 0.8381]
    """

    name: ClassVar[str] = "gompertz"
    equation: ClassVar[str] = "y = floor + (ceiling - floor) * exp(-(x / x0)^-alpha)"
    reference: ClassVar[str] = (
        "Krajewski et al. 2025, arXiv:2512.08894; Hu et al. 2023, arXiv:2310.03262"
    )

    _params = (
        Param(
            "floor", 0.0, math.inf, init=(0.0, 0.5), description="value at small x (often chance)"
        ),
        Param("ceiling", 0.0, math.inf, init=(0.5, 1.0), description="value at large x"),
        Param(
            "x0",
            0.0,
            math.inf,
            log=True,
            init=(1e-2, 1e24),
            description="scale where 1/e of the range is covered",
        ),
        Param(
            "alpha",
            0.0,
            math.inf,
            log=True,
            init=(0.05, 5.0),
            description="power-law exponent of -log of the covered fraction",
        ),
    )

    @property
    def inputs(self) -> tuple[str, ...]:
        return ("x",)

    @property
    def params(self) -> tuple[Param, ...]:
        return self._params

    # ----------------------------------------------------------------- evaluation
    def _z(self, theta: np.ndarray, X: Inputs) -> np.ndarray:
        """``log t`` with ``t = (x / x0)^-alpha``: ``-alpha (log x - log x0)``."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return -theta[..., 3, None] * (np.log(X["x"]) - np.log(theta[..., 2, None]))

    def evaluate(self, theta: np.ndarray, X: Inputs) -> np.ndarray:
        theta = as_theta(theta, 4)
        lo, hi = theta[..., 0, None], theta[..., 1, None]
        with np.errstate(over="ignore"):
            covered = np.exp(-np.exp(self._z(theta, X)))
        return lo + (hi - lo) * covered

    def log_evaluate(self, theta: np.ndarray, X: Inputs) -> np.ndarray:
        """``LSE(log floor, log(ceiling - floor) - t)`` when rising, direct otherwise."""
        theta = as_theta(theta, 4)
        lo, hi = theta[..., 0, None], theta[..., 1, None]
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            t = np.exp(self._z(theta, X))
            rising = np.logaddexp(np.log(lo), np.log(hi - lo) - t)
            direct = np.log(lo + (hi - lo) * np.exp(-t))
        return np.where(hi >= lo, rising, direct)

    def jacobian(self, theta: np.ndarray, X: Inputs) -> np.ndarray:
        """``d y / d theta``, computed directly so it stays finite where ``y`` is 0."""
        theta = as_theta(theta, 4)
        lo, hi = theta[..., 0, None], theta[..., 1, None]
        x0, alpha = theta[..., 2, None], theta[..., 3, None]
        z = self._z(theta, X)
        with np.errstate(over="ignore", invalid="ignore"):
            t = np.exp(z)
            covered = np.exp(-t)
            # covered * t as exp(z - t); 0 where t overflows (t e^-t -> 0)
            finite = np.isfinite(t)
            covered_t = np.where(finite, np.exp(np.where(finite, z - t, 0.0)), 0.0)
            log_ratio = np.log(X["x"]) - np.log(x0)
        span = hi - lo
        cols = [
            1.0 - covered,
            covered,
            -span * covered_t * alpha / x0,
            span * covered_t * log_ratio,
        ]
        return np.stack(np.broadcast_arrays(*cols), axis=-1)

    def log_jacobian(self, theta: np.ndarray, X: Inputs) -> np.ndarray:
        with np.errstate(over="ignore", invalid="ignore"):
            inv_y = np.exp(-self.log_evaluate(theta, X))
            return self.jacobian(theta, X) * inv_y[..., None]

    # ----------------------------------------------------------------- starts
    def _data(self, X: Inputs, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = np.asarray(X["x"], dtype=float)
        y = np.asarray(y, dtype=float)
        keep = np.isfinite(x) & np.isfinite(y) & (x > 0)
        if not np.any(keep):
            raise LawError("gompertz: no point has a positive, finite x; the law needs x > 0")
        return np.log(x[keep]), y[keep]

    @staticmethod
    def _levels(log_x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
        """Median y over the lowest and highest fifth of x: the floor and ceiling seen."""
        order = np.argsort(log_x, kind="stable")
        k = max(1, log_x.size // 5)
        lo = max(float(np.median(y[order[:k]])), 0.0)
        hi = max(float(np.median(y[order[-k:]])), 0.0)
        if abs(hi - lo) < 1e-6 * max(abs(lo), 1.0):  # flat data: give the curve some range
            hi = lo + max(0.1 * abs(lo), 1e-3)
        return lo, hi

    @staticmethod
    def _line(log_x: np.ndarray, y: np.ndarray, lo: float, hi: float) -> tuple[float, float]:
        """``(log x0, alpha)`` from a straight line of ``log(-log covered)`` against ``log x``.

        ``covered = (y - floor) / (ceiling - floor)`` is taken over the points strictly inside
        the range seen (with a 2% margin); with fewer than two such points, or a slope of the
        wrong sign, ``x0`` goes to the middle of the data and ``alpha`` to 1.
        """
        span = hi - lo
        mid_log_x = float(np.median(log_x))
        covered = (y - lo) / span
        inside = (covered > 0.02) & (covered < 0.98)
        if np.count_nonzero(inside) >= 2 and np.ptp(log_x[inside]) > 1e-12:
            lx, c = log_x[inside], covered[inside]
            slope, intercept = np.polyfit(lx, np.log(-np.log(c)), 1)
            alpha = -float(slope)
            if math.isfinite(alpha) and alpha > 0:
                return float(intercept) / alpha, min(max(alpha, 1e-3), 1e3)
        return mid_log_x, 1.0

    def guess(self, X: Inputs, y: np.ndarray) -> np.ndarray:
        """Floor and ceiling from the lowest- and highest-x fifth of the data; ``x0`` and
        ``alpha`` from a least-squares line of ``log(-log covered)`` against ``log x``."""
        log_x, y = self._data(X, y)
        lo, hi = self._levels(log_x, y)
        log_x0, alpha = self._line(log_x, y, lo, hi)
        return self.clip(np.array([lo, hi, math.exp(min(max(log_x0, -700.0), 700.0)), alpha]))

    def start_grid(self, X: Inputs, y: np.ndarray) -> np.ndarray:
        """``x0`` at 9 points over the data's ``log x`` range padded by 10% (plus the guess),
        ``alpha`` in {0.3, 1, 3} x the guess, and (floor, ceiling) from the guess, the data's
        min/max and, for data in [0, 1], a ceiling of 1 (about 270 starts)."""
        log_x, y = self._data(X, y)
        g_lo, g_hi = self._levels(log_x, y)
        g_log_x0, g_alpha = self._line(log_x, y, g_lo, g_hi)
        lx_lo, lx_hi = float(np.min(log_x)), float(np.max(log_x))
        pad = 0.1 * (lx_hi - lx_lo)
        centres = sorted({*np.linspace(lx_lo - pad, lx_hi + pad, 9).tolist(), g_log_x0})
        centres = [min(max(c, -700.0), 700.0) for c in centres]
        alphas = [g_alpha * s for s in (0.3, 1.0, 3.0)]
        y_min, y_max = max(float(np.min(y)), 0.0), max(float(np.max(y)), 0.0)
        rising = g_hi >= g_lo
        pairs = {(g_lo, g_hi), (y_min, y_max) if rising else (y_max, y_min)}
        if y_min >= 0.0 and y_max <= 1.0:
            pairs.add((g_lo, 1.0) if rising else (1.0, g_hi))
        rows = [
            (lo, hi, math.exp(c), a)
            for (lo, hi), c, a in itertools.product(sorted(pairs), centres, alphas)
        ]
        return self.clip(np.array(rows))

    # ----------------------------------------------------------------- derived
    def derived(self, theta: np.ndarray) -> dict[str, np.ndarray]:
        """``midpoint`` (where y is half-way from floor to ceiling), ``x10``/``x90`` (10% / 90%
        of the way) and ``max_slope`` (the largest dy/d log x, reached where 1/e is covered)."""
        theta = as_theta(theta, 4)
        lo, hi, x0, alpha = np.moveaxis(theta, -1, 0)
        with np.errstate(over="ignore", divide="ignore"):
            return {
                "midpoint": x0 * _LOG2 ** (-1.0 / alpha),
                "x10": x0 * _LOG10 ** (-1.0 / alpha),
                "x90": x0 * _LOG10_9 ** (-1.0 / alpha),
                "max_slope": (hi - lo) * alpha / math.e,
            }
