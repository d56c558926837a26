"""Ye et al.'s data mixing law: loss as an exponential of a linear function of the mixture."""

from __future__ import annotations

import itertools
import math
from typing import Any, ClassVar

import numpy as np

from scalelab.errors import LawError
from scalelab.laws.base import Inputs, Law, Param, as_theta

__all__ = ["DataMixing"]


class DataMixing(Law):
    r"""Data mixing law over ``K`` training domains (Ye et al. 2024, Eq. 1).

    .. math:: L(r_1, \ldots, r_K) = c + k \exp\left(\sum_{j=1}^{K} t_j r_j\right)

    ``r_j`` is the proportion of domain ``j`` in the training mixture (inputs ``r1 .. rK``,
    usually summing to 1), ``L`` the validation loss on one target domain, ``c`` its floor,
    ``k`` a scale and ``t_j`` how strongly domain ``j`` moves the loss (negative: it helps).
    ``K`` is set by the ``domains`` option. When the proportions sum to 1, adding a constant to
    every ``t_j`` and dividing ``k`` by its exponential leaves ``L`` unchanged; fits are only
    identified up to that shift. Evaluated in log space as ``LSE(log c, log k + t . r)``.

    References
    ----------
    Ye et al. 2024, "Data Mixing Laws: Optimizing Data Mixtures by Predicting Language Modeling
    Performance", arXiv:2403.16952, Eq. 1 (multi-domain form).

    Examples
    --------
    >>> law = DataMixing(domains=2)
    >>> law.inputs
    ('r1', 'r2')
    >>> round(float(law(r1=0.25, r2=0.75, c=1.5, k=2.0, t1=-1.0, t2=0.0)[0]), 6)
    3.057602
    """

    name: ClassVar[str] = "data_mixing"
    equation: ClassVar[str] = "L = c + k * exp(sum_j t_j * r_j), j = 1..domains"
    reference: ClassVar[str] = "Ye et al. 2024, arXiv:2403.16952 (Eq. 1)"

    def __init__(self, domains: int = 2) -> None:
        if isinstance(domains, bool) or not isinstance(domains, (int, np.integer)) or domains < 1:
            raise LawError(f"data_mixing: domains must be a positive integer, got {domains!r}")
        self.domains = int(domains)
        self._params = (
            Param("c", 0.0, math.inf, log=True, init=(1e-2, 10.0), description="loss floor"),
            Param(
                "k",
                0.0,
                math.inf,
                log=True,
                init=(1e-3, 100.0),
                description="scale of the mixture term",
            ),
            *(
                Param(f"t{j}", init=(-5.0, 5.0), description=f"effect of domain {j}'s proportion")
                for j in range(1, self.domains + 1)
            ),
        )

    def config(self) -> dict[str, Any]:
        return {"domains": self.domains}

    @property
    def inputs(self) -> tuple[str, ...]:
        return tuple(f"r{j}" for j in range(1, self.domains + 1))

    @property
    def params(self) -> tuple[Param, ...]:
        return self._params

    # ----------------------------------------------------------------- evaluation
    def _terms(self, theta: np.ndarray, X: Inputs) -> tuple[np.ndarray, np.ndarray]:
        """``(log c, log k + sum_j t_j r_j)`` broadcast to ``(..., n)``."""
        theta = as_theta(theta, self.n_params)
        with np.errstate(divide="ignore"):
            log_c = np.log(theta[..., 0, None])
            t = np.log(theta[..., 1, None])
        for j, key in enumerate(self.inputs):
            t = t + theta[..., 2 + j, None] * X[key]
        log_c, t = np.broadcast_arrays(log_c, t)
        return log_c, t

    def evaluate(self, theta: np.ndarray, X: Inputs) -> np.ndarray:
        return np.exp(self.log_evaluate(theta, X))

    def log_evaluate(self, theta: np.ndarray, X: Inputs) -> np.ndarray:
        log_c, t = self._terms(theta, X)
        return np.logaddexp(log_c, t)

    def log_jacobian(self, theta: np.ndarray, X: Inputs) -> np.ndarray:
        theta = as_theta(theta, self.n_params)
        log_c, t = self._terms(theta, X)
        log_y = np.logaddexp(log_c, t)
        w_c, w_t = np.exp(log_c - log_y), np.exp(t - log_y)
        with np.errstate(divide="ignore", invalid="ignore"):
            cols = [w_c / theta[..., 0, None], w_t / theta[..., 1, None]]
        cols += [w_t * X[key] for key in self.inputs]
        return np.stack(np.broadcast_arrays(*cols), axis=-1)

    # ----------------------------------------------------------------- starts
    def _data(self, X: Inputs, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Design matrix ``(n, K)`` of proportions and positive targets."""
        y = np.asarray(y, dtype=float)
        r = np.stack([np.asarray(X[key], dtype=float) for key in self.inputs], axis=-1)
        keep = np.isfinite(y) & (y > 0) & np.all(np.isfinite(r), axis=-1)
        if not np.any(keep):
            raise LawError("data_mixing: no point has a positive loss and finite proportions")
        return r[keep], y[keep]

    def _regress(self, r: np.ndarray, y: np.ndarray, c: float) -> np.ndarray:
        """Least-squares ``log(y - c) = log k + t . r`` (minimum-norm when proportions sum to 1).

        Returns ``(log k, t_1, ..., t_K)``, with ``t`` clipped to +-50.
        """
        design = np.concatenate([np.ones((r.shape[0], 1)), r], axis=-1)
        coef = np.linalg.lstsq(design, np.log(y - c), rcond=None)[0]
        coef = np.where(np.isfinite(coef), coef, 0.0)
        coef[1:] = np.clip(coef[1:], -50.0, 50.0)
        coef[0] = float(np.mean(np.log(y - c) - r @ coef[1:]))
        return coef

    @staticmethod
    def _floor(y: np.ndarray) -> float:
        y_min, y_max = float(np.min(y)), float(np.max(y))
        return min(max(y_min - 0.5 * (y_max - y_min), 0.5 * y_min), 0.9 * y_min)

    def guess(self, X: Inputs, y: np.ndarray) -> np.ndarray:
        """Floor below ``min(y)``, then a log-linear regression of ``y - c`` on the proportions."""
        r, y = self._data(X, y)
        c = self._floor(y)
        coef = self._regress(r, y, c)
        return self.clip(np.concatenate([[c, math.exp(min(coef[0], 700.0))], coef[1:]]))

    def start_grid(self, X: Inputs, y: np.ndarray) -> np.ndarray:
        """Floors x rescaled regression slopes, plus one-domain perturbations.

        Floors at {0.001, 0.5, 0.8, 0.9, 0.97} x ``min(y)`` plus the guess; for each, the
        regression's ``t`` scaled by {0.25, 0.5, 1, 1.5, 2} and the regression ``t`` with one
        ``t_j`` moved by +-2; ``k`` refitted each time. ``6 (5 + 2K)`` starts.
        """
        r, y = self._data(X, y)
        y_min = float(np.min(y))
        floors = sorted({self._floor(y)} | {q * y_min for q in (1e-3, 0.5, 0.8, 0.9, 0.97)})
        eye = np.eye(self.domains)
        rows = []
        for c in floors:
            t0 = self._regress(r, y, c)[1:]
            variants = [s * t0 for s in (0.25, 0.5, 1.0, 1.5, 2.0)]
            variants += [
                t0 + sign * 2.0 * eye[j]
                for j, sign in itertools.product(range(self.domains), (-1, 1))
            ]
            for t in variants:
                log_k = float(np.mean(np.log(y - c) - r @ t))
                rows.append(np.concatenate([[c, math.exp(min(log_k, 700.0))], t]))
        return self.clip(np.array(rows))

    # ----------------------------------------------------------------- derived
    def derived(self, theta: np.ndarray) -> dict[str, np.ndarray]:
        """``best_domain``: index (1-based) of the most helpful domain (smallest ``t_j``) and
        ``t_spread`` = max t - min t, which is invariant to the unidentified shift."""
        theta = as_theta(theta, self.n_params)
        t = theta[..., 2:]
        return {
            "best_domain": (np.argmin(t, axis=-1) + 1).astype(float),
            "t_spread": np.max(t, axis=-1) - np.min(t, axis=-1),
        }
