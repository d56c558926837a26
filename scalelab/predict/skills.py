"""Per-skill emergence at scale: when will each skill emerge in a larger model?

From learning curves of several model sizes (one tidy table: run, model size, step or tokens,
and per-skill accuracy), each run's crossing step for each skill is measured with
:mod:`scalelab.curves`, the crossings of each skill are fitted against model size as a power
law, and the crossing of a larger model is predicted with an interval, or judged against a
token budget. Definitions (also in docs/predict_skills.md):

* **Crossing.** Either the emergence step of :func:`scalelab.curves.emergence` (``measure=
  "crossing"``: the first evaluation at which the accuracy reaches a level and stays there,
  interpolated in log-step; the level is an absolute ``threshold`` or a ``fraction`` of the way
  from chance to the run's final value), or the midpoint of the sigmoid phase-change fit of
  :func:`scalelab.curves.fit_transition` (``measure="transition"``). Its interval (evaluation
  noise, or the fit's bootstrap) gives each crossing a standard error in ``log`` units,
  ``(log high - log low) / (2 z)``.
* **Resolved.** A crossing enters the fit only when it is a number with a finite interval:
  not censored (``not_reached``, ``at_start``), not ``no_progress``, and, in fraction mode with
  standard errors, the run's rise from chance must exceed ``2 z`` standard errors of its final
  value, so that the level (half-way for ``fraction=0.5``) sits at least ``z`` standard errors
  above chance: below that, the "crossing" is where noise first pokes above a level that is
  itself within the noise. Each excluded crossing is listed with its reason.
* **Power law.** ``log T = a + b log N`` per skill (``T`` the crossing in steps or tokens),
  fitted by :func:`scalelab.predict.persistence.fit_size_trend`: weighted by the crossings'
  standard errors plus a between-size scatter ``tau^2`` (Paule-Mandel), one point per size,
  Student's t prediction intervals with ``sizes - 2`` degrees of freedom. At least 3 resolved
  sizes are needed; a skill with fewer is reported ``insufficient``, never given a number.
* **Budget.** With a budget (same unit as the crossings), a prediction is ``within_budget``
  when its whole interval is at or below the budget, ``beyond_budget`` when the whole interval
  is above it (the skill is predicted not to emerge within the budget), ``undetermined``
  otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from scalelab.errors import DataError
from scalelab.predict.persistence import MIN_SIZES, SizeTrend, fit_size_trend

__all__ = [
    "Comparison",
    "Crossings",
    "SizePoint",
    "SkillPrediction",
    "SkillScaling",
    "SkillsAtScale",
    "measure_crossings",
    "predict_skills",
    "skills_at_scale",
]

MEASURES = ("crossing", "transition")
UNITS = ("tokens", "step")


def _json(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (tuple, list)):
        return [_json(v) for v in value]
    if hasattr(value, "to_dict"):
        return value.to_dict()
    return value


def _to_dict(obj: Any) -> dict[str, Any]:
    return {f.name: _json(getattr(obj, f.name)) for f in fields(obj)}


# ------------------------------------------------------------------------------ measuring
@dataclass(frozen=True)
class SizePoint:
    """The crossing of one skill in one run, and whether it can enter a fit against size.

    Attributes
    ----------
    run, skill : str
    size : float
        The run's model size (``size_col``).
    status : str
        The emergence status (``reached``, ``not_reached``, ...) or, for
        ``measure="transition"``, the sigmoid fit's (``ok``, ``weak``, ``outside_range``, ...).
    resolved : bool
        Whether the crossing enters the fit.
    reason : str
        Why it does not (empty when resolved).
    value, low, high : float or None
        The crossing and its interval, in ``unit`` (steps or tokens).
    se_log : float or None
        Standard error of ``log value`` from the interval (``None`` without one).
    bracket : (float, float) or None
        The evaluated steps around an emergence crossing.
    level : float or None
        The accuracy level crossed (emergence), or ``None`` for a sigmoid midpoint.
    final_value : float or None
        The run's metric at its last evaluation.
    """

    run: str
    skill: str
    size: float
    status: str
    resolved: bool
    reason: str
    value: float | None
    low: float | None
    high: float | None
    se_log: float | None
    bracket: tuple[float, float] | None
    level: float | None
    final_value: float | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary."""
        return _to_dict(self)


