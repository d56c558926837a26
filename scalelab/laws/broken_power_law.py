"""Broken neural scaling law: a power law whose exponent changes smoothly at break points."""

from __future__ import annotations

import itertools
import math
from typing import Any, ClassVar

import numpy as np

from scalelab.errors import LawError
from scalelab.laws.base import Inputs, Law, Param, as_theta

__all__ = ["BrokenPowerLaw"]

_C_BOUNDS = (-20.0, 50.0)


def _softplus(z: np.ndarray) -> np.ndarray:
    """``log(1 + exp(z))`` without overflow."""
    return np.logaddexp(0.0, z)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    """``1 / (1 + exp(-z))`` without overflow."""
    return np.exp(-np.logaddexp(0.0, -z))


class BrokenPowerLaw(Law):
    r"""Broken neural scaling law (BNSL) with one or two breaks.

    .. math:: y = a + b\,x^{-c_0} \prod_{i=1}^{n}
              \left(1 + \left(\frac{x}{d_i}\right)^{1/f_i}\right)^{-c_i f_i}

    Below the first break the curve is ``a + b x^-c0``; past break ``i`` (at ``x ≈ d_i``) the
    log-log slope of ``y - a`` steepens by ``c_i`` (flattens if ``c_i < 0``); ``f_i`` is the
    sharpness of the transition (small ``f_i``: a sharp corner). ``n`` is set by the
    ``breaks`` option (1 or 2). Evaluated in log space as ``log y = LSE(log a, log b - c0 log x
    - sum_i c_i f_i softplus((log x - log d_i) / f_i))``, stable for very sharp breaks.

    References
    ----------
    Caballero et al. 2023, "Broken Neural Scaling Laws", arXiv:2210.14891, Eq. 1.

    Examples
    --------
    >>> law = BrokenPowerLaw(breaks=1)
    >>> law.param_names
    ('a', 'b', 'c0', 'c1', 'd1', 'f1')
    >>> y = law(x=[10.0, 1e4], a=0.1, b=2.0, c0=0.1, c1=1.0, d1=1e3, f1=0.1)
    >>> [round(float(v), 4) for v in y]
    [1.6887, 0.1796]
    """

    name: ClassVar[str] = "broken_power_law"
    equation: ClassVar[str] = (
        "y = a + b * x^-c0 * prod_i (1 + (x / d_i)^(1 / f_i))^(-c_i * f_i), i = 1..breaks"
    )
    reference: ClassVar[str] = "Caballero et al. 2023, arXiv:2210.14891 (Eq. 1)"

    def __init__(self, breaks: int = 1) -> None:
        if isinstance(breaks, bool) or breaks not in (1, 2):
            raise LawError(f"broken_power_law: breaks must be 1 or 2, got {breaks!r}")
        self.breaks = int(breaks)
        params = [
            Param("a", 0.0, math.inf, log=True, init=(1e-3, 10.0), description="limit as x grows"),
            Param(
                "b",
                0.0,
                math.inf,
                log=True,
                init=(1e-2, 1e6),
                description="scale before the first break",
            ),
            Param("c0", -5.0, 5.0, init=(0.0, 1.0), description="exponent before the first break"),
        ]
        for i in range(1, self.breaks + 1):
            params += [
                Param(
                    f"c{i}",
                    *_C_BOUNDS,
                    init=(0.0, 5.0),
                    description=f"change of exponent at break {i}",
                ),
                Param(
                    f"d{i}",
                    0.0,
                    math.inf,
                    log=True,
                    init=(1.0, 1e9),
                    description=f"location of break {i}",
                ),
                Param(
                    f"f{i}",
                    0.0,
                    math.inf,
                    log=True,
                    init=(0.01, 3.0),
                    description=f"smoothness of break {i}",
                ),
            ]
        self._params = tuple(params)

    def config(self) -> dict[str, Any]:
        return {"breaks": self.breaks}

    @property
    def inputs(self) -> tuple[str, ...]:
        return ("x",)

    @property
    def params(self) -> tuple[Param, ...]:
        return self._params

    # ----------------------------------------------------------------- evaluation
    def _parts(
        self, theta: np.ndarray, X: Inputs
    ) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
        """``log a``, the log power-law term ``t`` and each break's ``z_i = log(x/d_i)/f_i``."""
        theta = as_theta(theta, self.n_params)
        log_x = np.log(X["x"])
        with np.errstate(divide="ignore", invalid="ignore"):
            log_a = np.log(theta[..., 0, None])
            t = np.log(theta[..., 1, None]) - theta[..., 2, None] * log_x
            zs = []
            for i in range(self.breaks):
                c, d, f = (theta[..., 3 + 3 * i + k, None] for k in range(3))
                z = (log_x - np.log(d)) / f
                t = t - c * f * _softplus(z)
                zs.append(z)
        log_a, t = np.broadcast_arrays(log_a, t)
        return log_a, t, zs

    def evaluate(self, theta: np.ndarray, X: Inputs) -> np.ndarray:
        return np.exp(self.log_evaluate(theta, X))

    def log_evaluate(self, theta: np.ndarray, X: Inputs) -> np.ndarray:
        log_a, t, _ = self._parts(theta, X)
        return np.logaddexp(log_a, t)

    def log_jacobian(self, theta: np.ndarray, X: Inputs) -> np.ndarray:
        theta = as_theta(theta, self.n_params)
        log_a, t, zs = self._parts(theta, X)
        log_y = np.logaddexp(log_a, t)
        w_a = np.exp(log_a - log_y)
        w_t = np.exp(t - log_y)
        log_x = np.log(X["x"])
        with np.errstate(divide="ignore", invalid="ignore"):
            cols = [w_a / theta[..., 0, None], w_t / theta[..., 1, None], -w_t * log_x]
            for i, z in enumerate(zs):
                c, d, f = (theta[..., 3 + 3 * i + k, None] for k in range(3))
                sp, sig = _softplus(z), _sigmoid(z)
                cols += [
                    -w_t * f * sp,  # d t / d c_i
                    w_t * c * sig / d,  # d t / d d_i (dz/dd = -1/(f d))
                    w_t * c * (sig * z - sp),  # d t / d f_i (dz/df = -z/f)
                ]
        return np.stack(np.broadcast_arrays(*cols), axis=-1)

    # ----------------------------------------------------------------- starts
    def _data(self, X: Inputs, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = np.asarray(X["x"], dtype=float)
        y = np.asarray(y, dtype=float)
        keep = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
        if not np.any(keep):
            raise LawError(
                "broken_power_law: no point has positive x and y; the law needs positive data"
            )
        return x[keep], y[keep]

    def _candidates(self, log_x: np.ndarray, count: int) -> np.ndarray:
        """Break locations (log x) spread over the interior of the data."""
        lo, hi = float(np.min(log_x)), float(np.max(log_x))
        if hi - lo < 1e-9:
            return np.array([lo])
        return np.linspace(lo, hi, count + 2)[1:-1]

    def _hinge_fit(
        self, log_x: np.ndarray, log_r: np.ndarray, knots: tuple[float, ...]
    ) -> tuple[np.ndarray, float]:
        """Continuous piecewise-linear least squares of ``log_r`` on ``log_x`` with given knots.

        Returns ``(coef, sse)`` with ``coef = (intercept, slope, hinge_1, ...)``; a BNSL with
        small ``f_i`` is exactly this shape in log-log space.
        """
        cols = [np.ones_like(log_x), log_x] + [np.maximum(log_x - k, 0.0) for k in knots]
        design = np.stack(cols, axis=-1)
        coef = np.linalg.lstsq(design, log_r, rcond=None)[0]
        sse = float(np.sum((design @ coef - log_r) ** 2))
        return coef, sse

    def _theta_from_hinge(
        self, a: float, coef: np.ndarray, knots: tuple[float, ...], f: float
    ) -> list[float]:
        c_lo, c_hi = _C_BOUNDS
        row = [a, math.exp(min(float(coef[0]), 700.0)), min(max(-float(coef[1]), -5.0), 5.0)]
        for i, knot in enumerate(knots):
            row += [min(max(-float(coef[2 + i]), c_lo), c_hi), math.exp(knot), f]
        return row

    def _best_knots(
        self, log_x: np.ndarray, log_r: np.ndarray, count: int
    ) -> list[tuple[tuple[float, ...], np.ndarray, float]]:
        """Every knot set from the candidate grid with its hinge fit, best first."""
        cands = self._candidates(log_x, count)
        fits = []
        if np.ptp(log_x) > 1e-9:  # with a single x value there is no slope to fit
            for knots in itertools.combinations(cands.tolist(), self.breaks):
                coef, sse = self._hinge_fit(log_x, log_r, knots)
                if np.all(np.isfinite(coef)):
                    fits.append((knots, coef, sse))
        if not fits:  # degenerate data (all x equal): no break, flat curve
            knots = tuple(float(cands[0]) for _ in range(self.breaks))
            fits.append((knots, np.array([float(np.mean(log_r)), 0.0] + [0.0] * self.breaks), 0.0))
        fits.sort(key=lambda item: item[2])
        return fits

    @staticmethod
    def _floor(y: np.ndarray, fraction: float | None = None) -> float:
        y_min, y_max = float(np.min(y)), float(np.max(y))
        if fraction is None:
            return min(max(y_min - 0.1 * (y_max - y_min), 0.5 * y_min), 0.9 * y_min)
        return fraction * y_min

    def guess(self, X: Inputs, y: np.ndarray) -> np.ndarray:
        """Floor below ``min(y)``, then continuous broken lines through ``log(y - a)`` against
        ``log x`` (knots searched on a grid); of the five best knot sets, each with sharpness
        ``f`` in {0.03, 0.1, 0.3, 1}, the vector with the smallest log residuals."""
        x, y = self._data(X, y)
        a = self._floor(y)
        log_x, log_r = np.log(x), np.log(y - a)
        fits = self._best_knots(log_x, log_r, 24 if self.breaks == 1 else 12)[:5]
        rows = [
            self._theta_from_hinge(a, coef, knots, f)
            for knots, coef, _ in fits
            for f in (0.03, 0.1, 0.3, 1.0)
        ]
        cands = self.clip(np.array(rows))
        with np.errstate(invalid="ignore", over="ignore"):
            sse = np.sum((self.log_evaluate(cands, {"x": x}) - np.log(y)) ** 2, axis=-1)
        sse = np.where(np.isfinite(sse), sse, np.inf)
        return cands[int(np.argmin(sse))]

    def start_grid(self, X: Inputs, y: np.ndarray) -> np.ndarray:
        """Floors x break locations x sharpness, each with the broken-line fit of the rest.

        Floors at {0.001, 0.5, 0.8, 0.95} x ``min(y)`` plus the guess; knots on a grid over the
        data (16 positions for one break, all pairs of 9 for two); ``f`` in {0.05, 0.2, 0.6, 1.5}
        (one break) or {0.1, 0.5} (two). At most ~400 starts.
        """
        x, y = self._data(X, y)
        log_x = np.log(x)
        floors = sorted({self._floor(y)} | {self._floor(y, q) for q in (1e-3, 0.5, 0.8, 0.95)})
        count, fs = (16, (0.05, 0.2, 0.6, 1.5)) if self.breaks == 1 else (9, (0.1, 0.5))
        rows = []
        for a in floors:
            for knots, coef, _ in self._best_knots(log_x, np.log(y - a), count):
                rows += [self._theta_from_hinge(a, coef, knots, f) for f in fs]
        return self.clip(np.array(rows))

    # ----------------------------------------------------------------- derived
    def derived(self, theta: np.ndarray) -> dict[str, np.ndarray]:
        """Log-log slope of ``y - a`` after each break: ``exponent_after_i = c0 + c1 + ... + c_i``."""
        theta = as_theta(theta, self.n_params)
        out: dict[str, np.ndarray] = {}
        total = theta[..., 2]
        for i in range(self.breaks):
            total = total + theta[..., 3 + 3 * i]
            out[f"exponent_after_{i + 1}"] = total
        return out
