"""Speed of learning: loss slope in log tokens, tokens to a target, and speedups across seeds.

* :func:`loss_slope` -- ``d loss / d log tokens`` at every evaluation point (second-order
  central differences on the uneven grid, one-sided at the ends; no smoothing).
* :func:`tokens_to_target` -- the tokens at which a loss first falls to a target (or an
  accuracy first reaches a threshold) and stays there for ``sustain`` points, interpolated in
  log space: ``log loss`` linear in ``log(tokens + offset)`` (a power law between evaluation
  points), accuracy linear in ``log(tokens + offset)``. Curves without tokens use steps.
* :func:`speedup` -- ``tokens_baseline(target) / tokens_run(target)``, the way DoReMi reports
  "reaches the baseline's accuracy 2.6x faster". With several seeds per run, the estimate is
  the ratio of geometric means, and the interval is a **pooled two-sample t interval on log
  tokens** (``df = n_baseline + n_run - 2``), exponentiated. It assumes the seeds of both runs
  scatter alike in log tokens and independently; with the usual 2-5 seeds it keeps its nominal
  coverage where a bootstrap over seeds cannot (3 seeds have only 10 distinct resamples).
  Seeds that never reach the target make the speedup a bound (``status`` and
  ``bound_kind`` say which), never a number.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from scalelab.curves._json import fields_to_json
from scalelab.curves.emergence import DEFAULT_SUSTAIN, first_crossing
from scalelab.curves.tidy import Curve
from scalelab.errors import DataError

__all__ = ["Reach", "Speedup", "loss_slope", "speedup", "tokens_to_target"]

_KINDS = ("loss", "accuracy")


def loss_slope(
    tokens: Sequence[float] | np.ndarray, loss: Sequence[float] | np.ndarray
) -> np.ndarray:
    """``d loss / d log tokens`` at each evaluation point.

    Parameters
    ----------
    tokens : array_like
        Strictly increasing, positive token counts.
    loss : array_like
        Loss at each.

    Returns
    -------
    numpy.ndarray
        One slope per point (negative while the loss falls): second-order accurate central
        differences inside, first-order one-sided differences at the two ends.

    Raises
    ------
    DataError
        For fewer than two points, non-positive or non-increasing tokens, or non-finite values.

    Examples
    --------
    >>> import numpy as np
    >>> t = np.geomspace(1e6, 1e9, 4)
    >>> np.round(loss_slope(t, 5 - 0.2 * np.log(t)), 6).tolist()
    [-0.2, -0.2, -0.2, -0.2]
    """
    t = np.asarray(tokens, dtype=np.float64)
    y = np.asarray(loss, dtype=np.float64)
    if t.shape != y.shape or t.ndim != 1:
        raise DataError(f"tokens and loss need the same length, got {t.size} and {y.size}")
    if t.size < 2:
        raise DataError(f"a slope needs at least 2 points, got {t.size}")
    if not (np.all(np.isfinite(t)) and np.all(np.isfinite(y))):
        raise DataError("tokens and loss must be finite numbers")
    if np.any(t <= 0) or np.any(np.diff(t) <= 0):
        raise DataError(
            "a slope in log tokens needs positive, strictly increasing tokens; "
            'drop step 0 (e.g. --where "tokens > 0")'
        )
    return np.gradient(y, np.log(t))


@dataclass(frozen=True)
class Reach:
    """Where one curve first reaches a target.

    Attributes
    ----------
    run, skill, seed, metric : str
    kind : str
        ``loss`` (falls to the target) or ``accuracy`` (rises to it).
    target : float
    unit : str
        ``tokens``, or ``step`` when the curve has no tokens.
    status : str
        ``reached``, ``at_start``, ``not_reached`` or ``insufficient``.
    value : float or None
        Tokens (or steps) at the crossing.
    bracket : (float, float) or None
        The evaluated tokens (or steps) on either side.
    last : float
        The last evaluated tokens (or step): where an unreached curve is censored.
    """

    run: str
    skill: str
    seed: str
    metric: str
    kind: str
    target: float
    unit: str
    status: str
    value: float | None
    bracket: tuple[float, float] | None
    last: float

    @property
    def reached(self) -> bool:
        """Whether the curve gets there (``at_start`` included)."""
        return self.status in ("reached", "at_start")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary."""
        return fields_to_json(self)


