"""A sigmoid in log x: the phase change of a downstream accuracy with scale."""

from __future__ import annotations

import itertools
import math
from typing import ClassVar

import numpy as np

from scalelab.errors import LawError
from scalelab.laws.base import Inputs, Law, Param, as_theta

__all__ = ["Sigmoid"]

_LOG9 = math.log(9.0)


def _log_sigmoid(z: np.ndarray) -> np.ndarray:
    """``log(1 / (1 + exp(-z)))`` without overflow."""
    return -np.logaddexp(0.0, -z)


def _split_point(log_x: np.ndarray, y: np.ndarray, level: float, rising: bool) -> float | None:
    """The ``log x`` where sorted data cross ``level`` best, or ``None`` if they never do.

    Chooses the split minimising the points on the wrong side (below ``level`` after it, above
    before it, for a rising curve), which tolerates noisy, non-monotone accuracies.
    """
    order = np.argsort(log_x, kind="stable")
    lx, above = log_x[order], (y[order] > level) == rising
    n = lx.size
    # wrong[k]: split before index k -> high points among the first k + low points after
    high_before = np.concatenate([[0], np.cumsum(above)])
    low_before = np.concatenate([[0], np.cumsum(~above)])
    wrong = high_before + (low_before[-1] - low_before)
    k = int(np.argmin(wrong))
    if k == 0 or k == n:
        return None
    return 0.5 * float(lx[k - 1] + lx[k])


