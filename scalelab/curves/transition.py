"""Phase-change fit: a sigmoid in log-step through one learning curve.

The registry's ``sigmoid`` law, ``y = floor + (ceiling - floor) / (1 + exp(-(log x - log x0) /
width))``, is fitted by :func:`scalelab.fit` to ``x = step + offset`` (offset 1 by default, so
step 0 is usable; the same convention as :mod:`scalelab.curves.emergence`), with least squares
on the metric itself (``mse_linear``: accuracies can be exactly 0, so log residuals are out).
The floor is fixed at the chance level when one is given. The transition point is ``x0 -
offset`` (where the curve is half-way from floor to ceiling) and the width is in natural-log
units of ``step + offset`` (10% to 90% of the rise spans ``2 ln 9 width``). Intervals are
bootstrap percentiles over resampled evaluation points (rows), ``bootstrap`` resamples.
The fit keeps ``x0`` within a factor 100 of the evaluated steps, the width between 1e-3 and
10 times their log-range, and, for values in [0, 1], both levels in [0, 1]: unbounded, a fit
to a flat curve runs off to infinite parameters and fails instead of saying "no transition".

A fit is not always informative, and the status says so instead of giving a number:

* ``ok`` -- the transition point and its interval lie inside the observed steps; when the
  fitted transition is sharper than the evaluations around it resolve (``2 ln 9 width`` below
  their log-spacing), the interval is widened to those two evaluated steps, since the fit
  cannot place the midpoint between them;
* ``weak`` -- the point lies inside but its interval reaches outside the observed steps;
* ``outside_range`` -- the fitted midpoint is before the first or after the last evaluated
  step: there is no transition inside the data (no step is reported);
* ``no_transition`` -- the fitted rise (ceiling minus floor) is not above zero, its interval
  includes zero, or the sigmoid explains the curve no better than a flat line: their BIC
  difference, ``n ln(RSS_flat / RSS_sigmoid) - (k - 1) ln n`` with ``k`` the sigmoid's free
  parameters, is below 10. A sigmoid fitted to noise finds a small, sharp step somewhere,
  and its bootstrap interval does not reveal that (it resamples around the chosen step);
  the measured separation between flat and real curves is in docs/curves.md;
* ``insufficient`` -- fewer points than free parameters + 2;
* ``failed`` -- the optimiser did not converge.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from scalelab.curves._json import fields_to_json
from scalelab.curves.tidy import Curve
from scalelab.errors import DataError, FitError

__all__ = ["DEFAULT_BOOTSTRAP", "MIN_EVIDENCE", "Transition", "fit_transition"]

DEFAULT_BOOTSTRAP = 200
#: BIC difference (flat line minus sigmoid) needed to call a rise a transition; 10 is "very
#: strong" evidence on Kass & Raftery's (1995) scale
MIN_EVIDENCE = 10.0
_LN9 = math.log(9.0)


@dataclass(frozen=True)
class Transition:
    """A sigmoid phase-change fit to one curve.

    Attributes
    ----------
    run, skill, seed, metric : str
    status : str
        ``ok``, ``weak``, ``outside_range``, ``no_transition``, ``insufficient`` or
        ``failed`` (see the module docstring).
    step, step_low, step_high : float or None
        Transition point (the sigmoid's midpoint, in steps) and its interval; ``None``
        unless the status is ``ok`` or ``weak``.
    width, width_low, width_high : float or None
        Width in natural-log units of ``step + offset``, with its interval.
    floor, ceiling, ceiling_low, ceiling_high : float or None
        Fitted levels (the floor is the chance level when ``floor_fixed``).
    floor_fixed : bool
    observed : (float, float)
        First and last evaluated step.
    n_points : int
    rmse : float or None
        Root-mean-square residual of the fit, in metric units.
    evidence : float or None
        BIC difference between a flat line and the sigmoid (larger favours the sigmoid);
        below ``MIN_EVIDENCE`` (10) the status is ``no_transition``.
    bootstrap : int
        Resamples asked for (0: Hessian Wald intervals).
    bootstrap_failed : int
    interval_method : str
    coverage : float
    offset : float
    notes : tuple of str
    """

    run: str
    skill: str
    seed: str
    metric: str
    status: str
    step: float | None
    step_low: float | None
    step_high: float | None
    width: float | None
    width_low: float | None
    width_high: float | None
    floor: float | None
    floor_fixed: bool
    ceiling: float | None
    ceiling_low: float | None
    ceiling_high: float | None
    observed: tuple[float, float]
    n_points: int
    rmse: float | None
    evidence: float | None
    bootstrap: int
    bootstrap_failed: int
    interval_method: str
    coverage: float
    offset: float
    notes: tuple[str, ...] = ()

    @property
    def identified(self) -> bool:
        """Whether a transition point is reported (status ``ok`` or ``weak``)."""
        return self.status in ("ok", "weak")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (non-finite numbers become ``None``)."""
        return fields_to_json(self)


def fit_transition(
    curve: Curve,
    *,
    chance: float | None = None,
    offset: float = 1.0,
    bootstrap: int = DEFAULT_BOOTSTRAP,
    coverage: float = 0.95,
    seed: int = 0,
    starts: str | int = "grid",
    workers: int | None = None,
) -> Transition:
    """Fit a sigmoid in log-step to ``curve`` and report its transition point and width.

    Parameters
    ----------
    curve : Curve
    chance : float, optional
        Fix the sigmoid's floor here; defaults to ``curve.chance``; free when neither is set.
    offset : float
        Fit against ``x = step + offset``.
    bootstrap : int
        Row-bootstrap resamples for percentile intervals (0: Hessian Wald intervals).
    coverage : float
        Interval coverage.
    seed : int
        Seed of the bootstrap.
    starts : "grid" or int
        Starting points of the fit (see :func:`scalelab.fit`).
    workers : int, optional
        Threads for the fitting engine.

    Returns
    -------
    Transition

    Examples
    --------
    >>> import numpy as np
    >>> steps = np.geomspace(1, 1e5, 30)
    >>> acc = 0.25 + 0.7 / (1 + np.exp(-(np.log(steps + 1) - np.log(3001)) / 0.6))
    >>> t = fit_transition(Curve("r", "s", "acc", steps, acc), chance=0.25, bootstrap=0)
    >>> t.status, round(t.step), round(t.width, 3)
    ('ok', 3000, 0.6)
    """
    from scalelab.curves.emergence import log_positions

    if bootstrap < 0:
        raise DataError(f"bootstrap must be a non-negative number of resamples, got {bootstrap}")
    chance = curve.chance if chance is None else float(chance)
    n = curve.n_points
    observed = (float(curve.step[0]), float(curve.step[-1])) if n else (math.nan, math.nan)
    base: dict[str, Any] = {
        "run": curve.run,
        "skill": curve.skill,
        "seed": curve.seed,
        "metric": curve.metric,
        "floor_fixed": chance is not None,
        "observed": observed,
        "n_points": n,
        "bootstrap": bootstrap,
        "coverage": coverage,
        "offset": offset,
    }
    n_free = 3 if chance is not None else 4
    if n < n_free + 2:
        return _empty(
            base,
            "insufficient",
            f"{n} evaluation point(s) for {n_free} free parameters: a fit needs at least {n_free + 2}",
        )
    x = np.exp(log_positions(curve.step, offset))
    settings: dict[str, Any] = {
        "fixed": {"floor": chance} if chance is not None else None,
        "bounds": _bounds(x, curve.value, chance),
        "starts": starts,
        "coverage": coverage,
        "seed": seed,
        "workers": workers,
    }
    res, problem = _fit(x, curve.value, bootstrap=bootstrap, **settings)
    if res is None and bootstrap:
        # the resamples failed; the full-data fit can still say whether there is a rise at all
        plain, _ = _fit(x, curve.value, bootstrap=0, **settings)
        if plain is not None and _evidence(plain, x, curve.value) < MIN_EVIDENCE:
            return _empty(base, "no_transition", _flat_note(_evidence(plain, x, curve.value)))
    if res is None:
        return _empty(base, "failed", problem)
    return _judge(base, res, x, curve.value, offset)


def _bounds(x: np.ndarray, y: np.ndarray, chance: float | None) -> dict[str, tuple[float, float]]:
    """Keep the sigmoid near the data, so flat curves cannot run off to infinite parameters.

    The midpoint stays within a factor 100 of the evaluated steps, the width between 1e-3
    (a step) and 10 times the log-range of the steps, and for values in [0, 1] (accuracies)
    the levels within [0, 1].
    """
    u = np.log(x)
    out = {
        "x0": (float(x[0]) / 100.0, float(x[-1]) * 100.0),
        "width": (1e-3, 10.0 * max(float(np.ptp(u)), 1e-3)),
    }
    if np.all((y >= 0) & (y <= 1)) and (chance is None or 0 <= chance <= 1):
        out["ceiling"] = (0.0, 1.0)
        if chance is None:
            out["floor"] = (0.0, 1.0)
    return out


def _fit(x: np.ndarray, y: np.ndarray, **settings: Any) -> tuple[Any, str]:
    """The sigmoid fit, or ``(None, reason)`` when it fails or does not converge."""
    from scalelab.fit import fit

    try:
        with warnings.catch_warnings():
            # the engine's relative-error statistics divide by y, which is 0 for untrained
            # open-vocabulary accuracies; the fit itself is unaffected
            warnings.simplefilter("ignore", RuntimeWarning)
            res = fit(
                "sigmoid",
                {"x": x, "y": y},
                x={"x": "x"},
                y="y",
                loss="mse_linear",
                raise_on_failure=False,
                **settings,
            )
    except FitError as exc:
        return None, str(exc)
    if not res.converged:
        return None, f"the sigmoid fit did not converge ({res.message})"
    return res, ""


def _evidence(res: Any, x: np.ndarray, y: np.ndarray) -> float:
    """BIC difference between a flat line (the mean) and the fitted sigmoid (> 0 favours it).

    ``n ln(RSS_flat / RSS_sigmoid) - (k_sigmoid - 1) ln n`` for Gaussian residuals, where
    ``k_sigmoid`` counts the sigmoid's free parameters and the flat line has one.
    """
    pred = res.law.evaluate(res.theta, {"x": x})
    rss_sig = float(np.sum((y - pred) ** 2))
    rss_flat = float(np.sum((y - np.mean(y)) ** 2))
    n = len(y)
    if rss_flat == 0:
        return -math.inf
    if rss_sig == 0:
        return math.inf
    return n * math.log(rss_flat / rss_sig) - (res.n_free - 1) * math.log(n)


def _flat_note(evidence: float) -> str:
    return (
        f"a flat line explains the curve about as well as a sigmoid (BIC difference "
        f"{evidence:.1f} < {MIN_EVIDENCE:g}): no clear transition"
    )


def _judge(
    base: dict[str, Any], res: Any, x: np.ndarray, y: np.ndarray, offset: float
) -> Transition:
    """Turn a converged fit into a :class:`Transition` with an honest status."""
    p = res.params
    floor, ceiling = p["floor"].value, p["ceiling"].value
    x0 = p["x0"]
    width = p["width"]
    notes: list[str] = []
    first, last = float(x[0]), float(x[-1])
    evidence = _evidence(res, x, y)
    levels = {
        "floor": floor,
        "ceiling": ceiling,
        "ceiling_low": _finite(p["ceiling"].ci_low),
        "ceiling_high": _finite(p["ceiling"].ci_high),
        "rmse": _finite(res.stats.get("rmse", math.nan)),
        "evidence": _finite(evidence),
        "bootstrap_failed": res.bootstrap_failed,
        "interval_method": res.interval_method,
    }
    rise_low = _rise_low(res)
    if ceiling <= floor or (rise_low is not None and rise_low <= 0):
        notes.append(
            f"fitted rise from {floor:.4g} to {ceiling:.4g} is not distinguishable from none"
        )
        return _empty(base, "no_transition", *notes, **levels)
    if evidence < MIN_EVIDENCE:
        return _empty(base, "no_transition", _flat_note(evidence), **levels)
    if x0.value < first or x0.value > last:
        where = "before the first" if x0.value < first else "after the last"
        notes.append(
            f"fitted midpoint (step {x0.value - offset:.4g}) lies {where} evaluated step: "
            "no transition inside the observed range"
        )
        return _empty(base, "outside_range", *notes, **levels)
    lo, hi = _finite(x0.ci_low), _finite(x0.ci_high)
    u = np.log(x)
    k = _segment(u, math.log(x0.value))
    w_low = _finite(width.ci_low)
    if 2 * _LN9 * width.value < u[k] - u[k - 1]:
        # sharper than the evaluations can resolve: the midpoint can sit anywhere between the
        # two evaluations around it at almost the same fit, which a bootstrap started at the
        # optimum does not explore -- widen the interval to that bracket
        lo = float(x[k - 1]) if lo is None else min(lo, float(x[k - 1]))
        hi = float(x[k]) if hi is None else max(hi, float(x[k]))
        notes.append(
            f"transition sharper than the evaluations resolve: the interval is widened to the "
            f"evaluated steps around it ({x[k - 1] - offset:g}-{x[k] - offset:g})"
        )
    elif w_low is not None and 2 * _LN9 * w_low < u[k] - u[k - 1]:
        notes.append("width interval reaches below the evaluation spacing (only bounded above)")
    status = "ok"
    if lo is None or hi is None or lo < first or hi > last:
        status = "weak"
        notes.append("the interval of the transition point reaches outside the observed steps")
    return Transition(
        **base,
        status=status,
        step=x0.value - offset,
        step_low=None if lo is None else lo - offset,
        step_high=None if hi is None else hi - offset,
        width=width.value,
        width_low=w_low,
        width_high=_finite(width.ci_high),
        notes=tuple(notes),
        **levels,
    )


def _rise_low(res: Any) -> float | None:
    """Lower interval end of ceiling - floor (bootstrap draws, or Wald from the ceiling)."""
    alpha = (1 - res.coverage) / 2
    if res.bootstrap is not None and len(res.bootstrap):
        names = list(res.law.param_names)
        rise = res.bootstrap[:, names.index("ceiling")] - res.bootstrap[:, names.index("floor")]
        return float(np.quantile(rise, alpha))
    if res.params["floor"].fixed:
        low = _finite(res.params["ceiling"].ci_low)
        return None if low is None else low - res.params["floor"].value
    return None


def _segment(u: np.ndarray, u0: float) -> int:
    """Index ``k`` of the evaluation after ``u0``, so that ``u[k - 1] <= u0 <= u[k]``."""
    k = int(np.searchsorted(u, u0))
    return min(max(k, 1), len(u) - 1)


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _empty(base: dict[str, Any], status: str, *notes: str, **levels: Any) -> Transition:
    fields: dict[str, Any] = {
        "floor": None,
        "ceiling": None,
        "ceiling_low": None,
        "ceiling_high": None,
        "rmse": None,
        "evidence": None,
        "bootstrap_failed": 0,
        "interval_method": "none",
    }
    fields.update(levels)
    return Transition(
        **base,
        status=status,
        step=None,
        step_low=None,
        step_high=None,
        width=None,
        width_low=None,
        width_high=None,
        notes=tuple(notes),
        **fields,
    )