@dataclass(frozen=True)
class Crossings:
    """Crossings of every (run, skill) of a table, with each run's model size.

    Attributes
    ----------
    points : tuple of SizePoint
        Ordered by skill (first appearance), then size.
    skills : tuple of str
    measure : str
        ``crossing`` (emergence step) or ``transition`` (sigmoid midpoint).
    unit : str
        ``step`` or ``tokens``.
    mode : str
        ``threshold`` or ``fraction``.
    threshold, fraction : float or None
    chance : float, mapping or None
        As given.
    size_col, source, fingerprint : str
    where : str or None
    coverage : float
        Coverage of the crossings' intervals.
    bootstrap, sustain, seed : int
    offset : float
    notes : tuple of str
    """

    points: tuple[SizePoint, ...]
    skills: tuple[str, ...]
    measure: str
    unit: str
    mode: str
    threshold: float | None
    fraction: float | None
    chance: float | Mapping[str, float] | None
    size_col: str
    source: str
    fingerprint: str
    where: str | None
    coverage: float
    bootstrap: int
    sustain: int
    seed: int
    offset: float
    notes: tuple[str, ...] = ()

    def for_skill(self, skill: str) -> tuple[SizePoint, ...]:
        """The points of one skill, smallest model first.

        Raises
        ------
        DataError
            If the skill is not in the table; the message lists those that are.
        """
        if skill not in self.skills:
            raise DataError(
                f"skill {skill!r} has no rows in {self.source}; skills: {', '.join(self.skills)}"
            )
        return tuple(p for p in self.points if p.skill == skill)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary."""
        out = _to_dict(self)
        out["chance"] = dict(self.chance) if isinstance(self.chance, Mapping) else self.chance
        return out


def measure_crossings(
    source: Any,
    *,
    size_col: str,
    metric: str = "acc",
    run_col: str = "run",
    step_col: str = "step",
    skill_col: str | None = None,
    metric_col: str | None = None,
    value_col: str = "value",
    tokens_col: str | None = None,
    stderr_col: str | None = None,
    chance_col: str | None = None,
    where: str | None = None,
    threshold: float | None = None,
    fraction: float | None = None,
    chance: float | Mapping[str, float] | None = None,
    sustain: int = 3,
    offset: float = 1.0,
    measure: str = "crossing",
    unit: str | None = None,
    bootstrap: int = 200,
    coverage: float = 0.95,
    seed: int = 0,
    workers: int | None = None,
) -> Crossings:
    """Measure every run's crossing of every skill, with the run's model size.

    Parameters
    ----------
    source : path, dataset name, Table, DataFrame or mapping of columns
        One tidy table of evaluations (see :func:`scalelab.curves.read_curves` for the long
        and wide layouts).
    size_col : str
        Model size (parameters) of each row; constant within a run.
    metric, run_col, step_col, skill_col, metric_col, value_col, tokens_col, stderr_col,
    chance_col, where
        As in :func:`scalelab.curves.read_curves`.
    threshold, fraction, chance, sustain, offset
        The level, as in :func:`scalelab.curves.emergence` (``chance`` may map skills to
        levels, with ``"*"`` as the default).
    measure : {"crossing", "transition"}
        Emergence step (fast) or sigmoid midpoint (a bootstrapped fit per curve).
    unit : {"tokens", "step"}, optional
        Unit of the crossings; default tokens when ``tokens_col`` is given, else steps.
    bootstrap : int
        Redraws (emergence) or resamples (sigmoid) for each crossing's interval.
    coverage : float
        Coverage of those intervals.
    seed : int
        Base seed (curve ``i`` uses one derived from ``(seed, i)``, as
        :func:`scalelab.curves.analyze_curves` does).
    workers : int, optional
        Threads for the sigmoid fits.

    Returns
    -------
    Crossings

    Raises
    ------
    DataError
        For unknown columns, a run with several sizes, fewer than 3 distinct sizes, tokens
        asked without a tokens column, and everything :func:`scalelab.curves.read_curves`
        rejects.
    """
    from scalelab.curves import analyze_curves, read_curves
    from scalelab.curves.tidy import _key_text
    from scalelab.store import read_table

    if measure not in MEASURES:
        raise DataError(f"measure must be 'crossing' or 'transition', got {measure!r}")
    unit = unit or ("tokens" if tokens_col else "step")
    if unit not in UNITS:
        raise DataError(f"unit must be 'tokens' or 'step', got {unit!r}")
    if unit == "tokens" and not tokens_col:
        raise DataError("crossings in tokens need the tokens column: give --tokens-col")
    if not 0 < coverage < 1:
        raise DataError(f"coverage must be between 0 and 1, got {coverage}")
    table = read_table(source)
    if where:
        table = table.where(where)
    runs = _key_text(table, run_col)
    size_values = table.numeric(size_col, positive=True)
    sizes: dict[str, float] = {}
    for run, size in zip(runs.tolist(), size_values.tolist(), strict=True):
        if sizes.setdefault(run, size) != size:
            raise DataError(
                f"run {run!r} has several values in size column {size_col!r} ({sizes[run]:g} "
                f"and {size:g}); give one model size per run"
            )
    distinct = sorted(set(sizes.values()))
    if len(distinct) < MIN_SIZES:
        raise DataError(
            f"{len(distinct)} distinct model size(s) in column {size_col!r} "
            f"({', '.join(f'{v:.3g}' for v in distinct)}); a fit against N needs at least "
            f"{MIN_SIZES}: add runs of more sizes or widen --where"
        )
    curves = read_curves(
        table,
        metric=metric,
        run_col=run_col,
        step_col=step_col,
        skill_col=skill_col,
        metric_col=metric_col,
        value_col=value_col,
        tokens_col=tokens_col,
        stderr_col=stderr_col,
        chance_col=chance_col,
        order_by=size_col,
    )
    analyses = analyze_curves(
        curves,
        threshold=threshold,
        fraction=fraction,
        chance=chance,
        sustain=sustain,
        offset=offset,
        bootstrap=bootstrap,
        coverage=coverage,
        seed=seed,
        fit_transitions=measure == "transition",
        workers=workers,
    )
    from scipy import stats

    z = float(stats.norm.ppf(0.5 + coverage / 2))
    points = []
    for curve, analysis in zip(curves, analyses, strict=True):
        size = sizes[curve.run]
        if measure == "crossing":
            points.append(_crossing_point(curve, analysis.emergence, size, unit, z, fraction))
        else:
            points.append(_transition_point(curve, analysis.transition, size, unit, z))
    skills = tuple(dict.fromkeys(p.skill for p in points))
    points.sort(key=lambda p: (skills.index(p.skill), p.size, p.run))
    return Crossings(
        points=tuple(points),
        skills=skills,
        measure=measure,
        unit=unit,
        mode="fraction" if fraction is not None else "threshold",
        threshold=None if fraction is not None else (0.9 if threshold is None else threshold),
        fraction=fraction,
        chance=chance,
        size_col=size_col,
        source=curves.source,
        fingerprint=curves.fingerprint,
        where=where,
        coverage=coverage,
        bootstrap=bootstrap,
        sustain=sustain,
        seed=seed,
        offset=offset,
        notes=curves.notes,
    )


_UNREACHED = {
    "not_reached": "not reached (and held) by the last evaluation: censored",
    "at_start": "already at the level at the first evaluation: left-censored",
    "no_progress": "final value not above chance: no rise to cross",
    "insufficient": "fewer than 2 evaluations",
}


def _interval(
    value: float, low: float | None, high: float | None, z: float
) -> tuple[str, float | None]:
    """Reason the interval disqualifies the point ("" if not), and the log standard error."""
    if high is None:
        return "its interval reaches beyond the last evaluation", None
    if low is None or low <= 0:
        return "its interval reaches 0 (the start of training)", None
    if not low <= value <= high:
        return "its interval does not contain it", None
    se = (math.log(high) - math.log(low)) / (2 * z)
    return "", se if se > 0 else None


def _crossing_point(
    curve: Any, e: Any, size: float, unit: str, z: float, fraction: float | None
) -> SizePoint:
    base: dict[str, Any] = {
        "run": e.run,
        "skill": e.skill,
        "size": size,
        "status": e.status,
        "bracket": e.bracket,
        "level": e.level,
        "final_value": e.final_value,
    }
    none: dict[str, Any] = {"value": None, "low": None, "high": None, "se_log": None}
    if e.status != "reached":
        reason = _UNREACHED.get(e.status, e.status)
        return SizePoint(**base, resolved=False, reason=reason, **none)
    if unit == "tokens":
        value = e.tokens
        low, high = e.tokens_ci if e.tokens_ci is not None else (None, None)
    else:
        value, low, high = e.step, e.step_low, e.step_high
    if not value or value <= 0:
        return SizePoint(**base, resolved=False, reason=f"crossing at {unit} 0", **none)
    if fraction is not None and curve.stderr is not None and e.chance is not None:
        rise, se_final = e.final_value - e.chance, float(curve.stderr[-1])
        if rise < 2 * z * se_final:
            reason = (
                f"rise from chance {rise:.3g} is under {2 * z:.2f} standard errors "
                f"({se_final:.2g}) of the final value: the level is not resolved from noise"
            )
            return SizePoint(**base, resolved=False, reason=reason, **{**none, "value": value})
    if e.interval_method == "none":
        return SizePoint(
            **base, resolved=True, reason="", value=value, low=None, high=None, se_log=None
        )
    reason, se = _interval(value, low, high, z)
    return SizePoint(
        **base, resolved=not reason, reason=reason, value=value, low=low, high=high, se_log=se
    )


def _transition_point(curve: Any, t: Any, size: float, unit: str, z: float) -> SizePoint:
    final = float(curve.value[-1]) if curve.n_points else None
    base: dict[str, Any] = {
        "run": t.run,
        "skill": t.skill,
        "size": size,
        "status": t.status,
        "bracket": None,
        "level": None,
        "final_value": final,
    }
    none: dict[str, Any] = {"value": None, "low": None, "high": None, "se_log": None}
    if not t.identified:
        reason = f"sigmoid fit {t.status.replace('_', ' ')}"
        return SizePoint(**base, resolved=False, reason=reason, **none)

    def convert(step: float | None) -> float | None:
        if step is None or unit == "step":
            return step
        return float(np.interp(step, curve.step, curve.tokens))

    value, low, high = convert(t.step), convert(t.step_low), convert(t.step_high)
    if not value or value <= 0:
        return SizePoint(**base, resolved=False, reason=f"midpoint at {unit} 0", **none)
    if t.interval_method == "none" or (low is None and high is None):
        return SizePoint(**base, resolved=True, reason="", **{**none, "value": value})
    reason, se = _interval(value, low, high, z)
    return SizePoint(
        **base, resolved=not reason, reason=reason, value=value, low=low, high=high, se_log=se
    )


# ------------------------------------------------------------------------------ predicting
@dataclass(frozen=True)
class SkillPrediction:
    """The predicted crossing of one skill at one model size.

    Attributes
    ----------
    n : float
        The model size.
    value, low, high : float
        Predicted crossing (steps or tokens) and its prediction interval.
    extrapolation : float
        ``n`` over the largest fitted size.
    verdict : str or None
        Against the budget: ``within_budget``, ``beyond_budget`` or ``undetermined``;
        ``None`` without a budget.
    """

    n: float
    value: float
    low: float
    high: float
    extrapolation: float
    verdict: str | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary."""
        return _to_dict(self)