def tokens_to_target(
    curve: Curve,
    target: float,
    *,
    kind: str = "loss",
    sustain: int = DEFAULT_SUSTAIN,
    offset: float = 1.0,
) -> Reach:
    """Tokens at which ``curve`` first reaches ``target`` and stays there.

    Parameters
    ----------
    curve : Curve
    target : float
        Target loss (``kind="loss"``, must be positive) or accuracy threshold.
    kind : {"loss", "accuracy"}
    sustain : int
        Evaluation points, the crossing point included, that must stay at the target.
    offset : float
        Interpolate against ``log(tokens + offset)``.

    Returns
    -------
    Reach

    Examples
    --------
    >>> import numpy as np
    >>> t = np.array([1e6, 1e7, 1e8, 1e9])
    >>> c = Curve("r", "", "loss", np.arange(4.0), 10 * t ** -0.1, tokens=t)
    >>> r = tokens_to_target(c, 10 * 3e7 ** -0.1, sustain=1, offset=0)
    >>> r.status, f"{r.value:.3g}"
    ('reached', '3e+07')
    """
    if kind not in _KINDS:
        raise DataError(f"kind must be 'loss' or 'accuracy', got {kind!r}")
    if not math.isfinite(target) or (kind == "loss" and target <= 0):
        raise DataError(f"a target loss must be a positive number, got {target}")
    x = curve.tokens if curve.tokens is not None else curve.step
    unit = "tokens" if curve.tokens is not None else "step"
    if kind == "loss" and curve.n_points and np.any(curve.value <= 0):
        raise DataError(f"curve {curve.label}: losses must be positive to interpolate in log space")
    if curve.n_points >= 2 and np.any(np.diff(x) <= 0):
        raise DataError(
            f"curve {curve.label}: tokens repeat between steps ({unit} must strictly increase "
            "to interpolate); drop the repeated evaluations"
        )
    found = first_crossing(
        x,
        curve.value,
        target,
        sustain=sustain,
        rising=kind == "accuracy",
        offset=offset,
        log_y=kind == "loss",
    )
    return Reach(
        run=curve.run,
        skill=curve.skill,
        seed=curve.seed,
        metric=curve.metric,
        kind=kind,
        target=float(target),
        unit=unit,
        status=found.status,
        value=found.x,
        bracket=found.bracket,
        last=found.last_x,
    )


