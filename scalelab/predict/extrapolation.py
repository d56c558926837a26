"""How far a prediction lies outside the range a law was fitted on.

A scaling law is fitted on small runs and used on large ones, so every prediction is an
extrapolation of some size. This module measures it the way a planner thinks about it: in
multiples of the largest fitted value of each input (``N`` 8x the largest fitted model) and,
for laws of ``(N, D)``, of the largest fitted training compute ``C = 6 N D``. It also gives
the per-point *distance* outside the fitted box that :mod:`scalelab.predict.intervals` uses to
widen prediction intervals:

    distance = max over inputs of max(log(x / x_max), log(x_min / x), 0)

for positive inputs (inputs with zero or negative values use ``(x - x_max) / span`` and
``(x_min - x) / span`` instead, ``span = x_max - x_min``). Inside the fitted box the distance
is 0; at 8x the largest fitted ``N`` it is ``log 8 = 2.08``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np

from scalelab.laws._allocation import FLOPS_PER_PARAM_TOKEN

if TYPE_CHECKING:
    from scalelab.fit import FitResult

__all__ = ["Extrapolation", "check_extrapolation", "extrapolation_distance", "fitted_ranges"]


@dataclass(frozen=True)
class Extrapolation:
    """How far a set of target points lies outside the fitted range.

    Attributes
    ----------
    above : mapping of name -> float
        For each input (and ``"C"`` for laws of N and D), the largest target value divided by
        the largest fitted value; above 1 means beyond the fitted range.
    below : mapping of name -> float
        The smallest fitted value divided by the smallest target value; above 1 means below
        the fitted range.
    fitted_max : mapping of name -> float
        The largest fitted value of each input (and of ``C``).
    spans : mapping of name -> float
        For inputs with zero or negative values (where a ratio means nothing): how many fitted
        spans ``max - min`` the targets reach beyond the range (0 inside).
    compute_is_bound : bool
        True when the largest fitted compute is not known exactly and ``fitted_max["C"]`` is
        the upper bound ``6 x max N x max D`` (a fit file records input ranges, not the
        compute of its largest run); the multiple of ``C`` is then a lower bound.
    """

    above: Mapping[str, float]
    below: Mapping[str, float]
    fitted_max: Mapping[str, float]
    spans: Mapping[str, float] = field(default_factory=dict)
    compute_is_bound: bool = False

    def __post_init__(self) -> None:
        for name in ("above", "below", "fitted_max", "spans"):
            object.__setattr__(self, name, MappingProxyType(dict(getattr(self, name))))

    @property
    def outside(self) -> bool:
        """Whether any target lies outside the fitted range of any input."""
        return self.factor > 1.0 or any(v > 0 for v in self.spans.values())

    @property
    def factor(self) -> float:
        """The largest multiple (above or below) over the positive inputs; 1 when inside."""
        values = [v for v in (*self.above.values(), *self.below.values()) if math.isfinite(v)]
        return max([1.0, *values])

    def message(self) -> str:
        """One line naming every input outside its fitted range, or ``""`` when none is.

        Examples
        --------
        ``"extrapolating: N up to 8.1x the largest fitted N (2.0e+09); C up to 25x the
        largest fitted compute (2.3e+21)"``
        """
        parts = []
        for name, mult in self.above.items():
            if name == "C" and self.compute_is_bound:
                if mult > 1.0:
                    parts.append(
                        f"C at least {mult:.3g}x the largest fitted compute (which is at most "
                        f"6 x max N x max D = {self.fitted_max[name]:.3g}; pass the fit's data "
                        "for the exact multiple)"
                    )
            elif mult > 1.0:
                what = "compute" if name == "C" else name
                parts.append(
                    f"{name} up to {mult:.3g}x the largest fitted {what} "
                    f"({self.fitted_max[name]:.3g})"
                )
        for name, mult in self.below.items():
            if mult > 1.0:
                parts.append(f"{name} down to 1/{mult:.3g} of the smallest fitted {name}")
        for name, span in self.spans.items():
            if span > 0:
                parts.append(f"{name} {span:.3g} fitted ranges outside the fitted {name}")
        return ("extrapolating: " + "; ".join(parts)) if parts else ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "outside": self.outside,
            "factor": self.factor,
            "above": dict(self.above),
            "below": dict(self.below),
            "spans": dict(self.spans),
            "fitted_max": dict(self.fitted_max),
            "compute_is_bound": self.compute_is_bound,
            "message": self.message(),
        }


def fitted_ranges(
    result: FitResult, inputs: Mapping[str, np.ndarray] | None = None
) -> tuple[dict[str, tuple[float, float]], bool]:
    """The fitted range ``(min, max)`` of each input of ``result``, plus ``"C"`` if defined.

    Parameters
    ----------
    result : FitResult
        A fit; its ``data["ranges"]`` holds the input ranges.
    inputs : mapping of input -> array, optional
        The fitted rows' inputs. For laws with inputs ``N`` and ``D`` the range of
        ``C = 6 N D`` is exact when these are given or the fit records
        ``data["compute_range"]``; otherwise it is bounded by ``6 min N min D`` and
        ``6 max N max D``.

    Returns
    -------
    (dict, bool)
        The ranges, and whether the compute range is only a bound.
    """
    from scalelab.errors import DataError

    raw = dict(result.data.get("ranges") or {})
    missing = [k for k in result.law.inputs if k not in raw]
    if missing:
        raise DataError(
            f"the fit records no fitted range for input(s) {missing}; refit it with this "
            "version of scalelab"
        )
    ranges = {k: (float(raw[k][0]), float(raw[k][1])) for k in result.law.inputs}
    bound = False
    if "N" in ranges and "D" in ranges and "C" not in ranges:
        recorded = result.data.get("compute_range")
        if inputs is not None:
            c = FLOPS_PER_PARAM_TOKEN * np.asarray(inputs["N"]) * np.asarray(inputs["D"])
            ranges["C"] = (float(np.min(c)), float(np.max(c)))
        elif recorded is not None:
            ranges["C"] = (float(recorded[0]), float(recorded[1]))
        else:
            (n_lo, n_hi), (d_lo, d_hi) = ranges["N"], ranges["D"]
            ranges["C"] = (FLOPS_PER_PARAM_TOKEN * n_lo * d_lo, FLOPS_PER_PARAM_TOKEN * n_hi * d_hi)
            bound = True
    return ranges, bound


def _with_compute(
    ranges: Mapping[str, tuple[float, float]], points: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    pts = {k: np.atleast_1d(np.asarray(v, dtype=float)) for k, v in points.items()}
    if "C" in ranges and "C" not in pts and "N" in pts and "D" in pts:
        pts["C"] = FLOPS_PER_PARAM_TOKEN * pts["N"] * pts["D"]
    return pts


def extrapolation_distance(
    ranges: Mapping[str, tuple[float, float]],
    points: Mapping[str, Any],
    *,
    names: Sequence[str] | None = None,
) -> np.ndarray:
    """Per-point distance outside the fitted box (0 inside); see the module docstring.

    Parameters
    ----------
    ranges : mapping of input -> (min, max)
        The fitted range of each input.
    points : mapping of input -> array
        Target points (equal lengths).
    names : sequence of str, optional
        Inputs to measure (default: every input present in both ``ranges`` and ``points``,
        ``"C"`` excluded, so the distance is in the law's own inputs).

    Returns
    -------
    numpy.ndarray
        Shape ``(n,)``, non-negative.
    """
    keys = list(names) if names is not None else [k for k in points if k in ranges and k != "C"]
    n = len(np.atleast_1d(next(iter(points.values())))) if points else 0
    dist = np.zeros(n)
    for k in keys:
        lo, hi = ranges[k]
        x = np.atleast_1d(np.asarray(points[k], dtype=float))
        if lo > 0 and np.all(x > 0):
            d = np.maximum(np.maximum(np.log(x / hi), np.log(lo / x)), 0.0)
        else:
            span = hi - lo if hi > lo else max(abs(hi), 1.0)
            d = np.maximum(np.maximum((x - hi) / span, (lo - x) / span), 0.0)
        dist = np.maximum(dist, d)
    return dist


def check_extrapolation(
    ranges: Mapping[str, tuple[float, float]],
    points: Mapping[str, Any],
    *,
    compute_is_bound: bool = False,
) -> Extrapolation:
    """Summarise how far ``points`` lie outside ``ranges``, in multiples of the fitted values.

    Parameters
    ----------
    ranges : mapping of input -> (min, max)
        From :func:`fitted_ranges`; include ``"C"`` to report multiples of the fitted compute
        (computed for the points as ``6 N D``).
    points : mapping of input -> array
        Target points.
    compute_is_bound : bool
        Whether ``ranges["C"]`` is only the bound ``6 max N max D``.

    Returns
    -------
    Extrapolation
    """
    pts = _with_compute(ranges, points)
    above: dict[str, float] = {}
    below: dict[str, float] = {}
    spans: dict[str, float] = {}
    fitted_max: dict[str, float] = {}
    for k, (lo, hi) in ranges.items():
        if k not in pts:
            continue
        x = pts[k]
        fitted_max[k] = hi
        if lo > 0 and np.all(x > 0):
            above[k] = float(np.max(x) / hi)
            below[k] = float(lo / np.min(x))
        else:
            span = hi - lo if hi > lo else max(abs(hi), 1.0)
            spans[k] = float(max(np.max(x) - hi, lo - np.min(x), 0.0) / span)
    return Extrapolation(above, below, fitted_max, spans, compute_is_bound=compute_is_bound)