@dataclass(frozen=True)
class Comparison:
    """A held-out model: the crossing predicted from smaller models against the measured one.

    Attributes
    ----------
    run : str
    size : float
    predicted, low, high : float
        Prediction and its interval.
    measured, measured_low, measured_high : float or None
        The measured crossing and its interval (``None`` when not resolved).
    status, reason : str
        The measured point's status and, when it is not resolved, why.
    ratio : float or None
        ``predicted / measured``.
    inside : bool or None
        Whether the measured crossing lies inside the prediction interval.
    """

    run: str
    size: float
    predicted: float
    low: float
    high: float
    measured: float | None
    measured_low: float | None
    measured_high: float | None
    status: str
    reason: str
    ratio: float | None
    inside: bool | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary."""
        return _to_dict(self)


@dataclass(frozen=True)
class SkillScaling:
    """The crossing of one skill against model size, and what it predicts.

    Attributes
    ----------
    skill : str
    status : str
        ``ok`` or ``insufficient`` (fewer than 3 resolved sizes; nothing is predicted).
    reason : str
        Why it is insufficient (empty when ``ok``).
    trend : SizeTrend or None
        ``log crossing`` against ``log N``.
    exponent, exponent_low, exponent_high : float or None
        ``b`` in ``T ~ N^b`` with its interval.
    fitted : tuple of str
        Runs whose crossings were fitted.
    excluded : tuple of (str, str)
        ``(run, reason)`` for fit-range runs left out.
    predictions : tuple of SkillPrediction
        One per target size.
    backtest : tuple of Comparison
        One per held-out run (sizes above ``holdout_above``).
    notes : tuple of str
    """

    skill: str
    status: str
    reason: str
    trend: SizeTrend | None
    exponent: float | None
    exponent_low: float | None
    exponent_high: float | None
    fitted: tuple[str, ...]
    excluded: tuple[tuple[str, str], ...]
    predictions: tuple[SkillPrediction, ...]
    backtest: tuple[Comparison, ...]
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary."""
        return _to_dict(self)