@dataclass(frozen=True)
class Speedup:
    """How many times fewer tokens ``run`` needs than ``baseline`` to reach a target.

    Attributes
    ----------
    baseline, run : str
    kind : str
        ``loss`` or ``accuracy``.
    target : float
    skill, metric : str
    unit : str
        ``tokens`` or ``step``.
    status : str
        ``ok``; ``baseline_not_reached`` (the speedup is at least ``bound``);
        ``run_not_reached`` (at most ``bound``); ``neither_reached``; or ``insufficient``.
    speedup : float or None
        Geometric-mean tokens of the baseline's seeds over the run's.
    low, high : float or None
        The pooled-t interval across seeds (``None`` with one seed per run).
    bound : float or None
        With ``bound_kind`` ``lower`` or ``upper``: the bound implied by censored seeds.
    bound_kind : str or None
    baseline_reach, run_reach : tuple of Reach
        Per seed.
    interval_method : str
    coverage : float
    notes : tuple of str
    """

    baseline: str
    run: str
    kind: str
    target: float
    skill: str
    metric: str
    unit: str
    status: str
    speedup: float | None
    low: float | None
    high: float | None
    bound: float | None
    bound_kind: str | None
    baseline_reach: tuple[Reach, ...]
    run_reach: tuple[Reach, ...]
    interval_method: str
    coverage: float
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary."""
        return fields_to_json(self)


def speedup(
    curves: Sequence[Curve] | Any,
    *,
    baseline: str,
    run: str,
    target: float,
    kind: str = "loss",
    skill: str | None = None,
    sustain: int = DEFAULT_SUSTAIN,
    offset: float = 1.0,
    coverage: float = 0.95,
) -> Speedup:
    """Speedup of ``run`` over ``baseline``: tokens_baseline(target) / tokens_run(target).

    Parameters
    ----------
    curves : CurveSet or sequence of Curve
        Curves of both runs; several seeds per run give an interval.
    baseline, run : str
        Run names.
    target : float
        Target loss, or accuracy threshold with ``kind="accuracy"``.
    kind : {"loss", "accuracy"}
    skill : str, optional
        Only curves of this skill (needed when the curves hold several skills).
    sustain, offset
        As in :func:`tokens_to_target`.
    coverage : float
        Interval coverage.

    Returns
    -------
    Speedup

    Raises
    ------
    DataError
        If a run has no curve, or the curves mix several skills and none was chosen.
    """
    if not 0 < coverage < 1:
        raise DataError(f"coverage must be between 0 and 1, got {coverage}")
    pool = [c for c in curves if skill is None or c.skill == skill]
    base_curves = [c for c in pool if c.run == baseline]
    run_curves = [c for c in pool if c.run == run]
    for name, chosen in ((baseline, base_curves), (run, run_curves)):
        if not chosen:
            runs = sorted({c.run for c in curves})
            where = f" for skill {skill!r}" if skill is not None else ""
            raise DataError(f"run {name!r} has no curve{where}; runs: {', '.join(runs)}")
        skills = {c.skill for c in chosen}
        if len(skills) > 1:
            raise DataError(
                f"run {name!r} has curves for {len(skills)} skills ({', '.join(sorted(skills))}); "
                "choose one with --skill"
            )
        seeds = [c.seed for c in chosen]
        if len(set(seeds)) < len(seeds):
            raise DataError(f"run {name!r} has several curves with the same seed; give --seed-col")
    reach_b = tuple(
        tokens_to_target(c, target, kind=kind, sustain=sustain, offset=offset) for c in base_curves
    )
    reach_r = tuple(
        tokens_to_target(c, target, kind=kind, sustain=sustain, offset=offset) for c in run_curves
    )
    units = {r.unit for r in reach_b + reach_r}
    if len(units) > 1:
        raise DataError("one run has tokens and the other does not; give --tokens-col for both")
    base: dict[str, Any] = {
        "baseline": baseline,
        "run": run,
        "kind": kind,
        "target": float(target),
        "skill": run_curves[0].skill,
        "metric": run_curves[0].metric,
        "unit": units.pop(),
        "baseline_reach": reach_b,
        "run_reach": reach_r,
        "coverage": coverage,
    }
    none: dict[str, Any] = {"speedup": None, "low": None, "high": None, "interval_method": "none"}
    notes = []
    if any(r.status == "insufficient" for r in reach_b + reach_r):
        notes.append("a curve has fewer than 2 evaluation points")
        return Speedup(
            **base, **none, status="insufficient", bound=None, bound_kind=None, notes=tuple(notes)
        )
    if any(r.status == "at_start" for r in reach_b + reach_r):
        notes.append("a curve is already at the target at its first evaluation (left-censored)")
    if any(r.reached and not (r.value or 0) > 0 for r in reach_b + reach_r):
        notes.append("a curve is at the target at 0 tokens: a ratio of tokens is undefined")
        return Speedup(
            **base, **none, status="insufficient", bound=None, bound_kind=None, notes=tuple(notes)
        )
    b_ok = all(r.reached for r in reach_b)
    r_ok = all(r.reached for r in reach_r)
    if not (b_ok and r_ok):
        return _censored(base, none, notes, b_ok, r_ok)
    log_b = np.log(np.array([r.value for r in reach_b], dtype=np.float64))
    log_r = np.log(np.array([r.value for r in reach_r], dtype=np.float64))
    diff = float(np.mean(log_b) - np.mean(log_r))
    low = high = None
    method = "none"
    dof = len(log_b) + len(log_r) - 2
    if dof >= 1:
        from scipy import stats

        ss = float(np.sum((log_b - log_b.mean()) ** 2) + np.sum((log_r - log_r.mean()) ** 2))
        se = math.sqrt(ss / dof * (1 / len(log_b) + 1 / len(log_r)))
        t = float(stats.t.ppf(0.5 + coverage / 2, dof))
        low, high = math.exp(diff - t * se), math.exp(diff + t * se)
        method = "pooled-t-log-tokens"
    else:
        notes.append("one seed per run: no interval (give --seed-col with several seeds)")
    return Speedup(
        **base,
        status="ok",
        speedup=math.exp(diff),
        low=low,
        high=high,
        bound=None,
        bound_kind=None,
        interval_method=method,
        notes=tuple(notes),
    )


def _censored(
    base: dict[str, Any], none: dict[str, Any], notes: list[str], b_ok: bool, r_ok: bool
) -> Speedup:
    """Speedup when some seeds never reach the target: a one-sided bound, or nothing."""
    reach_b, reach_r = base["baseline_reach"], base["run_reach"]
    if not b_ok and not r_ok:
        notes.append("neither run reaches the target in every seed")
        return Speedup(
            **base,
            **none,
            status="neither_reached",
            bound=None,
            bound_kind=None,
            notes=tuple(notes),
        )
    # censored seeds count at their last evaluation, which under-states their tokens
    log_b = np.mean(np.log([r.value if r.reached else r.last for r in reach_b]))
    log_r = np.mean(np.log([r.value if r.reached else r.last for r in reach_r]))
    bound = math.exp(float(log_b - log_r))
    if not b_ok:
        notes.append(
            "the baseline does not reach the target in every seed: the speedup is at least the bound"
        )
        return Speedup(
            **base,
            **none,
            status="baseline_not_reached",
            bound=bound,
            bound_kind="lower",
            notes=tuple(notes),
        )
    notes.append(
        "the run does not reach the target in every seed: the speedup is at most the bound"
    )
    return Speedup(
        **base,
        **none,
        status="run_not_reached",
        bound=bound,
        bound_kind="upper",
        notes=tuple(notes),
    )
