"""Compute-optimal plans: N*(C), D*(C) and the loss of that run, with intervals.

For each budget ``C`` (training FLOPs, ``C = 6 N D``) the plan gives

* ``N``, ``D`` and ``tokens_per_param`` -- the compute-optimal allocation of the best fit,
  with an interval over the parameter draws (each draw's own optimum; bootstrap refits, or
  Hessian-normal draws when the fit has no bootstrap);
* ``loss`` -- the predicted loss of a run trained at the best fit's ``(N*, D*)``, with a
  *prediction* interval that adds observation noise
  (:func:`scalelab.predict.intervals.prediction_interval`);
* how far the planned run lies beyond the fitted data, in multiples of the largest fitted
  ``N``, ``D`` and compute (:mod:`scalelab.predict.extrapolation`).

Laws of ``(N, D, U)`` (data-constrained) are planned with unlimited unique data, ``U = D``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from scalelab.errors import DataError, LawError
from scalelab.predict.extrapolation import Extrapolation, check_extrapolation, fitted_ranges
from scalelab.predict.intervals import (
    NoiseModel,
    noise_from_fit,
    parameter_draws,
    prediction_interval,
)

if TYPE_CHECKING:
    from scalelab.fit import FitResult

__all__ = ["BudgetPlan", "Interval", "Plan", "compute_optimal_plan"]


@dataclass(frozen=True)
class Interval:
    """A value with a ``[low, high]`` interval (NaN when there is none)."""

    value: float
    low: float
    high: float

    def to_dict(self) -> dict[str, float | None]:
        return {"value": _num(self.value), "low": _num(self.low), "high": _num(self.high)}


@dataclass(frozen=True)
class BudgetPlan:
    """The compute-optimal run for one budget."""

    compute: float
    N: Interval
    D: Interval
    tokens_per_param: Interval
    loss: Interval
    extrapolation: Extrapolation

    def to_dict(self) -> dict[str, Any]:
        return {
            "compute": self.compute,
            "N": self.N.to_dict(),
            "D": self.D.to_dict(),
            "tokens_per_param": self.tokens_per_param.to_dict(),
            "loss": self.loss.to_dict(),
            "extrapolation": self.extrapolation.to_dict(),
        }


@dataclass(frozen=True)
class Plan:
    """Compute-optimal plans for one or more budgets, from one fit."""

    law: str
    y: str
    coverage: float
    draws: str
    noise: NoiseModel
    budgets: tuple[BudgetPlan, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": "scalelab.plan/1",
            "law": self.law,
            "y": self.y,
            "coverage": self.coverage,
            "draws": self.draws,
            "noise": self.noise.to_dict(),
            "plans": [b.to_dict() for b in self.budgets],
        }

    def report(self) -> str:
        """A plain-text table per budget, with the extrapolation warning under each."""
        pct = f"{100 * self.coverage:g}%"
        lines = [
            f"plan       {self.law}: C = 6 N D; intervals {pct}, {self.draws} draws",
            f"           loss interval for one run: + {self.noise.describe()}",
        ]
        for b in self.budgets:
            lines += ["", f"compute {b.compute:.4g} FLOPs"]
            for label, iv in (
                ("params N", b.N),
                ("tokens D", b.D),
                ("tokens/param", b.tokens_per_param),
                (self.y, b.loss),
            ):
                ci = (
                    f"   {pct} [{iv.low:.4g}, {iv.high:.4g}]"
                    if math.isfinite(iv.low)
                    else "   (no interval)"
                )
                lines.append(f"  {label:<13} {iv.value:.4g}{ci}")
            msg = b.extrapolation.message()
            if msg:
                lines.append(f"  warning: {msg}")
        return "\n".join(lines)


def _num(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def _check_budgets(compute: float | Sequence[float]) -> list[float]:
    values: list[Any] = [compute] if np.isscalar(compute) else list(compute)  # type: ignore[arg-type]
    if not values:
        raise DataError("give at least one compute budget in FLOPs, e.g. --compute 5.88e23")
    out = []
    for c in values:
        try:
            value = float(c)
        except (TypeError, ValueError):
            raise DataError(
                f"compute {c!r} is not a number; give training FLOPs, e.g. 5.88e23"
            ) from None
        if not (math.isfinite(value) and value > 0):
            raise DataError(f"compute must be a positive number of FLOPs, got {c!r}")
        out.append(value)
    return out


def _allocate(law: Any, theta: np.ndarray, compute: float) -> dict[str, np.ndarray]:
    try:
        return law.compute_optimal(theta, compute)
    except LawError:
        raise LawError(
            f"plan needs a law with a compute-optimal allocation (chinchilla, kaplan, "
            f"data_constrained); this is a fit of {law.name!r} (inputs {', '.join(law.inputs)})"
        ) from None


def compute_optimal_plan(
    result: FitResult,
    compute: float | Sequence[float],
    *,
    coverage: float | None = None,
    noise: NoiseModel | None = None,
    fit_inputs: Mapping[str, Any] | None = None,
    seed: int = 0,
) -> Plan:
    """Plan the compute-optimal run for each budget in ``compute``.

    Parameters
    ----------
    result : FitResult
        A fit of a law with a compute-optimal allocation (inputs ``N`` and ``D``).
    compute : float or sequence of float
        Training budgets in FLOPs (``C = 6 N D``).
    coverage : float, optional
        Interval coverage (default the fit's).
    noise : NoiseModel, optional
        Observation noise for the loss interval (default the fit's in-sample RMS residual,
        :func:`scalelab.predict.intervals.noise_from_fit`).
    fit_inputs : mapping of input -> array, optional
        The inputs of the fitted rows; makes the multiple of the largest fitted compute exact
        (a fit file records only the range of each input, which bounds it).
    seed : int
        Seed of the interval simulation.

    Returns
    -------
    Plan

    Raises
    ------
    LawError
        If the law has no compute-optimal allocation.
    DataError
        If a budget is not a positive number.

    Examples
    --------
    >>> plan = compute_optimal_plan(res, [5.88e23, 1e24])  # doctest: +SKIP
    >>> round(plan.budgets[0].tokens_per_param.value)  # doctest: +SKIP
    18
    """
    law = result.law
    budgets = _check_budgets(compute)
    level = result.coverage if coverage is None else float(coverage)
    if not 0 < level < 1:
        raise DataError(f"coverage must be between 0 and 1, got {level}")
    _allocate(law, result.theta[None], budgets[0])  # fail fast on laws without an allocation
    noise = noise_from_fit(result) if noise is None else noise
    draws, label = parameter_draws(result, seed=seed)
    ranges, bound = fitted_ranges(result, fit_inputs)
    alpha = (1.0 - level) / 2.0
    plans = []
    for c in budgets:
        best = {k: float(np.ravel(v)[0]) for k, v in _allocate(law, result.theta[None], c).items()}
        many = _allocate(law, draws, c)
        many_tpp = many["D"] / many["N"]

        def interval(value: float, sample: np.ndarray) -> Interval:
            ok = np.isfinite(sample)
            if ok.sum() < 2:
                return Interval(value, math.nan, math.nan)
            lo, hi = np.quantile(sample[ok], [alpha, 1.0 - alpha])
            return Interval(value, float(lo), float(hi))

        point = {"N": best["N"], "D": best["D"]}
        if "U" in law.inputs:
            point["U"] = best["D"]
        pred = prediction_interval(result, point, noise=noise, coverage=level, seed=seed)
        plans.append(
            BudgetPlan(
                compute=c,
                N=interval(best["N"], many["N"]),
                D=interval(best["D"], many["D"]),
                tokens_per_param=interval(best["D"] / best["N"], many_tpp),
                loss=Interval(float(pred.mean[0]), float(pred.lower[0]), float(pred.upper[0])),
                extrapolation=check_extrapolation(ranges, point, compute_is_bound=bound),
            )
        )
    return Plan(law.name, result.y, level, label, noise, tuple(plans))
