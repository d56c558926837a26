"""Fitting objectives: per-point losses on residuals, summed (never averaged) over points.

Each objective works on residuals ``r = prediction - observation`` in either log space
(``log yhat - log y``) or linear space, and supplies what the engine needs:

* ``rho(r)``   the per-point loss; the objective is ``sum_i w_i rho(r_i)``;
* ``psi(r)``   its derivative ``d rho / d r``;
* ``irls(r)``  the curvature of the quadratic that touches ``rho`` at ``r`` with the same slope,
               ``psi(r) / r`` (iteratively reweighted least squares weights);
* ``curvature(r)`` ``d^2 rho / d r^2`` (for Hessian standard errors).

Summing matters: Hoffmann et al. averaged the Huber loss, which shrinks the gradient by the
number of points so L-BFGS stops early; Besiroglu et al. 2024 (arXiv:2404.10102) traced the
original Chinchilla fit's anomalies to this. scalelab always sums.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np

from scalelab.errors import LawError

__all__ = ["Asymmetric", "Huber", "Objective", "SquaredError", "make_objective"]

Space = Literal["log", "linear"]


@dataclass(frozen=True, kw_only=True)
class Objective:
    """Base class: a per-point loss ``rho`` on residuals in ``space``."""

    space: Space = "log"
    name: ClassVar[str] = ""

    def rho(self, r: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def psi(self, r: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def irls(self, r: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def curvature(self, r: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def total(self, r: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """``sum_i w_i rho(r_i)`` over the last axis; non-finite residuals give ``inf``."""
        with np.errstate(invalid="ignore", over="ignore"):
            val = np.sum(weights * self.rho(r), axis=-1)
        return np.where(np.isfinite(val), val, np.inf)

    def options(self) -> dict[str, float | str]:
        return {"loss": self.name, "space": self.space}


@dataclass(frozen=True, kw_only=True)
class Huber(Objective):
    """Huber loss: ``r^2 / 2`` for ``|r| <= delta``, ``delta (|r| - delta / 2)`` beyond.

    Identical to ``scipy.special.huber(delta, r)``, the loss of Hoffmann et al. 2022 and of
    Besiroglu et al. 2024 with ``delta = 1e-3`` on log residuals.
    """

    delta: float = 1e-3
    name: ClassVar[str] = "huber"

    def __post_init__(self) -> None:
        if not (self.delta > 0 and np.isfinite(self.delta)):
            raise LawError(f"huber delta must be a positive number, got {self.delta!r}")

    def rho(self, r: np.ndarray) -> np.ndarray:
        a = np.abs(r)
        return np.where(a <= self.delta, 0.5 * r * r, self.delta * (a - 0.5 * self.delta))

    def psi(self, r: np.ndarray) -> np.ndarray:
        return np.clip(r, -self.delta, self.delta)

    def irls(self, r: np.ndarray) -> np.ndarray:
        a = np.abs(r)
        with np.errstate(divide="ignore"):
            return np.where(a <= self.delta, 1.0, self.delta / a)

    def curvature(self, r: np.ndarray) -> np.ndarray:
        return (np.abs(r) <= self.delta).astype(float)

    def options(self) -> dict[str, float | str]:
        return {**super().options(), "delta": self.delta}


@dataclass(frozen=True, kw_only=True)
class SquaredError(Objective):
    """Squared error ``r^2 / 2`` (least squares in log or linear space)."""

    name: ClassVar[str] = "mse"

    def rho(self, r: np.ndarray) -> np.ndarray:
        return 0.5 * r * r

    def psi(self, r: np.ndarray) -> np.ndarray:
        return r

    def irls(self, r: np.ndarray) -> np.ndarray:
        return np.ones_like(r)

    def curvature(self, r: np.ndarray) -> np.ndarray:
        return np.ones_like(r)


@dataclass(frozen=True, kw_only=True)
class Asymmetric(Objective):
    """Squared error that weighs over-estimates ``(r > 0)`` by ``penalty`` (> 1).

    Use it when predicting too low a loss is costlier than predicting too high a loss (a plan
    built on an optimistic prediction under-provisions the run): ``rho(r) = penalty * r^2 / 2``
    for ``r > 0`` and ``r^2 / 2`` otherwise.
    """

    penalty: float = 4.0
    name: ClassVar[str] = "asymmetric"

    def __post_init__(self) -> None:
        if not (self.penalty > 0 and np.isfinite(self.penalty)):
            raise LawError(f"asymmetric penalty must be a positive number, got {self.penalty!r}")

    def _scale(self, r: np.ndarray) -> np.ndarray:
        return np.where(r > 0, self.penalty, 1.0)

    def rho(self, r: np.ndarray) -> np.ndarray:
        return 0.5 * self._scale(r) * r * r

    def psi(self, r: np.ndarray) -> np.ndarray:
        return self._scale(r) * r

    def irls(self, r: np.ndarray) -> np.ndarray:
        return self._scale(r)

    def curvature(self, r: np.ndarray) -> np.ndarray:
        return self._scale(r)

    def options(self) -> dict[str, float | str]:
        return {**super().options(), "penalty": self.penalty}


_LOSSES = {
    "huber": (Huber, "log"),
    "mse": (SquaredError, "log"),
    "mse_log": (SquaredError, "log"),
    "mse_linear": (SquaredError, "linear"),
    "asymmetric": (Asymmetric, "log"),
}


def make_objective(
    loss: str | Objective = "huber",
    *,
    delta: float | None = None,
    penalty: float | None = None,
    space: Space | None = None,
) -> Objective:
    """Build an objective by name.

    ``loss`` is one of ``huber`` (log space, ``delta`` default 1e-3), ``mse`` / ``mse_log``
    (log space), ``mse_linear``, ``asymmetric`` (log space, ``penalty`` default 4). ``space``
    overrides the residual space.
    """
    if isinstance(loss, Objective):
        return loss
    try:
        cls, default_space = _LOSSES[loss]
    except KeyError:
        raise LawError(f"unknown loss {loss!r}; choose one of: {', '.join(_LOSSES)}") from None
    if space is not None and space not in ("log", "linear"):
        raise LawError(f"residual space must be 'log' or 'linear', got {space!r}")
    kwargs: dict[str, object] = {"space": space or default_space}
    if delta is not None:
        if cls is not Huber:
            raise LawError("--delta only applies to the huber loss")
        kwargs["delta"] = float(delta)
    if penalty is not None:
        if cls is not Asymmetric:
            raise LawError("--penalty only applies to the asymmetric loss")
        kwargs["penalty"] = float(penalty)
    return cls(**kwargs)