class Sigmoid(Law):
    r"""Sigmoid phase change in ``log x``, for accuracies that jump with scale.

    .. math:: y = \mathrm{floor} + \frac{\mathrm{ceiling} - \mathrm{floor}}
              {1 + \exp\left(-(\log x - \log x_0) / w\right)}

    ``floor`` is the value at small ``x`` (for multiple-choice accuracy usually chance,
    e.g. 0.25 for four options, and best fixed there when fitting: fixing is done by
    the fitting engine, ``--fix floor=0.25``), ``ceiling`` the value at large ``x``, ``x0`` the
    midpoint where ``y`` is half-way, and ``w`` the width in natural-log units (the curve covers
    10% to 90% of its range between ``x0 e^(-w ln 9)`` and ``x0 e^(w ln 9)``). ``ceiling <
    floor`` gives a falling curve. ``x`` is any positive scale: parameters, compute, tokens,
    or a task loss (then ``ceiling < floor``).

    References
    ----------
    Bhagia et al. 2024, "Establishing Task Scaling Laws via Compute-Efficient Model Ladders",
    arXiv:2412.04403 (accuracy as a sigmoid of task loss); Wei et al. 2022, "Emergent Abilities of
    Large Language Models", arXiv:2206.07682.

    Examples
    --------
    >>> law = Sigmoid()
    >>> y = law(x=[1e8, 1e10, 1e12], floor=0.25, ceiling=0.9, x0=1e10, width=1.0)
    >>> [round(float(v), 4) for v in y]
    [0.2564, 0.575, 0.8936]
    """

    name: ClassVar[str] = "sigmoid"
    equation: ClassVar[str] = "y = floor + (ceiling - floor) / (1 + exp(-(log x - log x0) / width))"
    reference: ClassVar[str] = (
        "Bhagia et al. 2024, arXiv:2412.04403; Wei et al. 2022, arXiv:2206.07682"
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
            description="midpoint of the transition",
        ),
        Param(
            "width", 0.0, math.inf, log=True, init=(0.05, 5.0), description="width in log x units"
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
        with np.errstate(divide="ignore", invalid="ignore"):
            return (np.log(X["x"]) - np.log(theta[..., 2, None])) / theta[..., 3, None]

    def evaluate(self, theta: np.ndarray, X: Inputs) -> np.ndarray:
        theta = as_theta(theta, 4)
        lo, hi = theta[..., 0, None], theta[..., 1, None]
        return lo + (hi - lo) * np.exp(_log_sigmoid(self._z(theta, X)))

    def log_evaluate(self, theta: np.ndarray, X: Inputs) -> np.ndarray:
        """``LSE(log floor, log(ceiling - floor) + log sigma(z))`` when rising, direct otherwise."""
        theta = as_theta(theta, 4)
        lo, hi = theta[..., 0, None], theta[..., 1, None]
        log_sig = _log_sigmoid(self._z(theta, X))
        with np.errstate(divide="ignore", invalid="ignore"):
            rising = np.logaddexp(np.log(lo), np.log(hi - lo) + log_sig)
            direct = np.log(lo + (hi - lo) * np.exp(log_sig))
        return np.where(hi >= lo, rising, direct)

    def log_jacobian(self, theta: np.ndarray, X: Inputs) -> np.ndarray:
        theta = as_theta(theta, 4)
        lo, hi = theta[..., 0, None], theta[..., 1, None]
        x0, width = theta[..., 2, None], theta[..., 3, None]
        z = self._z(theta, X)
        sig = np.exp(_log_sigmoid(z))
        sig_c = np.exp(_log_sigmoid(-z))  # 1 - sigma, accurate in both tails
        log_y = self.log_evaluate(theta, X)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            inv_y = np.exp(-log_y)
            slope = (hi - lo) * sig * sig_c  # dy/dz
            cols = [
                sig_c * inv_y,
                sig * inv_y,
                -slope / (width * x0) * inv_y,
                -slope * z / width * inv_y,
            ]
        return np.stack(np.broadcast_arrays(*cols), axis=-1)

    # ----------------------------------------------------------------- starts
    def _data(self, X: Inputs, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = np.asarray(X["x"], dtype=float)
        y = np.asarray(y, dtype=float)
        keep = np.isfinite(x) & np.isfinite(y) & (x > 0)
        if not np.any(keep):
            raise LawError("sigmoid: no point has a positive, finite x; the law needs x > 0")
        return np.log(x[keep]), y[keep]

    def _levels(self, log_x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
        """Median y over the lowest and highest fifth of x: the floor and ceiling seen."""
        order = np.argsort(log_x, kind="stable")
        k = max(1, log_x.size // 5)
        lo = float(np.median(y[order[:k]]))
        hi = float(np.median(y[order[-k:]]))
        if abs(hi - lo) < 1e-6 * max(abs(lo), 1.0):  # flat data: give the curve some range
            hi = lo + max(0.1 * abs(lo), 1e-3)
        return max(lo, 0.0), max(hi, 0.0)

    def _shape(self, log_x: np.ndarray, y: np.ndarray, lo: float, hi: float) -> tuple[float, float]:
        """``(log x0, width)`` from the 50% crossing and the 25%-75% crossings."""
        rising = hi >= lo
        span_lx = float(np.ptp(log_x))
        mid = _split_point(log_x, y, lo + 0.5 * (hi - lo), rising)
        log_x0 = mid if mid is not None else float(np.median(log_x))
        q25 = _split_point(log_x, y, lo + 0.25 * (hi - lo), rising)
        q75 = _split_point(log_x, y, lo + 0.75 * (hi - lo), rising)
        width = math.nan
        if q25 is not None and q75 is not None:
            width = (q75 - q25) / (2.0 * math.log(3.0))  # sigma(+-ln 3) = 0.75, 0.25
        if not (math.isfinite(width) and width > 0):
            width = span_lx / 8.0 if span_lx > 0 else 1.0
        return log_x0, min(max(width, 1e-3), 1e3)

    def guess(self, X: Inputs, y: np.ndarray) -> np.ndarray:
        """Floor and ceiling from the lowest- and highest-x fifth of the data, ``x0`` where ``y``
        crosses half-way between them, width from the quarter crossings."""
        log_x, y = self._data(X, y)
        lo, hi = self._levels(log_x, y)
        log_x0, width = self._shape(log_x, y, lo, hi)
        return self.clip(np.array([lo, hi, math.exp(log_x0), width]))

    def start_grid(self, X: Inputs, y: np.ndarray) -> np.ndarray:
        """Midpoints over the data's log x range x widths x (floor, ceiling) pairs.

        ``x0`` at 9 points from 0.1 below to 0.1 above the range of ``log x`` (plus the guess),
        width in {0.1, 0.3, 1, 3} x the guess, and (floor, ceiling) from the guess, the data's
        min/max and, for data in [0, 1], a ceiling of 1 (about 360 starts).
        """
        log_x, y = self._data(X, y)
        g_lo, g_hi = self._levels(log_x, y)
        g_log_x0, g_width = self._shape(log_x, y, g_lo, g_hi)
        lx_lo, lx_hi = float(np.min(log_x)), float(np.max(log_x))
        pad = 0.1 * (lx_hi - lx_lo)
        centres = sorted({*np.linspace(lx_lo - pad, lx_hi + pad, 9).tolist(), g_log_x0})
        widths = [g_width * s for s in (0.1, 0.3, 1.0, 3.0)]
        y_min, y_max = max(float(np.min(y)), 0.0), max(float(np.max(y)), 0.0)
        rising = g_hi >= g_lo
        pairs = {(g_lo, g_hi), (y_min, y_max) if rising else (y_max, y_min)}
        if y_min >= 0.0 and y_max <= 1.0:
            pairs.add((g_lo, 1.0) if rising else (1.0, g_hi))
        rows = [
            (lo, hi, math.exp(c), w)
            for (lo, hi), c, w in itertools.product(sorted(pairs), centres, widths)
        ]
        return self.clip(np.array(rows))

    # ----------------------------------------------------------------- derived
    def derived(self, theta: np.ndarray) -> dict[str, np.ndarray]:
        """``midpoint`` (= x0, where y is half-way), ``midpoint_value``, ``x10``/``x90`` (where y
        covers 10% / 90% of the way from floor to ceiling) and ``max_slope`` (dy/d log x at x0)."""
        theta = as_theta(theta, 4)
        lo, hi, x0, width = np.moveaxis(theta, -1, 0)
        with np.errstate(over="ignore"):
            return {
                "midpoint": x0,
                "midpoint_value": 0.5 * (lo + hi),
                "x10": x0 * np.exp(-_LOG9 * width),
                "x90": x0 * np.exp(_LOG9 * width),
                "max_slope": (hi - lo) / (4.0 * width),
            }