@dataclass(frozen=True)
class SkillsAtScale:
    """Per-skill crossings against model size, predictions and (optionally) a backtest.

    Attributes
    ----------
    crossings : Crossings
        Every measured crossing.
    skills : tuple of SkillScaling
    target_n : tuple of float
    budget : float or None
        In ``crossings.unit``.
    holdout_above : float or None
        Sizes above this were held out of the fits and compared with their predictions.
    coverage : float
        Coverage of the prediction intervals.
    notes : tuple of str
    """

    crossings: Crossings
    skills: tuple[SkillScaling, ...]
    target_n: tuple[float, ...]
    budget: float | None
    holdout_above: float | None
    coverage: float
    notes: tuple[str, ...] = ()

    def skill(self, name: str) -> SkillScaling:
        """The result of one skill (``DataError`` listing the skills if absent)."""
        for s in self.skills:
            if s.skill == name:
                return s
        raise DataError(
            f"skill {name!r} is not in the results; skills: "
            + ", ".join(s.skill for s in self.skills)
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary with schema ``scalelab.skills/1``."""
        return {"schema": "scalelab.skills/1", **_to_dict(self)}


def predict_saved_skills(
    saved: Mapping[str, Any],
    target_n: float | Sequence[float],
    *,
    budget: float | None = None,
    coverage: float | None = None,
) -> list[dict[str, Any]]:
    """Predict each skill's crossing at new sizes from a saved ``scalelab.skills/1`` result.

    Parameters
    ----------
    saved : mapping
        The JSON written by ``scalelab skills --json`` (:meth:`SkillsAtScale.to_dict`).
    target_n : float or sequence of float
        Model sizes to predict at.
    budget : float, optional
        Training budget in the crossings' unit: each prediction gets a verdict
        (``within_budget`` / ``beyond_budget`` / ``undetermined``).
    coverage : float, optional
        Interval coverage (default: the saved result's).

    Returns
    -------
    list of dict
        One per (skill, size): ``skill, n, unit, value, low, high, extrapolation, verdict`` for
        skills with a fitted trend, or ``skill, status, reason`` for those without.

    Raises
    ------
    DataError
        If ``saved`` is not a ``scalelab.skills/1`` result.
    """
    schema = str(saved.get("schema", ""))
    if schema != "scalelab.skills/1":
        raise DataError(
            f"expected a per-skill result (schema scalelab.skills/1, from `scalelab skills --json`), "
            f"got schema {schema or 'none'!r}"
        )
    targets = [float(n) for n in np.atleast_1d(np.asarray(target_n, dtype=float))]
    unit = str(saved.get("crossings", {}).get("unit", "step"))
    level = float(saved.get("coverage", 0.95)) if coverage is None else coverage
    out: list[dict[str, Any]] = []
    for skill in saved.get("skills", []):
        if skill.get("trend") is None:
            out.append({"skill": skill.get("skill"), "status": skill.get("status"),
                        "reason": skill.get("reason", "")})
            continue
        trend = SizeTrend.from_dict(skill["trend"])
        mean, low, high = (np.exp(v) for v in trend.predict(targets, coverage=level))
        for i, n in enumerate(targets):
            verdict = None
            if budget is not None:
                verdict = ("within_budget" if high[i] <= budget else
                           "beyond_budget" if low[i] > budget else "undetermined")
            out.append({"skill": skill["skill"], "n": n, "unit": unit, "value": float(mean[i]),
                        "low": float(low[i]), "high": float(high[i]), "coverage": level,
                        "extrapolation": n / trend.size_range[1], "verdict": verdict})
    return out


def predict_skills(
    crossings: Crossings,
    *,
    target_n: float | Sequence[float] = (),
    budget: float | None = None,
    holdout_above: float | None = None,
    skills: Sequence[str] | None = None,
    coverage: float | None = None,
) -> SkillsAtScale:
    """Fit each skill's crossings against model size and predict larger models.

    Parameters
    ----------
    crossings : Crossings
        From :func:`measure_crossings`.
    target_n : float or sequence of float
        Model sizes to predict the crossing at.
    budget : float, optional
        Steps or tokens (``crossings.unit``) the target would be trained for; each prediction
        gets a verdict against it.
    holdout_above : float, optional
        Fit only sizes at or below this and compare the larger runs with their predictions
        (a backtest).
    skills : sequence of str, optional
        Only these skills (default all).
    coverage : float, optional
        Coverage of the prediction intervals (default: the crossings' coverage).

    Returns
    -------
    SkillsAtScale

    Raises
    ------
    DataError
        With neither a target size nor a hold-out, a non-positive size or budget, or an
        unknown skill.
    """
    level = crossings.coverage if coverage is None else float(coverage)
    if not 0 < level < 1:
        raise DataError(f"coverage must be between 0 and 1, got {level}")
    targets = (target_n,) if isinstance(target_n, (int, float)) else tuple(target_n)
    targets = tuple(float(n) for n in targets)
    if not targets and holdout_above is None:
        raise DataError(
            "nothing to predict: give a target model size (--target-n) or hold out the larger "
            "models with --holdout-above to backtest"
        )
    for name, value in [("target size", n) for n in targets] + [
        ("budget", budget),
        ("hold-out size", holdout_above),
    ]:
        if value is not None and not (math.isfinite(value) and value > 0):
            raise DataError(f"{name} must be a positive number, got {value!r}")
    chosen = tuple(crossings.skills) if skills is None else tuple(skills)
    for name in chosen:
        crossings.for_skill(name)  # unknown skill -> DataError listing the skills
    results = tuple(
        _one_skill(crossings, name, targets, budget, holdout_above, level) for name in chosen
    )
    notes = []
    if crossings.mode == "fraction":
        notes.append(
            f"fraction mode: a predicted crossing is where that model reaches {crossings.fraction:g}"
            " of the way from chance to its own final value after the same training length as "
            "the fitted runs"
        )
    return SkillsAtScale(
        crossings=crossings,
        skills=results,
        target_n=targets,
        budget=budget,
        holdout_above=holdout_above,
        coverage=level,
        notes=tuple(notes),
    )


def _one_skill(
    crossings: Crossings,
    skill: str,
    targets: tuple[float, ...],
    budget: float | None,
    holdout_above: float | None,
    coverage: float,
) -> SkillScaling:
    points = crossings.for_skill(skill)
    in_range = [p for p in points if holdout_above is None or p.size <= holdout_above]
    held_out = [p for p in points if holdout_above is not None and p.size > holdout_above]
    fitted = [p for p in in_range if p.resolved]
    excluded = tuple((p.run, p.reason) for p in in_range if not p.resolved)
    sizes = sorted({p.size for p in fitted})
    empty: dict[str, Any] = {
        "trend": None,
        "exponent": None,
        "exponent_low": None,
        "exponent_high": None,
        "predictions": (),
        "backtest": (),
    }
    if len(sizes) < MIN_SIZES:
        reason = (
            f"{len(sizes)} model size(s) with a resolved crossing; a fit against N needs "
            f"{MIN_SIZES}"
        )
        return SkillScaling(
            skill=skill,
            status="insufficient",
            reason=reason,
            fitted=tuple(p.run for p in fitted),
            excluded=excluded,
            **empty,
        )
    notes = []
    with_se = [p.se_log is not None for p in fitted]
    se = np.array([p.se_log for p in fitted], dtype=float) if all(with_se) else None
    if any(with_se) and not all(with_se):
        notes.append("some crossings have no interval: fitted unweighted (least squares)")
    if excluded:
        notes.append(
            f"{len(excluded)} crossing(s) in the fit range are not resolved (see excluded)"
        )
    trend = fit_size_trend(
        [p.size for p in fitted],
        np.log(np.array([p.value for p in fitted], dtype=float)),
        se,
        coverage=coverage,
        what=f"the crossings of {skill}",
    )
    largest = trend.size_range[1]
    predictions = []
    for n in targets:
        mean, low, high = (math.exp(float(v[0])) for v in trend.predict(n))
        verdict = None
        if budget is not None:
            verdict = (
                "within_budget"
                if high <= budget
                else "beyond_budget"
                if low > budget
                else "undetermined"
            )
        predictions.append(SkillPrediction(n, mean, low, high, n / largest, verdict))
    backtest = []
    for p in held_out:
        mean, low, high = (math.exp(float(v[0])) for v in trend.predict(p.size))
        measured = p.value if p.resolved else None
        backtest.append(
            Comparison(
                run=p.run,
                size=p.size,
                predicted=mean,
                low=low,
                high=high,
                measured=measured,
                measured_low=p.low if p.resolved else None,
                measured_high=p.high if p.resolved else None,
                status=p.status,
                reason=p.reason,
                ratio=mean / measured if measured else None,
                inside=(low <= measured <= high) if measured else None,
            )
        )
    return SkillScaling(
        skill=skill,
        status="ok",
        reason="",
        trend=trend,
        exponent=trend.slope,
        exponent_low=trend.slope_low,
        exponent_high=trend.slope_high,
        fitted=tuple(p.run for p in fitted),
        excluded=excluded,
        predictions=tuple(predictions),
        backtest=tuple(backtest),
        notes=tuple(notes),
    )


def skills_at_scale(
    source: Any,
    *,
    size_col: str,
    target_n: float | Sequence[float] = (),
    budget: float | None = None,
    holdout_above: float | None = None,
    skills: Sequence[str] | None = None,
    **measure: Any,
) -> SkillsAtScale:
    """:func:`measure_crossings` then :func:`predict_skills`, in one call.

    Parameters
    ----------
    source : path, dataset name, Table, DataFrame or mapping of columns
    size_col : str
    target_n, budget, holdout_above, skills
        As in :func:`predict_skills`.
    **measure
        Keyword arguments of :func:`measure_crossings` (``metric``, ``run_col``,
        ``skill_col``, ``fraction``, ``chance``, ...).

    Returns
    -------
    SkillsAtScale

    Examples
    --------
    >>> res = skills_at_scale(
    ...     "../shared/data/pythia_v1_evals_by_checkpoint.csv", size_col="params_total",
    ...     run_col="model", skill_col="task", metric="acc", stderr_col="stderr",
    ...     where="num_fewshot == 0 and deduped == 0 and task == 'lambada_openai'",
    ...     fraction=0.5, chance=0.0, holdout_above=2e9)  # doctest: +SKIP
    >>> [round(c.predicted) for c in res.skill("lambada_openai").backtest]  # doctest: +SKIP
    [3183, 3607, 3890]
    """
    crossings = measure_crossings(source, size_col=size_col, **measure)
    return predict_skills(
        crossings,
        target_n=target_n,
        budget=budget,
        holdout_above=holdout_above,
        skills=skills,
    )
